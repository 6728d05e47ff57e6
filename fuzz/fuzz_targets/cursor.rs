//! Pagination cursors as a client sends them (`?cursor=`): any text is refused cleanly or
//! decodes to a key that encodes back to a cursor decoding to the same key. A payload that
//! carries a valid signature (signed here) but anything else inside is refused, never a panic.

#![no_main]

use chrono::{DateTime, Utc};
use depot_domain::pagination::{CursorKey, PageRequest, decode_cursor, encode_cursor};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let key = CursorKey::derive(b"fuzzing cursors: a secret of thirty-two bytes or more");
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(page) = PageRequest::parse(Some(text), Some(text)) {
            let page = page.keyed(key.clone());
            let _ = page.decode_cursor::<(DateTime<Utc>, Uuid)>();
            let _ = page.decode_cursor::<(String, Uuid)>();
        }
        if let Ok(value) = decode_cursor::<serde_json::Value>(&key, text) {
            let again = encode_cursor(&key, &value).expect("a decoded key encodes");
            let back = decode_cursor::<serde_json::Value>(&key, &again).expect("and decodes");
            assert_eq!(back, value);
        }
    }
    // Whatever bytes a validly signed cursor carries, the typed keys read them or refuse them.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let signed = encode_cursor(&key, &value).expect("any JSON value encodes");
        let _ = decode_cursor::<(DateTime<Utc>, Uuid)>(&key, &signed);
        let _ = decode_cursor::<(i64, Uuid)>(&key, &signed);
        let _ = decode_cursor::<(String, Uuid)>(&key, &signed);
        let other = CursorKey::derive(b"another list's key, also thirty-two bytes long");
        assert!(
            decode_cursor::<serde_json::Value>(&other, &signed).is_err(),
            "a cursor signed for one key must not be read with another"
        );
    }
});
