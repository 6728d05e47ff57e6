//! The application context: everything a service needs, built once at startup.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use depot_adapters::{AmqpProbe, Probe, RedisProbe, SystemClock};
use depot_domain::{AppError, AppResult, Clock};
use depot_store::{Db, DbOptions};

use crate::config::{BrokerBackend, CacheBackend, Settings};
use crate::health::HealthService;
use crate::housekeeping::HousekeepingService;

/// Process lifecycle flags shared by the HTTP layer and the workers.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    /// Marks the process as shutting down: readiness answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Shared state of one Depot process. Cheap to clone.
#[derive(Clone)]
pub struct AppContext {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub lifecycle: Arc<Lifecycle>,
    pub health: HealthService,
    pub housekeeping: HousekeepingService,
}

impl AppContext {
    /// Builds the context from validated settings. Connects nothing yet: pools are lazy, so a
    /// process whose database is down still starts and reports itself not ready.
    pub fn build(settings: Settings) -> AppResult<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock))
    }

    pub fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> AppResult<Self> {
        let mut options = DbOptions::new(settings.database_url());
        options.max_connections = settings.database_max_connections;
        if settings.database_url.is_none() {
            std::fs::create_dir_all(&settings.data_dir).map_err(AppError::internal)?;
        }
        let db = Db::connect_lazy(&options)?;

        let cache: Option<Arc<dyn Probe>> = match (settings.cache_backend(), &settings.redis_url) {
            (CacheBackend::Redis, Some(url)) => {
                Some(Arc::new(RedisProbe::new(url.expose()).map_err(|e| {
                    AppError::bad_request("config.redis_url", e.0)
                })?))
            }
            _ => None,
        };
        let broker: Option<Arc<dyn Probe>> = match (settings.broker_backend(), &settings.amqp_url) {
            (BrokerBackend::Rabbitmq, Some(url)) => Some(Arc::new(AmqpProbe::new(url.expose()))),
            _ => None,
        };

        let settings = Arc::new(settings);
        let lifecycle = Arc::new(Lifecycle::default());
        let health = HealthService::new(db.clone(), lifecycle.clone(), cache, broker);
        let housekeeping = HousekeepingService::new(db.clone(), clock.clone());
        Ok(Self {
            settings,
            db,
            clock,
            lifecycle,
            health,
            housekeeping,
        })
    }
}
