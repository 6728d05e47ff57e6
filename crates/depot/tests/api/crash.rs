//! A worker killed with SIGKILL in the middle of a handler loses nothing: the message is
//! delivered again and takes effect exactly once.

use std::time::Duration;

use depot_store::entity::processed_message;
use depot_store::{Db, DbOptions};
use depot_testkit::TestDatabase;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::messaging::{eventually, handled_count};
use crate::process::Server;

#[tokio::test]
async fn a_worker_killed_mid_handler_loses_nothing_and_duplicates_nothing() {
    let db = TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let prefix = format!("depot-test-{}", Uuid::now_v7().simple());
    let amqp = depot_testkit::amqp_url();
    let mut env = vec![
        ("DATABASE_URL", db.url()),
        ("DEPOT_DEBUG_ROUTES", "true"),
        ("DEPOT_QUEUE_VISIBILITY_TIMEOUT_SECS", "2"),
        ("DEPOT_NAMESPACE", prefix.as_str()),
    ];
    if let Some(url) = amqp.as_deref() {
        env.push(("AMQP_URL", url));
    }

    let mut first = Server::start(&dir, &env, &["serve"]);
    let client = crate::helpers::client();
    let response = client
        .post(first.url("/api/v1/_debug/pings"))
        .json(&serde_json::json!({ "sleep_ms": 4000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let id: Uuid = body["message_id"].as_str().unwrap().parse().unwrap();

    // Wait until the consumer has started its 4 s handler (its log says so), then kill -9.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        seen.extend(first.json_logs());
        if seen
            .iter()
            .any(|l| l["message"] == "ping handler started" && l["message_id"] == id.to_string())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the handler never started: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let store = Db::connect_lazy(&DbOptions::new(db.url())).unwrap();
    assert_eq!(
        handled_count(&store, id).await,
        0,
        "the killed handler's work was not committed"
    );

    let _second = Server::start(&dir, &env, &["serve"]);
    eventually(
        Duration::from_secs(30),
        "message redelivered and handled",
        || async { handled_count(&store, id).await == 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(handled_count(&store, id).await, 1, "exactly once in effect");
    let processed = processed_message::Entity::find()
        .filter(processed_message::Column::MessageId.eq(id))
        .count(store.reader())
        .await
        .unwrap();
    assert_eq!(processed, 1);
}
