//! Access tokens: HS256 JWTs with `iss`, `aud`, `exp`, `nbf`, `iat`, `jti`, `sid` and a `kid`
//! header naming the key. Verification allows HS256 only, requires every registered claim, and
//! knows several keys by `kid`, so a key can be rotated: sign with the new one, keep verifying
//! with the old one until its tokens have expired, then remove it.

use depot_domain::ErrorCode;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use depot_domain::{AppError, AppResult};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Settings;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    /// Calls the API.
    Access,
    /// Proves the password was right; exchanged with a TOTP code for tokens.
    MfaChallenge,
    /// Lets a user whose role requires MFA enrol, and nothing else.
    MfaEnrolment,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id (nil for challenge and enrolment tokens).
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    #[serde(rename = "use")]
    pub token_use: TokenUse,
}

impl Claims {
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or_else(Utc::now)
    }

    pub fn issued_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.iat, 0).unwrap_or_default()
    }
}

pub struct TokenKeys {
    current_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    issuer: String,
    audience: String,
    /// HS256 only; issuer, audience and every time claim required. Times are checked against
    /// the injected clock in [`TokenKeys::verify`], so the library's own checks are off.
    validation: Validation,
}

impl TokenKeys {
    pub fn from_settings(settings: &Settings) -> AppResult<Self> {
        let current = settings.jwt_secret.as_ref().ok_or_else(|| {
            AppError::new(ErrorCode::ConfigJwtSecret, "jwt_secret is not configured")
        })?;
        let mut decoding = HashMap::new();
        decoding.insert(
            settings.jwt_key_id.clone(),
            DecodingKey::from_secret(current.expose().as_bytes()),
        );
        for (kid, key) in &settings.jwt_previous_keys {
            decoding.insert(
                kid.clone(),
                DecodingKey::from_secret(key.expose().as_bytes()),
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(Self {
            validation,
            current_kid: settings.jwt_key_id.clone(),
            encoding: EncodingKey::from_secret(current.expose().as_bytes()),
            decoding,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
        })
    }

    /// Signs a token for `user` in session `sid`, valid from `now` for `ttl`.
    pub fn issue(
        &self,
        user: Uuid,
        sid: Uuid,
        token_use: TokenUse,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> AppResult<(String, Claims)> {
        let iat = now.timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user,
            sid,
            jti: depot_domain::id::new_id(),
            iat,
            nbf: iat,
            exp: iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            token_use,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| AppError::internal(std::io::Error::other(e.to_string())))?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, issuer, audience and times, and that the token is meant
    /// for `expected`. Every failure is the same `auth.invalid_token` (the reason is logged at
    /// debug level only).
    pub fn verify(&self, token: &str, expected: TokenUse, now: DateTime<Utc>) -> AppResult<Claims> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid(&"algorithm not allowed"));
        }
        let kid = header.kid.ok_or_else(|| invalid(&"no kid"))?;
        let key = self
            .decoding
            .get(&kid)
            .ok_or_else(|| invalid(&"unknown kid"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| invalid(&e))?
            .claims;
        // Times are checked against the injected clock, with a small allowance for skew.
        const LEEWAY: i64 = 30;
        let t = now.timestamp();
        if claims.exp <= t - LEEWAY || claims.exp <= claims.iat {
            return Err(invalid(&"expired"));
        }
        if claims.nbf > t + LEEWAY || claims.iat > t + LEEWAY {
            return Err(invalid(&"not yet valid"));
        }
        if claims.token_use != expected {
            return Err(invalid(&"wrong token use"));
        }
        Ok(claims)
    }
}

fn invalid(reason: &dyn std::fmt::Display) -> AppError {
    tracing::debug!(%reason, "access token refused");
    AppError::new(
        ErrorCode::AuthInvalidToken,
        "the access token is missing, invalid or expired",
    )
}
