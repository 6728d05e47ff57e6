//! Keyset pagination: a page request (`limit` + opaque `cursor`) and the cursor encoding.
//!
//! A cursor is the sort key of the last row of the previous page, serialised as JSON, followed
//! by an HMAC tag under the [`CursorKey`], both unpadded base64url joined by a dot. Clients must
//! treat it as opaque; the server answers `pagination.invalid_cursor` (400) to anything it did
//! not sign itself, so a forged key (a timestamp the database cannot store, a wrong type) never
//! reaches a query.

use std::sync::Arc;

use crate::ErrorCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::error::{AppError, AppResult};
use crate::validation::FieldError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// Cursors longer than this are rejected before decoding.
const MAX_CURSOR_LEN: usize = 1024;

/// Bytes of the HMAC-SHA256 tag kept in a cursor (128 bits).
const TAG_LEN: usize = 16;

/// The key that signs and checks cursors, derived from the application secret: every instance
/// sharing the secret accepts the others' cursors.
#[derive(Clone, PartialEq, Eq)]
pub struct CursorKey(Arc<[u8; 32]>);

impl CursorKey {
    /// Derives the cursor key from the application secret (domain-separated from its other
    /// uses).
    pub fn derive(app_secret: &[u8]) -> Self {
        let mut mac = hmac_with(app_secret);
        mac.update(b"depot.pagination.cursor.v1");
        Self(Arc::new(mac.finalize().into_bytes().into()))
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = hmac_with(self.0.as_slice());
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    fn verify(&self, payload: &[u8], tag: &[u8]) -> bool {
        let mut mac = hmac_with(self.0.as_slice());
        mac.update(payload);
        mac.verify_truncated_left(tag).is_ok()
    }
}

impl Default for CursorKey {
    /// A fixed key for code that pages internally (tests, tools); servers derive theirs.
    fn default() -> Self {
        Self::derive(b"depot.pagination.unkeyed")
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

fn hmac_with(key: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

/// A validated page request, with the key that checks its cursor and signs the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
    pub key: CursorKey,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
            key: CursorKey::default(),
        }
    }
}

impl PageRequest {
    /// Validates raw query values: `limit` in 1..=200 (default 50), `cursor` non-empty and short.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> AppResult<Self> {
        let mut errors = Vec::new();
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new(
                        "limit",
                        "out_of_range",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    ));
                    DEFAULT_LIMIT
                }
            },
        };
        let cursor = match cursor {
            None => None,
            Some(c) if c.is_empty() || c.len() > MAX_CURSOR_LEN => {
                errors.push(FieldError::new(
                    "cursor",
                    "invalid",
                    "is not a valid cursor",
                ));
                None
            }
            Some(c) => Some(c.to_owned()),
        };
        if errors.is_empty() {
            Ok(Self {
                limit,
                cursor,
                key: CursorKey::default(),
            })
        } else {
            Err(AppError::validation(errors))
        }
    }

    /// The same request, its cursor checked and the next one signed with `key`.
    pub fn keyed(self, key: CursorKey) -> Self {
        Self { key, ..self }
    }

    /// Decodes the cursor into the key type the list was sorted by.
    pub fn decode_cursor<K: DeserializeOwned>(&self) -> AppResult<Option<K>> {
        self.cursor
            .as_deref()
            .map(|c| decode_cursor(&self.key, c))
            .transpose()
    }
}

/// Encodes a sort key as an opaque cursor signed with `key`.
pub fn encode_cursor<K: Serialize>(key: &CursorKey, sort_key: &K) -> AppResult<String> {
    let json = serde_json::to_vec(sort_key).map_err(AppError::internal)?;
    let tag = key.tag(&json);
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// Decodes a cursor signed with `key`; anything else is a `pagination.invalid_cursor` error.
pub fn decode_cursor<K: DeserializeOwned>(key: &CursorKey, cursor: &str) -> AppResult<K> {
    let invalid = || {
        AppError::new(
            ErrorCode::PaginationInvalidCursor,
            "the cursor is not valid for this list",
        )
    };
    let (payload, tag) = cursor.split_once('.').ok_or_else(invalid)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
    if tag.len() != TAG_LEN || !key.verify(&payload, &tag) {
        return Err(invalid());
    }
    serde_json::from_slice(&payload).map_err(|_| invalid())
}

/// One page of a list: `{"data": [...], "next_cursor": "…" | null}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in sort order: the extra row, if present,
    /// proves there is a next page, whose cursor is the key of the last row shown.
    pub fn from_overfetch<K: Serialize>(
        mut rows: Vec<T>,
        request: &PageRequest,
        key_of: impl Fn(&T) -> K,
    ) -> AppResult<Self> {
        let limit = request.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|last| encode_cursor(&request.key, &key_of(last)))
                .transpose()?
        } else {
            None
        };
        Ok(Self {
            data: rows,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_to_fifty() {
        assert_eq!(
            PageRequest::parse(None, None).ok(),
            Some(PageRequest::default())
        );
        assert_eq!(PageRequest::default().limit, 50);
    }

    #[test]
    fn rejects_out_of_range_limits_and_lists_both_fields() {
        for bad in ["0", "201", "-1", "abc", ""] {
            assert!(
                PageRequest::parse(Some(bad), None).is_err(),
                "limit {bad:?}"
            );
        }
        let err = PageRequest::parse(Some("500"), Some("")).err();
        let n = err
            .as_ref()
            .and_then(|e| e.details())
            .and_then(|d| d["fields"].as_array().map(Vec::len));
        assert_eq!(n, Some(2));
    }

    fn code_of<T>(r: AppResult<T>) -> Option<String> {
        r.err().map(|e| e.code().to_owned())
    }

    #[test]
    fn garbage_cursor_is_a_stable_error() {
        let key = CursorKey::derive(b"secret");
        for garbage in ["!!!not-base64", "", ".", "abc", "abc.def"] {
            assert_eq!(
                code_of(decode_cursor::<(String, u64)>(&key, garbage)),
                Some("pagination.invalid_cursor".to_owned()),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn only_cursors_signed_with_the_key_are_accepted() {
        let key = CursorKey::derive(b"secret");
        let signed = encode_cursor(&key, &("2026-01-01T00:00:00Z", 7)).unwrap_or_default();
        assert_eq!(
            decode_cursor::<(String, u64)>(&key, &signed).ok(),
            Some(("2026-01-01T00:00:00Z".to_owned(), 7))
        );
        // Another secret, a forged payload with the old tag, an unsigned payload: all refused.
        let other = CursorKey::derive(b"another secret");
        assert!(decode_cursor::<(String, u64)>(&other, &signed).is_err());
        let tag = signed.split_once('.').map(|(_, t)| t).unwrap_or_default();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(br#"["-200000-01-01T00:00:00Z",7]"#)
        );
        assert!(decode_cursor::<(String, u64)>(&key, &forged).is_err());
        let unsigned = URL_SAFE_NO_PAD.encode(br#"["2026-01-01T00:00:00Z",7]"#);
        assert!(decode_cursor::<(String, u64)>(&key, &unsigned).is_err());
    }

    #[test]
    fn overfetch_sets_cursor_only_when_more_rows_exist() {
        let request = PageRequest {
            limit: 2,
            ..PageRequest::default()
        };
        let page = Page::from_overfetch(vec![1, 2, 3], &request, |n| *n).ok();
        let page = page.as_ref();
        assert_eq!(page.map(|p| p.data.clone()), Some(vec![1, 2]));
        let next = page
            .and_then(|p| p.next_cursor.as_deref())
            .map(|c| decode_cursor::<i32>(&request.key, c));
        assert_eq!(next.and_then(Result::ok), Some(2));

        let last = Page::from_overfetch(vec![1, 2], &request, |n| *n).ok();
        assert_eq!(last.and_then(|p| p.next_cursor), None);
    }

    proptest! {
        #[test]
        fn cursor_roundtrips(s in ".{0,64}", n in any::<i64>()) {
            let key = CursorKey::derive(b"k");
            let encoded = encode_cursor(&key, &(s.clone(), n)).ok();
            let decoded = encoded.as_deref().map(|c| decode_cursor::<(String, i64)>(&key, c)).and_then(Result::ok);
            prop_assert_eq!(decoded, Some((s, n)));
        }

        #[test]
        fn any_limit_in_range_is_accepted(n in 1u32..=200) {
            prop_assert_eq!(PageRequest::parse(Some(&n.to_string()), None).ok().map(|p| p.limit), Some(n));
        }
    }
}
