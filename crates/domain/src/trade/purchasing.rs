//! Purchase orders: the state machine and the over-receipt rule.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::stock::Quantity;

crate::string_enum! {
    /// `purchase_orders.state`.
    pub enum PoState {
        Draft = "draft",
        Submitted = "submitted",
        Approved = "approved",
        Sent = "sent",
        PartiallyReceived = "partially_received",
        Received = "received",
        Closed = "closed",
        Cancelled = "cancelled",
    }
}

crate::string_enum! {
    /// What a transition endpoint does to a purchase order.
    pub enum PoAction {
        Submit = "submit",
        Approve = "approve",
        Send = "send",
        Receive = "receive",
        Cancel = "cancel",
        Close = "close",
    }
}

impl PoState {
    /// Whether `action` may start from this state. A received order still takes a receipt
    /// within the over-receipt tolerance (the receipt rule then decides).
    pub fn allows(self, action: PoAction) -> bool {
        use PoAction as A;
        use PoState as S;
        matches!(
            (self, action),
            (S::Draft, A::Submit)
                | (S::Submitted, A::Approve)
                | (S::Approved, A::Send)
                | (S::Sent | S::PartiallyReceived | S::Received, A::Receive)
                | (S::Draft | S::Submitted | S::Approved, A::Cancel)
                | (S::PartiallyReceived | S::Received, A::Close)
        )
    }

    /// The state `action` leads to from here (`None` when it may not start here). A receipt
    /// leads to `received` once every line is complete, else to `partially_received`.
    pub fn after(self, action: PoAction, complete: bool) -> Option<PoState> {
        if !self.allows(action) {
            return None;
        }
        Some(match action {
            PoAction::Submit => PoState::Submitted,
            PoAction::Approve => PoState::Approved,
            PoAction::Send => PoState::Sent,
            PoAction::Receive if complete => PoState::Received,
            PoAction::Receive => PoState::PartiallyReceived,
            PoAction::Cancel => PoState::Cancelled,
            PoAction::Close => PoState::Closed,
        })
    }

    /// Lines (and the head) may be edited only while drafting.
    pub fn editable(self) -> bool {
        self == PoState::Draft
    }
}

/// The most that may be received against `ordered` with a tolerance of `percent` (rounded
/// down to a thousandth).
pub fn receipt_allowance(ordered: Quantity, percent: u32) -> Quantity {
    let extra = i128::from(ordered.thousandths()) * i128::from(percent) / 100;
    let total = i128::from(ordered.thousandths()) + extra;
    Quantity::from_thousandths(i64::try_from(total).unwrap_or(i64::MAX))
}

/// Filters of the supplier list.
#[derive(Debug, Clone, Default)]
pub struct SupplierFilter {
    /// Part of the name or email (case-insensitive, literal).
    pub search: Option<String>,
    pub active: Option<bool>,
}

/// Filters of the purchase-order list.
#[derive(Debug, Clone, Copy, Default)]
pub struct PurchaseOrderFilter {
    pub state: Option<PoState>,
    pub supplier_id: Option<Uuid>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_runs_draft_to_closed() {
        let mut s = PoState::Draft;
        for (action, complete, next) in [
            (PoAction::Submit, false, PoState::Submitted),
            (PoAction::Approve, false, PoState::Approved),
            (PoAction::Send, false, PoState::Sent),
            (PoAction::Receive, false, PoState::PartiallyReceived),
            (PoAction::Receive, true, PoState::Received),
            (PoAction::Close, false, PoState::Closed),
        ] {
            s = s.after(action, complete).expect("allowed");
            assert_eq!(s, next);
        }
    }

    #[test]
    fn only_draft_submitted_and_approved_can_be_cancelled() {
        for s in PoState::ALL {
            let can = s.allows(PoAction::Cancel);
            assert_eq!(
                can,
                matches!(s, PoState::Draft | PoState::Submitted | PoState::Approved),
                "{s}"
            );
        }
    }

    #[test]
    fn final_states_allow_nothing() {
        for s in [PoState::Closed, PoState::Cancelled] {
            for a in PoAction::ALL {
                assert!(!s.allows(*a), "{s} {a}");
            }
        }
        assert!(!PoState::Draft.allows(PoAction::Approve));
        assert!(!PoState::Approved.allows(PoAction::Receive));
        assert!(PoState::Received.allows(PoAction::Receive));
    }

    #[test]
    fn the_allowance_adds_the_tolerance_rounded_down() {
        assert_eq!(
            receipt_allowance(Quantity::units(100), 0),
            Quantity::units(100)
        );
        assert_eq!(
            receipt_allowance(Quantity::units(100), 5),
            Quantity::units(105)
        );
        assert_eq!(
            receipt_allowance(Quantity::units(10), 5),
            Quantity::from_thousandths(10_500)
        );
        assert_eq!(
            receipt_allowance(Quantity::from_thousandths(1), 50),
            Quantity::from_thousandths(1)
        );
    }
}
