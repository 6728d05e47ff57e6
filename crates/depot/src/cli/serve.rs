//! `depot serve`, `depot api` and `depot worker`: run until SIGTERM or SIGINT, then shut down
//! in order.

use depot::{Application, Role};
use depot_app::config::Settings;

use super::LOG_TARGET;

pub async fn run(settings: Settings, role: Role) -> anyhow::Result<()> {
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
                    _ = term.recv() => tracing::info!(target: LOG_TARGET, "SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => {
                        tracing::info!(target: LOG_TARGET, "SIGINT received");
                    }
                }
            }
            Err(err) => {
                tracing::warn!(
                    target: LOG_TARGET,
                    error = %err,
                    "cannot listen for SIGTERM; only SIGINT stops the process"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
