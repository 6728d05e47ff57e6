//! Contact data and currency codes as typed: checked once, the same way for suppliers,
//! customers and their contacts.

use crate::Validator;
use crate::auth::password::{validate_email, validate_phone};

use super::money::is_currency;

/// Checks an optional email (`email`) and E.164 phone (`phone`).
pub fn validate_contact(v: &mut Validator, email: Option<&str>, phone: Option<&str>) {
    if let Some(error) = email.and_then(|e| validate_email("email", e)) {
        v.push(error);
    }
    if let Some(error) = phone.and_then(|p| validate_phone("phone", p)) {
        v.push(error);
    }
}

/// Checks that `currency` (under `field`) is an ISO 4217 code.
pub fn validate_currency(v: &mut Validator, field: &str, currency: &str) {
    v.check(
        is_currency(currency),
        field,
        "invalid",
        "must be an ISO 4217 code such as BDT",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_contact_field_is_reported_at_once() {
        let mut v = Validator::new();
        validate_contact(&mut v, Some("nobody@"), Some("017"));
        validate_currency(&mut v, "currency", "taka");
        let fields: Vec<String> = match v.finish() {
            Err(e) => e.details().unwrap()["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_owned())
                .collect(),
            Ok(()) => vec![],
        };
        assert_eq!(fields, ["email", "phone", "currency"]);
        let mut ok = Validator::new();
        validate_contact(&mut ok, Some("a@b.example"), Some("+8801711000000"));
        validate_currency(&mut ok, "currency", "BDT");
        assert!(ok.finish().is_ok());
    }
}
