//! Keyset pagination: a page request (`limit` + opaque `cursor`) and the cursor encoding.
//!
//! A cursor is the sort key of the last row of the previous page, serialised as JSON and encoded
//! as unpadded base64url. Clients must treat it as opaque; the server rejects any cursor it cannot
//! decode with `pagination.invalid_cursor`.

use crate::ErrorCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AppError, AppResult};
use crate::validation::FieldError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// Cursors longer than this are rejected before decoding.
const MAX_CURSOR_LEN: usize = 1024;

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
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
            Ok(Self { limit, cursor })
        } else {
            Err(AppError::validation(errors))
        }
    }

    /// Decodes the cursor into the key type the list was sorted by.
    pub fn decode_cursor<K: DeserializeOwned>(&self) -> AppResult<Option<K>> {
        self.cursor.as_deref().map(decode_cursor).transpose()
    }
}

/// Encodes a sort key as an opaque cursor.
pub fn encode_cursor<K: Serialize>(key: &K) -> AppResult<String> {
    let json = serde_json::to_vec(key).map_err(AppError::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes an opaque cursor; any malformed input is a `pagination.invalid_cursor` error.
pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> AppResult<K> {
    let invalid = || {
        AppError::new(
            ErrorCode::PaginationInvalidCursor,
            "the cursor is not valid for this list",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
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
        limit: u32,
        key_of: impl Fn(&T) -> K,
    ) -> AppResult<Self> {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|last| encode_cursor(&key_of(last)))
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

    #[test]
    fn garbage_cursor_is_a_stable_error() {
        let err = decode_cursor::<(String, u64)>("!!!not-base64").err();
        assert_eq!(
            err.as_ref().map(|e| e.code()),
            Some("pagination.invalid_cursor")
        );
        let not_json = URL_SAFE_NO_PAD.encode(b"{oops");
        assert!(decode_cursor::<(String, u64)>(&not_json).is_err());
    }

    #[test]
    fn overfetch_sets_cursor_only_when_more_rows_exist() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| *n).ok();
        let page = page.as_ref();
        assert_eq!(page.map(|p| p.data.clone()), Some(vec![1, 2]));
        let next = page
            .and_then(|p| p.next_cursor.as_deref())
            .map(decode_cursor::<i32>);
        assert_eq!(next.and_then(Result::ok), Some(2));

        let last = Page::from_overfetch(vec![1, 2], 2, |n| *n).ok();
        assert_eq!(last.and_then(|p| p.next_cursor), None);
    }

    proptest! {
        #[test]
        fn cursor_roundtrips(s in ".{0,64}", n in any::<i64>()) {
            let encoded = encode_cursor(&(s.clone(), n)).ok();
            let decoded = encoded.as_deref().map(decode_cursor::<(String, i64)>).and_then(Result::ok);
            prop_assert_eq!(decoded, Some((s, n)));
        }

        #[test]
        fn any_limit_in_range_is_accepted(n in 1u32..=200) {
            prop_assert_eq!(PageRequest::parse(Some(&n.to_string()), None).ok().map(|p| p.limit), Some(n));
        }
    }
}
