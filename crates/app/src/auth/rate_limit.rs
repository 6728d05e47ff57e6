//! Rate limits: on the authentication endpoints per client IP and per account, and on the whole
//! API per client IP and per signed-in user ([`ApiRateLimiter`]).
//!
//! With Redis the counters are shared by every instance (a fixed window per key: `INCR` +
//! `PEXPIRE NX`); without it — or while Redis is unreachable — an in-process GCRA limiter
//! (`governor`) with the same quota applies, so limits degrade to per-instance, never to none.

use depot_domain::ErrorCode;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use depot_adapters::cache::Cache;
use depot_domain::{AppError, AppResult};
use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One limited action, e.g. `login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Login,
    Refresh,
    PasswordReset,
    MfaVerify,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Refresh => "refresh",
            Action::PasswordReset => "password_reset",
            Action::MfaVerify => "mfa_verify",
        }
    }
}

/// Who is counted: the client address or the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Ip,
    Account,
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Ip => "ip",
            Subject::Account => "account",
        }
    }
}

/// One quota (`limit` per `window`) counted per key: shared through Redis when configured, else
/// (or while Redis is unreachable) in this process.
pub struct Limiter {
    cache: Arc<Cache>,
    window: Duration,
    limit: u32,
    local: KeyedLimiter,
}

fn limiter(limit: u32, window: Duration) -> KeyedLimiter {
    let burst = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
    let period = (window / burst.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst);
    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>()
}

impl Limiter {
    pub fn new(cache: Arc<Cache>, window: Duration, limit: u32) -> Self {
        Self {
            cache,
            window,
            limit,
            local: limiter(limit, window),
        }
    }

    /// Counts one request by `key` (already scoped by the caller, e.g. `login:ip:1.2.3.4`) and
    /// refuses it with `rate_limited` (429) when over the limit. The error's details name
    /// `policy` and carry what the HTTP layer turns into `Retry-After`, `RateLimit` and
    /// `RateLimit-Policy`.
    pub async fn check(&self, policy: &str, key: &str) -> AppResult<()> {
        let limit = self.limit;
        let window_secs = self.window.as_secs().max(1);
        let outcome = match self.cache.shared() {
            Some(redis) => {
                let redis_key = format!("{}:rate:{key}", self.cache.key_prefix());
                match redis.hit_window(&redis_key, self.window).await {
                    Ok((count, ttl_ms)) => {
                        Some((count <= u64::from(limit), count, ttl_ms.div_ceil(1000)))
                    }
                    Err(()) => {
                        metrics::counter!("cache_fallbacks_total", "op" => "rate_limit")
                            .increment(1);
                        None
                    }
                }
            }
            None => None,
        };
        let (allowed, remaining, reset) = match outcome {
            Some((allowed, count, reset)) => (
                allowed,
                u64::from(limit).saturating_sub(count),
                reset.max(1),
            ),
            None => {
                if self.local.len() > 100_000 {
                    self.local.retain_recent();
                }
                match self.local.check_key(&key.to_owned()) {
                    Ok(snapshot) => (
                        true,
                        u64::from(snapshot.remaining_burst_capacity()),
                        window_secs,
                    ),
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        (false, 0, wait.as_secs_f64().ceil().max(1.0) as u64)
                    }
                }
            }
        };
        if allowed {
            return Ok(());
        }
        Err(
            AppError::new(ErrorCode::RateLimited, "too many attempts; try again later")
                .with_details(serde_json::json!({
                    "retry_after_secs": reset,
                    "policy": policy,
                    "limit": limit,
                    "remaining": remaining,
                    "window_secs": window_secs,
                })),
        )
    }
}

pub struct AuthRateLimiter {
    per_ip: Limiter,
    per_account: Limiter,
}

impl AuthRateLimiter {
    pub fn new(cache: Arc<Cache>, window: Duration, per_ip: u32, per_account: u32) -> Self {
        Self {
            per_ip: Limiter::new(cache.clone(), window, per_ip),
            per_account: Limiter::new(cache, window, per_account),
        }
    }

    /// Counts one attempt of `action` from the IP `ip` and then for `account`; refused when
    /// either is over its limit (the IP is counted first, so a refused IP spends nothing of the
    /// account's budget).
    pub async fn check_ip_and_account(
        &self,
        action: Action,
        ip: &str,
        account: &str,
    ) -> AppResult<()> {
        self.check(action, Subject::Ip, ip).await?;
        self.check(action, Subject::Account, account).await
    }

    /// Counts one attempt of `action` by `key` (an IP or a normalised account name) and refuses
    /// it with `rate_limited` (429) when over the limit (policy `<action>_<subject>`).
    pub async fn check(&self, action: Action, subject: Subject, key: &str) -> AppResult<()> {
        let limiter = match subject {
            Subject::Ip => &self.per_ip,
            Subject::Account => &self.per_account,
        };
        let policy = format!("{}_{}", action.name(), subject.name());
        let scoped = format!("{}:{}:{key}", action.name(), subject.name());
        let checked = limiter.check(&policy, &scoped).await;
        if checked.is_err() {
            metrics::counter!("auth_rate_limited_total", "action" => action.name(), "subject" => subject.name())
                .increment(1);
        }
        checked
    }
}

/// The general limits on the API, beyond sign-in: requests per client IP (every `/api` route)
/// and per signed-in user (every route that authenticates). A limit of 0 is off.
pub struct ApiRateLimiter {
    per_ip: Option<Limiter>,
    per_user: Option<Limiter>,
}

impl ApiRateLimiter {
    pub fn new(cache: Arc<Cache>, window: Duration, per_ip: u32, per_user: u32) -> Self {
        let make = |limit: u32| (limit > 0).then(|| Limiter::new(cache.clone(), window, limit));
        Self {
            per_ip: make(per_ip),
            per_user: make(per_user),
        }
    }

    /// Counts one API request from `ip` (policy `api_ip`; an unknown address is one client).
    /// Nothing is allocated while the limit is off.
    pub async fn check_ip(&self, ip: Option<std::net::IpAddr>) -> AppResult<()> {
        let Some(limiter) = &self.per_ip else {
            return Ok(());
        };
        let key = match ip {
            Some(ip) => format!("api:ip:{ip}"),
            None => "api:ip:unknown".to_owned(),
        };
        Self::hit(limiter, "api_ip", &key).await
    }

    /// Counts one API request by `user` (policy `api_user`).
    pub async fn check_user(&self, user: uuid::Uuid) -> AppResult<()> {
        let Some(limiter) = &self.per_user else {
            return Ok(());
        };
        Self::hit(limiter, "api_user", &format!("api:user:{user}")).await
    }

    async fn hit(limiter: &Limiter, policy: &str, key: &str) -> AppResult<()> {
        let checked = limiter.check(policy, key).await;
        if checked.is_err() {
            metrics::counter!("api_rate_limited_total", "policy" => policy.to_owned()).increment(1);
        }
        checked
    }
}
