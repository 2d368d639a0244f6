//! What crosses back from a plugin: structured errors the host renders
//! once, and bodies streamed one chunk at a time (testbed's `/stream`),
//! read by a real HTTP client: whole and in order, cut short when the
//! producer fails or panics, released when the client goes away, and
//! finished on the old library when a reload lands mid-body.

use crate::common::{deploy, testbed_variant, TestServer};
use crate::{eventually, serve_hello, serve_library, HELLO, PING};
use reqwest::StatusCode;
use serde_json::json;

/// How many producers testbed holds open.
async fn open_streams(server: &TestServer) -> u64 {
    server.public_get("/api/v1/hello/stream/open").await["open"]
        .as_u64()
        .expect("open count")
}

/// Checks that `body` is exactly lines `0..count` of `size` bytes.
fn assert_lines(body: &[u8], count: usize, size: usize) {
    assert_eq!(body.len(), count * size, "body length");
    for (index, line) in body.chunks(size).enumerate() {
        let expected = format!("{index:08}:");
        assert!(
            line.starts_with(expected.as_bytes()) && line.ends_with(b"\n"),
            "line {index} is {:?}",
            String::from_utf8_lossy(&line[..line.len().min(20)])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_arrives_whole_and_in_order_and_errors_come_back_rendered_once() {
    let (_dir, server) = serve_library(&testbed_variant("")).await;

    // 16 MiB in 4,096 chunks: more than any single buffer the host keeps.
    let response = server
        .anonymous()
        .get("/api/v1/hello/stream?chunks=4096&size=4096")
        .send()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert!(
        response.headers().get("content-length").is_none(),
        "a stream has no length up front"
    );
    let body = response.bytes().await.expect("the whole body");
    assert_lines(&body, 4096, 4096);
    assert_eq!(open_streams(&server).await, 0, "the producer is gone");

    // An empty stream is an empty body, not an error.
    let empty = server
        .anonymous()
        .get("/api/v1/hello/stream?chunks=0")
        .send()
        .await;
    assert_eq!(empty.status(), StatusCode::OK);
    assert!(empty.bytes().await.expect("body").is_empty());

    // A plugin's validation error, structured across the boundary: the
    // host's standard body, with this request's id and a timestamp.
    let admin = server.admin_token().await;
    let refused = server
        .as_(&admin)
        .post("/api/v1/hello/greetings")
        .json(json!({"text": ""}))
        .header("x-request-id", "stream-test-1")
        .send()
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.headers()["content-type"], "application/json");
    let body: serde_json::Value = refused.json().await.expect("json");
    let error = &body["error"];
    assert_eq!(error["code"], "VALIDATION_ERROR");
    assert_eq!(error["details"][0]["field"], "text");
    assert_eq!(error["request_id"], "stream-test-1");
    assert!(error["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        body.as_object().map(|object| object.len()),
        Some(1),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_or_panics_is_cut_short_and_the_host_serves_on() {
    let (_dir, server) = serve_library(&testbed_variant("")).await;
    for broken in ["fail_after=5", "panic_after=5"] {
        // The status may have left before the failure, or still sit in
        // the server's buffer with the first chunks when the connection is
        // cut: either way the client never reads a complete body.
        let sent = server
            .get(&format!("/api/v1/hello/stream?chunks=100&size=64&{broken}"))
            .send()
            .await;
        let complete = match sent {
            Ok(response) => {
                assert_eq!(response.status(), StatusCode::OK, "{broken}");
                response.bytes().await.is_ok()
            }
            Err(_) => false,
        };
        assert!(
            !complete,
            "{broken}: a cut-short body must not read as complete"
        );
        server.public_get(PING).await;
        assert_eq!(open_streams(&server).await, 0, "{broken}");
    }
    // Failing streams are not handler panics: nothing is quarantined.
    let admin = server.admin_token().await;
    let details = server.plugin_details(&admin, "hello").await;
    assert_eq!(details["state"], "active", "{details}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_body_releases_the_producer() {
    let (_dir, server) = serve_library(&testbed_variant("")).await;
    // Endless in practice: 1,000,000 lines, 2 ms apart.
    let mut response = server
        .anonymous()
        .get("/api/v1/hello/stream?chunks=1000000&size=1024&delay_ms=2")
        .send()
        .await;
    let first = response.chunk().await.expect("read").expect("a chunk");
    assert!(first.starts_with(b"00000000:"));
    assert_eq!(open_streams(&server).await, 1);
    drop(response);
    eventually("the plugin dropped the producer", async || {
        open_streams(&server).await == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_stream_lets_it_finish_on_the_old_library() {
    let (dir, server, admin) = serve_hello(&testbed_variant("")).await;
    // About 1.5 s of body.
    let mut response = server
        .anonymous()
        .get("/api/v1/hello/stream?chunks=300&size=100&delay_ms=5")
        .send()
        .await;
    let mut body = response
        .chunk()
        .await
        .expect("read")
        .expect("a chunk")
        .to_vec();

    deploy(&testbed_variant("v2"), dir.path(), HELLO);
    let reloaded = server.plugin_action(&admin, "hello", "reload").await;
    assert_eq!(reloaded["generation"], 2);
    assert_eq!(server.public_get(PING).await["message"], "pong v2");

    while let Some(chunk) = response.chunk().await.expect("the rest of the body") {
        body.extend_from_slice(&chunk);
    }
    assert_lines(&body, 300, 100);
    server.stop().await;
}
