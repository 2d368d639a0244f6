//! Clients written against the seeds, sending exactly what the seeds show:
//! seed 001's WebSocket client authenticates by message and only listens
//! (it never subscribes), seed 001 refreshes with its access token (its
//! login answer has no refresh token), seed 003 speaks camelCase, and seed
//! 001's task body names no job. Runs on
//! SQLite, and on PostgreSQL when `XCORE_TEST_DATABASE_URL` is set.

mod common;

use std::time::Duration;

use common::{
    call, expect_error, expect_status,
    ws::{self, next_json, Socket},
    TestServer,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Seed 001's client: connect, then `{"type":"auth","token":"Bearer ..."}`
/// and nothing else. Returns the socket after the auth reply.
async fn seed_client(server: &TestServer, token: &str) -> Socket {
    let mut socket = ws::connect(server, "").await;
    ws::send(
        &mut socket,
        json!({"type": "auth", "token": format!("Bearer {token}")}),
    )
    .await;
    let reply = next_json(&mut socket, Duration::from_secs(5))
        .await
        .expect("auth reply");
    assert_eq!(reply["type"], "auth", "{reply}");
    assert_eq!(reply["success"], true, "{reply}");
    socket
}

/// Events on `topic` arriving within `wait`, in order.
async fn events_on(socket: &mut Socket, topic: &str, wait: Duration) -> Vec<Value> {
    let mut found = Vec::new();
    while let Some(message) = next_json(socket, wait).await {
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
    ws::send(
        &mut admin_socket,
        json!({"type": "subscribe", "topics": ["plugin.*"]}),
    )
    .await;
    let reply = next_json(&mut admin_socket, Duration::from_secs(5))
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
    let jobs = server.get_as(&admin, "/system/tasks").await;
    let job = jobs
        .as_array()
        .or_else(|| jobs["items"].as_array())
        .and_then(|tasks| tasks.first())
        .and_then(|task| task["job"].as_str())
        .expect("a built-in task and its job")
        .to_string();

    // Seed 001's body, no job; here the id names a job.
    let created = server
        .create_as(
            &admin,
            "/system/tasks",
            json!({
                "id": job, "name": "Ma Tâche", "type": "interval",
                "interval": {"hours": 1}, "enabled": true
            }),
        )
        .await;
    assert_eq!(created["job"], job.as_str(), "{created}");
    assert_eq!(created["id"], job.as_str(), "{created}");

    // Seed 001's body as written: its id names no job, so the 422 says
    // which jobs exist.
    let refused = server
        .as_(&admin)
        .request(Method::POST, "/system/tasks")
        .json(json!({
            "id": "ma_tache", "name": "Ma Tâche", "type": "interval",
            "interval": {"hours": 1}, "enabled": true
        }))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
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
    let me = server.get_as(&second, "/auth/me").await;
    assert_eq!(me["email"], "renew@example.com");
    // A renewed token renews too: same session.
    let third = expect_status(refresh_with_bearer(&server, &second).await, StatusCode::OK).await;
    let third = third["access_token"].as_str().expect("token").to_string();

    // Ending the session ends renewal, for every token of the session.
    server
        .as_(&third)
        .request(Method::POST, "/auth/logout")
        .expect(StatusCode::NO_CONTENT)
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

/// Seed 003's refresh: `{"refreshToken": ...}`.
async fn refresh_camel_case(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .post("/auth/refresh")
        .json(&json!({"refreshToken": token}))
        .send()
        .await
        .expect("refresh")
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
        refresh_camel_case(&server, refresh_token).await,
        StatusCode::OK,
    )
    .await;
    assert!(rotated["access_token"].is_string(), "{rotated}");
    assert!(rotated["refresh_token"].is_string(), "{rotated}");
    // The presented refresh token is spent: single use still holds.
    expect_error(
        refresh_camel_case(&server, refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    server.stop().await;
}

/// Asserts that `GET path` as `token` is a 422 whose first detail names
/// `field`.
async fn refused_naming(server: &TestServer, token: &str, path: &str, field: &str) {
    let refused = server
        .as_(token)
        .get(path)
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(
        refused["error"]["details"][0]["field"], field,
        "{path}: {refused}"
    );
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
        refused_naming(&server, &admin, &format!("{list}?colour=red"), "colour").await;
        // Paging is honoured and reported both ways.
        let page = expect_status(get(format!("{list}?skip=1&limit=1")).await, StatusCode::OK).await;
        assert_eq!(page["skip"], 1, "{list}: {page}");
        assert_eq!(page["limit"], 1, "{list}: {page}");
        assert_eq!(page["page"], 2, "{list}: {page}");
        assert_eq!(page["page_size"], 1, "{list}: {page}");
        let total = page["total"].as_i64().expect("total");
        assert_eq!(page["total_pages"], total.max(1), "{list}: {page}");
        assert!(common::items(&page).len() <= 1, "{list}: {page}");
        // A sort field the route does not offer is a 422 too.
        refused_naming(
            &server,
            &admin,
            &format!("{list}?sort_by=password_hash"),
            "sort_by",
        )
        .await;
    }

    // Sorting works where it used to be ignored.
    let names = |page: &Value| -> Vec<String> {
        common::items(page)
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
    let ids: Vec<&str> = common::items(&tasks)
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
