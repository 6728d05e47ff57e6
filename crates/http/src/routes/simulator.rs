//! The SSLCommerz simulator (`payments_gateway = simulator`, never in prod), mounted at
//! `/simulator/sslcommerz` beside the API and outside its OpenAPI document: the session API,
//! the payment page (a form POST with `action=pay|fail|cancel`, and optionally
//! `tamper=amount|currency|risk`, does what its buttons do), and the validation,
//! transaction-query and refund APIs. Pressing a button posts the signed IPN to the
//! session's `ipn_url` before the browser is sent on to the return page.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use depot_app::AppContext;

use super::payments::{form_fields as fields, posted};

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/gwprocess/v4/api.php", post(open_session))
        .route("/pay/{session}", get(page).post(act))
        .route("/validator/api/validationserverAPI.php", get(validate))
        .route(
            "/validator/api/merchantTransIDvalidationAPI.php",
            get(merchant_api),
        )
}

fn missing() -> Response {
    (StatusCode::NOT_FOUND, "the simulator is not running").into_response()
}

async fn open_session(State(ctx): State<AppContext>, body: Bytes) -> Response {
    let payments = ctx.payments();
    let Some(sim) = payments.simulator() else {
        return missing();
    };
    axum::Json(sim.open(&fields(&body), &payments.simulator_pages())).into_response()
}

async fn page(State(ctx): State<AppContext>, Path(session): Path<String>) -> Response {
    let Some(sim) = ctx.payments().simulator() else {
        return missing();
    };
    match sim.page(&session) {
        Some(html) => Html(html).into_response(),
        None => (StatusCode::NOT_FOUND, "no such session").into_response(),
    }
}

async fn act(State(ctx): State<AppContext>, Path(session): Path<String>, body: Bytes) -> Response {
    let Some(sim) = ctx.payments().simulator() else {
        return missing();
    };
    let form = fields(&body);
    let tamper = posted(&form, "tamper");
    let outcome = match sim.act(&session, &posted(&form, "action"), Some(tamper.as_str())) {
        Ok(outcome) => outcome,
        Err(problem) => return (StatusCode::UNPROCESSABLE_ENTITY, problem).into_response(),
    };
    match sim.deliver(&outcome).await {
        Ok(status) => tracing::info!(status, "simulator: IPN delivered"),
        Err(e) => tracing::warn!(error = %e, "simulator: the IPN was not delivered"),
    }
    let tran_id = posted(&outcome.ipn, "tran_id");
    let mut to = form_urlencoded::Serializer::new(String::new());
    to.append_pair("tran_id", &tran_id);
    let separator = if outcome.redirect.contains('?') {
        '&'
    } else {
        '?'
    };
    Redirect::to(&format!("{}{separator}{}", outcome.redirect, to.finish())).into_response()
}

async fn validate(State(ctx): State<AppContext>, RawQuery(query): RawQuery) -> Response {
    let Some(sim) = ctx.payments().simulator() else {
        return missing();
    };
    let answer = sim.validate(&fields(query.unwrap_or_default().as_bytes()));
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(answer)).into_response()
}

async fn merchant_api(State(ctx): State<AppContext>, RawQuery(query): RawQuery) -> Response {
    let Some(sim) = ctx.payments().simulator() else {
        return missing();
    };
    let answer = sim.merchant_api(&fields(query.unwrap_or_default().as_bytes()));
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(answer)).into_response()
}
