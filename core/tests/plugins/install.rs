//! Getting plugins in and out: bad files listed with their error, prefix
//! and dependency conflicts refused with the names, install by upload and
//! by path, uninstall with and without purge, and the directory watcher.

use crate::common::{
    assert_error_mentions, deploy, expect_error, expect_status, hello_variant, next_bus_event,
    testbed_variant, TestServer,
};
use crate::{eventually, serve_hello, start_with_plugins, HELLO, PING};
use reqwest::StatusCode;
use serde_json::{json, Value};

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

    let list = server.get_as(&admin, "/system/plugins").await;
    let by_id = |id: &str| {
        crate::common::items(&list)
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
    assert_eq!(server.public_get(PING).await["message"], "pong");
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

    let alias = server.plugin_details(&admin, "hello_alias").await;
    assert_eq!(alias["state"], "refused");
    assert_eq!(
        alias["last_error"],
        "api_prefix /api/v1/hello is already used by plugin hello"
    );
    let needy = server.plugin_details(&admin, "hello_needy").await;
    assert_eq!(needy["state"], "refused");
    assert_eq!(
        needy["last_error"],
        "plugin hello_needy requires ghost ^1, which is not installed"
    );
    // The first owner of the prefix is untouched.
    assert_eq!(
        server.plugin_details(&admin, "hello").await["state"],
        "active"
    );
    assert_eq!(server.public_get(PING).await["plugin"], "hello");
    server.assert_not_served("/api/v1/hello-needy/ping").await;
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
    assert_error_mentions(&body, "not an ELF");
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
    assert_error_mentions(&body, "requires ghost ^1");

    let installed = upload(hello.clone()).await.expect("send");
    let installed = expect_status(installed, StatusCode::CREATED).await;
    assert_eq!(
        (installed["id"].as_str(), installed["status"].as_str()),
        (Some("hello"), Some("installed"))
    );
    assert!(plugins_dir.path().join(HELLO).exists());
    assert_eq!(server.public_get(PING).await["message"], "pong");
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
    assert_error_mentions(&body, "already used by plugin hello");

    server
        .create_as(
            &admin,
            "/api/v1/hello/greetings",
            json!({"text": "survives an uninstall"}),
        )
        .await;

    // Uninstall keeps the data; reinstalling by path finds it again.
    server.delete_as(&admin, "/system/plugins/hello").await;
    assert!(!plugins_dir.path().join(HELLO).exists());
    server.assert_not_served(PING).await;
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
    server.create_as(&admin, "/system/plugins", json!({"name": "hello", "source": source.display().to_string(), "version": env!("CARGO_PKG_VERSION")})).await;
    let list = server.get_as(&admin, "/api/v1/hello/greetings").await;
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
        .delete_as(&admin, "/system/plugins/hello?purge=true")
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

/// A plugin may grant its permissions by default to the built-in `user`
/// role only: a library naming another role is refused before any of its
/// permissions is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_grant_to_a_role_other_than_user_is_refused() {
    let (_dir, server, admin) = serve_hello(&testbed_variant("greedy-default")).await;
    let hello = server.plugin_details(&admin, "hello").await;
    assert_eq!(hello["state"], "refused", "{hello}");
    assert!(
        hello["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("default role \"manager\" is not allowed")),
        "{hello}"
    );
    let permissions = server.get_as(&admin, "/admin/permissions?limit=100").await;
    assert!(
        !permissions.to_string().contains("hello:read"),
        "{permissions}"
    );
    server.stop().await;
}
