//! The Depot process: wires configuration, the application context, the HTTP servers and the
//! background workers together, and shuts them down in order.
//!
//! Shutdown sequence (on SIGTERM/SIGINT or [`ShutdownHandle::shutdown`]):
//! 1. readiness turns to `draining` (503) so load balancers stop sending traffic;
//! 2. after `shutdown_drain_delay_ms`, the listeners close: new connections are refused;
//! 3. open WebSockets are closed (1001, "going away") and in-flight requests finish, bounded
//!    by `shutdown_deadline_secs`;
//! 4. background jobs stop (a running job finishes its run) within what is left of the deadline;
//! 5. database pools close. The process then exits 0.

pub mod telemetry;
pub mod wiring;

/// The allocator of every program built on this crate (the server, the CLI, the tests, the
/// benchmarks): jemalloc. With glibc's allocator a bulk import — rows decoded on the database
/// driver's threads, freed on the runtime's — left each thread's arena at its high-water mark:
/// the import benchmark peaked at 255 MiB where jemalloc peaks at 177–209 MiB, and an idle
/// process starts at 55 MiB instead of 90 (`bench/RESULTS.md`). Its options are compiled in
/// (`.cargo/config.toml`): freed pages go back to the system within 200 ms, purged by
/// background threads.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(test)]
mod allocator_tests {
    use tikv_jemalloc_ctl::opt;

    /// The options of `.cargo/config.toml` are compiled in (the safe API reads only this one
    /// of them; the decay times come with it).
    #[test]
    fn jemalloc_purges_freed_memory_from_background_threads() {
        assert_eq!(opt::background_thread::read().ok(), Some(true));
    }
}

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use depot_app::AppContext;
use depot_app::config::Settings;
use depot_http::server::ConnectionLimits;
use depot_worker::Workers;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API and background workers.
    All,
    /// Only the HTTP API.
    Api,
    /// Only the background workers (and the metrics listener, if configured).
    Worker,
}

impl Role {
    fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    fn runs_workers(self) -> bool {
        matches!(self, Self::All | Self::Worker)
    }
}

/// Requests a graceful shutdown of an [`Application`].
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// A running Depot process.
pub struct Application {
    ctx: AppContext,
    api_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    stop_accepting: CancellationToken,
    servers: Vec<JoinHandle<()>>,
    workers: Option<Workers>,
}

impl Application {
    /// Builds the context, migrates (when configured to), binds the listeners and starts
    /// serving. `settings` must already be validated.
    pub async fn start(settings: Settings, role: Role) -> anyhow::Result<Self> {
        let ctx = wiring::build_context(settings)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Self::start_with(ctx, role).await
    }

    /// Starts around a context built by the caller (tests add consumers this way).
    pub async fn start_with(ctx: AppContext, role: Role) -> anyhow::Result<Self> {
        let auto_migrate = ctx.settings().auto_migrate();
        prepare_schema(&ctx, auto_migrate).await?;

        let shutdown = CancellationToken::new();
        let stop_accepting = CancellationToken::new();
        let mut servers = Vec::new();
        let limits = ConnectionLimits {
            idle_timeout: ctx.settings().http_idle_timeout(),
            max_connections: ctx.settings().http_max_connections,
        };

        let api_addr = if role.serves_api() {
            let router = depot_http::router(&ctx);
            let (addr, handle) = bind_and_serve(
                "api",
                ctx.settings().http_addr,
                limits,
                router,
                &stop_accepting,
                &shutdown,
            )
            .await?;
            servers.push(handle);
            ctx.payments().listening_on(addr);
            ctx.realtime().start();
            Some(addr)
        } else {
            None
        };
        let metrics_addr = match ctx.settings().metrics_addr {
            Some(addr) => {
                let router = depot_http::metrics::router(ctx.health().clone());
                let (addr, handle) =
                    bind_and_serve("metrics", addr, limits, router, &stop_accepting, &shutdown)
                        .await?;
                servers.push(handle);
                Some(addr)
            }
            None => None,
        };
        let workers = role.runs_workers().then(|| Workers::start(&ctx));
        tracing::info!(
            ?role,
            profile = ?ctx.settings().profile,
            database = ctx.schema().backend(),
            "depot started"
        );
        Ok(Self {
            ctx,
            api_addr,
            metrics_addr,
            shutdown,
            stop_accepting,
            servers,
            workers,
        })
    }

    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn context(&self) -> &AppContext {
        &self.ctx
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Waits for a shutdown request, then shuts down in order (see the crate docs).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        let settings = self.ctx.settings().clone();
        let deadline = Instant::now() + settings.shutdown_deadline();
        tracing::info!("shutdown requested: draining");
        self.ctx.lifecycle().start_draining();
        tokio::time::sleep(settings.shutdown_drain_delay()).await;

        self.stop_accepting.cancel();
        let mut clean = true;
        if self.api_addr.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.ctx.realtime().shutdown(left).await {
                tracing::warn!("shutdown deadline passed with sockets still open");
                clean = false;
            }
        }
        for server in self.servers {
            let left = deadline.saturating_duration_since(Instant::now());
            let abort = server.abort_handle();
            if tokio::time::timeout(left, server).await.is_err() {
                tracing::warn!("shutdown deadline passed with requests in flight; closing them");
                abort.abort();
                clean = false;
            }
        }
        if let Some(workers) = self.workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if !workers.stop(left.max(Duration::from_millis(10))).await {
                tracing::warn!("shutdown deadline passed with background jobs running");
                clean = false;
            }
        }
        self.ctx.close().await;
        tracing::info!(clean, "depot stopped");
        Ok(())
    }
}

/// Dev: applies pending migrations. Prod: never migrates; with migrations pending it still
/// starts, but readiness answers 503 until `depot migrate up` has run.
async fn prepare_schema(ctx: &AppContext, auto_migrate: bool) -> anyhow::Result<()> {
    if auto_migrate {
        let state = ctx
            .schema()
            .migrate_up()
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .context("applying migrations at startup (auto_migrate is on)")?;
        tracing::info!(applied = state.applied.len(), "schema is current");
        return Ok(());
    }
    match ctx.schema().state().await {
        Ok(state) if state.is_current() => {
            tracing::info!("schema is current");
            seed(ctx).await?;
        }
        Ok(state) => tracing::error!(
            pending = ?state.pending,
            "migrations are pending and auto_migrate is off: not ready until `depot migrate up` runs"
        ),
        Err(err) => tracing::error!(error = ?err, "cannot read the schema state; not ready"),
    }
    Ok(())
}

/// Data every installation needs once the schema is current: the built-in roles.
async fn seed(ctx: &AppContext) -> anyhow::Result<()> {
    ctx.schema()
        .seed()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("creating the built-in roles")
}

/// Binds with a deep accept backlog (tokio's default is 128), so a burst of connections waits
/// in the kernel rather than being refused while the server sheds idle ones.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn bind_and_serve(
    name: &'static str,
    addr: SocketAddr,
    limits: ConnectionLimits,
    router: axum::Router,
    stop_accepting: &CancellationToken,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener =
        listen(addr).with_context(|| format!("binding the {name} listener to {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(listener = name, addr = %local, "listening");
    let stop = stop_accepting.clone();
    let shutdown = shutdown.clone();
    let handle = tokio::spawn(async move {
        if let Err(err) = depot_http::server::serve(listener, router, stop, limits).await {
            tracing::error!(listener = name, error = %err, "server failed; shutting down");
        }
        // A server that ends on its own takes the process down with it.
        shutdown.cancel();
    });
    Ok((local, handle))
}
