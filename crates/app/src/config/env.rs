//! Environment variables as a figment provider.
//!
//! Unlike figment's own `Env`, values of string-typed keys (secrets, URLs, names) are taken
//! verbatim: a secret such as `0123456789` must not become the integer `123456789`. Other values
//! are parsed (numbers, booleans, arrays) as figment does.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Unprefixed variables accepted for the conventional names.
const CONVENTIONAL: [&str; 9] = [
    "DATABASE_URL",
    "REDIS_URL",
    "AMQP_URL",
    "SMTP_URL",
    "S3_BUCKET",
    "S3_ENDPOINT",
    "S3_REGION",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
];

/// Keys whose values are strings and are never parsed.
const VERBATIM: [&str; 24] = [
    "jwt_key_id",
    "jwt_issuer",
    "jwt_audience",
    "public_url",
    "mfa_issuer",
    "namespace",
    "data_dir",
    "database_url",
    "database_replica_url",
    "log_filter",
    "otlp_endpoint",
    "jwt_secret",
    "app_secret",
    "redis_url",
    "amqp_url",
    "s3_bucket",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "smtp_url",
    "mail_from",
    "sslcommerz_store_id",
    "sslcommerz_store_password",
];

pub struct EnvProvider {
    name: &'static str,
    /// Variable name → configuration key, or `None` to skip the variable.
    select: fn(&str) -> Option<String>,
}

impl EnvProvider {
    /// `DEPOT_*` variables. `DEPOT_CONFIG` (the file path) and `DEPOT_TEST_*` (test harness)
    /// are not settings.
    pub fn depot() -> Self {
        Self {
            name: "`DEPOT_` environment variable",
            select: |var| {
                let key = var.strip_prefix("DEPOT_")?.to_ascii_lowercase();
                (key != "config" && !key.starts_with("test_") && !key.is_empty()).then_some(key)
            },
        }
    }

    /// `DATABASE_URL`, `REDIS_URL`, `AMQP_URL`, `SMTP_URL` and `S3_*`.
    pub fn conventional() -> Self {
        Self {
            name: "environment variable",
            select: |var| {
                CONVENTIONAL
                    .contains(&var)
                    .then(|| var.to_ascii_lowercase())
            },
        }
    }
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (var, raw) in std::env::vars() {
            let Some(key) = (self.select)(&var) else {
                continue;
            };
            let value = if VERBATIM.contains(&key.as_str()) {
                Value::from(raw)
            } else {
                raw.parse::<Value>().unwrap_or_else(|never| match never {})
            };
            dict.insert(key, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}
