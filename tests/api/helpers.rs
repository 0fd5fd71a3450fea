//! `spawn_app`: the real router on a random port, over a fresh database of either backend.

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response};
use roster::api::{AppState, auth};
use roster::store::{self, Store, TokenGrant};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub plan_id: String,
    pub token: String,
    /// Wakes dispatchers started with [`TestApp::start_dispatcher`] when a batch is created.
    pub wake: Arc<tokio::sync::Notify>,
    pub database_url: String,
    dir: tempfile::TempDir,
}

/// A dispatcher running beside a test app; stopped (its claims released) by [`Running::stop`].
pub struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("dispatcher task");
    }
}

/// A loopback port free at the moment of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Waits (30 s at most) until a `roster serve` at `base` answers `/readyz` with 200.
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{base} did not become ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Settings for tests: quick polls, short leases and retries.
pub fn quick_dispatch() -> roster::send::dispatcher::DispatchConfig {
    roster::send::dispatcher::DispatchConfig {
        chunk_size: 7,
        lease: std::time::Duration::from_secs(2),
        workers: 2,
        poll: std::time::Duration::from_millis(50),
        initial_backoff: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_millis(200),
        max_attempts: 6,
    }
}

/// A database URL for `backend`, or `None` when PostgreSQL is unavailable and not required
/// (the skip is announced on stderr).
pub async fn database_url(backend: Backend, dir: &tempfile::TempDir) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}/roster.db", dir.path().display())),
        Backend::Postgres => match postgres::fresh_database().await {
            Ok(url) => Some(url),
            Err(reason) if postgres::required() => {
                panic!(
                    "PostgreSQL is required (ROSTER_REQUIRE_POSTGRES=1) but unavailable: {reason}"
                )
            }
            Err(reason) => {
                eprintln!("\n*** SKIPPED PostgreSQL test: {reason} ***\n");
                None
            }
        },
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, 0).await
}

/// `spawn_app` with a per-token rate limit (requests per second; 0 for none).
pub async fn spawn_app_with(backend: Backend, rate_limit: u32) -> Option<TestApp> {
    spawn_app_with_options(backend, rate_limit, store::StoreOptions::default()).await
}

/// `spawn_app` with a rate limit and the store's options.
pub async fn spawn_app_with_options(
    backend: Backend,
    rate_limit: u32,
    options: store::StoreOptions,
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database_url = database_url(backend, &dir).await?;
    let mut test_app = serve(database_url, dir, rate_limit, options).await;
    let (plan_id, token) = test_app.create_plan(Some("US")).await;
    test_app.plan_id = plan_id;
    test_app.token = token;
    Some(test_app)
}

/// The real router over the database at `database_url` (migrated on connecting, as `roster
/// serve` does), without a plan: `plan_id` and `token` are left empty for the caller.
pub async fn serve(
    database_url: String,
    dir: tempfile::TempDir,
    rate_limit: u32,
    options: store::StoreOptions,
) -> TestApp {
    let store = store::connect_with(&database_url, options)
        .await
        .expect("connect to the test database");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    // Test receivers of webhooks listen on 127.0.0.1, which `roster serve` refuses by default.
    let state = AppState::new(store.clone(), rate_limit).with_private_webhooks(true);
    let wake = state.wake.clone();
    let app = roster::app(state);
    // Served as `roster serve` serves, so that requests carry the client's address.
    tokio::spawn(roster::api::serve_router(
        listener,
        app,
        roster::api::Timeouts::default(),
        None,
        std::future::pending(),
    ));
    TestApp {
        address,
        client: reqwest::Client::new(),
        store,
        plan_id: String::new(),
        token: String::new(),
        wake,
        database_url,
        dir,
    }
}

impl TestApp {
    /// A directory that lives as long as the app.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts a dispatcher over the app's database.
    pub fn start_dispatcher(
        &self,
        sender: Arc<dyn roster::send::Sender>,
        config: roster::send::dispatcher::DispatchConfig,
    ) -> Running {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let dispatcher = roster::send::dispatcher::Dispatcher::new(
            self.store.clone(),
            sender,
            config,
            self.wake.clone(),
        );
        Running {
            stop,
            task: tokio::spawn(dispatcher.run(stopped)),
        }
    }

    /// A new plan with a token: `(service_plan_id, api_token)`.
    pub async fn create_plan(&self, default_region: Option<&str>) -> (String, String) {
        let plan = self
            .store
            .create_plan("Test plan", default_region, &roster::store::Actor::cli())
            .await
            .expect("create a plan");
        let token = auth::generate_token();
        self.store
            .add_token(
                &plan.id,
                &roster::store::Actor::cli(),
                &auth::hash_token(&token),
                &TokenGrant::full(),
            )
            .await
            .expect("add a token");
        (plan.id.to_string(), token)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    /// The body of a GET asking for `accept` (CSV, NDJSON), as text.
    pub async fn get_text(&self, path: &str, accept: &str) -> String {
        let response = self
            .request(Method::GET, path)
            .header("Accept", accept)
            .send()
            .await
            .expect("GET");
        response.text().await.expect("body")
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("DELETE")
    }

    /// Creates a group on the native API and returns its JSON.
    pub async fn create_group(&self, body: Value) -> Value {
        let response = self
            .send_json(Method::POST, "/api/contactgroups", &body)
            .await;
        assert_eq!(response.status(), 201, "create group {body}");
        response.json().await.expect("group JSON")
    }

    /// The path of the Sinch-compatible groups collection for this app's plan.
    pub fn sinch_groups(&self) -> String {
        format!("/xms/v1/{}/groups", self.plan_id)
    }

    /// Every number of a group, through the streamed JSON-lines route.
    pub async fn member_numbers(&self, group_id: &str) -> Vec<String> {
        let response = self
            .request(
                Method::GET,
                &format!("/api/contactgroups/{group_id}/members"),
            )
            .header("Accept", "application/x-ndjson")
            .send()
            .await
            .expect("members");
        assert_eq!(response.status(), 200);
        let text = response.text().await.expect("body");
        let mut numbers: Vec<String> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON string per line"))
            .collect();
        numbers.sort();
        numbers
    }
}

/// Runs each named `async fn(TestApp)` against SQLite and PostgreSQL, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{spawn_app, Backend};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = spawn_app(Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = spawn_app(Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}
