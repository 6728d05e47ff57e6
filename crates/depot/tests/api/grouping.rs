//! Group commit on a hot product: thousands of random concurrent adjustments through HTTP, with
//! grouping and without, must leave levels, the ledger and every answer consistent with one
//! serial order of the accepted requests; two API processes on one database never oversell;
//! a repeated idempotency key inside a group takes effect once.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Http, spawn_app_with};
use crate::stock::{Desk, assert_verified};

const START: i64 = 40;

/// What one request asked and was told.
struct Answer {
    product: Uuid,
    delta: i64,
    status: u16,
    body: Value,
}

/// Checks that the accepted requests of one product chain from `START` to `last` in some
/// order (each answer's level is the one before it plus its change: an Euler path through
/// the on-hand values), and that every refusal saw a value on that path too small for it.
fn assert_serialisable(answers: &[&Answer], last: i64) {
    let mut out: HashMap<i64, i64> = HashMap::new();
    let mut edges: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut seen = std::collections::HashSet::from([START, last]);
    for a in answers.iter().filter(|a| a.status == 201) {
        let after = a.body["level"]["on_hand"].as_i64().expect("whole units");
        let moved: i64 = a.body["movements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["quantity"].as_i64().unwrap())
            .sum();
        assert_eq!(moved, a.delta, "an answer's movements add up to its change");
        let before = after - a.delta;
        *out.entry(before).or_default() += 1;
        *out.entry(after).or_default() -= 1;
        edges.entry(before).or_default().push(after);
        seen.extend([before, after]);
    }
    // Degrees: one more out than in at the start, one more in than out at the end.
    for (&v, &balance) in &out {
        let expected = i64::from(v == START) - i64::from(v == last);
        assert_eq!(
            balance, expected,
            "on hand {v}: no serial order passes here consistently"
        );
    }
    // Every edge is reachable from the start.
    let mut stack = vec![START];
    let mut reached = std::collections::HashSet::from([START]);
    while let Some(v) = stack.pop() {
        for &w in edges.get(&v).into_iter().flatten() {
            if reached.insert(w) {
                stack.push(w);
            }
        }
    }
    for v in edges.keys() {
        assert!(reached.contains(v), "on hand {v} is cut off from the start");
    }
    for a in answers.iter().filter(|a| a.status != 201) {
        assert_eq!(a.status, 409, "{}", a.body);
        assert_eq!(a.body["code"], "stock.insufficient");
        let available = a.body["details"]["available"].as_i64().unwrap();
        assert!(
            available < -a.delta,
            "refused though {available} covered {}",
            a.delta
        );
        assert!(
            seen.contains(&available),
            "refused at {available}, a level no serial order passes"
        );
    }
}

async fn hammer(max_group: usize) {
    let app = spawn_app_with(|s| s.stock_group_max_size = max_group).await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let mut products = Vec::new();
    for sku in ["HOT-A", "HOT-B", "HOT-C"] {
        let p = desk.product(sku, "pcs", json!({})).await;
        desk.add(p, here, json!(START), json!({})).await;
        products.push(p);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(20_261_129 + max_group as u64);
    let plan: Vec<(Uuid, i64)> = (0..2_100)
        .map(|_| {
            let product = products[rng.random_range(0..3)];
            let delta = if rng.random_bool(0.45) {
                rng.random_range(1..=4)
            } else {
                -rng.random_range(1..=6)
            };
            (product, delta)
        })
        .collect();
    let answers: Vec<Answer> = futures::stream::iter(plan)
        .map(|(product, delta)| {
            let desk = &desk;
            async move {
                let (status, body) = desk
                    .adjust(
                        product,
                        here,
                        json!(delta),
                        json!({ "reason": if delta > 0 { "found" } else { "damaged" } }),
                    )
                    .await;
                Answer {
                    product,
                    delta,
                    status,
                    body,
                }
            }
        })
        .buffer_unordered(48)
        .collect()
        .await;
    let mut by_product: BTreeMap<Uuid, Vec<&Answer>> = BTreeMap::new();
    for a in &answers {
        by_product.entry(a.product).or_default().push(a);
    }
    for (product, mine) in by_product {
        let last = desk.on_hand(product, here).await.as_i64().unwrap();
        let accepted: i64 = mine
            .iter()
            .filter(|a| a.status == 201)
            .map(|a| a.delta)
            .sum();
        assert_eq!(
            last,
            START + accepted,
            "the level is the sum of what was accepted"
        );
        assert!(last >= 0);
        assert_serialisable(&mine, last);
    }
    assert!(
        answers.iter().any(|a| a.status == 409),
        "the mix must drive some product to a refusal"
    );
    if max_group > 1 {
        // Groups of more than one formed: the size histogram's sum exceeds its count.
        let text = app.metrics_text().await;
        let figure = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let (sum, count) = (
            figure("depot_stock_group_size_sum"),
            figure("depot_stock_group_size_count"),
        );
        assert!(
            count > 0.0 && sum > count,
            "groups formed: sum {sum}, count {count}\n{text}"
        );
    }
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_concurrent_adjustments_with_grouping_are_serialisable() {
    hammer(64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_concurrent_adjustments_without_grouping_are_serialisable() {
    hammer(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_api_processes_on_one_database_never_oversell_one_product() {
    let app = spawn_app_with(|_| {}).await;
    if !app.db.is_postgres() {
        // Several API processes share a PostgreSQL database; SQLite is the one-process mode.
        depot_testkit::skip(
            "two API processes on one database",
            "postgres",
            "DEPOT_TEST_DATABASE_URL",
        );
        app.stop().await;
        return;
    }
    let peer = app.spawn_peer().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let hot = desk.product("HOT", "pcs", json!({})).await;
    desk.add(hot, here, json!(300), json!({})).await;
    let body =
        json!({ "product_id": hot, "location_id": here, "quantity": -1, "reason": "damaged" });
    let token = desk.user.access_token.clone();
    let calls = (0..400).map(|i| {
        let (body, token) = (body.clone(), token.clone());
        let (app, peer) = (&app, &peer);
        async move {
            let response = if i % 2 == 0 {
                app.call(
                    "POST",
                    "/api/v1/stock/adjustments",
                    Some(&token),
                    Some(&body),
                )
                .await
            } else {
                peer.call(
                    "POST",
                    "/api/v1/stock/adjustments",
                    Some(&token),
                    Some(&body),
                )
                .await
            };
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    });
    let answers: Vec<(u16, Value)> = futures::stream::iter(calls)
        .buffer_unordered(64)
        .collect()
        .await;
    let sold = answers.iter().filter(|(s, _)| *s == 201).count();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "only refusals for want of stock: {body}");
        assert_eq!(body["code"], "stock.insufficient");
    }
    assert_eq!(sold, 300, "exactly what there was");
    assert_eq!(desk.on_hand(hot, here).await, json!(0));
    assert_verified(&app).await;
    peer.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_idempotency_key_inside_a_group_takes_effect_once() {
    let app = spawn_app_with(|_| {}).await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let hot = desk.product("HOT", "pcs", json!({})).await;
    desk.add(hot, here, json!(100), json!({})).await;
    // Keep the key busy with other removals so the keyed ones queue into groups.
    let body =
        json!({ "product_id": hot, "location_id": here, "quantity": -1, "reason": "damaged" });
    let calls = (0..60).map(|i| {
        let mut request = app
            .client
            .post(app.url("/api/v1/stock/adjustments"))
            .bearer_auth(&desk.user.access_token)
            .json(&body);
        if i % 3 == 0 {
            request = request.header("Idempotency-Key", "pallet-17");
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (i % 3 == 0, status, response.json::<Value>().await.unwrap())
        }
    });
    let answers: Vec<(bool, u16, Value)> = futures::stream::iter(calls)
        .buffer_unordered(60)
        .collect()
        .await;
    let keyed: Vec<&(bool, u16, Value)> = answers.iter().filter(|a| a.0).collect();
    assert!(
        keyed.iter().all(|a| a.1 == 201 && a.2 == keyed[0].2),
        "one answer for the key"
    );
    // 40 unkeyed removals and one for the key.
    assert_eq!(desk.on_hand(hot, here).await, json!(59));
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_on_different_keys_grouped_in_one_lane_each_get_their_own_answer() {
    // One lane: every concurrent adjustment queues into the next unit of work, whatever its key.
    let app = spawn_app_with(|s| s.stock_group_lanes = 1).await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let there = desk.location("WH2").await;
    let stocked = desk.product("LANE-A", "pcs", json!({})).await;
    let empty = desk.product("LANE-B", "pcs", json!({})).await;
    desk.add(stocked, here, json!(100), json!({})).await;
    let missing = Uuid::now_v7();
    // (product, location, quantity, expected status, expected code)
    type Step = (Uuid, Uuid, i64, u16, &'static str);
    let plan: Vec<Step> = (0..80)
        .map(|i| match i % 5 {
            0 => (stocked, here, -1, 201, ""),
            1 => (stocked, there, 2, 201, ""),
            2 => (empty, here, -1, 409, "stock.insufficient"),
            3 => (missing, here, -1, 404, "products.not_found"),
            _ => (empty, there, 1, 201, ""),
        })
        .collect();
    let answers: Vec<(Step, (u16, Value))> = futures::stream::iter(plan)
        .map(|step| {
            let desk = &desk;
            async move {
                let reason = if step.2 > 0 { "found" } else { "damaged" };
                let answer = desk
                    .adjust(step.0, step.1, json!(step.2), json!({ "reason": reason }))
                    .await;
                (step, answer)
            }
        })
        .buffer_unordered(80)
        .collect()
        .await;
    for ((product, location, quantity, status, code), (got, body)) in &answers {
        assert_eq!(got, status, "{quantity} of {product} at {location}: {body}");
        if *got == 201 {
            assert_eq!(body["level"]["product_id"], json!(product), "{body}");
            assert_eq!(body["level"]["location_id"], json!(location), "{body}");
        } else {
            assert_eq!(body["code"], *code, "{body}");
        }
    }
    assert_eq!(desk.on_hand(stocked, here).await, json!(84));
    assert_eq!(desk.on_hand(stocked, there).await, json!(32));
    assert_eq!(desk.on_hand(empty, there).await, json!(16));
    assert_verified(&app).await;
    app.stop().await;
}
