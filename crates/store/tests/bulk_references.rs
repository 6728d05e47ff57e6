//! A bulk write and the rows it names (`repo::stock::bulk::hold_references`): every product and
//! location it names is held until the commit, none can be missing, and on PostgreSQL — where
//! the role may — the per-row foreign-key checks are off for that write and on again after it,
//! the ledger staying append-only meanwhile. SQLite by default, PostgreSQL when
//! `DEPOT_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use depot_domain::{AppResult, ErrorCode};
use depot_store::entity::{batch, location, product, stock_movement};
use depot_store::repo::stock::bulk::{self, RowChecks};
use depot_store::{Db, DbOptions};
use depot_testkit::TestDatabase;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement};
use uuid::Uuid;

async fn migrated() -> (TestDatabase, Db) {
    depot_testkit::announce_backends();
    let tdb = TestDatabase::fresh().await;
    let db = Db::connect_lazy(&DbOptions::new(tdb.url())).unwrap();
    db.migrate_up().await.unwrap();
    (tdb, db)
}

/// A product and a location, committed.
async fn catalog(db: &Db) -> (Uuid, Uuid) {
    let now = Utc::now();
    let (p, l) = (Uuid::now_v7(), Uuid::now_v7());
    let tx = db.begin().await.unwrap();
    product::Entity::insert(product::ActiveModel::from(product::Model {
        id: p,
        sku: "SKU-1".into(),
        sku_key: "sku-1".into(),
        name: "Saline".into(),
        unit: "pcs".into(),
        category_id: None,
        barcode: None,
        reorder_point: None,
        reorder_quantity: None,
        tracks_expiry: false,
        depletion_policy: None,
        status: "active".into(),
        search: "sku-1 saline".into(),
        created_at: now,
        updated_at: now,
    }))
    .exec(&*tx)
    .await
    .unwrap();
    location::Entity::insert(location::ActiveModel::from(location::Model {
        id: l,
        code: "MAIN".into(),
        code_key: "main".into(),
        name: "Main".into(),
        address: None,
        active: true,
        created_at: now,
        updated_at: now,
    }))
    .exec(&*tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (p, l)
}

fn code<T>(result: AppResult<T>) -> Option<ErrorCode> {
    result.err().map(|e| e.error_code())
}

#[tokio::test]
async fn a_bulk_write_naming_a_missing_product_is_refused_and_a_sound_one_lands() {
    let (tdb, db) = migrated().await;
    let (p, l) = catalog(&db).await;
    let missing = Uuid::now_v7();
    let now = Utc::now();

    let tx = db.begin().await.unwrap();
    let refused = match bulk::hold_references(&*tx, &[p, missing], &[l]).await {
        // PostgreSQL finds it when holding them.
        Err(e) => Some(e.error_code()),
        // SQLite keeps checking each row.
        Ok(checks) => {
            assert_eq!(checks, RowChecks::EachRow, "{}", tdb.backend());
            code(bulk::ensure_levels(&*tx, &[(missing, l)], now).await)
        }
    };
    assert_eq!(refused, Some(ErrorCode::DbReferenceViolation));
    drop(tx);

    let tx = db.begin().await.unwrap();
    let checks = bulk::hold_references(&*tx, &[p], &[l]).await.unwrap();
    bulk::ensure_levels(&*tx, &[(p, l)], now).await.unwrap();
    bulk::check_each_row(&*tx, checks).await.unwrap();
    tx.commit().await.unwrap();
    let levels = bulk::levels_of_products(db.reader(), &[p], false)
        .await
        .unwrap();
    assert_eq!(levels.len(), 1);
    assert_eq!((levels[0].product_id, levels[0].location_id), (p, l));
}

#[tokio::test]
async fn held_rows_cannot_be_deleted_before_the_write_commits() {
    let (tdb, db) = migrated().await;
    if !tdb.is_postgres() {
        return; // SQLite's single writer: no other transaction runs meanwhile
    }
    let (p, l) = catalog(&db).await;
    let delete = |db: Db| async move {
        let tx = db.begin().await?;
        for sql in [
            "SET LOCAL lock_timeout = '300ms'".to_owned(),
            format!("DELETE FROM locations WHERE id = '{l}'"),
        ] {
            tx.execute_unprepared(&sql)
                .await
                .map_err(depot_store::db_error)?;
        }
        drop(tx); // rolled back: the test only asks whether it could
        AppResult::Ok(())
    };

    let holding = db.begin().await.unwrap();
    bulk::hold_references(&*holding, &[p], &[l]).await.unwrap();
    let while_held = delete(db.clone()).await;
    drop(holding);
    let after = delete(db.clone()).await;

    let refusal = format!("{:?}", while_held.err());
    assert!(
        refusal.contains("lock timeout"),
        "a held location waits for the write's commit: {refusal}"
    );
    assert!(after.is_ok(), "nothing holds it any more: {after:?}");
}

#[tokio::test]
async fn with_the_rows_held_the_per_row_checks_are_off_for_that_write_only() {
    let (tdb, db) = migrated().await;
    if !tdb.is_postgres() {
        return;
    }
    if !superuser(db.reader()).await {
        eprintln!("skipped: the test role may not set session_replication_role");
        return;
    }
    let (p, l) = catalog(&db).await;
    let now = Utc::now();
    let tx = db.begin().await.unwrap();
    let checks = bulk::hold_references(&*tx, &[p], &[l]).await.unwrap();
    assert_eq!(checks, RowChecks::Held);

    // The write itself: a batch and its receipt.
    let b = Uuid::now_v7();
    bulk::insert_batches(&*tx, vec![batch_row(b, p, l)])
        .await
        .unwrap();
    bulk::append_movements(&*tx, vec![receipt(b, p, l)])
        .await
        .unwrap();
    // The ledger stays append-only while the checks are off.
    let tampered = tx
        .execute_unprepared("SAVEPOINT t; UPDATE stock_movements SET quantity = 1")
        .await;
    assert!(
        format!("{:?}", tampered.err()).contains("stock_movements is append-only"),
        "the append-only trigger fires in replica mode"
    );
    tx.execute_unprepared("ROLLBACK TO SAVEPOINT t")
        .await
        .unwrap();
    // The switch is real: while held, the database does not check a row itself (which is
    // why everything it names must be held first)…
    let unchecked = bulk::ensure_levels(&*tx, &[(Uuid::now_v7(), l)], now).await;
    assert!(unchecked.is_ok(), "{unchecked:?}");
    // …and it checks each row again once the write is done.
    bulk::check_each_row(&*tx, checks).await.unwrap();
    let checked = bulk::ensure_levels(&*tx, &[(Uuid::now_v7(), l)], now).await;
    assert_eq!(code(checked), Some(ErrorCode::DbReferenceViolation));
}

#[tokio::test]
async fn a_role_that_may_not_switch_the_checks_off_keeps_them_and_its_transaction() {
    let (tdb, db) = migrated().await;
    if !tdb.is_postgres() {
        return;
    }
    let (p, l) = catalog(&db).await;
    let role = format!("depot_limited_{}", Uuid::now_v7().simple());
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        db.reader().execute_unprepared(&sql).await.unwrap();
    }
    let limited = Db::connect_lazy(&DbOptions::new(as_user(tdb.url(), &role))).unwrap();
    let outcome = async {
        let tx = limited.begin().await?;
        let checks = bulk::hold_references(&*tx, &[p], &[l]).await?;
        // The transaction goes on after the refused switch, checking each row.
        let now = Utc::now();
        bulk::ensure_levels(&*tx, &[(p, l)], now).await?;
        let unknown = bulk::ensure_levels(&*tx, &[(Uuid::now_v7(), l)], now).await;
        AppResult::Ok((checks, code(unknown)))
    }
    .await;
    drop(limited);
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        db.reader().execute_unprepared(&sql).await.unwrap();
    }
    let (checks, unknown) = outcome.unwrap();
    assert_eq!(checks, RowChecks::EachRow);
    assert_eq!(unknown, Some(ErrorCode::DbReferenceViolation));
}

async fn superuser(conn: &impl ConnectionTrait) -> bool {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('is_superuser') AS su",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<String>("", "su").unwrap() == "on"
}

/// `url` connecting as `user` (the test server trusts local connections).
fn as_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

fn batch_row(id: Uuid, product_id: Uuid, location_id: Uuid) -> batch::Model {
    let now = Utc::now();
    batch::Model {
        id,
        product_id,
        location_id,
        lot: None,
        expiry: None,
        received_at: now,
        unit_cost: None,
        currency: None,
        quantity: 5_000,
        reserved: 0,
        status: "open".into(),
        created_at: now,
        updated_at: now,
        closed_at: None,
    }
}

fn receipt(batch_id: Uuid, product_id: Uuid, location_id: Uuid) -> stock_movement::Model {
    stock_movement::Model {
        id: Uuid::now_v7(),
        product_id,
        location_id,
        batch_id,
        kind: "receipt".into(),
        quantity: 5_000,
        balance_after: 5_000,
        reason: Some("initial".into()),
        note: None,
        actor_id: None,
        actor_name: Some("test".into()),
        reference_type: None,
        reference_id: None,
        request_id: None,
        created_at: Utc::now(),
    }
}
