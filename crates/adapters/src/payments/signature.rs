//! SSLCommerz's callback signature: `verify_key` names the signed fields; the signature is
//! `md5_hex` of those fields as posted (an empty value kept, an absent one skipped) plus
//! `store_passwd = md5_hex(store password)`, sorted by key bytewise and joined as `k=v` with
//! `&`. Compared in constant time.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Why a callback's signature was refused (the label of the rejection metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `verify_sign` or `verify_key`, or an empty key list.
    Missing,
    /// The signature does not match.
    Mismatch,
}

impl SignatureError {
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => {
                "the callback carries no verify_sign or verify_key, or leaves tran_id, status or val_id unsigned"
            }
            SignatureError::Mismatch => "the callback's verify_sign does not match",
        })
    }
}

impl std::error::Error for SignatureError {}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The first value posted under `key`.
pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The signature of the fields `keys` names, as the gateway computes it.
pub fn sign(fields: &[(String, String)], keys: &str, store_password: &str) -> String {
    // The store password's hash is the verifier's to add: a posted `store_passwd` (named in
    // `verify_key`) must never stand in for it, or anyone could sign without the password.
    let mut signed: Vec<(&str, String)> = keys
        .split(',')
        .filter(|k| *k != "store_passwd")
        .filter_map(|k| field(fields, k).map(|v| (k, v.to_owned())))
        .collect();
    signed.push(("store_passwd", md5_hex(store_password.as_bytes())));
    signed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    signed.dedup_by(|a, b| a.0 == b.0);
    let joined = signed
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    md5_hex(joined.as_bytes())
}

/// Fields a callback must sign: which transaction and what happened to it (and, when it says
/// the money is there, the validation id it is checked by).
const SIGNED: &[&str] = &["tran_id", "status"];

/// Checks a posted callback's `verify_sign` against the store password; `tran_id` and
/// `status` (and `val_id` when it is `VALID`) must be among the signed fields.
pub fn verify(fields: &[(String, String)], store_password: &str) -> Result<(), SignatureError> {
    let (Some(given), Some(keys)) = (field(fields, "verify_sign"), field(fields, "verify_key"))
    else {
        return Err(SignatureError::Missing);
    };
    if keys.trim().is_empty() || given.is_empty() {
        return Err(SignatureError::Missing);
    }
    // What a callback is acted on by must be among what is signed.
    let signs = |k: &str| keys.split(',').any(|signed| signed == k);
    let validated = matches!(field(fields, "status"), Some("VALID" | "VALIDATED"));
    if !SIGNED.iter().all(|k| signs(k)) || (validated && !signs("val_id")) {
        return Err(SignatureError::Missing);
    }
    let expected = sign(fields, keys, store_password);
    if bool::from(
        expected
            .as_bytes()
            .ct_eq(given.to_ascii_lowercase().as_bytes()),
    ) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `gateway_callback` fuzz target: a callback that posts its own
    /// `store_passwd` and names it in `verify_key` verified under any store password.
    #[test]
    fn a_posted_store_passwd_never_replaces_the_store_password() {
        let mut fields: Vec<(String, String)> = [
            ("tran_id", "T-1"),
            ("val_id", "V-1"),
            ("status", "VALID"),
            ("store_passwd", ""),
            ("verify_key", "store_passwd,status,tran_id,val_id"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // What an attacker computes without the password: md5 over the posted fields.
        let forged = md5_hex(b"status=VALID&store_passwd=&tran_id=T-1&val_id=V-1");
        fields.push(("verify_sign".to_owned(), forged));
        assert_eq!(
            verify(&fields, "the real password"),
            Err(SignatureError::Mismatch)
        );
        // Signed with the password, it verifies; with another, it does not.
        let keys = "store_passwd,status,tran_id,val_id";
        fields.pop();
        fields.push((
            "verify_sign".to_owned(),
            sign(&fields, keys, "the real password"),
        ));
        assert_eq!(verify(&fields, "the real password"), Ok(()));
        assert_eq!(
            verify(&fields, "another password"),
            Err(SignatureError::Mismatch)
        );
    }

    /// The IPN from the README of the official SSLCommerz Python SDK (`sslcommerz-lib`).
    fn sdk_fixture() -> Vec<(String, String)> {
        [
            ("tran_id", "5E121A0D01F92"),
            ("val_id", "200105225826116qFnATY9sHIwo"),
            ("amount", "10.00"),
            ("card_type", "VISA-Dutch Bangla"),
            ("store_amount", "9.75"),
            ("card_no", "418117XXXXXX6675"),
            ("bank_tran_id", "200105225825DBgSoRGLvczhFjj"),
            ("status", "VALID"),
            ("tran_date", "2020-01-05 22:58:21"),
            ("currency", "BDT"),
            ("card_issuer", "TRUST BANK, LTD."),
            ("card_brand", "VISA"),
            ("card_issuer_country", "Bangladesh"),
            ("card_issuer_country_code", "BD"),
            ("store_id", "test_testemi"),
            ("verify_sign", "d42fab70ae0bcbda5280e7baffef60b0"),
            (
                "verify_key",
                "amount,bank_tran_id,base_fair,card_brand,card_issuer,card_issuer_country,\
                 card_issuer_country_code,card_no,card_type,currency,currency_amount,\
                 currency_rate,currency_type,risk_level,risk_title,status,store_amount,store_id,\
                 tran_date,tran_id,val_id,value_a,value_b,value_c,value_d",
            ),
            (
                "verify_sign_sha2",
                "02c0417ff467c109006382d56eedccecd68382e47245266e7b47abbb3d43976e",
            ),
            ("currency_type", "BDT"),
            ("currency_amount", "10.00"),
            ("currency_rate", "1.0000"),
            ("base_fair", "0.00"),
            ("value_a", ""),
            ("value_b", ""),
            ("value_c", ""),
            ("value_d", ""),
            ("risk_level", "0"),
            ("risk_title", "Safe"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    const PASSWORD: &str = "test_testemi@ssl";

    fn with(mut fields: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
        for (k, v) in &mut fields {
            if k == key {
                *v = value.to_owned();
            }
        }
        fields
    }

    #[test]
    fn the_sdk_fixture_verifies() {
        assert_eq!(verify(&sdk_fixture(), PASSWORD), Ok(()));
        let upper = with(
            sdk_fixture(),
            "verify_sign",
            "D42FAB70AE0BCBDA5280E7BAFFEF60B0",
        );
        assert_eq!(verify(&upper, PASSWORD), Ok(()));
    }

    #[test]
    fn flipping_any_signed_field_is_refused() {
        let fixture = sdk_fixture();
        let keys = field(&fixture, "verify_key").unwrap_or_default().to_owned();
        for key in keys.split(',').filter(|k| field(&fixture, k).is_some()) {
            let value = field(&fixture, key).unwrap_or_default();
            let flipped = with(fixture.clone(), key, &format!("{value}x"));
            assert_eq!(
                verify(&flipped, PASSWORD),
                Err(SignatureError::Mismatch),
                "{key}"
            );
        }
        assert_eq!(
            verify(&with(fixture.clone(), "amount", "1000.00"), PASSWORD),
            Err(SignatureError::Mismatch)
        );
        // An unsigned field may change; the wrong password may not.
        let unsigned = with(fixture.clone(), "verify_sign_sha2", "x");
        assert_eq!(verify(&unsigned, PASSWORD), Ok(()));
        assert_eq!(verify(&fixture, "another"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_missing_key_list_or_signature_is_refused() {
        let no_key: Vec<_> = sdk_fixture()
            .into_iter()
            .filter(|(k, _)| k != "verify_key")
            .collect();
        assert_eq!(verify(&no_key, PASSWORD), Err(SignatureError::Missing));
        let no_sign: Vec<_> = sdk_fixture()
            .into_iter()
            .filter(|(k, _)| k != "verify_sign")
            .collect();
        assert_eq!(verify(&no_sign, PASSWORD), Err(SignatureError::Missing));
        let empty = with(sdk_fixture(), "verify_key", "");
        assert_eq!(verify(&empty, PASSWORD), Err(SignatureError::Missing));
    }

    #[test]
    fn a_callback_must_sign_what_it_is_acted_on_by() {
        let fixture = sdk_fixture();
        let keys = "amount,bank_tran_id,currency,store_id";
        let mut unsigned: Vec<_> = fixture
            .iter()
            .filter(|(k, _)| k != "verify_key" && k != "verify_sign")
            .cloned()
            .collect();
        let signature = sign(&unsigned, keys, PASSWORD);
        unsigned.push(("verify_sign".into(), signature));
        unsigned.push(("verify_key".into(), keys.into()));
        assert_eq!(verify(&unsigned, PASSWORD), Err(SignatureError::Missing));
    }

    #[test]
    fn dropping_a_signed_field_changes_the_signature() {
        let dropped: Vec<_> = sdk_fixture()
            .into_iter()
            .filter(|(k, _)| k != "value_a")
            .collect();
        assert_eq!(verify(&dropped, PASSWORD), Err(SignatureError::Mismatch));
    }
}
