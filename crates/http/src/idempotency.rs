//! `Idempotency-Key` on any state-changing route: wrap its `routes!(…)` in [`idempotent`], which
//! documents the header (and its 400/409/422 answers) on the operation and layers
//! [`middleware`] under it.
//!
//! With the header, the middleware authenticates the caller (keys are scoped to the user and
//! the operation), buffers the body, and asks [`IdempotencyService::begin`]: the first request
//! runs and its response is stored; a repeat gets the stored response with
//! `Idempotent-Replayed: true` and causes nothing. A 5xx (or 401, 403, 408, 429 — answers about
//! the moment, not the request) releases the key instead, as does a request cancelled midway,
//! so a retry runs anew. Without the header nothing changes.
//!
//! [`IdempotencyService::begin`]: depot_app::idempotency::IdempotencyService::begin

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use depot_app::AppContext;
use depot_app::idempotency::{self, Begin, Claim, IdempotencyService, MAX_KEY_LEN, StoredResponse};
use depot_domain::AppError;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Required};
use utoipa_axum::router::UtoipaMethodRouter;

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody, generic_error};
use crate::middleware::envelope::KeepBody;
use crate::middleware::request_id::RequestId;

/// The request header naming the key.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header marking a replayed response.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The application context for [`middleware`], whose routes are described before any context
/// exists; [`crate::router`] provides it as a request extension.
#[derive(Clone)]
pub struct IdempotencyContext(AppContext);

/// The extension layer that hands `ctx` to [`middleware`].
pub fn provide(ctx: &AppContext) -> Extension<IdempotencyContext> {
    Extension(IdempotencyContext(ctx.clone()))
}

/// Makes the operations of `route` idempotent by `Idempotency-Key` and documents it.
pub fn idempotent(route: UtoipaMethodRouter<AppContext>) -> UtoipaMethodRouter<AppContext> {
    let (schemas, mut paths, method_router) = route;
    for item in paths.paths.values_mut() {
        for operation in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            document(operation);
        }
    }
    (
        schemas,
        paths,
        method_router.layer(axum::middleware::from_fn(middleware)),
    )
}

/// The middleware behind [`idempotent`].
pub async fn middleware(request: Request, next: Next) -> Response {
    let mut values = request.headers().get_all(&IDEMPOTENCY_KEY).iter();
    let Some(first) = values.next() else {
        return next.run(request).await;
    };
    let key = match values.next() {
        Some(_) => Err(idempotency::invalid_key()),
        None => idempotency::validate_key(first.as_bytes()).map(str::to_owned),
    };
    let Some(IdempotencyContext(ctx)) = request.extensions().get::<IdempotencyContext>().cloned()
    else {
        return ApiError(AppError::internal(std::io::Error::other(
            "the idempotency context is not provided",
        )))
        .into_response();
    };
    let (mut parts, body) = request.into_parts();
    // The caller first (a 401 beats a bad key): keys are scoped to the user. The principal stays
    // in the request extensions, so the handler does not authenticate again.
    let principal = match Authenticated::from_request_parts(&mut parts, &ctx).await {
        Ok(Authenticated(principal)) => principal,
        Err(rejection) => return rejection.into_response(),
    };
    let key = match key {
        Ok(key) => key,
        Err(err) => return ApiError(err).into_response(),
    };
    let bytes = match buffer(&parts, body).await {
        Ok(bytes) => bytes,
        Err(rejection) => return rejection,
    };
    let method = parts.method.as_str();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or(parts.uri.path(), MatchedPath::as_str);
    // The full path: inside a nested router `parts.uri` has lost its prefix.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let scope = idempotency::scope(principal.user_id, method, route);
    let fingerprint = idempotency::fingerprint(method, path, &bytes);
    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());

    let service = ctx.idempotency().clone();
    let claim = match service.begin(&scope, &key, &fingerprint).await {
        Ok(Begin::Run(claim)) => claim,
        Ok(Begin::Replay(stored)) => return replay(stored, request_id),
        Err(err) => return refusal(err),
    };
    let mut guard = ReleaseOnDrop {
        service: service.clone(),
        claim: Some(claim.clone()),
    };
    // The handler's units of work mark the claim committed in their own transactions
    // (through `ClientInfo`), so the request never runs twice once it took effect.
    let mut parts = parts;
    parts.extensions.insert(claim);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    // The handler has run (and may have committed): from here the key is never released on
    // a failure, only completed; an unfinished claim ends with its lease.
    let Some(claim) = guard.claim.take() else {
        return Response::from_parts(parts, body);
    };
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        tracing::error!(key = %claim.key, "the response body could not be read; the key stays claimed until its lease ends");
        return ApiError(AppError::internal(std::io::Error::other(
            "the response body could not be read",
        )))
        .into_response();
    };
    let keep = keeps(parts.status);
    let response = StoredResponse {
        status: parts.status.as_u16(),
        body: stored_body(&parts, &body),
    };
    // On a task of its own: the client going away now must not leave the key claimed.
    let finish = tokio::spawn(async move { finish(&service, &claim, Some(response), keep).await });
    if let Err(err) = finish.await {
        tracing::error!(error = %err, "storing an idempotent response failed");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Whether a response is stored for replay: every 2xx–4xx except answers about the moment
/// rather than the request (401, 403, 408, 429), which a retry may well change.
fn keeps(status: StatusCode) -> bool {
    !(status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        ))
}

/// Ends the claim: stores `response` when it is `kept`, else releases the key — unless the
/// request committed an effect, whose answer (when there is one) is then stored whatever it
/// is, so that no retry runs it again.
async fn finish(
    service: &IdempotencyService,
    claim: &Claim,
    response: Option<StoredResponse>,
    kept: bool,
) {
    let outcome = match (response, kept) {
        (Some(response), true) => service.complete(claim, response).await,
        (response, _) => match (service.release(claim).await, response) {
            (Ok(false), Some(response)) => service.complete(claim, response).await,
            // Dropped after its effect committed: no answer to store; the key stays
            // committed and copies learn that its response is lost.
            (Ok(false), None) => Ok(true),
            (other, _) => other,
        },
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            key = %claim.key,
            "the idempotency claim was lost before the request finished"
        ),
        // The response stands and the key stays claimed until its lease ends: releasing it
        // now could let a retry run a second time after an effect that did commit.
        Err(err) => {
            tracing::error!(code = err.code(), cause = %err.cause_chain(), "finishing an idempotency claim failed; the key stays claimed until its lease ends");
        }
    }
}

/// The body to store: for an error, the envelope the client gets (minus the request id, set
/// per response); otherwise the JSON body (`None` when empty).
fn stored_body(parts: &axum::http::response::Parts, body: &Bytes) -> Option<serde_json::Value> {
    if parts.status.is_client_error() || parts.status.is_server_error() {
        let envelope = parts
            .extensions
            .get::<ErrorBody>()
            .cloned()
            .unwrap_or_else(|| ErrorBody::from_error(&generic_error(parts.status)));
        return serde_json::to_value(envelope).ok();
    }
    if body.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into())),
    )
}

/// The stored response, marked as a replay. An error envelope gets this request's id.
fn replay(stored: StoredResponse, request_id: Option<String>) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let is_error = status.is_client_error() || status.is_server_error();
    let mut response = match stored.body {
        Some(mut body) => {
            if is_error && let Some(envelope) = body.as_object_mut() {
                envelope.insert("request_id".into(), request_id.into());
            }
            (status, axum::Json(body)).into_response()
        }
        None => status.into_response(),
    };
    if is_error {
        response.extensions_mut().insert(KeepBody);
    }
    response.headers_mut().insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}

/// An error of [`IdempotencyService::begin`]; a key in progress suggests when to retry.
fn refusal(err: AppError) -> Response {
    let in_progress = err.code() == "idempotency.in_progress";
    let mut response = ApiError(err).into_response();
    if in_progress {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Reads the whole body under the route's limits (413 past them).
async fn buffer(parts: &Parts, body: Body) -> Result<Bytes, Response> {
    let mut probe = Request::new(body);
    *probe.extensions_mut() = parts.extensions.clone();
    Bytes::from_request(probe, &())
        .await
        .map_err(IntoResponse::into_response)
}

/// Releases the claim if the request is dropped (cancelled, timed out, panicked) while the
/// handler runs.
struct ReleaseOnDrop {
    service: IdempotencyService,
    claim: Option<Claim>,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        let service = self.service.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { finish(&service, &claim, None, false).await });
        }
    }
}

const PARAMETER_DOC: &str = "\
Makes the request safe to retry. The first response (2xx or 4xx) to a request with this key is \
stored for 24 hours per user and operation; a repeat of the same request (method, path and \
body) gets that response again, with `Idempotent-Replayed: true`, and changes nothing. A copy \
sent while the first is still running waits for it. 1-255 printable ASCII characters, e.g. a \
UUID. A 5xx is not stored: retry with the same key.";

/// Adds the header parameter and its answers to `operation`.
fn document(operation: &mut Operation) {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LEN))
        // Printable ASCII; no space at either end (HTTP trims header values).
        .pattern(Some(r"^[\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?$"))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(PARAMETER_DOC))
            .schema(Some(schema))
            .build()
            .into(),
    );
    let replayed = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
        .description(Some("`true` when this is the stored response to an earlier request with the same `Idempotency-Key`"))
        .build();
    for (status, response) in operation.responses.responses.iter_mut() {
        if status.starts_with('2')
            && let RefOr::T(response) = response
        {
            response
                .headers
                .insert("Idempotent-Replayed".into(), replayed.clone().into());
        }
    }
    for (status, doc) in [
        (
            "400",
            "`idempotency.invalid_key`: the `Idempotency-Key` is not 1-255 printable ASCII characters",
        ),
        (
            "409",
            "`idempotency.in_progress`: a request with this `Idempotency-Key` is still running (see `Retry-After`); `idempotency.response_lost`: it took effect but the server stopped before storing its response (it will not run again)",
        ),
        (
            "422",
            "`idempotency.key_reused`: this `Idempotency-Key` was used for a different request",
        ),
    ] {
        let entry = operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
        if let RefOr::T(response) = entry {
            if !response.description.is_empty() {
                response.description.push_str("; ");
            }
            response.description.push_str(doc);
        }
    }
}
