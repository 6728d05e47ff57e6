//! Configuration values as an operator writes them (a TOML file; the environment goes through
//! the same extraction). Anything loads or is refused with a message; what loads validates
//! without panicking; and the description `depot config check` prints never shows a secret.

#![no_main]

use depot_app::config::LoadedConfig;
use figment::Figment;
use figment::providers::{Format, Toml};
use libfuzzer_sys::fuzz_target;

/// Secrets set on top of whatever the fuzzer wrote: none may appear in the description.
const SECRETS: &str = r#"
jwt_secret = "fuzz-secret-jwt-0123456789abcdef0123456789"
app_secret = "fuzz-secret-app-0123456789abcdef0123456789"
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let figment = Figment::new()
        .merge(Toml::string(text))
        .merge(Toml::string(SECRETS));
    let Ok(loaded) = LoadedConfig::from_figment(figment) else {
        return;
    };
    let _ = loaded.settings.validate();
    let described = serde_json::to_string(&loaded.describe()).expect("the description is JSON");
    assert!(
        !described.contains("fuzz-secret"),
        "a secret is shown in clear: {described}"
    );
});
