//! Realtime: what a user's open WebSockets receive, from whichever process produced it.
//!
//! [`Realtime`] publishes through the fan-out adapter (in-process, or Redis pub/sub).
//! [`Hub`] holds this process's sockets: it routes what the fan-out delivers to the sockets of
//! its user, each through a bounded queue — a client that does not read is dropped (close 1013)
//! instead of buffered without bound — and closes the sockets of a session that ended (logout,
//! revocation, a disabled user: 1008) within the watch interval, and all of them on shutdown
//! (1001). [`RealtimeService`] issues the single-use tickets that open a socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use depot_adapters::realtime::{Envelope, Fanout};
use depot_domain::{AppError, AppResult, ErrorCode};
use depot_store::entity::ws_ticket;
use depot_store::repo::ws_tickets;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::authenticator::Authenticator;
use crate::auth::principal::Principal;
use crate::auth::secrets;
use crate::background::Background;
use crate::uow::Writer;

/// Close codes (RFC 6455).
pub mod close {
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// The session ended (logout, revocation, user disabled).
    pub const POLICY: u16 = 1008;
    /// The client does not read fast enough.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// How often the hub looks whether authorisation changed anywhere (then it checks the sessions
/// behind its sockets), and how long it goes without checking at most (expiry).
const WATCH_TICK: Duration = Duration::from_millis(200);
const WATCH_SWEEP: Duration = Duration::from_secs(15);

/// Publishes messages for users' sockets.
#[derive(Clone)]
pub struct Realtime {
    fanout: Arc<Fanout>,
}

impl Realtime {
    pub fn new(fanout: Arc<Fanout>) -> Self {
        Self { fanout }
    }

    /// Sends `data` as a `kind` message to every socket of `user`, on any instance.
    pub async fn push(&self, user: Uuid, kind: &str, data: &impl Serialize) {
        let Ok(data) = serde_json::to_value(data) else {
            return;
        };
        self.fanout
            .publish(Envelope {
                user_id: user,
                session_id: None,
                kind: kind.to_owned(),
                data,
            })
            .await;
    }
}

/// Why and how a socket is to be closed; set once.
#[derive(Default)]
pub struct CloseSignal {
    token: CancellationToken,
    reason: OnceLock<(u16, &'static str)>,
}

impl CloseSignal {
    /// Asks the socket to close; false when it already was (the first reason stands).
    fn close(&self, code: u16, reason: &'static str) -> bool {
        let first = self.reason.set((code, reason)).is_ok();
        self.token.cancel();
        first
    }

    /// Resolves once the socket is to close.
    pub async fn closed(&self) {
        self.token.cancelled().await;
    }

    /// The close code and reason, once closed.
    pub fn reason(&self) -> Option<(u16, &'static str)> {
        self.reason.get().copied()
    }
}

struct Slot {
    id: u64,
    session: Uuid,
    tx: mpsc::Sender<Arc<str>>,
    close: Arc<CloseSignal>,
}

/// One open socket's end of the hub: the messages for it, and its close signal. Dropping it
/// unregisters the socket.
pub struct Subscription {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub messages: mpsc::Receiver<Arc<str>>,
    pub close: Arc<CloseSignal>,
    id: u64,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.user_id, self.id);
    }
}

/// This process's sockets.
pub struct Hub {
    sockets: Mutex<HashMap<Uuid, Vec<Slot>>>,
    open: AtomicUsize,
    closing: AtomicBool,
    next_id: AtomicU64,
    max_sockets: usize,
    queue: usize,
}

fn drop_metric(reason: &'static str) {
    metrics::counter!("realtime_drops_total", "reason" => reason).increment(1);
}

impl Hub {
    pub fn new(max_sockets: usize, queue: usize) -> Arc<Self> {
        Arc::new(Self {
            sockets: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            max_sockets,
            queue: queue.max(1),
        })
    }

    /// The registry. A panic while it was held leaves it consistent (every change is one
    /// push, retain or remove), so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Slot>>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sockets open on this process.
    pub fn open_sockets(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn register(self: &Arc<Self>, user: Uuid, session: Uuid) -> AppResult<Subscription> {
        let mut sockets = self.lock();
        if self.closing.load(Ordering::Acquire) {
            return Err(AppError::new(
                ErrorCode::RealtimeTooManySockets,
                "this instance is shutting down; connect to another",
            ));
        }
        if self.open.load(Ordering::Acquire) >= self.max_sockets {
            drop_metric("capacity");
            return Err(AppError::new(
                ErrorCode::RealtimeTooManySockets,
                "this instance holds as many sockets as it may; try again later",
            ));
        }
        let (tx, messages) = mpsc::channel(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(CloseSignal::default());
        sockets.entry(user).or_default().push(Slot {
            id,
            session,
            tx,
            close: close.clone(),
        });
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::gauge!("realtime_open_sockets").set(open as f64);
        Ok(Subscription {
            user_id: user,
            session_id: session,
            messages,
            close,
            id,
            hub: self.clone(),
        })
    }

    fn remove(&self, user: Uuid, id: u64) {
        let mut sockets = self.lock();
        if let Some(slots) = sockets.get_mut(&user) {
            let before = slots.len();
            slots.retain(|s| s.id != id);
            if slots.len() < before {
                let open = self.open.fetch_sub(1, Ordering::AcqRel) - 1;
                metrics::gauge!("realtime_open_sockets").set(open as f64);
            }
            if slots.is_empty() {
                sockets.remove(&user);
            }
        }
    }

    /// Hands one fan-out message to the sockets it is for.
    pub fn deliver(&self, envelope: &Envelope) {
        let sockets = self.lock();
        let Some(slots) = sockets.get(&envelope.user_id) else {
            return;
        };
        let text: Arc<str> = match serde_json::to_string(&serde_json::json!({
            "type": envelope.kind,
            "data": envelope.data,
        })) {
            Ok(text) => text.into(),
            Err(_) => return,
        };
        for slot in slots {
            if envelope.session_id.is_some_and(|s| s != slot.session) {
                continue;
            }
            match slot.tx.try_send(text.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if slot.close.close(close::TRY_AGAIN_LATER, "client too slow") {
                        drop_metric("slow_client");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Closes every socket whose session `dead` says is over.
    fn close_where(&self, code: u16, reason: &'static str, dead: impl Fn(Uuid, Uuid) -> bool) {
        let sockets = self.lock();
        for (user, slots) in sockets.iter() {
            for slot in slots {
                if dead(*user, slot.session) {
                    slot.close.close(code, reason);
                }
            }
        }
    }

    fn sessions(&self) -> Vec<(Uuid, Uuid)> {
        let sockets = self.lock();
        let mut pairs: Vec<(Uuid, Uuid)> = sockets
            .iter()
            .flat_map(|(user, slots)| slots.iter().map(move |s| (*user, s.session)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }

    /// Routes what the fan-out delivers until `stop`.
    async fn route(
        self: Arc<Self>,
        mut from: broadcast::Receiver<Arc<Envelope>>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                received = from.recv() => match received {
                    Ok(envelope) => self.deliver(&envelope),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        metrics::counter!("realtime_lagged_total").increment(n);
                        tracing::warn!(missed = n, "the realtime hub fell behind its fan-out");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Closes the sockets of sessions that ended: checked whenever authorisation changed
    /// anywhere (the version moved), and every [`WATCH_SWEEP`] for expiry.
    async fn watch(self: Arc<Self>, auth: Authenticator, stop: CancellationToken) {
        let mut seen = auth.version().await;
        let mut swept = Instant::now();
        let mut tick = tokio::time::interval(WATCH_TICK);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let version = auth.version().await;
            if version == seen && swept.elapsed() < WATCH_SWEEP {
                continue;
            }
            seen = version;
            swept = Instant::now();
            let sessions: Vec<Uuid> = self.sessions().into_iter().map(|(_, s)| s).collect();
            if sessions.is_empty() {
                continue;
            }
            match auth.live_sessions(&sessions).await {
                Ok(live) => {
                    self.close_where(close::POLICY, "session ended", |_, s| !live.contains(&s))
                }
                Err(err) => tracing::warn!(error = ?err, "cannot check the sockets' sessions"),
            }
        }
    }

    /// Closes every socket (1001) and waits for them to go, at most `within`. Returns whether
    /// they all did.
    pub async fn shutdown(&self, within: Duration) -> bool {
        {
            // Under the lock: a socket registering after this is refused, none slips past.
            let _registry = self.lock();
            self.closing.store(true, Ordering::Release);
        }
        self.close_where(close::GOING_AWAY, "server shutting down", |_, _| true);
        let deadline = Instant::now() + within;
        while self.open_sockets() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.open_sockets() == 0
    }
}

/// A ticket as handed to the client: use it once, before it expires.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

/// Tickets, the hub and its tasks.
#[derive(Clone)]
pub struct RealtimeService {
    writer: Writer,
    authenticator: Authenticator,
    hub: Arc<Hub>,
    fanout: Arc<Fanout>,
    ticket_ttl: Duration,
    heartbeat: Duration,
    allowed_origins: Arc<Vec<String>>,
    stop: CancellationToken,
}

/// The settings of the socket side.
pub struct SocketSettings {
    pub ticket_ttl: Duration,
    pub heartbeat: Duration,
    pub max_sockets: usize,
    pub queue: usize,
    pub allowed_origins: Vec<String>,
}

impl RealtimeService {
    pub fn new(
        writer: Writer,
        authenticator: Authenticator,
        fanout: Arc<Fanout>,
        settings: SocketSettings,
    ) -> Self {
        Self {
            writer,
            authenticator,
            hub: Hub::new(settings.max_sockets, settings.queue),
            fanout,
            ticket_ttl: settings.ticket_ttl,
            heartbeat: settings.heartbeat,
            allowed_origins: Arc::new(settings.allowed_origins),
            stop: CancellationToken::new(),
        }
    }

    /// Registers the purge of used and expired tickets.
    pub fn register(&self, background: &mut Background) {
        let this = self.clone();
        background.periodic("purge_ws_tickets", "every 10m", move || {
            let this = this.clone();
            async move {
                let tx = this.writer.db().begin().await?;
                let purged = ws_tickets::purge(&*tx, this.writer.now()).await?;
                tx.commit().await?;
                Ok(purged)
            }
        });
    }

    /// Starts routing fan-out messages to this process's sockets and watching their sessions
    /// (an API process).
    pub fn start(&self) {
        self.fanout.start();
        tokio::spawn(
            self.hub
                .clone()
                .route(self.fanout.subscribe(), self.stop.clone()),
        );
        tokio::spawn(
            self.hub
                .clone()
                .watch(self.authenticator.clone(), self.stop.clone()),
        );
    }

    /// Closes every socket (1001), waiting at most `within`, then stops the hub's tasks.
    pub async fn shutdown(&self, within: Duration) -> bool {
        let closed = self.hub.shutdown(within).await;
        self.stop.cancel();
        self.fanout.close();
        closed
    }

    /// Sends `data` as a `kind` message to every socket of `user`, on any instance.
    pub async fn push(&self, user: Uuid, kind: &str, data: &impl Serialize) {
        Realtime::new(self.fanout.clone())
            .push(user, kind, data)
            .await;
    }

    /// `memory` or `redis`: how messages reach the other instances.
    pub fn backend(&self) -> &'static str {
        self.fanout.backend()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// Whether a browser page from `origin` may open a socket: one of `cors_origins`.
    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    /// A single-use ticket for `principal`'s session, good for `ws_ticket_ttl_secs`. A browser
    /// (which sends `Origin`) must be on an allowed origin, and the socket must then come from
    /// the same one.
    pub async fn issue_ticket(
        &self,
        principal: &Principal,
        origin: Option<&str>,
    ) -> AppResult<TicketView> {
        if let Some(origin) = origin
            && !self.origin_allowed(origin)
        {
            return Err(origin_refused());
        }
        let ticket = secrets::random_token(32);
        let now = self.writer.now();
        let expires_at = now + chrono::Duration::from_std(self.ticket_ttl).unwrap_or_default();
        let tx = self.writer.db().begin().await?;
        ws_tickets::insert(
            &*tx,
            ws_ticket::Model {
                id: depot_domain::id::new_id(),
                token_hash: secrets::digest(&ticket),
                user_id: principal.user_id,
                session_id: principal.session_id,
                origin: origin.map(str::to_owned),
                expires_at,
                used_at: None,
                created_at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(TicketView { ticket, expires_at })
    }

    /// Redeems `ticket` (once) and registers a socket for its session.
    pub async fn open(&self, ticket: &str, origin: Option<&str>) -> AppResult<Subscription> {
        let tx = self.writer.db().begin().await?;
        let redeemed =
            ws_tickets::redeem(&*tx, &secrets::digest(ticket), self.writer.now()).await?;
        tx.commit().await?;
        let ticket = redeemed.ok_or_else(invalid_ticket)?;
        let same_origin = match (ticket.origin.as_deref(), origin) {
            (None, None) => true,
            (Some(asked), Some(now)) => asked.eq_ignore_ascii_case(now),
            _ => false,
        };
        if !same_origin || origin.is_some_and(|o| !self.origin_allowed(o)) {
            return Err(origin_refused());
        }
        if !self
            .authenticator
            .session_alive(ticket.user_id, ticket.session_id)
            .await?
        {
            return Err(invalid_ticket());
        }
        self.hub.register(ticket.user_id, ticket.session_id)
    }
}

fn invalid_ticket() -> AppError {
    AppError::new(
        ErrorCode::RealtimeInvalidTicket,
        "the ticket is unknown, expired or already used",
    )
}

fn origin_refused() -> AppError {
    AppError::new(
        ErrorCode::RealtimeOriginRefused,
        "sockets may not be opened from this origin",
    )
}
