//! GS1 element strings, as a scanner reads them off a GS1-128, GS1 DataMatrix or GS1 QR code:
//! `(01)09506000134352(17)271231(10)LOT42` in the human-readable form, or the raw form with FNC1
//! as the group separator (`\x1d`) and an optional symbology identifier (`]C1`, `]d2`, `]Q3`).
//! What Depot needs from it: the GTIN (01) to find the product, the lot (10), the expiry (17)
//! and the serial (21).

use chrono::{Datelike, NaiveDate};

/// The group separator that stands for FNC1 in the raw form.
const GS: char = '\u{1d}';

/// What a GS1 element string says about an item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gs1Item {
    /// AI 01, the 14-digit GTIN (check digit verified).
    pub gtin: Option<String>,
    /// AI 10, batch or lot.
    pub lot: Option<String>,
    /// AI 17, expiry date (`DD` = 00 means the last day of the month).
    pub expiry: Option<NaiveDate>,
    /// AI 21, serial number.
    pub serial: Option<String>,
}

/// Why a scan is not a GS1 element string Depot can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gs1Error {
    /// Not an element string at all (e.g. a plain EAN-13: look it up as a product barcode).
    NotGs1,
    /// An application identifier this reader does not know (so the rest cannot be split).
    UnknownAi(String),
    /// An element whose value is malformed (wrong length, not digits, a bad date or check digit).
    BadValue { ai: &'static str },
}

impl std::fmt::Display for Gs1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotGs1 => f.write_str("not a GS1 element string"),
            Self::UnknownAi(ai) => write!(f, "unknown application identifier {ai}"),
            Self::BadValue { ai } => write!(f, "the value of AI {ai} is not valid"),
        }
    }
}

/// Application identifiers: code, fixed value length (or the maximum of a variable one).
const AIS: &[(&str, Length)] = &[
    ("00", Length::Fixed(18)),
    ("01", Length::Fixed(14)),
    ("02", Length::Fixed(14)),
    ("10", Length::Variable(20)),
    ("11", Length::Fixed(6)),
    ("12", Length::Fixed(6)),
    ("13", Length::Fixed(6)),
    ("15", Length::Fixed(6)),
    ("16", Length::Fixed(6)),
    ("17", Length::Fixed(6)),
    ("20", Length::Fixed(2)),
    ("21", Length::Variable(20)),
    ("22", Length::Variable(20)),
    ("30", Length::Variable(8)),
    ("37", Length::Variable(8)),
];

#[derive(Debug, Clone, Copy)]
enum Length {
    Fixed(usize),
    Variable(usize),
}

/// Reads a scanned GS1 element string. `today` places two-digit years (GS1's sliding window:
/// up to 49 years ahead, else the past century).
pub fn parse(scan: &str, today: NaiveDate) -> Result<Gs1Item, Gs1Error> {
    let scan = scan.trim();
    let elements = if scan.starts_with('(') {
        human_readable(scan)?
    } else {
        raw(scan)?
    };
    let mut item = Gs1Item::default();
    for (ai, value) in elements {
        match ai {
            "01" => {
                if !(value.len() == 14 && digits(&value) && gtin_check_ok(&value)) {
                    return Err(Gs1Error::BadValue { ai: "01" });
                }
                item.gtin = Some(value);
            }
            "10" => item.lot = Some(value),
            "21" => item.serial = Some(value),
            "17" => {
                item.expiry = Some(date(&value, today).ok_or(Gs1Error::BadValue { ai: "17" })?);
            }
            _ => {}
        }
    }
    if item == Gs1Item::default() {
        return Err(Gs1Error::NotGs1);
    }
    Ok(item)
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The `(AI)value` form: parentheses delimit every element.
fn human_readable(scan: &str) -> Result<Vec<(&'static str, String)>, Gs1Error> {
    let mut elements = Vec::new();
    let mut rest = scan;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('(').ok_or(Gs1Error::NotGs1)?;
        let (ai, after) = inner.split_once(')').ok_or(Gs1Error::NotGs1)?;
        let (code, length) = known(ai)?;
        let end = after.find('(').unwrap_or(after.len());
        let value = &after[..end];
        check_length(code, length, value)?;
        elements.push((code, value.to_owned()));
        rest = &after[end..];
    }
    Ok(elements)
}

/// The raw form: fixed-length elements run on; a variable-length one ends at GS or the end.
fn raw(scan: &str) -> Result<Vec<(&'static str, String)>, Gs1Error> {
    let mut rest = scan;
    for prefix in ["]C1", "]d2", "]Q3", "]e0", "]J1"] {
        if let Some(stripped) = rest.strip_prefix(prefix) {
            rest = stripped;
        }
    }
    // Unmarked (no symbology identifier, no FNC1) and no longer than a GTIN-14: a plain
    // EAN-8/UPC-A/EAN-13/ITF-14 barcode, however its digits start.
    if rest.len() == scan.len() && !scan.contains(GS) && scan.len() <= 14 && digits(scan) {
        return Err(Gs1Error::NotGs1);
    }
    rest = rest.trim_start_matches(GS);
    // A plain EAN/UPC or anything that does not start with a known AI is not an element string.
    if AIS.iter().all(|(ai, _)| !rest.starts_with(ai)) {
        return Err(Gs1Error::NotGs1);
    }
    let mut elements = Vec::new();
    while !rest.is_empty() {
        let ai = rest.get(..2).ok_or(Gs1Error::NotGs1)?;
        let (code, length) = known(ai)?;
        let body = &rest[2..];
        let (value, after) = match length {
            Length::Fixed(n) => {
                let value = body.get(..n).ok_or(Gs1Error::BadValue { ai: code })?;
                (value, &body[n..])
            }
            Length::Variable(_) => match body.find(GS) {
                Some(at) => (&body[..at], &body[at..]),
                None => (body, ""),
            },
        };
        check_length(code, length, value)?;
        elements.push((code, value.to_owned()));
        rest = after.trim_start_matches(GS);
    }
    Ok(elements)
}

fn known(ai: &str) -> Result<(&'static str, Length), Gs1Error> {
    AIS.iter()
        .find(|(code, _)| *code == ai)
        .map(|(code, length)| (*code, *length))
        .ok_or_else(|| Gs1Error::UnknownAi(ai.chars().take(4).collect()))
}

fn check_length(ai: &'static str, length: Length, value: &str) -> Result<(), Gs1Error> {
    let ok = match length {
        Length::Fixed(n) => value.len() == n && digits(value),
        Length::Variable(max) => {
            (1..=max).contains(&value.chars().count())
                && value.chars().all(|c| c.is_ascii_graphic())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Gs1Error::BadValue { ai })
    }
}

/// The GS1 mod-10 check digit of a GTIN-14.
fn gtin_check_ok(gtin: &str) -> bool {
    let digits: Vec<u32> = gtin.chars().filter_map(|c| c.to_digit(10)).collect();
    let Some((check, body)) = digits.split_last() else {
        return false;
    };
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    (10 - sum % 10) % 10 == *check
}

/// `YYMMDD` with GS1's century window around `today`; `DD` 00 is the month's last day.
fn date(value: &str, today: NaiveDate) -> Option<NaiveDate> {
    if value.len() != 6 || !digits(value) {
        return None;
    }
    let yy: i32 = value[..2].parse().ok()?;
    let month: u32 = value[2..4].parse().ok()?;
    let day: u32 = value[4..].parse().ok()?;
    let this = today.year();
    let century = this - this.rem_euclid(100);
    let mut year = century + yy;
    if year - this >= 50 {
        year -= 100;
    } else if this - year > 50 {
        year += 100;
    }
    if day == 0 {
        let first_next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        return first_next.pred_opt().filter(|_| (1..=12).contains(&month));
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap_or_default()
    }

    fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn the_human_readable_form() {
        let item = parse("(01)09506000134352(17)271231(10)LOT42(21)SN-7", today());
        assert_eq!(
            item,
            Ok(Gs1Item {
                gtin: Some("09506000134352".into()),
                lot: Some("LOT42".into()),
                expiry: ymd(2027, 12, 31),
                serial: Some("SN-7".into()),
            })
        );
    }

    #[test]
    fn the_raw_form_with_fnc1_separators_and_a_symbology_identifier() {
        let scan = "]d20109506000134352172712001".to_owned() + "0LOT42\u{1d}21SN7";
        let item = parse(&scan, today());
        assert_eq!(
            item.as_ref().map(|i| i.gtin.clone()),
            Ok(Some("09506000134352".into()))
        );
        assert_eq!(
            item.as_ref().map(|i| i.expiry),
            Ok(ymd(2027, 12, 31)),
            "DD 00: month end"
        );
        assert_eq!(
            item.as_ref().map(|i| i.lot.clone()),
            Ok(Some("LOT42".into()))
        );
        assert_eq!(
            item.as_ref().map(|i| i.serial.clone()),
            Ok(Some("SN7".into()))
        );
    }

    #[test]
    fn a_variable_element_ends_at_the_separator_or_the_end() {
        let item = parse("10ABC\u{1d}0109506000134352", today());
        assert_eq!(
            item,
            Ok(Gs1Item {
                gtin: Some("09506000134352".into()),
                lot: Some("ABC".into()),
                ..Gs1Item::default()
            })
        );
    }

    #[test]
    fn bad_check_digits_dates_and_unknown_ais_are_refused() {
        assert_eq!(
            parse("(01)09506000134353", today()),
            Err(Gs1Error::BadValue { ai: "01" })
        );
        assert_eq!(
            parse("(01)09506000134352(17)271301", today()),
            Err(Gs1Error::BadValue { ai: "17" })
        );
        assert_eq!(
            parse("(99)FREE", today()),
            Err(Gs1Error::UnknownAi("99".into()))
        );
        // A plain EAN-13 is not an element string: the caller looks it up as a barcode.
        assert_eq!(parse("5901234123457", today()), Err(Gs1Error::NotGs1));
        assert_eq!(parse("", today()), Err(Gs1Error::NotGs1));
    }

    proptest::proptest! {
        /// Whatever a scanner (or an attacker) sends, the reader answers without panicking.
        #[test]
        fn any_input_is_answered_never_a_panic(scan in "\\PC{0,40}", raw in "[0-9()\u{1d}A-Z\\]]{0,40}") {
            let _ = parse(&scan, today());
            let _ = parse(&raw, today());
        }
    }

    #[test]
    fn two_digit_years_follow_the_gs1_window() {
        assert_eq!(
            date("750101", today()),
            ymd(2075, 1, 1),
            "49 years ahead stays ahead"
        );
        assert_eq!(
            date("800101", today()),
            ymd(1980, 1, 1),
            "further ahead is the past"
        );
        assert_eq!(date("240229", today()), ymd(2024, 2, 29));
        assert_eq!(date("250200", today()), ymd(2025, 2, 28));
        assert_eq!(date("241300", today()), None);
    }

    #[test]
    fn plain_retail_barcodes_are_not_element_strings_whatever_their_first_digits() {
        for plain in [
            "0000000000000",
            "4006381333931",
            "10012345",
            "012345678905",
            "00012345678905",
        ] {
            assert_eq!(parse(plain, today()), Err(Gs1Error::NotGs1), "{plain}");
        }
        assert!(
            parse("0105901234123457", today()).is_ok(),
            "unmarked but longer: GS1"
        );
    }
}
