//! Group commit for stock adjustments: adjustments that arrive while a unit of work of their
//! *lane* is in flight queue behind it, and the next of them applies the whole queue (up to a
//! maximum) in ONE unit of work. Every (product, location) belongs to one lane, so the
//! requests on one hot key always meet in its lane — its level row locked once, the planner
//! run once per request in arrival order, one ledger row per request per batch, one level
//! write, one `stock.changed` per request — and requests on different keys of one lane share
//! a transaction too (its begin, commit and outbox statement), their existing levels locked
//! in the global (product, location) order first. Each caller gets exactly the answer it
//! would have had running alone in that order: a removal that no longer fits gets
//! `stock.insufficient` while the rest of its group goes through.
//!
//! The number of lanes is how many grouped units one process runs at once: one on SQLite
//! (one writer: every concurrent adjustment joins the next writer transaction), several on
//! PostgreSQL (a request that gave up waiting, or a member of a failed group, runs alone
//! beside them). A lone request never waits. A request waits at most `max_wait` in the queue,
//! then runs on its own. When a group's unit fails for a reason that is not one request's own
//! (a database error, a lost connection, a serialization failure), every request of it runs
//! on its own, so one failure never takes the others down. Grouping is per process: across
//! processes the database still serialises on the level rows.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use depot_domain::{Actor, AppError, AppResult, ErrorCategory, ErrorCode};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::ledger::{Ledger, missing_product, stock_products};
use super::{Adjustment, AdjustmentView, StockService, adjustment_cause, events, views};
use crate::client::ClientInfo;
use crate::uow::retry_transient;

/// One adjustment and who asked for it.
pub(crate) struct Job {
    pub actor: Actor,
    pub input: Adjustment,
    pub client: ClientInfo,
}

struct Waiting {
    id: u64,
    job: Job,
    reply: oneshot::Sender<AppResult<AdjustmentView>>,
}

#[derive(Default)]
struct Lane {
    /// A unit of work of this lane is in flight (or about to be).
    busy: bool,
    queue: VecDeque<Waiting>,
}

/// A lane's number.
type LaneId = usize;

/// The lanes of one process.
pub(crate) struct Combiner {
    max_group: usize,
    max_wait: Duration,
    /// How many lanes the keys are spread over.
    lane_count: usize,
    lanes: Mutex<HashMap<LaneId, Lane>>,
    next_id: AtomicU64,
}

impl Combiner {
    pub fn new(max_group: usize, max_wait: Duration, lane_count: usize) -> Arc<Self> {
        Arc::new(Self {
            max_group: max_group.max(1),
            max_wait,
            lane_count: lane_count.max(1),
            lanes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Whether requests are grouped at all (a maximum group of 1 turns it off).
    pub fn enabled(&self) -> bool {
        self.max_group > 1
    }

    /// The lane of (product, location): always the same one, spread by the ids' random bits.
    fn lane_of(&self, (product, location): (Uuid, Uuid)) -> LaneId {
        let mix = product.as_u64_pair().1 ^ location.as_u64_pair().1.rotate_left(32);
        usize::try_from(mix % self.lane_count as u64).unwrap_or(0)
    }

    fn lanes(&self) -> MutexGuard<'_, HashMap<LaneId, Lane>> {
        // Nothing in the map is left half-changed by a panic: go on with it.
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next group queued on `key` (callers that hung up are dropped unrun), or frees
    /// the lane when nobody waits.
    fn next_group(&self, key: LaneId) -> Option<Vec<Waiting>> {
        let mut lanes = self.lanes();
        let lane = lanes.get_mut(&key)?;
        lane.queue.retain(|w| !w.reply.is_closed());
        if lane.queue.is_empty() {
            lanes.remove(&key);
            return None;
        }
        let take = lane.queue.len().min(self.max_group);
        Some(lane.queue.drain(..take).collect())
    }

    /// Takes `id` out of lane `key`'s queue, if it is still there.
    fn leave(&self, key: LaneId, id: u64) -> Option<Waiting> {
        let mut lanes = self.lanes();
        let lane = lanes.get_mut(&key)?;
        let at = lane.queue.iter().position(|w| w.id == id)?;
        lane.queue.remove(at)
    }
}

/// Hands a lane on to its queue when the request that held it ends, however it ends.
struct HandOn<'a> {
    service: &'a StockService,
    combiner: &'a Arc<Combiner>,
    key: LaneId,
}

impl Drop for HandOn<'_> {
    fn drop(&mut self) {
        self.service.drain(self.combiner, self.key);
    }
}

/// Frees a lane whose draining task ended abnormally.
struct FreeOnPanic<'a> {
    combiner: &'a Combiner,
    key: LaneId,
    armed: bool,
}

impl Drop for FreeOnPanic<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.combiner.lanes().remove(&self.key);
        }
    }
}

impl StockService {
    /// An adjustment through its key's queue (see the module documentation).
    pub(crate) async fn adjust_grouped(
        &self,
        combiner: &Arc<Combiner>,
        job: Job,
    ) -> AppResult<AdjustmentView> {
        let key = combiner.lane_of((job.input.product_id, job.input.location_id));
        let id = combiner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, mut answer) = oneshot::channel();
        let job = {
            let mut lanes = combiner.lanes();
            let lane = lanes.entry(key).or_default();
            if lane.busy {
                lane.queue.push_back(Waiting { id, job, reply });
                None
            } else {
                lane.busy = true;
                Some(job)
            }
        };
        if let Some(job) = job {
            // Alone in the lane: run at once, then let whatever queued meanwhile go as groups —
            // also when this request is cancelled halfway (the guard hands the lane on).
            let _hand_on = HandOn {
                service: self,
                combiner,
                key,
            };
            return self.adjust_alone(&job).await;
        }
        let queued = Instant::now();
        let answer = match tokio::time::timeout(combiner.max_wait, &mut answer).await {
            Ok(answer) => answer,
            Err(_) => match combiner.leave(key, id) {
                // Waited long enough and still queued: run alone (the database serialises).
                Some(w) => {
                    metrics::counter!("depot_stock_group_fallbacks_total", "reason" => "wait")
                        .increment(1);
                    return self.adjust_alone(&w.job).await;
                }
                // Already in a group: its answer is on the way.
                None => answer.await,
            },
        };
        metrics::histogram!("depot_stock_group_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        answer.unwrap_or_else(|_| Err(AppError::internal("a stock group dropped a request")))
    }

    async fn adjust_alone(&self, job: &Job) -> AppResult<AdjustmentView> {
        retry_transient(|| self.adjust_once(job.actor, &job.input, &job.client)).await
    }

    /// Runs the groups queued on lane `key`, one after another, on a task of their own (the
    /// caller that held the lane answers its own client meanwhile); frees the lane when none
    /// is left.
    fn drain(&self, combiner: &Arc<Combiner>, key: LaneId) {
        let Some(first) = combiner.next_group(key) else {
            return;
        };
        let (this, combiner) = (self.clone(), combiner.clone());
        tokio::spawn(async move {
            // Should a group panic, the lane must not stay busy for good: free it (whoever
            // still waits learns that its group went away).
            let mut guard = FreeOnPanic {
                combiner: &combiner,
                key,
                armed: true,
            };
            let mut group = first;
            loop {
                this.answer_group(group).await;
                match combiner.next_group(key) {
                    Some(next) => group = next,
                    None => break,
                }
            }
            guard.armed = false;
        });
    }

    /// Applies `group` as one unit of work and answers each member; when the unit fails for a
    /// reason no member caused, each member runs alone.
    async fn answer_group(&self, mut group: Vec<Waiting>) {
        // A caller that hung up is not served: its request must not take effect behind its back.
        group.retain(|w| !w.reply.is_closed());
        if group.is_empty() {
            return;
        }
        metrics::histogram!("depot_stock_group_size").record(group.len() as f64);
        let jobs: Vec<&Job> = group.iter().map(|w| &w.job).collect();
        let outcome = if jobs.len() == 1 {
            Err(AppError::internal("a group of one runs alone"))
        } else {
            retry_transient(|| self.apply_group(&jobs)).await
        };
        match outcome {
            Ok(answers) => {
                for (w, answer) in group.into_iter().zip(answers) {
                    let _ = w.reply.send(answer);
                }
            }
            Err(error) => {
                if jobs.len() > 1 {
                    metrics::counter!(
                        "depot_stock_group_fallbacks_total",
                        "reason" => "group_failed"
                    )
                    .increment(1);
                    tracing::warn!(
                        code = error.code(),
                        size = jobs.len(),
                        "a stock group failed; its requests run alone"
                    );
                }
                for w in group.into_iter().filter(|w| !w.reply.is_closed()) {
                    let answer = self.adjust_alone(&w.job).await;
                    let _ = w.reply.send(answer);
                }
            }
        }
    }

    /// One unit of work applying every job in order. `Err` only for what is no job's own fault;
    /// a job's own refusal is its answer and the others go on.
    async fn apply_group(&self, jobs: &[&Job]) -> AppResult<Vec<AppResult<AdjustmentView>>> {
        let first = jobs
            .first()
            .ok_or_else(|| AppError::internal("an empty stock group"))?;
        // Each request's idempotency claim is marked only if that request takes effect.
        let client = ClientInfo {
            idempotency: None,
            ..first.client.clone()
        };
        let mut uow = self.writer.begin(first.actor, &client).await?;
        // The group's products, read at once; a missing one is the answer of the jobs that
        // name it.
        let ids: BTreeSet<Uuid> = jobs.iter().map(|job| job.input.product_id).collect();
        let ids: Vec<Uuid> = ids.into_iter().collect();
        let products = stock_products(uow.tx(), &ids, self.default_policy).await?;
        // Every existing level the group touches, locked first in the one global order
        // (product, then location) every stock change follows, and their open batches — one
        // statement each. A level an addition creates is created and locked when that request
        // applies; should that meet another unit's locks in a circle, the database refuses one
        // of them and the unit runs again (`retry_transient`), or its requests alone.
        let mut ledger = Ledger::new(adjustment_cause(&first.input));
        let keys = jobs.iter().filter_map(|job| {
            let product = products.get(&job.input.product_id)?;
            Some((product, job.input.location_id))
        });
        ledger.lock_existing_many(&uow, keys).await?;
        let mut done = Vec::with_capacity(jobs.len());
        for job in jobs {
            ledger.act_for(
                job.actor,
                job.client.request_id.clone(),
                adjustment_cause(&job.input),
            );
            let start = ledger.movement_count();
            let applied = match products.get(&job.input.product_id) {
                Some(product) => {
                    self.apply_adjustment(&uow, &mut ledger, product, &job.input)
                        .await
                }
                // Its own refusal, told as a lone request would be.
                _ => Err(missing_product("product_id")),
            };
            match applied {
                Ok(()) => {
                    uow.answers_for(&job.client);
                    let level = ledger
                        .level_now(job.input.product_id, job.input.location_id)
                        .ok_or_else(|| AppError::internal("adjusted without a level"))?;
                    done.push(Ok((start..ledger.movement_count(), level)));
                }
                Err(e) if own_fault(&e) => done.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        let (movements, _) = ledger.finish_quietly(&mut uow, self.warning_days).await?;
        let now = uow.now();
        let mut answers = Vec::with_capacity(done.len());
        for (job, outcome) in jobs.iter().zip(done) {
            match outcome {
                Ok((range, mut level)) => {
                    let mine = &movements[range];
                    let change: i64 = mine.iter().map(|m| m.quantity).sum();
                    level.updated_at = now;
                    let kinds = mine.iter().map(|m| m.kind.as_str()).collect();
                    // Each request's event continues that request's own trace.
                    let event = events::stock_changed(&level, change, &kinds, None, now)
                        .traced(job.client.traceparent.clone());
                    uow.emit(&event);
                    answers.push(Ok(AdjustmentView {
                        movements: mine.iter().cloned().map(views::movement).collect(),
                        level: views::level(level),
                    }));
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        if let Err(e) = uow.commit().await {
            // A claim lost meanwhile is found before COMMIT and rolls the unit back: nothing
            // took effect, so each request runs alone (the one whose claim was lost learns it).
            if e.error_code() == ErrorCode::IdempotencyInProgress {
                return Err(e);
            }
            // The commit may have taken effect before the error reached us: running the
            // requests again could apply them twice, so each learns of the failure instead
            // (as a lone request would).
            tracing::error!(code = e.code(), cause = %e.cause_chain(), "a stock group's commit failed");
            return Ok(answers
                .iter()
                .map(|_| Err(AppError::new(e.error_code(), e.message().to_owned())))
                .collect());
        }
        Ok(answers)
    }
}

/// A refusal that belongs to one request (bad input, not enough stock, an archived product…),
/// as opposed to trouble with the unit of work itself.
fn own_fault(e: &AppError) -> bool {
    matches!(
        e.category(),
        ErrorCategory::Validation | ErrorCategory::Conflict | ErrorCategory::NotFound
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use depot_domain::stock::AdjustmentReason;

    fn waiting(
        combiner: &Combiner,
        key: (Uuid, Uuid),
    ) -> oneshot::Receiver<AppResult<AdjustmentView>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            actor: Actor::System("test"),
            input: Adjustment {
                product_id: key.0,
                location_id: key.1,
                quantity: serde_json::Number::from(-1),
                reason: AdjustmentReason::Damaged,
                lot: None,
                expiry: None,
                unit_cost: None,
                currency: None,
                note: None,
                allow_expired: false,
            },
            client: ClientInfo::default(),
        };
        let mut lanes = combiner.lanes();
        let lane = lanes.entry(combiner.lane_of(key)).or_default();
        lane.busy = true;
        let id = combiner.next_id.fetch_add(1, Ordering::Relaxed);
        lane.queue.push_back(Waiting { id, job, reply });
        answer
    }

    #[test]
    fn groups_are_bounded_skip_callers_that_hung_up_and_free_the_key_when_empty() {
        let combiner = Combiner::new(2, Duration::from_millis(10), 4);
        let key = (Uuid::from_u128(1), Uuid::from_u128(2));
        let _a = waiting(&combiner, key);
        let gone = waiting(&combiner, key);
        let _c = waiting(&combiner, key);
        let _d = waiting(&combiner, key);
        drop(gone);
        let key = combiner.lane_of(key);
        let first = combiner.next_group(key).expect("a group");
        assert_eq!(first.len(), 2, "at most the maximum");
        assert_eq!(
            first.iter().map(|w| w.id).collect::<Vec<_>>(),
            [0, 2],
            "in arrival order, the hung-up one skipped"
        );
        let second = combiner.next_group(key).expect("the rest");
        assert_eq!(second.iter().map(|w| w.id).collect::<Vec<_>>(), [3]);
        assert!(combiner.next_group(key).is_none());
        assert!(
            combiner.lanes().get(&key).is_none(),
            "an empty queue frees the key"
        );
    }

    #[test]
    fn a_draining_task_that_ends_abnormally_frees_its_key() {
        let combiner = Combiner::new(8, Duration::from_millis(10), 4);
        let key = (Uuid::from_u128(3), Uuid::from_u128(4));
        let _waiter = waiting(&combiner, key);
        let key = combiner.lane_of(key);
        drop(FreeOnPanic {
            combiner: &combiner,
            key,
            armed: false,
        });
        assert!(
            combiner.lanes().get(&key).is_some(),
            "a normal end leaves the lane to next_group"
        );
        drop(FreeOnPanic {
            combiner: &combiner,
            key,
            armed: true,
        });
        assert!(
            combiner.lanes().get(&key).is_none(),
            "an abnormal end frees the key"
        );
    }

    #[test]
    fn a_key_keeps_its_lane_and_keys_spread_over_every_lane() {
        let combiner = Combiner::new(8, Duration::from_millis(10), 8);
        let keys: Vec<(Uuid, Uuid)> = (0..1_000)
            .map(|_| (Uuid::now_v7(), Uuid::now_v7()))
            .collect();
        let mut per_lane = [0usize; 8];
        for &key in &keys {
            let lane = combiner.lane_of(key);
            assert_eq!(lane, combiner.lane_of(key), "always the same lane");
            per_lane[lane] += 1;
        }
        assert!(
            per_lane.iter().all(|&n| n > 60),
            "1,000 keys over 8 lanes: {per_lane:?}"
        );
        let one = Combiner::new(8, Duration::from_millis(10), 1);
        assert!(keys.iter().all(|&k| one.lane_of(k) == 0));
    }

    #[test]
    fn with_one_lane_requests_on_different_keys_queue_into_one_group() {
        let combiner = Combiner::new(8, Duration::from_millis(10), 1);
        let a = (Uuid::from_u128(5), Uuid::from_u128(6));
        let b = (Uuid::from_u128(7), Uuid::from_u128(8));
        let _first = waiting(&combiner, a);
        let _second = waiting(&combiner, b);
        let group = combiner.next_group(combiner.lane_of(a)).expect("a group");
        let keys: Vec<_> = group
            .iter()
            .map(|w| (w.job.input.product_id, w.job.input.location_id))
            .collect();
        assert_eq!(keys, [a, b], "both keys, in arrival order");
    }
}
