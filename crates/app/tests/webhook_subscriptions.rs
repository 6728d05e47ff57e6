//! The `webhooks` consumer asks of every event whether any active webhook takes its type. The
//! answer is cached per instance (most events — every stock change — concern no webhook), so a
//! change to a webhook must reach the cache as soon as it commits: a webhook created, switched
//! on or off, or deleted is what the very next event sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::Utc;
use depot_adapters::cache::{Cache, CacheOptions};
use depot_app::ClientInfo;
use depot_app::uow::{RelayWaker, Writer};
use depot_app::webhooks::subscriptions::Subscriptions;
use depot_domain::Actor;
use depot_domain::clock::FixedClock;
use depot_store::entity::webhook;
use depot_store::repo::webhooks;
use depot_store::{Db, DbOptions};
use depot_testkit::TestDatabase;
use uuid::Uuid;

fn hook(types: &str) -> webhook::Model {
    webhook::Model {
        id: Uuid::now_v7(),
        url: "https://example.com/hook".into(),
        event_types: types.into(),
        active: true,
        secret: "sealed".into(),
        description: None,
        created_by: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_change_to_a_webhook_is_seen_by_the_next_event_and_until_then_the_answer_is_cached() {
    depot_testkit::announce_backends();
    let tdb = TestDatabase::fresh().await;
    let db = Db::connect_lazy(&DbOptions::new(tdb.url())).unwrap();
    db.migrate_up().await.unwrap();
    let writer = Writer::new(
        db.clone(),
        Arc::new(FixedClock(Utc::now())),
        RelayWaker::default(),
    );
    // Entries live the subscriptions' own 5 s here, not the default 1 s cap: the cached
    // answer below must not expire on a slow machine.
    let cache = Arc::new(Cache::new(
        None,
        CacheOptions {
            l1_max_ttl: std::time::Duration::from_secs(60),
            ..CacheOptions::default()
        },
    ));
    let subscriptions = Subscriptions::new(cache, db.clone());
    let client = ClientInfo::local();
    let begin = || writer.begin(Actor::System("test"), &client);

    assert!(!subscriptions.any_for("stock.changed").await.unwrap());

    // A row written behind the service's back (no invalidation): the cached answer stands.
    let uow = begin().await.unwrap();
    webhooks::insert(uow.tx(), hook(r#"["stock.changed"]"#))
        .await
        .unwrap();
    uow.commit().await.unwrap();
    assert!(
        !subscriptions.any_for("stock.changed").await.unwrap(),
        "the answer is cached: no query per event"
    );

    // A change that says so after it commits: the next event sees it.
    let mut uow = begin().await.unwrap();
    let every = webhooks::insert(uow.tx(), hook(r#"["*"]"#)).await.unwrap();
    subscriptions.changed_after_commit(&mut uow);
    uow.commit().await.unwrap();
    assert!(subscriptions.any_for("stock.changed").await.unwrap());
    assert!(subscriptions.any_for("alert.raised").await.unwrap());

    // Switched off and the other one deleted: nothing is wanted any more.
    let mut uow = begin().await.unwrap();
    webhooks::save(
        uow.tx(),
        webhook::Model {
            active: false,
            ..every
        },
    )
    .await
    .unwrap();
    for w in webhooks::active(uow.tx()).await.unwrap() {
        webhooks::delete(uow.tx(), w.id).await.unwrap();
    }
    subscriptions.changed_after_commit(&mut uow);
    uow.commit().await.unwrap();
    assert!(!subscriptions.any_for("stock.changed").await.unwrap());
    assert!(!subscriptions.any_for("alert.raised").await.unwrap());
}
