//! Health endpoints against a real server.

mod common;

use std::time::{Duration, Instant};

use common::{expect_status, TestServer};
use reqwest::StatusCode;
use sqlx::{Connection, Executor};
use xcore::db::Dialect;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_database_disk_version_and_uptime() {
    let server = TestServer::start().await;
    let body = server.public_get("/health").await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["checks"]["database"], true);
    assert_eq!(body["checks"]["disk"], true);
    assert!(body.get("failed_check").is_none(), "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime"].is_u64());
    assert!(body["timestamp"].is_string());

    let live = server.public_get("/health/live").await;
    assert_eq!(live["status"], "alive");
    let ready = server.public_get("/health/ready").await;
    assert_eq!(ready["status"], "ready");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_unhealthy_with_503_when_the_database_is_down() {
    let server = TestServer::start().await;
    // Closing the pool is what a lost database looks like to the host.
    server.state.db.close().await;
    let body = server
        .anonymous()
        .get("/health")
        .expect(StatusCode::SERVICE_UNAVAILABLE)
        .await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["database"], false);
    assert_eq!(body["failed_check"], "database_connection");
    let ready = server
        .anonymous()
        .get("/health/ready")
        .expect(StatusCode::SERVICE_UNAVAILABLE)
        .await;
    assert_eq!(ready["status"], "database_unavailable");
    assert_eq!(ready["failed_check"], "database_connection");
    server.public_get("/health/live").await;
}

/// A connection outside the server's pool that holds what requests need:
/// the write lock on SQLite, the `users` table on PostgreSQL.
enum LockHolder {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl LockHolder {
    async fn lock(server: &TestServer) -> Self {
        match server.state.db.dialect() {
            Dialect::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&server.db.url)
                    .await
                    .expect("connect");
                connection
                    .execute("BEGIN EXCLUSIVE")
                    .await
                    .expect("take the write lock");
                Self::Sqlite(connection)
            }
            Dialect::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&server.db.url)
                    .await
                    .expect("connect");
                connection
                    .execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                    .await
                    .expect("lock the users table");
                Self::Postgres(connection)
            }
        }
    }

    /// The check the probe must name while the lock is held: SQLite (WAL)
    /// still reads, but cannot start a write; PostgreSQL cannot even read.
    fn failing_check(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "database_write",
            Self::Postgres(_) => "database_read",
        }
    }

    async fn release(self) {
        match self {
            Self::Sqlite(mut connection) => {
                connection.execute("ROLLBACK").await.expect("release");
                connection.close().await.expect("close");
            }
            Self::Postgres(mut connection) => {
                connection.execute("ROLLBACK").await.expect("release");
                connection.close().await.expect("close");
            }
        }
    }
}

// `SELECT 1` touches neither the SQLite file nor any lock: readiness stayed
// 200 while every write waited out the busy timeout and failed. The probe
// now reads a real table and starts a write transaction, with a short wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_failing_check_while_the_database_is_locked() {
    // One pooled connection: the probes and the write below share it.
    let server = TestServer::start_with(|config| config.database.max_connections = 1).await;
    let ready = || async { server.get("/health/ready").send().await.expect("send") };
    expect_status(ready().await, StatusCode::OK).await;

    let holder = LockHolder::lock(&server).await;
    let failing = holder.failing_check();
    let started = Instant::now();
    let body = expect_status(ready().await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["status"], "database_unavailable");
    assert_eq!(body["failed_check"], failing, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a held lock answers quickly, not after the busy timeout: {:?}",
        started.elapsed()
    );
    let report = server
        .anonymous()
        .get("/health")
        .expect(StatusCode::SERVICE_UNAVAILABLE)
        .await;
    assert_eq!(report["status"], "unhealthy");
    assert_eq!(report["checks"]["database"], false);
    assert_eq!(report["failed_check"], failing, "{report}");
    // Liveness does no I/O: the process is fine.
    server.public_get("/health/live").await;

    holder.release().await;
    let body = expect_status(ready().await, StatusCode::OK).await;
    assert_eq!(body["status"], "ready");
    // The probes left the pool's connections as they found them: a write
    // that has to wait for the lock still gets the full busy timeout.
    let holder = LockHolder::lock(&server).await;
    let write = {
        let server_url = server.url("/auth/login");
        let client = server.client.clone();
        tokio::spawn(async move {
            client
                .post(server_url)
                .json(&serde_json::json!({
                    "username": common::ADMIN_EMAIL,
                    "password": common::ADMIN_PASSWORD,
                }))
                .send()
                .await
                .expect("send")
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    holder.release().await;
    assert_eq!(write.await.expect("join"), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_health_probes_costs_the_database_one_probe() {
    let server = TestServer::start_with(|config| config.health.probe_reuse_ms = 60_000).await;
    server.public_get("/health/ready").await;
    assert_eq!(server.state.health_probe.runs(), 1);
    let crowd: Vec<_> = (0..32)
        .map(|index| {
            let path = if index % 2 == 0 {
                "/health"
            } else {
                "/health/ready"
            };
            server.get(path).send()
        })
        .collect();
    for response in futures_util::future::join_all(crowd).await {
        expect_status(response.expect("send"), StatusCode::OK).await;
    }
    assert_eq!(
        server.state.health_probe.runs(),
        1,
        "within the reuse time every request shares the first probe"
    );
    server.stop().await;
}
