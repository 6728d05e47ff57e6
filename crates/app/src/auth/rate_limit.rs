//! Rate limits on the authentication endpoints, per client IP and per account.
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

pub struct AuthRateLimiter {
    cache: Arc<Cache>,
    window: Duration,
    per_ip: u32,
    per_account: u32,
    local_ip: KeyedLimiter,
    local_account: KeyedLimiter,
}

fn limiter(limit: u32, window: Duration) -> KeyedLimiter {
    let burst = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
    let period = (window / burst.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst);
    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>()
}

impl AuthRateLimiter {
    pub fn new(cache: Arc<Cache>, window: Duration, per_ip: u32, per_account: u32) -> Self {
        Self {
            cache,
            window,
            per_ip,
            per_account,
            local_ip: limiter(per_ip, window),
            local_account: limiter(per_account, window),
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
    /// it with `rate_limited` (429) when over the limit. The error's details carry what the
    /// HTTP layer turns into `Retry-After`, `RateLimit` and `RateLimit-Policy`.
    pub async fn check(&self, action: Action, subject: Subject, key: &str) -> AppResult<()> {
        let limit = match subject {
            Subject::Ip => self.per_ip,
            Subject::Account => self.per_account,
        };
        let scoped = format!("{}:{}:{key}", action.name(), subject.name());
        let window_secs = self.window.as_secs().max(1);
        let outcome = match self.cache.shared() {
            Some(redis) => {
                let redis_key = format!("{}:rate:{scoped}", self.cache.key_prefix());
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
                let local = match subject {
                    Subject::Ip => &self.local_ip,
                    Subject::Account => &self.local_account,
                };
                if local.len() > 100_000 {
                    local.retain_recent();
                }
                match local.check_key(&scoped) {
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
        metrics::counter!("auth_rate_limited_total", "action" => action.name(), "subject" => subject.name())
            .increment(1);
        Err(
            AppError::new(ErrorCode::RateLimited, "too many attempts; try again later")
                .with_details(serde_json::json!({
                    "retry_after_secs": reset,
                    "policy": format!("{}_{}", action.name(), subject.name()),
                    "limit": limit,
                    "remaining": remaining,
                    "window_secs": window_secs,
                })),
        )
    }
}
