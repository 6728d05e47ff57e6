//! Money: integer minor units with an ISO 4217 currency, never floats. A line's total is its
//! quantity (thousandths of the unit) times the unit price, rounded half up to a minor unit.

use crate::stock::Quantity;

/// Whether `code` has the shape of an ISO 4217 code: three upper-case letters (`BDT`, `USD`).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// `quantity × unit_price` in minor units, rounded half up; `None` when it does not fit.
pub fn line_total(quantity: Quantity, unit_price: i64) -> Option<i64> {
    let exact = i128::from(quantity.thousandths()).checked_mul(i128::from(unit_price))?;
    i64::try_from(round_thousandths(exact)).ok()
}

/// An amount in thousandths of a minor unit (a quantity in thousandths times a price),
/// rounded half up (away from zero) to a minor unit.
pub fn round_thousandths(exact: i128) -> i128 {
    if exact >= 0 {
        (exact + 500) / 1000
    } else {
        (exact - 500) / 1000
    }
}

/// The sum of the lines' totals; `None` when any line or the sum does not fit.
pub fn order_total(lines: impl IntoIterator<Item = (Quantity, i64)>) -> Option<i64> {
    lines.into_iter().try_fold(0i64, |sum, (quantity, price)| {
        sum.checked_add(line_total(quantity, price)?)
    })
}

/// Digits after the decimal point of `currency`'s minor unit (ISO 4217): 0 for the yen and
/// its peers, 3 for the dinars, 2 for the rest.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An amount in minor units written for people: `1234.50 BDT`, `-7 JPY`.
pub fn display(amount: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    if digits == 0 {
        return format!("{amount} {currency}");
    }
    let scale = 10u64.pow(digits);
    let magnitude = amount.unsigned_abs();
    let sign = if amount < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$} {currency}",
        magnitude / scale,
        magnitude % scale,
        width = digits as usize
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_are_written_with_their_currency_digits() {
        use super::display;
        assert_eq!(display(123_450, "BDT"), "1234.50 BDT");
        assert_eq!(display(-5, "USD"), "-0.05 USD");
        assert_eq!(display(700, "JPY"), "700 JPY");
        assert_eq!(display(1_234, "KWD"), "1.234 KWD");
        assert_eq!(display(i64::MIN, "USD"), "-92233720368547758.08 USD");
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn whole_quantities_multiply_exactly_and_fractions_round_half_up() {
        assert_eq!(line_total(Quantity::units(3), 1_250), Some(3_750));
        // 0.125 kg at 999 per kg = 124.875 → 125
        assert_eq!(line_total(Quantity::from_thousandths(125), 999), Some(125));
        // 0.5 × 1 = 0.5 → 1 (half up)
        assert_eq!(line_total(Quantity::from_thousandths(500), 1), Some(1));
        assert_eq!(line_total(Quantity::from_thousandths(499), 1), Some(0));
        assert_eq!(line_total(Quantity::units(1), i64::MAX), Some(i64::MAX));
        assert_eq!(line_total(Quantity::units(2), i64::MAX), None);
    }

    #[test]
    fn an_order_total_that_overflows_is_refused() {
        assert_eq!(
            order_total([(Quantity::units(1), 5), (Quantity::units(2), 7)]),
            Some(19)
        );
        assert_eq!(
            order_total([(Quantity::units(1), i64::MAX), (Quantity::units(1), 1)]),
            None
        );
    }

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        assert!(is_currency("BDT"));
        for bad in ["bdt", "BD", "BDTT", "B1T", ""] {
            assert!(!is_currency(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn whole_units_total_is_the_plain_product(units in 0i64..1_000_000, price in 0i64..1_000_000_000) {
            prop_assert_eq!(line_total(Quantity::units(units), price), Some(units * price));
        }
    }
}
