//! Exact quantities: an integer count of thousandths, never a float. The unit decides the
//! precision — countable units (`pcs`, `box`) take whole numbers, measured ones (`kg`, `g`, `l`,
//! `ml`, `m`) up to three decimals.

use std::fmt;

crate::string_enum! {
    /// A product's unit of measure.
    pub enum Unit {
        Pieces = "pcs",
        Box = "box",
        Kilogram = "kg",
        Gram = "g",
        Litre = "l",
        Millilitre = "ml",
        Metre = "m",
    }
}

impl Unit {
    /// Countable units take whole quantities only.
    pub fn is_countable(self) -> bool {
        matches!(self, Unit::Pieces | Unit::Box)
    }

    /// Decimals a quantity in this unit may carry.
    pub fn decimals(self) -> u32 {
        if self.is_countable() { 0 } else { 3 }
    }
}

/// Thousandths in one unit.
const SCALE: i64 = 1_000;
/// Largest magnitude accepted (10^11 units): far beyond any stock, and with at most 15
/// significant digits, exact as a JSON number.
const MAX_THOUSANDTHS: i64 = 100_000_000_000_000;

/// A signed, exact quantity in thousandths of the product's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(i64);

/// Why a number is not a quantity in a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantityError {
    /// Not a plain decimal number.
    NotANumber,
    /// More decimals than the unit allows.
    TooPrecise { allowed: u32 },
    /// Beyond ±10^11 units.
    OutOfRange,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantityError::NotANumber => f.write_str("must be a decimal number"),
            QuantityError::TooPrecise { allowed: 0 } => {
                f.write_str("must be a whole number for this unit")
            }
            QuantityError::TooPrecise { allowed } => {
                write!(f, "must have at most {allowed} decimals for this unit")
            }
            QuantityError::OutOfRange => f.write_str("is out of range"),
        }
    }
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    /// From thousandths (as stored).
    pub const fn from_thousandths(thousandths: i64) -> Self {
        Self(thousandths)
    }

    /// Whole units.
    pub const fn units(n: i64) -> Self {
        Self(n * SCALE)
    }

    pub const fn thousandths(self) -> i64 {
        self.0
    }

    /// Parses a decimal as written (`"12"`, `"-0.125"`, `"1e2"` is refused), checking the
    /// precision the unit allows.
    pub fn parse(text: &str, unit: Unit) -> Result<Self, QuantityError> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let plain = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty()
            || !plain(whole)
            || !plain(fraction)
            || (digits.contains('.') && fraction.is_empty())
        {
            return Err(QuantityError::NotANumber);
        }
        let significant = fraction.trim_end_matches('0');
        if significant.len() > unit.decimals() as usize {
            return Err(QuantityError::TooPrecise {
                allowed: unit.decimals(),
            });
        }
        let whole: i64 = whole.parse().map_err(|_| QuantityError::OutOfRange)?;
        // At most three significant decimals remain: pad them to thousandths.
        let thousandths: i64 = format!("{significant:0<3}")
            .parse()
            .map_err(|_| QuantityError::NotANumber)?;
        let magnitude = whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(thousandths))
            .filter(|m| *m <= MAX_THOUSANDTHS)
            .ok_or(QuantityError::OutOfRange)?;
        Ok(Self(if negative { -magnitude } else { magnitude }))
    }

    /// From a JSON number, checking the unit's precision. Integers are exact; a fractional
    /// number is read in its shortest decimal form, which is how the client wrote it.
    pub fn from_json(number: &serde_json::Number, unit: Unit) -> Result<Self, QuantityError> {
        Self::parse(&number.to_string(), unit)
    }

    /// As a JSON number: an integer when whole, else the decimal (exact in the accepted range).
    pub fn to_json(self) -> serde_json::Value {
        if self.0 % SCALE == 0 {
            serde_json::Value::from(self.0 / SCALE)
        } else {
            // Shortest round-trip formatting prints k/1000 back as written for these magnitudes.
            #[allow(clippy::cast_precision_loss)]
            let value = self.0 as f64 / SCALE as f64;
            serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, Into::into)
        }
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn abs(self) -> Self {
        Self(self.0.abs())
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    pub fn min(self, other: Self) -> Self {
        Self(self.0.min(other.0))
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity(-self.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let (whole, fraction) = (magnitude / 1_000, magnitude % 1_000);
        if fraction == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let fraction = format!("{fraction:03}");
            write!(f, "{sign}{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: &str, unit: Unit) -> Result<Quantity, QuantityError> {
        Quantity::parse(text, unit)
    }

    #[test]
    fn the_unit_decides_the_precision() {
        assert_eq!(
            q("1.5", Unit::Pieces),
            Err(QuantityError::TooPrecise { allowed: 0 })
        );
        assert_eq!(q("2", Unit::Pieces), Ok(Quantity::units(2)));
        assert_eq!(
            q("2.000", Unit::Box),
            Ok(Quantity::units(2)),
            "trailing zeros are not precision"
        );
        assert_eq!(
            q("0.125", Unit::Kilogram),
            Ok(Quantity::from_thousandths(125))
        );
        assert_eq!(
            q("0.1255", Unit::Kilogram),
            Err(QuantityError::TooPrecise { allowed: 3 })
        );
        assert_eq!(
            q("-3.5", Unit::Litre),
            Ok(Quantity::from_thousandths(-3_500))
        );
    }

    #[test]
    fn only_plain_decimals_are_numbers() {
        for bad in [
            "", "-", ".5", "1.", "1e3", "0x10", "1,5", "+1", "NaN", "1.2.3",
        ] {
            assert_eq!(
                q(bad, Unit::Kilogram),
                Err(QuantityError::NotANumber),
                "{bad:?}"
            );
        }
        assert_eq!(
            q("99999999999999", Unit::Pieces),
            Err(QuantityError::OutOfRange)
        );
        assert_eq!(
            q("100000000001", Unit::Pieces),
            Err(QuantityError::OutOfRange)
        );
        assert!(q("100000000000", Unit::Pieces).is_ok());
    }

    #[test]
    fn json_numbers_in_and_out() {
        let number = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(
            Quantity::from_json(&number(serde_json::json!(0.125)), Unit::Kilogram),
            Ok(Quantity::from_thousandths(125))
        );
        assert!(Quantity::from_json(&number(serde_json::json!(0.1255)), Unit::Kilogram).is_err());
        assert!(Quantity::from_json(&number(serde_json::json!(1.5)), Unit::Pieces).is_err());
        assert_eq!(
            Quantity::from_thousandths(125).to_json(),
            serde_json::json!(0.125)
        );
        assert_eq!(Quantity::units(7).to_json(), serde_json::json!(7));
        assert_eq!(Quantity::from_thousandths(-1_500).to_string(), "-1.5");
    }

    proptest! {
        #[test]
        fn thousandths_round_trip_through_json_and_text(k in -MAX_THOUSANDTHS..=MAX_THOUSANDTHS) {
            let quantity = Quantity::from_thousandths(k);
            let text = quantity.to_string();
            prop_assert_eq!(Quantity::parse(&text, Unit::Kilogram), Ok(quantity));
            if let serde_json::Value::Number(n) = quantity.to_json() {
                prop_assert_eq!(Quantity::from_json(&n, Unit::Kilogram), Ok(quantity));
            }
        }
    }
}
