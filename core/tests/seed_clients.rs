//! Clients written against the seeds, sending exactly what the seeds show:
//! seed 001's WebSocket client authenticates by message and only listens
//! (it never subscribes), seed 001 refreshes with its access token (its
//! login answer has no refresh token), seed 003 speaks camelCase, and seed
//! 001's task body names no job. Runs on
//! SQLite, and on PostgreSQL when `XCORE_TEST_DATABASE_URL` is set.

mod common;

use std::time::Duration;

use common::{call, expect_error, expect_status, TestServer};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Seed 001's client: connect, then `{"type":"auth","token":"Bearer ..."}`
/// and nothing else. Returns the socket after the auth reply.
async fn seed_client(server: &TestServer, token: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .expect("upgrade");
    let auth = json!({"type": "auth", "token": format!("Bearer {token}")});
    socket
        .send(Message::Text(auth.to_string().into()))
        .await
        .expect("send auth");
    let reply = next_message(&mut socket, Duration::from_secs(5))
        .await
        .expect("auth reply");
    assert_eq!(reply["type"], "auth", "{reply}");
    assert_eq!(reply["success"], true, "{reply}");
    socket
}

/// The next JSON message, skipping pings; `None` on close or silence.
async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
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

/// Events on `topic` arriving within `wait`, in order.
async fn events_on(socket: &mut Socket, topic: &str, wait: Duration) -> Vec<Value> {
    let mut found = Vec::new();
    while let Some(message) = next_message(socket, wait).await {
        if message["type"] == "event" && message["topic"] == topic {
            found.push(message);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_never_subscribes_gets_every_event_it_may_see() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("listener@example.com").await;

    let mut admin_socket = seed_client(&server, &admin).await;
    let mut user_socket = seed_client(&server, &user).await;

    server.login("listener@example.com", "UserPassw0rd!").await;
    let seen = events_on(&mut admin_socket, "user.login", Duration::from_secs(2)).await;
    assert_eq!(seen.len(), 1, "the admin's client sees the login: {seen:?}");
    assert_eq!(seen[0]["data"]["email"], "listener@example.com");
    // The default is what the permissions allow, not everything: a plain
    // user holds no users:read.
    assert_eq!(
        events_on(&mut user_socket, "user.login", Duration::from_millis(500)).await,
        Vec::<Value>::new()
    );

    // The first subscribe replaces the default with exactly its topics.
    admin_socket
        .send(Message::Text(
            json!({"type": "subscribe", "topics": ["plugin.*"]})
                .to_string()
                .into(),
        ))
        .await
        .expect("send subscribe");
    let reply = next_message(&mut admin_socket, Duration::from_secs(5))
        .await
        .expect("subscribe reply");
    assert_eq!(reply["topics"], json!(["plugin.*"]), "{reply}");
    server.login("listener@example.com", "UserPassw0rd!").await;
    assert_eq!(
        events_on(&mut admin_socket, "user.login", Duration::from_millis(500)).await,
        Vec::<Value>::new(),
        "after subscribing to plugin.* only, no user.* events"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_created_with_the_seeds_body_takes_its_job_from_its_id() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let jobs = expect_status(
        call(&server, Method::GET, "/system/tasks", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    let job = jobs
        .as_array()
        .or_else(|| jobs["items"].as_array())
        .and_then(|tasks| tasks.first())
        .and_then(|task| task["job"].as_str())
        .expect("a built-in task and its job")
        .to_string();

    // Seed 001's body, no job; here the id names a job.
    let created = expect_status(
        call(
            &server,
            Method::POST,
            "/system/tasks",
            &admin,
            Some(json!({
                "id": job, "name": "Ma Tâche", "type": "interval",
                "interval": {"hours": 1}, "enabled": true
            })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["job"], job.as_str(), "{created}");
    assert_eq!(created["id"], job.as_str(), "{created}");

    // Seed 001's body as written: its id names no job, so the 422 says
    // which jobs exist.
    let refused = expect_error(
        call(
            &server,
            Method::POST,
            "/system/tasks",
            &admin,
            Some(json!({
                "id": "ma_tache", "name": "Ma Tâche", "type": "interval",
                "interval": {"hours": 1}, "enabled": true
            })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let text = refused.to_string();
    assert!(text.contains("\"field\":\"job\""), "{refused}");
    for builtin in [
        "core.purge_expired_tokens",
        "core.prune_task_runs",
        "core.prune_audit_log",
    ] {
        assert!(text.contains(builtin), "the 422 lists the jobs: {refused}");
    }
    server.stop().await;
}

/// `POST /auth/refresh` with `Authorization: Bearer <token>` and no body.
async fn refresh_with_bearer(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .post("/auth/refresh")
        .bearer_auth(token)
        .send()
        .await
        .expect("refresh")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_001_client_renews_its_access_token_within_its_session() {
    // A session (refresh family) shorter than an access token's lifetime
    // shows the bound.
    let server = TestServer::start_with(|config| config.auth.refresh_token_ttl_secs = 120).await;
    server.register("renew@example.com", "UserPassw0rd!").await;
    let login = server.login("renew@example.com", "UserPassw0rd!").await;
    let first = login["access_token"].as_str().expect("token").to_string();

    let renewed = expect_status(refresh_with_bearer(&server, &first).await, StatusCode::OK).await;
    assert_eq!(renewed["token_type"], "bearer", "{renewed}");
    assert!(
        renewed.get("refresh_token").is_none(),
        "seed shape: {renewed}"
    );
    let expires_in = renewed["expires_in"].as_u64().expect("expires_in");
    assert!(
        (1..=120).contains(&expires_in),
        "never past the session's end: {renewed}"
    );
    let second = renewed["access_token"].as_str().expect("token").to_string();
    assert_ne!(second, first);
    let me = expect_status(
        call(&server, Method::GET, "/auth/me", &second, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["email"], "renew@example.com");
    // A renewed token renews too: same session.
    let third = expect_status(refresh_with_bearer(&server, &second).await, StatusCode::OK).await;
    let third = third["access_token"].as_str().expect("token").to_string();

    // Ending the session ends renewal, for every token of the session.
    expect_status(
        call(&server, Method::POST, "/auth/logout", &third, None).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    for token in [&first, &second, &third] {
        expect_error(
            refresh_with_bearer(&server, token).await,
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_ERROR",
        )
        .await;
    }

    // A session past its end cannot be renewed even with a live token.
    let login = server.login("renew@example.com", "UserPassw0rd!").await;
    let live = login["access_token"].as_str().expect("token").to_string();
    sqlx::query("UPDATE refresh_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE token_hash IS NOT NULL")
        .execute(server.state.db.pool())
        .await
        .expect("age the sessions");
    let expired = expect_error(
        refresh_with_bearer(&server, &live).await,
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    assert!(expired.to_string().contains("session expired"), "{expired}");
    // Garbage in the header is a 401, not a 500.
    expect_error(
        refresh_with_bearer(&server, "not.a.jwt").await,
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_camel_case_register_and_refresh_are_accepted() {
    let server = TestServer::start().await;
    let created = expect_status(
        server
            .post("/auth/register")
            .json(&json!({
                "email": "jane@example.com",
                "password": "StrongPassword!123",
                "firstName": "Jane",
                "lastName": "Doe"
            }))
            .send()
            .await
            .expect("register"),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["full_name"], "Jane Doe", "{created}");
    let login = server.login("jane@example.com", "StrongPassword!123").await;
    let refresh_token = login["refresh_token"].as_str().expect("refresh token");
    let rotated = expect_status(
        server
            .post("/auth/refresh")
            .json(&json!({"refreshToken": refresh_token}))
            .send()
            .await
            .expect("refresh"),
        StatusCode::OK,
    )
    .await;
    assert!(rotated["access_token"].is_string(), "{rotated}");
    assert!(rotated["refresh_token"].is_string(), "{rotated}");
    // The presented refresh token is spent: single use still holds.
    expect_error(
        server
            .post("/auth/refresh")
            .json(&json!({"refreshToken": refresh_token}))
            .send()
            .await
            .expect("refresh"),
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_list_pages_sorts_and_refuses_unknown_filters() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let get = |path: String| {
        let (server, admin) = (&server, &admin);
        async move { call(server, Method::GET, &path, admin, None).await }
    };
    for list in [
        "/admin/users",
        "/admin/roles",
        "/admin/permissions",
        "/system/plugins",
        "/system/tasks",
    ] {
        // A filter the route does not know is a 422 that names it.
        let refused = expect_error(
            get(format!("{list}?colour=red")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            refused["error"]["details"][0]["field"], "colour",
            "{list}: {refused}"
        );
        // Paging is honoured and reported both ways.
        let page = expect_status(get(format!("{list}?skip=1&limit=1")).await, StatusCode::OK).await;
        assert_eq!(page["skip"], 1, "{list}: {page}");
        assert_eq!(page["limit"], 1, "{list}: {page}");
        assert_eq!(page["page"], 2, "{list}: {page}");
        assert_eq!(page["page_size"], 1, "{list}: {page}");
        let total = page["total"].as_i64().expect("total");
        assert_eq!(page["total_pages"], total.max(1), "{list}: {page}");
        assert!(
            page["items"].as_array().expect("items").len() <= 1,
            "{list}: {page}"
        );
        // A sort field the route does not offer is a 422 too.
        let refused = expect_error(
            get(format!("{list}?sort_by=password_hash")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            refused["error"]["details"][0]["field"], "sort_by",
            "{list}: {refused}"
        );
    }

    // Sorting works where it used to be ignored.
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["name"].as_str().expect("name").to_string())
            .collect()
    };
    let roles = expect_status(
        get("/admin/roles?sort_by=name&sort_order=desc".into()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&roles), ["user", "admin"], "{roles}");
    let permissions = expect_status(
        get("/admin/permissions?sort_by=name&sort_order=desc&limit=100".into()).await,
        StatusCode::OK,
    )
    .await;
    let mut descending = names(&permissions);
    let listed = descending.clone();
    descending.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, descending, "{permissions}");
    let tasks = expect_status(
        get("/system/tasks?sort_by=id&sort_order=desc".into()).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = tasks["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|task| task["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["purge_expired_tokens", "prune_task_runs", "prune_audit_log"],
        "{tasks}"
    );
    server.stop().await;
}
