//! Wiring at the edge: the one place that chooses, from the settings, the embedded or the
//! scale-out implementation of each adapter (SQLite or PostgreSQL, in-process cache or Redis,
//! database queue or RabbitMQ, `.eml` files or SMTP, a local directory or S3) and builds the application context over
//! them.

use depot_domain::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use depot_adapters::blobs::{Blobs, S3Options};
use depot_adapters::broker::database::{DatabaseQueue, DatabaseQueueOptions};
use depot_adapters::broker::rabbitmq::RabbitMq;
use depot_adapters::cache::{Cache, CacheOptions, RedisLayer};
use depot_adapters::mail::{FileMailer, Mailer, SmtpMailer};
use depot_adapters::realtime::Fanout;
use depot_adapters::{AmqpProbe, Probe, RedisProbe, SystemClock};
use depot_app::config::{BlobBackend, BrokerBackend, CacheBackend, MailBackend, Settings};
use depot_app::messaging::Handler;
use depot_app::{Adapters, AppContext};
use depot_domain::{AppError, AppResult, Clock};
use depot_store::{Db, DbOptions};

/// Builds the context of a process from validated settings, on the system clock. Pools are
/// lazy, so a process whose database is down still starts and reports itself not ready.
pub async fn build_context(settings: Settings) -> AppResult<AppContext> {
    build_context_with(settings, Arc::new(SystemClock), Vec::new()).await
}

/// As [`build_context`], with a chosen clock and extra consumers (tests, benchmarks).
pub async fn build_context_with(
    settings: Settings,
    clock: Arc<dyn Clock>,
    extra_consumers: Vec<Arc<dyn Handler>>,
) -> AppResult<AppContext> {
    let adapters = connect(&settings, clock)?;
    AppContext::new(settings, adapters, extra_consumers).await
}

/// Chooses and connects (lazily) every adapter the settings name.
pub fn connect(settings: &Settings, clock: Arc<dyn Clock>) -> AppResult<Adapters> {
    let db = database(settings)?;
    let instance_id = format!(
        "depot-{}-{}",
        std::process::id(),
        &depot_domain::id::new_id().simple().to_string()[24..]
    );

    let redis_url = match settings.cache_backend() {
        CacheBackend::Redis => settings.redis_url.as_ref(),
        CacheBackend::Memory => None,
    };
    let (redis, cache_probe, fanout) = match redis_url {
        Some(url) => {
            let layer = RedisLayer::new(url.expose())
                .map_err(|e| AppError::new(ErrorCode::ConfigRedisUrl, e))?;
            let probe: Arc<dyn Probe> = Arc::new(
                RedisProbe::new(url.expose())
                    .map_err(|e| AppError::new(ErrorCode::ConfigRedisUrl, e.0))?,
            );
            // Its own connection: a slow socket fan-out never queues behind cache traffic.
            let fanout_layer = RedisLayer::new(url.expose())
                .map_err(|e| AppError::new(ErrorCode::ConfigRedisUrl, e))?;
            let fanout = Fanout::redis(Arc::new(fanout_layer), &settings.namespace);
            (Some(layer), Some(probe), fanout)
        }
        None => (None, None, Fanout::local()),
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
                .map_err(|e| AppError::new(ErrorCode::ConfigSmtpUrl, e.message))?,
        ),
        _ => Arc::new(
            FileMailer::new(settings.data_dir.join("mail"), &settings.mail_from)
                .map_err(|e| AppError::new(ErrorCode::ConfigMailFrom, e.message))?,
        ),
    };

    let (broker, broker_probe): (Arc<dyn depot_adapters::broker::Broker>, _) =
        match (settings.broker_backend(), &settings.amqp_url) {
            (BrokerBackend::Rabbitmq, Some(url)) => {
                let probe: Arc<dyn Probe> = Arc::new(AmqpProbe::new(url.expose()));
                (
                    Arc::new(RabbitMq::new(url.expose(), &settings.namespace)),
                    Some(probe),
                )
            }
            _ => (
                Arc::new(DatabaseQueue::new(
                    db.clone(),
                    clock.clone(),
                    DatabaseQueueOptions {
                        visibility_timeout: settings.queue_visibility_timeout(),
                        ..DatabaseQueueOptions::default()
                    },
                    instance_id.clone(),
                )),
                None,
            ),
        };

    let blobs = match settings.blob_backend() {
        BlobBackend::S3 => Blobs::s3(&S3Options {
            bucket: settings.s3_bucket.clone().unwrap_or_default(),
            region: settings
                .s3_region
                .clone()
                .unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint: settings.s3_endpoint.clone(),
            access_key_id: settings.s3_access_key_id.clone().unwrap_or_default(),
            secret_access_key: settings
                .s3_secret_access_key
                .as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default(),
        })?,
        BlobBackend::Local => Blobs::local(&settings.data_dir.join("blobs"))?,
    };

    Ok(Adapters {
        db,
        clock,
        cache,
        broker,
        mailer,
        fanout,
        blobs,
        cache_probe,
        broker_probe,
        instance_id,
    })
}

/// The database the settings name (the SQLite file under the data directory by default).
pub fn database(settings: &Settings) -> AppResult<Db> {
    let mut options = DbOptions::new(settings.database_url());
    options.max_connections = settings.database_max_connections;
    options.replica_url = settings
        .database_replica_url
        .as_ref()
        .map(|url| url.expose().to_owned());
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir).map_err(AppError::internal)?;
    }
    Db::connect_lazy(&options)
}
