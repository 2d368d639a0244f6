//! `/ws` with a real WebSocket client against the real server: auth by
//! message and by query, wildcard subscriptions, permission filtering,
//! bad tokens, the auth timeout, the connection limit, keep-alive pings,
//! and a slow client dropped while another keeps receiving.

mod common;

use std::time::Duration;

use common::{
    deploy, testbed_variant,
    ws::{close_code, connect, next_event, next_json, send},
    TestServer,
};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::{
    tungstenite::{protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream,
};

async fn metric(server: &TestServer, line_start: &str) -> Option<f64> {
    let text = server.metrics_text().await;
    text.lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_authenticate_subscribe_with_wildcards_and_get_only_what_they_may_see() {
    let server = TestServer::start_with(|config| config.websocket.ping_interval_secs = 1).await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("watcher@example.com").await;

    // By message, with the seed's "Bearer ..." form.
    let mut admin_socket = connect(&server, "").await;
    send(
        &mut admin_socket,
        json!({"type": "subscribe", "topics": ["user.*"]}),
    )
    .await;
    let early = next_json(&mut admin_socket, Duration::from_secs(5))
        .await
        .expect("reply");
    assert_eq!(early["success"], false, "{early}");
    assert_eq!(early["error"], "authenticate first");
    send(
        &mut admin_socket,
        json!({"type": "auth", "token": format!("Bearer {admin}")}),
    )
    .await;
    let auth = next_json(&mut admin_socket, Duration::from_secs(5))
        .await
        .expect("auth reply");
    assert_eq!(auth["type"], "auth");
    assert_eq!(auth["success"], true, "{auth}");
    send(
        &mut admin_socket,
        json!({"type": "subscribe", "topics": ["user.*", "plugin.*"]}),
    )
    .await;
    let subscribed = next_json(&mut admin_socket, Duration::from_secs(5))
        .await
        .expect("reply");
    assert_eq!(subscribed["success"], true, "{subscribed}");
    assert_eq!(subscribed["topics"], json!(["user.*", "plugin.*"]));
    send(
        &mut admin_socket,
        json!({"type": "subscribe", "topics": ["Bad Topic"]}),
    )
    .await;
    let refused = next_json(&mut admin_socket, Duration::from_secs(5))
        .await
        .expect("reply");
    assert_eq!(refused["success"], false, "{refused}");

    // By query; a plain user holds no users:read.
    let mut user_socket = connect(&server, &format!("?token={user}")).await;
    let auth = next_json(&mut user_socket, Duration::from_secs(5))
        .await
        .expect("auth reply");
    assert_eq!(auth["success"], true, "{auth}");
    send(
        &mut user_socket,
        json!({"type": "subscribe", "topics": ["*"]}),
    )
    .await;
    assert_eq!(
        next_json(&mut user_socket, Duration::from_secs(5))
            .await
            .expect("reply")["success"],
        true
    );

    server.login("watcher@example.com", "UserPassw0rd!").await;
    let event = next_event(&mut admin_socket, "user.login").await;
    assert!(
        event["id"].is_string() && event["timestamp"].is_string(),
        "{event}"
    );
    assert_eq!(event["data"]["email"], "watcher@example.com", "{event}");
    // The admin's copy arrived, so the bus has delivered; the user, who
    // may not see user.* topics, got nothing but pings.
    assert_eq!(
        next_json(&mut user_socket, Duration::from_millis(500)).await,
        None
    );

    send(&mut admin_socket, json!({"type": "ping"})).await;
    assert_eq!(
        next_json(&mut admin_socket, Duration::from_secs(5))
            .await
            .expect("pong")["type"],
        "pong"
    );
    send(
        &mut admin_socket,
        json!({"type": "unsubscribe", "topics": ["user.*"]}),
    )
    .await;
    let left = next_json(&mut admin_socket, Duration::from_secs(5))
        .await
        .expect("reply");
    assert_eq!(left["topics"], json!(["plugin.*"]));

    // Keep-alive: the server pings every second.
    let pinged = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match user_socket.next().await {
                Some(Ok(Message::Ping(_))) => return true,
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
    })
    .await;
    assert_eq!(pinged, Ok(true));

    assert_eq!(metric(&server, "xcore_ws_connections ").await, Some(2.0));
    // Clients that leave free their connection: a close frame, or just
    // dropping the TCP connection.
    user_socket.close(None).await.expect("close");
    drop(admin_socket);
    let mut released = false;
    for _ in 0..100 {
        if metric(&server, "xcore_ws_connections ").await == Some(0.0) {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(released, "both connections were released");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_silence_and_excess_connections_are_refused_with_reasons() {
    let server = TestServer::start_with(|config| {
        config.websocket.auth_timeout_secs = 1;
        config.websocket.max_connections = 2;
    })
    .await;

    let mut by_query = connect(&server, "?token=not-a-token").await;
    assert_eq!(close_code(&mut by_query).await, Some(4401));

    let mut by_message = connect(&server, "").await;
    send(
        &mut by_message,
        json!({"type": "auth", "token": "Bearer forged.token.value"}),
    )
    .await;
    let reply = next_json(&mut by_message, Duration::from_secs(5)).await;
    assert_eq!(reply, None, "a bad token gets no reply but the close");

    let mut silent = connect(&server, "").await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut silent).await, Some(4408));
    assert!(started.elapsed() < Duration::from_secs(10));

    // Two open sockets fill the limit: the third upgrade is refused.
    let _first = connect(&server, "").await;
    let _second = connect(&server, "").await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_announced_to_plugin_subscribers() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), "libxcore_plugin_hello.so");
    let plugins_dir = dir.path().display().to_string();
    let server = TestServer::start_with(|config| config.plugins.dir = plugins_dir).await;
    let admin = server.admin_token().await;
    let mut socket = connect(&server, &format!("?token={admin}")).await;
    next_json(&mut socket, Duration::from_secs(5))
        .await
        .expect("auth");
    send(
        &mut socket,
        json!({"type": "subscribe", "topics": ["plugin.*"]}),
    )
    .await;
    next_json(&mut socket, Duration::from_secs(5))
        .await
        .expect("subscribed");
    let reloaded = server
        .post("/system/plugins/hello/reload")
        .bearer_auth(&admin)
        .send()
        .await
        .expect("reload");
    assert_eq!(reloaded.status().as_u16(), 200);
    let event = next_event(&mut socket, "plugin.reloaded").await;
    assert_eq!(event["data"]["id"], "hello", "{event}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_while_another_keeps_receiving() {
    const EVENTS: usize = 200;
    let server = TestServer::start_with(|config| {
        config.websocket.queue_capacity = 8;
        config.websocket.stall_timeout_ms = 500;
    })
    .await;
    let admin = server.admin_token().await;

    // A client with a tiny receive buffer that never reads.
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = tcp.connect(server.addr).await.expect("connect");
    let (mut slow, _) = tokio_tungstenite::client_async(
        format!("ws://{}/ws?token={admin}", server.addr),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("slow upgrade");
    next_json(&mut slow, Duration::from_secs(5))
        .await
        .expect("auth");
    send(
        &mut slow,
        json!({"type": "subscribe", "topics": ["user.*"]}),
    )
    .await;
    next_json(&mut slow, Duration::from_secs(5))
        .await
        .expect("subscribed");

    let mut fast = connect(&server, &format!("?token={admin}")).await;
    next_json(&mut fast, Duration::from_secs(5))
        .await
        .expect("auth");
    send(
        &mut fast,
        json!({"type": "subscribe", "topics": ["user.*"]}),
    )
    .await;
    next_json(&mut fast, Duration::from_secs(5))
        .await
        .expect("subscribed");
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < EVENTS {
            match next_json(&mut fast, Duration::from_secs(20)).await {
                Some(message) if message["topic"] == "user.bulk" => received += 1,
                Some(_) => {}
                None => break,
            }
        }
        (received, fast)
    });

    let padding = "x".repeat(64 * 1024);
    for n in 0..EVENTS {
        server
            .state
            .events
            .publish("user.bulk", json!({"n": n, "padding": padding}));
        tokio::task::yield_now().await;
    }
    let (received, _fast) = reader.await.expect("reader");
    assert_eq!(received, EVENTS, "the fast client got everything");

    let mut dropped = false;
    for _ in 0..100 {
        if metric(&server, "xcore_ws_disconnects_total{reason=\"too_slow\"}").await == Some(1.0) {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the slow client was disconnected");

    // Catching up, the slow client reads part of the stream, then the
    // close with its reason.
    let mut seen = 0;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(15), slow.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => seen += 1,
            Ok(Some(Ok(Message::Close(frame)))) => {
                break frame.map(|f| f.code);
            }
            Ok(Some(Ok(_))) => {}
            _ => break None,
        }
    };
    assert!(
        seen < EVENTS,
        "the slow client cannot have had them all ({seen})"
    );
    assert_eq!(code, Some(CloseCode::from(4008)));
    // Only the fast client is still counted once the slow one is gone.
    let mut counted = None;
    for _ in 0..150 {
        counted = metric(&server, "xcore_ws_connections ").await;
        if counted == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, Some(1.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closes_when_its_token_expires_unless_it_signs_in_again() {
    let server = TestServer::start_with(|config| config.auth.access_token_ttl_secs = 4).await;
    // The sockets get every event the admin may see (the logins among
    // them): replies are picked out by type.
    async fn reply_of(socket: &mut common::ws::Socket, kind: &str) -> serde_json::Value {
        loop {
            let message = next_json(socket, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("no {kind} reply"));
            if message["type"] == kind {
                return message;
            }
        }
    }
    let first = server.admin_token().await;
    let mut expiring = connect(&server, &format!("?token={first}")).await;
    let mut renewed = connect(&server, &format!("?token={first}")).await;
    for socket in [&mut expiring, &mut renewed] {
        let auth = next_json(socket, Duration::from_secs(5))
            .await
            .expect("auth reply");
        assert_eq!(auth["success"], true, "{auth}");
    }

    // Halfway through the first token's life, one socket signs in again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fresh = server.admin_token().await;
    send(&mut renewed, json!({"type": "auth", "token": fresh})).await;
    let auth = reply_of(&mut renewed, "auth").await;
    assert_eq!(auth["success"], true, "{auth}");

    // The other closes when the first token expires (2 to 4 s after it
    // was issued: expiry is counted in whole seconds)...
    assert_eq!(close_code(&mut expiring).await, Some(4401));
    // ...while the one that signed in again keeps being served...
    send(&mut renewed, json!({"type": "ping"})).await;
    reply_of(&mut renewed, "pong").await;
    // ...until its own token expires.
    assert_eq!(close_code(&mut renewed).await, Some(4401));
}
