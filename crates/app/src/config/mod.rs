//! Typed configuration.
//!
//! Values come, lowest precedence first, from built-in defaults, an optional TOML file
//! (`--config` / `DEPOT_CONFIG`), the conventional unprefixed variables (`DATABASE_URL`,
//! `REDIS_URL`, `AMQP_URL`, `SMTP_URL`, `S3_*`) and `DEPOT_*` variables. Keys are flat:
//! `DEPOT_HTTP_ADDR` sets `http_addr`. Unknown `DEPOT_*` keys are rejected, so a typo cannot
//! silently fall back to a default.
//!
//! [`Settings::validate`] checks every rule at once and reports every problem in one error. In
//! `prod` missing or weak secrets and URLs are fatal; in `dev` missing secrets are generated and
//! persisted under the data directory with a loud warning.

mod env;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};

use self::env::EnvProvider;
use crate::client::{ForwardedHeader, TrustedProxies};
use depot_domain::auth::Permission;
use depot_domain::stock::DepletionPolicy;
use serde::{Deserialize, Deserializer, Serialize};

pub use secret::{Secret, ServiceUrl};

/// `dev` (safe defaults, generated secrets) or `prod` (fail fast on anything missing or weak).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Dev,
    Prod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerBackend {
    Database,
    Rabbitmq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    Local,
    S3,
}

/// Which gateway takes card payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentsGateway {
    /// SSLCommerz (sandbox or live per `sslcommerz_sandbox`, or `sslcommerz_base_url`).
    Sslcommerz,
    /// The built-in stand-in on the API listener (`/simulator/sslcommerz`); refused in prod.
    Simulator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailBackend {
    File,
    Smtp,
}

/// Every setting of Depot. Field names are the configuration keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub profile: Profile,
    /// Directory for the SQLite file, dev secrets, local blobs and `.eml` mail.
    pub data_dir: PathBuf,

    /// `sqlite://…` or `postgres://…`. Dev default: `sqlite://<data_dir>/depot.db`.
    pub database_url: Option<ServiceUrl>,
    pub database_max_connections: u32,
    /// A read replica (PostgreSQL) that reports read from; the primary when unset.
    pub database_replica_url: Option<ServiceUrl>,
    /// Dev default true, prod always false unless set.
    pub auto_migrate: Option<bool>,

    pub http_addr: SocketAddr,
    /// Separate listener for `/metrics`; when unset, `/metrics` is served on `http_addr`.
    pub metrics_addr: Option<SocketAddr>,
    #[serde(deserialize_with = "list_or_csv")]
    pub cors_origins: Vec<String>,
    /// Proxies (CIDRs or addresses) whose `client_ip_header` names the client; from any other
    /// peer the TCP address is the client, whatever it sends.
    #[serde(deserialize_with = "list_or_csv")]
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    pub client_ip_header: ForwardedHeader,
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    /// A connection is closed when it has not sent a complete request head within this long of
    /// opening or of its previous response (slow headers, silent sockets, idle keep-alive).
    pub http_idle_timeout_secs: u64,
    /// Cap on open HTTP connections per listener (keep it well below `ulimit -n`).
    pub http_max_connections: usize,
    /// Send `Strict-Transport-Security` (when served behind TLS). Default: on in prod.
    pub hsts: Option<bool>,
    /// How long readiness reports "draining" before the listener closes on shutdown.
    pub shutdown_drain_delay_ms: u64,
    /// Deadline for in-flight requests and background tasks to finish on shutdown.
    pub shutdown_deadline_secs: u64,

    pub log_format: Option<LogFormat>,
    pub log_filter: String,
    /// OTLP/HTTP collector that spans are exported to (e.g. `http://collector:4318`); tracing is
    /// off when unset.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded (0–1); a request that arrives with a `traceparent` follows
    /// its caller's decision.
    pub otlp_sample_ratio: f64,

    /// HMAC key for access tokens (≥ 32 bytes).
    pub jwt_secret: Option<Secret>,
    /// HMAC key for CSRF and other signed values (≥ 32 bytes).
    pub app_secret: Option<Secret>,
    /// `kid` of `jwt_secret`, written into every access token this process signs.
    pub jwt_key_id: String,
    /// Retired signing keys by `kid`, still accepted for verification until removed (rotation),
    /// e.g. `DEPOT_JWT_PREVIOUS_KEYS='{k0="…"}'`.
    pub jwt_previous_keys: BTreeMap<String, Secret>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Access-token lifetime.
    pub access_token_ttl_secs: u64,
    /// A refresh token unused this long dies (idle timeout).
    pub refresh_idle_ttl_secs: u64,
    /// A session dies this long after sign-in whatever its use (absolute timeout).
    pub refresh_absolute_ttl_secs: u64,
    /// Consecutive failed logins before the account is locked.
    pub login_lockout_threshold: u32,
    /// First lock length; doubles with each further failure.
    pub login_lockout_base_secs: u64,
    pub login_lockout_max_secs: u64,
    /// Attempts per window on login, refresh, password reset and MFA verification, per client IP.
    pub auth_rate_limit_per_ip: u32,
    /// Attempts per window on the same endpoints, per account (email or user).
    pub auth_rate_limit_per_account: u32,
    pub auth_rate_limit_window_secs: u64,
    /// Requests per window on the whole API per client IP; 0 is off. Default: off in dev,
    /// 6000 in prod.
    pub api_rate_limit_per_ip: Option<u32>,
    /// Requests per window on the whole API per signed-in user; 0 is off. Default: off in dev,
    /// 1200 in prod.
    pub api_rate_limit_per_user: Option<u32>,
    pub api_rate_limit_window_secs: u64,
    pub password_reset_ttl_secs: u64,
    /// How long the first response to an `Idempotency-Key` is replayed.
    pub idempotency_retention_secs: u64,
    /// How long a copy of a request waits for the first before answering 409.
    pub idempotency_wait_ms: u64,
    /// Base URL of the web client, used in emailed links (password reset).
    pub public_url: String,
    /// Issuer shown in authenticator apps.
    pub mfa_issuer: String,

    pub cache_backend: Option<CacheBackend>,
    pub redis_url: Option<ServiceUrl>,
    pub broker_backend: Option<BrokerBackend>,
    pub amqp_url: Option<ServiceUrl>,
    /// Prefix of RabbitMQ exchange and queue names and of Redis keys, so that deployments (or
    /// test runs) can share one RabbitMQ virtual host or Redis database.
    pub namespace: String,
    pub blob_backend: Option<BlobBackend>,
    pub s3_bucket: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    pub mail_backend: Option<MailBackend>,
    pub smtp_url: Option<ServiceUrl>,
    pub mail_from: String,

    pub payments_enabled: bool,
    pub sslcommerz_store_id: Option<String>,
    pub sslcommerz_store_password: Option<Secret>,
    pub sslcommerz_sandbox: bool,
    pub payments_gateway: PaymentsGateway,
    /// The gateway's API base, overriding sandbox/live (a test double, a proxy).
    pub sslcommerz_base_url: Option<String>,
    /// Where the gateway calls back and sends the buyer (this API's public base URL); by
    /// default the API listener's own address.
    pub payments_callback_url: Option<String>,
    /// Longest wait for one gateway answer.
    pub payments_gateway_timeout_ms: u64,
    /// Gateway calls retried after the first when it cannot be reached or answers 5xx.
    pub payments_gateway_retries: u32,
    /// A payment waiting this long for the gateway's callback is asked after (missed IPN).
    pub payments_recovery_after_secs: u64,
    /// A payment the gateway still knows nothing of after this long expires.
    pub payments_expire_after_secs: u64,

    /// Per-queue consumer concurrency overriding the handler's default, e.g. TOML
    /// `consumer_concurrency = { email = 8 }` or `DEPOT_CONSUMER_CONCURRENCY='{email=8}'`.
    pub consumer_concurrency: BTreeMap<String, usize>,
    /// Cadence per scheduled job, overriding its default: `every 10m` or a cron expression with
    /// seconds (UTC), e.g. `job_schedules = { purge_idempotency_keys = "0 0 3 * * *" }`.
    pub job_schedules: BTreeMap<String, String>,
    /// How long a database-queue claim lasts before a crashed worker's job is retried.
    pub queue_visibility_timeout_secs: u64,

    /// Which batches an issue takes first when neither the product nor its category says.
    pub stock_depletion_policy: DepletionPolicy,
    /// A batch expiring within this many days raises an `expiring` alert.
    pub stock_expiry_warning_days: u32,

    /// Most adjustments of one (product, location) applied together in one transaction while
    /// another for that key is in flight; 1 turns grouping off.
    pub stock_group_max_size: usize,
    /// Longest a queued adjustment waits for its group before it runs on its own.
    pub stock_group_max_wait_ms: u64,
    /// How many adjustment units run at once, the (product, location) keys spread over that
    /// many lanes; 0 = one on SQLite (one writer) and eight on PostgreSQL.
    pub stock_group_lanes: usize,

    /// How far beyond the ordered quantity a purchase-order line may be received, in percent.
    pub purchase_over_receipt_tolerance_percent: u32,
    /// How long a confirmed (unpaid) sales order holds its stock before the reservation
    /// expires and the order returns to draft; 0 = reservations never expire.
    pub sales_reservation_ttl_secs: u64,

    /// Largest import file accepted, in bytes.
    pub import_max_bytes: usize,
    /// Import files up to this size run while the request waits; larger ones run as a
    /// background job (202).
    pub import_sync_max_bytes: usize,
    /// Most row errors an import keeps and answers with (the count says how many there were).
    pub import_max_errors: usize,

    /// First pause before an email that failed is tried again (doubling per attempt, capped
    /// at an hour).
    pub mail_retry_base_ms: u64,
    /// Sending attempts before an email (and the notification it carries) is `dead`.
    pub mail_max_attempts: u32,
    /// Holders of this permission receive stock-alert notifications (if they opted in).
    pub notify_alert_permission: Permission,
    /// First pause before a failed webhook delivery is tried again (doubling per attempt,
    /// capped at an hour, for 24 hours).
    pub webhook_retry_base_ms: u64,
    /// How long one webhook delivery may take (connect, send, answer).
    pub webhook_timeout_ms: u64,
    /// How long a WebSocket ticket can be used.
    pub ws_ticket_ttl_secs: u64,
    /// How often a socket is pinged; a peer silent for two intervals is closed.
    pub ws_heartbeat_secs: u64,
    /// Messages queued for one socket before a client that does not read is dropped.
    pub ws_send_queue: usize,
    /// Most sockets one instance holds.
    pub ws_max_sockets: usize,

    /// Longest date range a report may cover, in days.
    pub report_max_span_days: u32,
    /// Largest export a report may write; a larger one fails with `report.too_large`.
    pub report_max_bytes: u64,
    /// Most rows a report may write.
    pub report_max_rows: u64,
    /// Rows a report reads per page (one statement each).
    pub report_page_rows: u64,
    /// How long an export is kept after its report succeeded.
    pub report_retention_secs: u64,
    /// How long a presigned download link (S3) stays valid.
    pub report_link_ttl_secs: u64,
    /// Longest a dashboard figure is cached (each figure is dropped at once by the writes
    /// that change it; this bounds what a write outside the server, e.g. the CLI, leaves).
    pub dashboard_cache_secs: u64,

    /// Mounts `/api/v1/_debug/*` (sleep, error, panic) for tests. Refused in prod.
    pub debug_routes: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            profile: Profile::Dev,
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 10,
            database_replica_url: None,
            auto_migrate: None,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            client_ip_header: ForwardedHeader::default(),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            http_idle_timeout_secs: 10,
            http_max_connections: 512,
            hsts: None,
            shutdown_drain_delay_ms: 0,
            shutdown_deadline_secs: 30,
            log_format: None,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            otlp_sample_ratio: 1.0,
            jwt_secret: None,
            app_secret: None,
            jwt_key_id: "k1".to_owned(),
            jwt_previous_keys: BTreeMap::new(),
            jwt_issuer: "depot".to_owned(),
            jwt_audience: "depot-api".to_owned(),
            access_token_ttl_secs: 15 * 60,
            refresh_idle_ttl_secs: 7 * 24 * 3600,
            refresh_absolute_ttl_secs: 30 * 24 * 3600,
            login_lockout_threshold: 5,
            login_lockout_base_secs: 60,
            login_lockout_max_secs: 3600,
            auth_rate_limit_per_ip: 30,
            auth_rate_limit_per_account: 10,
            auth_rate_limit_window_secs: 60,
            api_rate_limit_per_ip: None,
            api_rate_limit_per_user: None,
            api_rate_limit_window_secs: 60,
            password_reset_ttl_secs: 30 * 60,
            idempotency_retention_secs: 24 * 60 * 60,
            idempotency_wait_ms: 10_000,
            public_url: "http://127.0.0.1:8080".to_owned(),
            mfa_issuer: "Depot".to_owned(),
            cache_backend: None,
            redis_url: None,
            broker_backend: None,
            amqp_url: None,
            namespace: "depot".to_owned(),
            blob_backend: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            mail_backend: None,
            smtp_url: None,
            mail_from: "Depot <depot@localhost>".to_owned(),
            payments_enabled: false,
            sslcommerz_store_id: None,
            sslcommerz_store_password: None,
            sslcommerz_sandbox: true,
            payments_gateway: PaymentsGateway::Sslcommerz,
            sslcommerz_base_url: None,
            payments_callback_url: None,
            payments_gateway_timeout_ms: 5_000,
            payments_gateway_retries: 2,
            payments_recovery_after_secs: 15 * 60,
            payments_expire_after_secs: 24 * 3600,
            consumer_concurrency: BTreeMap::new(),
            job_schedules: BTreeMap::new(),
            queue_visibility_timeout_secs: 30,
            stock_depletion_policy: DepletionPolicy::Fefo,
            stock_expiry_warning_days: 30,
            stock_group_max_size: 64,
            stock_group_max_wait_ms: 250,
            stock_group_lanes: 0,
            purchase_over_receipt_tolerance_percent: 0,
            sales_reservation_ttl_secs: 0,
            import_max_bytes: 64 * 1024 * 1024,
            import_sync_max_bytes: 1024 * 1024,
            import_max_errors: 10_000,
            mail_retry_base_ms: 5_000,
            mail_max_attempts: 6,
            notify_alert_permission: Permission::StockRead,
            webhook_retry_base_ms: 10_000,
            webhook_timeout_ms: 10_000,
            ws_ticket_ttl_secs: 30,
            ws_heartbeat_secs: 20,
            ws_send_queue: 256,
            ws_max_sockets: 20_000,
            report_max_span_days: 366,
            report_max_bytes: 1024 * 1024 * 1024,
            report_max_rows: 20_000_000,
            report_page_rows: 10_000,
            report_retention_secs: 7 * 86_400,
            report_link_ttl_secs: 300,
            dashboard_cache_secs: 300,
            debug_routes: false,
        }
    }
}

/// Accepts `["a", "b"]` (TOML) or `"a,b"` (environment).
fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(items) => items,
        Raw::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Secrets shorter than this are weak.
pub const MIN_SECRET_BYTES: usize = 32;

/// Values that appear in templates and tutorials; never acceptable as a secret in prod.
const KNOWN_WEAK_SECRETS: [&str; 9] = [
    "secret",
    "changeme",
    "change-me",
    "change_me",
    "password",
    "development",
    "jwt-secret",
    "supersecret",
    "please-change-this-secret-in-production-0000",
];

/// The configuration together with where each value came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: Settings,
    /// Key → human description of its source ("default", "`DEPOT_` environment variable", …).
    pub sources: BTreeMap<String, String>,
}

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: &'static str,
    pub problem: String,
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration ({} problems):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {}: {}", p.key, p.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loading failed before validation: unreadable file, unknown key, wrong type.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot load configuration: {}", self.0)
    }
}

impl std::error::Error for LoadError {}

impl LoadedConfig {
    /// Loads from the process environment and the optional file.
    pub fn load(config_file: Option<&Path>) -> Result<Self, LoadError> {
        Self::from_figment(Self::figment(config_file)?)
    }

    fn figment(config_file: Option<&Path>) -> Result<Figment, LoadError> {
        let mut figment = Figment::new();
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("DEPOT_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(LoadError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Ok(figment
            .merge(EnvProvider::conventional())
            .merge(EnvProvider::depot()))
    }

    /// Builds the configuration from an explicit figment (tests use this to avoid the
    /// process environment).
    pub fn from_figment(figment: Figment) -> Result<Self, LoadError> {
        let settings: Settings = figment.extract().map_err(|e| {
            // Figment's messages name the key and the source; they never echo values of
            // unknown type, but make sure secrets are not in them by not printing values.
            LoadError(e.to_string())
        })?;
        let mut sources = BTreeMap::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&settings) {
            for key in map.keys() {
                let source = figment
                    .find_metadata(key)
                    .map(|m| m.name.to_string())
                    .unwrap_or_else(|| "default".to_owned());
                sources.insert(key.clone(), source);
            }
        }
        Ok(Self { settings, sources })
    }

    /// Every key with its effective (redacted) value and its source, for `depot config check`.
    pub fn describe(&self) -> Vec<(String, serde_json::Value, String)> {
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&self.settings) else {
            return Vec::new();
        };
        map.into_iter()
            .map(|(key, value)| {
                let source = self
                    .sources
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| "default".into());
                (key, value, source)
            })
            .collect()
    }
}

impl Settings {
    pub fn is_prod(&self) -> bool {
        self.profile == Profile::Prod
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.profile {
            Profile::Dev => LogFormat::Pretty,
            Profile::Prod => LogFormat::Json,
        })
    }

    /// The trusted proxies, or the entries that are not networks.
    pub fn proxies(&self) -> Result<TrustedProxies, Vec<String>> {
        TrustedProxies::parse(&self.trusted_proxies, self.client_ip_header)
    }

    pub fn auto_migrate(&self) -> bool {
        self.auto_migrate.unwrap_or(!self.is_prod())
    }

    /// The API's limits per IP and per user (0: off), with the profile's defaults.
    pub fn api_rate_limits(&self) -> (u32, u32) {
        let (ip, user) = if self.is_prod() { (6000, 1200) } else { (0, 0) };
        (
            self.api_rate_limit_per_ip.unwrap_or(ip),
            self.api_rate_limit_per_user.unwrap_or(user),
        )
    }

    pub fn hsts(&self) -> bool {
        self.hsts.unwrap_or(self.is_prod())
    }

    pub fn cache_backend(&self) -> CacheBackend {
        selected(
            self.cache_backend,
            self.redis_url.is_some(),
            CacheBackend::Redis,
            CacheBackend::Memory,
        )
    }

    pub fn broker_backend(&self) -> BrokerBackend {
        selected(
            self.broker_backend,
            self.amqp_url.is_some(),
            BrokerBackend::Rabbitmq,
            BrokerBackend::Database,
        )
    }

    pub fn blob_backend(&self) -> BlobBackend {
        selected(
            self.blob_backend,
            self.s3_bucket.is_some(),
            BlobBackend::S3,
            BlobBackend::Local,
        )
    }

    pub fn mail_backend(&self) -> MailBackend {
        selected(
            self.mail_backend,
            self.smtp_url.is_some(),
            MailBackend::Smtp,
            MailBackend::File,
        )
    }

    /// The database URL, falling back to the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("depot.db").display()),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn http_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.http_idle_timeout_secs)
    }

    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_deadline_secs)
    }

    pub fn queue_visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.queue_visibility_timeout_secs.max(1))
    }

    pub fn shutdown_drain_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_delay_ms)
    }

    /// Checks every rule and returns every problem at once. Rules that depend on the profile:
    /// in prod, secrets and the database URL must be set and strong; in dev they may be
    /// missing (they are generated by [`Settings::fill_dev_secrets`]).
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        let mut problem =
            |key: &'static str, text: String| problems.push(ConfigProblem { key, problem: text });
        let prod = self.is_prod();

        if prod && self.database_url.is_none() {
            problem(
                "database_url",
                "missing: set DATABASE_URL (or DEPOT_DATABASE_URL)".into(),
            );
        }
        if let Some(url) = &self.database_url {
            let scheme = url.scheme();
            if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
                problem(
                    "database_url",
                    format!("unsupported scheme {scheme:?}: use sqlite: or postgres://"),
                );
            }
        }
        for (key, value) in [
            ("jwt_secret", &self.jwt_secret),
            ("app_secret", &self.app_secret),
        ] {
            match value {
                None if prod => problem(key, format!("missing: set DEPOT_{}", key.to_uppercase())),
                None => {}
                Some(secret) => {
                    if let Some(weakness) = secret_weakness(secret.expose())
                        && prod
                    {
                        problem(key, format!("weak: {weakness}"));
                    }
                }
            }
        }
        if let (Some(a), Some(b)) = (&self.jwt_secret, &self.app_secret)
            && prod
            && a.expose() == b.expose()
        {
            problem("app_secret", "must differ from jwt_secret".into());
        }

        if self.cache_backend() == CacheBackend::Redis && self.redis_url.is_none() {
            problem(
                "redis_url",
                "missing: cache_backend is redis; set REDIS_URL".into(),
            );
        }
        if let Some(url) = &self.database_replica_url
            && !matches!(url.scheme(), "postgres" | "postgresql")
        {
            problem(
                "database_replica_url",
                "a read replica must be PostgreSQL (postgres://)".into(),
            );
        }
        for (key, url, schemes) in [
            ("redis_url", &self.redis_url, ["redis", "rediss"]),
            ("amqp_url", &self.amqp_url, ["amqp", "amqps"]),
            ("smtp_url", &self.smtp_url, ["smtp", "smtps"]),
        ] {
            if let Some(url) = url
                && !schemes.contains(&url.scheme())
            {
                problem(
                    key,
                    format!("must start with {}:// or {}://", schemes[0], schemes[1]),
                );
            }
        }
        if self.broker_backend() == BrokerBackend::Rabbitmq && self.amqp_url.is_none() {
            problem(
                "amqp_url",
                "missing: broker_backend is rabbitmq; set AMQP_URL".into(),
            );
        }
        if self.blob_backend() == BlobBackend::S3 {
            if self.s3_bucket.is_none() {
                problem(
                    "s3_bucket",
                    "missing: blob_backend is s3; set S3_BUCKET".into(),
                );
            }
            if self.s3_access_key_id.is_none() {
                problem(
                    "s3_access_key_id",
                    "missing: blob_backend is s3; set S3_ACCESS_KEY_ID".into(),
                );
            }
            if self.s3_secret_access_key.is_none() {
                problem(
                    "s3_secret_access_key",
                    "missing: blob_backend is s3; set S3_SECRET_ACCESS_KEY".into(),
                );
            }
        }
        if self.mail_backend() == MailBackend::Smtp && self.smtp_url.is_none() {
            problem(
                "smtp_url",
                "missing: mail_backend is smtp; set SMTP_URL".into(),
            );
        }
        if self.payments_enabled {
            if self
                .sslcommerz_store_id
                .as_deref()
                .is_none_or(str::is_empty)
            {
                problem(
                    "sslcommerz_store_id",
                    "missing: payments are enabled".into(),
                );
            }
            if self.sslcommerz_store_password.is_none() {
                problem(
                    "sslcommerz_store_password",
                    "missing: payments are enabled".into(),
                );
            }
            if prod && self.sslcommerz_sandbox {
                problem(
                    "sslcommerz_sandbox",
                    "must be false in prod when payments are enabled".into(),
                );
            }
            if prod && self.payments_gateway == PaymentsGateway::Simulator {
                problem(
                    "payments_gateway",
                    "the simulator is refused in prod: use sslcommerz".into(),
                );
            }
            for (key, url) in [
                ("sslcommerz_base_url", &self.sslcommerz_base_url),
                ("payments_callback_url", &self.payments_callback_url),
            ] {
                if let Some(url) = url
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    problem(key, "must be an http(s) URL".into());
                }
            }
            if self.payments_gateway_timeout_ms == 0 {
                problem("payments_gateway_timeout_ms", "must be more than 0".into());
            }
            // Every try plus the longest backoffs (2 s) must end before the request does.
            let worst_ms = u64::from(self.payments_gateway_retries + 1)
                .saturating_mul(self.payments_gateway_timeout_ms)
                .saturating_add(u64::from(self.payments_gateway_retries) * 2_000);
            if worst_ms >= self.request_timeout_secs.saturating_mul(1_000) {
                problem(
                    "payments_gateway_timeout_ms",
                    format!(
                        "(payments_gateway_retries + 1) × this + the backoffs ({worst_ms} ms) must be \
                         shorter than request_timeout_secs"
                    ),
                );
            }
        }

        if let Err(bad) = self.proxies() {
            for entry in bad {
                problem(
                    "trusted_proxies",
                    format!("{entry:?} is not a network (10.0.0.0/8) or an address"),
                );
            }
        }
        if self.cors_origins.iter().any(|o| o == "*") {
            problem(
                "cors_origins",
                "\"*\" is not allowed: credentials are used, list the origins explicitly".into(),
            );
        }
        for origin in &self.cors_origins {
            if origin != "*" && !is_valid_origin(origin) {
                problem(
                    "cors_origins",
                    format!("{origin:?} is not an origin like https://app.example.com"),
                );
            }
        }
        for (kid, key) in &self.jwt_previous_keys {
            if kid == &self.jwt_key_id {
                problem(
                    "jwt_previous_keys",
                    format!("{kid:?} is the current jwt_key_id; a kid names one key"),
                );
            }
            if prod && let Some(weakness) = secret_weakness(key.expose()) {
                problem("jwt_previous_keys", format!("{kid:?}: weak: {weakness}"));
            }
        }
        if self.jwt_key_id.is_empty() {
            problem("jwt_key_id", "must not be empty".into());
        }
        for (key, value) in [
            ("access_token_ttl_secs", self.access_token_ttl_secs),
            ("refresh_idle_ttl_secs", self.refresh_idle_ttl_secs),
            ("refresh_absolute_ttl_secs", self.refresh_absolute_ttl_secs),
            (
                "auth_rate_limit_window_secs",
                self.auth_rate_limit_window_secs,
            ),
            (
                "api_rate_limit_window_secs",
                self.api_rate_limit_window_secs,
            ),
            ("password_reset_ttl_secs", self.password_reset_ttl_secs),
            (
                "idempotency_retention_secs",
                self.idempotency_retention_secs,
            ),
            ("idempotency_wait_ms", self.idempotency_wait_ms),
        ] {
            if value == 0 {
                problem(key, "must be greater than 0".into());
            }
        }
        if self.stock_expiry_warning_days > 3_650 {
            problem(
                "stock_expiry_warning_days",
                "must be at most 3650 (ten years)".into(),
            );
        }
        if !(1..=1_000).contains(&self.stock_group_max_size) {
            problem("stock_group_max_size", "must be between 1 and 1000".into());
        }
        if self.stock_group_lanes > 1_000 {
            problem("stock_group_lanes", "must be at most 1000".into());
        }
        if !(1..=10_000).contains(&self.stock_group_max_wait_ms) {
            problem(
                "stock_group_max_wait_ms",
                "must be between 1 and 10000".into(),
            );
        }
        if !(1..=1024 * 1024 * 1024).contains(&self.import_max_bytes) {
            problem("import_max_bytes", "must be between 1 and 1 GiB".into());
        }
        if self.import_sync_max_bytes > self.import_max_bytes {
            problem(
                "import_sync_max_bytes",
                "must be at most import_max_bytes".into(),
            );
        }
        for (key, value, range) in [
            ("mail_retry_base_ms", self.mail_retry_base_ms, 1..=3_600_000),
            (
                "mail_max_attempts",
                u64::from(self.mail_max_attempts),
                1..=100,
            ),
            (
                "webhook_retry_base_ms",
                self.webhook_retry_base_ms,
                1..=3_600_000,
            ),
            ("webhook_timeout_ms", self.webhook_timeout_ms, 100..=120_000),
            ("ws_ticket_ttl_secs", self.ws_ticket_ttl_secs, 1..=3_600),
            ("ws_heartbeat_secs", self.ws_heartbeat_secs, 1..=3_600),
            ("ws_send_queue", self.ws_send_queue as u64, 1..=65_536),
            ("ws_max_sockets", self.ws_max_sockets as u64, 1..=1_000_000),
            (
                "report_max_span_days",
                u64::from(self.report_max_span_days),
                1..=36_600,
            ),
            ("report_max_bytes", self.report_max_bytes, 1..=1 << 40),
            ("report_max_rows", self.report_max_rows, 1..=1_000_000_000),
            ("report_page_rows", self.report_page_rows, 1..=100_000),
            (
                "report_retention_secs",
                self.report_retention_secs,
                60..=366 * 86_400,
            ),
            (
                "report_link_ttl_secs",
                self.report_link_ttl_secs,
                10..=7 * 86_400,
            ),
            (
                "dashboard_cache_secs",
                self.dashboard_cache_secs,
                1..=86_400,
            ),
        ] {
            if !range.contains(&value) {
                problem(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                );
            }
        }
        if !(1..=1_000_000).contains(&self.import_max_errors) {
            problem("import_max_errors", "must be between 1 and 1000000".into());
        }
        if self.purchase_over_receipt_tolerance_percent > 100 {
            problem(
                "purchase_over_receipt_tolerance_percent",
                "must be at most 100".into(),
            );
        }
        if self.sales_reservation_ttl_secs > 365 * 86_400 {
            problem(
                "sales_reservation_ttl_secs",
                "must be at most a year (31536000)".into(),
            );
        }
        if self.refresh_idle_ttl_secs > self.refresh_absolute_ttl_secs {
            problem(
                "refresh_idle_ttl_secs",
                "must not exceed refresh_absolute_ttl_secs".into(),
            );
        }
        if self.auth_rate_limit_per_ip == 0 || self.auth_rate_limit_per_account == 0 {
            problem(
                "auth_rate_limit_per_ip",
                "auth rate limits must be at least 1".into(),
            );
        }
        if !matches!(url::Url::parse(&self.public_url),
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        {
            problem(
                "public_url",
                format!(
                    "{:?} is not a URL like https://app.example.com",
                    self.public_url
                ),
            );
        }
        if self.namespace.is_empty()
            || !self
                .namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problem(
                "namespace",
                "must be non-empty letters, digits, '-', '_' or '.'".into(),
            );
        }
        if self
            .consumer_concurrency
            .values()
            .any(|n| *n == 0 || *n > 256)
        {
            problem(
                "consumer_concurrency",
                "each value must be from 1 to 256".into(),
            );
        }
        for (job, text) in &self.job_schedules {
            if let Err(e) = depot_domain::cadence::Cadence::parse(text) {
                problem("job_schedules", format!("{job}: {e}"));
            }
        }
        if self.database_max_connections == 0 {
            problem("database_max_connections", "must be at least 1".into());
        }
        if self.body_limit_bytes == 0 {
            problem("body_limit_bytes", "must be at least 1".into());
        }
        if self.request_timeout_secs == 0 {
            problem("request_timeout_secs", "must be at least 1".into());
        }
        if self.http_idle_timeout_secs == 0 {
            problem("http_idle_timeout_secs", "must be at least 1".into());
        }
        if self.http_max_connections == 0 {
            problem("http_max_connections", "must be at least 1".into());
        }
        if self.metrics_addr == Some(self.http_addr) && self.http_addr.port() != 0 {
            problem(
                "metrics_addr",
                "must differ from http_addr (unset it to serve /metrics on the API port)".into(),
            );
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !url::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problem("otlp_endpoint", "must be an http:// or https:// URL".into());
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            problem("otlp_sample_ratio", "must be from 0 to 1".into());
        }
        if prod && self.debug_routes {
            problem("debug_routes", "must be false in prod".into());
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// Dev only: fills missing secrets from `<data_dir>/dev-secrets.toml`, generating and
    /// persisting them (mode 0600) the first time. Returns the keys that were generated now.
    pub fn fill_dev_secrets(&mut self) -> std::io::Result<Vec<&'static str>> {
        if self.is_prod() || (self.jwt_secret.is_some() && self.app_secret.is_some()) {
            return Ok(Vec::new());
        }
        let path = self.data_dir.join("dev-secrets.toml");
        let mut stored: BTreeMap<String, String> = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let mut generated = Vec::new();
        for (key, slot) in [
            ("jwt_secret", &mut self.jwt_secret),
            ("app_secret", &mut self.app_secret),
        ] {
            if slot.is_some() {
                continue;
            }
            let value = match stored.get(key) {
                Some(v) => v.clone(),
                None => {
                    let v = random_secret();
                    stored.insert(key.to_owned(), v.clone());
                    generated.push(key);
                    v
                }
            };
            *slot = Some(Secret::new(value));
        }
        if !generated.is_empty() {
            std::fs::create_dir_all(&self.data_dir)?;
            let text = toml::to_string(&stored).map_err(std::io::Error::other)?;
            write_private(&path, &text)?;
        }
        Ok(generated)
    }
}

/// The backend chosen explicitly, else the scale-out one when its setting is present.
fn selected<T>(explicit: Option<T>, configured: bool, scale_out: T, embedded: T) -> T {
    explicit.unwrap_or(if configured { scale_out } else { embedded })
}

/// Why a secret is weak, if it is.
pub fn secret_weakness(secret: &str) -> Option<String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Some(format!(
            "{} bytes, at least {MIN_SECRET_BYTES} are required",
            secret.len()
        ));
    }
    let lower = secret.to_ascii_lowercase();
    if KNOWN_WEAK_SECRETS.contains(&lower.as_str())
        || lower.contains("change") && lower.contains("me")
    {
        return Some("a known placeholder value".into());
    }
    let distinct: std::collections::BTreeSet<char> = secret.chars().collect();
    if distinct.len() < 8 {
        return Some("too few distinct characters".into());
    }
    None
}

fn is_valid_origin(origin: &str) -> bool {
    match url::Url::parse(origin) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && !origin.ends_with('/')
                && url.query().is_none()
        }
        Err(_) => false,
    }
}

fn random_secret() -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(64)
        .map(char::from)
        .collect()
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests;
