//! The unit of work: one per use case.
//!
//! A service opens one with [`Writer::begin`], naming the [`Actor`] and the client, and then
//! writes through it — repositories take [`UnitOfWork::tx`], the audit entry goes through
//! [`UnitOfWork::audit`], domain events through [`UnitOfWork::emit`] (the outbox, same
//! transaction, written in one statement as the unit commits) — and registers what must
//! happen only once the change is durable (cache invalidation, waking the relay) with
//! [`UnitOfWork::after_commit`]. [`UnitOfWork::commit`] commits and then runs those actions;
//! a unit of work dropped without commit (an early `?`, a panic, a cancelled request) rolls
//! back and runs none of them. When the client's request
//! carries an `Idempotency-Key`, the commit also marks its claim committed, in the same
//! transaction: a request that took effect never runs a second time, even if the process dies
//! before its response is stored.
//!
//! ```text
//! let mut uow = self.writer.begin(actor, client).await?;
//! let role = roles::insert(uow.tx(), row).await?;
//! uow.audit(AuditEntry::new("role.created").target("role", role.id)).await?;
//! self.authz.invalidate_after_commit(&mut uow);
//! uow.commit().await?;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use depot_adapters::broker::jitter;
use depot_adapters::cache::Cache;
use depot_domain::message::Message;
use depot_domain::{Actor, AppResult, Clock};
use depot_store::repo::idempotency::{Claim, mark_committed};
use depot_store::repo::outbox;
use depot_store::{DatabaseTransaction, Db, Tx, is_transient_conflict};
use tokio::sync::Notify;

use crate::audit::{self, AuditEntry};
use crate::client::ClientInfo;

/// An action that runs after a successful commit: started only then, so it is kept as the
/// closure that starts it (a closure can be `Sync`, which keeps `&UnitOfWork` `Send`).
type AfterCommit = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Wakes the outbox relay so an event emitted by a committed unit of work goes out at once
/// instead of at the relay's next poll.
#[derive(Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next [`RelayWaker::wake`] (or at once if one is pending).
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// Cache namespaces that follow domain events: when a unit of work that emitted an event of
/// a listed type commits, the namespaces listed for it are retired (`invalidate_namespace`),
/// whichever service wrote. A cached figure thus changes with the writes that change it,
/// without those services knowing who caches what.
#[derive(Clone, Default)]
pub struct EventInvalidation {
    cache: Option<Arc<Cache>>,
    /// (event type, namespace) pairs.
    rules: Vec<(&'static str, &'static str)>,
}

impl EventInvalidation {
    pub fn new(cache: Arc<Cache>) -> Self {
        Self {
            cache: Some(cache),
            rules: Vec::new(),
        }
    }

    /// Retires `namespace` after every commit that emitted one of `event_types`.
    pub fn follow(&mut self, namespace: &'static str, event_types: &[&'static str]) {
        self.rules
            .extend(event_types.iter().map(|event| (*event, namespace)));
    }

    fn namespaces_of<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'static str> + 'a {
        self.rules
            .iter()
            .filter(move |(event, _)| *event == event_type)
            .map(|(_, namespace)| *namespace)
    }
}

/// Opens units of work. Cheap to clone; every service that writes holds one.
#[derive(Clone)]
pub struct Writer {
    db: Db,
    clock: Arc<dyn Clock>,
    relay: RelayWaker,
    invalidation: Arc<EventInvalidation>,
}

impl Writer {
    pub fn new(db: Db, clock: Arc<dyn Clock>, relay: RelayWaker) -> Self {
        Self {
            db,
            clock,
            relay,
            invalidation: Arc::default(),
        }
    }

    /// The same writer, retiring cache namespaces after commits as `invalidation` says.
    pub fn with_invalidation(mut self, invalidation: EventInvalidation) -> Self {
        self.invalidation = Arc::new(invalidation);
        self
    }

    /// Begins a unit of work done by `actor` on behalf of `client`. Its time is taken now from
    /// the injected clock, in whole microseconds: what the databases store, so what a unit
    /// answers equals what a later read returns.
    pub async fn begin(&self, actor: Actor, client: &ClientInfo) -> AppResult<UnitOfWork> {
        Ok(UnitOfWork {
            tx: self.db.begin().await?,
            actor,
            client: client.clone(),
            claims: client.idempotency.iter().cloned().collect(),
            now: self.clock.now().trunc_subsecs(6),
            relay: self.relay.clone(),
            events: Vec::new(),
            invalidation: self.invalidation.clone(),
            retired: Vec::new(),
            after_commit: Vec::new(),
        })
    }

    /// The current time of the injected clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The database for reads outside a unit of work.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// One use case's writes, audit entries, events and after-commit actions; see the module docs.
#[must_use = "a unit of work rolls back unless committed"]
pub struct UnitOfWork {
    tx: Tx,
    actor: Actor,
    client: ClientInfo,
    /// The `Idempotency-Key` claims of the requests this unit answers: marked committed in
    /// its transaction.
    claims: Vec<Claim>,
    now: DateTime<Utc>,
    relay: RelayWaker,
    /// The events emitted so far, each with the trace it continues: appended to the outbox
    /// together, in emission order, when the unit commits.
    events: Vec<(Message, Option<String>)>,
    invalidation: Arc<EventInvalidation>,
    /// Cache namespaces to retire after commit (by the events emitted).
    retired: Vec<&'static str>,
    after_commit: Vec<AfterCommit>,
}

impl UnitOfWork {
    /// The transaction, for repositories.
    pub fn tx(&self) -> &DatabaseTransaction {
        &self.tx
    }

    /// The time of this unit of work: every row it writes carries the same instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Who is doing this unit's work.
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// Records `entry` in the audit log, by this unit's actor unless the entry names its own,
    /// with the client's request id and address.
    pub async fn audit(&self, entry: AuditEntry) -> AppResult<()> {
        audit::record(&self.tx, self.now, self.actor, &self.client, entry).await
    }

    /// Emits `message`: it is appended to the outbox in this unit's transaction (with every
    /// other event of the unit, in one statement, as the unit commits) and the relay is woken
    /// after commit. An event that names no trace of its own continues the client's request's
    /// trace, or the current span's (a job, a consumer).
    pub fn emit(&mut self, message: &Message) {
        let traceparent = message
            .traceparent
            .clone()
            .or_else(|| self.client.traceparent.clone())
            .or_else(crate::trace::current_traceparent);
        self.events.push((message.clone(), traceparent));
        for namespace in self.invalidation.namespaces_of(&message.event_type) {
            if !self.retired.contains(&namespace) {
                self.retired.push(namespace);
            }
        }
    }

    /// Runs `action` after a successful commit, in registration order; never if the unit of
    /// work fails or is dropped.
    pub fn after_commit<F, Fut>(&mut self, action: F)
    where
        F: FnOnce() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_commit.push(Box::new(move || Box::pin(action())));
    }

    /// This unit also carries out the request of `client` (a group of requests applied in one
    /// transaction): its `Idempotency-Key` claim is marked committed with the others.
    pub fn answers_for(&mut self, client: &ClientInfo) {
        if let Some(claim) = &client.idempotency
            && !self.claims.contains(claim)
        {
            self.claims.push(claim.clone());
        }
    }

    /// Appends the emitted events to the outbox, commits, then runs the after-commit actions.
    /// If the commit fails nothing runs.
    ///
    /// The idempotency claims of the requests it answers are marked committed in the same
    /// transaction; a claim lost meanwhile (its lease ended and another copy of the request
    /// took the key) rolls the unit back with 409 `idempotency.in_progress`.
    pub async fn commit(self) -> AppResult<()> {
        let Self {
            tx,
            claims,
            relay,
            events,
            invalidation,
            retired,
            after_commit,
            ..
        } = self;
        outbox::append_all(&*tx, &events).await?;
        for claim in &claims {
            if !mark_committed(&*tx, claim).await? {
                return Err(crate::idempotency::in_progress());
            }
        }
        tx.commit().await?;
        if !events.is_empty() {
            relay.wake();
        }
        if let Some(cache) = &invalidation.cache {
            for namespace in retired {
                cache.invalidate_namespace(namespace).await;
            }
        }
        for action in after_commit {
            action().await;
        }
        Ok(())
    }
}

/// How many times [`retry_transient`] runs a unit of work at most.
pub const MAX_ATTEMPTS: u32 = 4;

/// Runs `work` — a whole unit of work, begin to commit — again when it failed with a transient
/// conflict between concurrent transactions (PostgreSQL serialization failure or deadlock), at
/// most [`MAX_ATTEMPTS`] times with a short jittered pause. Any other result is returned as is.
pub async fn retry_transient<T, F, Fut>(mut work: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let mut attempt = 1;
    loop {
        match work().await {
            Err(err) if attempt < MAX_ATTEMPTS && is_transient_conflict(&err) => {
                tracing::debug!(attempt, code = err.code(), "unit of work retried");
                metrics::counter!("depot_unit_of_work_retries_total").increment(1);
                let pause = Duration::from_millis(5 << attempt);
                tokio::time::sleep(pause.mul_f64(0.5 + jitter() / 2.0)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Records a change of `(kind, id)` in the audit log (before → after, `Null` for none) and
/// commits the unit of work: the last step of most changes.
pub(crate) async fn audited(
    uow: UnitOfWork,
    action: &'static str,
    (kind, id): (&'static str, uuid::Uuid),
    before: serde_json::Value,
    after: serde_json::Value,
) -> AppResult<()> {
    uow.audit(
        crate::audit::AuditEntry::new(action)
            .target(kind, id)
            .change(before, after),
    )
    .await?;
    uow.commit().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use depot_domain::{AppError, ErrorCode};

    use super::*;

    #[tokio::test]
    async fn transient_conflicts_are_retried_a_bounded_number_of_times() {
        let runs = AtomicU32::new(0);
        let result: AppResult<u32> = retry_transient(|| async {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 3 {
                Err(AppError::new(ErrorCode::DbDeadlock, "deadlock"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(result.ok(), Some(3));

        runs.store(0, Ordering::SeqCst);
        let result: AppResult<()> = retry_transient(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(AppError::new(ErrorCode::DbSerializationFailure, "again"))
        })
        .await;
        assert_eq!(
            result.err().map(|e| e.code().to_owned()).as_deref(),
            Some("db.serialization_failure")
        );
        assert_eq!(runs.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let runs = AtomicU32::new(0);
        let result: AppResult<()> = retry_transient(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(AppError::new(ErrorCode::UsersEmailTaken, "taken"))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
