use figment::Figment;
use figment::providers::{Format, Toml};

use super::*;

fn load(toml: &str) -> Settings {
    match LoadedConfig::from_figment(Figment::new().merge(Toml::string(toml))) {
        Ok(loaded) => loaded.settings,
        Err(e) => panic!("load failed: {e}"),
    }
}

fn problem_keys(settings: &Settings) -> Vec<&'static str> {
    match settings.validate() {
        Ok(()) => Vec::new(),
        Err(ConfigErrors(problems)) => problems.iter().map(|p| p.key).collect(),
    }
}

/// What validation reports; empty when the settings are valid.
fn validation_message(settings: &Settings) -> String {
    settings
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

const STRONG: &str = "k3y-0123456789-abcdefghijklmnopqrstuvwxyz";
const STRONG2: &str = "z9y8-x7w6v5u4t3s2r1q0-ponmlkjihgfedcba";
const LOCAL_DB: &str = "postgres://localhost/depot";

/// The TOML of the prod profile with the three settings it requires.
fn prod_toml(database_url: &str, jwt_secret: &str, app_secret: &str) -> String {
    format!(
        r#"profile = "prod"
        database_url = "{database_url}"
        jwt_secret = "{jwt_secret}"
        app_secret = "{app_secret}""#
    )
}

#[test]
fn dev_defaults_are_valid_and_use_sqlite_in_the_data_dir() {
    let s = load("");
    assert_eq!(problem_keys(&s), Vec::<&str>::new());
    assert_eq!(s.database_url(), "sqlite://data/depot.db");
    assert!(s.auto_migrate());
    assert_eq!(s.log_format(), LogFormat::Pretty);
    assert_eq!(s.cache_backend(), CacheBackend::Memory);
    assert_eq!(s.broker_backend(), BrokerBackend::Database);
}

#[test]
fn prod_with_nothing_set_names_every_missing_setting_at_once() {
    let s = load(r#"profile = "prod""#);
    assert_eq!(
        problem_keys(&s),
        vec!["database_url", "jwt_secret", "app_secret"]
    );
    let message = validation_message(&s);
    assert!(message.contains("3 problems"), "{message}");
    assert!(!s.auto_migrate(), "prod never auto-migrates by default");
    assert_eq!(s.log_format(), LogFormat::Json);
}

#[test]
fn prod_rejects_a_short_jwt_secret_and_placeholders() {
    let s = load(&prod_toml(LOCAL_DB, "0123456789", STRONG));
    let err = validation_message(&s);
    assert!(err.contains("jwt_secret: weak: 10 bytes"), "{err}");

    let placeholder = load(&prod_toml(
        LOCAL_DB,
        "please-change-this-secret-in-production-0000",
        STRONG,
    ));
    assert_eq!(problem_keys(&placeholder), vec!["jwt_secret"]);
}

#[test]
fn prod_rejects_a_placeholder_app_secret() {
    let placeholder = load(&prod_toml(
        LOCAL_DB,
        STRONG,
        "please-change-me-app-secret-before-going-live",
    ));
    assert_eq!(problem_keys(&placeholder), vec!["app_secret"]);
    let message = validation_message(&placeholder);
    assert!(message.contains("placeholder"), "{message}");
}

#[test]
fn prod_refuses_the_sslcommerz_sandbox() {
    let payments = "payments_enabled = true\nsslcommerz_store_id = \"depot\"\n\
                    sslcommerz_store_password = \"store-password-0123\"";
    let sandbox = load(&format!(
        "{}\n{payments}\nsslcommerz_sandbox = true",
        prod_toml(LOCAL_DB, STRONG, STRONG2)
    ));
    assert_eq!(problem_keys(&sandbox), vec!["sslcommerz_sandbox"]);
    let live = load(&format!(
        "{}\n{payments}\nsslcommerz_sandbox = false",
        prod_toml(LOCAL_DB, STRONG, STRONG2)
    ));
    assert_eq!(problem_keys(&live), Vec::<&str>::new());
}

#[test]
fn prod_with_everything_strong_is_valid() {
    let s = load(&prod_toml("postgres://depot:pw@db/depot", STRONG, STRONG2));
    assert_eq!(problem_keys(&s), Vec::<&str>::new());
}

#[test]
fn selected_backends_need_their_urls() {
    let s = load(
        r#"cache_backend = "redis"
        broker_backend = "rabbitmq"
        blob_backend = "s3"
        mail_backend = "smtp"
        payments_enabled = true"#,
    );
    assert_eq!(
        problem_keys(&s),
        vec![
            "redis_url",
            "amqp_url",
            "s3_bucket",
            "s3_access_key_id",
            "s3_secret_access_key",
            "smtp_url",
            "sslcommerz_store_id",
            "sslcommerz_store_password"
        ]
    );
}

#[test]
fn urls_select_their_backend() {
    let s = load(
        r#"redis_url = "redis://127.0.0.1:6379"
    amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f""#,
    );
    assert_eq!(s.cache_backend(), CacheBackend::Redis);
    assert_eq!(s.broker_backend(), BrokerBackend::Rabbitmq);
    assert_eq!(problem_keys(&s), Vec::<&str>::new());
}

#[test]
fn cors_wildcard_and_malformed_origins_are_rejected() {
    let s = load(
        r#"cors_origins = ["*", "https://ok.example.com", "ftp://x", "https://a.example.com/path"]"#,
    );
    assert_eq!(
        problem_keys(&s),
        vec!["cors_origins", "cors_origins", "cors_origins"]
    );
}

#[test]
fn cors_origins_accept_a_comma_separated_string() {
    let s = load(r#"cors_origins = "https://a.example.com, https://b.example.com""#);
    assert_eq!(
        s.cors_origins,
        vec!["https://a.example.com", "https://b.example.com"]
    );
}

#[test]
fn unknown_keys_are_an_error_not_a_silent_default() {
    let err = LoadedConfig::from_figment(Figment::new().merge(Toml::string("jwt_secrt = \"x\"")));
    let message = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("jwt_secrt"), "{message}");
}

#[test]
fn debug_routes_are_refused_in_prod() {
    let toml = prod_toml(LOCAL_DB, STRONG, STRONG2) + "\ndebug_routes = true";
    let s = load(&toml);
    assert_eq!(problem_keys(&s), vec!["debug_routes"]);
}

#[test]
fn describe_redacts_secrets_and_names_sources() {
    let loaded = LoadedConfig::from_figment(Figment::new().merge(Toml::string(&format!(
        r#"jwt_secret = "{STRONG}"
        database_url = "postgres://depot:hunter2@db/depot""#
    ))));
    let Ok(loaded) = loaded else {
        panic!("load failed")
    };
    let described = loaded.describe();
    let text = format!("{described:?}");
    assert!(!text.contains(STRONG), "secret leaked: {text}");
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    let source_of = |key: &str| {
        described
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, s)| s.clone())
            .unwrap_or_default()
    };
    assert_eq!(source_of("http_addr"), "default");
    assert_ne!(source_of("jwt_secret"), "default");
}

#[test]
fn dev_secrets_are_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut first = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let generated = first.fill_dev_secrets().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(generated, vec!["jwt_secret", "app_secret"]);
    let jwt = first.jwt_secret.as_ref().map(|s| s.expose().to_owned());
    assert!(jwt.as_ref().is_some_and(|s| secret_weakness(s).is_none()));

    let mut second = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    assert!(
        second
            .fill_dev_secrets()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    assert_eq!(second.jwt_secret.map(|s| s.expose().to_owned()), jwt);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("dev-secrets.toml"))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn consumer_concurrency_is_per_queue_and_bounded() {
    let s = load("consumer_concurrency = { email = 8, debug = 2 }");
    assert_eq!(s.consumer_concurrency.get("email"), Some(&8));
    assert_eq!(problem_keys(&s), Vec::<&str>::new());
    let bad = load("consumer_concurrency = { email = 0 }");
    assert_eq!(problem_keys(&bad), vec!["consumer_concurrency"]);
}

#[test]
fn job_schedules_take_intervals_or_cron_and_refuse_nonsense() {
    let s =
        load(r#"job_schedules = { purge_idempotency_keys = "0 0 3 * * *", other = "every 5m" }"#);
    assert_eq!(problem_keys(&s), Vec::<&str>::new());
    let bad = load(r#"job_schedules = { purge_idempotency_keys = "sometimes" }"#);
    assert_eq!(problem_keys(&bad), vec!["job_schedules"]);
}

#[test]
fn trusted_proxies_must_be_networks_and_name_their_header() {
    let s = load(
        r#"trusted_proxies = "10.0.0.0/8, 192.168.1.7, proxy.local"
    client_ip_header = "forwarded""#,
    );
    assert_eq!(s.trusted_proxies.len(), 3);
    assert_eq!(
        s.client_ip_header,
        crate::client::ForwardedHeader::Forwarded
    );
    assert_eq!(problem_keys(&s), vec!["trusted_proxies"]);
    let bad_header = LoadedConfig::from_figment(
        Figment::new().merge(Toml::string("client_ip_header = \"x-real-ip\"")),
    );
    assert!(bad_header.is_err(), "only the two headers are known");
}

#[test]
fn the_api_limits_are_off_in_dev_and_on_in_prod_unless_set() {
    assert_eq!(load("").api_rate_limits(), (0, 0));
    assert_eq!(load(r#"profile = "prod""#).api_rate_limits(), (6000, 1200));
    let set = load(
        r#"profile = "prod"
    api_rate_limit_per_ip = 0
    api_rate_limit_per_user = 50"#,
    );
    assert_eq!(set.api_rate_limits(), (0, 50));
}

#[test]
fn tracing_needs_an_http_collector_and_a_ratio_between_zero_and_one() {
    let off = load("");
    assert_eq!(off.otlp_endpoint, None);
    assert_eq!(problem_keys(&off), Vec::<&str>::new());
    let on = load("otlp_endpoint = \"http://collector:4318\"\notlp_sample_ratio = 0.25");
    assert_eq!(problem_keys(&on), Vec::<&str>::new());
    let bad = load("otlp_endpoint = \"collector:4318\"\notlp_sample_ratio = 1.5");
    assert_eq!(
        problem_keys(&bad),
        vec!["otlp_endpoint", "otlp_sample_ratio"]
    );
}
