//! Reachability probes for `/readyz`: each answers whether its service responds right now.
//!
//! Probes speak the real protocol (a Redis `PING`, an AMQP connection handshake) and are bounded
//! by a timeout, so a dead service makes the probe fail quickly instead of hanging readiness.

use std::time::Duration;

use async_trait::async_trait;

/// Why a probe failed; the text is safe to show (it never contains credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError(pub String);

impl std::error::Error for ProbeError {}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A service whose reachability can be checked.
#[async_trait]
pub trait Probe: Send + Sync {
    async fn check(&self, timeout: Duration) -> Result<(), ProbeError>;
}

/// Checks Redis with `PING`.
pub struct RedisProbe {
    client: redis::Client,
}

impl RedisProbe {
    pub fn new(url: &str) -> Result<Self, ProbeError> {
        let client = redis::Client::open(url)
            .map_err(|e| ProbeError(format!("invalid Redis URL: {}", redis_kind(&e))))?;
        Ok(Self { client })
    }
}

/// A short description of a Redis error that cannot carry the URL (and so the password).
fn redis_kind(err: &redis::RedisError) -> String {
    format!("{:?}", err.kind())
}

#[async_trait]
impl Probe for RedisProbe {
    async fn check(&self, timeout: Duration) -> Result<(), ProbeError> {
        let ping = async {
            let mut conn = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| ProbeError(format!("cannot connect to Redis ({})", redis_kind(&e))))?;
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| ProbeError(format!("Redis PING failed ({})", redis_kind(&e))))?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(ProbeError(format!("unexpected PING reply {pong:?}")))
            }
        };
        tokio::time::timeout(timeout, ping)
            .await
            .unwrap_or_else(|_| Err(ProbeError("Redis did not answer in time".into())))
    }
}

/// Checks RabbitMQ by completing an AMQP handshake and closing the connection.
pub struct AmqpProbe {
    url: String,
}

impl AmqpProbe {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
        }
    }
}

#[async_trait]
impl Probe for AmqpProbe {
    async fn check(&self, timeout: Duration) -> Result<(), ProbeError> {
        let handshake = async {
            let conn =
                lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default())
                    .await
                    .map_err(|e| {
                        ProbeError(format!(
                            "cannot connect to the AMQP broker ({})",
                            amqp_kind(&e)
                        ))
                    })?;
            // Closing politely is best effort; the handshake already proved reachability.
            let _ = conn.close(200, "readiness probe".into()).await;
            Ok(())
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .unwrap_or_else(|_| Err(ProbeError("the AMQP broker did not answer in time".into())))
    }
}

/// A short description of an AMQP error that cannot carry the URL (and so the password).
fn amqp_kind(err: &lapin::Error) -> String {
    let text = format!("{:?}", err.kind());
    text.chars().take(120).collect()
}
