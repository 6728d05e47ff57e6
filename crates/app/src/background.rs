//! Background work that capabilities register: consumers of domain events and periodic jobs.
//!
//! Each capability adds its own at start-up (`register(&mut Background)` beside its service);
//! the worker runs whatever is registered, so a new capability never edits a central switch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use depot_domain::AppResult;

use crate::messaging::Handler;

/// What a periodic job's run reports: how many things it did (rows purged, …).
pub type JobRun = Pin<Box<dyn Future<Output = AppResult<u64>> + Send + 'static>>;

/// A job that runs once per period across every instance (see [`crate::messaging::Scheduler`]).
#[derive(Clone)]
pub struct PeriodicJobSpec {
    /// Its name in `scheduled_jobs` and in the `job_schedules` setting.
    pub name: &'static str,
    /// Cadence when `job_schedules` does not name it (`every 10m`, or a cron expression).
    pub default_cadence: &'static str,
    run: Arc<dyn Fn() -> JobRun + Send + Sync>,
}

impl PeriodicJobSpec {
    /// Starts one run.
    pub fn run(&self) -> JobRun {
        (self.run)()
    }
}

/// A sender: a loop that works through due rows (emails, webhook deliveries) on every
/// instance, a pass at a time — again at once while a pass found work, after `idle` when not.
#[derive(Clone)]
pub struct SenderSpec {
    pub name: &'static str,
    pub idle: Duration,
    pass: Arc<dyn Fn() -> SenderPass + Send + Sync>,
}

/// What a sender's pass reports: how many rows it worked on.
pub type SenderPass = Pin<Box<dyn Future<Output = AppResult<usize>> + Send + 'static>>;

impl SenderSpec {
    /// Starts one pass.
    pub fn pass(&self) -> SenderPass {
        (self.pass)()
    }
}

/// The consumers, periodic jobs and senders of this build.
#[derive(Clone, Default)]
pub struct Background {
    consumers: Vec<Arc<dyn Handler>>,
    jobs: Vec<PeriodicJobSpec>,
    senders: Vec<SenderSpec>,
}

impl Background {
    /// Adds a consumer of domain events.
    pub fn consumer(&mut self, handler: Arc<dyn Handler>) {
        self.consumers.push(handler);
    }

    /// Adds a periodic job; `run` starts one run and reports how many things it did.
    pub fn periodic<F, Fut>(&mut self, name: &'static str, default_cadence: &'static str, run: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AppResult<u64>> + Send + 'static,
    {
        self.jobs.push(PeriodicJobSpec {
            name,
            default_cadence,
            run: Arc::new(move || Box::pin(run()) as JobRun),
        });
    }

    /// Adds a sender; `pass` works through what is due and reports how many rows it did.
    pub fn sender<F, Fut>(&mut self, name: &'static str, idle: Duration, pass: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AppResult<usize>> + Send + 'static,
    {
        self.senders.push(SenderSpec {
            name,
            idle,
            pass: Arc::new(move || Box::pin(pass()) as SenderPass),
        });
    }

    pub fn senders(&self) -> &[SenderSpec] {
        &self.senders
    }

    pub fn consumers(&self) -> &[Arc<dyn Handler>] {
        &self.consumers
    }

    pub fn jobs(&self) -> &[PeriodicJobSpec] {
        &self.jobs
    }
}
