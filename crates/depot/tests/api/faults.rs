//! The multi-process fault test: two `depot api` processes and one `depot worker` on one
//! database (PostgreSQL + Redis + RabbitMQ when the run names them, else SQLite and the
//! in-database queue). Clients write through both APIs — stock adjustments with an
//! `Idempotency-Key`, and pings whose handler takes a while in the worker — and a request that
//! loses its connection is sent again, same key, to the other API, as a client behind a load
//! balancer would. Mid-run one API and the worker are killed with SIGKILL and restarted.
//!
//! Each adjustment carries its key as its `X-Request-Id`, which the ledger records, so every
//! movement can be traced to the request that made it. Afterwards: every acknowledged
//! adjustment is in the ledger exactly once; one whose answer was lost with the killed process
//! (its copy is told the key is `in_progress` or its response lost) at most once; nothing else
//! is; every acknowledged ping was handled exactly once, no outbox row is left behind, and
//! `depot verify` is clean. The figures are printed (`cargo test faults -- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use depot_store::{Db, DbOptions};
use depot_testkit::TestDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::messaging::{eventually, handled_count};
use crate::process::{Server, run, text};

/// Clients writing at once.
const CLIENTS: usize = 6;
/// How long the load runs; the kill comes at a third of it, the restart at a half.
const LOAD: Duration = Duration::from_secs(9);
/// How long a ping's handler takes: long enough that the worker may be killed inside one.
const PING_SLEEP_MS: u64 = 50;
/// One write in this many is a ping.
const PING_EVERY: usize = 20;

/// Where the clients send their requests: the two APIs' current addresses (a restarted
/// process listens on a new port).
type Apis = Arc<Mutex<[String; 2]>>;

#[derive(Default)]
struct Tally {
    /// Adjustments acknowledged (201), by idempotency key: the movement ids the answer named.
    adjustments: BTreeMap<Uuid, Vec<Uuid>>,
    /// Adjustments whose answer went with the killed process: a copy found the key held
    /// (`idempotency.in_progress`) or its response lost (`idempotency.response_lost`).
    unanswered: BTreeSet<Uuid>,
    /// Pings acknowledged (202): their message ids.
    pings: Vec<Uuid>,
    /// Requests sent, answers by kind (`201`, `connection`, `503`, …) and resends.
    sent: u64,
    outcomes: BTreeMap<String, u64>,
    resent: u64,
    /// Writes that were never acknowledged, even after resending.
    given_up: u64,
}

#[tokio::test]
async fn killing_an_api_and_the_worker_mid_load_loses_and_doubles_nothing() {
    let db = TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let namespace = format!("depot-test-{}", Uuid::now_v7().simple());
    let redis = depot_testkit::redis_url();
    let amqp = depot_testkit::amqp_url();
    let mut env = vec![
        ("DATABASE_URL", db.url()),
        ("DEPOT_DEBUG_ROUTES", "true"),
        ("DEPOT_NAMESPACE", namespace.as_str()),
        // A message whose handler died with the worker is offered again after this.
        ("DEPOT_QUEUE_VISIBILITY_TIMEOUT_SECS", "2"),
        // A copy of a request the killed process held waits this long before it is told so.
        ("DEPOT_IDEMPOTENCY_WAIT_MS", "500"),
    ];
    if let Some(url) = redis.as_deref() {
        env.push(("REDIS_URL", url));
    }
    if let Some(url) = amqp.as_deref() {
        env.push(("AMQP_URL", url));
    }

    // The first API migrates the database; the rest start on it.
    let mut api_a = Server::start(&dir, &env, &["api"]);
    let password = create_manager(&dir, &env);
    let api_b = Server::start(&dir, &env, &["api"]);
    let mut worker = Server::start_worker(&dir, &env);
    let apis: Apis = Arc::new(Mutex::new([api_a.url(""), api_b.url("")]));

    let client = crate::helpers::client();
    let token = sign_in(&client, &api_a.url(""), &password).await;
    let product = create(
        &client,
        &api_a.url("/api/v1/products"),
        &token,
        json!({
            "sku": "FAULT-1", "name": "Under fire", "unit": "pcs"
        }),
    )
    .await;
    let location = create(
        &client,
        &api_b.url("/api/v1/locations"),
        &token,
        json!({
            "code": "F1", "name": "Fault line"
        }),
    )
    .await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (apis, tally, client, token) =
                (apis.clone(), tally.clone(), client.clone(), token.clone());
            tokio::spawn(async move {
                let mut i = n;
                while started.elapsed() < LOAD {
                    i += 1;
                    let write = if i % PING_EVERY == 0 {
                        Write::Ping
                    } else {
                        Write::Adjustment {
                            key: Uuid::now_v7(),
                            body: json!({
                                "product_id": product, "location_id": location,
                                "quantity": 1, "reason": "found"
                            }),
                        }
                    };
                    send(&client, &apis, &token, i % 2, &write, &tally).await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();

    // Kill one API and the worker mid-run; restart them a little later.
    tokio::time::sleep(LOAD / 3).await;
    api_a.child.kill().expect("SIGKILL the first API");
    worker.child.kill().expect("SIGKILL the worker");
    let _ = api_a.child.wait();
    let _ = worker.child.wait();
    let killed_at = Instant::now();
    tokio::time::sleep(LOAD / 6).await;
    let restarted_at = Instant::now();
    api_a = Server::start(&dir, &env, &["api"]);
    apis.lock().expect("apis")[0] = api_a.url("");
    let api_back = restarted_at.elapsed();
    worker = Server::start_worker(&dir, &env);
    let worker_back = restarted_at.elapsed();

    for client in clients {
        client.await.expect("a client ran to the end");
    }
    let tally = Arc::try_unwrap(tally)
        .ok()
        .expect("the clients are done")
        .into_inner()
        .expect("tally");

    // Every acknowledged ping handled, the outbox drained.
    let store = Db::connect_lazy(&DbOptions::new(db.url())).expect("the database");
    let drained = Instant::now();
    eventually(
        Duration::from_secs(60),
        "every acknowledged ping handled and the outbox drained",
        || async {
            outbox_left(&store).await == 0 && {
                let mut all = true;
                for id in &tally.pings {
                    if handled_count(&store, *id).await == 0 {
                        all = false;
                        break;
                    }
                }
                all
            }
        },
    )
    .await;
    let drain_time = drained.elapsed();
    // A late redelivery would show now.
    tokio::time::sleep(Duration::from_secs(3)).await;

    println!(
        "fault test ({}): {} requests from {CLIENTS} clients over {:?}; {} adjustments and {} \
         pings acknowledged; answers {:?}; {} resent to the other API, {} never acknowledged; \
         API killed and worker killed at {:?}, restarted {:?} later: API listening after {:?}, \
         worker after {:?}; the backlog drained {:?} after the load ended",
        db.backend(),
        tally.sent,
        LOAD,
        tally.adjustments.len(),
        tally.pings.len(),
        tally.outcomes,
        tally.resent,
        tally.given_up,
        killed_at.duration_since(started),
        restarted_at.duration_since(killed_at),
        api_back,
        worker_back,
        drain_time,
    );

    assert!(
        tally.outcomes.get("connection").copied().unwrap_or(0) > 0,
        "the kill was meant to cut requests off: {:?}",
        tally.outcomes
    );
    assert_eq!(
        tally.given_up, 0,
        "a write was neither acknowledged nor accounted for"
    );

    // Nothing lost, nothing doubled: every movement is an acknowledged request's (exactly the
    // ones its answer named) or, at most once, an unanswered one's.
    let ledger = ledger_by_request(&store, product).await;
    for (key, ids) in &tally.adjustments {
        let recorded = ledger.get(&key.to_string()).cloned().unwrap_or_default();
        assert_eq!(
            recorded,
            ids.iter().copied().collect::<BTreeSet<_>>(),
            "adjustment {key}: acknowledged with {ids:?}, the ledger has {recorded:?}"
        );
    }
    let mut unanswered_applied = 0;
    for (request, ids) in &ledger {
        let key: Uuid = request.parse().expect("every movement names its request");
        if tally.unanswered.contains(&key) {
            assert_eq!(ids.len(), 1, "unanswered {key} applied more than once");
            unanswered_applied += 1;
        } else {
            assert!(
                tally.adjustments.contains_key(&key),
                "a movement of a request never sent: {key}"
            );
        }
    }
    let movements: usize = ledger.values().map(BTreeSet::len).sum();
    println!(
        "fault test ({}): the ledger holds {movements} movements: {} acknowledged, {unanswered_applied} of {} unanswered",
        db.backend(),
        tally.adjustments.len(),
        tally.unanswered.len(),
    );
    let levels: i64 = {
        use depot_store::entity::stock_level;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        stock_level::Entity::find()
            .filter(stock_level::Column::ProductId.eq(product))
            .all(store.reader())
            .await
            .expect("the levels")
            .iter()
            .map(|l| l.on_hand)
            .sum()
    };
    assert_eq!(levels, 1000 * i64::try_from(movements).expect("a count"));

    // Every acknowledged ping took effect once, the redelivered ones included.
    for id in &tally.pings {
        assert_eq!(handled_count(&store, *id).await, 1, "ping {id}");
    }
    assert_eq!(outbox_left(&store).await, 0, "outbox rows left behind");

    let verify = run(&dir, &env, &["verify"]);
    assert!(
        verify.status.success(),
        "depot verify: {}\n{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    drop((api_a, api_b, worker));
}

enum Write {
    Adjustment { key: Uuid, body: Value },
    Ping,
}

/// Sends `write` to API `first`, and on a lost connection or a refusal of the moment (503)
/// again to the other one, up to a few times, as a client behind a load balancer would.
async fn send(
    client: &reqwest::Client,
    apis: &Apis,
    token: &str,
    first: usize,
    write: &Write,
    tally: &Mutex<Tally>,
) {
    for attempt in 0..8 {
        let base = apis.lock().expect("apis")[(first + attempt) % 2].clone();
        let request = match write {
            Write::Adjustment { key, body } => client
                .post(format!("{base}/api/v1/stock/adjustments"))
                .bearer_auth(token)
                .header("Idempotency-Key", key.to_string())
                .header("X-Request-Id", key.to_string())
                .json(body),
            Write::Ping => client
                .post(format!("{base}/api/v1/_debug/pings"))
                .json(&json!({ "sleep_ms": PING_SLEEP_MS })),
        };
        let answer = request.timeout(Duration::from_secs(10)).send().await;
        let outcome = match &answer {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "connection".to_owned(),
        };
        {
            let mut tally = tally.lock().expect("tally");
            tally.sent += 1;
            if attempt > 0 {
                tally.resent += 1;
            }
            *tally.outcomes.entry(outcome).or_default() += 1;
        }
        let Ok(response) = answer else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (write, status) {
            (Write::Adjustment { key, .. }, 201) => {
                let ids = body["movements"]
                    .as_array()
                    .expect("the movements")
                    .iter()
                    .map(|m| m["id"].as_str().expect("an id").parse().expect("a UUID"))
                    .collect();
                tally.lock().expect("tally").adjustments.insert(*key, ids);
                return;
            }
            (Write::Ping, 202) => {
                let id = body["message_id"]
                    .as_str()
                    .expect("an id")
                    .parse()
                    .expect("a UUID");
                tally.lock().expect("tally").pings.push(id);
                return;
            }
            (Write::Adjustment { key, .. }, 409)
                if matches!(
                    body["code"].as_str(),
                    Some("idempotency.in_progress" | "idempotency.response_lost")
                ) =>
            {
                tally.lock().expect("tally").unanswered.insert(*key);
                return;
            }
            (_, 503) => tokio::time::sleep(Duration::from_millis(50)).await,
            (_, status) => panic!("unexpected answer {status}: {body}"),
        }
    }
    tally.lock().expect("tally").given_up += 1;
}

/// Creates the manager the load signs in as (an admin would have to enrol MFA first); its
/// generated password.
fn create_manager(dir: &Path, env: &[(&str, &str)]) -> String {
    let out = run(
        dir,
        env,
        &[
            "admin",
            "create-user",
            "--email",
            "ops@example.com",
            "--role",
            "manager",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("the generated password")
        .to_owned()
}

async fn sign_in(client: &reqwest::Client, base: &str, password: &str) -> String {
    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": "ops@example.com", "password": password }))
        .send()
        .await
        .expect("sign in");
    let body: Value = response.json().await.expect("a JSON answer");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {body}"))
        .to_owned()
}

async fn create(client: &reqwest::Client, url: &str, token: &str, body: Value) -> Uuid {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("a JSON answer");
    body["id"].as_str().expect("an id").parse().expect("a UUID")
}

/// Outbox rows not yet published (pending, or set aside as failed).
async fn outbox_left(store: &Db) -> i64 {
    crate::helpers::scalar_at(
        store,
        "SELECT COUNT(*) FROM outbox WHERE status <> 'published'",
    )
    .await
}

/// The product's movements by the request (`X-Request-Id`) that made them.
async fn ledger_by_request(store: &Db, product: Uuid) -> BTreeMap<String, BTreeSet<Uuid>> {
    use depot_store::entity::stock_movement;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mut by_request: BTreeMap<String, BTreeSet<Uuid>> = BTreeMap::new();
    for m in stock_movement::Entity::find()
        .filter(stock_movement::Column::ProductId.eq(product))
        .all(store.reader())
        .await
        .expect("the ledger")
    {
        by_request
            .entry(m.request_id.unwrap_or_default())
            .or_default()
            .insert(m.id);
    }
    by_request
}
