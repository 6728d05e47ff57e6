//! Background work that capabilities register: consumers of domain events and periodic jobs.
//!
//! Each capability adds its own at start-up (`register(&mut Background)` beside its service);
//! the worker runs whatever is registered, so a new capability never edits a central switch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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

/// The consumers and periodic jobs of this build.
#[derive(Clone, Default)]
pub struct Background {
    consumers: Vec<Arc<dyn Handler>>,
    jobs: Vec<PeriodicJobSpec>,
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

    pub fn consumers(&self) -> &[Arc<dyn Handler>] {
        &self.consumers
    }

    pub fn jobs(&self) -> &[PeriodicJobSpec] {
        &self.jobs
    }
}
