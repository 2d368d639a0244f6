//! Attacks on a running server through its plugin entrances, the way an
//! operator's mistake or an attacker with an uploaded library would make
//! them: a hostile plugin (`plugins/intruder`) whose migration reaches for
//! the host's tables, at every entrance (upload, install by path, a file
//! dropped into the watched directory, start-up, reload); its run-time SQL
//! with quoted and parenthesised names; and corrupted copies of a real
//! plugin that kill the dynamic loader, which must kill only the child
//! process that loads every new library first.

mod common;

use std::{path::Path, time::Duration};

use common::{deploy, expect_error, expect_status, hello_variant, plugin_library, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use xcore::Config;

const INTRUDER: &str = "libxcore_plugin_intruder.so";
const HELLO: &str = "libxcore_plugin_hello.so";
/// Read by the intruder's manifest: its migration 2.
const MIGRATION_VARIABLE: &str = "XCORE_INTRUDER_MIGRATION";

fn intruder_library() -> std::path::PathBuf {
    plugin_library("xcore-plugin-intruder", "xcore_plugin_intruder", "")
}

/// What the attacks aim at: every account's name and hash, the session
/// tokens and the grants, read on the host's own connection.
async fn host_state(server: &TestServer) -> Value {
    let pool = server.state.db.pool();
    let users: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT email, full_name, password_hash FROM users ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("the users table is there");
    let count = |table: &'static str| async move {
        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .expect("count")
    };
    json!({
        "users": users,
        "refresh_tokens": count("refresh_tokens").await,
        "role_permissions": count("role_permissions").await,
    })
}

/// Whether a refusal names the hostile migration (the lexical check says
/// `migration 2 (attack, ...)`, the database `migration plugin:intruder v2`).
fn names_the_attack(message: &str) -> bool {
    message.contains("migration 2") || message.contains("plugin:intruder v2")
}

fn watching(dir: &Path) -> impl FnOnce(&mut Config) {
    let dir = dir.to_path_buf();
    move |config: &mut Config| {
        config.plugins.dir = dir.display().to_string();
        config.plugins.watch = true;
        config.plugins.watch_settle_ms = 100;
    }
}

async fn plugin_listing(server: &TestServer, token: &str, id: &str) -> Option<Value> {
    let list = server.get_as(token, "/system/plugins").await;
    common::items(&list)
        .iter()
        .find(|plugin| plugin["id"] == id)
        .cloned()
}

/// Waits (bounded) until `id` is listed in `state`.
async fn wait_for_state(server: &TestServer, token: &str, id: &str, state: &str) -> Value {
    for _ in 0..100 {
        if let Some(plugin) = plugin_listing(server, token, id).await {
            if plugin["state"] == state {
                return plugin;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{id} never became {state}: {:?}",
        plugin_listing(server, token, id).await
    );
}

async fn upload(server: &TestServer, token: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("plugin.so"),
    );
    server
        .post("/system/plugins")
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_migration_is_refused_at_every_entrance() {
    let library = intruder_library();
    let bytes = std::fs::read(&library).expect("read");
    let plugins = tempfile::tempdir().expect("dir");
    let sources = tempfile::tempdir().expect("sources");
    let source = sources.path().join("intruder.so");
    std::fs::copy(&library, &source).expect("copy");
    let allowed = sources.path().to_path_buf();
    let watch = watching(plugins.path());
    let server = TestServer::start_with(move |config| {
        watch(config);
        config.plugins.install_from = vec![allowed.display().to_string()];
    })
    .await;
    let admin = server.admin_token().await;
    let before = host_state(&server).await;

    for attack in [
        "UPDATE users SET full_name = 'pwned' WHERE id = 1",
        "UPDATE 'users' SET full_name = 'pwned'",
        "DROP TABLE users",
        "DELETE FROM refresh_tokens",
    ] {
        // Read by the library's manifest, in this process and in the
        // checking child (nextest runs each test in a process of its own).
        std::env::set_var(MIGRATION_VARIABLE, attack);

        let uploaded = upload(&server, &admin, bytes.clone()).await;
        let body = expect_error(uploaded, StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(names_the_attack),
            "{attack}: {body}"
        );

        server.as_(&admin).post("/system/plugins").json(json!({"name": "intruder", "version": "0.1.0", "source": source.display().to_string()})).expect_error(StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR").await;

        deploy(&library, plugins.path(), INTRUDER);
        let refused = wait_for_state(&server, &admin, "intruder", "refused").await;
        assert!(
            refused["last_error"].as_str().is_some_and(names_the_attack),
            "{attack}: {refused}"
        );
        assert_eq!(refused["file"], INTRUDER);
        std::fs::remove_file(plugins.path().join(INTRUDER)).expect("remove");
        for _ in 0..100 {
            if plugin_listing(&server, &admin, "intruder").await.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(plugin_listing(&server, &admin, "intruder").await.is_none());
        assert_eq!(host_state(&server).await, before, "{attack}");
    }

    // Reload: a benign generation serves, the hostile one is refused and
    // the benign one keeps serving.
    std::env::set_var(MIGRATION_VARIABLE, "");
    expect_status(
        upload(&server, &admin, bytes.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    std::env::set_var(
        MIGRATION_VARIABLE,
        "UPDATE users SET full_name = 'pwned' WHERE id = 1",
    );
    server
        .as_(&admin)
        .post("/system/plugins/intruder/reload")
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR")
        .await;
    let answer = server
        .anonymous()
        .post("/api/v1/intruder/sql")
        .json(json!({"sql": "SELECT COUNT(*) AS n FROM intruder_notes"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer, json!([{"n": 0}]));
    assert_eq!(host_state(&server).await, before);

    // Start-up: the hostile file is in the directory when the host starts.
    std::env::set_var(MIGRATION_VARIABLE, "DROP TABLE users");
    let db = server.stop().await;
    let watch = watching(plugins.path());
    let server = TestServer::start_on(db, watch).await;
    let admin = server.admin_token().await;
    let refused = wait_for_state(&server, &admin, "intruder", "refused").await;
    assert!(
        refused["last_error"].as_str().is_some_and(names_the_attack),
        "{refused}"
    );
    // The bootstrap admin's password is hashed again at every start and a
    // login made a session: names and the table itself are what is left
    // to compare.
    let after = host_state(&server).await;
    let names = |state: &Value| {
        state["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|user| (user[0].clone(), user[1].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&after), names(&before));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_sql_cannot_reach_the_hosts_tables() {
    let plugins = tempfile::tempdir().expect("dir");
    std::env::set_var(MIGRATION_VARIABLE, "");
    deploy(&intruder_library(), plugins.path(), INTRUDER);
    let dir = plugins.path().to_path_buf();
    let server =
        TestServer::start_with(move |config| config.plugins.dir = dir.display().to_string()).await;
    let admin = server.admin_token().await;
    // A session exists, so there are refresh tokens to delete.
    server
        .login(common::ADMIN_EMAIL, common::ADMIN_PASSWORD)
        .await;
    let before = host_state(&server).await;
    for attack in [
        "SELECT email, password_hash FROM 'users'",
        "SELECT email, password_hash FROM users",
        "UPDATE 'users' SET full_name = 'pwned'",
        "DELETE FROM 'refresh_tokens'",
        "SELECT email FROM (users)",
        "SELECT n.id FROM intruder_notes n JOIN (users) u ON 1 = 1",
        "SELECT email, count(*) OVER users FROM users WINDOW users AS (ORDER BY id)",
        "WITH x AS (SELECT * FROM 'users') SELECT email FROM x",
        "WITH users AS (SELECT * FROM main.users) SELECT email FROM users",
        "SELECT name FROM sqlite_master",
        "SELECT * FROM pragma_table_info('users')",
    ] {
        let body = server
            .anonymous()
            .post("/api/v1/intruder/sql")
            .json(json!({"sql": attack}))
            .expect(StatusCode::FORBIDDEN)
            .await;
        assert!(body["refused"].is_string(), "{attack}: {body}");
        assert!(
            !body.to_string().contains("argon2"),
            "{attack} leaked a hash: {body}"
        );
    }
    let _ = admin;
    assert_eq!(host_state(&server).await, before);
    server.stop().await;
}

/// Writes `bytes` into `dir` as `name` the way operators deploy (write,
/// then rename), so the watcher never sees half a file.
fn drop_in(dir: &Path, name: &str, bytes: &[u8]) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, bytes).expect("write");
    std::fs::rename(&temporary, dir.join(name)).expect("rename");
}

/// A copy of `library` with random bytes over its section `name`, size
/// unchanged: it passes the ELF and layout checks, and kills ld.so.
fn corrupted(library: &Path, name: &str, seed: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(library).expect("read");
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4")) as usize;
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8")) as usize;
    let (table, entry, count, names) = (
        u64_at(&bytes, 0x28),
        u16_at(&bytes, 0x3a),
        u16_at(&bytes, 0x3c),
        u16_at(&bytes, 0x3e),
    );
    let header = |index: usize| table + index * entry;
    let strings = u64_at(&bytes, header(names) + 0x18);
    let (offset, size) = (0..count)
        .map(header)
        .find(|&at| {
            let start = strings + u32_at(&bytes, at);
            let end = start + bytes[start..].iter().position(|&b| b == 0).expect("NUL");
            &bytes[start..end] == name.as_bytes()
        })
        .map(|at| (u64_at(&bytes, at + 0x18), u64_at(&bytes, at + 0x20)))
        .expect("section");
    // A small xorshift: no randomness crate needed for noise.
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for byte in &mut bytes[offset..offset + size] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    bytes
}

/// A checker that runs the real one with its own temporary directory, so
/// a test can see what a crashed check leaves there.
fn checker_with_tmpdir(dir: &Path) -> std::path::PathBuf {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    common::wrapped_checker(dir, &format!("export TMPDIR='{}'", tmp.display()))
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_library_never_takes_the_host_down() {
    let hello = hello_variant("");
    let plugins = tempfile::tempdir().expect("dir");
    let checker_dir = tempfile::tempdir().expect("checker");
    let checker = checker_with_tmpdir(checker_dir.path());
    let server = TestServer::start_with(|config: &mut Config| {
        watching(plugins.path())(config);
        config.plugins.checker = checker.display().to_string();
    })
    .await;
    let admin = server.admin_token().await;

    for (section, seed) in [(".dynamic", 1), (".rela.dyn", 2)] {
        let bytes = corrupted(&hello, section, seed);
        let refused = upload(&server, &admin, bytes.clone()).await;
        let body = expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "PLUGIN_ERROR").await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("crashed the checking process") || message.contains("ld.so"),
            "{section}: {message}"
        );
        server.public_get("/health").await;
    }
    // The checking child died inside dlopen; its copy is gone all the same,
    // from the host's scratch directory and from the child's own.
    let left = files_under(server.state.plugins.scratch_dir());
    assert!(left.is_empty(), "copies left behind: {left:?}");
    let left = files_under(&checker_dir.path().join("tmp"));
    assert!(left.is_empty(), "the child left: {left:?}");

    // Dropped into the watched directory: refused once, listed with the
    // reason, and left alone until the file changes.
    let mut events = server.state.events.subscribe();
    drop_in(plugins.path(), HELLO, &corrupted(&hello, ".dynamic", 3));
    let listed = wait_for_state(&server, &admin, "hello", "refused").await;
    assert!(
        listed["last_error"]
            .as_str()
            .is_some_and(|m| m.contains("SIGSEGV") || m.contains("ld.so")),
        "{listed}"
    );
    assert_eq!(listed["file"], HELLO);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut failures = 0;
    while let Ok(event) = events.try_recv() {
        if event.topic == "plugin.failed" {
            failures += 1;
        }
    }
    assert_eq!(failures, 1, "a refused file is reported once");

    // Fixed by the operator: a good file replaces it.
    deploy(&hello, plugins.path(), HELLO);
    let active = wait_for_state(&server, &admin, "hello", "active").await;
    assert_eq!(active["last_error"], Value::Null);
    server.public_get("/api/v1/hello/ping").await;

    // At start-up: the host comes up, the file is listed as refused.
    // Over a serving plugin: the reload is refused, the old code serves.
    drop_in(plugins.path(), HELLO, &corrupted(&hello, ".rela.dyn", 4));
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = plugin_listing(&server, &admin, "hello")
            .await
            .expect("hello");
        if listed["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed["state"], "active", "{listed}");
    assert!(listed["last_error"].is_string(), "{listed}");
    server.public_get("/api/v1/hello/ping").await;
    let db = server.stop().await;
    let server = TestServer::start_on(db, watching(plugins.path())).await;
    let admin = server.admin_token().await;
    let listed = wait_for_state(&server, &admin, "hello", "refused").await;
    assert!(listed["last_error"].is_string());
    server.public_get("/health").await;
    let scratch = server.state.plugins.scratch_dir().to_path_buf();
    server.stop().await;
    assert!(
        !scratch.exists(),
        "{} outlived its server",
        scratch.display()
    );
}
