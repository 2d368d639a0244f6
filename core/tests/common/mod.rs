//! Test harness: a real xcore server on `127.0.0.1:0` over a fresh database.
//!
//! The database is a new SQLite file in a temp dir, or, when
//! `XCORE_TEST_DATABASE_URL` points at a PostgreSQL server, a new database
//! created on that server for this test and dropped afterwards. Every test
//! therefore starts from an empty schema, on either backend.

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

    /// An access token for the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        access_token(&self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await)
    }

    /// Registers a plain user and returns `(id, access token)`.
    pub async fn user_token(&self, email: &str) -> (i64, String) {
        let account = self.register(email, "UserPassw0rd!").await;
        let tokens = self.login(email, "UserPassw0rd!").await;
        (account["id"].as_i64().expect("id"), access_token(&tokens))
    }
}

/// Sends `method path` with a bearer token and an optional JSON body.
pub async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    let mut request = server.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("send")
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
