//! `depot`: the command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use depot::{Application, Role, telemetry};
use depot_adapters::broker::DeadLetterSelector;
use depot_app::config::{LoadedConfig, Settings};
use depot_store::{Db, DbOptions};

#[derive(Parser)]
#[command(
    name = "depot",
    version,
    about = "Depot: inventory and operations backend"
)]
struct Cli {
    /// Optional TOML configuration file (also `DEPOT_CONFIG`).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the background workers (the default).
    Serve,
    /// Run only the HTTP API.
    Api,
    /// Run only the background workers.
    Worker,
    /// Apply, roll back or list database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Messages parked after exhausting their attempts.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Create a user (e.g. the first admin). The password is read from standard input with
    /// `--password-stdin`, otherwise generated and printed once.
    CreateUser {
        #[arg(long)]
        email: String,
        /// Role names; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Turn a user's MFA off (lost device); signs them out everywhere.
    ResetMfa {
        #[arg(long)]
        email: String,
    },
    /// Clear a user's failed-login lock.
    Unlock {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// List parked messages with the reason.
    List {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Deliver parked messages again, with a fresh attempt budget.
    Replay(DeadLetterTarget),
    /// Delete parked messages.
    Purge(DeadLetterTarget),
}

/// Which parked messages: one by id, those of a queue, or (explicitly) all.
#[derive(clap::Args)]
struct DeadLetterTarget {
    #[arg(long)]
    id: Option<uuid::Uuid>,
    #[arg(long)]
    queue: Option<String>,
    #[arg(long, conflicts_with_all = ["id", "queue"])]
    all: bool,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back the latest migrations (dev profile only).
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List applied and pending migrations.
    Status,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (secrets redacted) with each value's source, then
    /// every problem found.
    Check,
}

/// Exit code for configuration problems.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The TLS stack is rustls with ring everywhere; install it once for every client.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let loaded = match LoadedConfig::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Config {
        action: ConfigAction::Check,
    } = command
    {
        return config_check(&loaded);
    }
    if let Command::Openapi = command {
        return match serde_json::to_string_pretty(&depot_http::openapi()) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        };
    }

    let mut settings = loaded.settings;
    let generated = match settings.fill_dev_secrets() {
        Ok(generated) => generated,
        Err(err) => {
            eprintln!(
                "error: cannot persist generated dev secrets in {}: {err}",
                settings.data_dir.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(problems) = settings.validate() {
        eprint!("error: {problems}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // Servers log to stdout; one-shot commands keep stdout for their own output.
    let serving = matches!(command, Command::Serve | Command::Api | Command::Worker);
    telemetry::init(&settings, serving);
    if !settings.is_prod() {
        tracing::warn!(
            "DEV PROFILE: embedded defaults and development secrets in {}; never expose this instance",
            settings.data_dir.display()
        );
        if !generated.is_empty() {
            tracing::warn!(keys = ?generated, "generated new development secrets");
        }
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => run(settings, Role::All).await,
            Command::Api => run(settings, Role::Api).await,
            Command::Worker => run(settings, Role::Worker).await,
            Command::Migrate { action } => migrate(&settings, action).await,
            Command::Admin { action } => admin(settings, action).await,
            Command::Config { .. } | Command::Openapi => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "depot failed");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, role: Role) -> anyhow::Result<()> {
    let app = Application::start(settings, role).await?;
    let handle = app.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        handle.shutdown();
    });
    app.run_until_stopped().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    let mut options = DbOptions::new(settings.database_url());
    options.max_connections = 2;
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let db = Db::connect_lazy(&options).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let state = match action {
        MigrateAction::Up => match db.migrate_up().await {
            Ok(state) => depot_app::roles::ensure_built_ins(&db, chrono::Utc::now())
                .await
                .map(|()| state),
            Err(e) => Err(e),
        },
        MigrateAction::Down { .. } if settings.is_prod() => {
            anyhow::bail!("`migrate down` is refused in the prod profile")
        }
        MigrateAction::Down { steps } => db.migrate_down(steps).await,
        MigrateAction::Status => db.migration_state().await,
    }
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for name in &state.applied {
        println!("applied  {name}");
    }
    for name in &state.pending {
        println!("pending  {name}");
    }
    println!(
        "{} applied, {} pending",
        state.applied.len(),
        state.pending.len()
    );
    db.close().await;
    Ok(())
}

fn config_check(loaded: &LoadedConfig) -> ExitCode {
    println!("{:<28} {:<48} source", "key", "value");
    for (key, value, source) in loaded.describe() {
        let value = match value {
            serde_json::Value::Null => "(unset)".to_owned(),
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        println!("{key:<28} {value:<48} {source}");
    }
    let mut settings = loaded.settings.clone();
    if !settings.is_prod() && (settings.jwt_secret.is_none() || settings.app_secret.is_none()) {
        println!(
            "\nnote: dev profile: missing secrets are generated in {} at start",
            settings.data_dir.display()
        );
        // Validate as the server would see it, without writing anything.
        settings
            .jwt_secret
            .get_or_insert_with(|| depot_app::config::Secret::new("x".repeat(64)));
        settings
            .app_secret
            .get_or_insert_with(|| depot_app::config::Secret::new("y".repeat(64)));
    }
    match settings.validate() {
        Ok(()) => {
            println!("\nconfiguration is valid ({:?} profile)", settings.profile);
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("\n{problems}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn admin(settings: Settings, action: AdminAction) -> anyhow::Result<()> {
    let ctx = depot_app::AppContext::build(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let action = match action {
        AdminAction::DeadLetters { action } => action,
        user_action => {
            let result = admin_users(&ctx, user_action).await;
            ctx.db.close().await;
            return result;
        }
    };
    let selector = |t: &DeadLetterTarget| -> anyhow::Result<DeadLetterSelector> {
        if t.id.is_none() && t.queue.is_none() && !t.all {
            anyhow::bail!("say which messages: --id ID, --queue NAME or --all");
        }
        Ok(DeadLetterSelector {
            id: t.id,
            queue: t.queue.clone(),
        })
    };
    match action {
        DeadLetterAction::List { queue, limit } => {
            let parked = ctx.broker.dead_letters(queue.as_deref(), limit).await?;
            println!(
                "{} dead letters ({} broker)",
                parked.len(),
                ctx.broker.kind()
            );
            for d in parked {
                let kind = d.message.as_ref().map_or("?", |m| m.event_type.as_str());
                let message_id = d
                    .message
                    .as_ref()
                    .map(|m| m.id.to_string())
                    .unwrap_or_default();
                println!(
                    "{}  queue={} type={} message={} attempts={} parked_at={} reason={}",
                    d.id,
                    d.queue,
                    kind,
                    message_id,
                    d.attempts,
                    d.parked_at.to_rfc3339(),
                    d.reason.unwrap_or_default()
                );
            }
        }
        DeadLetterAction::Replay(target) => {
            let n = ctx.broker.replay(&selector(&target)?).await?;
            println!("replayed {n}");
        }
        DeadLetterAction::Purge(target) => {
            let n = ctx.broker.purge(&selector(&target)?).await?;
            println!("purged {n}");
        }
    }
    ctx.db.close().await;
    Ok(())
}

/// The user-administration commands of `depot admin`.
async fn admin_users(ctx: &depot_app::AppContext, action: AdminAction) -> anyhow::Result<()> {
    use depot_app::auth::ClientInfo;
    use depot_app::users::{NewUser, UserService};

    let fail = |e: depot_domain::AppError| {
        let details = e.details().map(|d| format!(" {d}")).unwrap_or_default();
        anyhow::anyhow!("{} ({}){details}", e.message(), e.code())
    };
    if ctx.settings.auto_migrate() {
        ctx.db.migrate_up().await.map_err(fail)?;
    }
    ctx.roles.ensure_built_ins().await.map_err(fail)?;
    let client = ClientInfo {
        request_id: Some(format!("cli-{}", depot_domain::id::new_id())),
        ..ClientInfo::default()
    };
    let find = |email: String| async move {
        ctx.users
            .find_by_email(&email)
            .await
            .map_err(fail)?
            .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))
    };
    match action {
        AdminAction::CreateUser {
            email,
            roles,
            name,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (depot_app::auth::secrets::random_token(18), true)
            };
            UserService::check_password(&password).map_err(fail)?;
            let display_name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or("").to_owned());
            let user = ctx
                .users
                .create(
                    None,
                    NewUser {
                        email,
                        display_name,
                        phone: None,
                        password: Some(password.clone()),
                        roles,
                    },
                    &client,
                )
                .await
                .map_err(fail)?;
            println!(
                "created user {} <{}> roles={:?}",
                user.id, user.email, user.roles
            );
            if generated {
                println!("password (shown once): {password}");
            }
        }
        AdminAction::ResetMfa { email } => {
            let user = find(email).await?;
            ctx.auth
                .mfa_reset(user.id, None, &client)
                .await
                .map_err(fail)?;
            println!(
                "MFA reset for {} <{}>; their sessions were revoked",
                user.id, user.email
            );
        }
        AdminAction::Unlock { email } => {
            let user = find(email).await?;
            ctx.users
                .unlock(None, user.id, &client)
                .await
                .map_err(fail)?;
            println!("unlocked {} <{}>", user.id, user.email);
        }
        AdminAction::DeadLetters { .. } => {}
    }
    Ok(())
}
