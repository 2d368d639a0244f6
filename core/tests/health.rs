//! Health endpoints against a real server.

mod common;

use common::{expect_status, TestServer};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_database_disk_version_and_uptime() {
    let server = TestServer::start().await;
    let body = expect_status(
        server.get("/health").send().await.expect("send"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["checks"]["database"], true);
    assert_eq!(body["checks"]["disk"], true);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime"].is_u64());
    assert!(body["timestamp"].is_string());

    let live = expect_status(
        server.get("/health/live").send().await.expect("send"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(live["status"], "alive");
    let ready = expect_status(
        server.get("/health/ready").send().await.expect("send"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ready["status"], "ready");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_unhealthy_with_503_when_the_database_is_down() {
    let server = TestServer::start().await;
    // Closing the pool is what a lost database looks like to the host.
    server.state.db.close().await;
    let raw = server.get("/health").send().await.expect("send");
    let body = expect_status(raw, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["database"], false);
    expect_status(
        server.get("/health/ready").send().await.expect("send"),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    expect_status(
        server.get("/health/live").send().await.expect("send"),
        StatusCode::OK,
    )
    .await;
}
