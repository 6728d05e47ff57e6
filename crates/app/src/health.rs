//! Liveness and readiness.
//!
//! Readiness asks every dependency at once, each bounded by a timeout:
//! - `database` must answer and `migrations` must be current, or the process is **not ready**;
//! - `cache` (Redis) and `broker` (RabbitMQ) that do not answer are **degraded**: requests still
//!   succeed (the cache falls back to the database, the outbox holds events until the broker is
//!   back), so an outage there must not take every API instance out of rotation;
//! - while shutting down the process is **draining** and not ready.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use depot_adapters::Probe;
use depot_store::Db;
pub use depot_store::PoolStats;
use serde::Serialize;
use utoipa::ToSchema;

use crate::lifecycle::Lifecycle;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Up,
    Degraded,
    Down,
}

/// The state of one dependency.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ComponentReport {
    pub status: ComponentStatus,
    /// Which implementation is in use (`sqlite`, `postgres`, `memory`, `redis`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Why the component is not up; never contains credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Pending migration names (only on `migrations`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Vec<String>>,
}

impl ComponentReport {
    fn up(backend: &str) -> Self {
        Self {
            status: ComponentStatus::Up,
            backend: Some(backend.to_owned()),
            latency_ms: None,
            error: None,
            pending: None,
        }
    }

    fn failed(status: ComponentStatus, backend: &str, error: impl Into<String>) -> Self {
        Self {
            status,
            error: Some(error.into()),
            ..Self::up(backend)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverallStatus {
    Ready,
    NotReady,
    Draining,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Readiness {
    pub status: OverallStatus,
    pub components: BTreeMap<&'static str, ComponentReport>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == OverallStatus::Ready
    }
}

/// Answers readiness by probing every dependency.
#[derive(Clone)]
pub struct HealthService {
    db: Db,
    lifecycle: Arc<Lifecycle>,
    cache: Option<Arc<dyn Probe>>,
    broker: Option<Arc<dyn Probe>>,
}

impl HealthService {
    pub fn new(
        db: Db,
        lifecycle: Arc<Lifecycle>,
        cache: Option<Arc<dyn Probe>>,
        broker: Option<Arc<dyn Probe>>,
    ) -> Self {
        Self {
            db,
            lifecycle,
            cache,
            broker,
        }
    }

    /// Connection pool statistics, one entry per pool (for the metrics endpoint).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.db.pool_stats()
    }

    pub async fn readiness(&self) -> Readiness {
        let (database, cache, broker) =
            tokio::join!(self.database(), self.probe_cache(), self.probe_broker());
        let (database, migrations) = database;

        let mut components = BTreeMap::new();
        components.insert("database", database);
        components.insert("migrations", migrations);
        components.insert("cache", cache);
        components.insert("broker", broker);

        let status = if self.lifecycle.is_draining() {
            OverallStatus::Draining
        } else if components
            .values()
            .any(|c| c.status == ComponentStatus::Down)
        {
            OverallStatus::NotReady
        } else {
            OverallStatus::Ready
        };
        Readiness { status, components }
    }

    async fn database(&self) -> (ComponentReport, ComponentReport) {
        let backend = self.db.backend().as_str();
        let started = Instant::now();
        if let Err(err) = self.db.ping(PROBE_TIMEOUT).await {
            tracing::warn!(error = ?err, "readiness: database unreachable");
            let down = ComponentReport::failed(ComponentStatus::Down, backend, err.message());
            let unknown = ComponentReport::failed(
                ComponentStatus::Down,
                backend,
                "unknown: the database is unreachable",
            );
            return (down, unknown);
        }
        let database = ComponentReport {
            latency_ms: Some(elapsed_ms(started)),
            ..ComponentReport::up(backend)
        };
        let migrations = match self.db.migration_state().await {
            Ok(state) if state.is_current() => ComponentReport::up(backend),
            Ok(state) => ComponentReport {
                pending: Some(state.pending),
                ..ComponentReport::failed(
                    ComponentStatus::Down,
                    backend,
                    "migrations are pending: run `depot migrate up`",
                )
            },
            Err(err) => ComponentReport::failed(ComponentStatus::Down, backend, err.message()),
        };
        (database, migrations)
    }

    async fn probe_cache(&self) -> ComponentReport {
        match &self.cache {
            None => ComponentReport::up("memory"),
            Some(probe) => run_probe(probe.as_ref(), "redis").await,
        }
    }

    async fn probe_broker(&self) -> ComponentReport {
        match &self.broker {
            None => ComponentReport::up("database"),
            Some(probe) => run_probe(probe.as_ref(), "rabbitmq").await,
        }
    }
}

async fn run_probe(probe: &dyn Probe, backend: &str) -> ComponentReport {
    let started = Instant::now();
    match probe.check(PROBE_TIMEOUT).await {
        Ok(()) => ComponentReport {
            latency_ms: Some(elapsed_ms(started)),
            ..ComponentReport::up(backend)
        },
        Err(err) => {
            tracing::warn!(backend, error = %err, "readiness: dependency degraded");
            ComponentReport::failed(ComponentStatus::Degraded, backend, err.0)
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
