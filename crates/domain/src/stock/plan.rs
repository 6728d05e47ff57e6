//! The depletion planner: which batches an issue takes from, and how much from each.
//!
//! Pure: it sees the batches of one product at one location as they are now (locked by the
//! caller) and answers a plan or the shortfall. It never takes more than a batch holds, takes
//! in policy order, skips expired batches unless allowed, and the takes sum to the request.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{DepletionPolicy, Quantity};

/// A batch as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStock {
    pub id: Uuid,
    pub expiry: Option<NaiveDate>,
    pub received_at: DateTime<Utc>,
    /// What may be taken (on hand, never negative).
    pub quantity: Quantity,
}

impl BatchStock {
    /// Expired on `today`: its expiry date has passed (a batch is good through its expiry day).
    pub fn is_expired(&self, today: NaiveDate) -> bool {
        self.expiry.is_some_and(|e| e < today)
    }
}

/// One batch's part of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub batch: Uuid,
    pub quantity: Quantity,
}

/// The batches an issue takes from, in the order taken.
pub type Plan = Vec<Take>;

/// Not enough eligible stock: what could have been taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub available: Quantity,
}

/// The order `policy` takes batches in (total: ties end on the id).
pub fn policy_order(policy: DepletionPolicy, a: &BatchStock, b: &BatchStock) -> Ordering {
    match policy {
        DepletionPolicy::Fefo => match (a.expiry, b.expiry) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
        .then(a.received_at.cmp(&b.received_at))
        .then(a.id.cmp(&b.id)),
        DepletionPolicy::Fifo => a.received_at.cmp(&b.received_at).then(a.id.cmp(&b.id)),
        DepletionPolicy::Lifo => b.received_at.cmp(&a.received_at).then(b.id.cmp(&a.id)),
    }
}

/// Plans taking `wanted` (> 0) from `batches` by `policy`. Expired batches (on `today`) are
/// skipped unless `allow_expired`; empty ones are ignored.
pub fn plan_issue(
    batches: &[BatchStock],
    wanted: Quantity,
    policy: DepletionPolicy,
    today: NaiveDate,
    allow_expired: bool,
) -> Result<Plan, Shortfall> {
    let mut eligible: Vec<&BatchStock> = batches
        .iter()
        .filter(|b| b.quantity.is_positive())
        .filter(|b| allow_expired || !b.is_expired(today))
        .collect();
    eligible.sort_by(|a, b| policy_order(policy, a, b));
    let available = eligible
        .iter()
        .try_fold(Quantity::ZERO, |sum, b| sum.checked_add(b.quantity))
        .unwrap_or(Quantity::from_thousandths(i64::MAX));
    if !wanted.is_positive() || available < wanted {
        return Err(Shortfall { available });
    }
    let mut left = wanted;
    let mut plan = Vec::new();
    for batch in eligible {
        if left.is_zero() {
            break;
        }
        let take = batch.quantity.min(left);
        plan.push(Take {
            batch: batch.id,
            quantity: take,
        });
        left = left.checked_sub(take).unwrap_or(Quantity::ZERO);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, d).unwrap_or_default()
    }

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_760_000_000 + h * 3_600, 0).unwrap_or_default()
    }

    fn batch(n: u128, expiry: Option<u32>, received_hour: i64, units: i64) -> BatchStock {
        BatchStock {
            id: Uuid::from_u128(n),
            expiry: expiry.map(day),
            received_at: at(received_hour),
            quantity: Quantity::units(units),
        }
    }

    fn ids(plan: &Plan) -> Vec<(u128, i64)> {
        plan.iter()
            .map(|t| (t.batch.as_u128(), t.quantity.thousandths() / 1_000))
            .collect()
    }

    #[test]
    fn fefo_spans_batches_earliest_expiry_first_and_no_expiry_last() {
        let batches = [
            batch(1, None, 0, 10),
            batch(2, Some(20), 1, 5),
            batch(3, Some(10), 2, 5),
            batch(4, Some(15), 3, 5),
        ];
        let plan = plan_issue(
            &batches,
            Quantity::units(12),
            DepletionPolicy::Fefo,
            day(1),
            false,
        );
        assert_eq!(plan.map(|p| ids(&p)), Ok(vec![(3, 5), (4, 5), (2, 2)]));
        let all = plan_issue(
            &batches,
            Quantity::units(25),
            DepletionPolicy::Fefo,
            day(1),
            false,
        );
        assert_eq!(
            all.map(|p| ids(&p)),
            Ok(vec![(3, 5), (4, 5), (2, 5), (1, 10)])
        );
    }

    #[test]
    fn fifo_and_lifo_follow_receipt() {
        let batches = [
            batch(1, None, 5, 3),
            batch(2, None, 1, 3),
            batch(3, None, 9, 3),
        ];
        let fifo = plan_issue(
            &batches,
            Quantity::units(4),
            DepletionPolicy::Fifo,
            day(1),
            false,
        );
        assert_eq!(fifo.map(|p| ids(&p)), Ok(vec![(2, 3), (1, 1)]));
        let lifo = plan_issue(
            &batches,
            Quantity::units(4),
            DepletionPolicy::Lifo,
            day(1),
            false,
        );
        assert_eq!(lifo.map(|p| ids(&p)), Ok(vec![(3, 3), (1, 1)]));
    }

    #[test]
    fn expired_batches_are_skipped_unless_allowed_and_short_issues_say_what_is_available() {
        let batches = [batch(1, Some(1), 0, 4), batch(2, Some(30), 1, 2)];
        let refused = plan_issue(
            &batches,
            Quantity::units(3),
            DepletionPolicy::Fefo,
            day(2),
            false,
        );
        assert_eq!(
            refused,
            Err(Shortfall {
                available: Quantity::units(2)
            })
        );
        let allowed = plan_issue(
            &batches,
            Quantity::units(3),
            DepletionPolicy::Fefo,
            day(2),
            true,
        );
        assert_eq!(allowed.map(|p| ids(&p)), Ok(vec![(1, 3)]));
        // Good through its expiry day.
        let on_the_day = plan_issue(
            &batches,
            Quantity::units(1),
            DepletionPolicy::Fefo,
            day(1),
            false,
        );
        assert_eq!(on_the_day.map(|p| ids(&p)), Ok(vec![(1, 1)]));
    }

    fn arb_batches() -> impl Strategy<Value = Vec<BatchStock>> {
        prop::collection::vec((prop::option::of(1u32..=28), 0i64..48, 0i64..5_000), 0..12).prop_map(
            |rows| {
                rows.into_iter()
                    .enumerate()
                    .map(|(i, (expiry, hour, thousandths))| BatchStock {
                        id: Uuid::from_u128(i as u128 + 1),
                        expiry: expiry.map(day),
                        received_at: at(hour),
                        quantity: Quantity::from_thousandths(thousandths),
                    })
                    .collect()
            },
        )
    }

    fn arb_policy() -> impl Strategy<Value = DepletionPolicy> {
        prop::sample::select(DepletionPolicy::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn a_plan_never_overdraws_takes_in_order_and_sums_to_the_request(
            batches in arb_batches(),
            wanted in 1i64..40_000,
            policy in arb_policy(),
            today in 1u32..=28,
            allow_expired in any::<bool>(),
        ) {
            let today = day(today);
            let wanted = Quantity::from_thousandths(wanted);
            let eligible: Vec<&BatchStock> = batches
                .iter()
                .filter(|b| b.quantity.is_positive() && (allow_expired || !b.is_expired(today)))
                .collect();
            let available: i64 = eligible.iter().map(|b| b.quantity.thousandths()).sum();
            match plan_issue(&batches, wanted, policy, today, allow_expired) {
                Err(short) => {
                    prop_assert!(available < wanted.thousandths());
                    prop_assert_eq!(short.available.thousandths(), available);
                }
                Ok(plan) => {
                    let total: i64 = plan.iter().map(|t| t.quantity.thousandths()).sum();
                    prop_assert_eq!(total, wanted.thousandths());
                    for take in &plan {
                        let from = eligible.iter().find(|b| b.id == take.batch);
                        prop_assert!(from.is_some(), "only eligible batches");
                        prop_assert!(take.quantity.is_positive());
                        prop_assert!(from.is_some_and(|b| take.quantity <= b.quantity));
                    }
                    // In policy order, and every batch before the last is emptied.
                    for pair in plan.windows(2) {
                        let a = eligible.iter().find(|b| b.id == pair[0].batch);
                        let b = eligible.iter().find(|b| b.id == pair[1].batch);
                        if let (Some(a), Some(b)) = (a, b) {
                            prop_assert_eq!(policy_order(policy, a, b), Ordering::Less);
                            prop_assert_eq!(pair[0].quantity, a.quantity);
                        }
                    }
                    // No skipped eligible batch comes before a used one.
                    if let Some(last) = plan.last().and_then(|t| eligible.iter().find(|b| b.id == t.batch)) {
                        for b in &eligible {
                            if policy_order(policy, b, last) == Ordering::Less {
                                prop_assert!(plan.iter().any(|t| t.batch == b.id));
                            }
                        }
                    }
                }
            }
        }
    }
}
