//! The store against a real database: SQLite by default, PostgreSQL when
//! `DEPOT_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, SubsecRound, TimeZone, Utc};
use depot_domain::ErrorCategory;
use depot_domain::ErrorCode;
use depot_domain::pagination::PageRequest;
use depot_store::entity::idempotency_key;
use depot_store::repo::{audit, idempotency};
use depot_store::{Db, DbOptions};
use depot_testkit::TestDatabase;

/// Runs `$body` (an async block using the transaction `$tx`) in one write transaction,
/// committed when it returns `Ok`, rolled back otherwise.
macro_rules! in_tx {
    ($db:expr, |$tx:ident| $body:expr) => {{
        let db: &Db = &$db;
        async move {
            let guard = db.begin().await?;
            let result = {
                let $tx: &sea_orm::DatabaseTransaction = &guard;
                $body.await
            };
            match result {
                Ok(value) => guard.commit().await.map(|()| value),
                Err(err) => Err::<_, depot_domain::AppError>(err),
            }
        }
    }};
}
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, PaginatorTrait, Statement};

async fn migrated() -> (TestDatabase, Db) {
    depot_testkit::announce_backends();
    let tdb = TestDatabase::fresh().await;
    let db = Db::connect_lazy(&DbOptions::new(tdb.url())).unwrap();
    db.migrate_up().await.unwrap();
    (tdb, db)
}

fn entry(action: &str) -> audit::NewAuditEntry {
    audit::NewAuditEntry {
        action: action.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn migrations_apply_roll_back_and_report_status() {
    let tdb = TestDatabase::fresh().await;
    let db = Db::connect_lazy(&DbOptions::new(tdb.url())).unwrap();

    let before = db.migration_state().await.unwrap();
    assert!(before.applied.is_empty());
    assert_eq!(before.pending[0], "m20261128_000001_platform");
    let mut sorted = before.pending.clone();
    sorted.sort();
    assert_eq!(
        sorted, before.pending,
        "migrations apply in name (= version) order"
    );

    let after = db.migrate_up().await.unwrap();
    assert!(after.is_current());
    assert_eq!(after.applied, before.pending);

    let down = db.migrate_down(1).await.unwrap();
    assert_eq!(down.pending.len(), 1);
    let again = db.migrate_up().await.unwrap();
    assert!(
        again.is_current(),
        "down then up works on {}",
        tdb.backend()
    );
}

#[tokio::test]
async fn the_audit_log_is_append_only_in_the_database() {
    let (_tdb, db) = migrated().await;
    let id = in_tx!(db, |tx| async move {
        audit::append(tx, Utc::now(), entry("user.login")).await
    })
    .await
    .unwrap();
    let backend = db.reader().get_database_backend();
    for sql in [
        "UPDATE audit_log SET action = 'tampered'",
        "DELETE FROM audit_log",
    ] {
        let result = db
            .reader()
            .execute_raw(Statement::from_string(backend, sql))
            .await;
        // The reader is read-only on SQLite; go through a write transaction to be sure the
        // trigger, not the connection mode, refuses it.
        let via_tx = in_tx!(db, |tx| async move {
            tx.execute_raw(Statement::from_string(backend, sql))
                .await
                .map_err(depot_store::db_error)
        })
        .await;
        assert!(result.is_err(), "{sql} must be refused");
        // Refused by the trigger, with its own words (not, say, a read-only connection).
        let refusal = format!("{:?}", via_tx.err());
        assert!(
            refusal.contains("audit_log is append-only"),
            "{sql}: {refusal}"
        );
    }
    let page = audit::list(
        db.reader(),
        &depot_domain::audit::AuditFilter::default(),
        &PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0].id, id);
    assert_eq!(page.data[0].action, "user.login");
}

#[tokio::test]
async fn concurrent_writers_all_succeed_without_database_is_locked() {
    let (tdb, db) = migrated().await;
    // A second pool on the same database stands in for a second process.
    let other = Db::connect_lazy(&DbOptions::new(tdb.url())).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let db = if i % 2 == 0 {
                db.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                for _ in 0..5 {
                    in_tx!(db, |tx| async move {
                        audit::append(tx, Utc::now(), entry("concurrency.write")).await?;
                        audit::append(tx, Utc::now(), entry("concurrency.write")).await
                    })
                    .await?;
                }
                Ok::<_, depot_domain::AppError>(())
            })
        })
        .collect();
    for result in futures::future::join_all(tasks).await {
        result.unwrap().unwrap();
    }
    let count = depot_store::entity::audit_log::Entity::find()
        .count(db.reader())
        .await
        .unwrap();
    assert_eq!(count, 64 * 5 * 2);
}

#[tokio::test]
async fn a_failed_unit_of_work_leaves_nothing_behind() {
    let (_tdb, db) = migrated().await;
    let result: Result<(), _> = in_tx!(db, |tx| async move {
        audit::append(tx, Utc::now(), entry("half.written")).await?;
        Err(depot_domain::AppError::new(
            depot_domain::ErrorCode::RolesBuiltIn,
            "abort",
        ))
    })
    .await;
    assert_eq!(result.unwrap_err().code(), "roles.built_in");
    let count = depot_store::entity::audit_log::Entity::find()
        .count(db.reader())
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn audit_list_pages_by_keyset_newest_first() {
    let (_tdb, db) = migrated().await;
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    // Two entries share a timestamp: the id breaks the tie, so nothing is skipped or repeated.
    let times = [0, 1, 2, 2, 3, 4, 5];
    for (i, minutes) in times.iter().enumerate() {
        let at = base + Duration::minutes(*minutes);
        let action = if i % 2 == 0 { "even" } else { "odd" };
        in_tx!(db, |tx| async move {
            audit::append(tx, at, entry(action)).await
        })
        .await
        .unwrap();
    }
    let filter = depot_domain::audit::AuditFilter::default();
    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: 3,
        ..PageRequest::default()
    };
    let mut pages = 0;
    loop {
        let result = audit::list(db.reader(), &filter, &page).await.unwrap();
        pages += 1;
        seen.extend(result.data.iter().map(|m| (m.occurred_at, m.id)));
        match result.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, ties by id, no duplicates");

    let odd = audit::list(
        db.reader(),
        &depot_domain::audit::AuditFilter {
            action: Some("odd".into()),
            ..Default::default()
        },
        &PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(odd.data.len(), 3);
}

#[tokio::test]
async fn enum_columns_are_checked_by_the_database() {
    let (_tdb, db) = migrated().await;
    let now = Utc::now();
    let insert = |status: &'static str| {
        in_tx!(db, |tx| async move {
            idempotency_key::Entity::insert(idempotency_key::ActiveModel {
                scope: Set("user-1".into()),
                key: Set(format!("key-{status}")),
                request_fingerprint: Set("f".into()),
                status: Set(status.into()),
                response_status: Set(None),
                response_body: Set(None),
                created_at: Set(now),
                expires_at: Set(now),
            })
            .exec_without_returning(tx)
            .await
            .map_err(depot_store::db_error)
        })
    };
    insert("completed").await.unwrap();
    let err = insert("bogus").await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Validation, "{err:?}");
    assert_eq!(err.code(), "db.check_violation");
    let dup = insert("completed").await.unwrap_err();
    assert_eq!(dup.code(), "db.unique_violation");
    assert_eq!(dup.category(), ErrorCategory::Conflict);
}

#[tokio::test]
async fn expired_idempotency_keys_are_purged_and_live_ones_kept() {
    let (_tdb, db) = migrated().await;
    let now = Utc::now();
    for (key, expires) in [
        ("old", now - Duration::hours(1)),
        ("live", now + Duration::hours(1)),
    ] {
        in_tx!(db, |tx| async move {
            idempotency_key::Entity::insert(idempotency_key::ActiveModel {
                scope: Set("s".into()),
                key: Set(key.into()),
                request_fingerprint: Set("f".into()),
                status: Set("completed".into()),
                response_status: Set(Some(201)),
                response_body: Set(Some(serde_json::json!({"ok": true}))),
                created_at: Set(now - Duration::hours(2)),
                expires_at: Set(expires),
            })
            .exec_without_returning(tx)
            .await
            .map_err(depot_store::db_error)
        })
        .await
        .unwrap();
    }
    let purged = in_tx!(db, |tx| async move {
        idempotency::delete_expired(tx, now).await
    })
    .await
    .unwrap();
    assert_eq!(purged, 1);
    let left: Vec<_> = idempotency_key::Entity::find()
        .all(db.reader())
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        vec!["live"]
    );
}

async fn claim_key(
    db: &Db,
    scope: &'static str,
    fingerprint: &'static str,
    now: chrono::DateTime<Utc>,
) -> Option<idempotency::Claim> {
    in_tx!(db, |tx| async move {
        idempotency::claim(
            tx,
            scope,
            "k-1",
            fingerprint,
            now,
            now + Duration::minutes(5),
            now + Duration::hours(24),
        )
        .await
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_is_claimed_once_completed_and_released() {
    let (_tdb, db) = migrated().await;
    // Sub-microsecond digits: the claim token must still match what the database keeps.
    let now =
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::nanoseconds(123_456_789);

    // Eight concurrent claims of one key: exactly one wins.
    let claims = futures::future::join_all((0..8).map(|_| claim_key(&db, "u-1", "f-1", now))).await;
    let mut won: Vec<_> = claims.into_iter().flatten().collect();
    assert_eq!(won.len(), 1, "one claim wins on {}", db.backend().as_str());
    let claim = won.remove(0);
    let row = idempotency::get(db.reader(), "u-1", "k-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, idempotency::IN_PROGRESS);
    assert_eq!(row.request_fingerprint, "f-1");
    assert_eq!(row.created_at, claim.claimed_at);
    assert_eq!(
        row.expires_at,
        (now + Duration::minutes(5)).trunc_subsecs(6)
    );
    // The same key in another scope is another key.
    assert!(claim_key(&db, "u-2", "f-1", now).await.is_some());

    // Released: the key is free again, and the old claim can neither release nor complete.
    let released = claim.clone();
    assert!(
        in_tx!(
            db,
            |tx| async move { idempotency::release(tx, &released).await }
        )
        .await
        .unwrap()
    );
    assert!(
        idempotency::get(db.reader(), "u-1", "k-1")
            .await
            .unwrap()
            .is_none()
    );
    let later = now + Duration::seconds(1);
    let claim = claim_key(&db, "u-1", "f-1", later)
        .await
        .expect("free after release");
    let stale = idempotency::Claim {
        claimed_at: claim.claimed_at - Duration::seconds(1),
        ..claim.clone()
    };
    let kept = in_tx!(db, |tx| async move {
        Ok((
            idempotency::release(tx, &stale).await?,
            idempotency::complete(tx, &stale, 500, None, later).await?,
        ))
    })
    .await
    .unwrap();
    assert_eq!(
        kept,
        (false, false),
        "only the holder of the claim acts on it"
    );

    // Completed: the response is stored until `expires_at`, and nobody can claim the key.
    let expires = later + Duration::hours(24);
    let done = claim.clone();
    assert!(
        in_tx!(db, |tx| async move {
            idempotency::complete(
                tx,
                &done,
                201,
                Some(serde_json::json!({"id": 7, "name": "x"})),
                expires,
            )
            .await
        })
        .await
        .unwrap()
    );
    let row = idempotency::get(db.reader(), "u-1", "k-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, idempotency::COMPLETED);
    assert_eq!(row.response_status, Some(201));
    assert_eq!(
        row.response_body,
        Some(serde_json::json!({"id": 7, "name": "x"}))
    );
    assert_eq!(row.expires_at, expires.trunc_subsecs(6));
    assert!(
        claim_key(&db, "u-1", "f-2", later + Duration::hours(23))
            .await
            .is_none()
    );
    let done = claim.clone();
    assert!(
        !in_tx!(
            db,
            |tx| async move { idempotency::release(tx, &done).await }
        )
        .await
        .unwrap(),
        "a completed key is not released"
    );

    // Expired but not purged yet: a claim replaces the old row.
    let after = expires + Duration::seconds(1);
    let renewed = claim_key(&db, "u-1", "f-2", after)
        .await
        .expect("an expired key is free");
    let row = idempotency::get(db.reader(), "u-1", "k-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.request_fingerprint.as_str()),
        (idempotency::IN_PROGRESS, "f-2")
    );
    assert_eq!((row.response_status, row.response_body), (None, None));
    assert_eq!(row.created_at, renewed.claimed_at);
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_not_internal() {
    let db = Db::connect_lazy(&DbOptions {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..DbOptions::new("postgres://depot@127.0.0.1:1/depot")
    })
    .unwrap();
    let err = db
        .ping(std::time::Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Unavailable, "{err:?}");
}

#[tokio::test]
async fn the_job_queue_dedupes_claims_once_and_reports_depth() {
    use depot_domain::message::Message;
    use depot_store::repo::jobs;
    let (_tdb, db) = migrated().await;
    let now = Utc::now();
    let message = |n: i32| Message::new("debug.ping", ("t", n), serde_json::json!({}), now);
    let (a, b) = (message(1), message(2));
    let enqueued = in_tx!(db, |tx| async move {
        let first = jobs::enqueue(tx, "q", &a, 3, now).await?;
        let again = jobs::enqueue(tx, "q", &a, 3, now).await?;
        let other = jobs::enqueue(tx, "q", &b, 3, now).await?;
        Ok((first, again, other))
    })
    .await
    .unwrap();
    assert_eq!(
        enqueued,
        (true, false, true),
        "the same message is enqueued once per queue"
    );

    let until = now + Duration::seconds(30);
    let (first, second) = tokio::join!(
        in_tx!(db, |tx| async move {
            jobs::claim(tx, "q", "w1", 1, now, until).await
        }),
        in_tx!(db, |tx| async move {
            jobs::claim(tx, "q", "w2", 1, now, until).await
        }),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.len() + second.len(), 2);
    assert_ne!(
        first[0].id, second[0].id,
        "two workers never claim the same job"
    );

    let depth = jobs::depth(db.reader()).await.unwrap();
    assert_eq!(depth.get(&("q".to_owned(), "running".to_owned())), Some(&2));
    // A claim whose worker died is due again after its lease.
    let later = now + Duration::seconds(31);
    let reclaimed = in_tx!(db, |tx| async move {
        jobs::claim(tx, "q", "w3", 10, later, later + Duration::seconds(30)).await
    })
    .await
    .unwrap();
    assert_eq!(reclaimed.len(), 2);
    assert!(
        reclaimed
            .iter()
            .all(|j| j.attempts == 2 && j.locked_by.as_deref() == Some("w3"))
    );
}

#[tokio::test]
async fn expired_token_denials_and_reset_tokens_are_purged_and_live_ones_kept() {
    use depot_store::repo::{credentials, sessions, users};
    let (_tdb, db) = migrated().await;
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
    in_tx!(db, |conn| async move {
        sessions::deny_access_token(conn, "old", now - Duration::minutes(1))
            .await
            .unwrap();
        sessions::deny_access_token(conn, "live", now + Duration::minutes(5))
            .await
            .unwrap();
        // Denying twice is harmless.
        sessions::deny_access_token(conn, "live", now + Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(sessions::purge_expired_denials(conn, now).await.unwrap(), 1);
        assert!(!sessions::is_access_token_denied(conn, "old").await.unwrap());
        assert!(
            sessions::is_access_token_denied(conn, "live")
                .await
                .unwrap()
        );

        let user = users::insert(conn, user_row(depot_domain::id::new_id(), "a@example.com"))
            .await
            .unwrap();
        credentials::insert_password_reset(
            conn,
            "h1".into(),
            user.id,
            now,
            now + Duration::minutes(30),
        )
        .await
        .unwrap();
        assert_eq!(
            credentials::purge_password_resets(conn, now).await.unwrap(),
            0
        );
        // Single use: the second consumption finds nothing, as does an expired token.
        assert_eq!(
            credentials::consume_password_reset(conn, "h1", now)
                .await
                .unwrap(),
            Some(user.id)
        );
        assert_eq!(
            credentials::consume_password_reset(conn, "h1", now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            credentials::purge_password_resets(conn, now + Duration::hours(1))
                .await
                .unwrap(),
            1
        );
        Ok(())
    })
    .await
    .unwrap();
}

fn user_row(id: uuid::Uuid, email: &str) -> depot_store::entity::user::Model {
    depot_store::entity::user::Model::new_active(id, email, "U", None, None, Utc::now())
}

#[tokio::test]
async fn a_violation_is_mapped_only_by_the_constraint_it_names() {
    use depot_store::repo::users::{self, EMAIL_UNIQUE};
    let (_tdb, db) = migrated().await;
    let taken = || depot_domain::AppError::new(ErrorCode::UsersEmailTaken, "taken");
    let first_id = depot_domain::id::new_id();
    let first = user_row(first_id, "a@example.com");
    in_tx!(db, |tx| users::insert(tx, first)).await.unwrap();

    // The same email: the email constraint, reported as such.
    let same_email = user_row(depot_domain::id::new_id(), "a@example.com");
    let err = in_tx!(db, |tx| users::insert(tx, same_email))
        .await
        .map_err(depot_store::on_constraint(&EMAIL_UNIQUE, taken))
        .unwrap_err();
    assert_eq!(err.code(), "users.email_taken", "{err:?}");

    // Another unique constraint of the same table (the primary key) is never taken for the
    // email: it stays a generic unique violation.
    let same_id = user_row(first_id, "b@example.com");
    let err = in_tx!(db, |tx| users::insert(tx, same_id))
        .await
        .map_err(depot_store::on_constraint(&EMAIL_UNIQUE, taken))
        .unwrap_err();
    assert_eq!(err.code(), "db.unique_violation", "{err:?}");
}

#[tokio::test]
async fn a_committed_idempotency_key_is_kept_until_its_retention_whatever_its_lease() {
    let (_tdb, db) = migrated().await;
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let claim = claim_key(&db, "u-1", "f-1", now).await.expect("claimed");

    // The request's unit marks it in its own transaction (twice for two units: still held).
    for _ in 0..2 {
        let marked = claim.clone();
        assert!(
            in_tx!(db, |tx| async move {
                idempotency::mark_committed(tx, &marked).await
            })
            .await
            .unwrap()
        );
    }
    let row = idempotency::get(db.reader(), "u-1", "k-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, idempotency::COMMITTED);
    assert_eq!(row.expires_at, claim.keep_until);

    // Not released, not claimable past the lease (5 min), not purged before `keep_until`.
    let held = claim.clone();
    assert!(
        !in_tx!(
            db,
            |tx| async move { idempotency::release(tx, &held).await }
        )
        .await
        .unwrap()
    );
    assert!(
        claim_key(&db, "u-1", "f-1", now + Duration::hours(1))
            .await
            .is_none()
    );
    let purge_at = now + Duration::hours(23);
    assert_eq!(
        in_tx!(db, |tx| async move {
            idempotency::delete_expired(tx, purge_at).await
        })
        .await
        .unwrap(),
        0
    );

    // Its response can still be stored; a stale claim can mark nothing.
    let stale = idempotency::Claim {
        claimed_at: claim.claimed_at - Duration::seconds(1),
        ..claim.clone()
    };
    assert!(
        !in_tx!(db, |tx| async move {
            idempotency::mark_committed(tx, &stale).await
        })
        .await
        .unwrap()
    );
    let done = claim.clone();
    let expires = now + Duration::hours(24);
    assert!(
        in_tx!(db, |tx| async move {
            idempotency::complete(tx, &done, 201, None, expires).await
        })
        .await
        .unwrap()
    );
}

/// A statement too large for one network write answers at once over TCP: the driver's
/// sockets set `TCP_NODELAY` (sqlx-core 0.9.0 dropped it; `vendor/sqlx-core` puts it back).
/// Without it, over TLS (whose records split a large message into several writes), the tail
/// of every such statement waits for the server's delayed ACK, ~40 ms on Linux, whatever the
/// server's own work. The median of eleven is compared, so a busy machine does not decide it.
#[tokio::test]
async fn a_large_statement_is_not_held_back_by_delayed_acks() {
    let tdb = TestDatabase::fresh().await;
    if !tdb.is_postgres() {
        return; // no TCP between the process and an SQLite file
    }
    let db = Db::connect_lazy(&DbOptions::new(with_tls(tdb.url()))).unwrap();
    let keys: Vec<String> = (0..1_000).map(|i| format!("{i:040}")).collect();
    let params: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT count(*) AS n FROM unnest(ARRAY[{}]::text[]) AS k WHERE k = ''",
        params.join(", ")
    );
    let mut took = Vec::new();
    for _ in 0..11 {
        let started = std::time::Instant::now();
        let row = db
            .reader()
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                &sql,
                keys.iter().map(|k| sea_orm::Value::from(k.as_str())),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0);
        took.push(started.elapsed());
    }
    took.sort();
    assert!(
        took[5] < std::time::Duration::from_millis(25),
        "1,000-parameter statements over TLS took {took:?}"
    );
}

/// `url` with `sslmode=require`.
fn with_tls(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("sslmode="))
        .collect();
    params.push("sslmode=require");
    format!("{base}?{}", params.join("&"))
}
