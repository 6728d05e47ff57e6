//! Authentication and authorisation: who is calling, and what they may do.
//!
//! The capability is a few services, each along one seam:
//! - [`authenticator::Authenticator`] turns a bearer token into a [`principal::Principal`];
//! - [`sessions::SessionService`]: sign-in with lockout, refresh rotation, logout, sessions;
//! - [`mfa::MfaService`]: TOTP enrolment and the second step of sign-in;
//! - [`password::PasswordService`]: password change and emailed reset;
//! - [`authz::AuthzCache`] and [`password::ResetLinks`]: the small handles other capabilities
//!   (users, roles) hold to invalidate grants and send set-password links.
//!
//! Every security-relevant step is written to the audit log by the unit of work of the change
//! it records.

pub mod authenticator;
pub mod authz;
pub mod csrf;
pub(crate) mod grants;
pub mod mfa;
pub mod password;
pub mod passwords;
pub mod principal;
pub mod rate_limit;
pub mod sealed;
pub mod secrets;
pub mod security_events;
pub mod sessions;
pub mod settings;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use depot_adapters::cache::Cache;
use depot_domain::AppResult;

use crate::config::Settings;
use crate::uow::Writer;
use authenticator::Authenticator;
use authz::AuthzCache;
use mfa::MfaService;
use password::{PasswordService, ResetLinks};
use rate_limit::{ApiRateLimiter, AuthRateLimiter};
use sessions::SessionService;
use settings::AuthConfig;
use tokens::TokenKeys;

/// The services of the auth capability, built together over shared keys and limits.
#[derive(Clone)]
pub struct AuthServices {
    pub authenticator: Authenticator,
    pub sessions: SessionService,
    pub mfa: MfaService,
    pub passwords: PasswordService,
    pub authz: AuthzCache,
    pub reset_links: ResetLinks,
    pub config: Arc<AuthConfig>,
    pub api_limits: Arc<ApiRateLimiter>,
}

impl AuthServices {
    pub fn build(settings: &Settings, writer: Writer, cache: Arc<Cache>) -> AppResult<Self> {
        let config = Arc::new(AuthConfig::from_settings(settings)?);
        let keys = Arc::new(TokenKeys::from_settings(settings)?);
        let limiter = Arc::new(AuthRateLimiter::new(
            cache.clone(),
            Duration::from_secs(settings.auth_rate_limit_window_secs.max(1)),
            settings.auth_rate_limit_per_ip,
            settings.auth_rate_limit_per_account,
        ));
        let (per_ip, per_user) = settings.api_rate_limits();
        let api_limits = Arc::new(ApiRateLimiter::new(
            cache.clone(),
            Duration::from_secs(settings.api_rate_limit_window_secs.max(1)),
            per_ip,
            per_user,
        ));
        let authz = AuthzCache::new(cache.clone());
        let authenticator = Authenticator::new(
            writer.db().clone(),
            writer.clock().clone(),
            cache,
            keys.clone(),
        );
        let sessions = SessionService {
            writer: writer.clone(),
            keys,
            limiter: limiter.clone(),
            config: config.clone(),
            authz: authz.clone(),
        };
        let mfa = MfaService {
            writer: writer.clone(),
            sealer: sealed::Sealer::new(&config.app_secret)?,
            limiter: limiter.clone(),
            authz: authz.clone(),
            issuer: config.mfa_issuer.clone(),
            sessions: sessions.clone(),
            authenticator: authenticator.clone(),
        };
        let reset_links = ResetLinks::new(config.clone());
        let passwords = PasswordService {
            writer,
            limiter,
            authz: authz.clone(),
            links: reset_links.clone(),
        };
        Ok(Self {
            authenticator,
            sessions,
            mfa,
            passwords,
            authz,
            reset_links,
            config,
            api_limits,
        })
    }
}
