//! The command line: the clap definitions, the start-up every command shares (configuration,
//! telemetry, runtime) and the dispatch to one module per command.

mod admin;
mod backup;
mod config;
mod dead_letters;
mod migrate;
mod openapi;
mod serve;
mod transfer;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use depot::{Role, telemetry};
use depot_app::config::LoadedConfig;

use self::admin::AdminAction;
use self::config::ConfigAction;
use self::migrate::MigrateAction;

#[derive(Parser)]
#[command(
    name = "depot",
    version,
    about = "Depot: inventory and operations backend"
)]
pub struct Cli {
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
    /// Recompute every stock batch and level from the ledger; non-zero exit on any mismatch.
    Verify,
    /// Check a CSV file (and with --apply, import it): products, locations, opening_stock or
    /// stock_counts. Prints every error as `row N, column C: message`; non-zero exit when there
    /// is one.
    Import {
        #[arg(value_parser = transfer::import_kind)]
        kind: depot_domain::import::ImportKind,
        file: PathBuf,
        /// Write the file (all rows or none); without it nothing is written.
        #[arg(long)]
        apply: bool,
        /// Opening stock: count levels that already hold stock instead of refusing them.
        #[arg(long)]
        replace: bool,
    },
    /// Write products, locations, batches or levels as CSV to FILE (default: standard output).
    Export {
        #[arg(value_parser = transfer::export_kind)]
        kind: depot_domain::import::ExportKind,
        file: Option<PathBuf>,
    },
    /// Write a consistent snapshot of the database and its manifest into DIR (new or empty),
    /// while the server runs. SQLite: `VACUUM INTO`; PostgreSQL: `pg_dump`, when installed.
    Backup {
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Restore the backup in DIR into the configured database, which must be empty; refuses a
    /// damaged backup or one from a newer schema. Then run `depot migrate up`.
    Restore {
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// Exit code for configuration problems.
const EXIT_CONFIG: u8 = 2;

/// The binary's own log events keep the target they had before the CLI was split into modules
/// (`depot`, not `depot::cli::…`), so log filters and queries on it keep matching.
const LOG_TARGET: &str = "depot";

/// Runs a parsed command line to its exit code.
pub fn run(cli: Cli) -> ExitCode {
    // The TLS stack is rustls with ring everywhere; install it once for every client.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let loaded = match LoadedConfig::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // These two need neither validated settings nor a runtime.
    let command = match cli.command.unwrap_or(Command::Serve) {
        Command::Config {
            action: ConfigAction::Check,
        } => return config::check(&loaded),
        Command::Openapi => return openapi::print(),
        command => command,
    };

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
    let service = match command {
        Command::Api => "depot-api",
        Command::Worker => "depot-worker",
        _ => "depot",
    };
    // Kept to the end: dropping it, after the runtime, flushes the spans still buffered.
    let _telemetry = telemetry::init(&settings, serving, service);
    if !settings.is_prod() {
        tracing::warn!(
            target: LOG_TARGET,
            "DEV PROFILE: embedded defaults and development secrets in {}; never expose this instance",
            settings.data_dir.display()
        );
        if !generated.is_empty() {
            tracing::warn!(
                target: LOG_TARGET,
                keys = ?generated,
                "generated new development secrets"
            );
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
            Command::Serve => serve::run(settings, Role::All).await,
            Command::Api => serve::run(settings, Role::Api).await,
            Command::Worker => serve::run(settings, Role::Worker).await,
            Command::Migrate { action } => migrate::run(&settings, action).await,
            Command::Admin { action } => admin::run(settings, action).await,
            Command::Verify => verify::run(&settings).await,
            Command::Backup { to } => backup::backup(&settings, &to).await,
            Command::Restore { from } => backup::restore(&settings, &from).await,
            Command::Import {
                kind,
                file,
                apply,
                replace,
            } => transfer::import(&settings, kind, &file, apply, replace).await,
            Command::Export { kind, file } => {
                transfer::export(&settings, kind, file.as_deref()).await
            }
            Command::Config { .. } | Command::Openapi => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                target: LOG_TARGET,
                error = format!("{err:#}"),
                "depot failed"
            );
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
