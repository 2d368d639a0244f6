//! A loaded plugin's life: disabled and enabled (and so across a
//! restart), reloaded to new code with the old data, a bad or
//! ABI-incompatible build refused while the old generation serves, and a
//! plugin that keeps panicking quarantined until enabled.

use crate::common::{
    assert_error_mentions, deploy, hello_variant, next_bus_event, testbed_variant, TestServer,
};
use crate::{serve_hello, HELLO, PING};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_and_enable_survive_a_restart() {
    let (dir, server, admin) = serve_hello(&hello_variant("")).await;
    let mut events = server.state.events.subscribe();

    let disabled = server.plugin_action(&admin, "hello", "disable").await;
    assert_eq!(disabled, json!({"id": "hello", "active": false}));
    assert_eq!(
        next_bus_event(&mut events, "plugin.disabled").await["id"],
        "hello"
    );
    server.assert_not_served(PING).await;
    let active_only = server
        .get_as(&admin, "/system/plugins?active_only=true")
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
        server.plugin_details(&admin, "hello").await["state"],
        "disabled"
    );
    server.assert_not_served(PING).await;
    let mut events = server.state.events.subscribe();
    let enabled = server.plugin_action(&admin, "hello", "enable").await;
    assert_eq!(enabled, json!({"id": "hello", "active": true}));
    assert_eq!(
        next_bus_event(&mut events, "plugin.enabled").await["id"],
        "hello"
    );
    assert_eq!(server.public_get(PING).await["message"], "pong");
    server
        .as_(&admin)
        .post("/system/plugins/nope/enable")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

/// The plugin's ledger rows: version, checksum and when each was applied.
async fn hello_ledger(server: &TestServer) -> Vec<(i64, String, String)> {
    sqlx::query_as(
        "SELECT version, checksum, applied_at FROM xcore_migrations
         WHERE owner = 'plugin:hello' ORDER BY version",
    )
    .fetch_all(server.state.db.pool())
    .await
    .expect("ledger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_migrates_nothing_again_and_still_refuses_a_changed_script() {
    let (dir, server, _) = serve_hello(&hello_variant("")).await;
    let ledger = hello_ledger(&server).await;
    assert!(!ledger.is_empty(), "hello has a migration");
    let dir_path = dir.path().to_path_buf();
    let configure = move |config: &mut xcore::config::Config| {
        config.plugins.dir = dir_path.display().to_string()
    };
    // Everything recorded: served, and the ledger untouched.
    let server = TestServer::start_on(server.stop().await, configure.clone()).await;
    assert_eq!(server.public_get(PING).await["message"], "pong");
    assert_eq!(hello_ledger(&server).await, ledger);
    // A recorded checksum that no longer matches the script: refused, as
    // on the locked path, not served on the strength of the ledger.
    sqlx::query("UPDATE xcore_migrations SET checksum = 'edited' WHERE owner = 'plugin:hello'")
        .execute(server.state.db.pool())
        .await
        .expect("tamper");
    let server = TestServer::start_on(server.stop().await, configure).await;
    let admin = server.admin_token().await;
    let details = server.plugin_details(&admin, "hello").await;
    assert_eq!(details["state"], "refused", "{details}");
    let error = details["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("was changed after it was applied"),
        "{details}"
    );
    server.assert_not_served(PING).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_new_code_with_old_data_and_a_bad_build_is_refused() {
    let (dir, server, admin) = serve_hello(&hello_variant("")).await;
    let mut events = server.state.events.subscribe();
    server
        .create_as(
            &admin,
            "/api/v1/hello/greetings",
            json!({"text": "kept across reloads"}),
        )
        .await;

    deploy(&testbed_variant("v2"), dir.path(), HELLO);
    let reloaded = server.plugin_action(&admin, "hello", "reload").await;
    assert_eq!(reloaded["status"], "reloaded");
    assert_eq!(reloaded["generation"], 2);
    assert_eq!(
        next_bus_event(&mut events, "plugin.reloaded").await["generation"],
        2
    );
    assert_eq!(server.public_get(PING).await["message"], "pong v2");
    let list = server.get_as(&admin, "/api/v1/hello/greetings").await;
    assert_eq!(list["items"][0]["text"], "kept across reloads");
    let details = server.plugin_details(&admin, "hello").await;
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
    assert_error_mentions(&body, "truncated");
    assert!(next_bus_event(&mut events, "plugin.failed").await["error"]
        .as_str()
        .is_some_and(|e| e.contains("truncated")));
    assert_eq!(server.public_get(PING).await["message"], "pong v2");
    let details = server.plugin_details(&admin, "hello").await;
    assert_eq!(details["state"], "active");
    assert_eq!(details["generation"], 2);
    assert!(details["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("truncated")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_an_abi_incompatible_build_is_refused_and_the_old_one_serves() {
    let (dir, server, admin) = serve_hello(&hello_variant("")).await;

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
    assert_eq!(server.public_get(PING).await["message"], "pong");
    let details = server.plugin_details(&admin, "hello").await;
    assert_eq!(
        (details["state"].as_str(), details["generation"].as_u64()),
        (Some("active"), Some(1))
    );
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
        server.plugin_details(&admin, "hello").await["state"],
        "active"
    );
    for _ in 0..3 {
        server
            .anonymous()
            .get("/api/v1/hello/panic")
            .expect_error(StatusCode::INTERNAL_SERVER_ERROR, "PLUGIN_ERROR")
            .await;
    }
    let failed = next_bus_event(&mut events, "plugin.failed").await;
    assert_eq!(
        (failed["id"].as_str(), failed["quarantined"].as_bool()),
        (Some("hello"), Some(true))
    );
    let details = server.plugin_details(&admin, "hello").await;
    assert_eq!(details["state"], "disabled");
    assert_eq!(
        details["last_error"],
        "quarantined after 3 consecutive panics"
    );
    server.assert_not_served(PING).await;

    server.plugin_action(&admin, "hello", "enable").await;
    assert_eq!(server.public_get(PING).await["message"], "pong");
    // The streak starts over after an administrator's enable.
    for _ in 0..2 {
        server
            .get("/api/v1/hello/panic")
            .send()
            .await
            .expect("send");
    }
    assert_eq!(
        server.plugin_details(&admin, "hello").await["state"],
        "active"
    );
    server.stop().await;
}

/// A plugins directory with hello, and a checker that records each file
/// it is asked about before running the real one; the log's path.
fn counted_checker(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = dir.join("checks.log");
    let script =
        crate::common::wrapped_checker(dir, &format!("echo \"$3\" >> '{}'", log.display()));
    (script, log)
}

fn checks(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |text| text.lines().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_loaded_before_skip_the_child_process_check_and_new_bytes_do_not() {
    let plugins = tempfile::tempdir().expect("plugins");
    let scratch = tempfile::tempdir().expect("scratch");
    deploy(&hello_variant(""), plugins.path(), HELLO);
    let (checker, log) = counted_checker(scratch.path());
    let configure = |config: &mut xcore::Config| {
        config.plugins.dir = plugins.path().display().to_string();
        config.plugins.checker = checker.display().to_string();
        config.plugins.watch = false;
    };
    let server = TestServer::start_with(configure).await;
    assert_eq!(checks(&log), 1, "a first start checks the library");
    let admin = server.admin_token().await;
    server.public_get(PING).await;

    // The same bytes again: a reload and a restart load them directly.
    server.plugin_action(&admin, "hello", "reload").await;
    let server = TestServer::start_on(server.stop().await, configure).await;
    server.public_get(PING).await;
    assert_eq!(checks(&log), 1, "unchanged bytes are not checked again");

    // New bytes are, whichever way they come: a reload of a changed file,
    // and a restart after a file that failed the check.
    let admin = server.admin_token().await;
    deploy(&testbed_variant(""), plugins.path(), HELLO);
    server.plugin_action(&admin, "hello", "reload").await;
    assert_eq!(checks(&log), 2, "a changed file is checked");
    std::fs::write(plugins.path().join(HELLO), b"\x7fELF not really").expect("corrupt");
    let refused = server
        .as_(&admin)
        .post("/system/plugins/hello/reload")
        .send()
        .await;
    assert!(
        !refused.status().is_success(),
        "a corrupted file is refused"
    );
    let server = TestServer::start_on(server.stop().await, configure).await;
    assert_eq!(
        checks(&log),
        4,
        "a file refused last time is checked again at the next start"
    );
    server.stop().await;
}
