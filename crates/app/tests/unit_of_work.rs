//! The unit of work against a real database (SQLite, or PostgreSQL with
//! `DEPOT_TEST_DATABASE_URL`): everything it wrote — the change, its audit row, its outbox
//! event — commits or rolls back together, and after-commit actions run only after a commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use depot_app::ClientInfo;
use depot_app::audit::AuditEntry;
use depot_app::uow::{RelayWaker, UnitOfWork, Writer};
use depot_domain::clock::FixedClock;
use depot_domain::message::Message;
use depot_domain::{Actor, AppError};
use depot_store::entity::{audit_log, idempotency_key, outbox};
use depot_store::repo::idempotency;
use depot_store::{Db, DbOptions};
use depot_testkit::TestDatabase;
use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait};

async fn writer() -> (TestDatabase, Db, Writer, RelayWaker) {
    depot_testkit::announce_backends();
    let tdb = TestDatabase::fresh().await;
    let db = Db::connect_lazy(&DbOptions::new(tdb.url())).unwrap();
    db.migrate_up().await.unwrap();
    let waker = RelayWaker::default();
    let writer = Writer::new(db.clone(), Arc::new(FixedClock(Utc::now())), waker.clone());
    (tdb, db, writer, waker)
}

fn event() -> Message {
    Message::new(
        "debug.ping",
        ("debug", "ping"),
        serde_json::json!({}),
        Utc::now(),
    )
}

/// Begins a unit of work as the system actor.
async fn begin(writer: &Writer) -> Result<UnitOfWork, AppError> {
    writer
        .begin(Actor::System("test"), &ClientInfo::local())
        .await
}

/// Begins a unit and writes in it a change (an idempotency row stands in for any table), its
/// audit entry and its event, plus an after-commit action counting its runs.
async fn begin_with_change(writer: &Writer, ran: &Arc<AtomicU32>) -> Result<UnitOfWork, AppError> {
    let mut uow = begin(writer).await?;
    idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        scope: Set("uow-test".into()),
        key: Set("k".into()),
        request_fingerprint: Set("f".into()),
        status: Set("completed".into()),
        response_status: Set(Some(201)),
        response_body: Set(None),
        created_at: Set(uow.now()),
        expires_at: Set(uow.now()),
    })
    .exec_without_returning(uow.tx())
    .await
    .unwrap();
    uow.audit(AuditEntry::new("test.changed").target("thing", "k"))
        .await
        .unwrap();
    uow.emit(&event());
    let ran = ran.clone();
    uow.after_commit(move || async move {
        ran.fetch_add(1, Ordering::SeqCst);
    });
    Ok(uow)
}

async fn counts(db: &Db) -> (u64, u64, u64) {
    let conn = db.reader();
    (
        idempotency_key::Entity::find().count(conn).await.unwrap(),
        audit_log::Entity::find().count(conn).await.unwrap(),
        outbox::Entity::find().count(conn).await.unwrap(),
    )
}

#[tokio::test]
async fn the_audit_row_and_the_event_roll_back_with_the_change() {
    let (_tdb, db, writer, _) = writer().await;
    let ran = Arc::new(AtomicU32::new(0));

    // Dropped without commit, as an early `?` would.
    let uow = begin_with_change(&writer, &ran).await.unwrap();
    drop(uow);
    assert_eq!(
        counts(&db).await,
        (0, 0, 0),
        "nothing of a dropped unit stays"
    );

    // A later step fails after everything was written.
    let failing = async {
        let uow = begin_with_change(&writer, &ran).await?;
        Err::<(), _>(AppError::new(
            depot_domain::ErrorCode::RolesBuiltIn,
            "a later step fails",
        ))?;
        uow.commit().await
    };
    assert_eq!(failing.await.unwrap_err().code(), "roles.built_in");
    assert_eq!(
        counts(&db).await,
        (0, 0, 0),
        "nothing of a failed unit stays"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    // The same unit committed keeps all three, with the actor on the audit row.
    let uow = begin_with_change(&writer, &ran).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(counts(&db).await, (1, 1, 1));
    let row = audit_log::Entity::find()
        .one(db.reader())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.actor_id, row.actor_name.as_deref()),
        (None, Some("test"))
    );
}

#[tokio::test]
async fn after_commit_actions_run_once_after_a_commit_and_never_after_a_failure() {
    let (_tdb, db, writer, waker) = writer().await;
    let ran = Arc::new(AtomicU32::new(0));

    let first = begin_with_change(&writer, &ran).await.unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "nothing runs before the commit"
    );
    first.commit().await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "ran once, after the commit");

    let second = async {
        let mut uow = begin(&writer).await?;
        let ran = ran.clone();
        uow.after_commit(move || async move {
            ran.fetch_add(100, Ordering::SeqCst);
        });
        idempotency::delete_expired(uow.tx(), Utc::now() + chrono::Duration::hours(1)).await?;
        Err::<(), _>(AppError::new(
            depot_domain::ErrorCode::RolesBuiltIn,
            "fails before commit",
        ))?;
        uow.commit().await
    };
    assert!(second.await.is_err());
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the failed unit's action never ran"
    );
    assert_eq!(
        counts(&db).await,
        (1, 1, 1),
        "the failed unit's delete was undone"
    );

    // The committed unit emitted an event, so the relay was woken.
    tokio::time::timeout(std::time::Duration::from_secs(1), waker.woken())
        .await
        .expect("the relay was woken after the commit");
}

#[tokio::test]
async fn a_units_events_reach_the_outbox_at_commit_in_the_order_emitted_each_in_its_trace() {
    let (_tdb, db, writer, _) = writer().await;
    const CLIENT_TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const OWN_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let client = ClientInfo {
        traceparent: Some(CLIENT_TRACE.into()),
        ..ClientInfo::local()
    };
    let mut uow = writer.begin(Actor::System("test"), &client).await.unwrap();
    let emitted: Vec<Message> = (0..5)
        .map(|i| {
            let e = event();
            if i == 2 {
                e.traced(Some(OWN_TRACE.into()))
            } else {
                e
            }
        })
        .collect();
    for e in &emitted {
        uow.emit(e);
    }
    uow.commit().await.unwrap();

    let mut stored = outbox::Entity::find().all(db.reader()).await.unwrap();
    stored.sort_by_key(|r| r.id);
    let ids: Vec<_> = stored.iter().map(|r| r.id).collect();
    let expected: Vec<_> = emitted.iter().map(|e| e.id).collect();
    assert_eq!(ids, expected, "every event, once, in the order emitted");
    let traces: Vec<_> = stored.iter().map(|r| r.traceparent.as_deref()).collect();
    assert_eq!(
        traces,
        [
            Some(CLIENT_TRACE),
            Some(CLIENT_TRACE),
            Some(OWN_TRACE),
            Some(CLIENT_TRACE),
            Some(CLIENT_TRACE)
        ],
        "an event without a trace of its own continues the request's"
    );
}
