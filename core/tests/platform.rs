//! Cross-cutting behaviour against a real server: the standard error body
//! for every kind of failure, request ids, metrics, rate limits and
//! graceful shutdown.

mod common;

use std::time::Duration;

use common::{expect_error, expect_status, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_uses_the_standard_error_body() {
    let server = TestServer::start_with(|config| config.server.max_body_bytes = 1024).await;

    let body = server
        .anonymous()
        .get("/no/such/route")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("/no/such/route")));

    let wrong_method = server.delete("/auth/login").send().await.expect("send");
    let allow = wrong_method.headers().get("allow").cloned();
    expect_error(
        wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(allow.as_ref().and_then(|v| v.to_str().ok()), Some("POST"));

    server
        .anonymous()
        .post("/auth/register")
        .json(json!({"email": "a@b.co", "password": "x".repeat(4096)}))
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "VALIDATION_ERROR")
        .await;

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_when_sane_and_generated_otherwise() {
    let server = TestServer::start().await;
    let id_of = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .expect("x-request-id")
    };
    let echoed = server
        .get("/health/live")
        .header("x-request-id", "trace-42.abc")
        .send()
        .await
        .expect("send");
    assert_eq!(id_of(&echoed), "trace-42.abc");
    let replaced = server
        .get("/health/live")
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("send");
    assert!(id_of(&replaced).starts_with("req_"));
    let generated = server.get("/health/live").send().await.expect("send");
    let first = id_of(&generated);
    let second = id_of(&server.get("/health/live").send().await.expect("send"));
    assert_ne!(first, second);

    // The error body carries the same id as the header.
    let failing = server
        .get("/auth/me")
        .header("x-request-id", "corr-7")
        .send()
        .await
        .expect("send");
    let body = expect_error(failing, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    assert_eq!(body["error"]["request_id"], "corr-7");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_label_requests_by_route_template() {
    let server = TestServer::start().await;
    server.get("/auth/me").send().await.expect("send");
    server.get("/health").send().await.expect("send");
    for id in ["123", "456"] {
        server
            .get(&format!("/nothing/here/{id}"))
            .send()
            .await
            .expect("send");
    }
    let response = server.get("/metrics").send().await.expect("send");
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"xcore_requests_total{endpoint="/auth/me",method="GET",status="401"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"xcore_requests_total{endpoint="/health",method="GET",status="200"} 1"#)
    );
    assert!(
        text.contains(r#"xcore_requests_total{endpoint="unmatched",method="GET",status="404"} 2"#)
    );
    assert!(
        !text.contains("/nothing/here"),
        "raw paths must never become labels"
    );
    assert!(text.contains(
        r#"xcore_request_duration_seconds_bucket{endpoint="/health",method="GET",le="0.005"}"#
    ));
    assert!(text.contains("process_resident_memory_bytes"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_apply_per_tier_with_headers_and_exemptions() {
    let server = TestServer::start_with(|config| {
        config.rate_limits.enabled = true;
        config.rate_limits.anonymous_per_hour = 3;
        config.rate_limits.user_per_hour = 6;
        config.rate_limits.admin_per_hour = 50;
        config.rate_limits.auth_per_minute = 2;
    })
    .await;

    // Anonymous: 3 per hour, counted down in the headers, then 429.
    for remaining in ["2", "1", "0"] {
        let response = server.get("/auth/me").send().await.expect("send");
        let headers = response.headers();
        assert_eq!(
            headers.get("x-ratelimit-limit").map(|v| v.to_str().ok()),
            Some(Some("3"))
        );
        assert_eq!(
            headers
                .get("x-ratelimit-remaining")
                .map(|v| v.to_str().ok()),
            Some(Some(remaining))
        );
        let reset: u64 = headers["x-ratelimit-reset"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("unix time");
        assert!(reset >= chrono::Utc::now().timestamp() as u64);
    }
    let limited = server.get("/auth/me").send().await.expect("send");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry_after));
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT").await;

    // Health and metrics are exempt: no headers, never limited.
    for _ in 0..5 {
        let response = server.get("/health/live").send().await.expect("send");
        assert!(response.headers().get("x-ratelimit-limit").is_none());
        expect_status(response, StatusCode::OK).await;
    }

    // Login has its own per-IP budget of 2 per minute, reported on the route.
    // (Anonymous budget is spent too, so the first login is already refused
    // by it; open a fresh server to see the login budget alone.)
    server.stop().await;
    let server = TestServer::start_with(|config| {
        config.rate_limits.enabled = true;
        config.rate_limits.anonymous_per_hour = 100;
        config.rate_limits.user_per_hour = 4;
        config.rate_limits.admin_per_hour = 50;
        config.rate_limits.auth_per_minute = 2;
    })
    .await;
    let login = || {
        server
            .post("/auth/login")
            .json(&json!({"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
    };
    let first = login().await.expect("send");
    assert_eq!(first.headers()["x-ratelimit-limit"], "2");
    let admin = expect_status(first, StatusCode::OK).await;
    expect_status(login().await.expect("send"), StatusCode::OK).await;
    expect_error(
        login().await.expect("send"),
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMIT",
    )
    .await;

    // An authenticated user has a per-user budget (4 here), an admin a larger one.
    let token = admin["access_token"].as_str().expect("token").to_string();
    let response = server.as_(&token).get("/auth/me").send().await;
    assert_eq!(response.headers()["x-ratelimit-limit"], "50");
    expect_status(response, StatusCode::OK).await;

    sqlx::query("INSERT INTO users (email, full_name, password_hash, is_active, token_version, created_at, updated_at) SELECT 'u@example.com', NULL, password_hash, is_active, 0, created_at, updated_at FROM users WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .execute(server.state.db.pool())
        .await
        .expect("copy account");
    let user_token = xcore_token_for(&server, "u@example.com").await;
    for _ in 0..4 {
        let response = server.as_(&user_token).get("/auth/me").send().await;
        assert_eq!(response.headers()["x-ratelimit-limit"], "4");
        expect_status(response, StatusCode::OK).await;
    }
    server
        .as_(&user_token)
        .get("/auth/me")
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT")
        .await;
    // The admin's budget is separate from the user's.
    server.get_as(&token, "/auth/me").await;
    server.stop().await;
}

/// Mints a token through the host's own token service: the login route's
/// budget is spent in the rate-limit test, and this is the code the login
/// route itself calls.
async fn xcore_token_for(server: &TestServer, email: &str) -> String {
    use sqlx::Row;
    let row = sqlx::query("SELECT id, token_version FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(server.state.db.pool())
        .await
        .expect("user");
    let (token, _) = server
        .state
        .tokens
        .issue(
            row.get("id"),
            row.get("token_version"),
            "test-session",
            vec![],
        )
        .expect("token");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_then_stops_accepting() {
    // An expensive argon2 makes a login slow enough to still be in flight
    // when shutdown starts.
    let server = TestServer::start_with(|config| {
        config.auth.argon2.memory_kib = 64 * 1024;
        config.auth.argon2.iterations = 8;
    })
    .await;
    let addr = server.addr;
    let client = server.client.clone();
    let in_flight = tokio::spawn(async move {
        client
            .post(format!("http://{addr}/auth/login"))
            .json(&json!({"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !in_flight.is_finished(),
        "the login should still be running"
    );
    let db = server.stop().await;
    let response = in_flight
        .await
        .expect("join")
        .expect("in-flight request completed");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(reqwest::Client::new()
        .get(format!("http://{addr}/health/live"))
        .send()
        .await
        .is_err());
    drop(db);
}
