//! The SSLCommerz API (v4 session, validation and transaction-query APIs, refunds) over
//! `reqwest`: every call with a timeout, retried with capped exponential backoff and full
//! jitter when the gateway cannot be reached, times out or answers 5xx — never when it
//! answered. The store password travels in the requests (the gateway's design) and never
//! reaches a log: errors are reported without their URL.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use serde_json::Value;

use super::{
    GatewayError, PaymentGateway, RefundAnswer, RefundProgress, RefundRequest, Session,
    SessionRequest, SignatureError, Validation, signature,
};

/// How gateway calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls after the first.
    pub retries: u32,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// First backoff; doubles per retry up to `max_backoff`, each wait drawn at random below it.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 2,
            timeout: Duration::from_secs(5),
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .base_backoff
            .saturating_mul(1 << retry.min(16))
            .min(self.max_backoff);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// An SSLCommerz store.
pub struct SslCommerz {
    base: String,
    store_id: String,
    store_password: String,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl SslCommerz {
    /// The sandbox's base URL.
    pub const SANDBOX: &'static str = "https://sandbox.sslcommerz.com";
    /// The live base URL.
    pub const LIVE: &'static str = "https://securepay.sslcommerz.com";

    pub fn new(
        base: &str,
        store_id: &str,
        store_password: &str,
        retry: RetryPolicy,
    ) -> Result<Self, GatewayError> {
        let http = super::http_client(retry.timeout)
            .build()
            .map_err(|e| GatewayError::Unavailable(e.without_url().to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            store_id: store_id.to_owned(),
            store_password: store_password.to_owned(),
            http,
            retry,
        })
    }

    /// The same store and client at another base URL.
    pub fn with_base(&self, base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            store_id: self.store_id.clone(),
            store_password: self.store_password.clone(),
            http: self.http.clone(),
            retry: self.retry,
        }
    }

    fn credentials(&self) -> [(&'static str, &str); 2] {
        [
            ("store_id", self.store_id.as_str()),
            ("store_passwd", self.store_password.as_str()),
        ]
    }

    /// One call, retried per the policy; the answer's JSON.
    async fn call(
        &self,
        operation: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, GatewayError> {
        let started = Instant::now();
        let mut retry = 0;
        let outcome = loop {
            let problem = match request().send().await {
                Ok(response) if response.status().is_server_error() => {
                    format!("HTTP {}", response.status().as_u16())
                }
                Ok(response) if !response.status().is_success() => {
                    break Err(GatewayError::Refused(format!(
                        "HTTP {}",
                        response.status().as_u16()
                    )));
                }
                Ok(response) => match response.bytes().await {
                    Ok(body) => {
                        break serde_json::from_slice::<Value>(&body)
                            .map_err(|e| GatewayError::Malformed(format!("not JSON: {e}")));
                    }
                    Err(e) => e.without_url().to_string(),
                },
                Err(e) => e.without_url().to_string(),
            };
            if retry >= self.retry.retries {
                break Err(GatewayError::Unavailable(problem));
            }
            tracing::warn!(
                operation,
                retry,
                problem,
                "payment gateway call failed; retrying"
            );
            tokio::time::sleep(self.retry.backoff(retry)).await;
            retry += 1;
        };
        metrics::histogram!("depot_payment_gateway_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &outcome {
            metrics::counter!("depot_payment_gateway_errors_total",
                "operation" => operation, "kind" => e.kind())
            .increment(1);
        }
        outcome
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn query(
        &self,
        operation: &'static str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Value, GatewayError> {
        let url = self.api(path);
        let mut query: Vec<(&str, &str)> = params.to_vec();
        query.extend(self.credentials());
        query.extend([("v", "1"), ("format", "json")]);
        self.call(operation, || self.http.get(&url).query(&query))
            .await
    }
}

/// A string field of a gateway answer (numbers written as text too).
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn non_empty(v: &Value, key: &str) -> Option<String> {
    text(v, key).filter(|s| !s.is_empty())
}

/// The API-level status of a query answer: anything but `DONE` is the gateway refusing.
fn connected(v: &Value) -> Result<(), GatewayError> {
    match text(v, "APIConnect").as_deref() {
        None | Some("DONE") => Ok(()),
        Some(other) => Err(GatewayError::Refused(format!("APIConnect {other}"))),
    }
}

fn validation(v: &Value) -> Result<Validation, GatewayError> {
    let status = text(v, "status")
        .ok_or_else(|| GatewayError::Malformed("no status in the validation answer".into()))?;
    Ok(Validation {
        status,
        tran_id: text(v, "tran_id").unwrap_or_default(),
        val_id: non_empty(v, "val_id"),
        amount: text(v, "amount").unwrap_or_default(),
        currency: text(v, "currency").unwrap_or_default(),
        bank_tran_id: non_empty(v, "bank_tran_id"),
        risk_level: text(v, "risk_level").and_then(|r| r.trim().parse().ok()),
        payload: redact(v.clone()),
    })
}

fn refund_answer(v: &Value) -> Result<RefundAnswer, GatewayError> {
    connected(v)?;
    let status = text(v, "status").unwrap_or_default().to_ascii_lowercase();
    let progress = match status.as_str() {
        // Initiation answers `success` (accepted, processing); the status query `refunded`.
        "refunded" => RefundProgress::Refunded,
        "success" | "processing" => RefundProgress::Processing,
        "failed" | "cancelled" => RefundProgress::Refused,
        other => {
            return Err(GatewayError::Malformed(format!(
                "unknown refund status {other:?}"
            )));
        }
    };
    Ok(RefundAnswer {
        progress,
        refund_ref_id: non_empty(v, "refund_ref_id"),
        reason: non_empty(v, "errorReason"),
    })
}

/// Fields of a callback or an answer that are card or personal data.
const MASKED: &[&str] = &[
    "card_issuer",
    "card_brand",
    "card_sub_brand",
    "card_issuer_country",
    "card_issuer_country_code",
    "cus_name",
    "cus_email",
    "cus_phone",
    "cus_add1",
    "cus_add2",
    "cus_city",
    "cus_postcode",
];

/// A gateway payload fit to store: card number reduced to its last four digits, card issuer
/// and personal fields masked, credentials dropped.
pub fn redact(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.remove("store_passwd");
        for (key, value) in map.iter_mut() {
            let Value::String(s) = value else { continue };
            if key == "card_no" {
                let tail: String = s
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                *s = format!("****{tail}");
            } else if MASKED.contains(&key.as_str()) && !s.is_empty() {
                *s = "***".to_owned();
            }
        }
        if let Some(Value::Array(items)) = map.get_mut("element") {
            for item in items.iter_mut() {
                *item = redact(std::mem::take(item));
            }
        }
    }
    v
}

#[async_trait]
impl PaymentGateway for SslCommerz {
    async fn open_session(&self, r: &SessionRequest) -> Result<Session, GatewayError> {
        let num_of_item = r.num_of_item.to_string();
        let c = &r.customer;
        let mut form: Vec<(&str, &str)> = self.credentials().to_vec();
        form.extend([
            ("total_amount", r.total_amount.as_str()),
            ("currency", &r.currency),
            ("tran_id", &r.tran_id),
            ("success_url", &r.success_url),
            ("fail_url", &r.fail_url),
            ("cancel_url", &r.cancel_url),
            ("ipn_url", &r.ipn_url),
            ("product_name", &r.product_name),
            ("product_category", &r.product_category),
            ("product_profile", "general"),
            ("shipping_method", "NO"),
            ("num_of_item", &num_of_item),
            ("cus_name", &c.name),
            ("cus_email", &c.email),
            ("cus_phone", &c.phone),
            ("cus_add1", &c.address),
            ("cus_city", &c.city),
            ("cus_postcode", &c.postcode),
            ("cus_country", &c.country),
        ]);
        let url = self.api("/gwprocess/v4/api.php");
        let answer = self
            .call("session", || self.http.post(&url).form(&form))
            .await?;
        match text(&answer, "status").as_deref() {
            Some("SUCCESS") => {
                let gateway_url = non_empty(&answer, "GatewayPageURL").ok_or_else(|| {
                    GatewayError::Malformed("no GatewayPageURL in the session answer".into())
                })?;
                Ok(Session {
                    gateway_url,
                    session_key: non_empty(&answer, "sessionkey"),
                })
            }
            _ => Err(GatewayError::Refused(
                non_empty(&answer, "failedreason")
                    .unwrap_or_else(|| "the session was not opened".into()),
            )),
        }
    }

    async fn validate(&self, val_id: &str) -> Result<Validation, GatewayError> {
        let answer = self
            .query(
                "validate",
                "/validator/api/validationserverAPI.php",
                &[("val_id", val_id)],
            )
            .await?;
        validation(&answer)
    }

    async fn transactions(&self, tran_id: &str) -> Result<Vec<Validation>, GatewayError> {
        let answer = self
            .query(
                "transactions",
                "/validator/api/merchantTransIDvalidationAPI.php",
                &[("tran_id", tran_id)],
            )
            .await?;
        connected(&answer)?;
        match answer.get("element") {
            Some(Value::Array(items)) => items.iter().map(validation).collect(),
            _ => Ok(Vec::new()),
        }
    }

    async fn refund(&self, r: &RefundRequest) -> Result<RefundAnswer, GatewayError> {
        let answer = self
            .query(
                "refund",
                "/validator/api/merchantTransIDvalidationAPI.php",
                &[
                    ("bank_tran_id", &r.bank_tran_id),
                    ("refund_amount", &r.refund_amount),
                    ("refund_remarks", &r.refund_remarks),
                    ("refe_id", &r.refe_id),
                ],
            )
            .await?;
        refund_answer(&answer)
    }

    async fn refund_status(&self, refund_ref_id: &str) -> Result<RefundAnswer, GatewayError> {
        let answer = self
            .query(
                "refund_status",
                "/validator/api/merchantTransIDvalidationAPI.php",
                &[("refund_ref_id", refund_ref_id)],
            )
            .await?;
        refund_answer(&answer)
    }

    fn verify_callback(&self, fields: &[(String, String)]) -> Result<(), SignatureError> {
        signature::verify(fields, &self.store_password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_redacted() {
        let v = serde_json::json!({
            "card_no": "418117XXXXXX6675", "card_issuer": "TRUST BANK, LTD.",
            "card_brand": "VISA", "store_passwd": "secret", "amount": "10.00",
            "cus_email": "", "element": [{"card_no": "1234567890123456"}],
        });
        let r = redact(v);
        assert_eq!(r["card_no"], "****6675");
        assert_eq!(r["card_issuer"], "***");
        assert_eq!(r["card_brand"], "***");
        assert_eq!(r["amount"], "10.00");
        assert_eq!(r["cus_email"], "");
        assert!(r.get("store_passwd").is_none());
        assert_eq!(r["element"][0]["card_no"], "****3456");
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy::default();
        for retry in 0..40 {
            assert!(p.backoff(retry) <= p.max_backoff);
        }
    }

    #[test]
    fn refund_answers_are_read() {
        let started = serde_json::json!({"APIConnect": "DONE", "status": "success",
            "refund_ref_id": "R1", "errorReason": ""});
        assert_eq!(
            refund_answer(&started),
            Ok(RefundAnswer {
                progress: RefundProgress::Processing,
                refund_ref_id: Some("R1".into()),
                reason: None
            })
        );
        let done = serde_json::json!({"APIConnect": "DONE", "status": "refunded"});
        assert_eq!(
            refund_answer(&done).map(|a| a.progress),
            Ok(RefundProgress::Refunded)
        );
        let refused = serde_json::json!({"APIConnect": "INVALID_REQUEST"});
        assert!(matches!(
            refund_answer(&refused),
            Err(GatewayError::Refused(_))
        ));
    }
}
