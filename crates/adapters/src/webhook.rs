//! Outbound webhook calls: one POST, no redirects followed, bounded in time. With the private
//! network guard on (prod), the host is resolved first, every address must be public, and the
//! connection is pinned to those addresses — a name that resolves to a public address when
//! checked and to a private one when connecting (DNS rebinding) cannot slip through.

use std::net::SocketAddr;
use std::time::Duration;

use depot_domain::notify::is_public_ip;

/// Why a call did not get an answer, in words safe to store (no URL: it may carry a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError(pub String);

#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    timeout: Duration,
    refuse_private: bool,
}

impl WebhookClient {
    pub fn new(timeout: Duration, refuse_private: bool) -> Result<Self, CallError> {
        Ok(Self {
            http: builder(timeout).build().map_err(describe)?,
            timeout,
            refuse_private,
        })
    }

    /// The bound on one call (and, separately, on resolving its host).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks that `url` is one a webhook may call: `http(s)` with a host and no credentials;
    /// with the guard on, HTTPS whose host resolves only to public addresses. Returns the
    /// addresses to pin to (empty without the guard).
    pub async fn check(&self, url: &str) -> Result<Vec<SocketAddr>, CallError> {
        let parsed = url::Url::parse(url).map_err(|_| CallError("not a URL".into()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CallError("only http and https URLs can be called".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(CallError("credentials do not belong in the URL".into()));
        }
        let Some(host) = parsed.host_str() else {
            return Err(CallError("the URL has no host".into()));
        };
        if !self.refuse_private {
            return Ok(Vec::new());
        }
        if parsed.scheme() != "https" {
            return Err(CallError("only https URLs can be called".into()));
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| CallError("resolving the host timed out".into()))?
                .map_err(|_| CallError("the host does not resolve".into()))?
                .collect();
        if addrs.is_empty() {
            return Err(CallError("the host does not resolve".into()));
        }
        if addrs.iter().any(|a| !is_public_ip(a.ip())) {
            return Err(CallError(
                "the host is a loopback, private or otherwise internal address".into(),
            ));
        }
        Ok(addrs)
    }

    /// POSTs `body` (JSON) with `headers`; returns the answer's status code.
    pub async fn post(
        &self,
        url: &str,
        body: String,
        headers: &[(&'static str, String)],
    ) -> Result<u16, CallError> {
        let pinned = self.check(url).await?;
        let client = if pinned.is_empty() {
            self.http.clone()
        } else {
            let host = url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            builder(self.timeout)
                .resolve_to_addrs(&host, &pinned)
                .build()
                .map_err(describe)?
        };
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "Depot-Webhooks/1");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.body(body).send().await.map_err(describe)?;
        Ok(response.status().as_u16())
    }
}

/// No redirects, and no proxy from the environment: a proxy would resolve the host itself,
/// past the pinned addresses.
fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    crate::payments::http_client(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// What went wrong, without the URL.
fn describe(err: reqwest::Error) -> CallError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_builder() {
        "could not build the request"
    } else {
        "the request failed"
    };
    CallError(kind.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_guard_refuses_internal_hosts_and_plain_http() {
        let guarded = WebhookClient::new(Duration::from_secs(2), true).unwrap();
        for url in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://10.0.0.5/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/hook",
            "http://93.184.216.34/hook",
            "ftp://example.com/x",
            "https://user:pw@93.184.216.34/",
        ] {
            assert!(guarded.check(url).await.is_err(), "{url} must be refused");
        }
        assert!(guarded.check("https://93.184.216.34/hook").await.is_ok());
        let open = WebhookClient::new(Duration::from_secs(2), false).unwrap();
        assert!(open.check("http://127.0.0.1:9/hook").await.is_ok());
    }
}
