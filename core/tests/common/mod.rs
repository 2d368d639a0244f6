//! Test harness: a real xcore server on `127.0.0.1:0` over a fresh database.
//!
//! The database is a new SQLite file in a temp dir, or, when
//! `XCORE_TEST_DATABASE_URL` points at a PostgreSQL server, a new database
//! created on that server for this test and dropped afterwards. Every test
//! therefore starts from an empty schema, on either backend.
//!
//! Writing a test:
//!
//! ```ignore
//! let server = TestServer::start().await;
//! let admin = server.admin_token().await;
//! let role = server
//!     .as_(&admin)
//!     .post("/admin/roles")
//!     .json(json!({"name": "manager"}))
//!     .expect(StatusCode::CREATED)
//!     .await; // the JSON body
//! server
//!     .anonymous()
//!     .get("/admin/roles")
//!     .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
//!     .await;
//! let response = server.as_(&admin).get("/health").send().await; // headers
//! server.stop().await;
//! ```
//!
//! The most common requests have shortcuts asserting the usual status:
//! `server.get_as(&admin, path)` (200), `post_as` (an action, 200),
//! `create_as` (201), `put_as` (200), `delete_as` (204), `public_get`
//! (anonymous, 200).
//!
//! [`ws`] connects WebSocket clients and waits for their events;
//! [`next_bus_event`] waits on the in-process event bus.

#![allow(dead_code, missing_docs)]

use std::{net::SocketAddr, time::Duration};

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio::{sync::oneshot, task::JoinHandle};
use xcore::{config::Profile, AppState, Config};

pub const ADMIN_EMAIL: &str = "admin@xcore.test";
pub const ADMIN_PASSWORD: &str = "AdminPassw0rd!";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// A database for one test.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_on_exit: Option<(String, String)>,
}

impl TestDatabase {
    /// A database at `url` that the test owns and cleans up itself.
    pub fn at(url: String) -> Self {
        Self {
            url,
            _dir: None,
            drop_on_exit: None,
        }
    }

    pub async fn new() -> Self {
        match std::env::var("XCORE_TEST_DATABASE_URL") {
            Ok(admin_url) if admin_url.starts_with("postgres") => {
                let name = format!("xcore_t_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(&admin_url)
                    .await
                    .expect("connect to XCORE_TEST_DATABASE_URL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .expect("create test database");
                admin.close().await;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(base, _)| base);
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    drop_on_exit: Some((admin_url.clone(), name)),
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/xcore.db", dir.path().display());
                Self {
                    url,
                    _dir: Some(dir),
                    drop_on_exit: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.drop_on_exit.take() {
            // Drop runs outside async context; a scratch runtime on its own
            // thread does the cleanup. Best effort: CI's cluster is throwaway.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime
                    .block_on(async {
                        let admin = sqlx::PgPool::connect(&admin_url).await?;
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&admin)
                            .await?;
                        // The plugins' roles are the cluster's, not the
                        // database's: drop this database's too.
                        let prefix =
                            xcore::plugins::confinement::postgres_roles::role_prefix(&name);
                        let roles: Vec<String> = sqlx::query_scalar(
                            "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)",
                        )
                        .bind(&prefix)
                        .fetch_all(&admin)
                        .await?;
                        for role in roles {
                            sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
                                .execute(&admin)
                                .await?;
                        }
                        admin.close().await;
                        Ok::<_, sqlx::Error>(())
                    })
                    .map_err(std::io::Error::other)
            })
            .join();
        }
    }
}

/// The configuration tests start from: development profile, a fixed
/// secret, cheap-but-real argon2id, no rate limits, a bootstrap admin.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config {
        profile: Profile::Development,
        ..Config::default()
    };
    config.server.bind = "127.0.0.1:0".parse().expect("addr");
    config.server.shutdown_timeout_secs = 5;
    // Nothing sends during a test's stop(); a short linger keeps the many
    // stops (each with the client pool's idle connections) quick.
    config.server.shutdown_linger_ms = 100;
    config.database.url = database_url.to_string();
    config.database.max_connections = 5;
    config.auth.jwt_secret = JWT_SECRET.into();
    config.auth.argon2.memory_kib = 4096;
    config.auth.argon2.iterations = 1;
    config.rate_limits.enabled = false;
    // Every health request sees the database as it is now (concurrent ones
    // still share one probe); the reuse time has a test of its own.
    config.health.probe_reuse_ms = 0;
    // The authentication cache polls the database only when a test asks
    // (`state.auth.poll()`): a change then reaches the next request only if
    // the request that made it applied it, which is what the invalidation
    // tests check (a background poll could hide a missing invalidation).
    config.auth.cache.poll_interval_ms = 3_600_000;
    // Tests that want the watcher turn it on with their own directory.
    config.plugins.watch = false;
    // The real binary loads every new library first, as in production.
    config.plugins.checker = env!("CARGO_BIN_EXE_xcore").into();
    // Tests run from core/; the pages need the repository's static/.
    config.web.static_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../static")
        .display()
        .to_string();
    config.admin.email = ADMIN_EMAIL.into();
    config.admin.password = ADMIN_PASSWORD.into();
    config.log.filter = std::env::var("XCORE_TEST_LOG").unwrap_or_else(|_| "warn".into());
    config
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub state: AppState,
    pub db: TestDatabase,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server with the test config.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` edits the test config.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDatabase::new().await;
        Self::start_on(db, adjust).await
    }

    /// Starts a server on an existing database (restart tests).
    pub async fn start_on(db: TestDatabase, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(&db.url);
        adjust(&mut config);
        config.validate().expect("valid test config");
        // Shown by the test runner for failing tests only.
        xcore::observability::logging::init(&config.log);
        let state = AppState::build(config).await.expect("state builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(xcore::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            addr,
            client,
            state,
            db,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Signals shutdown and waits for the server to stop; returns the
    /// database so a test can start again on it.
    pub async fn stop(mut self) -> TestDatabase {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
        std::mem::replace(
            &mut self.db,
            TestDatabase {
                url: String::new(),
                _dir: None,
                drop_on_exit: None,
            },
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Registers an account; returns the response body.
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let response = self
            .post("/auth/register")
            .json(&json!({"email": email, "password": password, "full_name": "Test User"}))
            .send()
            .await
            .expect("register");
        expect_status(response, StatusCode::CREATED).await
    }

    /// Logs in with JSON; returns the token body.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .post("/auth/login")
            .json(&json!({"username": email, "password": password}))
            .send()
            .await
            .expect("login");
        expect_status(response, StatusCode::OK).await
    }

    /// The `/metrics` page.
    pub async fn metrics_text(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text")
    }

    /// Requests sent with `token` as the bearer: the way to call the API.
    pub fn as_(&self, token: &str) -> Caller<'_> {
        Caller {
            server: self,
            token: Some(token.to_string()),
        }
    }

    /// Requests sent without a token.
    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            server: self,
            token: None,
        }
    }

    /// An access token for the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        access_token(&self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await)
    }

    /// Takes the built-in `user` role from `user_id` (as `admin`): the
    /// account then holds only what other roles give it, none of the reads
    /// plugins grant plain users. Log in again for a token that shows it.
    pub async fn drop_user_role(&self, admin: &str, user_id: i64) {
        let roles = self
            .as_(admin)
            .get("/admin/roles?limit=100")
            .expect(StatusCode::OK)
            .await;
        let role = roles["items"]
            .as_array()
            .expect("roles")
            .iter()
            .find(|role| role["name"] == "user")
            .and_then(|role| role["id"].as_i64())
            .expect("the built-in user role");
        self.as_(admin)
            .delete(&format!("/admin/users/{user_id}/roles/{role}"))
            .expect(StatusCode::NO_CONTENT)
            .await;
    }

    /// Registers an account without the built-in `user` role (see
    /// [`drop_user_role`](Self::drop_user_role)) and returns `(id, access
    /// token)`: a signed-in caller with no permission at all.
    pub async fn roleless_token(&self, admin: &str, email: &str) -> (i64, String) {
        let (id, _) = self.user_token(email).await;
        self.drop_user_role(admin, id).await;
        let tokens = self.login(email, "UserPassw0rd!").await;
        (id, access_token(&tokens))
    }

    /// `GET path` as `token`, asserted 200: the JSON body.
    pub async fn get_as(&self, token: &str, path: &str) -> Value {
        self.as_(token).get(path).expect(StatusCode::OK).await
    }

    /// `POST path` without a body (an action) as `token`, asserted 200:
    /// the JSON body.
    pub async fn post_as(&self, token: &str, path: &str) -> Value {
        self.as_(token).post(path).expect(StatusCode::OK).await
    }

    /// `POST path` with the JSON `body` as `token`, asserted 201: the JSON
    /// body.
    pub async fn create_as(&self, token: &str, path: &str, body: Value) -> Value {
        self.as_(token)
            .post(path)
            .json(body)
            .expect(StatusCode::CREATED)
            .await
    }

    /// `PUT path` with the JSON `body` as `token`, asserted 200: the JSON
    /// body.
    pub async fn put_as(&self, token: &str, path: &str, body: Value) -> Value {
        self.as_(token)
            .put(path)
            .json(body)
            .expect(StatusCode::OK)
            .await
    }

    /// `POST /auth/logout` as `token`, asserted 204.
    pub async fn logout(&self, token: &str) {
        self.as_(token)
            .post("/auth/logout")
            .expect(StatusCode::NO_CONTENT)
            .await;
    }

    /// An anonymous `POST /auth/refresh` with the refresh token of
    /// `tokens`, asserted 200: the new tokens.
    pub async fn refresh(&self, tokens: &Value) -> Value {
        self.anonymous()
            .post("/auth/refresh")
            .json(json!({"refresh_token": tokens["refresh_token"]}))
            .expect(StatusCode::OK)
            .await
    }

    /// `DELETE path` as `token`, asserted 204.
    pub async fn delete_as(&self, token: &str, path: &str) {
        self.as_(token)
            .delete(path)
            .expect(StatusCode::NO_CONTENT)
            .await;
    }

    /// `GET /auth/me` as `token`, asserted 200: the account, its roles and
    /// permissions.
    pub async fn me(&self, token: &str) -> Value {
        self.as_(token).get("/auth/me").expect(StatusCode::OK).await
    }

    /// The id of the account `token` signs in as (`GET /auth/me`, 200).
    pub async fn me_id(&self, token: &str) -> i64 {
        self.me(token).await["id"].as_i64().expect("id")
    }

    /// `POST /system/plugins/{id}/{action}` (`reload`, `disable`,
    /// `enable`) as `token`, asserted 200: the plugin's details.
    pub async fn plugin_action(&self, token: &str, id: &str, action: &str) -> Value {
        self.as_(token)
            .post(&format!("/system/plugins/{id}/{action}"))
            .expect(StatusCode::OK)
            .await
    }

    /// Installs the plugin `name` from the library at `source`
    /// (`POST /system/plugins` as `token`), asserted 201.
    pub async fn install_plugin(&self, token: &str, name: &str, source: &str) -> Value {
        self.as_(token)
            .post("/system/plugins")
            .json(json!({"name": name, "source": source}))
            .expect(StatusCode::CREATED)
            .await
    }

    /// `GET /system/plugins/{id}` as `token`, asserted 200: the plugin's
    /// details (`state`, `generation`, `last_error`...).
    pub async fn plugin_details(&self, token: &str, id: &str) -> Value {
        self.as_(token)
            .get(&format!("/system/plugins/{id}"))
            .expect(StatusCode::OK)
            .await
    }

    /// An anonymous `GET path` asserted 200 (a plugin's public route, such
    /// as `/api/v1/hello/ping`): the JSON body.
    pub async fn public_get(&self, path: &str) -> Value {
        self.anonymous().get(path).expect(StatusCode::OK).await
    }

    /// Asserts that an anonymous `GET path` is a 404 `NOT_FOUND` (a
    /// plugin's route while it is disabled or gone).
    pub async fn assert_not_served(&self, path: &str) {
        self.anonymous()
            .get(path)
            .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
            .await;
    }

    /// The password-reset token in the newest outbox message to `email`
    /// (after a `POST /auth/password/reset` for it).
    pub async fn outbox_reset_token(&self, email: &str) -> String {
        let body: String = sqlx::query_scalar(
            "SELECT body FROM notification_outbox WHERE recipient = $1 ORDER BY id DESC",
        )
        .bind(email)
        .fetch_one(self.state.db.pool())
        .await
        .expect("outbox message");
        body.lines()
            .find_map(|line| line.strip_prefix("Reset token: "))
            .expect("token line")
            .to_string()
    }

    /// The id of the role `name` (`GET /admin/roles?limit=100` as `token`).
    pub async fn role_id(&self, token: &str, name: &str) -> i64 {
        let roles = self
            .as_(token)
            .get("/admin/roles?limit=100")
            .expect(StatusCode::OK)
            .await;
        roles["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|role| role["name"] == name)
            .and_then(|role| role["id"].as_i64())
            .unwrap_or_else(|| panic!("the role {name} exists"))
    }

    /// Creates the role `name` holding `permissions` (as `admin`); its id.
    pub async fn create_role(&self, admin: &str, name: &str, permissions: &[&str]) -> i64 {
        let role = self
            .as_(admin)
            .post("/admin/roles")
            .json(json!({"name": name}))
            .expect(StatusCode::CREATED)
            .await;
        let id = role["id"].as_i64().expect("role id");
        for permission in permissions {
            self.as_(admin)
                .post(&format!("/admin/roles/{id}/permissions/{permission}"))
                .expect(StatusCode::OK)
                .await;
        }
        id
    }

    /// Registers a plain user and returns `(id, access token)`.
    pub async fn user_token(&self, email: &str) -> (i64, String) {
        let account = self.register(email, "UserPassw0rd!").await;
        let tokens = self.login(email, "UserPassw0rd!").await;
        (account["id"].as_i64().expect("id"), access_token(&tokens))
    }
}

/// Who sends: made by [`TestServer::as_`] or [`TestServer::anonymous`];
/// each method starts a [`TestRequest`].
pub struct Caller<'a> {
    server: &'a TestServer,
    token: Option<String>,
}

impl Caller<'_> {
    /// `method path`, for the methods without a shortcut below (or a
    /// method that a table of routes holds).
    pub fn request(&self, method: Method, path: &str) -> TestRequest {
        let builder = self.server.request(method, path);
        TestRequest {
            builder: match &self.token {
                Some(token) => builder.bearer_auth(token),
                None => builder,
            },
        }
    }

    pub fn get(&self, path: &str) -> TestRequest {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> TestRequest {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> TestRequest {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> TestRequest {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> TestRequest {
        self.request(Method::DELETE, path)
    }
}

/// One request: add a body or headers, then finish with
/// [`expect`](Self::expect) (asserts the status, returns the JSON body),
/// [`expect_error`](Self::expect_error) (asserts the standard error body
/// and its code) or [`send`](Self::send) (the raw response).
#[must_use = "a request does nothing until it is sent: finish with .expect(status).await, .expect_error(status, code).await or .send().await"]
pub struct TestRequest {
    builder: RequestBuilder,
}

impl TestRequest {
    /// A JSON body.
    pub fn json(self, body: impl serde::Serialize) -> Self {
        Self {
            builder: self.builder.json(&body),
        }
    }

    /// A JSON body when there is one (tables of cases).
    pub fn json_opt(self, body: Option<Value>) -> Self {
        match body {
            Some(body) => self.json(body),
            None => self,
        }
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        Self {
            builder: self.builder.header(name, value),
        }
    }

    /// Anything else reqwest can add (query, form, timeout...).
    pub fn with(self, edit: impl FnOnce(RequestBuilder) -> RequestBuilder) -> Self {
        Self {
            builder: edit(self.builder),
        }
    }

    /// Sends; the raw response (to read headers, or several times over).
    pub async fn send(self) -> Response {
        self.builder.send().await.expect("send")
    }

    /// Sends and asserts the status; the JSON body, see [`expect_status`].
    pub async fn expect(self, status: StatusCode) -> Value {
        expect_status(self.send().await, status).await
    }

    /// Sends and asserts a standard error body with `code`; the body, see
    /// [`expect_error`].
    pub async fn expect_error(self, status: StatusCode, code: &str) -> Value {
        expect_error(self.send().await, status, code).await
    }
}

/// Sends `method path` with a bearer token and an optional JSON body (the
/// same as `server.as_(token).request(method, path).json_opt(body).send()`).
pub async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    server
        .as_(token)
        .request(method, path)
        .json_opt(body)
        .send()
        .await
}

pub fn access_token(tokens: &Value) -> String {
    tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Asserts the status (printing the body when it differs) and returns the
/// JSON body (`Null` when empty).
pub async fn expect_status(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert!(request_id.is_some(), "every response carries X-Request-Id");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Asserts a standard error body with `code` and returns it.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let body = expect_status(response, status).await;
    let error = &body["error"];
    assert_eq!(error["code"], code, "error code; body: {body}");
    assert!(error["message"].is_string(), "message; body: {body}");
    assert!(error["timestamp"].is_string(), "timestamp; body: {body}");
    assert!(error["request_id"].is_string(), "request_id; body: {body}");
    assert!(error["details"].is_array(), "details; body: {body}");
    body
}

/// Asserts that a standard error body's `error.message` contains `needle`.
pub fn assert_error_mentions(body: &Value, needle: &str) {
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(needle)),
        "the error message should mention {needle:?}; body: {body}"
    );
}

/// Builds the hello plugin with `features` (comma-separated, may be empty)
/// and returns the library's path; see [`plugin_library`].
pub fn hello_variant(features: &str) -> std::path::PathBuf {
    plugin_library("xcore-plugin-hello", "xcore_plugin_hello", features)
}

/// Builds the test fixture plugin (`plugins/testbed`) with `features`:
/// by default it stands in for hello with extra routes; see its Cargo.toml.
pub fn testbed_variant(features: &str) -> std::path::PathBuf {
    plugin_library("xcore-plugin-testbed", "xcore_plugin_testbed", features)
}

/// Builds the plugin crate `package` (whose `[lib] name` is `lib`) with
/// `features` (comma-separated, may be empty) into a target directory of its
/// own per package and variant, so variants never overwrite each other, and
/// returns the library's path. Cargo's lock serialises test processes that
/// ask for the same variant at once.
///
/// ```ignore
/// let products = plugin_library("xcore-plugin-products", "xcore_plugin_products", "");
/// ```
pub fn plugin_library(package: &str, lib: &str, features: &str) -> std::path::PathBuf {
    let workspace = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let variant = if features.is_empty() {
        "default"
    } else {
        features
    };
    // The hello plugin keeps its historical directories (already built in
    // warm target dirs); other plugins get one directory per package.
    let directory = if package == "xcore-plugin-hello" {
        variant.replace(',', "-")
    } else {
        format!("{package}-{}", variant.replace(',', "-"))
    };
    let target = workspace
        .join("target")
        .join("plugin-variants")
        .join(directory);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--quiet", "-p", package, "--target-dir"])
        .arg(&target);
    if !features.is_empty() {
        command.args(["--features", features]);
    }
    let status = command.status().expect("run cargo build");
    assert!(
        status.success(),
        "building the plugin {package} ({variant}) failed"
    );
    target.join("debug").join(format!("lib{lib}.so"))
}

/// Copies a file into `dir` under `name` the way operators deploy: write a
/// temporary file, then rename it into place.
pub fn deploy(source: &std::path::Path, dir: &std::path::Path, name: &str) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::copy(source, &temporary).expect("copy plugin");
    std::fs::rename(&temporary, dir.join(name)).expect("rename plugin");
}

/// The next event on the in-process bus with `topic` (others skipped); its
/// data. Subscribe (`server.state.events.subscribe()`) before the action.
pub async fn next_bus_event(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<xcore::events::Event>>,
    topic: &str,
) -> Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("event in time")
            .expect("event");
        if event.topic == topic {
            return event.data.clone();
        }
    }
}

/// WebSocket clients of `/ws`.
///
/// ```ignore
/// let mut socket = ws::connect(&server, &format!("?token={admin}")).await;
/// ws::next_json(&mut socket, Duration::from_secs(5)).await; // the auth reply
/// ws::send(&mut socket, json!({"type": "subscribe", "topics": ["user.*"]})).await;
/// let event = ws::next_event(&mut socket, "user.created").await;
/// ```
pub mod ws {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use serde_json::Value;
    use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

    use super::TestServer;

    pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

    /// Opens `/ws{query}` (`query` is empty or starts with `?`).
    pub async fn connect(server: &TestServer, query: &str) -> Socket {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws{query}", server.addr))
                .await
                .expect("upgrade");
        socket
    }

    /// Sends one JSON command.
    pub async fn send(socket: &mut Socket, command: Value) {
        socket
            .send(Message::Text(command.to_string().into()))
            .await
            .expect("send");
    }

    /// The next JSON message, skipping pings; `None` on close or silence.
    pub async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(wait, socket.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next event on `topic` (the whole message), skipping others;
    /// panics after 10 s of silence.
    pub async fn next_event(socket: &mut Socket, topic: &str) -> Value {
        loop {
            let message = next_json(socket, Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no {topic} event"));
            if message["type"] == "event" && message["topic"] == topic {
                return message;
            }
        }
    }

    /// Reads until the server closes; the close code.
    pub async fn close_code(socket: &mut Socket) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(15), socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => {}
                _ => return None,
            }
        }
    }
}

/// A plugin's test wrapper: `plugin_app!(Crm)` declares `struct
/// Crm(PluginApp)` dereferencing to its [`PluginApp`], for the test file to
/// add what only its plugin needs.
#[allow(unused_macros)]
macro_rules! plugin_app {
    ($(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        $vis struct $name($crate::common::PluginApp);

        impl std::ops::Deref for $name {
            type Target = $crate::common::PluginApp;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use plugin_app;

/// The `items` array of a list answer.
pub fn items(list: &Value) -> &Vec<Value> {
    list["items"].as_array().expect("items")
}

/// The `field` of each entry in a standard error body's `details`.
pub fn detail_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field").to_string())
        .collect()
}

/// A server serving domain plugins built from this workspace, as an
/// operator deploys them, with the requests every plugin's tests make
/// under one prefix. A plugin's test file wraps it (`struct Crm(PluginApp)`
/// with `Deref`) and adds what only that plugin needs.
///
/// ```ignore
/// let app = PluginApp::start("/api/v1/crm", &["products", "crm"], |_| {}).await;
/// let created = app.post("/customers", json!({"type": "person", "name": "Ada"})).await;
/// let (_, reader) = app.user_with("reader@example.com", &["crm:read"]).await;
/// app.send_as(&reader, Method::DELETE, "/customers/1", None).await;
/// app.conflict(Method::DELETE, "/customers/1", None).await; // 409, its body
/// app.invalid(Method::POST, "/customers", json!({"name": ""})).await; // 422
/// ```
pub struct PluginApp {
    /// The running host.
    pub server: TestServer,
    /// An administrator's access token.
    pub admin: String,
    /// The prefix the request helpers put before their paths.
    pub api: &'static str,
    _plugins: tempfile::TempDir,
}

impl PluginApp {
    /// Builds each plugin `name` (package `xcore-plugin-<name>`), deploys
    /// them into a fresh plugins directory, then starts a server on it
    /// with `adjust` applied to the configuration.
    pub async fn start(
        api: &'static str,
        plugins: &[&str],
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let directory = tempfile::tempdir().expect("plugins dir");
        for name in plugins {
            let lib = format!("xcore_plugin_{name}");
            let library = plugin_library(&format!("xcore-plugin-{name}"), &lib, "");
            deploy(&library, directory.path(), &format!("lib{lib}.so"));
        }
        let dir = directory.path().display().to_string();
        let server = TestServer::start_with(move |config| {
            config.plugins.dir = dir;
            adjust(config);
        })
        .await;
        let admin = server.admin_token().await;
        Self {
            server,
            admin,
            api,
            _plugins: directory,
        }
    }

    /// Stops the server (its shutdown path: drains, closes sockets).
    pub async fn stop(self) {
        self.server.stop().await;
    }

    /// `method api+path` as the holder of `token`.
    pub async fn send_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        self.server
            .as_(token)
            .request(method, &format!("{}{path}", self.api))
            .json_opt(body)
            .send()
            .await
    }

    /// `method api+path` as the administrator.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.send_as(&self.admin, method, path, body).await
    }

    /// As the administrator, expecting `status`; the JSON body.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        expect_status(self.send(method, path, body).await, status).await
    }

    /// `GET`, expecting 200.
    pub async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None, StatusCode::OK).await
    }

    /// `POST`, expecting 201.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(Method::POST, path, Some(body), StatusCode::CREATED)
            .await
    }

    /// `PUT`, expecting 200; the JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Value {
        self.ok(Method::PUT, path, Some(body), StatusCode::OK).await
    }

    /// `POST` of an action (not a creation), expecting 200; the JSON body.
    pub async fn action(&self, path: &str, body: impl Into<Option<Value>>) -> Value {
        self.ok(Method::POST, path, body.into(), StatusCode::OK)
            .await
    }

    /// `DELETE`, expecting 204.
    pub async fn delete(&self, path: &str) {
        self.ok(Method::DELETE, path, None, StatusCode::NO_CONTENT)
            .await;
    }

    /// `DELETE`, expecting 204, then `GET` of the same path, expecting 404
    /// `NOT_FOUND`: gone.
    pub async fn remove(&self, path: &str) {
        self.delete(path).await;
        self.not_found(Method::GET, path).await;
    }

    /// As the administrator, expecting 422 `VALIDATION_ERROR`; the error
    /// body.
    pub async fn invalid(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Option<Value>>,
    ) -> Value {
        self.refused(
            method,
            path,
            body.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await
    }

    /// As the administrator, expecting 409 `CONFLICT`; the error body.
    pub async fn conflict(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Option<Value>>,
    ) -> Value {
        self.refused(method, path, body.into(), StatusCode::CONFLICT, "CONFLICT")
            .await
    }

    /// `PUT`, expecting 409 `CONFLICT` (a refused move); the error body.
    pub async fn put_conflict(&self, path: &str, body: Value) -> Value {
        self.conflict(Method::PUT, path, body).await
    }

    /// As the administrator, without a body, expecting 404 `NOT_FOUND`.
    pub async fn not_found(&self, method: Method, path: &str) {
        self.refused(method, path, None, StatusCode::NOT_FOUND, "NOT_FOUND")
            .await;
    }

    /// As the holder of `token`, expecting 403 `AUTHORIZATION_ERROR`.
    pub async fn forbidden_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: impl Into<Option<Value>>,
    ) {
        expect_error(
            self.send_as(token, method, path, body.into()).await,
            StatusCode::FORBIDDEN,
            "AUTHORIZATION_ERROR",
        )
        .await;
    }

    /// As the administrator, expecting the error `status` and `code`; the
    /// error body.
    pub async fn refused(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
        code: &str,
    ) -> Value {
        expect_error(self.send(method, path, body).await, status, code).await
    }

    /// Schedules the host task `task` (`POST /system/tasks`, 201) as the
    /// administrator.
    pub async fn create_task(&self, task: Value) {
        self.server
            .as_(&self.admin)
            .post("/system/tasks")
            .json(task)
            .expect(StatusCode::CREATED)
            .await;
    }

    /// Runs the host task `id` now (`POST /system/tasks/{id}/run`, 200).
    pub async fn run_task(&self, id: &str) {
        self.server
            .as_(&self.admin)
            .post(&format!("/system/tasks/{id}/run"))
            .expect(StatusCode::OK)
            .await;
    }

    /// A user holding exactly `permissions` (a role of their own, without
    /// the reads plugins grant the built-in `user` role); `(id, token)`.
    pub async fn user_with(&self, email: &str, permissions: &[&str]) -> (i64, String) {
        let (user_id, _) = self.server.user_token(email).await;
        let role_id = self
            .server
            .create_role(&self.admin, &format!("role_{user_id}"), permissions)
            .await;
        self.server
            .as_(&self.admin)
            .post(&format!("/admin/users/{user_id}/roles/{role_id}"))
            .expect(StatusCode::OK)
            .await;
        self.server.drop_user_role(&self.admin, user_id).await;
        let token = access_token(&self.server.login(email, "UserPassw0rd!").await);
        (user_id, token)
    }

    /// The first column of the first row of `sql`, an integer, read
    /// straight from the database.
    pub async fn scalar(&self, sql: &str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_one(self.server.state.db.pool())
            .await
            .expect("query")
            .try_get::<i64, _>(0)
            .expect("an integer")
    }
}

/// A plugin checker for `config.plugins.checker`: a script in `dir` that
/// runs the shell line `before` (it sees the checker's arguments, `$3`
/// being the file), then the real `xcore` with those arguments.
pub fn wrapped_checker(dir: &std::path::Path, before: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("checker.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{before}\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_xcore")
        ),
    )
    .expect("checker script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}
