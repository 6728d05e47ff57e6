//! The payment gateway's callbacks (IPN and browser returns) as posted, form-encoded: any body
//! is refused or verified without panicking; a body signed with the store password over the
//! fields the rules require verifies, and with another password it does not; amounts are read
//! exactly or refused.

#![no_main]

use depot_adapters::payments::{sign, verify};
use depot_domain::trade::payment::parse_decimal_amount;
use libfuzzer_sys::fuzz_target;

const PASSWORD: &str = "store-password@ssl";

fuzz_target!(|data: &[u8]| {
    let mut fields: Vec<(String, String)> = url::form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let _ = verify(&fields, PASSWORD);
    for (_, value) in &fields {
        if let Some(cents) = parse_decimal_amount(value) {
            assert!(cents >= 0);
            let written = format!("{}.{:02}", cents / 100, cents % 100);
            assert_eq!(parse_decimal_amount(&written), Some(cents), "{value:?}");
        }
    }
    // Signed as the gateway signs, over the fields the rules require.
    fields.retain(|(k, _)| k != "verify_sign" && k != "verify_key");
    let keys = fields
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !k.contains(','))
        .chain(["tran_id", "status", "val_id"])
        .collect::<Vec<_>>()
        .join(",");
    let signature = sign(&fields, &keys, PASSWORD);
    fields.push(("verify_key".to_owned(), keys));
    fields.push(("verify_sign".to_owned(), signature));
    assert_eq!(
        verify(&fields, PASSWORD),
        Ok(()),
        "a callback signed as the gateway signs was refused"
    );
    assert!(verify(&fields, "another password").is_err());
});
