//! Where a request came from: for sessions, rate limits and the audit log.

/// The caller's address, user agent and request id, as the HTTP layer saw them.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientInfo {
    /// The key rate limits count this client under.
    pub fn ip_key(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }

    /// A command run on this machine (the CLI): no address, no request.
    pub fn local() -> Self {
        Self::default()
    }
}
