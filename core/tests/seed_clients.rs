//! Clients written against the seeds, sending exactly what the seeds show:
//! seed 001's WebSocket client authenticates by message and only listens
//! (it never subscribes), and seed 001's task body names no job. Runs on
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
    for builtin in ["core.purge_expired_tokens", "core.prune_task_runs"] {
        assert!(text.contains(builtin), "the 422 lists the jobs: {refused}");
    }
    server.stop().await;
}
