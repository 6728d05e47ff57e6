//! Makes due webhook deliveries: claims them under a lease, POSTs each with no transaction
//! held, and records the outcome — `succeeded` on a 2xx, else `failed` with the next attempt
//! (backoff) or `dead` once the 24-hour window is over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use depot_adapters::broker::jitter;
use depot_adapters::webhook::WebhookClient;
use depot_domain::AppResult;
use depot_domain::notify::{DeliveryStatus, webhook_retry_at};
use depot_store::entity::webhook_delivery;
use depot_store::repo::webhooks::{self, Attempt};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::sealed::Sealer;
use crate::uow::Writer;

/// How long a claimed delivery is reserved for one sender (beyond the call's own timeout).
const LEASE: Duration = Duration::from_secs(120);

/// The `Depot-Signature` header of `body` sent at `t` (unix seconds): `t=<t>,v1=<hex
/// HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    // HMAC takes a key of any length: this never fails.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Clone)]
pub(crate) struct Sender {
    writer: Writer,
    sealer: Sealer,
    client: WebhookClient,
    retry_base: Duration,
}

impl Sender {
    pub(crate) fn new(
        writer: Writer,
        sealer: Sealer,
        client: WebhookClient,
        retry_base: Duration,
    ) -> Self {
        Self {
            writer,
            sealer,
            client,
            retry_base,
        }
    }

    /// Makes up to `batch` due deliveries; returns how many were attempted.
    pub(crate) async fn send_due(&self, batch: u64) -> AppResult<usize> {
        let now = self.writer.now();
        let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let tx = self.writer.db().begin().await?;
        let claimed = webhooks::claim_due(&*tx, batch, now, until).await?;
        tx.commit().await?;
        let n = claimed.len();
        for delivery in claimed {
            let attempt = self.attempt(&delivery).await?;
            let label = attempt.status.as_str();
            metrics::counter!("webhook_deliveries_total", "result" => label).increment(1);
            let tx = self.writer.db().begin().await?;
            webhooks::settle(&*tx, delivery.id, attempt, self.writer.now()).await?;
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn attempt(&self, delivery: &webhook_delivery::Model) -> AppResult<Attempt> {
        let hook = webhooks::get(self.writer.db().reader(), delivery.webhook_id).await?;
        let Some(hook) = hook.filter(|h| h.active) else {
            return Ok(Attempt {
                status: DeliveryStatus::Dead,
                status_code: None,
                error: Some("the webhook is inactive".into()),
                next_attempt_at: None,
                delivered_at: None,
            });
        };
        let secret = self.sealer.open(&hook.secret)?;
        let t = self.writer.now().timestamp();
        let headers = [
            ("depot-signature", signature(&secret, t, &delivery.body)),
            ("depot-event-id", delivery.event_id.to_string()),
            ("depot-event-type", delivery.event_type.clone()),
            ("depot-delivery-id", delivery.id.to_string()),
        ];
        let result = self
            .client
            .post(&hook.url, delivery.body.clone(), &headers)
            .await;
        let now = self.writer.now();
        Ok(match result {
            Ok(code) if (200..300).contains(&code) => Attempt {
                status: DeliveryStatus::Succeeded,
                status_code: Some(i32::from(code)),
                error: None,
                next_attempt_at: None,
                delivered_at: Some(now),
            },
            Ok(code) => self.failed(delivery, Some(code), format!("answered HTTP {code}"), now),
            Err(err) => self.failed(delivery, None, err.0, now),
        })
    }

    fn failed(
        &self,
        delivery: &webhook_delivery::Model,
        code: Option<u16>,
        error: String,
        now: DateTime<Utc>,
    ) -> Attempt {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(1);
        let retry_at = webhook_retry_at(
            attempts,
            self.retry_base,
            jitter(),
            delivery.window_started_at,
            now,
        );
        Attempt {
            status: if retry_at.is_some() {
                DeliveryStatus::Failed
            } else {
                DeliveryStatus::Dead
            },
            status_code: code.map(i32::from),
            error: Some(error),
            next_attempt_at: retry_at,
            delivered_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let header = signature(b"whsec_test", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert_ne!(
            header,
            signature(b"whsec_test", 1_700_000_000, r#"{"a":2}"#)
        );
        assert_ne!(
            header,
            signature(b"whsec_other", 1_700_000_000, r#"{"a":1}"#)
        );
    }
}
