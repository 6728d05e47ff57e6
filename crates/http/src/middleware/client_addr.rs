//! The client's address: the TCP peer, or — when the peer is a trusted proxy
//! (`trusted_proxies`) — the hop the proxies' `client_ip_header` names. Computed once per
//! request and put in its extensions as [`ClientAddr`]; sessions, rate limits and the audit log
//! read it through [`crate::auth::client_info`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use depot_app::client::TrustedProxies;

/// The address a request is counted and recorded under; in request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

pub async fn client_addr(
    proxies: Arc<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let headers = request
            .headers()
            .get_all(proxies.header().name())
            .iter()
            .filter_map(|v| v.to_str().ok());
        let ip = proxies.client_ip(peer.ip(), headers);
        request.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(request).await
}
