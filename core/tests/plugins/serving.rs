//! Plugins that load at start and serve: `/system/plugins`, RBAC on the
//! plugin routes, calls that carry the caller's rights, SQL kept in the
//! plugin's tables, larger bodies up to the operator's cap, and the
//! `[plugins.<id>]` sections (prefix, first state, config).

use crate::common::{
    assert_error_mentions, deploy, expect_error, expect_status, hello_variant, testbed_variant,
    TestServer,
};
use crate::{serve_hello, urlencode, HELLO, PING};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_load_at_start_and_serve_with_rbac() {
    let (_dir, server, admin) = serve_hello(&testbed_variant("")).await;
    let (_, user) = server.user_token("plain@example.com").await;

    let list = server.get_as(&admin, "/system/plugins").await;
    assert_eq!(list["total"], 1);
    let item = &list["items"][0];
    assert_eq!(item["id"], "hello");
    assert_eq!(item["active"], true);
    assert_eq!(item["api_prefix"], "/api/v1/hello");
    assert_eq!(item["tags"], json!(["fixture"]));
    assert!(item["loaded_at"].is_string());
    let details = server.plugin_details(&admin, "hello").await;
    assert_eq!(details["state"], "active");
    assert_eq!(details["generation"], 1);
    assert_eq!(details["plugin_api_version"], xcore_plugin_sdk::SDK_VERSION);
    assert_eq!(details["checksum"].as_str().map(str::len), Some(64));
    assert_eq!(details["leaked_generations"], 0);
    // The seed's shape: `routes` are full paths, each once (GET and POST
    // share /greetings); `endpoints` say the method and permission.
    let routes = details["routes"].as_array().expect("routes");
    assert!(routes.contains(&json!("/api/v1/hello/ping")), "{routes:?}");
    let greetings = routes
        .iter()
        .filter(|route| *route == "/api/v1/hello/greetings")
        .count();
    assert_eq!(greetings, 1, "{routes:?}");
    let endpoints = details["endpoints"].as_array().expect("endpoints");
    for endpoint in [
        json!({"method": "GET", "path": "/api/v1/hello/ping", "permission": null}),
        json!({"method": "GET", "path": "/api/v1/hello/greetings", "permission": "hello:read"}),
        json!({"method": "POST", "path": "/api/v1/hello/greetings", "permission": "hello:write"}),
    ] {
        assert!(endpoints.contains(&endpoint), "{endpoint} in {endpoints:?}");
    }
    // Every endpoint's path is a route, and every route some endpoint's.
    let mut distinct: Vec<&Value> = Vec::new();
    for path in endpoints.iter().map(|e| &e["path"]) {
        if !distinct.contains(&path) {
            distinct.push(path);
        }
    }
    assert_eq!(routes.iter().collect::<Vec<_>>(), distinct);
    assert!(
        endpoints.len() > routes.len(),
        "several methods share a path"
    );
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
    assert_eq!(server.public_get(PING).await["message"], "pong");
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
    assert_error_mentions(&body, "hello:read");
    let created = server
        .create_as(
            &admin,
            "/api/v1/hello/greetings",
            json!({"text": "bonjour"}),
        )
        .await;
    assert_eq!(created["text"], "bonjour");
    let list = server.get_as(&admin, "/api/v1/hello/greetings").await;
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
    let body = server
        .anonymous()
        .get("/api/v1/hello/panic")
        .expect_error(StatusCode::INTERNAL_SERVER_ERROR, "PLUGIN_ERROR")
        .await;
    assert_error_mentions(&body, "panicked");
    assert_eq!(server.public_get(PING).await["message"], "pong");
    server.public_get("/health").await;

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
    let (_dir, server, admin) = serve_hello(&testbed_variant("")).await;
    let (_, user) = server.user_token("relay@example.com").await;
    let relay = |path: &str| format!("/api/v1/hello/relay?path={}", urlencode(path));

    // The inner route needs hello:read: anonymous 401, a plain user 403,
    // the admin 200, exactly as over HTTP; an unknown route is 404.
    for (who, caller, path, status, field, expected) in [
        (
            "anonymous",
            server.anonymous(),
            "/api/v1/hello/ping?x=1",
            200,
            "/body/message",
            json!("pong"),
        ),
        (
            "anonymous",
            server.anonymous(),
            "/api/v1/hello/greetings",
            401,
            "/body/error/code",
            json!("AUTHENTICATION_ERROR"),
        ),
        (
            "a plain user",
            server.as_(&user),
            "/api/v1/hello/greetings",
            403,
            "/body/error/code",
            json!("AUTHORIZATION_ERROR"),
        ),
        (
            "the admin",
            server.as_(&admin),
            "/api/v1/hello/greetings",
            200,
            "/body/total",
            json!(0),
        ),
        (
            "anonymous",
            server.anonymous(),
            "/api/v1/nowhere/x",
            404,
            "/body/error/code",
            json!("NOT_FOUND"),
        ),
    ] {
        let answer = caller.get(&relay(path)).expect(StatusCode::OK).await;
        assert_eq!(
            answer["status"], status,
            "{who} relayed to {path}: {answer}"
        );
        assert_eq!(
            answer.pointer(field),
            Some(&expected),
            "{who} relayed to {path}: {answer}"
        );
    }

    // A relay to itself, forever: refused once calls nest too deep, and
    // the host keeps serving.
    let mut looping = "/api/v1/hello/ping".to_string();
    for _ in 0..12 {
        looping = format!("/api/v1/hello/relay?path={}", urlencode(&looping));
    }
    let answer = server.public_get(&looping).await;
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
    assert_error_mentions(&body, "table users is outside plugin hello's tables");
    assert_eq!(server.public_get(PING).await["message"], "pong");
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
    let details = server.plugin_details(&admin, "hello").await;
    assert_eq!(
        (details["state"].as_str(), details["api_prefix"].as_str()),
        (Some("disabled"), Some("/greeter"))
    );
    server.plugin_action(&admin, "hello", "enable").await;
    let ping = server.public_get("/greeter/ping").await;
    assert_eq!(
        (ping["message"].as_str(), ping["greeting"].as_str()),
        (Some("pong"), Some("salut"))
    );
    server.assert_not_served(PING).await;
    // "enabled = false" only decides the first start: the enable sticks.
    let db = server.stop().await;
    let server = TestServer::start_on(db, configure).await;
    assert_eq!(
        server.public_get("/greeter/ping").await["greeting"],
        "salut"
    );
    server.stop().await;
}
