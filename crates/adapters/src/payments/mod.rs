//! The payment gateway behind one trait: SSLCommerz over its HTTP API (sandbox, live, or the
//! built-in simulator that speaks the same API on Depot's own listener).

mod signature;
pub mod simulator;
mod sslcommerz;

use async_trait::async_trait;

pub use signature::{SignatureError, field, md5_hex, sign, verify};
pub use sslcommerz::{RetryPolicy, SslCommerz, redact};

/// An HTTP client builder with the process's TLS provider in place (ring, installed here if
/// startup has not: a client cannot be built without one).
pub(crate) fn http_client(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
}

/// A gateway's two-decimal amount in cents (`"12.5"` → 1250); `None` if it is not one.
pub(crate) fn sslcommerz_cents(text: &str) -> Option<i64> {
    depot_domain::trade::payment::parse_decimal_amount(text)
}

/// What opening a checkout session needs (amount in the gateway's decimal form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub tran_id: String,
    /// Two decimals, `"1234.50"`.
    pub total_amount: String,
    pub currency: String,
    pub success_url: String,
    pub fail_url: String,
    pub cancel_url: String,
    pub ipn_url: String,
    pub product_name: String,
    pub product_category: String,
    pub num_of_item: u32,
    pub customer: Customer,
}

/// The `cus_*` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Customer {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub address: String,
    pub city: String,
    pub postcode: String,
    pub country: String,
}

/// An open session: where to send the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub gateway_url: String,
    pub session_key: Option<String>,
}

/// What the gateway says about one transaction (validation API, or one element of a
/// transaction query).
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// `VALID`, `VALIDATED`, `INVALID_TRANSACTION`, `PENDING`, `FAILED`, `CANCELLED`, …
    pub status: String,
    pub tran_id: String,
    pub val_id: Option<String>,
    /// As written by the gateway, `"100.00"`.
    pub amount: String,
    pub currency: String,
    pub bank_tran_id: Option<String>,
    pub risk_level: Option<i32>,
    /// The whole answer, redacted (card and personal fields masked).
    pub payload: serde_json::Value,
}

impl Validation {
    /// The gateway vouches for the money (`VALID`, or `VALIDATED` when asked again).
    pub fn is_valid(&self) -> bool {
        matches!(self.status.as_str(), "VALID" | "VALIDATED")
    }
}

/// A refund to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub bank_tran_id: String,
    /// Two decimals.
    pub refund_amount: String,
    pub refund_remarks: String,
    /// Our reference, so a retried request is recognised.
    pub refe_id: String,
}

/// Where a refund stands at the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundProgress {
    Processing,
    Refunded,
    Refused,
}

/// The gateway's answer about a refund.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundAnswer {
    pub progress: RefundProgress,
    pub refund_ref_id: Option<String>,
    /// The gateway's reason when it refused.
    pub reason: Option<String>,
}

/// Why a gateway call failed; safe to show and store (no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// Not reached, timed out or answered 5xx, after the retries.
    Unavailable(String),
    /// Answered, and refused (its reason).
    Refused(String),
    /// Answered with something that is not the documented shape.
    Malformed(String),
}

impl GatewayError {
    /// The label of the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::Unavailable(_) => "unavailable",
            GatewayError::Refused(_) => "refused",
            GatewayError::Malformed(_) => "malformed",
        }
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayError::Unavailable(m) => write!(f, "the gateway is unavailable: {m}"),
            GatewayError::Refused(m) => write!(f, "the gateway refused: {m}"),
            GatewayError::Malformed(m) => write!(f, "the gateway answered unexpectedly: {m}"),
        }
    }
}

impl std::error::Error for GatewayError {}

/// A payment gateway.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Opens a checkout session.
    async fn open_session(&self, request: &SessionRequest) -> Result<Session, GatewayError>;
    /// Asks the validation API about a `val_id` from a callback.
    async fn validate(&self, val_id: &str) -> Result<Validation, GatewayError>;
    /// Every transaction the gateway knows under our `tran_id` (missed-callback recovery).
    async fn transactions(&self, tran_id: &str) -> Result<Vec<Validation>, GatewayError>;
    /// Starts a refund.
    async fn refund(&self, request: &RefundRequest) -> Result<RefundAnswer, GatewayError>;
    /// Where a started refund stands.
    async fn refund_status(&self, refund_ref_id: &str) -> Result<RefundAnswer, GatewayError>;
    /// Checks a posted callback's signature.
    fn verify_callback(&self, fields: &[(String, String)]) -> Result<(), SignatureError>;
}
