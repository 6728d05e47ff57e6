//! Cross-cutting HTTP behaviour, applied to every route.

pub mod api_limit;
pub mod client_addr;
pub mod envelope;
pub mod metrics;
pub mod request_id;
pub mod security;
