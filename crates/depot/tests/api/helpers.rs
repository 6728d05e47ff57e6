//! `spawn_app()`: boots the application in-process on a random port with a fresh database.

use std::net::SocketAddr;

use depot::{Application, Role, ShutdownHandle};
use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_testkit::TestDatabase;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub context: depot_app::AppContext,
    shutdown: ShutdownHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Settings for a test instance on `db`: random ports, debug routes, real Redis/RabbitMQ when
/// the environment names them.
pub fn test_settings(db: &TestDatabase) -> Settings {
    Settings {
        data_dir: db.dir().join("data"),
        database_url: Some(ServiceUrl::new(db.url())),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        debug_routes: true,
        jwt_secret: Some(Secret::new("test-jwt-secret-0123456789-abcdefghijklmnop")),
        app_secret: Some(Secret::new("test-app-secret-9876543210-zyxwvutsrqponmlk")),
        redis_url: depot_testkit::redis_url().map(ServiceUrl::new),
        amqp_url: depot_testkit::amqp_url().map(ServiceUrl::new),
        shutdown_deadline_secs: 5,
        // Each app gets its own RabbitMQ exchange and queues.
        namespace: format!("depot-test-{}", uuid::Uuid::now_v7().simple()),
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    depot_testkit::announce_backends();
    let db = TestDatabase::fresh().await;
    let mut settings = test_settings(&db);
    customize(&mut settings);
    settings.validate().expect("test settings are valid");
    let app = Application::start(settings, Role::All)
        .await
        .expect("application starts");
    let addr = app.api_addr().expect("api listener");
    let metrics_addr = app.metrics_addr();
    let context = app.context().clone();
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        metrics_addr,
        client: client(),
        db,
        context,
        shutdown,
        task,
    }
}

/// An HTTP client for tests (installs the process's TLS provider first).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// GET, asserting the status, returning the JSON body.
    pub async fn get_json(&self, path: &str, status: u16) -> serde_json::Value {
        let response = self.get(path).await;
        assert_eq!(response.status().as_u16(), status, "GET {path}");
        response.json().await.expect("JSON body")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// The Prometheus text from the metrics listener.
    pub async fn metrics_text(&self) -> String {
        let addr = self.metrics_addr.expect("metrics listener");
        let response = self
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("scrape");
        response.text().await.expect("metrics text")
    }

    pub async fn stop(self) {
        self.shutdown.shutdown();
        self.task.await.expect("app task").expect("clean shutdown");
    }
}

/// Asserts the error envelope: category, code, and a request id equal to the header.
pub async fn assert_envelope(
    response: reqwest::Response,
    status: u16,
    error: &str,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let header_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id header");
    let body: serde_json::Value = response.json().await.expect("JSON envelope");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["details"].is_object(), "{body}");
    assert_eq!(body["request_id"], header_id.as_str(), "{body}");
    body
}
