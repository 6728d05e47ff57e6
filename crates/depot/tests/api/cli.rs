//! The command line: prod validation, config check, migrations, OpenAPI.

use std::time::Duration;

use depot_testkit::TestDatabase;

use crate::process::{Server, run, text};

const STRONG_JWT: &str = "prod-jwt-secret-0123456789-abcdefghijklmnop";
const STRONG_APP: &str = "prod-app-secret-9876543210-zyxwvutsrqponmlk";

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    // The names listed under "Commands:" (not words found anywhere, e.g. `--config`).
    let listed: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        listed,
        [
            "serve", "api", "worker", "migrate", "config", "openapi", "verify", "import", "export",
            "backup", "restore", "admin", "help"
        ],
        "{help}"
    );
    let admin = run(dir.path(), &[], &["admin", "--help"]);
    let admin_help = text(&admin.stdout);
    for command in ["dead-letters", "create-user", "reset-mfa", "unlock"] {
        assert!(
            admin_help
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "admin {command} missing from:\n{admin_help}"
        );
    }
}

#[test]
fn prod_with_nothing_set_exits_naming_every_missing_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[("DEPOT_PROFILE", "prod")], &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for key in ["database_url", "jwt_secret", "app_secret"] {
        assert!(err.contains(key), "{key} not named in:\n{err}");
    }
    assert!(
        err.contains("3 problems"),
        "one message with all of them:\n{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "prod never writes dev secrets"
    );
}

#[test]
fn prod_names_a_short_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            ("DEPOT_PROFILE", "prod"),
            ("DATABASE_URL", "postgres://depot@127.0.0.1:1/depot"),
            ("DEPOT_JWT_SECRET", "0123456789"),
            ("DEPOT_APP_SECRET", STRONG_APP),
        ],
        &["serve"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("jwt_secret: weak: 10 bytes"), "{err}");
    assert!(
        !err.contains("0123456789"),
        "the secret itself is never printed:\n{err}"
    );
}

#[test]
fn unknown_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[("DEPOT_JWT_SECRT", "typo")], &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("jwt_secrt"));
}

#[test]
fn config_check_shows_values_with_sources_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("depot.toml");
    std::fs::write(&file, "request_timeout_secs = 12\n").unwrap();
    let out = run(
        dir.path(),
        &[
            ("DEPOT_JWT_SECRET", STRONG_JWT),
            (
                "DATABASE_URL",
                "postgres://depot:hunter2@db.example:5432/depot",
            ),
        ],
        &["--config", file.to_str().unwrap(), "config", "check"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("{key} missing:\n{stdout}"))
            .to_owned()
    };
    assert!(line("jwt_secret").contains("[redacted]"));
    assert!(
        line("jwt_secret").contains("DEPOT_"),
        "source is the DEPOT_ environment"
    );
    assert!(line("database_url").contains("db.example"));
    assert!(
        line("database_url").contains("`DATABASE_URL`")
            || line("database_url").contains("environment")
    );
    assert!(line("request_timeout_secs").contains("12"));
    assert!(
        line("request_timeout_secs").contains("TOML"),
        "{}",
        line("request_timeout_secs")
    );
    assert!(line("http_addr").ends_with("default"));
    assert!(
        !stdout.contains(STRONG_JWT) && !stdout.contains("hunter2"),
        "{stdout}"
    );
    assert!(stdout.contains("configuration is valid"));

    let bad = run(
        dir.path(),
        &[("DEPOT_PROFILE", "prod")],
        &["config", "check"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stdout).contains("jwt_secret: missing"));
}

#[test]
fn openapi_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &["openapi"]);
    assert!(out.status.success());
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/readyz"].is_object());
}

#[tokio::test]
async fn migrate_lists_pending_applies_them_and_down_is_dev_only() {
    let db = TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let env = [("DATABASE_URL", db.url())];
    let status = run(&dir, &env, &["migrate", "status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let listing = text(&status.stdout);
    let pending: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("pending  "))
        .collect();
    assert!(pending.contains(&"m20261128_000001_platform"), "{listing}");
    let total = pending.len();
    assert!(
        listing.contains(&format!("0 applied, {total} pending")),
        "{listing}"
    );

    let up = run(&dir, &env, &["migrate", "up"]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    assert!(text(&up.stdout).contains(&format!("{total} applied, 0 pending")));

    let prod_env = [
        ("DATABASE_URL", db.url()),
        ("DEPOT_PROFILE", "prod"),
        ("DEPOT_JWT_SECRET", STRONG_JWT),
        ("DEPOT_APP_SECRET", STRONG_APP),
    ];
    let refused = run(&dir, &prod_env, &["migrate", "down"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("refused in the prod profile"));

    let down = run(&dir, &env, &["migrate", "down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(text(&down.stdout).contains(&format!("{} applied, 1 pending", total - 1)));
}

#[tokio::test]
async fn prod_with_pending_migrations_is_not_ready_until_migrated() {
    let db = TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let env = [
        ("DATABASE_URL", db.url()),
        ("DEPOT_PROFILE", "prod"),
        ("DEPOT_JWT_SECRET", STRONG_JWT),
        ("DEPOT_APP_SECRET", STRONG_APP),
    ];
    let mut server = Server::start(&dir, &env, &["api"]);
    let client = crate::helpers::client();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["components"]["migrations"]["status"], "down", "{body}");

    let up = run(&dir, &env, &["migrate", "up"]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    server.terminate();
    assert_eq!(server.wait(Duration::from_secs(15)), Some(0));
}

#[tokio::test]
async fn import_prints_every_error_and_export_writes_what_import_takes() {
    let db = TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let env = [("DATABASE_URL", db.url())];
    let up = run(&dir, &env, &["migrate", "up"]);
    assert!(up.status.success(), "{}", text(&up.stderr));

    let bad = dir.join("bad-locations.csv");
    std::fs::write(
        &bad,
        "code,name,active\nA-1,Main,true\nbad code,Two,yes\nA-1,Dup,perhaps\n",
    )
    .unwrap();
    let out = run(
        &dir,
        &env,
        &["import", "locations", bad.to_str().unwrap(), "--apply"],
    );
    assert!(!out.status.success());
    let printed = text(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines[0],
        "row 3, column code: must be 1–32 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
    );
    assert_eq!(lines[1], "row 4, column code: is also on row 2");
    assert_eq!(
        lines[2],
        "row 4, column active: must be true or false (yes/no, 1/0)"
    );
    assert!(
        lines[3].starts_with("3 rows, 3 errors: nothing written"),
        "{printed}"
    );

    let good = dir.join("locations.csv");
    std::fs::write(
        &good,
        "code;name;address\nA-1;Main;\"1 Road\nTown\"\nB-2;Back;\n",
    )
    .unwrap();
    let out = run(&dir, &env, &["import", "locations", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("2 rows, 0 errors: valid, nothing written"));
    let out = run(
        &dir,
        &env,
        &["import", "locations", good.to_str().unwrap(), "--apply"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("2 rows, 0 errors: applied (2 new,"));

    let exported = dir.join("export.csv");
    let out = run(
        &dir,
        &env,
        &["export", "locations", exported.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        "code,name,address,active\nA-1,Main,\"1 Road\nTown\",true\nB-2,Back,,true\n"
    );
    let out = run(
        &dir,
        &env,
        &["import", "locations", exported.to_str().unwrap(), "--apply"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(0 new, 0 changed, 2 unchanged, 0 movements)"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&dir, &env, &["export", "levels"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "sku,location_code,on_hand,reserved,available,reorder_point\n"
    );
}

#[tokio::test]
async fn a_backup_taken_under_writes_restores_every_write_acknowledged_before_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let db = TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let env = [("DATABASE_URL", db.url().to_owned())];
    let up = run(&dir, &pairs(&env), &["migrate", "up"]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let mut server = Server::start(&dir, &pairs(&env), &["serve"]);

    // A writer imports one location after another (each acknowledged by its exit) until told
    // to stop; the backup starts once three are in.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, done, dir, env) = (stop.clone(), done.clone(), dir.clone(), env.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let file = dir.join(format!("w{n}.csv"));
                std::fs::write(&file, format!("code,name\nW{n},Written {n}\n")).unwrap();
                let out = run(
                    &dir,
                    &pairs(&env),
                    &["import", "locations", file.to_str().unwrap(), "--apply"],
                );
                assert!(out.status.success(), "{}", text(&out.stderr));
                n += 1;
                done.store(n, Ordering::SeqCst);
            }
            n
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done.load(Ordering::SeqCst) < 3 {
        assert!(!writer.is_finished(), "the writer stopped early");
        assert!(std::time::Instant::now() < deadline, "the writer is stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acknowledged = done.load(Ordering::SeqCst);
    let backup = dir.join("backup");
    let out = run(
        &dir,
        &pairs(&env),
        &["backup", "--to", backup.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    let manifest_path = backup.join("manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let status = text(&run(&dir, &pairs(&env), &["migrate", "status"]).stdout);
    let applied = manifest["migrations"].as_array().unwrap().len();
    assert!(
        status.contains(&format!("{applied} applied, 0 pending")),
        "{status}\n{manifest}"
    );

    // Restored into an empty database: at the current schema, with every acknowledged write.
    let target = TestDatabase::fresh().await;
    let tenv = [("DATABASE_URL", target.url().to_owned())];
    let tdir = target.dir().to_path_buf();
    let restore = |from: &std::path::Path| {
        run(
            &tdir,
            &pairs(&tenv),
            &["restore", "--from", from.to_str().unwrap()],
        )
    };
    let out = restore(&backup);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&run(&tdir, &pairs(&tenv), &["migrate", "status"]).stdout);
    assert!(status.contains(" 0 pending"), "{status}");
    let export = text(&run(&tdir, &pairs(&tenv), &["export", "locations"]).stdout);
    for n in 0..acknowledged {
        assert!(export.contains(&format!("\nW{n},")), "W{n} lost:\n{export}");
    }
    assert!(export.lines().count() - 1 <= written, "{export}");
    let verify = run(&tdir, &pairs(&tenv), &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));

    // A database that is no longer empty is not restored into.
    let again = restore(&backup);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("backup.refused"));

    // A backup from a newer schema, or a damaged one, is refused.
    let other = TestDatabase::fresh().await;
    let oenv = [("DATABASE_URL", other.url().to_owned())];
    let restore_other = || {
        run(
            other.dir(),
            &pairs(&oenv),
            &["restore", "--from", backup.to_str().unwrap()],
        )
    };
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let mut newer = manifest.clone();
    newer["migrations"]
        .as_array_mut()
        .unwrap()
        .push("m29990101_000001_from_the_future".into());
    std::fs::write(&manifest_path, newer.to_string()).unwrap();
    let refused = restore_other();
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("newer than this build"),
        "{}",
        text(&refused.stderr)
    );
    std::fs::write(&manifest_path, original).unwrap();
    let snapshot = backup.join(manifest["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes.push(0);
    std::fs::write(&snapshot, bytes).unwrap();
    let damaged = restore_other();
    assert!(!damaged.status.success());
    assert!(
        text(&damaged.stderr).contains("damaged"),
        "{}",
        text(&damaged.stderr)
    );

    server.terminate();
    assert_eq!(server.wait(Duration::from_secs(15)), Some(0));
}

#[tokio::test]
async fn a_backup_of_a_database_without_a_schema_is_refused() {
    // A mistyped data_dir or database_url reaches an empty database: no backup "succeeds".
    let db = TestDatabase::fresh().await;
    let env = [("DATABASE_URL", db.url().to_owned())];
    let to = db.dir().join("backup");
    let out = run(
        db.dir(),
        &pairs(&env),
        &["backup", "--to", to.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no Depot schema"), "{err}");
    assert!(!to.join("manifest.json").exists());
}

/// Borrowed environment pairs for [`run`].
fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
