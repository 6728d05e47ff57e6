//! Sales orders and manual payments: the state machines.

use chrono::{DateTime, Utc};
use uuid::Uuid;

crate::string_enum! {
    /// `sales_orders.state`.
    pub enum SoState {
        Draft = "draft",
        Confirmed = "confirmed",
        Paid = "paid",
        Fulfilled = "fulfilled",
        Returned = "returned",
        Cancelled = "cancelled",
    }
}

crate::string_enum! {
    /// What a transition endpoint (or the reservation expiry) does to a sales order.
    pub enum SoAction {
        Confirm = "confirm",
        Pay = "pay",
        Fulfil = "fulfil",
        Return = "return",
        Cancel = "cancel",
        Expire = "expire",
    }
}

impl SoState {
    /// Whether `action` may start from this state. Fulfilment needs confirmed stock (paid or
    /// not: delivery before payment is common); a payment is taken while something is due on
    /// a confirmed or fulfilled order; returns follow fulfilment.
    pub fn allows(self, action: SoAction) -> bool {
        use SoAction as A;
        use SoState as S;
        matches!(
            (self, action),
            (S::Draft, A::Confirm)
                | (S::Confirmed | S::Fulfilled, A::Pay)
                | (S::Confirmed | S::Paid, A::Fulfil)
                | (S::Fulfilled, A::Return)
                | (S::Draft | S::Confirmed | S::Paid, A::Cancel)
                | (S::Confirmed, A::Expire)
        )
    }

    /// Whether the order holds reservations in this state.
    pub fn reserves(self) -> bool {
        matches!(self, SoState::Confirmed | SoState::Paid)
    }

    /// Lines (and the head) may be edited only while drafting.
    pub fn editable(self) -> bool {
        self == SoState::Draft
    }
}

crate::string_enum! {
    /// `payments.method`. The gateway (`sslcommerz`) arrives with the payments capability.
    pub enum PaymentMethod {
        Cash = "cash",
        BankTransfer = "bank_transfer",
        CardTerminal = "card_terminal",
        Sslcommerz = "sslcommerz",
    }
}

impl PaymentMethod {
    /// Recorded by hand (money already received), as opposed to a gateway session.
    pub fn is_manual(self) -> bool {
        !matches!(self, PaymentMethod::Sslcommerz)
    }
}

crate::string_enum! {
    /// `payments.state`.
    pub enum PaymentState {
        Initiated = "initiated",
        Pending = "pending",
        Paid = "paid",
        Failed = "failed",
        Cancelled = "cancelled",
        Expired = "expired",
        Review = "review",
        RefundPending = "refund_pending",
        Refunded = "refunded",
    }
}

impl PaymentState {
    /// The states in which a payment is *active*: at most one per (order, method).
    pub const ACTIVE: &'static [PaymentState] = &[
        PaymentState::Initiated,
        PaymentState::Pending,
        PaymentState::Paid,
        PaymentState::Review,
        PaymentState::RefundPending,
    ];

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

crate::string_enum! {
    /// `reservations.status`: stock held for an order line from one batch, until it is
    /// fulfilled (issued) or released (cancelled, expired).
    pub enum ReservationStatus { Active = "active", Released = "released", Fulfilled = "fulfilled" }
}

/// Filters of the sales-order list.
#[derive(Debug, Clone, Copy, Default)]
pub struct SalesOrderFilter {
    pub state: Option<SoState>,
    pub customer_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_held_from_confirmation_until_fulfilment_or_cancellation() {
        for s in SoState::ALL {
            assert_eq!(
                s.reserves(),
                s.allows(SoAction::Fulfil),
                "{s}: what can be fulfilled is exactly what holds reservations"
            );
        }
    }

    #[test]
    fn final_states_allow_nothing_but_what_they_must() {
        for a in SoAction::ALL {
            assert!(!SoState::Cancelled.allows(*a), "cancelled {a}");
            assert!(!SoState::Returned.allows(*a), "returned {a}");
        }
        assert!(!SoState::Draft.allows(SoAction::Fulfil));
        assert!(!SoState::Fulfilled.allows(SoAction::Cancel));
        assert!(SoState::Paid.allows(SoAction::Cancel));
    }

    #[test]
    fn active_payments_are_the_ones_in_flight_or_paid() {
        let active: Vec<&str> = PaymentState::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| s.as_str())
            .collect();
        // A payment being refunded is paid money (it returns to `paid` when a part is
        // refunded), so it keeps its place: two could otherwise be paid at once.
        assert_eq!(
            active,
            ["initiated", "pending", "paid", "review", "refund_pending"]
        );
        assert!(PaymentMethod::Cash.is_manual());
        assert!(!PaymentMethod::Sslcommerz.is_manual());
    }
}
