//! The Prometheus recorder and the `/metrics` endpoint.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use depot_app::health::HealthService;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) of `http_request_duration_seconds`.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle (later calls reuse it, so
/// several app instances in one test process share it).
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            metrics::gauge!("depot_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

#[derive(Clone)]
struct MetricsState {
    handle: PrometheusHandle,
    health: HealthService,
}

/// A router serving `GET /metrics` in the Prometheus text format.
pub fn router(health: HealthService) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(MetricsState {
            handle: recorder(),
            health,
        })
}

async fn render(State(state): State<MetricsState>) -> impl IntoResponse {
    for pool in state.health.pool_stats() {
        let idle = f64::from(pool.idle);
        let size = f64::from(pool.size);
        metrics::gauge!("db_pool_connections", "pool" => pool.name, "state" => "idle").set(idle);
        metrics::gauge!("db_pool_connections", "pool" => pool.name, "state" => "in_use")
            .set((size - idle).max(0.0));
        metrics::gauge!("db_pool_max_connections", "pool" => pool.name).set(f64::from(pool.max));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
}
