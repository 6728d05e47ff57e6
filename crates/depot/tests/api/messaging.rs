//! Outbox → relay → broker → consumer, end to end on the configured backends.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use depot_adapters::broker::{Broker, DeadLetter, DeadLetterSelector, Delivery, Disposition};
use depot_app::debug::{DebugHandler, HANDLED};
use depot_app::messaging::{HandlerDelivery, Scheduler};
use depot_app::uow::{RelayWaker, Writer};
use depot_domain::clock::ManualClock;
use depot_domain::message::Message;
use depot_store::entity::{audit_log, job, outbox, processed_message};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub(crate) async fn ping(app: &TestApp, body: serde_json::Value) -> Uuid {
    let response = app.post_json("/api/v1/_debug/pings", &body).await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    body["message_id"].as_str().unwrap().parse().unwrap()
}

pub async fn handled_count(db: &depot_store::Db, message_id: Uuid) -> u64 {
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq(HANDLED))
        .filter(audit_log::Column::TargetId.eq(message_id.to_string()))
        .count(db.reader())
        .await
        .unwrap()
}

/// A `debug.ping` message with `payload`, built directly (not through the HTTP route).
fn debug_ping(payload: serde_json::Value) -> Message {
    Message::new("debug.ping", ("debug", "ping"), payload, Utc::now())
}

/// Emits `message` straight into the outbox and waits until the relay sets it aside as
/// `failed`; returns the outbox row.
async fn emit_and_await_set_aside(app: &TestApp, message: Message) -> outbox::Model {
    emit_and_await(app, message, "failed").await
}

/// Appends `message` to the outbox and waits until the relay gave it `status`.
async fn emit_and_await(app: &TestApp, message: Message, status: &str) -> outbox::Model {
    let id = message.id;
    let tx = app.store.begin().await.unwrap();
    depot_store::repo::outbox::append(&*tx, &message, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let db = app.store.clone();
    let find = || async {
        outbox::Entity::find_by_id(id)
            .one(db.reader())
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(10), status, || async {
        find().await.is_some_and(|r| r.status == status)
    })
    .await;
    find().await.unwrap()
}

/// Waits until message `id` has been handled exactly once.
async fn await_handled_once(app: &TestApp, id: Uuid, timeout: Duration, what: &str) {
    let db = app.store.clone();
    eventually(timeout, what, || async {
        handled_count(&db, id).await == 1
    })
    .await;
}

/// The messages parked on the `debug` queue (the first ten).
async fn debug_dead_letters(broker: &dyn Broker) -> Vec<DeadLetter> {
    broker.dead_letters(Some("debug"), 10).await.unwrap()
}

/// Waits until message `id` is parked on the `debug` queue.
async fn await_dead_lettered(broker: &dyn Broker, id: Uuid, what: &str) {
    eventually(Duration::from_secs(20), what, || async {
        debug_dead_letters(broker)
            .await
            .iter()
            .any(|d| d.message.as_ref().is_some_and(|m| m.id == id))
    })
    .await;
}

/// `n` schedulers sharing `clock`, as on `n` instances.
fn schedulers(app: &TestApp, clock: &Arc<ManualClock>, n: usize) -> Vec<Scheduler> {
    (0..n)
        .map(|i| {
            let writer = Writer::new(app.store.clone(), clock.clone(), RelayWaker::default());
            Scheduler::new(writer, format!("instance-{i}"))
        })
        .collect()
}

/// Every instance makes the same claim at once; returns how many won it.
async fn winners<'a, F, Fut>(instances: &'a [Scheduler], claim: F) -> usize
where
    F: FnMut(&'a Scheduler) -> Fut,
    Fut: std::future::Future<Output = depot_domain::AppResult<bool>>,
{
    futures::future::join_all(instances.iter().map(claim))
        .await
        .into_iter()
        .map(Result::unwrap)
        .filter(|won| *won)
        .count()
}

async fn job_of(app: &TestApp, message_id: Uuid) -> Option<job::Model> {
    job::Entity::find()
        .filter(job::Column::DedupeKey.eq(message_id.to_string()))
        .one(app.store.reader())
        .await
        .unwrap()
}

/// The job of `message_id` once the queue has marked it succeeded: that happens in its own
/// transaction just after the handler's effect commits, so a test that saw the effect waits.
async fn succeeded_job(app: &TestApp, message_id: Uuid) -> job::Model {
    eventually(Duration::from_secs(5), "job marked succeeded", || async {
        job_of(app, message_id)
            .await
            .is_some_and(|j| j.status == "succeeded")
    })
    .await;
    job_of(app, message_id).await.unwrap()
}

#[tokio::test]
async fn an_event_flows_from_the_outbox_to_its_consumer_once() {
    let app = spawn_app().await;
    let id = ping(&app, serde_json::json!({})).await;
    await_handled_once(&app, id, Duration::from_secs(10), "ping handled").await;
    let db = app.store.clone();

    let row = outbox::Entity::find_by_id(id)
        .one(db.reader())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "published");
    assert!(row.published_at.is_some());
    assert!(
        row.correlation_id.is_some(),
        "the request id travels as correlation id"
    );
    let processed = processed_message::Entity::find()
        .filter(processed_message::Column::MessageId.eq(id))
        .count(db.reader())
        .await
        .unwrap();
    assert_eq!(processed, 1);
    let debug = app.context.debug().expect("debug routes are on in tests");
    assert_eq!(debug.attempts(id), 1, "handled on the first attempt");
    if app.context.broker().kind() == "database" {
        let job = succeeded_job(&app, id).await;
        assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 1));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_handler_that_fails_twice_is_retried_and_takes_effect_once() {
    let app = spawn_app().await;
    let id = ping(&app, serde_json::json!({ "fail_times": 2 })).await;
    await_handled_once(
        &app,
        id,
        Duration::from_secs(20),
        "ping handled after retries",
    )
    .await;
    // Three runs of the handler on either broker (RabbitMQ redelivers through its retry queue).
    let debug = app.context.debug().expect("debug routes are on in tests");
    assert_eq!(debug.attempts(id), 3, "two failures, then success");
    if app.context.broker().kind() == "database" {
        let job = succeeded_job(&app, id).await;
        assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 3));
        assert!(
            job.last_error.unwrap().contains("debug.flaky"),
            "the failure reason is kept"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handled_count(&app.store, id).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_with_its_reason_and_can_be_replayed() {
    let app = spawn_app().await;
    // Fails 5 times; the debug consumer allows 3 attempts: dead after the third.
    let id = ping(&app, serde_json::json!({ "fail_times": 5 })).await;
    let broker = app.context.broker().clone();
    await_dead_lettered(&*broker, id, "message dead-lettered").await;
    let parked = debug_dead_letters(&*broker).await;
    let letter = parked
        .iter()
        .find(|d| d.message.as_ref().is_some_and(|m| m.id == id))
        .unwrap();
    assert_eq!(letter.attempts, 3);
    assert_eq!(
        app.context.debug().expect("debug routes").attempts(id),
        3,
        "the handler ran three times before the message was parked"
    );
    assert!(
        letter
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("debug.flaky"),
        "{letter:?}"
    );
    assert_eq!(handled_count(&app.store, id).await, 0);

    // Replay: two more failures, then success — exactly one effect, nothing left parked.
    let replayed = broker
        .replay(&DeadLetterSelector {
            id: Some(letter.id),
            queue: None,
        })
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    await_handled_once(
        &app,
        id,
        Duration::from_secs(20),
        "replayed message handled",
    )
    .await;
    assert!(
        debug_dead_letters(&*broker)
            .await
            .iter()
            .all(|d| d.id != letter.id)
    );
    app.stop().await;
}

#[tokio::test]
async fn purge_removes_dead_letters() {
    let app = spawn_app().await;
    let id = ping(&app, serde_json::json!({ "poison": true })).await;
    let broker = app.context.broker().clone();
    await_dead_lettered(&*broker, id, "poison parked").await;
    let purged = broker
        .purge(&DeadLetterSelector {
            id: None,
            queue: Some("debug".into()),
        })
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(debug_dead_letters(&*broker).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_message_takes_effect_once() {
    let app = spawn_app_with(|s| s.debug_routes = true).await;
    let handler = Arc::new(DebugHandler::new(
        app.context.clock().clone(),
        Default::default(),
    ));
    let delivery = HandlerDelivery::new(handler, app.store.clone(), app.context.clock().clone());
    let message = debug_ping(serde_json::json!({ "sleep_ms": 200 }));
    // Two concurrent deliveries of the same message (a redelivery racing the original).
    let (a, b) = tokio::join!(
        delivery.deliver(message.clone(), 1),
        delivery.deliver(message.clone(), 1)
    );
    assert_eq!((a, b), (Disposition::Ack, Disposition::Ack));
    assert_eq!(delivery.deliver(message.clone(), 2).await, Disposition::Ack);
    assert_eq!(handled_count(&app.store, message.id).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_job_runs_once_per_period_across_instances() {
    let app = spawn_app().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let instances = schedulers(&app, &clock, 3);
    let every = Duration::from_secs(60);
    for period in 0..10 {
        let wins = winners(&instances, |s| s.claim("report_cleanup", every)).await;
        assert_eq!(
            wins, 1,
            "period {period}: exactly one instance runs the job"
        );
        // Within the same period nobody wins again.
        clock.advance(chrono::Duration::seconds(30));
        let again = winners(&instances, |s| s.claim("report_cleanup", every)).await;
        assert_eq!(again, 0, "period {period}: no second run");
        clock.advance(chrono::Duration::seconds(30));
    }
    app.stop().await;
}

#[tokio::test]
async fn an_event_that_fails_its_schema_is_never_published() {
    let app = spawn_app().await;
    let bad = debug_ping(serde_json::json!({ "sleep_ms": "later" }));
    let id = bad.id;
    let row = emit_and_await_set_aside(&app, bad).await;
    assert!(row.last_error.unwrap().contains("/sleep_ms"));
    assert!(row.published_at.is_none());
    assert_eq!(handled_count(&app.store, id).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_cron_job_runs_once_per_occurrence_across_instances() {
    use depot_domain::cadence::Cadence;
    let app = spawn_app().await;
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let instances = schedulers(&app, &clock, 2);
    let every_quarter_hour = Cadence::parse("0 */15 * * * *").unwrap();
    for occurrence in 0..4 {
        let wins = winners(&instances, |s| s.claim_run("cron_job", &every_quarter_hour)).await;
        assert_eq!(wins, 1, "occurrence {occurrence}");
        clock.advance(chrono::Duration::minutes(7));
        let early = winners(&instances, |s| s.claim_run("cron_job", &every_quarter_hour)).await;
        assert_eq!(early, 0, "not before the next occurrence");
        clock.advance(chrono::Duration::minutes(8));
    }
    app.stop().await;
}

#[tokio::test]
async fn an_event_no_queue_takes_is_set_aside_not_marked_published() {
    // Without debug routes nothing consumes `debug.ping`.
    let app = spawn_app_with(|s| s.debug_routes = false).await;
    let orphan = debug_ping(serde_json::json!({}));
    let row = emit_and_await_set_aside(&app, orphan).await;
    assert!(row.last_error.unwrap().contains("unroutable"));
    assert!(row.published_at.is_none());
    app.stop().await;
}

/// The environment for `depot` commands against `app`'s database and broker, configured like
/// the server (its consumers, hence its queues, include the debug one).
fn cli_env(app: &TestApp) -> Vec<(&'static str, String)> {
    let settings = app.context.settings();
    let mut env = vec![
        ("DEPOT_DEBUG_ROUTES", "true".to_owned()),
        ("DATABASE_URL", settings.database_url()),
        ("DEPOT_NAMESPACE", settings.namespace.clone()),
        (
            "DEPOT_JWT_SECRET",
            "cli-jwt-secret-0123456789-abcdefghijklmnop".to_owned(),
        ),
        (
            "DEPOT_APP_SECRET",
            "cli-app-secret-9876543210-zyxwvutsrqponmlk".to_owned(),
        ),
    ];
    if let Some(amqp) = &settings.amqp_url {
        env.push(("AMQP_URL", amqp.expose().to_owned()));
    }
    env
}

#[tokio::test]
async fn the_cli_lists_replays_and_purges_dead_letters() {
    let app = spawn_app().await;
    let broker = app.context.broker().clone();
    let dir = tempfile::tempdir().unwrap();
    let env = cli_env(&app);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cli = |args: &[&str]| crate::process::run(dir.path(), &env, args);

    // Two messages parked: one that will succeed on replay, one that never will.
    let recoverable = ping(&app, serde_json::json!({ "fail_times": 5 })).await;
    let hopeless = ping(&app, serde_json::json!({ "poison": true })).await;
    await_dead_lettered(&*broker, recoverable, "recoverable parked").await;
    await_dead_lettered(&*broker, hopeless, "hopeless parked").await;

    let listed = cli(&["admin", "dead-letters", "list", "--queue", "debug"]);
    let out = crate::process::text(&listed.stdout);
    assert!(
        listed.status.success(),
        "{out}{}",
        crate::process::text(&listed.stderr)
    );
    assert!(out.starts_with("2 dead letters"), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(&format!("message={recoverable}")))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("attempts=3") && line.contains("debug.flaky"),
        "{line}"
    );
    let letter = line.split_whitespace().next().unwrap().to_owned();

    let refused = cli(&["admin", "dead-letters", "replay"]);
    assert!(
        !refused.status.success(),
        "replay needs --id, --queue or --all"
    );

    let replayed = cli(&["admin", "dead-letters", "replay", "--id", &letter]);
    assert_eq!(crate::process::text(&replayed.stdout).trim(), "replayed 1");
    await_handled_once(
        &app,
        recoverable,
        Duration::from_secs(30),
        "replayed and handled",
    )
    .await;

    let purged = cli(&["admin", "dead-letters", "purge", "--all"]);
    assert_eq!(crate::process::text(&purged.stdout).trim(), "purged 1");
    let listed = cli(&["admin", "dead-letters", "list"]);
    assert!(crate::process::text(&listed.stdout).starts_with("0 dead letters"));
    assert_eq!(handled_count(&app.store, hopeless).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_broadcast_event_nobody_listens_to_is_published_not_set_aside() {
    // Nothing consumes `stock.changed` yet: it goes out to whoever listens, here no one.
    let app = spawn_app().await;
    let message = Message::new(
        "stock.changed",
        ("product", Uuid::now_v7()),
        serde_json::json!({
            "product_id": Uuid::now_v7(), "location_id": Uuid::now_v7(),
            "on_hand": 1, "reserved": 0, "available": 1, "change": 1,
            "kinds": ["adjustment"], "reference_type": null, "reference_id": null,
        }),
        Utc::now(),
    );
    let row = emit_and_await(&app, message, "published").await;
    assert!(row.last_error.is_none());
    assert!(row.published_at.is_some());
    app.stop().await;
}

#[tokio::test]
async fn messages_consumed_together_each_settle_by_their_own_outcome() {
    let app = spawn_app().await;
    // Appended in one transaction: the relay publishes them in one pass and the database queue
    // claims them in one batch, whose verdicts are settled together.
    let fine: Vec<Message> = (0..5).map(|_| debug_ping(serde_json::json!({}))).collect();
    let flaky = debug_ping(serde_json::json!({ "fail_times": 1 }));
    let poison = debug_ping(serde_json::json!({ "poison": true }));
    let tx = app.store.begin().await.unwrap();
    let all: Vec<(Message, Option<String>)> = fine
        .iter()
        .chain([&flaky, &poison])
        .map(|m| (m.clone(), None))
        .collect();
    depot_store::repo::outbox::append_all(&*tx, &all)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for m in fine.iter().chain([&flaky]) {
        await_handled_once(&app, m.id, Duration::from_secs(20), "handled").await;
    }
    let broker = app.context.broker().clone();
    await_dead_lettered(&*broker, poison.id, "the poison message is parked").await;
    assert_eq!(handled_count(&app.store, poison.id).await, 0);
    let debug = app.context.debug().expect("debug routes are on in tests");
    assert_eq!(debug.attempts(flaky.id), 2, "one failure, then success");
    if broker.kind() == "database" {
        for m in &fine {
            let job = succeeded_job(&app, m.id).await;
            assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 1));
        }
        let job = succeeded_job(&app, flaky.id).await;
        assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 2));
        let parked = job_of(&app, poison.id).await.unwrap();
        assert_eq!(parked.status, "dead");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for m in fine.iter().chain([&flaky]) {
        assert_eq!(handled_count(&app.store, m.id).await, 1, "once each");
    }
    app.stop().await;
}
