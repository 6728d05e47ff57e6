//! Depot's background work.
//!
//! [`Workers::start`] spawns the periodic jobs of this process on a task tracker; cancelling the
//! stop token lets a job that is running finish its current run, and no new run starts.
//! [`Workers::stop`] waits for that within the shutdown deadline.

mod periodic;

use std::time::Duration;

use depot_app::AppContext;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use periodic::{PeriodicJob, run_periodic};

/// How often expired idempotency records are purged.
const IDEMPOTENCY_PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// The background tasks of one process.
pub struct Workers {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Workers {
    /// Starts every periodic job.
    pub fn start(ctx: &AppContext) -> Self {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();

        let housekeeping = ctx.housekeeping.clone();
        tracker.spawn(run_periodic(
            PeriodicJob::new("purge_idempotency_keys", IDEMPOTENCY_PURGE_EVERY),
            stop.clone(),
            move || {
                let housekeeping = housekeeping.clone();
                async move {
                    let purged = housekeeping.purge_expired_idempotency_keys().await?;
                    tracing::debug!(purged, "expired idempotency keys purged");
                    Ok(())
                }
            },
        ));
        tracker.close();
        Self { tracker, stop }
    }

    /// Asks every job to stop and waits for running ones to finish, at most `deadline`.
    /// Returns false if the deadline passed first.
    pub async fn stop(self, deadline: Duration) -> bool {
        self.stop.cancel();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}
