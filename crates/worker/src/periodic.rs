//! A job that runs once per period across all instances, until stopped.

use std::future::Future;
use std::time::{Duration, Instant};

use depot_app::messaging::Scheduler;
use depot_domain::AppResult;
use depot_domain::cadence::Cadence;
use depot_domain::id::new_id;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Name and cadence of a scheduled job.
#[derive(Debug, Clone)]
pub struct PeriodicJob {
    pub name: &'static str,
    pub cadence: Cadence,
}

impl PeriodicJob {
    pub fn new(name: &'static str, cadence: Cadence) -> Self {
        Self { name, cadence }
    }

    /// How long to wait from now until the next due time.
    fn wait(&self) -> Duration {
        match &self.cadence {
            Cadence::Every(every) => *every,
            Cadence::Cron(_) => {
                let now = chrono::Utc::now();
                self.cadence
                    .next_after(now)
                    .and_then(|at| (at - now).to_std().ok())
                    .unwrap_or(Duration::from_secs(3600))
            }
        }
    }
}

/// Every `every`, claims the job's period through `scheduler` and runs `run` if this instance
/// won it (exactly one instance does). A run in progress is never interrupted; failures are
/// logged and counted, and the next period retries.
pub async fn run_periodic<F, Fut>(
    job: PeriodicJob,
    scheduler: Scheduler,
    stop: CancellationToken,
    mut run: F,
) where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = AppResult<()>> + Send,
{
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = tokio::time::sleep(job.wait()) => {}
        }
        match scheduler.claim_run(job.name, &job.cadence).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(job = job.name, error = ?err, "cannot claim the scheduled job");
                continue;
            }
        }
        let job_id = new_id();
        let span = tracing::info_span!("job", job = job.name, job_id = %job_id);
        let started = Instant::now();
        let outcome = run().instrument(span.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        let label = match &outcome {
            Ok(()) => "success",
            Err(err) => {
                span.in_scope(|| tracing::warn!(error = ?err, "scheduled job failed"));
                "failure"
            }
        };
        metrics::counter!("scheduled_job_runs_total", "job" => job.name, "outcome" => label)
            .increment(1);
        metrics::histogram!("scheduled_job_duration_seconds", "job" => job.name).record(seconds);
    }
    tracing::debug!(job = job.name, "periodic job stopped");
}
