//! What SDK v2 asks of the host, with real plugin libraries loaded by the
//! real loader: events delivered to a subscribing plugin in order (and a
//! panicking listener caught and counted), the start hook, outbound HTTP
//! limited to the allow list with its size cap and timeout, typed host
//! errors that do not leak SQL, and a plugin built by the 0.2 SDK still
//! loading and working.

mod common;

use std::{path::Path, time::Duration};

use axum::{http::StatusCode as AxumStatus, response::IntoResponse, routing::get, Router};
use common::{deploy, expect_error, expect_status, hello_variant, testbed_variant, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn start_with_plugins(
    dir: &Path,
    adjust: impl FnOnce(&mut xcore::config::Config),
) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start_with(move |config| {
        config.plugins.dir = dir.display().to_string();
        adjust(config);
    })
    .await
}

/// Polls `condition` until it holds or 30 s pass.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one sample of `metric` with exactly `labels`, if any.
fn sample(metrics: &str, metric: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{metric}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_get_another_plugins_events_in_order_and_one_panic_harms_no_one() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&hello_variant(""), dir.path(), "libxcore_plugin_hello.so");
    deploy(
        &testbed_variant("listener"),
        dir.path(),
        "libxcore_plugin_listener.so",
    );
    // Another subscriber to the same events, which never panics.
    deploy(
        &testbed_variant("calm-listener"),
        dir.path(),
        "libxcore_plugin_calm_listener.so",
    );
    deploy(
        &testbed_variant("calm-listener"),
        dir.path(),
        "libxcore_plugin_calm_listener.so",
    );
    let server = start_with_plugins(dir.path(), |_| {}).await;
    let admin = server.admin_token().await;
    let received = async || -> Value {
        let response = server.public_get("/api/v1/listener/events").await;
        response
    };
    // The start hook ran once the listener served.
    eventually("the start hook has run", async || {
        received()
            .await
            .as_array()
            .is_some_and(|rows| !rows.is_empty())
    })
    .await;

    for text in ["one", "panic", "two", "three"] {
        server
            .create_as(&admin, "/api/v1/hello/greetings", json!({ "text": text }))
            .await;
    }
    eventually("the listener has seen all four greetings", async || {
        let metrics = server.metrics_text().await;
        let seen = ["delivered", "panicked"]
            .iter()
            .filter_map(|outcome| {
                sample(
                    &metrics,
                    "xcore_plugin_events_total",
                    &format!("outcome=\"{outcome}\",plugin=\"listener\""),
                )
            })
            .sum::<f64>();
        let calm = sample(
            &metrics,
            "xcore_plugin_events_total",
            "outcome=\"delivered\",plugin=\"calm_listener\"",
        )
        .unwrap_or(0.0);
        seen >= 4.0 && calm >= 4.0
    })
    .await;

    let rows = received().await;
    let seen: Vec<(String, Value)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["topic"].as_str().unwrap_or_default().to_string(),
                row["text"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("!start".to_string(), Value::Null),
            ("hello.greeted".to_string(), json!("one")),
            ("hello.greeted".to_string(), json!("two")),
            ("hello.greeted".to_string(), json!("three")),
        ],
        "the start signal first, then every event in publication order; the panicking one stored nothing"
    );
    let metrics = server.metrics_text().await;
    let count = |outcome: &str| {
        sample(
            &metrics,
            "xcore_plugin_events_total",
            &format!("outcome=\"{outcome}\",plugin=\"listener\""),
        )
    };
    assert_eq!(count("panicked"), Some(1.0), "{metrics}");
    assert_eq!(count("delivered"), Some(3.0), "{metrics}");
    assert_eq!(count("started"), Some(1.0), "{metrics}");
    // The other subscriber got every event, the one that made the first
    // panic included, in order.
    let calm = |outcome: &str| {
        sample(
            &metrics,
            "xcore_plugin_events_total",
            &format!("outcome=\"{outcome}\",plugin=\"calm_listener\""),
        )
    };
    assert_eq!(calm("delivered"), Some(4.0), "{metrics}");
    assert_eq!(calm("panicked"), None, "{metrics}");
    let calm_rows = server.public_get("/api/v1/calm-listener/events").await;
    let calm_texts: Vec<Value> = calm_rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["text"].clone())
        .collect();
    assert_eq!(
        calm_texts,
        vec![
            Value::Null,
            json!("one"),
            json!("panic"),
            json!("two"),
            json!("three")
        ]
    );
    // The host and all three plugins carry on.
    server.public_get("/api/v1/hello/ping").await;
    let state = server
        .as_(&admin)
        .get("/system/plugins/listener")
        .send()
        .await;
    assert_eq!(
        expect_status(state, StatusCode::OK).await["state"],
        "active"
    );
    server.stop().await;
}

/// A local server for the outbound HTTP test: a small feed, a big one, a
/// slow one, a redirect out of the allowed prefix, and a path outside it.
async fn feed_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/feeds/small", get(|| async { "ref;price\nA-1;9.90\n" }))
        .route("/feeds/big", get(|| async { "x".repeat(64 * 1024) }))
        .route(
            "/feeds/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/feeds/moved",
            get(move || async move {
                (
                    AxumStatus::FOUND,
                    [("location", format!("http://{addr}/private/keys"))],
                )
                    .into_response()
            }),
        )
        .route("/private/keys", get(|| async { "secret" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_reaches_only_the_allow_list_within_its_caps() {
    let feeds = feed_server().await;
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), "libxcore_plugin_hello.so");
    let server = start_with_plugins(dir.path(), |config| {
        config.plugins.http_timeout_ms = 1000;
        config.plugins.http_max_response_bytes = 16 * 1024;
        config.plugins.settings.insert(
            "hello".into(),
            xcore::config::PluginSettings {
                http_allow: vec![format!("http://{feeds}/feeds/")],
                ..Default::default()
            },
        );
    })
    .await;
    let fetch = async |url: String| -> Value {
        let response = server
            .get("/api/v1/hello/fetch")
            .query(&[("url", url)])
            .send()
            .await
            .expect("send");
        let status = response.status();
        let body = expect_status(response, status).await;
        json!({"status": status.as_u16(), "body": body})
    };

    let small = fetch(format!("http://{feeds}/feeds/small")).await;
    assert_eq!(small["status"], 200, "{small}");
    assert_eq!(small["body"]["status"], 200);
    assert_eq!(small["body"]["body"], "ref;price\nA-1;9.90\n");

    for (url, kind, says) in [
        (
            format!("http://{feeds}/private/keys"),
            "refused",
            "http_allow",
        ),
        (
            format!("http://{feeds}/feeds/../private/keys"),
            "refused",
            "http_allow",
        ),
        (
            format!("http://{feeds}/feeds/moved"),
            "refused",
            "http_allow",
        ),
        (
            format!("http://{feeds}/feeds/big"),
            "refused",
            "larger than 16384 bytes",
        ),
        (
            format!("http://{feeds}/feeds/slow"),
            "timeout",
            "within 1000 ms",
        ),
        ("file:///etc/passwd".to_string(), "refused", "http_allow"),
    ] {
        let answer = fetch(url.clone()).await;
        assert_eq!(answer["status"], 502, "{url}: {answer}");
        let refused = &answer["body"]["refused"];
        assert_eq!(refused["kind"], kind, "{url}: {answer}");
        let text = answer["body"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(says), "{url}: {text}");
    }
    // The refusal names the URL it refused, as the plugin asked for it
    // (after normalisation).
    let named = fetch(format!("http://{feeds}/private/keys")).await;
    assert!(named["body"]["message"]
        .as_str()
        .is_some_and(|text| text.contains(&format!("http://{feeds}/private/keys"))));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_violation_is_a_409_naming_the_column_without_sql() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), "libxcore_plugin_hello.so");
    let server = start_with_plugins(dir.path(), |_| {}).await;
    let body = server
        .anonymous()
        .get("/api/v1/hello/conflict")
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    assert_eq!(body["error"]["details"][0]["field"], "id", "{body}");
    let text = body.to_string().to_ascii_lowercase();
    for leak in [
        "unique constraint",
        "duplicate key",
        "hello_greetings",
        "insert",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {body}");
    }
    server.stop().await;
}

/// Seed clients' filters are never silently ignored on plugin lists either:
/// a list route (one that pages through the SDK's `Window`) answers 422
/// naming every query parameter its extractors do not document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_list_refuses_a_query_parameter_it_does_not_know() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), "libxcore_plugin_hello.so");
    let server = start_with_plugins(dir.path(), |_| {}).await;
    let admin = server.admin_token().await;
    let listed = server
        .get_as(&admin, "/api/v1/hello/greetings?limit=5&page=1&page_size=5")
        .await;
    assert_eq!(listed["page_size"], 5, "{listed}");
    for (query, unknown) in [
        ("colour=red", vec!["colour"]),
        ("limit=5&Limit=6", vec!["Limit"]),
        ("search=x&sortBy=id", vec!["search", "sortBy"]),
    ] {
        let body = server
            .as_(&admin)
            .get(&format!("/api/v1/hello/greetings?{query}"))
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
            .await;
        let fields: Vec<&str> = body["error"]["details"]
            .as_array()
            .expect("details")
            .iter()
            .filter_map(|detail| detail["field"].as_str())
            .collect();
        assert_eq!(fields, unknown, "{query}: {body}");
        assert!(
            body["error"]["details"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains("skip, limit")),
            "the known names are listed: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaffolded_out_of_tree_plugin_builds_on_its_own_and_serves() {
    let scratch = tempfile::tempdir().expect("scratch");
    let crate_dir = scratch.path().join("notes");
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_xcore"))
        .args(["plugin", "new", "notes", "--dir"])
        .arg(&crate_dir)
        .output()
        .expect("run xcore plugin new");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    // Built outside the workspace, as another team would: its own lock
    // file and workspace, a target directory reused across test runs.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = workspace.join("target/plugin-variants/scaffolded-notes");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .current_dir(&crate_dir)
        .args(["build", "--quiet", "--target-dir"])
        .arg(&target)
        .status()
        .expect("run cargo build");
    assert!(built.success(), "the scaffolded plugin builds");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
    assert!(!manifest.contains("abi_stable"), "{manifest}");

    let dir = tempfile::tempdir().expect("dir");
    deploy(
        &target.join("debug/libxcore_plugin_notes.so"),
        dir.path(),
        "libxcore_plugin_notes.so",
    );
    let server = start_with_plugins(dir.path(), |_| {}).await;
    let admin = server.admin_token().await;
    let create = async |name: &str| {
        server
            .as_(&admin)
            .post("/api/v1/notes/items")
            .json(json!({ "name": name }))
            .send()
            .await
    };
    let item = expect_status(create("first").await, StatusCode::CREATED).await;
    assert_eq!(item["name"], "first");
    let taken = expect_error(create("first").await, StatusCode::CONFLICT, "CONFLICT").await;
    assert_eq!(taken["error"]["details"][0]["field"], "name", "{taken}");
    let list = server
        .get_as(&admin, "/api/v1/notes/items?page=1&page_size=10")
        .await;
    assert_eq!(
        (list["total"].clone(), list["total_pages"].clone()),
        (json!(1), json!(1))
    );
    server
        .anonymous()
        .get("/api/v1/notes/items")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server.stop().await;
}
