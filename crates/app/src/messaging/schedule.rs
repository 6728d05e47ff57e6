//! Scheduled jobs run on exactly one instance per period: each instance asks to claim the period
//! and only one claim succeeds (a conditional update on the `scheduled_jobs` row).

use std::time::Duration;

use depot_domain::AppResult;
use depot_domain::cadence::Cadence;
use depot_store::repo::schedule;

use crate::uow::Writer;

#[derive(Clone)]
pub struct Scheduler {
    writer: Writer,
    owner: String,
}

impl Scheduler {
    /// A scheduler claiming periods as `owner` through `writer`'s database and clock.
    pub fn new(writer: Writer, owner: String) -> Self {
        Self { writer, owner }
    }

    /// True if this instance won the run of `job` that is due now; the next run is due at the
    /// cadence's next time after now.
    pub async fn claim_run(&self, job: &str, cadence: &Cadence) -> AppResult<bool> {
        let now = self.writer.now();
        let next = match cadence {
            Cadence::Every(every) => return self.claim(job, *every).await,
            Cadence::Cron(_) => cadence
                .next_after(now)
                .unwrap_or(now + chrono::Duration::days(365)),
        };
        self.claim_period(job, now, next).await
    }

    /// True if this instance won the current period of `job` (lasting `every`).
    pub async fn claim(&self, job: &str, every: Duration) -> AppResult<bool> {
        let now = self.writer.now();
        // A little under the period, so that an instance ticking exactly on time is not
        // refused by its own previous claim because of timer drift.
        let slack = every / 20;
        let next =
            now + chrono::Duration::from_std(every.saturating_sub(slack)).unwrap_or_default();
        self.claim_period(job, now, next).await
    }

    /// Claims `job` from `now` until `next` unless another instance holds it.
    async fn claim_period(
        &self,
        job: &str,
        now: chrono::DateTime<chrono::Utc>,
        next: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<bool> {
        let tx = self.writer.db().begin().await?;
        let won = schedule::claim_period(&*tx, job, &self.owner, now, next).await?;
        tx.commit().await?;
        Ok(won)
    }
}
