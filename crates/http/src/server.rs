//! Serving a router on a listener until told to stop accepting.
//!
//! Our own accept loop over hyper's HTTP/1 connections (`axum::serve` has no limits at all):
//!
//! * **Idle and slow clients are dropped.** hyper's header read timer runs whenever a
//!   connection waits for a request head — on a new connection and between keep-alive requests
//!   — so one setting, [`ConnectionLimits::idle_timeout`], closes a silent socket, a client
//!   trickling a partial head and an idle keep-alive connection alike. Requests in flight are
//!   never timed out here (the router's request timeout does that).
//! * **A cap on open connections.** At the cap the loop stops accepting (new connections wait
//!   in the kernel backlog) and asks every connection older than [`SHED_MIN_AGE`] to close:
//!   idle ones close at once, busy ones after their response. A flood of idle sockets therefore
//!   cannot keep `/healthz` (or anyone) out for longer than a shedding round. Accept errors
//!   (EMFILE, ENFILE…) shed and back off instead of ending or spinning the loop.
//! * **Shutdown closes what is not working.** On `stop` the listener closes; idle connections
//!   close at once, and a connection part-way through a request head gets [`CLOSE_GRACE`] to
//!   finish it before it is dropped. Requests in flight finish, answered with
//!   `connection: close`; the caller bounds that with its shutdown deadline.
//! * The `depot_http_open_connections` gauge counts open connections (both listeners).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Once asked to close, a connection with no request in flight gets this long to complete a
/// request head it has started; then it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_millis(250);
/// At the cap, only connections at least this old are asked to close, so one that has just
/// been accepted gets to send its request.
pub const SHED_MIN_AGE: Duration = Duration::from_millis(500);
/// While at the cap, how often the loop asks again.
const SHED_INTERVAL: Duration = Duration::from_millis(100);
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Per-listener connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection must deliver a complete request head within this time of opening, or of
    /// its previous response; otherwise it is closed.
    pub idle_timeout: Duration,
    /// At most this many connections are open at once; keep it well below `ulimit -n`.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// Open connections over every listener of the process (the gauge's value).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One open connection in the gauge, for as long as its task lives (also when aborted). The
/// gauge is set, not incremented: exact even when the recorder was installed after the first
/// connections were counted.
struct OpenConnection;

impl OpenConnection {
    fn count() -> Self {
        publish(OPEN.fetch_add(1, Ordering::Relaxed) + 1);
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        publish(OPEN.fetch_sub(1, Ordering::Relaxed) - 1);
    }
}

fn publish(open: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("depot_http_open_connections").set(open as f64);
}

/// Serves until `stop` is cancelled, then stops accepting, closes idle connections and waits
/// for in-flight requests. The caller bounds that wait with its shutdown deadline (aborting
/// this future aborts the connections it still has).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    limits: ConnectionLimits,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (shed, _) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        // Reap finished connection tasks as we go.
        while connections.try_join_next().is_some() {}
        let permit = loop {
            if let Ok(permit) = permits.clone().try_acquire_owned() {
                break Some(permit);
            }
            shed.send_replace(());
            tokio::select! {
                () = stop.cancelled() => break None,
                () = tokio::time::sleep(SHED_INTERVAL) => {}
                Some(_) = connections.join_next() => {}
            }
        };
        let Some(permit) = permit else { break };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                // Out of file descriptors or similar: free some and wait, never spin.
                tracing::warn!(error = %err, "accepting a connection failed; shedding idle ones");
                shed.send_replace(());
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let connection = Connection {
            http: http.clone(),
            router: router.clone(),
            stop: stop.clone(),
            shed: shed.subscribe(),
        };
        connections.spawn(async move {
            let _open = OpenConnection::count();
            let _permit = permit;
            connection.run(stream, remote).await;
        });
    }
    drop(listener);
    // Wake every connection once more: idle ones close now.
    shed.send_replace(());
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Errors that concern one connection only (it went away before we accepted it).
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// One accepted connection and what can tell it to close.
struct Connection {
    http: http1::Builder,
    router: Router,
    stop: CancellationToken,
    shed: watch::Receiver<()>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, remote: SocketAddr) {
        let opened = Instant::now();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = {
            let in_flight = in_flight.clone();
            let router = self.router.clone();
            service_fn(move |mut request: hyper::Request<Incoming>| {
                let router = router.clone();
                let guard = InFlight::enter(&in_flight);
                request.extensions_mut().insert(ConnectInfo(remote));
                async move {
                    let response = router
                        .oneshot(request.map(axum::body::Body::new))
                        .await
                        .map_err(|never: Infallible| match never {})?;
                    // Counted until hyper has written (or dropped) the whole body.
                    Ok::<_, Infallible>(response.map(|body| Counted {
                        body,
                        _guard: guard,
                    }))
                }
            })
        };
        // Upgrades (WebSocket) hand the connection over to the socket's own task.
        let connection = self
            .http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let mut closing_since: Option<Instant> = None;
        loop {
            let grace_over = async {
                match closing_since {
                    Some(since) => tokio::time::sleep_until(since + CLOSE_GRACE).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, %remote, "connection ended with an error");
                    }
                    return;
                }
                () = self.stop.cancelled(), if closing_since.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
                Ok(()) = self.shed.changed(), if closing_since.is_none() => {
                    if opened.elapsed() >= SHED_MIN_AGE {
                        connection.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                }
                () = grace_over => {
                    if in_flight.load(Ordering::Acquire) == 0 {
                        // Nothing in flight: an unfinished request head is not worth waiting for.
                        return;
                    }
                    closing_since = Some(Instant::now());
                }
            }
        }
    }
}

/// A response body that keeps its request counted as in flight until the last frame is
/// written, so a closing connection never cuts a response short.
struct Counted {
    body: axum::body::Body,
    _guard: InFlight,
}

impl http_body::Body for Counted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts a request from the moment hyper hands it over until its response is written.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
