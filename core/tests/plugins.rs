//! Plugins over HTTP against a real server with real `.so` files: loading
//! at start, `/system/plugins`, RBAC on plugin routes, panics, disable and
//! enable, state across a restart, reload to new code with the old data, a
//! failed reload that leaves the old generation serving, and bad files
//! shown with their error.

mod common;

use std::path::Path;

use common::{
    deploy, expect_error, expect_status, hello_variant, next_bus_event, testbed_variant, TestServer,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

const HELLO: &str = "libxcore_plugin_hello.so";

async fn start_with_plugins(dir: &Path) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start_with(move |config| config.plugins.dir = dir.display().to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_load_at_start_and_serve_with_rbac() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), HELLO);
    let server = start_with_plugins(dir.path()).await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("plain@example.com").await;

    let list = server
        .as_(&admin)
        .get("/system/plugins")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["total"], 1);
    let item = &list["items"][0];
    assert_eq!(item["id"], "hello");
    assert_eq!(item["active"], true);
    assert_eq!(item["api_prefix"], "/api/v1/hello");
    assert_eq!(item["tags"], json!(["fixture"]));
    assert!(item["loaded_at"].is_string());
    let details = server
        .as_(&admin)
        .get("/system/plugins/hello")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(details["state"], "active");
    assert_eq!(details["generation"], 1);
    assert_eq!(details["plugin_api_version"], xcore_plugin_sdk::SDK_VERSION);
    assert_eq!(details["checksum"].as_str().map(str::len), Some(64));
    assert_eq!(details["leaked_generations"], 0);
    assert!(details["routes"]
        .as_array()
        .expect("routes")
        .contains(&json!("GET /api/v1/hello/ping")));
    server
        .as_(&admin)
        .get("/system/plugins/nope")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&user)
        .get("/system/plugins")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .anonymous()
        .get("/system/plugins")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;

    // Public route, then the permission-guarded ones: 401, 403, 200.
    let ping = server
        .anonymous()
        .get("/api/v1/hello/ping")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(ping["message"], "pong");
    server
        .anonymous()
        .get("/api/v1/hello/greetings")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    let body = server
        .as_(&user)
        .get("/api/v1/hello/greetings")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("hello:read")));
    let created = server
        .as_(&admin)
        .post("/api/v1/hello/greetings")
        .json(json!({"text": "bonjour"}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(created["text"], "bonjour");
    let list = server
        .as_(&admin)
        .get("/api/v1/hello/greetings")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["text"], "bonjour");

    // Plugin validation errors come in the standard body, request id included.
    let invalid = server
        .post("/api/v1/hello/greetings")
        .bearer_auth(&admin)
        .header("x-request-id", "plugin-req-1")
        .json(&json!({"text": ""}))
        .send()
        .await
        .expect("send");
    let body = expect_error(
        invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["error"]["request_id"], "plugin-req-1");
    assert_eq!(body["error"]["details"][0]["field"], "text");

    // A panic is a 500 PLUGIN_ERROR and the host keeps serving.
    let panic = server
        .get("/api/v1/hello/panic")
        .send()
        .await
        .expect("send");
    let body = expect_error(panic, StatusCode::INTERNAL_SERVER_ERROR, "PLUGIN_ERROR").await;
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("panicked")));
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong"
    );
    server
        .anonymous()
        .get("/health")
        .expect(StatusCode::OK)
        .await;

    // Unknown paths and methods under the prefix.
    server
        .anonymous()
        .get("/api/v1/hello/nope")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let wrong = server
        .delete("/api/v1/hello/ping")
        .send()
        .await
        .expect("send");
    assert_eq!(
        wrong.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    expect_error(wrong, StatusCode::METHOD_NOT_ALLOWED, "VALIDATION_ERROR").await;

    let metrics = server.metrics_text().await;
    assert!(metrics.contains(r#"xcore_plugin_requests_total{plugin="hello",route="/api/v1/hello/ping",status="200"} 2"#), "{metrics}");
    assert!(metrics.contains(
        r#"xcore_requests_total{endpoint="/api/v1/hello/greetings",method="GET",status="403"} 1"#
    ));
    assert!(metrics.contains(
        r#"xcore_plugin_requests_total{plugin="hello",route="/api/v1/hello/panic",status="500"} 1"#
    ));
    assert!(
        metrics.contains(
            r#"xcore_plugin_request_duration_seconds_count{plugin="hello",route="/api/v1/hello/ping"} 2"#
        ),
        "{metrics}"
    );
    server.stop().await;
}

/// `HostServices` calls to another plugin's route go through the same
/// routing and RBAC as HTTP, with the original caller's rights; a loop of
/// calls ends with an error; SQL outside the plugin's tables is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_calls_carry_the_callers_rights_and_sql_stays_in_the_plugins_tables() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), HELLO);
    let server = start_with_plugins(dir.path()).await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("relay@example.com").await;
    let relay = |path: &str| format!("/api/v1/hello/relay?path={}", urlencode(path));

    let answer = server
        .anonymous()
        .get(&relay("/api/v1/hello/ping?x=1"))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["message"], "pong");

    // The inner route needs hello:read: anonymous 401, a plain user 403,
    // the admin 200, exactly as over HTTP.
    let answer = server
        .anonymous()
        .get(&relay("/api/v1/hello/greetings"))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer["status"], 401, "{answer}");
    assert_eq!(answer["body"]["error"]["code"], "AUTHENTICATION_ERROR");
    let answer = server
        .as_(&user)
        .get(&relay("/api/v1/hello/greetings"))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer["status"], 403, "{answer}");
    assert_eq!(answer["body"]["error"]["code"], "AUTHORIZATION_ERROR");
    let answer = server
        .as_(&admin)
        .get(&relay("/api/v1/hello/greetings"))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["total"], 0);

    let answer = server
        .anonymous()
        .get(&relay("/api/v1/nowhere/x"))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer["status"], 404, "{answer}");
    assert_eq!(answer["body"]["error"]["code"], "NOT_FOUND");

    // A relay to itself, forever: refused once calls nest too deep, and
    // the host keeps serving.
    let mut looping = "/api/v1/hello/ping".to_string();
    for _ in 0..12 {
        looping = format!("/api/v1/hello/relay?path={}", urlencode(&looping));
    }
    let answer = server
        .anonymous()
        .get(&looping)
        .expect(StatusCode::OK)
        .await;
    assert!(
        answer.to_string().contains("nested more than 8 deep"),
        "{answer}"
    );

    // Calls between plugins count in the callee's metrics; these greetings
    // were only ever reached through the relay (401, 403, 200).
    let metrics = server.metrics_text().await;
    for status in ["200", "401", "403"] {
        let line = format!(
            r#"xcore_plugin_requests_total{{plugin="hello",route="/api/v1/hello/greetings",status="{status}"}} 1"#
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }

    let body = server
        .anonymous()
        .get("/api/v1/hello/steal")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("table users is outside plugin hello's tables")),
        "{body}"
    );
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_may_accept_larger_bodies_up_to_the_operators_cap() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), HELLO);
    let plugins_dir = dir.path().display().to_string();
    let server = TestServer::start_with(move |config| {
        config.plugins.dir = plugins_dir;
        config.server.max_body_bytes = 64 * 1024;
        config.plugins.max_route_body_bytes = 2 * 1024 * 1024;
    })
    .await;
    let admin = server.admin_token().await;
    let post = |path: &str, bytes: usize| {
        server
            .post(path)
            .bearer_auth(&admin)
            .header("content-type", "application/octet-stream")
            .body(vec![b'x'; bytes])
            .send()
    };

    // /measure declares 4 MiB, capped here at 2 MiB; /greetings declares
    // nothing and keeps the server's 64 KiB.
    let answer = expect_status(
        post("/api/v1/hello/measure", 1024 * 1024)
            .await
            .expect("send"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["bytes"], 1024 * 1024);
    // A 413 goes out before the rest of the body is read; a client still
    // writing it may see the connection close before it reads the answer
    // (HTTP/1.1 has no way around that race), so a reset is tried again.
    for (path, bytes) in [
        ("/api/v1/hello/measure", 3 * 1024 * 1024),
        ("/api/v1/hello/greetings", 100 * 1024),
    ] {
        let mut attempts = 0;
        let too_large = loop {
            attempts += 1;
            match post(path, bytes).await {
                Ok(response) => break response,
                Err(error) if attempts < 5 && error.is_request() => continue,
                Err(error) => panic!("send {path}: {error}"),
            }
        };
        expect_error(too_large, StatusCode::PAYLOAD_TOO_LARGE, "VALIDATION_ERROR").await;
    }
    server.stop().await;
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_and_enable_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&hello_variant(""), dir.path(), HELLO);
    let server = start_with_plugins(dir.path()).await;
    let admin = server.admin_token().await;
    let mut events = server.state.events.subscribe();

    let disabled = server
        .as_(&admin)
        .post("/system/plugins/hello/disable")
        .send()
        .await;
    assert_eq!(
        expect_status(disabled, StatusCode::OK).await,
        json!({"id": "hello", "active": false})
    );
    assert_eq!(
        next_bus_event(&mut events, "plugin.disabled").await["id"],
        "hello"
    );
    server
        .anonymous()
        .get("/api/v1/hello/ping")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let active_only = server
        .as_(&admin)
        .get("/system/plugins?active_only=true")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(active_only["total"], 0);
    let db = server.stop().await;

    // The state is in the database: still disabled after a restart.
    let dir_path = dir.path().to_path_buf();
    let server = TestServer::start_on(db, move |config| {
        config.plugins.dir = dir_path.display().to_string()
    })
    .await;
    let admin = server.admin_token().await;
    assert_eq!(
        server
            .as_(&admin)
            .get("/system/plugins/hello")
            .expect(StatusCode::OK)
            .await["state"],
        "disabled"
    );
    server
        .anonymous()
        .get("/api/v1/hello/ping")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let mut events = server.state.events.subscribe();
    let enabled = server
        .as_(&admin)
        .post("/system/plugins/hello/enable")
        .send()
        .await;
    assert_eq!(
        expect_status(enabled, StatusCode::OK).await,
        json!({"id": "hello", "active": true})
    );
    assert_eq!(
        next_bus_event(&mut events, "plugin.enabled").await["id"],
        "hello"
    );
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong"
    );
    server
        .as_(&admin)
        .post("/system/plugins/nope/enable")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_new_code_with_old_data_and_a_bad_build_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&hello_variant(""), dir.path(), HELLO);
    let server = start_with_plugins(dir.path()).await;
    let admin = server.admin_token().await;
    let mut events = server.state.events.subscribe();
    server
        .as_(&admin)
        .post("/api/v1/hello/greetings")
        .json(json!({"text": "kept across reloads"}))
        .expect(StatusCode::CREATED)
        .await;

    deploy(&testbed_variant("v2"), dir.path(), HELLO);
    let reloaded = server
        .as_(&admin)
        .post("/system/plugins/hello/reload")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(reloaded["status"], "reloaded");
    assert_eq!(reloaded["generation"], 2);
    assert_eq!(
        next_bus_event(&mut events, "plugin.reloaded").await["generation"],
        2
    );
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong v2"
    );
    let list = server
        .as_(&admin)
        .get("/api/v1/hello/greetings")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["items"][0]["text"], "kept across reloads");
    let details = server
        .as_(&admin)
        .get("/system/plugins/hello")
        .expect(StatusCode::OK)
        .await;
    assert!(details["last_reload"].is_string());
    assert_eq!(details["generation"], 2);

    // A truncated file is refused; generation 2 keeps serving.
    let good = std::fs::read(dir.path().join(HELLO)).expect("read");
    let cut = dir.path().join("cut.so");
    std::fs::write(&cut, &good[..good.len() / 3]).expect("write");
    deploy(&cut, dir.path(), HELLO);
    let body = server
        .as_(&admin)
        .post("/system/plugins/hello/reload")
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR")
        .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("truncated")),
        "{body}"
    );
    assert!(next_bus_event(&mut events, "plugin.failed").await["error"]
        .as_str()
        .is_some_and(|e| e.contains("truncated")));
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong v2"
    );
    let details = server
        .as_(&admin)
        .get("/system/plugins/hello")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(details["state"], "active");
    assert_eq!(details["generation"], 2);
    assert!(details["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("truncated")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_listed_with_their_error_and_never_stop_the_host() {
    let dir = tempfile::tempdir().expect("dir");
    let hello = hello_variant("");
    deploy(&hello, dir.path(), HELLO);
    let bytes = std::fs::read(&hello).expect("read");
    std::fs::write(
        dir.path().join("libxcore_plugin_cut.so"),
        &bytes[..bytes.len() / 2],
    )
    .expect("write");
    std::fs::write(
        dir.path().join("libxcore_plugin_garbage.so"),
        vec![0x42u8; 8192],
    )
    .expect("write");
    std::fs::write(dir.path().join("libxcore_plugin_empty.so"), b"").expect("write");
    // Real hello code under another plugin's file name.
    std::fs::copy(&hello, dir.path().join("libxcore_plugin_impostor.so")).expect("copy");
    std::fs::write(dir.path().join("README.txt"), "not a plugin").expect("write");
    let server = start_with_plugins(dir.path()).await;
    let admin = server.admin_token().await;

    let list = server
        .as_(&admin)
        .get("/system/plugins")
        .expect(StatusCode::OK)
        .await;
    let by_id = |id: &str| {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .expect(id)
    };
    assert_eq!(list["total"], 5);
    assert_eq!(by_id("hello")["state"], "active");
    for (id, reason) in [
        ("cut", "truncated"),
        ("garbage", "not an ELF"),
        ("empty", "empty"),
        ("impostor", "manifest says"),
    ] {
        let plugin = by_id(id);
        assert_eq!(plugin["state"], "refused", "{plugin}");
        assert_eq!(plugin["active"], false);
        assert!(
            plugin["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(reason)),
            "{id}: {plugin}"
        );
    }
    server
        .as_(&admin)
        .post("/system/plugins/garbage/enable")
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_and_dependency_conflicts_are_refused_with_the_names() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&hello_variant(""), dir.path(), HELLO);
    deploy(
        &testbed_variant("alias"),
        dir.path(),
        "libxcore_plugin_hello_alias.so",
    );
    deploy(
        &testbed_variant("needs-ghost"),
        dir.path(),
        "libxcore_plugin_hello_needy.so",
    );
    let server = start_with_plugins(dir.path()).await;
    let admin = server.admin_token().await;

    let alias = server
        .as_(&admin)
        .get("/system/plugins/hello_alias")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(alias["state"], "refused");
    assert_eq!(
        alias["last_error"],
        "api_prefix /api/v1/hello is already used by plugin hello"
    );
    let needy = server
        .as_(&admin)
        .get("/system/plugins/hello_needy")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(needy["state"], "refused");
    assert_eq!(
        needy["last_error"],
        "plugin hello_needy requires ghost ^1, which is not installed"
    );
    // The first owner of the prefix is untouched.
    assert_eq!(
        server
            .as_(&admin)
            .get("/system/plugins/hello")
            .expect(StatusCode::OK)
            .await["state"],
        "active"
    );
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["plugin"],
        "hello"
    );
    server
        .anonymous()
        .get("/api/v1/hello-needy/ping")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_an_abi_incompatible_build_is_refused_and_the_old_one_serves() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&hello_variant(""), dir.path(), HELLO);
    let server = start_with_plugins(dir.path()).await;
    let admin = server.admin_token().await;

    deploy(&testbed_variant("abi-break"), dir.path(), HELLO);
    let body = server
        .as_(&admin)
        .post("/system/plugins/hello/reload")
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR")
        .await;
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("incompatible plugin-api layout"),
        "{message}"
    );
    assert!(
        message.len() < 2000,
        "the layout report is cut to its Error: lines ({} bytes)",
        message.len()
    );
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong"
    );
    let details = server
        .as_(&admin)
        .get("/system/plugins/hello")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(
        (details["state"].as_str(), details["generation"].as_u64()),
        (Some("active"), Some(1))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_by_upload_and_by_path_then_uninstall_with_and_without_purge() {
    let plugins_dir = tempfile::tempdir().expect("dir");
    let sources = tempfile::tempdir().expect("sources");
    let allowed = sources.path().to_path_buf();
    let dir = plugins_dir.path().to_path_buf();
    let server = TestServer::start_with(move |config| {
        config.plugins.dir = dir.display().to_string();
        config.plugins.install_from = vec![allowed.display().to_string()];
    })
    .await;
    let admin = server.admin_token().await;
    let hello = std::fs::read(hello_variant("")).expect("read");
    let upload = |bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("plugin.so"),
        );
        server
            .post("/system/plugins")
            .bearer_auth(&admin)
            .multipart(form)
            .send()
    };

    // Refused uploads never land in the plugins directory.
    let garbage = upload(vec![7u8; 4096]).await.expect("send");
    let body = expect_error(garbage, StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR").await;
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("not an ELF")));
    let cut = upload(hello[..hello.len() / 2].to_vec())
        .await
        .expect("send");
    expect_error(cut, StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR").await;
    assert!(std::fs::read_dir(plugins_dir.path())
        .expect("dir")
        .next()
        .is_none());

    let needy = std::fs::read(testbed_variant("needs-ghost")).expect("read");
    let missing = upload(needy).await.expect("send");
    let body = expect_error(missing, StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("requires ghost ^1")),
        "{body}"
    );

    let installed = upload(hello.clone()).await.expect("send");
    let installed = expect_status(installed, StatusCode::CREATED).await;
    assert_eq!(
        (installed["id"].as_str(), installed["status"].as_str()),
        (Some("hello"), Some("installed"))
    );
    assert!(plugins_dir.path().join(HELLO).exists());
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong"
    );
    expect_error(
        upload(hello.clone()).await.expect("send"),
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    let alias = upload(std::fs::read(testbed_variant("alias")).expect("read"))
        .await
        .expect("send");
    let body = expect_error(alias, StatusCode::CONFLICT, "CONFLICT").await;
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("already used by plugin hello")));

    server
        .as_(&admin)
        .post("/api/v1/hello/greetings")
        .json(json!({"text": "survives an uninstall"}))
        .expect(StatusCode::CREATED)
        .await;

    // Uninstall keeps the data; reinstalling by path finds it again.
    server
        .as_(&admin)
        .delete("/system/plugins/hello")
        .expect(StatusCode::NO_CONTENT)
        .await;
    assert!(!plugins_dir.path().join(HELLO).exists());
    server
        .anonymous()
        .get("/api/v1/hello/ping")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .get("/system/plugins/hello")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;

    let source = sources.path().join("hello.so");
    std::fs::write(&source, &hello).expect("write");
    let body = server
        .as_(&admin)
        .post("/system/plugins")
        .json(json!({"name": "hello", "source": "/etc/hostname", "version": "0.1.0"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(body["error"]["details"][0]["field"], "source");
    server
        .as_(&admin)
        .post("/system/plugins")
        .json(json!({"name": "other", "source": source.display().to_string()}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    server.as_(&admin).post("/system/plugins").json(json!({"name": "hello", "source": source.display().to_string(), "version": env!("CARGO_PKG_VERSION")})).expect(StatusCode::CREATED).await;
    let list = server
        .as_(&admin)
        .get("/api/v1/hello/greetings")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["items"][0]["text"], "survives an uninstall");

    // Purge drops everything the plugin's SQL may own: a table named
    // exactly after the plugin, tables its other tables reference, views.
    // (Created here directly: hello's own migration makes one table.)
    for ddl in [
        "CREATE TABLE hello (id BIGINT PRIMARY KEY)",
        "CREATE TABLE hello_tags (id BIGINT PRIMARY KEY, owner BIGINT REFERENCES hello (id))",
        "INSERT INTO hello (id) VALUES (1)",
        "INSERT INTO hello_tags (id, owner) VALUES (1, 1)",
        "CREATE VIEW hello_tag_view AS SELECT t.id FROM hello_tags t JOIN hello h ON h.id = t.owner",
    ] {
        sqlx::query(ddl)
            .execute(server.state.db.pool())
            .await
            .expect(ddl);
    }
    server
        .as_(&admin)
        .delete("/system/plugins/hello?purge=true")
        .expect(StatusCode::NO_CONTENT)
        .await;
    for table in ["hello_greetings", "hello", "hello_tags", "hello_tag_view"] {
        let gone = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(server.state.db.pool())
            .await;
        assert!(gone.is_err(), "{table} is gone");
    }
    let history: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM xcore_migrations WHERE owner = 'plugin:hello'")
            .fetch_one(server.state.db.pool())
            .await
            .expect("count");
    assert_eq!(history, 0);
    server
        .as_(&admin)
        .delete("/system/plugins/hello")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_keeps_panicking_is_quarantined_until_enabled() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), HELLO);
    let dir_path = dir.path().to_path_buf();
    let server = TestServer::start_with(move |config| {
        config.plugins.dir = dir_path.display().to_string();
        config.plugins.quarantine_after_panics = 3;
    })
    .await;
    let admin = server.admin_token().await;
    let mut events = server.state.events.subscribe();

    // A success in between resets the streak.
    for path in [
        "/api/v1/hello/panic",
        "/api/v1/hello/panic",
        "/api/v1/hello/ping",
    ] {
        server.get(path).send().await.expect("send");
    }
    assert_eq!(
        server
            .as_(&admin)
            .get("/system/plugins/hello")
            .expect(StatusCode::OK)
            .await["state"],
        "active"
    );
    for _ in 0..3 {
        let panic = server
            .get("/api/v1/hello/panic")
            .send()
            .await
            .expect("send");
        expect_error(panic, StatusCode::INTERNAL_SERVER_ERROR, "PLUGIN_ERROR").await;
    }
    let failed = next_bus_event(&mut events, "plugin.failed").await;
    assert_eq!(
        (failed["id"].as_str(), failed["quarantined"].as_bool()),
        (Some("hello"), Some(true))
    );
    let details = server
        .as_(&admin)
        .get("/system/plugins/hello")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(details["state"], "disabled");
    assert_eq!(
        details["last_error"],
        "quarantined after 3 consecutive panics"
    );
    server
        .anonymous()
        .get("/api/v1/hello/ping")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;

    server
        .as_(&admin)
        .post("/system/plugins/hello/enable")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(
        server
            .anonymous()
            .get("/api/v1/hello/ping")
            .expect(StatusCode::OK)
            .await["message"],
        "pong"
    );
    // The streak starts over after an administrator's enable.
    for _ in 0..2 {
        server
            .get("/api/v1/hello/panic")
            .send()
            .await
            .expect("send");
    }
    assert_eq!(
        server
            .as_(&admin)
            .get("/system/plugins/hello")
            .expect(StatusCode::OK)
            .await["state"],
        "active"
    );
    server.stop().await;
}

/// Polls `condition` until it holds or 30 s pass.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_installs_reloads_and_uninstalls_from_the_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let dir_path = dir.path().to_path_buf();
    let (v1, v2) = (hello_variant(""), testbed_variant("v2"));
    let server = TestServer::start_with(move |config| {
        config.plugins.dir = dir_path.display().to_string();
        config.plugins.watch = true;
        config.plugins.watch_settle_ms = 200;
    })
    .await;
    let ping = |server: &TestServer| {
        let request = server.get("/api/v1/hello/ping").send();
        async move {
            let response = request.await.expect("send");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                body["message"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    let mut events = server.state.events.subscribe();

    deploy(&v1, dir.path(), HELLO);
    eventually("the new file is installed", async || {
        ping(&server).await == (StatusCode::OK, "pong".into())
    })
    .await;
    assert_eq!(
        next_bus_event(&mut events, "plugin.loaded").await["id"],
        "hello"
    );

    deploy(&v2, dir.path(), HELLO);
    eventually("the changed file is reloaded", async || {
        ping(&server).await == (StatusCode::OK, "pong v2".into())
    })
    .await;
    assert_eq!(
        next_bus_event(&mut events, "plugin.reloaded").await["id"],
        "hello"
    );

    std::fs::remove_file(dir.path().join(HELLO)).expect("remove");
    eventually("the removed file is uninstalled", async || {
        ping(&server).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(
        next_bus_event(&mut events, "plugin.uninstalled").await["purged"],
        false
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_sections_set_the_prefix_the_first_state_and_the_config() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&hello_variant(""), dir.path(), HELLO);
    let dir_path = dir.path().to_path_buf();
    let configure = move |config: &mut xcore::Config| {
        config.plugins.dir = dir_path.display().to_string();
        let mut settings = xcore::config::PluginSettings {
            api_prefix: Some("/greeter".into()),
            enabled: Some(false),
            ..Default::default()
        };
        settings
            .config
            .insert("greeting".into(), toml::Value::String("salut".into()));
        config.plugins.settings.insert("hello".into(), settings);
    };
    let server = TestServer::start_with(configure.clone()).await;
    let admin = server.admin_token().await;
    let details = server
        .as_(&admin)
        .get("/system/plugins/hello")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(
        (details["state"].as_str(), details["api_prefix"].as_str()),
        (Some("disabled"), Some("/greeter"))
    );
    server
        .as_(&admin)
        .post("/system/plugins/hello/enable")
        .expect(StatusCode::OK)
        .await;
    let ping = server
        .anonymous()
        .get("/greeter/ping")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(
        (ping["message"].as_str(), ping["greeting"].as_str()),
        (Some("pong"), Some("salut"))
    );
    server
        .anonymous()
        .get("/api/v1/hello/ping")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    // "enabled = false" only decides the first start: the enable sticks.
    let db = server.stop().await;
    let server = TestServer::start_on(db, configure).await;
    assert_eq!(
        server
            .anonymous()
            .get("/greeter/ping")
            .expect(StatusCode::OK)
            .await["greeting"],
        "salut"
    );
    server.stop().await;
}
