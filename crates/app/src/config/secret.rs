//! Types that keep secrets out of logs and printouts.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const REDACTED: &str = "[redacted]";

/// A secret value (key, password). `Debug` and `Serialize` never show it.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// A service URL that may carry credentials (`postgres://user:pass@host/db`). `Debug` and
/// `Serialize` show it with the password replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for connecting. Never log this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password (and query string, which may hold keys) masked.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if !url.cannot_be_a_base() => {
                if url.password().is_some() {
                    let _ = url.set_password(Some(REDACTED));
                }
                if url.query().is_some() {
                    url.set_query(Some(REDACTED));
                }
                url.to_string()
            }
            // Not a URL with an authority: show only the scheme, which is all we can be sure is harmless.
            _ => match self.0.split_once(':') {
                Some((scheme, _)) => format!("{scheme}:{REDACTED}"),
                None => REDACTED.to_owned(),
            },
        }
    }

    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }
}

impl std::fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ServiceUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for ServiceUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(
            serde_json::to_string(&s).ok().as_deref(),
            Some("\"[redacted]\"")
        );
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn urls_hide_passwords_and_queries() {
        let u = ServiceUrl::new("postgres://depot:s3cret@db:5432/depot?sslpassword=x");
        let shown = format!("{u:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("sslpassword"), "{shown}");
        assert!(
            shown.contains("depot:%5Bredacted%5D@db:5432/depot") || shown.contains("[redacted]")
        );
        assert_eq!(
            ServiceUrl::new("sqlite://data/depot.db").redacted(),
            "sqlite://data/depot.db"
        );
        assert_eq!(
            ServiceUrl::new("weird:pa ss@@").redacted(),
            "weird:[redacted]"
        );
    }
}
