//! Alert rules, pure: which conditions hold for a level or a batch, and what a change of stock
//! does to the alert of each condition.
//!
//! An alert belongs to one (kind, product, location, batch) — its *subject* — and at most one
//! is unresolved per subject. A change raises an alert only when its condition starts to hold
//! (a crossing), re-triggers the unresolved one while it keeps holding, and resolves it when the
//! condition clears; so repeated changes never open duplicates, and an alert someone resolved
//! by hand while the condition still held does not come back until the condition clears and
//! holds again.

use chrono::{Days, NaiveDate};
use uuid::Uuid;

use super::Quantity;

crate::string_enum! {
    /// `alerts.kind`.
    pub enum AlertKind {
        /// On hand at or below the product's reorder point.
        LowStock = "low_stock",
        /// Nothing on hand.
        OutOfStock = "out_of_stock",
        /// A batch with stock expires within the warning window.
        Expiring = "expiring",
        /// A batch with stock is past its expiry date.
        Expired = "expired",
    }
}

crate::string_enum! {
    /// `alerts.status`: open → acknowledged (someone is on it) → resolved (by hand, or by
    /// itself when its condition clears).
    pub enum AlertStatus { Open = "open", Acknowledged = "acknowledged", Resolved = "resolved" }
}

/// The alert kinds a (product, location) level can raise.
pub const LEVEL_KINDS: [AlertKind; 2] = [AlertKind::LowStock, AlertKind::OutOfStock];

/// Whether a level kind's condition holds for `on_hand`.
pub fn level_holds(kind: AlertKind, on_hand: Quantity, reorder_point: Option<Quantity>) -> bool {
    match kind {
        AlertKind::LowStock => reorder_point.is_some_and(|point| on_hand <= point),
        AlertKind::OutOfStock => on_hand.is_zero(),
        AlertKind::Expiring | AlertKind::Expired => false,
    }
}

/// What one change does to the alert of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The condition started to hold: open an alert (or re-trigger one still unresolved).
    Raise,
    /// It held before and still does: re-trigger the unresolved alert, if there is one.
    Retrigger,
    /// It held and no longer does: resolve the unresolved alert by itself.
    Clear,
    /// It did not hold and still does not.
    Quiet,
}

pub fn transition(held_before: bool, holds_after: bool) -> Transition {
    match (held_before, holds_after) {
        (false, true) => Transition::Raise,
        (true, true) => Transition::Retrigger,
        (true, false) => Transition::Clear,
        (false, false) => Transition::Quiet,
    }
}

/// The batch condition on `today`: `Expired` once its expiry day has passed, `Expiring` when it
/// expires within `warning_days` from today, none for an empty batch or one without expiry.
pub fn batch_condition(
    expiry: Option<NaiveDate>,
    quantity: Quantity,
    today: NaiveDate,
    warning_days: u32,
) -> Option<AlertKind> {
    let expiry = expiry.filter(|_| quantity.is_positive())?;
    if expiry < today {
        Some(AlertKind::Expired)
    } else if expiry <= expiring_horizon(today, warning_days) {
        Some(AlertKind::Expiring)
    } else {
        None
    }
}

/// The last day a batch may expire on and still count as `expiring` on `today`.
pub fn expiring_horizon(today: NaiveDate, warning_days: u32) -> NaiveDate {
    today
        .checked_add_days(Days::new(u64::from(warning_days)))
        .unwrap_or(NaiveDate::MAX)
}

/// The subject an alert is unique for (with its kind) while unresolved.
pub fn subject(product: Uuid, location: Uuid, batch: Option<Uuid>) -> String {
    match batch {
        Some(batch) => format!("{product}/{location}/{batch}"),
        None => format!("{product}/{location}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default()
    }

    #[test]
    fn low_stock_holds_at_and_below_the_reorder_point_only_when_one_is_set() {
        let point = Some(Quantity::units(10));
        assert!(level_holds(AlertKind::LowStock, Quantity::units(10), point));
        assert!(level_holds(AlertKind::LowStock, Quantity::ZERO, point));
        assert!(!level_holds(
            AlertKind::LowStock,
            Quantity::units(11),
            point
        ));
        assert!(!level_holds(AlertKind::LowStock, Quantity::ZERO, None));
        assert!(level_holds(AlertKind::OutOfStock, Quantity::ZERO, None));
        assert!(!level_holds(
            AlertKind::OutOfStock,
            Quantity::from_thousandths(1),
            None
        ));
    }

    #[test]
    fn only_a_crossing_raises_and_only_a_clearing_resolves() {
        assert_eq!(transition(false, true), Transition::Raise);
        assert_eq!(transition(true, true), Transition::Retrigger);
        assert_eq!(transition(true, false), Transition::Clear);
        assert_eq!(transition(false, false), Transition::Quiet);
    }

    #[test]
    fn a_batch_is_good_through_its_expiry_day_and_expiring_within_the_window() {
        let some = Quantity::units(1);
        assert_eq!(
            batch_condition(Some(day(10)), some, day(10), 7),
            Some(AlertKind::Expiring)
        );
        assert_eq!(
            batch_condition(Some(day(9)), some, day(10), 7),
            Some(AlertKind::Expired)
        );
        assert_eq!(
            batch_condition(Some(day(17)), some, day(10), 7),
            Some(AlertKind::Expiring)
        );
        assert_eq!(batch_condition(Some(day(18)), some, day(10), 7), None);
        assert_eq!(batch_condition(None, some, day(10), 7), None);
        assert_eq!(
            batch_condition(Some(day(1)), Quantity::ZERO, day(10), 7),
            None
        );
        assert_eq!(expiring_horizon(day(10), 7), day(17));
    }

    #[test]
    fn subjects_tell_levels_and_batches_apart() {
        let (p, l, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert_ne!(subject(p, l, None), subject(p, l, Some(b)));
        assert_eq!(subject(p, l, Some(b)), subject(p, l, Some(b)));
    }
}
