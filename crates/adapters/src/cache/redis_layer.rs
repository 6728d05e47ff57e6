//! The shared L2 on Redis. Every operation is bounded by a short timeout; after a failure the
//! layer reports itself unavailable for a cool-down instead of trying (and waiting) again on
//! every request. Errors carry no detail: callers fall back and count, they do not report.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tracing::Instrument;

const OP_TIMEOUT: Duration = Duration::from_millis(250);
const COOL_DOWN: Duration = Duration::from_secs(1);

pub struct RedisLayer {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    down_until: Mutex<Option<Instant>>,
}

impl RedisLayer {
    pub fn new(url: &str) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {:?}", e.kind()))?;
        Ok(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            down_until: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, ()> {
        if self
            .down_until
            .lock()
            .ok()
            .and_then(|d| *d)
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(());
        }
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            OP_TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(conn)) => {
                *slot = Some(conn.clone());
                Ok(conn)
            }
            _ => {
                self.mark_down();
                Err(())
            }
        }
    }

    fn mark_down(&self) {
        if let Ok(mut d) = self.down_until.lock() {
            *d = Some(Instant::now() + COOL_DOWN);
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, ()> {
        let name = match cmd.args_iter().next() {
            Some(redis::Arg::Simple(name)) => std::str::from_utf8(name).unwrap_or("redis"),
            _ => "redis",
        };
        let span = call_span(name);
        let mut conn = self.connection().instrument(span.clone()).await?;
        let answer = tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<T>(&mut conn))
            .instrument(span.clone())
            .await;
        match answer {
            Ok(Ok(v)) => Ok(v),
            _ => {
                span.record("otel.status_code", "ERROR");
                self.mark_down();
                Err(())
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ()> {
        self.run(redis::cmd("GET").arg(key).clone()).await
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), ()> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .clone(),
        )
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), ()> {
        self.run::<i64>(redis::cmd("DEL").arg(key).clone())
            .await
            .map(|_| ())
    }

    pub async fn incr(&self, key: &str) -> Result<u64, ()> {
        self.run(redis::cmd("INCR").arg(key).clone()).await
    }

    /// Several keys in one round trip.
    pub async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, ()> {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(key);
        }
        self.run(cmd).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, ()> {
        self.run::<i64>(redis::cmd("EXISTS").arg(key).clone())
            .await
            .map(|n| n > 0)
    }

    /// Counts one hit in the fixed window `key` (created with a `window` expiry on first hit);
    /// returns the count so far and the milliseconds until the window closes.
    pub async fn hit_window(&self, key: &str, window: Duration) -> Result<(u64, u64), ()> {
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let span = call_span("INCR PEXPIRE PTTL");
        let mut conn = self.connection().instrument(span.clone()).await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(key)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ms)
            .arg("NX")
            .ignore()
            .cmd("PTTL")
            .arg(key);
        let answer = tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<(u64, i64)>(&mut conn))
            .instrument(span.clone())
            .await;
        match answer {
            Ok(Ok((count, ttl))) => Ok((count, u64::try_from(ttl).unwrap_or(ms))),
            _ => {
                span.record("otel.status_code", "ERROR");
                self.mark_down();
                Err(())
            }
        }
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), ()> {
        self.run::<i64>(redis::cmd("PUBLISH").arg(channel).arg(message).clone())
            .await
            .map(|_| ())
    }

    /// Every key matching `prefix*` with its remaining life in milliseconds (keys without an
    /// expiry are skipped).
    pub async fn scan_with_ttl(&self, prefix: &str) -> Result<Vec<(String, u64)>, ()> {
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{prefix}*"))
                        .arg("COUNT")
                        .arg(1000)
                        .clone(),
                )
                .await?;
            for key in keys {
                let ttl: i64 = self.run(redis::cmd("PTTL").arg(&key).clone()).await?;
                if let Ok(ttl) = u64::try_from(ttl) {
                    found.push((key, ttl));
                }
            }
            if next == 0 {
                return Ok(found);
            }
            cursor = next;
        }
    }
}

/// The span of one call to Redis, named after its command (never its keys or values).
fn call_span(command: &str) -> tracing::Span {
    tracing::info_span!(
        "redis",
        otel.name = command,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system.name = "redis",
    )
}
