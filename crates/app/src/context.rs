//! The application context: everything a service needs, built once at startup.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use depot_adapters::broker::database::{DatabaseQueue, DatabaseQueueOptions};
use depot_adapters::broker::rabbitmq::RabbitMq;
use depot_adapters::broker::{Broker, QueueSpec};
use depot_adapters::cache::{Cache, CacheOptions, RedisLayer};
use depot_adapters::mail::{FileMailer, Mailer, SmtpMailer};
use depot_adapters::{AmqpProbe, Probe, RedisProbe, SystemClock};
use depot_domain::{AppError, AppResult, Clock};
use depot_store::{Db, DbOptions};

use crate::auth::AuthService;
use crate::config::{BrokerBackend, CacheBackend, MailBackend, Settings};
use crate::debug::{DebugHandler, DebugService};
use crate::health::HealthService;
use crate::housekeeping::HousekeepingService;
use crate::mail::MailService;
use crate::messaging::{Handler, Relay, Scheduler, queue_spec};
use crate::roles::RoleService;
use crate::users::UserService;

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
    /// Identifies this process in claims and leases.
    pub instance_id: String,
    pub broker: Arc<dyn Broker>,
    pub cache: Arc<Cache>,
    pub mail: MailService,
    /// Every consumer this build knows, whether or not this process runs them.
    pub handlers: Vec<Arc<dyn Handler>>,
    pub relay: Relay,
    pub scheduler: Scheduler,
    pub health: HealthService,
    pub housekeeping: HousekeepingService,
    pub auth: AuthService,
    pub users: UserService,
    pub roles: RoleService,
    pub idempotency: crate::idempotency::IdempotencyService,
    /// Present only with `debug_routes`.
    pub debug: Option<DebugService>,
}

impl AppContext {
    /// Builds the context from validated settings. Pools are lazy, so a process whose database
    /// is down still starts and reports itself not ready.
    pub async fn build(settings: Settings) -> AppResult<Self> {
        Self::build_with(settings, Arc::new(SystemClock), Vec::new()).await
    }

    /// As [`AppContext::build`], with a chosen clock and extra consumers (tests).
    pub async fn build_with(
        settings: Settings,
        clock: Arc<dyn Clock>,
        extra_handlers: Vec<Arc<dyn Handler>>,
    ) -> AppResult<Self> {
        let mut options = DbOptions::new(settings.database_url());
        options.max_connections = settings.database_max_connections;
        if settings.database_url.is_none() {
            std::fs::create_dir_all(&settings.data_dir).map_err(AppError::internal)?;
        }
        let db = Db::connect_lazy(&options)?;
        let instance_id = format!(
            "depot-{}-{}",
            std::process::id(),
            &depot_domain::id::new_id().simple().to_string()[24..]
        );

        let cache_probe: Option<Arc<dyn Probe>> =
            match (settings.cache_backend(), &settings.redis_url) {
                (CacheBackend::Redis, Some(url)) => {
                    Some(Arc::new(RedisProbe::new(url.expose()).map_err(|e| {
                        AppError::bad_request("config.redis_url", e.0)
                    })?))
                }
                _ => None,
            };
        let broker_probe: Option<Arc<dyn Probe>> =
            match (settings.broker_backend(), &settings.amqp_url) {
                (BrokerBackend::Rabbitmq, Some(url)) => {
                    Some(Arc::new(AmqpProbe::new(url.expose())))
                }
                _ => None,
            };

        let redis = match (settings.cache_backend(), &settings.redis_url) {
            (CacheBackend::Redis, Some(url)) => Some(
                RedisLayer::new(url.expose())
                    .map_err(|e| AppError::bad_request("config.redis_url", e))?,
            ),
            _ => None,
        };
        let cache = Arc::new(Cache::new(
            redis,
            CacheOptions {
                namespace: settings.namespace.clone(),
                ..CacheOptions::default()
            },
        ));

        cache.start_sync();
        let mailer: Arc<dyn Mailer> = match (settings.mail_backend(), &settings.smtp_url) {
            (MailBackend::Smtp, Some(url)) => Arc::new(
                SmtpMailer::new(url.expose(), &settings.mail_from, Duration::from_secs(10))
                    .map_err(|e| AppError::bad_request("config.smtp_url", e.message))?,
            ),
            _ => Arc::new(
                FileMailer::new(settings.data_dir.join("mail"), &settings.mail_from)
                    .map_err(|e| AppError::bad_request("config.mail_from", e.message))?,
            ),
        };
        let mail = MailService::new(db.clone(), clock.clone(), mailer);
        let auth = AuthService::new(&settings, db.clone(), clock.clone(), cache.clone())?;
        let users = UserService::new(db.clone(), clock.clone(), auth.clone());
        let roles = RoleService::new(db.clone(), clock.clone(), auth.clone());
        let idempotency =
            crate::idempotency::IdempotencyService::new(db.clone(), clock.clone(), &settings);

        let mut handlers = extra_handlers;
        let debug = settings.debug_routes.then(|| {
            handlers.push(Arc::new(DebugHandler::new(clock.clone())));
            DebugService::new(db.clone(), clock.clone(), cache.clone())
        });
        let broker: Arc<dyn Broker> = match (settings.broker_backend(), &settings.amqp_url) {
            (BrokerBackend::Rabbitmq, Some(url)) => {
                Arc::new(RabbitMq::new(url.expose(), &settings.namespace))
            }
            _ => Arc::new(DatabaseQueue::new(
                db.clone(),
                clock.clone(),
                DatabaseQueueOptions {
                    visibility_timeout: settings.queue_visibility_timeout(),
                    ..DatabaseQueueOptions::default()
                },
                instance_id.clone(),
            )),
        };
        let specs: Vec<QueueSpec> = handlers
            .iter()
            .map(|h| queue_spec(h.as_ref(), None))
            .collect();
        broker.declare(&specs).await.map_err(|e| {
            AppError::unavailable("broker.declare", "cannot declare the message topology")
                .with_source(e)
        })?;

        let settings = Arc::new(settings);
        let lifecycle = Arc::new(Lifecycle::default());
        let health = HealthService::new(db.clone(), lifecycle.clone(), cache_probe, broker_probe);
        let housekeeping = HousekeepingService::new(db.clone(), clock.clone());
        let relay = Relay::new(
            db.clone(),
            broker.clone(),
            clock.clone(),
            instance_id.clone(),
        );
        let scheduler = Scheduler::new(db.clone(), clock.clone(), instance_id.clone());
        Ok(Self {
            settings,
            db,
            clock,
            lifecycle,
            instance_id,
            broker,
            cache,
            mail,
            handlers,
            relay,
            scheduler,
            health,
            housekeeping,
            auth,
            users,
            roles,
            idempotency,
            debug,
        })
    }
}
