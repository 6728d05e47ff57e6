//! Tracing across HTTP and messages: an API process and a worker export their spans over
//! OTLP/HTTP to a collector inside the test. One request that emits an event yields one trace
//! from the request through the outbox relay to the consumer, across the two processes; and the
//! log line of a failing request names its trace and its request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use uuid::Uuid;

use crate::messaging::eventually;
use crate::process::Server;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP (protobuf) trace collector on an ephemeral port.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let store = store.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut store = store.lock().unwrap();
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|a| a.key == "service.name")
                            .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                            .unwrap_or_default();
                        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                            store.push(Received {
                                service: service.clone(),
                                name: span.name,
                                trace_id: hex::encode(span.trace_id),
                                span_id: hex::encode(span.span_id),
                                parent_span_id: hex::encode(span.parent_span_id),
                                attributes: span
                                    .attributes
                                    .iter()
                                    .map(|a| {
                                        (
                                            a.key.clone(),
                                            text(a.value.as_ref().and_then(|v| v.value.as_ref())),
                                        )
                                    })
                                    .collect(),
                            });
                        }
                    }
                    // An empty ExportTraceServiceResponse: everything accepted.
                    Vec::<u8>::new()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, spans }
    }

    fn trace(&self, trace_id: &str) -> Vec<Received> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// A fresh W3C trace id and a caller's span id, as a sampled `traceparent`.
fn caller_trace() -> (String, String) {
    let trace_id = Uuid::new_v4().simple().to_string();
    let caller_span = Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    (trace_id, traceparent)
}

#[tokio::test]
async fn one_request_is_one_trace_from_http_through_the_relay_to_the_consumer() {
    let collector = Collector::start().await;
    let db = depot_testkit::TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let namespace = format!("depot-test-{}", Uuid::now_v7().simple());
    let amqp = depot_testkit::amqp_url();
    let mut env = vec![
        ("DATABASE_URL", db.url()),
        ("DEPOT_DEBUG_ROUTES", "true"),
        ("DEPOT_NAMESPACE", namespace.as_str()),
        ("DEPOT_OTLP_ENDPOINT", collector.url.as_str()),
        // New traces are never sampled here: what is recorded follows the caller's decision.
        ("DEPOT_OTLP_SAMPLE_RATIO", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    if let Some(url) = amqp.as_deref() {
        env.push(("AMQP_URL", url));
    }
    let api = Server::start(&dir, &env, &["api"]);
    let _worker = Server::start_worker(&dir, &env);
    let client = crate::helpers::client();

    let (trace_id, traceparent) = caller_trace();
    let caller_span = &traceparent[36..52];
    let response = client
        .post(api.url("/api/v1/_debug/pings"))
        .header("traceparent", &traceparent)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    eventually(
        Duration::from_secs(30),
        "the consumer's span reaches the collector",
        || async {
            collector
                .trace(&trace_id)
                .iter()
                .any(|s| s.name == "debug.ping process")
        },
    )
    .await;
    let spans = collector.trace(&trace_id);
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
    };

    // The request's span continues the caller's, named after the route template.
    let http = named("POST /api/v1/_debug/pings");
    assert_eq!(http.service, "depot-api");
    assert_eq!(http.parent_span_id, caller_span);
    assert_eq!(http.attributes["http.route"], "/api/v1/_debug/pings");
    assert_eq!(http.attributes["http.response.status_code"], "202");
    // Its unit of work's transaction is inside it.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "db.transaction" && s.parent_span_id == http.span_id),
        "{spans:#?}"
    );
    // The relay's publication continues the request's trace…
    let publish = named("debug.ping publish");
    assert_eq!(publish.parent_span_id, http.span_id);
    // …and the consumer, in the worker, continues the publication.
    let consume = named("debug.ping process");
    assert_eq!(consume.service, "depot-worker");
    assert_eq!(consume.parent_span_id, publish.span_id);
    assert_eq!(consume.attributes["queue"], "debug");

    // A request nobody traced before is not recorded at ratio 0 (its own decision).
    let untraced = client
        .post(api.url("/api/v1/_debug/pings"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(untraced.status(), 202);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let services: Vec<String> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id != trace_id)
        .map(|s| format!("{} {}", s.service, s.name))
        .collect();
    assert!(
        services.is_empty(),
        "unsampled work was exported: {services:?}"
    );
}

#[tokio::test]
async fn the_log_line_of_a_failing_request_names_its_trace_and_its_request() {
    let collector = Collector::start().await;
    let db = depot_testkit::TestDatabase::fresh().await;
    let dir = db.dir().to_path_buf();
    let env = [
        ("DATABASE_URL", db.url()),
        ("DEPOT_DEBUG_ROUTES", "true"),
        ("DEPOT_OTLP_ENDPOINT", collector.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let api = Server::start(&dir, &env, &["api"]);
    let client = crate::helpers::client();

    let (trace_id, traceparent) = caller_trace();
    let request_id = format!("req-{}", Uuid::now_v7().simple());
    let response = client
        .get(api.url("/api/v1/_debug/error"))
        .header("traceparent", &traceparent)
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);

    let mut logs = Vec::new();
    eventually(Duration::from_secs(10), "the failure is logged", || {
        logs.extend(api.json_logs());
        let found = logs.iter().any(|l| l["message"] == "request failed");
        async move { found }
    })
    .await;
    let failed = logs
        .iter()
        .find(|l| l["message"] == "request failed")
        .unwrap();
    assert_eq!(failed["request_id"], request_id.as_str(), "{failed}");
    assert_eq!(failed["trace_id"], trace_id.as_str(), "{failed}");
    assert!(
        failed["span_id"].as_str().is_some_and(|s| s.len() == 16),
        "{failed}"
    );
    assert_eq!(failed["level"], "ERROR", "{failed}");

    // The access log line of the same request says the same; and the span is marked failed.
    let served = logs
        .iter()
        .find(|l| l["message"] == "request served" && l["request_id"] == request_id.as_str());
    let served = served.unwrap_or_else(|| panic!("no access log line: {logs:?}"));
    assert_eq!(served["trace_id"], trace_id.as_str());
    assert_eq!(served["status"], 500);

    // A request without a trace of its own still gets one (ratio 1 by default), in its lines.
    let other = client
        .get(api.url("/api/v1/_debug/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let other_id = other.headers()["x-request-id"].to_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "the 404 is logged", || {
        logs.extend(api.json_logs());
        let line = logs
            .iter()
            .find(|l| l["message"] == "request served" && l["request_id"] == other_id.as_str());
        let ok = line.is_some_and(|l| {
            l["trace_id"]
                .as_str()
                .is_some_and(|t| t.len() == 32 && t != trace_id)
        });
        async move { ok }
    })
    .await;

    eventually(
        Duration::from_secs(10),
        "the failed span is exported",
        || async {
            collector
                .trace(&trace_id)
                .iter()
                .any(|s| s.name == "GET /api/v1/_debug/error")
        },
    )
    .await;
}
