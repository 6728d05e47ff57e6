//! Payments: the state machine, gateway amounts as exact decimals, transaction ids, and what
//! makes a gateway's word about a payment acceptable.
//!
//! ```text
//! initiated → pending → paid | failed | cancelled | expired | review
//! initiated → failed | cancelled | expired        (the session never opened, or was abandoned)
//! review    → paid | cancelled
//! paid      → refund_pending → refunded           (all of it refunded)
//!                            → paid               (a part refunded, or the refund refused)
//! ```
//!
//! `failed`, `cancelled`, `expired` and `refunded` are final: nothing leaves them (a late
//! `FAILED` for a paid payment is ignored).

use uuid::Uuid;

pub use super::sales::PaymentState;

impl PaymentState {
    /// Whether nothing can follow this state.
    pub fn is_final(self) -> bool {
        use PaymentState as S;
        matches!(self, S::Failed | S::Cancelled | S::Expired | S::Refunded)
    }

    /// Whether a payment may move from this state to `to`.
    pub fn can_become(self, to: PaymentState) -> bool {
        use PaymentState as S;
        matches!(
            (self, to),
            (
                S::Initiated,
                S::Pending | S::Failed | S::Cancelled | S::Expired
            ) | (
                S::Pending,
                S::Paid | S::Failed | S::Cancelled | S::Expired | S::Review
            ) | (S::Review, S::Paid | S::Cancelled)
                | (S::Paid, S::RefundPending)
                | (S::RefundPending, S::Refunded | S::Paid)
        )
    }

    /// Waiting for the gateway's word (the recovery job asks after these).
    pub fn awaits_gateway(self) -> bool {
        matches!(self, PaymentState::Initiated | PaymentState::Pending)
    }
}

crate::string_enum! {
    /// `refunds.state`.
    pub enum RefundState { Pending = "pending", Refunded = "refunded", Failed = "failed" }
}

crate::string_enum! {
    /// Why a gateway's report of a payment was not believed (`payments.flag`): the payment is
    /// not paid and waits for a person.
    pub enum PaymentFlag {
        /// The validation answer named another transaction.
        TranIdMismatch = "tran_id_mismatch",
        /// The validated amount is not what the payment asked for.
        AmountMismatch = "amount_mismatch",
        /// The validated currency is not the payment's.
        CurrencyMismatch = "currency_mismatch",
        /// Money was taken for an order that can no longer be paid (cancelled meanwhile).
        OrderNotPayable = "order_not_payable",
        /// The gateway vouched for money taken after the payment had ended (failed,
        /// cancelled, expired): a person must refund or re-book it.
        PaidAfterEnd = "paid_after_end",
    }
}

impl PaymentFlag {
    /// Whether the gateway's numbers disagreed with ours (such a payment is never approved).
    pub fn is_mismatch(self) -> bool {
        matches!(
            self,
            PaymentFlag::TranIdMismatch
                | PaymentFlag::AmountMismatch
                | PaymentFlag::CurrencyMismatch
        )
    }
}

/// The most characters a gateway transaction id may have (SSLCommerz: 30).
pub const TRAN_ID_MAX: usize = 30;

/// Our transaction id for a payment: `D` and the payment id's 128 bits in Crockford base32
/// (27 characters, unique because the id is, never empty).
pub fn tran_id(payment: Uuid) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut n = payment.as_u128();
    let mut digits = [b'0'; 26];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
    let mut id = String::with_capacity(27);
    id.push('D');
    id.extend(digits.iter().map(|&b| b as char));
    id
}

/// Minor units as the gateway writes amounts: two decimals (`1234` → `"12.34"`).
pub fn decimal_amount(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A gateway's decimal amount in minor units, exactly: `"12.34"`, `"12.3"`, `"12"` and
/// `"12.3400"` are 1234 (zeros past the second decimal are only formatting); `"12.345"`, a
/// sign, an exponent or anything else is `None` — never rounded.
pub fn parse_decimal_amount(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let (cents, rest) = fraction.split_at(fraction.len().min(2));
    if rest.bytes().any(|b| b != b'0') {
        return None;
    }
    let cents: i64 = format!("{cents:0<2}").parse().ok()?;
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

/// What the gateway's validation said about a transaction, as far as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated<'a> {
    pub tran_id: &'a str,
    /// As the gateway wrote it (`"100.00"`).
    pub amount: &'a str,
    pub currency: &'a str,
    /// Anything but risk level 0 (risky, or not said): held for review.
    pub risky: bool,
}

/// What a validated transaction does to the payment that asked for `amount` `currency` under
/// `tran_id` — compared with what WE stored, never with what was posted to us.
pub fn judge(
    v: &Validated<'_>,
    tran_id: &str,
    amount: i64,
    currency: &str,
) -> Result<PaymentState, PaymentFlag> {
    if v.tran_id != tran_id {
        return Err(PaymentFlag::TranIdMismatch);
    }
    if parse_decimal_amount(v.amount) != Some(amount) {
        return Err(PaymentFlag::AmountMismatch);
    }
    if v.currency != currency {
        return Err(PaymentFlag::CurrencyMismatch);
    }
    Ok(if v.risky {
        PaymentState::Review
    } else {
        PaymentState::Paid
    })
}

/// Which payments a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentFilter {
    pub sales_order_id: Option<Uuid>,
    pub state: Option<PaymentState>,
    pub method: Option<super::PaymentMethod>,
    /// Only payments of orders this user owns (a sales user's view).
    pub owner_id: Option<Uuid>,
}

/// How much of a payment of `paid` may still be refunded when `refunded` already was and
/// `pending` is on its way.
pub fn refundable(paid: i64, refunded: i64, pending: i64) -> i64 {
    (paid - refunded - pending).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentState as S;
    use proptest::prelude::*;

    #[test]
    fn final_states_lead_nowhere() {
        for from in S::ALL.iter().copied().filter(|s| s.is_final()) {
            for &to in S::ALL {
                assert!(!from.can_become(to), "{from} → {to}");
            }
        }
        assert!(!S::Paid.can_become(S::Failed), "a late FAILED never unpays");
        assert!(S::Pending.can_become(S::Review) && S::Review.can_become(S::Paid));
        assert!(!S::Review.can_become(S::Failed));
        assert!(S::RefundPending.can_become(S::Paid), "a part refunded");
    }

    #[test]
    fn every_non_final_state_can_end() {
        for from in S::ALL.iter().copied().filter(|s| !s.is_final()) {
            assert!(S::ALL.iter().any(|&to| from.can_become(to)), "{from}");
        }
    }

    #[test]
    fn amounts_are_exact() {
        assert_eq!(decimal_amount(1234), "12.34");
        assert_eq!(decimal_amount(5), "0.05");
        assert_eq!(decimal_amount(100_000), "1000.00");
        for (text, want) in [
            ("12.34", Some(1234)),
            ("12.3", Some(1230)),
            ("12", Some(1200)),
            ("12.3400", Some(1234)),
            ("0.05", Some(5)),
            ("12.345", None),
            ("12.341", None),
            ("-1.00", None),
            ("+1.00", None),
            ("1e3", None),
            ("", None),
            (".50", None),
            ("1.2.3", None),
            ("99999999999999999999.00", None),
        ] {
            assert_eq!(parse_decimal_amount(text), want, "{text:?}");
        }
    }

    #[test]
    fn tran_ids_fit_the_gateway() {
        let id = tran_id(Uuid::from_u128(u128::MAX));
        assert_eq!(id, "D7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert!(id.len() <= TRAN_ID_MAX);
        assert_eq!(tran_id(Uuid::nil()), "D00000000000000000000000000");
    }

    #[test]
    fn validation_is_judged_against_what_we_stored() {
        let v = Validated {
            tran_id: "DX",
            amount: "100.00",
            currency: "BDT",
            risky: false,
        };
        assert_eq!(judge(&v, "DX", 10_000, "BDT"), Ok(S::Paid));
        assert_eq!(
            judge(&v, "DY", 10_000, "BDT"),
            Err(PaymentFlag::TranIdMismatch)
        );
        assert_eq!(
            judge(&v, "DX", 10_001, "BDT"),
            Err(PaymentFlag::AmountMismatch)
        );
        assert_eq!(
            judge(&v, "DX", 10_000, "USD"),
            Err(PaymentFlag::CurrencyMismatch)
        );
        let risky = Validated { risky: true, ..v };
        assert_eq!(judge(&risky, "DX", 10_000, "BDT"), Ok(S::Review));
    }

    proptest! {
        #[test]
        fn decimal_amounts_round_trip(minor in 0i64..=i64::MAX / 100) {
            prop_assert_eq!(parse_decimal_amount(&decimal_amount(minor)), Some(minor));
        }

        #[test]
        fn tran_ids_are_distinct(a: u128, b: u128) {
            prop_assume!(a != b);
            prop_assert_ne!(tran_id(Uuid::from_u128(a)), tran_id(Uuid::from_u128(b)));
        }

        #[test]
        fn refunds_never_exceed_what_was_paid(paid in 0i64..1_000_000, refunded in 0i64..1_000_000, pending in 0i64..1_000_000) {
            let left = refundable(paid, refunded, pending);
            if refunded + pending <= paid {
                prop_assert_eq!(left + refunded + pending, paid);
            } else {
                prop_assert_eq!(left, 0);
            }
        }
    }
}
