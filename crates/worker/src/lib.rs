//! Depot's background work: the outbox relay, the consumers and the scheduled jobs.
//!
//! [`Workers::start`] spawns them on a task tracker. Cancelling the stop token lets work in
//! progress finish (a consumer finishes its in-flight deliveries, a scheduled job its run) and
//! starts nothing new; [`Workers::stop`] waits for that within the shutdown deadline. Work that
//! was claimed but not finished (a killed process) is delivered again after the claim expires.

mod periodic;

use std::sync::Arc;
use std::time::Duration;

use depot_adapters::broker::Delivery;
use depot_app::AppContext;
use depot_app::background::SenderSpec;
use depot_app::messaging::queue_spec;
use depot_domain::cadence::Cadence;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use periodic::{PeriodicJob, run_periodic};

/// How often the relay looks for new outbox events when idle.
const RELAY_IDLE_POLL: Duration = Duration::from_millis(100);
/// After a pass that emptied the backlog, how long the relay lets new events gather before the
/// next pass (wake-ups are ignored meanwhile): under load, one pass per batch of events instead
/// of one per commit.
const RELAY_LINGER: Duration = Duration::from_millis(20);

/// The background tasks of one process.
pub struct Workers {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Workers {
    /// Starts the relay, one consumer per known handler, and the scheduled jobs.
    pub fn start(ctx: &AppContext) -> Self {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();

        tracker.spawn(relay_loop(ctx.clone(), stop.clone()));

        for delivery in ctx.deliveries() {
            let handler = delivery.handler();
            let configured = ctx
                .settings()
                .consumer_concurrency
                .get(handler.queue())
                .copied();
            let spec = queue_spec(handler, configured);
            let delivery: Arc<dyn Delivery> = delivery.clone();
            let broker = ctx.broker().clone();
            let stop = stop.clone();
            tracker.spawn(async move { broker.consume(spec, delivery, stop).await });
        }

        for sender in ctx.background().senders() {
            tracker.spawn(send_loop(sender.clone(), stop.clone()));
        }

        for job in ctx.background().jobs() {
            let name = job.name;
            let run = job.clone();
            tracker.spawn(run_periodic(
                PeriodicJob::new(name, cadence(ctx, name, job.default_cadence)),
                ctx.scheduler().clone(),
                stop.clone(),
                move || {
                    let run = run.clone();
                    async move {
                        let done = run.run().await?;
                        tracing::debug!(job = name, done, "scheduled job done");
                        Ok(())
                    }
                },
            ));
        }
        tracker.close();
        Self { tracker, stop }
    }

    /// Asks every task to stop and waits for work in progress to finish, at most `deadline`.
    /// Returns false if the deadline passed first.
    pub async fn stop(self, deadline: Duration) -> bool {
        self.stop.cancel();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Publishes outbox events until stopped: immediately again while there is a backlog, after a
/// short pause when idle, with backoff while the broker is unavailable.
async fn relay_loop(ctx: AppContext, stop: CancellationToken) {
    let mut failures: u32 = 0;
    while !stop.is_cancelled() {
        // How long to wait, and whether a commit that emitted may cut the wait short.
        let (pause, wakeable) = match ctx.relay().pass().await {
            Ok(pass) if pass.stalled => {
                failures += 1;
                (backoff(failures), false)
            }
            Ok(pass) if pass.seen >= ctx.relay().batch_size() => {
                failures = 0;
                (Duration::ZERO, false)
            }
            // The backlog is empty: let new events gather for one batch.
            Ok(pass) if pass.seen > 0 => {
                failures = 0;
                (RELAY_LINGER, false)
            }
            Ok(pass) if pass.not_leader => (Duration::from_secs(1), failures == 0),
            Ok(_) => {
                failures = 0;
                (RELAY_IDLE_POLL, true)
            }
            Err(err) => {
                failures += 1;
                tracing::warn!(error = ?err, "outbox relay pass failed");
                (backoff(failures), false)
            }
        };
        if pause > Duration::ZERO {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
                () = ctx.relay_waker().woken(), if wakeable => {}
            }
        }
    }
    if let Err(err) = ctx.relay().resign().await {
        tracing::debug!(error = ?err, "could not release the relay lease");
    }
}

/// The configured cadence of `job`, else its default. Settings were validated at startup.
fn cadence(ctx: &AppContext, job: &str, default: &str) -> Cadence {
    let text = ctx
        .settings()
        .job_schedules
        .get(job)
        .map_or(default, String::as_str);
    Cadence::parse(text)
        .or_else(|_| Cadence::parse(default))
        .unwrap_or(Cadence::Every(Duration::from_secs(600)))
}

/// Runs a sender's passes until stopped; a pass under way when the stop comes is finished.
async fn send_loop(sender: SenderSpec, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let pause = match sender.pass().await {
            Ok(n) if n > 0 => Duration::ZERO,
            Ok(_) => sender.idle,
            Err(err) => {
                tracing::warn!(sender = sender.name, error = ?err, "sender pass failed");
                Duration::from_secs(5)
            }
        };
        if pause > Duration::ZERO {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    depot_domain::message::backoff_delay(
        failures,
        Duration::from_millis(200),
        Duration::from_secs(30),
        depot_adapters::broker::jitter(),
    )
}
