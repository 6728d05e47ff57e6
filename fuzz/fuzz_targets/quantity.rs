//! Quantities as written in requests and import files: any text is read or refused, and
//! what is read is written back (`Display`) as text that reads as the same quantity.

#![no_main]

use depot_domain::stock::{Quantity, Unit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let unit = Unit::VALUES[usize::from(selector) % Unit::VALUES.len()];
    let unit = Unit::parse(unit).expect("a unit");
    if let Ok(quantity) = Quantity::parse(text, unit) {
        let written = quantity.to_string();
        assert_eq!(
            Quantity::parse(&written, unit),
            Ok(quantity),
            "{text:?} → {written:?}"
        );
    }
});
