//! Makes due webhook deliveries: claims them under a lease, POSTs each with no transaction
//! held, and records the outcome — `succeeded` on a 2xx, else `failed` with the next attempt
//! (backoff) or `dead` once the 24-hour window is over.

use std::time::Duration;

use chrono::SubsecRound;
use chrono::{DateTime, Utc};
use depot_adapters::broker::jitter;
use depot_adapters::webhook::WebhookClient;
use depot_domain::AppResult;
use depot_domain::notify::{DeliveryStatus, WEBHOOK_RETRY_WINDOW, webhook_retry_at};
use depot_store::entity::webhook_delivery;
use depot_store::repo::webhooks::{self, Attempt};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::sealed::Sealer;
use crate::uow::Writer;

/// Deliveries claimed per pass.
const BATCH: u64 = 5;
/// Beyond the calls themselves, how long a claim is reserved for one sender.
const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// How long a delivery of a switched-off webhook waits before it is looked at again.
const INACTIVE_PAUSE: chrono::Duration = chrono::Duration::minutes(1);

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

/// What became of one claimed delivery.
enum Outcome {
    Done(Attempt),
    /// Not tried: its webhook is switched off.
    Deferred,
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

    /// Makes up to [`BATCH`] due deliveries; returns how many were attempted. The claim lasts
    /// longer than the batch can take (each call is bounded twice over: resolving, then
    /// sending), and an outcome is recorded only while the claim is still this sender's.
    pub(crate) async fn send_due(&self) -> AppResult<usize> {
        let now = self.writer.now();
        let lease = self.client.timeout() * 2 * BATCH as u32 + LEASE_MARGIN;
        // Stored and compared exactly: both databases keep milliseconds.
        let until = (now + chrono::Duration::from_std(lease).unwrap_or_default()).trunc_subsecs(3);
        let tx = self.writer.db().begin().await?;
        let claimed = webhooks::claim_due(&*tx, BATCH, now, until).await?;
        tx.commit().await?;
        let n = claimed.len();
        for delivery in claimed {
            let outcome = match self.attempt(&delivery).await {
                Ok(outcome) => outcome,
                // Whatever went wrong is this delivery's failure, retried like any other.
                Err(err) => {
                    tracing::warn!(delivery_id = %delivery.id, error = ?err, "a webhook delivery could not be made");
                    Outcome::Done(self.failed(
                        &delivery,
                        None,
                        "the delivery could not be prepared".into(),
                        self.writer.now(),
                    ))
                }
            };
            let now = self.writer.now();
            let tx = self.writer.db().begin().await?;
            let settled = match outcome {
                Outcome::Done(attempt) => {
                    let label = attempt.status.as_str();
                    metrics::counter!("webhook_deliveries_total", "result" => label).increment(1);
                    webhooks::settle(&*tx, delivery.id, until, attempt, now).await?
                }
                Outcome::Deferred => {
                    webhooks::defer(&*tx, delivery.id, until, now + INACTIVE_PAUSE, now).await?
                }
            };
            tx.commit().await?;
            if !settled {
                tracing::warn!(delivery_id = %delivery.id, "a webhook delivery outlasted its claim; its outcome was not recorded");
            }
        }
        Ok(n)
    }

    async fn attempt(&self, delivery: &webhook_delivery::Model) -> AppResult<Outcome> {
        let now = self.writer.now();
        let hook = webhooks::get(self.writer.db().reader(), delivery.webhook_id).await?;
        let Some(hook) = hook else {
            return Ok(Outcome::Done(Attempt {
                status: DeliveryStatus::Dead,
                status_code: None,
                error: Some("the webhook was deleted".into()),
                next_attempt_at: None,
                delivered_at: None,
            }));
        };
        if !hook.active {
            // Kept while the window lasts: switching a webhook off for a while loses nothing.
            let window_end = delivery.window_started_at
                + chrono::Duration::from_std(WEBHOOK_RETRY_WINDOW).unwrap_or_default();
            if now + INACTIVE_PAUSE <= window_end {
                return Ok(Outcome::Deferred);
            }
            return Ok(Outcome::Done(Attempt {
                status: DeliveryStatus::Dead,
                status_code: None,
                error: Some("the webhook stayed inactive for the whole retry window".into()),
                next_attempt_at: None,
                delivered_at: None,
            }));
        }
        let secret = match self.sealer.open(&hook.secret) {
            Ok(secret) => secret,
            Err(_) => {
                return Ok(Outcome::Done(Attempt {
                    status: DeliveryStatus::Dead,
                    status_code: None,
                    error: Some("the signing secret cannot be opened (app_secret changed?)".into()),
                    next_attempt_at: None,
                    delivered_at: None,
                }));
            }
        };
        let t = now.timestamp();
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
        Ok(Outcome::Done(match result {
            Ok(code) if (200..300).contains(&code) => Attempt {
                status: DeliveryStatus::Succeeded,
                status_code: Some(i32::from(code)),
                error: None,
                next_attempt_at: None,
                delivered_at: Some(now),
            },
            Ok(code) => self.failed(delivery, Some(code), format!("answered HTTP {code}"), now),
            Err(err) => self.failed(delivery, None, err.0, now),
        }))
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
