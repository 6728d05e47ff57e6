//! A job that runs every interval until stopped.

use std::future::Future;
use std::time::{Duration, Instant};

use depot_domain::AppResult;
use depot_domain::id::new_id;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Name and period of a periodic job.
#[derive(Debug, Clone)]
pub struct PeriodicJob {
    pub name: &'static str,
    pub every: Duration,
}

impl PeriodicJob {
    pub fn new(name: &'static str, every: Duration) -> Self {
        Self { name, every }
    }
}

/// Runs `run` once per period (first run after one period) until `stop` is cancelled. A run in
/// progress is never interrupted; failures are logged and counted, and the next period retries.
pub async fn run_periodic<F, Fut>(job: PeriodicJob, stop: CancellationToken, mut run: F)
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = AppResult<()>> + Send,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + job.every, job.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runs_each_period_and_stops_when_cancelled() {
        let runs = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let counter = runs.clone();
        let task = tokio::spawn(run_periodic(
            PeriodicJob::new("test", Duration::from_secs(10)),
            stop.clone(),
            move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        stop.cancel();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "no run after stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_run_does_not_end_the_job() {
        let runs = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let counter = runs.clone();
        let task = tokio::spawn(run_periodic(
            PeriodicJob::new("flaky", Duration::from_secs(1)),
            stop.clone(),
            move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Err(depot_domain::AppError::unavailable("test.down", "down"))
                }
            },
        ));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
