//! `depot admin`: the user-administration commands (create-user, reset-mfa, unlock); the
//! dead-letter commands live in [`super::dead_letters`].

use clap::Subcommand;
use depot_app::config::Settings;
use depot_app::users::{NewUser, UserService};
use depot_app::{AppContext, ClientInfo};
use depot_domain::{Actor, AppError};

use super::dead_letters::{self, DeadLetterAction};

/// Who acts in the audit log when an operator runs a command on the server.
const CLI: Actor = Actor::System("cli");

#[derive(Subcommand)]
pub enum AdminAction {
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

pub async fn run(settings: Settings, action: AdminAction) -> anyhow::Result<()> {
    let ctx = depot::wiring::build_context(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let result = match action {
        AdminAction::DeadLetters { action } => dead_letters::run(&ctx, action).await,
        action => users(&ctx, action).await,
    };
    ctx.close().await;
    result
}

/// An application error as one line: message, code and details.
fn fail(e: AppError) -> anyhow::Error {
    let details = e.details().map(|d| format!(" {d}")).unwrap_or_default();
    anyhow::anyhow!("{} ({}){details}", e.message(), e.code())
}

/// The user-administration commands: the schema is migrated (when configured to) and the
/// built-in roles exist before any of them runs.
async fn users(ctx: &AppContext, action: AdminAction) -> anyhow::Result<()> {
    if ctx.settings().auto_migrate() {
        ctx.schema().migrate_up().await.map_err(fail)?;
    } else {
        ctx.schema().seed().await.map_err(fail)?;
    }
    let client = ClientInfo {
        request_id: Some(format!("cli-{}", depot_domain::id::new_id())),
        ..ClientInfo::default()
    };
    let find = |email: String| async move {
        ctx.users()
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
            let display_name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or("").to_owned());
            UserService::check_password(&password, &email, &display_name).map_err(fail)?;
            let user = ctx
                .users()
                .create(
                    CLI,
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
            ctx.mfa()
                .mfa_reset(CLI, user.id, &client)
                .await
                .map_err(fail)?;
            println!(
                "MFA reset for {} <{}>; their sessions were revoked",
                user.id, user.email
            );
        }
        AdminAction::Unlock { email } => {
            let user = find(email).await?;
            ctx.users()
                .unlock(CLI, user.id, &client)
                .await
                .map_err(fail)?;
            println!("unlocked {} <{}>", user.id, user.email);
        }
        // Dispatched to `dead_letters` by `run`.
        AdminAction::DeadLetters { .. } => {}
    }
    Ok(())
}
