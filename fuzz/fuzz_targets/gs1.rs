//! GS1 element strings as a scanner sends them (raw with FNC1 as GS, or the human-readable
//! `(01)…(17)…` form). Anything is read or refused; what is read obeys GS1's rules.

#![no_main]

use chrono::NaiveDate;
use depot_domain::stock::gs1;
use libfuzzer_sys::fuzz_target;

fn check_digit_holds(gtin: &str) -> bool {
    let digits: Vec<u32> = gtin.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 14 {
        return false;
    }
    let sum: u32 = digits[..13]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    (10 - sum % 10) % 10 == digits[13]
}

fuzz_target!(|data: &[u8]| {
    let Ok(scan) = std::str::from_utf8(data) else {
        return;
    };
    let today = NaiveDate::from_ymd_opt(2026, 11, 30).expect("a date");
    if let Ok(item) = gs1::parse(scan, today) {
        if let Some(gtin) = &item.gtin {
            assert!(check_digit_holds(gtin), "GTIN {gtin:?} was accepted");
        }
        if let Some(lot) = &item.lot {
            assert!(!lot.is_empty() && lot.chars().count() <= 20, "lot {lot:?}");
        }
        if let Some(serial) = &item.serial {
            assert!(
                !serial.is_empty() && serial.chars().count() <= 20,
                "serial {serial:?}"
            );
        }
    }
});
