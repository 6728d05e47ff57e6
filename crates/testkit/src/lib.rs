//! Test support: a fresh, isolated database per test.
//!
//! By default each [`TestDatabase`] is a new SQLite file in a temporary directory. When
//! `DEPOT_TEST_DATABASE_URL` points at a PostgreSQL server (any database the user can connect
//! to, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), each one is instead a new database
//! `depot_test_<uuid>` on that server, dropped again when the value is dropped.
//! `DEPOT_TEST_REDIS_URL` and `DEPOT_TEST_AMQP_URL` name the real Redis and RabbitMQ to test
//! against; without them those tests use the embedded adapters and say so.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: failing loudly is the point

use std::io::Write;
use std::path::Path;

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use tempfile::TempDir;

/// A database that exists only for one test.
pub struct TestDatabase {
    url: String,
    dir: TempDir,
    postgres: Option<PostgresGuard>,
    _running: RunningTest,
}

struct PostgresGuard {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database on the configured backend.
    pub async fn fresh() -> Self {
        announce_backends();
        let running = RunningTest::enter();
        let dir = tempfile::tempdir().expect("temporary directory");
        match postgres_admin_url() {
            Some(admin_url) => {
                let name = format!("depot_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to DEPOT_TEST_DATABASE_URL");
                // `name` is generated here from a UUID: no injection possible.
                sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let url = database_url_with_name(&admin_url, &name);
                Self {
                    url,
                    dir,
                    postgres: Some(PostgresGuard { admin_url, name }),
                    _running: running,
                }
            }
            None => {
                let url = format!("sqlite://{}", dir.path().join("depot.db").display());
                Self {
                    url,
                    dir,
                    postgres: None,
                    _running: running,
                }
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A scratch directory that lives as long as the database (data dir, files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// `"postgres"` or `"sqlite"`, for test output.
    pub fn backend(&self) -> &'static str {
        if self.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut conn = PgConnection::connect(&pg.admin_url)
                    .await
                    .map_err(std::io::Error::other)?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    pg.name
                )))
                .execute(&mut conn)
                .await
                .map_err(std::io::Error::other)?;
                let _ = conn.close().await;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
    }
}

/// The PostgreSQL server to create test databases on, if configured.
pub fn postgres_admin_url() -> Option<String> {
    non_empty_env("DEPOT_TEST_DATABASE_URL")
}

/// The real Redis to test against, if configured.
pub fn redis_url() -> Option<String> {
    non_empty_env("DEPOT_TEST_REDIS_URL")
}

/// The real RabbitMQ to test against, if configured.
pub fn amqp_url() -> Option<String> {
    non_empty_env("DEPOT_TEST_AMQP_URL")
}

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// Replaces the database name (the URL path) of a PostgreSQL URL.
fn database_url_with_name(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// The backends this run must use, from `DEPOT_TEST_REQUIRE` (comma-separated: `postgres`,
/// `redis`, `rabbitmq`, `smtp`, `s3`). CI sets it, so a pass that would quietly fall back to SQLite, the
/// in-process cache, the database queue or skip the SMTP test fails instead.
pub fn required_backends() -> Vec<String> {
    non_empty_env("DEPOT_TEST_REQUIRE")
        .map(|v| {
            v.split(',')
                .map(|b| b.trim().to_ascii_lowercase())
                .filter(|b| !b.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether this run must use `backend` (see [`required_backends`]).
pub fn is_required(backend: &str) -> bool {
    required_backends().iter().any(|b| b == backend)
}

/// The real Redis, or `None` after announcing the skip of `what` — unless the run requires
/// Redis, in which case the test fails.
pub fn redis_or_skip(what: &str) -> Option<String> {
    let url = redis_url();
    if url.is_none() {
        skip(what, "redis", "DEPOT_TEST_REDIS_URL");
    }
    url
}

/// Announces that `what` is skipped for want of `backend` (one unbuffered stderr line, so it
/// shows on a passing run); panics instead when the run requires `backend`.
pub fn skip(what: &str, backend: &str, setting: &str) {
    assert!(
        !is_required(backend),
        "{what}: this run requires {backend} (DEPOT_TEST_REQUIRE) but {setting} is not usable"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {what}: needs {backend} ({setting})"
    );
}

/// Prints once per test binary which backends this run uses, so the output shows it, and fails
/// when a backend the run requires (`DEPOT_TEST_REQUIRE`) is not configured.
pub fn announce_backends() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    for (backend, configured) in [
        ("postgres", postgres_admin_url().is_some()),
        ("redis", redis_url().is_some()),
        ("rabbitmq", amqp_url().is_some()),
    ] {
        assert!(
            configured || !is_required(backend),
            "this run requires {backend} (DEPOT_TEST_REQUIRE) but it is not configured; \
             set DEPOT_TEST_DATABASE_URL / DEPOT_TEST_REDIS_URL / DEPOT_TEST_AMQP_URL"
        );
    }
    ONCE.call_once(|| {
        let db = if postgres_admin_url().is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        let redis = if redis_url().is_some() {
            "redis"
        } else {
            "memory (DEPOT_TEST_REDIS_URL unset)"
        };
        let amqp = if amqp_url().is_some() {
            "rabbitmq"
        } else {
            "database (DEPOT_TEST_AMQP_URL unset)"
        };
        // Written to the stderr handle directly so the test harness does not capture it.
        let _ = writeln!(
            std::io::stderr(),
            "depot tests: database={db} cache={redis} broker={amqp}"
        );
    });
}

/// The tests of this process that hold a [`TestDatabase`], by name (libtest names each test's
/// thread after the test).
fn running_tests() -> &'static std::sync::Mutex<std::collections::BTreeMap<u64, String>> {
    static RUNNING: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeMap<u64, String>>> =
        std::sync::OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// Marks a test as running while it holds its database; the watchdog names it on timeout.
struct RunningTest(u64);

impl RunningTest {
    fn enter() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        start_watchdog();
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = std::thread::current()
            .name()
            .unwrap_or("<unnamed test>")
            .to_owned();
        if let Ok(mut running) = running_tests().lock() {
            running.insert(id, name);
        }
        Self(id)
    }
}

impl Drop for RunningTest {
    fn drop(&mut self) {
        if let Ok(mut running) = running_tests().lock() {
            running.remove(&self.0);
        }
    }
}

/// With `DEPOT_TEST_TIMEOUT_SECS` set (CI sets it), a test binary still running after that many
/// seconds prints the tests that have not finished and exits non-zero: a hung test fails the run
/// with its name instead of running into CI's overall limit.
fn start_watchdog() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(limit) = std::env::var("DEPOT_TEST_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
        else {
            return;
        };
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(limit));
            let binary = std::env::args().next().unwrap_or_default();
            let names: Vec<String> = running_tests()
                .lock()
                .map(|r| r.values().cloned().collect())
                .unwrap_or_default();
            let _ = writeln!(
                std::io::stderr(),
                "TIMEOUT: test binary {binary} still running after {limit}s \
                 (DEPOT_TEST_TIMEOUT_SECS); unfinished: {names:?}"
            );
            std::process::exit(124);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::database_url_with_name;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            database_url_with_name("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url_with_name("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            database_url_with_name("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
