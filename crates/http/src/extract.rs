//! Extractors whose rejections are error envelopes with stable codes.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use depot_app::AppContext;
use depot_domain::AppError;
use depot_domain::ErrorCode;
use depot_domain::pagination::PageRequest;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::input;

/// `Json<T>` whose rejections say exactly what is wrong: malformed JSON, a string the API
/// refuses anywhere ([`input::check_json`]), wrong field types, a missing content type or a
/// body over the size limit.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<input::UniqueKeys>::from_request(req, state).await {
            Ok(axum::Json(input::UniqueKeys(value))) => value,
            Err(rejection) => return Err(ApiError(json_rejection(&rejection))),
        };
        checked(value).map(Self)
    }
}

/// A parsed JSON body made into `T`: it must be an object, pass [`input::check_json`], and fit
/// `T` (the error names the field). The one path every JSON body takes, also for routes that
/// read an optional body themselves.
pub fn checked<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError(AppError::new(
            ErrorCode::RequestInvalidBody,
            "the request body must be a JSON object",
        )));
    }
    input::check_json(&value)?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        // Name the field: `lines[0].quantity: invalid type: string "many", expected …`.
        let reason = match err.path().to_string().as_str() {
            "." => err.inner().to_string(),
            path => format!("{path}: {}", err.inner()),
        };
        ApiError(
            AppError::new(
                ErrorCode::RequestInvalidBody,
                "the request body does not match the expected shape",
            )
            .with_details(serde_json::json!({ "reason": reason })),
        )
    })
}

/// `Query<T>` whose parameters are checked first ([`input::check_query`]: control characters,
/// length → 422 naming the parameter); a query that does not fit `T` is 400
/// `request.invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts).map(Self)
    }
}

fn parse_query<T: DeserializeOwned>(parts: &Parts) -> Result<T, ApiError> {
    input::check_query(parts.uri.query().unwrap_or_default())?;
    Query::<T>::try_from_uri(&parts.uri)
        .map(|Query(value)| value)
        .map_err(|rejection| {
            ApiError(
                AppError::new(
                    ErrorCode::RequestInvalidQuery,
                    "the query string is malformed",
                )
                .with_details(serde_json::json!({ "reason": rejection.body_text() })),
            )
        })
}

fn json_rejection(rejection: &JsonRejection) -> AppError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonSyntaxError(_) => AppError::new(
            ErrorCode::RequestMalformedJson,
            "the request body is not valid JSON",
        )
        .with_details(serde_json::json!({ "reason": text })),
        JsonRejection::JsonDataError(_) => AppError::new(
            ErrorCode::RequestInvalidBody,
            "the request body does not match the expected shape",
        )
        .with_details(serde_json::json!({ "reason": text })),
        JsonRejection::MissingJsonContentType(_) => AppError::new(
            ErrorCode::RequestUnsupportedMediaType,
            "the request body must be sent with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::new(ErrorCode::RequestTooLarge, "the request body is too large")
        }
        _ => AppError::new(
            ErrorCode::RequestUnreadableBody,
            "the request body could not be read",
        ),
    }
}

/// Raw pagination query; validated into a [`PageRequest`] by the [`Pagination`] extractor.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaginationQuery {
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    #[param(min_length = 1, max_length = 1024)]
    pub cursor: Option<String>,
}

/// `limit` and `cursor` query parameters, validated; the cursor is checked (and the next one
/// signed) with the application's cursor key.
#[derive(Debug, Clone)]
pub struct Pagination(pub PageRequest);

impl FromRequestParts<AppContext> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let raw: PaginationQuery = parse_query(parts)?;
        PageRequest::parse(raw.limit.as_deref(), raw.cursor.as_deref())
            .map(|page| Pagination(page.keyed(state.cursor_key().clone())))
            .map_err(ApiError)
    }
}

/// The documented shape of a list response (`depot_domain::pagination::Page`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PageOf<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// For a PATCH field: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An integer body field. JSON Schema's `integer` admits an integral number written with a
/// fraction (`151.0`), so this accepts one too; anything else non-integral is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole<T>(pub T);

impl<'de, T: TryFrom<i64>> serde::Deserialize<'de> for Whole<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let number = serde_json::Number::deserialize(d)?;
        let whole = number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
                // In range and integral: the conversion is exact.
                .map(|f| f as i64)
        });
        let whole = whole.ok_or_else(|| {
            D::Error::custom(format!("invalid type: {number}, expected an integer"))
        })?;
        T::try_from(whole)
            .map(Whole)
            .map_err(|_| D::Error::custom(format!("{whole} is out of range")))
    }
}

#[cfg(test)]
mod whole_tests {
    use super::Whole;

    #[test]
    fn integral_numbers_are_integers_whatever_their_notation() {
        let read = |json: &str| serde_json::from_str::<Whole<i32>>(json).map(|w| w.0).ok();
        assert_eq!(read("151"), Some(151));
        assert_eq!(read("151.0"), Some(151));
        assert_eq!(read("-3.0"), Some(-3));
        assert_eq!(read("1.5"), None);
        assert_eq!(read("\"7\""), None);
        assert_eq!(read("3000000000"), None, "beyond i32");
    }
}
