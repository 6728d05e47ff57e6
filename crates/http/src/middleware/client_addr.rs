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
        // Read whatever the bytes are: a value a client made unreadable must still end the walk
        // at its bad hop, not hide the hops the proxies appended to it.
        let values = request
            .headers()
            .get_all(proxies.header().name())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        let ip = proxies.client_ip(peer.ip(), values);
        request.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(request).await
}
