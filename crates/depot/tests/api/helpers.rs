//! `spawn_app()`: boots the application in-process on a random port with a fresh database.

use std::net::SocketAddr;

use depot::{Application, Role, ShutdownHandle};
use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_testkit::TestDatabase;
use tokio::task::JoinHandle;

/// Who acts when a test sets up data through a service rather than the API.
pub const SETUP: depot_domain::Actor = depot_domain::Actor::System("test-setup");

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    /// The test's own connection to the app's database, to check what was stored.
    pub store: depot_store::Db,
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
    running(db, app)
}

/// As [`spawn_app`], on a context built with `clock` and then adjusted by `customize`. Serves
/// the API without workers, so that time-driven jobs run only when the test calls them.
pub async fn spawn_app_on(
    clock: std::sync::Arc<dyn depot_domain::Clock>,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    depot_testkit::announce_backends();
    let db = TestDatabase::fresh().await;
    let mut settings = test_settings(&db);
    customize(&mut settings);
    settings.validate().expect("test settings are valid");
    let context = depot::wiring::build_context_with(settings, clock, Vec::new())
        .await
        .expect("context builds");
    let app = Application::start_with(context, Role::Api)
        .await
        .expect("application starts");
    running(db, app)
}

fn running(db: TestDatabase, app: Application) -> TestApp {
    let addr = app.api_addr().expect("api listener");
    let metrics_addr = app.metrics_addr();
    let context = app.context().clone();
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        metrics_addr,
        client: client(),
        store: depot_store::Db::connect_lazy(&depot_store::DbOptions::new(db.url()))
            .expect("test connection"),
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

/// The first column of the first row of `sql` (a count), read from `db`.
pub async fn scalar_at(db: &depot_store::Db, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let conn = db.reader();
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .expect("a row");
    row.try_get_by_index::<i64>(0).unwrap()
}

impl TestApp {
    /// The first column of the first row of `sql` (a count), read from the app's database.
    pub async fn scalar(&self, sql: &str) -> i64 {
        scalar_at(&self.store, sql).await
    }

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

    /// Runs the registered periodic job `name` once, here and now; returns what it reports.
    pub async fn run_job(&self, name: &str) -> u64 {
        let job = self
            .context
            .background()
            .jobs()
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("no periodic job {name}"));
        job.run().await.expect("job runs")
    }

    pub async fn stop(self) {
        self.shutdown.shutdown();
        self.task.await.expect("app task").expect("clean shutdown");
        // The test's RabbitMQ queues go with it, so runs do not pile up hundreds of them (a
        // test that made the broker unreachable leaves them to the run's virtual host).
        let _ = self.context.broker().remove_topology().await;
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

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: uuid::Uuid,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    pub session_id: String,
}

pub const PASSWORD: &str = "a long and unguessable passphrase 42";

impl TestApp {
    /// Creates an active user with `roles` and the test password (through the service: setup,
    /// not the behaviour under test).
    pub async fn create_user(&self, email: &str, roles: &[&str]) -> uuid::Uuid {
        self.context
            .users()
            .create(
                SETUP,
                depot_app::users::NewUser {
                    email: email.into(),
                    display_name: email.split('@').next().unwrap().into(),
                    phone: None,
                    password: Some(PASSWORD.into()),
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                },
                &depot_app::ClientInfo::default(),
            )
            .await
            .expect("user created")
            .id
    }

    /// Creates a role holding exactly `permissions` (no MFA requirement).
    pub async fn create_role(&self, name: &str, permissions: &[&str]) -> uuid::Uuid {
        self.context
            .roles()
            .create(
                SETUP,
                name.into(),
                format!("test role {name}"),
                permissions.iter().map(|p| (*p).to_owned()).collect(),
                false,
                &depot_app::ClientInfo::default(),
            )
            .await
            .expect("role created")
            .id
    }

    /// Posts a sign-in through the API, whatever its outcome.
    pub async fn try_login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &serde_json::json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Signs in through the API, asserting success.
    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let response = self.try_login(email, password).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 200, "login of {email}: {body}");
        body
    }

    /// A new user holding `roles`, signed in.
    pub async fn sign_in(&self, email: &str, roles: &[&str]) -> Session {
        let user_id = self.create_user(email, roles).await;
        let body = self.login(email, PASSWORD).await;
        Session {
            user_id,
            email: email.into(),
            password: PASSWORD.into(),
            access_token: body["access_token"].as_str().unwrap().into(),
            refresh_token: body["refresh_token"].as_str().unwrap().into(),
            session_id: body["session_id"].as_str().unwrap().into(),
        }
    }

    /// A signed-in user holding exactly `permissions` (through a role made for them).
    pub async fn sign_in_with(&self, email: &str, permissions: &[&str]) -> Session {
        let role = format!("r-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        self.create_role(&role, permissions).await;
        self.sign_in(email, &[&role]).await
    }

    /// Starts a second instance of this application (same database, Redis and namespace).
    pub async fn spawn_peer(&self) -> Peer {
        self.spawn_peer_with(|_| {}).await
    }

    /// A second instance over the same database, with `customize` applied to this one's
    /// settings (a restart with a changed configuration).
    pub async fn spawn_peer_with(&self, customize: impl FnOnce(&mut Settings)) -> Peer {
        self.spawn_instance(Role::Api, customize).await
    }

    /// Another instance over the same database in `role` (`Role::All` runs a relay and
    /// consumers of its own), with `customize` applied to this one's settings.
    pub async fn spawn_instance(&self, role: Role, customize: impl FnOnce(&mut Settings)) -> Peer {
        let mut settings = self.context.settings().clone();
        customize(&mut settings);
        let app = Application::start(settings, role)
            .await
            .expect("peer starts");
        let addr = app.api_addr().expect("api listener");
        let context = app.context().clone();
        let shutdown = app.shutdown_handle();
        let task = tokio::spawn(app.run_until_stopped());
        Peer {
            addr,
            client: client(),
            context,
            shutdown,
            task,
        }
    }
}

/// Another instance of the same deployment.
pub struct Peer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub context: depot_app::AppContext,
    shutdown: ShutdownHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Peer {
    pub async fn stop(self) {
        self.shutdown.shutdown();
        self.task.await.expect("peer task").expect("clean shutdown");
    }
}

/// Requests to one running instance (the test app or a peer of it).
pub trait Http {
    fn endpoint(&self) -> (&reqwest::Client, SocketAddr);

    /// Any request, with an optional bearer token and JSON body.
    #[allow(async_fn_in_trait)]
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> reqwest::Response {
        let (client, addr) = self.endpoint();
        send(client, &format!("http://{addr}{path}"), method, token, body).await
    }
}

impl Http for TestApp {
    fn endpoint(&self) -> (&reqwest::Client, SocketAddr) {
        (&self.client, self.addr)
    }
}

impl Http for Peer {
    fn endpoint(&self) -> (&reqwest::Client, SocketAddr) {
        (&self.client, self.addr)
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> reqwest::Response {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

/// Waits until every context follows the cache sync channel (immediately true without Redis).
pub async fn wait_in_sync(contexts: &[&depot_app::AppContext]) {
    for _ in 0..100 {
        if contexts.iter().all(|c| c.cache_in_sync()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("instances did not get in sync with the cache sync channel");
}
