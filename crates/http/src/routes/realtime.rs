//! `/api/v1/ws`: the realtime socket. A browser first asks `POST /api/v1/ws/ticket` (signed in:
//! bearer, or the session cookie with its CSRF header) for a short-lived single-use ticket,
//! then opens `GET /api/v1/ws?ticket=…` from the same Origin. The socket receives the user's
//! own messages as JSON text frames `{"type": …, "data": …}` — notifications (alerts, order
//! and payment changes, security), and whatever else is pushed to the user — from whichever
//! instance produced them. The server pings every `ws_heartbeat_secs` and closes a peer silent
//! for two intervals; a client that does not read is dropped (1013); a session that ends
//! closes its sockets (1008); shutdown closes them all (1001).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use depot_app::AppContext;
use depot_app::realtime::{Subscription, TicketView};
use depot_domain::{AppError, ErrorCode};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;

/// Longest one frame may take to reach a client before it counts as not reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes written to a socket but not yet taken by the kernel.
const MAX_UNSENT: usize = 256 * 1024;
/// Longest the close handshake is given.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(issue_ticket))
        .routes(routes!(open_socket))
}

fn origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| !o.is_empty() && *o != "null")
}

/// A ticket that opens one socket for your session, within `ws_ticket_ttl_secs` (30 s by
/// default). A browser's Origin must be one of `cors_origins`.
#[utoipa::path(post, path = "/ws/ticket", tag = "realtime", security(("bearer" = [])),
    responses((status = 201, body = TicketView),
        (status = 403, description = "`realtime.origin_refused`", body = ErrorBody)))]
async fn issue_ticket(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let ticket = ctx.realtime().issue_ticket(&me, origin(&headers)).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketQuery {
    /// The ticket from `POST /api/v1/ws/ticket`.
    #[param(max_length = 128)]
    ticket: String,
}

/// The upgrade, or why this is no WebSocket handshake.
pub struct Upgrade(Result<WebSocketUpgrade, String>);

impl FromRequestParts<AppContext> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            WebSocketUpgrade::from_request_parts(parts, state)
                .await
                .map_err(|r| r.body_text()),
        ))
    }
}

/// Open the socket with a ticket (used up by this). Not a WebSocket handshake → 400
/// `realtime.upgrade_required`; a bad, used or expired ticket → 401; another Origin → 403.
#[utoipa::path(get, path = "/ws", tag = "realtime", security(()),
    params(SocketQuery),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "`realtime.upgrade_required`", body = ErrorBody),
        (status = 401, description = "`realtime.invalid_ticket`", body = ErrorBody),
        (status = 403, description = "`realtime.origin_refused`", body = ErrorBody)))]
async fn open_socket(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<SocketQuery>,
    Upgrade(upgrade): Upgrade,
) -> ApiResult<Response> {
    // Checked before the ticket is spent: a plain GET does not use it up.
    let upgrade = upgrade.map_err(|why| {
        AppError::new(
            ErrorCode::RealtimeUpgradeRequired,
            "this is the WebSocket endpoint: open it with a WebSocket handshake",
        )
        .with_details(serde_json::json!({ "reason": why }))
    })?;
    let subscription = ctx.realtime().open(&query.ticket, origin(&headers)).await?;
    let heartbeat = ctx.realtime().heartbeat();
    // Small buffers: an idle socket costs a few KiB, not the library's 128 KiB defaults; a
    // client that stops reading fills at most `MAX_UNSENT` before the send fails and the
    // socket is dropped.
    Ok(upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, subscription, heartbeat)))
}

/// Runs one socket until it closes, for whatever reason.
async fn serve(socket: WebSocket, mut subscription: Subscription, heartbeat: Duration) {
    let (mut out, mut incoming) = socket.split();
    let close = subscription.close.clone();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut heard = Instant::now();
    let ending: Option<(u16, &'static str)> = loop {
        tokio::select! {
            biased;
            () = close.closed() => break close.reason(),
            next = subscription.messages.recv() => {
                let Some(text) = next else { break None };
                let sent = tokio::select! {
                    sent = tokio::time::timeout(SEND_TIMEOUT, out.send(Message::Text(text.as_ref().into()))) => sent,
                    () = close.closed() => break close.reason(),
                };
                match sent {
                    Ok(Ok(())) => metrics::counter!("realtime_messages_sent_total").increment(1),
                    Ok(Err(_)) => {
                        // Gone, or its unsent bytes past `MAX_UNSENT`: a client not reading.
                        metrics::counter!("realtime_drops_total", "reason" => "send_failed").increment(1);
                        break None;
                    }
                    Err(_) => {
                        metrics::counter!("realtime_drops_total", "reason" => "send_timeout").increment(1);
                        break Some((depot_app::realtime::close::TRY_AGAIN_LATER, "client too slow"));
                    }
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > heartbeat * 2 {
                    metrics::counter!("realtime_drops_total", "reason" => "dead_peer").increment(1);
                    break Some((depot_app::realtime::close::POLICY, "no answer to ping"));
                }
                if tokio::time::timeout(SEND_TIMEOUT, out.send(Message::Ping(Vec::new().into()))).await.is_err() {
                    break None;
                }
            }
            frame = incoming.next() => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                Some(Ok(_)) => heard = Instant::now(),
            },
        }
    };
    if let Some((code, reason)) = ending {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, out.send(frame)).await;
    }
    drop(subscription);
}
