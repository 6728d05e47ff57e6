//! The auth capability's settings, resolved once at start-up.

use depot_domain::ErrorCode;
use std::time::Duration;

use depot_domain::auth::LockoutPolicy;
use depot_domain::{AppError, AppResult};

use crate::config::Settings;

/// Settings of the auth capability. (No `Debug`: it holds the app secret.)
#[derive(Clone)]
pub struct AuthConfig {
    pub access_ttl: Duration,
    pub challenge_ttl: Duration,
    pub idle_ttl: Duration,
    pub absolute_ttl: Duration,
    pub reset_ttl: Duration,
    pub lockout: LockoutPolicy,
    pub app_secret: Vec<u8>,
    pub public_url: String,
    pub mfa_issuer: String,
    pub allowed_origins: Vec<String>,
}

impl AuthConfig {
    pub fn from_settings(settings: &Settings) -> AppResult<Self> {
        let app_secret = settings
            .app_secret
            .as_ref()
            .ok_or_else(|| {
                AppError::new(ErrorCode::ConfigAppSecret, "app_secret is not configured")
            })?
            .expose()
            .as_bytes()
            .to_vec();
        Ok(Self {
            access_ttl: Duration::from_secs(settings.access_token_ttl_secs),
            challenge_ttl: Duration::from_secs(300),
            idle_ttl: Duration::from_secs(settings.refresh_idle_ttl_secs),
            absolute_ttl: Duration::from_secs(settings.refresh_absolute_ttl_secs),
            reset_ttl: Duration::from_secs(settings.password_reset_ttl_secs),
            lockout: LockoutPolicy {
                threshold: settings.login_lockout_threshold,
                base: Duration::from_secs(settings.login_lockout_base_secs),
                max: Duration::from_secs(settings.login_lockout_max_secs),
            },
            app_secret,
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            mfa_issuer: settings.mfa_issuer.clone(),
            allowed_origins: settings.cors_origins.clone(),
        })
    }
}
