//! Access tokens as a client sends them (`Authorization: Bearer …`). Any text is refused
//! cleanly unless it is a token this key signed. Claims signed with the right key (header and
//! payload chosen by the fuzzer) are accepted only when every rule holds: HS256, a known kid,
//! issuer, audience, the time window and the token's use.

#![no_main]

use chrono::{DateTime, Utc};
use depot_app::auth::tokens::{TokenKeys, TokenUse};
use depot_app::config::LoadedConfig;
use figment::Figment;
use figment::providers::{Format, Toml};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzzing tokens: a secret of thirty-two bytes or more";

fn keys() -> TokenKeys {
    let settings = LoadedConfig::from_figment(Figment::new().merge(Toml::string(&format!(
        "jwt_secret = \"{SECRET}\"\njwt_key_id = \"k1\"\n"
    ))))
    .expect("the fuzz settings load")
    .settings;
    TokenKeys::from_settings(&settings).expect("the keys build")
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("a time");
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(
            keys.verify(text, TokenUse::Access, now).is_err(),
            "text the key never signed was accepted"
        );
    }
    // The fuzzer's bytes as the claims of a token signed with the right key.
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".to_owned());
    let Ok(token) = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    ) else {
        return;
    };
    if let Ok(accepted) = keys.verify(&token, TokenUse::Access, now) {
        assert_eq!(accepted.token_use, TokenUse::Access);
        assert!(accepted.nbf <= now.timestamp() && now.timestamp() < accepted.exp);
        assert_eq!(
            claims.get("iss").and_then(|v| v.as_str()),
            Some(accepted.iss.as_str())
        );
        assert_eq!(
            claims.get("aud").and_then(|v| v.as_str()),
            Some(accepted.aud.as_str())
        );
    }
    // The same claims under another kid or algorithm are never accepted.
    for (kid, algorithm) in [("unknown", header.alg), ("k1", Algorithm::HS512)] {
        let mut other = Header::new(algorithm);
        other.kid = Some(kid.to_owned());
        if let Ok(token) = jsonwebtoken::encode(
            &other,
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        ) {
            assert!(keys.verify(&token, TokenUse::Access, now).is_err());
        }
    }
});
