//! The application context: the services of one process, built once at start-up from the
//! settings and the adapters the edge chose (see `depot::wiring`).
//!
//! It hands out services, never the database: the HTTP layer and the workers can only do what
//! a service offers.

use depot_domain::ErrorCode;
use std::sync::Arc;

use depot_adapters::Probe;
use depot_adapters::blobs::Blobs;
use depot_adapters::broker::Broker;
use depot_adapters::cache::Cache;
use depot_adapters::mail::Mailer;
use depot_adapters::realtime::Fanout;
use depot_adapters::webhook::WebhookClient;
use depot_domain::pagination::CursorKey;
use depot_domain::{AppError, AppResult, Clock};
use depot_store::Db;

use crate::audit::AuditService;
use crate::auth::AuthServices;
use crate::auth::authenticator::Authenticator;
use crate::auth::mfa::MfaService;
use crate::auth::password::PasswordService;
use crate::auth::rate_limit::ApiRateLimiter;
use crate::auth::sealed::Sealer;
use crate::auth::sessions::SessionService;
use crate::background::Background;
use crate::catalog::CatalogService;
use crate::config::Settings;
use crate::crm::CustomerService;
use crate::dashboard::DashboardService;
use crate::debug::DebugService;
use crate::health::HealthService;
use crate::housekeeping::HousekeepingService;
use crate::idempotency::IdempotencyService;
use crate::imports::{ExportService, ImportService};
use crate::lifecycle::Lifecycle;
use crate::mail::MailService;
use crate::messaging::{Handler, HandlerDelivery, Relay, Scheduler, queue_spec};
use crate::notifications::NotificationService;
use crate::payments::PaymentService;
use crate::purchasing::PurchasingService;
use crate::realtime::{Realtime, RealtimeService, SocketSettings};
use crate::reports::{ReportService, ReportSettings};
use crate::roles::RoleService;
use crate::sales::SalesService;
use crate::schema::SchemaService;
use crate::stock::StockService;
use crate::stock::alerts::AlertService;
use crate::uow::{RelayWaker, Writer};
use crate::users::UserService;
use crate::webhooks::WebhookService;

/// The outside world as the edge connected it: the embedded or the scale-out implementation of
/// each adapter, chosen by configuration in one place (`depot::wiring::connect`).
pub struct Adapters {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub cache: Arc<Cache>,
    pub broker: Arc<dyn Broker>,
    pub mailer: Arc<dyn Mailer>,
    /// Realtime fan-out: in-process, or Redis pub/sub.
    pub fanout: Arc<Fanout>,
    /// Object storage: a local directory, or S3.
    pub blobs: Blobs,
    /// Readiness probes of the scale-out cache and broker, when configured.
    pub cache_probe: Option<Arc<dyn Probe>>,
    pub broker_probe: Option<Arc<dyn Probe>>,
    /// Identifies this process in claims and leases.
    pub instance_id: String,
}

/// Shared state of one Depot process. Cheap to clone.
#[derive(Clone)]
pub struct AppContext {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    /// Held only to stop its sync task at shutdown.
    cache: Arc<Cache>,
    clock: Arc<dyn Clock>,
    lifecycle: Arc<Lifecycle>,
    broker: Arc<dyn Broker>,
    background: Background,
    deliveries: Vec<Arc<HandlerDelivery>>,
    relay: Relay,
    relay_waker: RelayWaker,
    scheduler: Scheduler,
    schema: SchemaService,
    health: HealthService,
    mail: MailService,
    authenticator: Authenticator,
    api_limits: Arc<ApiRateLimiter>,
    sessions: SessionService,
    mfa: MfaService,
    passwords: PasswordService,
    users: UserService,
    roles: RoleService,
    audit: AuditService,
    catalog: CatalogService,
    stock: StockService,
    alerts: AlertService,
    purchasing: PurchasingService,
    customers: CustomerService,
    sales: SalesService,
    idempotency: IdempotencyService,
    imports: ImportService,
    exports: ExportService,
    payments: PaymentService,
    notifications: NotificationService,
    webhooks: WebhookService,
    realtime: RealtimeService,
    reports: ReportService,
    dashboard: DashboardService,
    debug: Option<DebugService>,
    cursor_key: CursorKey,
}

impl AppContext {
    /// Builds the services over `adapters`, registers every capability's background work
    /// (plus `extra_consumers`, for tests and benchmarks) and declares the broker topology.
    pub async fn new(
        settings: Settings,
        adapters: Adapters,
        extra_consumers: Vec<Arc<dyn Handler>>,
    ) -> AppResult<Self> {
        let (db, clock, cache, broker) =
            (adapters.db, adapters.clock, adapters.cache, adapters.broker);
        let relay_waker = RelayWaker::default();
        let writer = Writer::new(db.clone(), clock.clone(), relay_waker.clone())
            .with_invalidation(crate::dashboard::invalidation(cache.clone()));
        let mail = MailService::new(
            writer.clone(),
            adapters.mailer,
            std::time::Duration::from_millis(settings.mail_retry_base_ms),
            settings.mail_max_attempts,
        );
        let auth = AuthServices::build(&settings, writer.clone(), cache.clone())?;
        let cursor_key = CursorKey::derive(&auth.config.app_secret);
        let users = UserService::new(writer.clone(), auth.authz.clone(), auth.reset_links.clone());
        let roles = RoleService::new(writer.clone(), auth.authz.clone());
        let audit = AuditService::new(db.clone());
        let idempotency = IdempotencyService::new(db.clone(), clock.clone(), &settings);
        let schema = SchemaService::new(writer.clone());
        let housekeeping = HousekeepingService::new(writer.clone());
        let catalog = CatalogService::new(writer.clone());
        let stock = StockService::new(
            writer.clone(),
            settings.stock_depletion_policy,
            settings.stock_expiry_warning_days,
        )
        .with_grouping(
            settings.stock_group_max_size,
            std::time::Duration::from_millis(settings.stock_group_max_wait_ms),
            match (settings.stock_group_lanes, db.backend()) {
                (0, depot_store::Backend::Sqlite) => 1,
                (0, depot_store::Backend::Postgres) => 8,
                (lanes, _) => lanes,
            },
        );
        let alerts = AlertService::new(writer.clone(), settings.stock_expiry_warning_days);
        let purchasing = PurchasingService::new(
            writer.clone(),
            settings.stock_depletion_policy,
            settings.stock_expiry_warning_days,
            settings.purchase_over_receipt_tolerance_percent,
        );
        let imports = ImportService::new(
            writer.clone(),
            settings.stock_expiry_warning_days,
            settings.import_sync_max_bytes,
            settings.import_max_errors,
        );
        let exports = ExportService::new(writer.clone());
        let customers = CustomerService::new(writer.clone());
        let sales = SalesService::new(
            writer.clone(),
            settings.stock_depletion_policy,
            settings.stock_expiry_warning_days,
            (settings.sales_reservation_ttl_secs > 0)
                .then(|| std::time::Duration::from_secs(settings.sales_reservation_ttl_secs)),
        );
        let payments = PaymentService::new(writer.clone(), &settings)?;
        let realtime = RealtimeService::new(
            writer.clone(),
            auth.authenticator.clone(),
            adapters.fanout.clone(),
            SocketSettings {
                ticket_ttl: std::time::Duration::from_secs(settings.ws_ticket_ttl_secs),
                heartbeat: std::time::Duration::from_secs(settings.ws_heartbeat_secs),
                max_sockets: settings.ws_max_sockets,
                queue: settings.ws_send_queue,
                allowed_origins: settings.cors_origins.clone(),
            },
        );
        let notifications = NotificationService::new(
            writer.clone(),
            settings.notify_alert_permission,
            Realtime::new(adapters.fanout.clone()),
        );
        let webhooks = WebhookService::new(
            writer.clone(),
            Sealer::new(&auth.config.app_secret)?,
            WebhookClient::new(
                std::time::Duration::from_millis(settings.webhook_timeout_ms),
                settings.is_prod(),
            )
            .map_err(|e| {
                AppError::new(ErrorCode::Internal, "cannot build the webhook client")
                    .with_source(std::io::Error::other(e.0))
            })?,
            std::time::Duration::from_millis(settings.webhook_retry_base_ms),
            cache.clone(),
        );
        let reports = ReportService::new(
            writer.clone(),
            adapters.blobs,
            Realtime::new(adapters.fanout.clone()),
            ReportSettings {
                max_span_days: i64::from(settings.report_max_span_days),
                max_bytes: settings.report_max_bytes,
                max_rows: settings.report_max_rows,
                page_rows: settings.report_page_rows,
                retention: std::time::Duration::from_secs(settings.report_retention_secs),
                link_ttl: std::time::Duration::from_secs(settings.report_link_ttl_secs),
            },
        );
        let dashboard = DashboardService::new(
            db.clone(),
            cache.clone(),
            clock.clone(),
            settings.stock_expiry_warning_days,
            std::time::Duration::from_secs(settings.dashboard_cache_secs),
        );
        let debug = settings
            .debug_routes
            .then(|| DebugService::new(writer.clone(), cache.clone()));

        let mut background = Background::default();
        housekeeping.register(&mut background);
        alerts.register(&mut background);
        sales.register(&mut background);
        imports.register(&mut background);
        payments.register(&mut background);
        mail.register(&mut background);
        notifications.register(&mut background);
        webhooks.register(&mut background);
        realtime.register(&mut background);
        reports.register(&mut background);
        if let Some(debug) = &debug {
            debug.register(&mut background);
        }
        for consumer in extra_consumers {
            background.consumer(consumer);
        }
        let specs: Vec<_> = background
            .consumers()
            .iter()
            .map(|h| queue_spec(h.as_ref(), None))
            .collect();
        broker.declare(&specs).await.map_err(|e| {
            AppError::new(
                ErrorCode::BrokerDeclare,
                "cannot declare the message topology",
            )
            .with_source(e)
        })?;
        let deliveries = background
            .consumers()
            .iter()
            .map(|h| Arc::new(HandlerDelivery::new(h.clone(), db.clone(), clock.clone())))
            .collect();

        let lifecycle = Arc::new(Lifecycle::default());
        let health = HealthService::new(
            db.clone(),
            lifecycle.clone(),
            adapters.cache_probe,
            adapters.broker_probe,
        );
        let owner = adapters.instance_id;
        let relay = Relay::new(writer.clone(), broker.clone(), owner.clone());
        let scheduler = Scheduler::new(writer.clone(), owner);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                cache,
                clock,
                lifecycle,
                broker,
                background,
                deliveries,
                relay,
                relay_waker,
                scheduler,
                schema,
                health,
                mail,
                authenticator: auth.authenticator,
                api_limits: auth.api_limits,
                sessions: auth.sessions,
                mfa: auth.mfa,
                passwords: auth.passwords,
                users,
                roles,
                audit,
                catalog,
                stock,
                alerts,
                purchasing,
                customers,
                sales,
                idempotency,
                imports,
                exports,
                payments,
                notifications,
                webhooks,
                realtime,
                reports,
                dashboard,
                debug,
                cursor_key,
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// The broker, for the workers and the dead-letter commands.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// The consumers and periodic jobs every capability registered.
    pub fn background(&self) -> &Background {
        &self.inner.background
    }

    /// One delivery adapter per registered consumer, each knowing its consumer.
    pub fn deliveries(&self) -> &[Arc<HandlerDelivery>] {
        &self.inner.deliveries
    }

    pub fn relay(&self) -> &Relay {
        &self.inner.relay
    }

    /// Woken when a unit of work that emitted events commits.
    pub fn relay_waker(&self) -> &RelayWaker {
        &self.inner.relay_waker
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }

    pub fn schema(&self) -> &SchemaService {
        &self.inner.schema
    }

    pub fn health(&self) -> &HealthService {
        &self.inner.health
    }

    pub fn mail(&self) -> &MailService {
        &self.inner.mail
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    /// The general limits on the API (per IP, per user).
    pub fn api_limits(&self) -> &ApiRateLimiter {
        &self.inner.api_limits
    }

    pub fn sessions(&self) -> &SessionService {
        &self.inner.sessions
    }

    pub fn mfa(&self) -> &MfaService {
        &self.inner.mfa
    }

    pub fn passwords(&self) -> &PasswordService {
        &self.inner.passwords
    }

    pub fn users(&self) -> &UserService {
        &self.inner.users
    }

    pub fn catalog(&self) -> &CatalogService {
        &self.inner.catalog
    }

    pub fn stock(&self) -> &StockService {
        &self.inner.stock
    }

    pub fn purchasing(&self) -> &PurchasingService {
        &self.inner.purchasing
    }

    pub fn customers(&self) -> &CustomerService {
        &self.inner.customers
    }

    pub fn sales(&self) -> &SalesService {
        &self.inner.sales
    }

    pub fn notifications(&self) -> &NotificationService {
        &self.inner.notifications
    }

    pub fn webhooks(&self) -> &WebhookService {
        &self.inner.webhooks
    }

    pub fn realtime(&self) -> &RealtimeService {
        &self.inner.realtime
    }

    pub fn reports(&self) -> &ReportService {
        &self.inner.reports
    }

    pub fn dashboard(&self) -> &DashboardService {
        &self.inner.dashboard
    }

    pub fn alerts(&self) -> &AlertService {
        &self.inner.alerts
    }

    pub fn roles(&self) -> &RoleService {
        &self.inner.roles
    }

    pub fn audit(&self) -> &AuditService {
        &self.inner.audit
    }

    pub fn idempotency(&self) -> &IdempotencyService {
        &self.inner.idempotency
    }

    pub fn imports(&self) -> &ImportService {
        &self.inner.imports
    }

    pub fn payments(&self) -> &PaymentService {
        &self.inner.payments
    }

    pub fn exports(&self) -> &ExportService {
        &self.inner.exports
    }

    /// Stops the cache's sync task and closes the database pools (the last step of shutdown).
    pub async fn close(&self) {
        self.inner.cache.close();
        self.inner.schema.close().await;
    }

    /// Whether this instance provably follows the cache sync channel (always true without
    /// Redis); readiness and tests look at it.
    pub fn cache_in_sync(&self) -> bool {
        self.inner.cache.in_sync()
    }

    /// Present only with `debug_routes`.
    pub fn debug(&self) -> Option<&DebugService> {
        self.inner.debug.as_ref()
    }

    /// The key that signs list cursors (derived from `app_secret`, so shared by every instance).
    pub fn cursor_key(&self) -> &CursorKey {
        &self.inner.cursor_key
    }
}
