//! The real fixture plugin standing in for hello (`plugins/testbed`), loaded by the real loader: manifest,
//! migrations, requests through the FFI with real host services on the
//! test database, events, panics caught at the boundary, bad files refused
//! without harm, and repeated load/unload.

mod common;

use std::{
    path::PathBuf,
    sync::{OnceLock, Weak},
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RSlice, RStr},
};
use common::TestServer;
use serde_json::{json, Value};
use xcore::{
    db::migrate::{self, Migration},
    plugins::{
        confinement::{Namespace, PluginDatabase},
        host_services::{HostParts, PluginHost},
        library,
        outbound_http::{AllowList, OutboundHttp},
        sql_guard::SqlScope,
    },
};
use xcore_plugin_sdk::{
    ffi::{FfiPair, FfiRequest, HostServices, HostServices_TO},
    SDK_VERSION,
};

/// The hello plugin with its panic route, built once per test process.
fn hello_bytes() -> Vec<u8> {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    std::fs::read(PATH.get_or_init(|| common::testbed_variant(""))).expect("read the plugin")
}

/// A request as the host hands it over. `route_index` is deliberately out
/// of range: the SDK must then find the route by method and pattern.
fn request<'a>(
    method: &'a str,
    route: &'a str,
    query: &'a [FfiPair<'a>],
    body: &'a [u8],
) -> FfiRequest<'a> {
    FfiRequest {
        method: RStr::from_str(method),
        path: RStr::from_str(route),
        route: RStr::from_str(route),
        route_index: usize::MAX,
        params: RSlice::from_slice(&[]),
        query: RSlice::from_slice(query),
        headers: RSlice::from_slice(&[]),
        caller: ROption::RNone,
        request_id: RStr::from_str("test"),
        body: RSlice::from_slice(body),
    }
}

/// Host services for `hello`, confined as the manager would confine them,
/// with no manager behind them (calls to other plugins are refused).
async fn hello_host(server: &TestServer) -> PluginHost {
    let sql = PluginDatabase::open(
        &server.state.db,
        Namespace::new("hello", Vec::new()),
        common::JWT_SECRET,
    )
    .await
    .expect("confined pool");
    PluginHost::new(
        "hello",
        SqlScope::new("hello", Vec::new()),
        sql,
        server.state.db.dialect(),
        HostParts {
            events: server.state.events.clone(),
            manager: Weak::new(),
            outbound: OutboundHttp::new(Duration::from_secs(5), 1024 * 1024).expect("client"),
            http_allow: AllowList::default(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_loads_migrates_and_serves_through_the_ffi() {
    let server = TestServer::start().await;
    let shadow = tempfile::tempdir().expect("shadow dir");
    let loaded = library::load(
        &hello_bytes(),
        None,
        shadow.path(),
        "libxcore_plugin_hello",
        1,
    )
    .expect("loads");
    assert_eq!(loaded.manifest.id, "hello");
    assert_eq!(loaded.manifest.api_prefix, "/api/v1/hello");
    assert_eq!(loaded.api_version, SDK_VERSION);
    assert_eq!(loaded.checksum.len(), 64);
    let routes: Vec<(String, String, Option<String>)> = loaded
        .manifest
        .routes
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.permission.clone()))
        .collect();
    assert!(routes.contains(&("GET".into(), "/ping".into(), None)));
    assert!(routes.contains(&(
        "POST".into(),
        "/greetings".into(),
        Some("hello:write".into())
    )));
    assert!(
        std::fs::read_dir(shadow.path())
            .expect("dir")
            .next()
            .is_none(),
        "the shadow copy is unlinked after dlopen"
    );

    let migrations: Vec<Migration<'_>> = loaded
        .manifest
        .migrations
        .iter()
        .map(|m| Migration {
            version: m.version,
            name: &m.name,
            sqlite: &m.sqlite,
            postgres: &m.postgres,
        })
        .collect();
    assert_eq!(
        migrate::apply(&server.state.db, "plugin:hello", &migrations)
            .await
            .expect("migrate"),
        1
    );

    let host = hello_host(&server).await;
    let instance = loaded
        .instantiate(HostServices_TO::from_value(host, TD_Opaque), &json!({}))
        .expect("instantiates");
    let mut events = server.state.events.subscribe();

    let call = |request: FfiRequest<'_>| {
        let response = instance.handle(request);
        // An error crosses structured, with no body: the host renders it.
        let body: Value = match response.error.as_ref().into_option() {
            Some(error) => {
                assert!(response.body.is_empty());
                json!({"error": {"code": error.code.as_str(), "message": error.message.as_str()}})
            }
            None => serde_json::from_slice(response.body.as_slice()).unwrap_or(Value::Null),
        };
        (response.status, body, response.panicked)
    };
    let (status, body, _) = call(request("GET", "/ping", &[], b""));
    assert_eq!((status, body["message"].as_str()), (200, Some("pong")));

    let (status, created, _) = call(request(
        "POST",
        "/greetings",
        &[],
        br#"{"text": "bonjour"}"#,
    ));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["text"], "bonjour");
    let event = events.recv().await.expect("event");
    assert_eq!(event.topic, "hello.greeted");
    assert_eq!(event.data["text"], "bonjour");

    let (status, list, _) = call(request(
        "GET",
        "/greetings",
        &[FfiPair::new("limit", "10")],
        b"",
    ));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["text"], "bonjour");
    assert_eq!(list["items"][0]["id"], created["id"]);

    // The row is really in the host database.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hello_greetings")
        .fetch_one(server.state.db.pool())
        .await
        .expect("count");
    assert_eq!(stored, 1);

    // A panic inside the plugin is caught at the boundary; the host and
    // the instance live on.
    let (status, body, panicked) = call(request("GET", "/panic", &[], b""));
    assert_eq!((status, panicked), (500, true));
    assert_eq!(body["error"]["code"], "PLUGIN_ERROR");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("hello panicked on purpose")));
    assert_eq!(call(request("GET", "/ping", &[], b"")).0, 200);

    instance
        .run_job(RStr::from_str("tick"))
        .into_result()
        .expect("tick job");
    instance.shutdown();
    drop(instance);
    drop(loaded);
    server.stop().await;
}

/// Host services keep a plugin to its own tables: reads of the host's
/// tables and writes anywhere else are refused with the table named, and a
/// refused transaction changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_services_keep_a_plugin_to_its_own_tables() {
    let server = TestServer::start().await;
    sqlx::query("CREATE TABLE hello_notes (id BIGINT PRIMARY KEY, text TEXT NOT NULL)")
        .execute(server.state.db.pool())
        .await
        .expect("create");
    let host = hello_host(&server).await;
    let run = |op: Value| {
        tokio::task::block_in_place(|| {
            host.call(RStr::from_str(&op.to_string()))
                .into_result()
                .map(|reply| reply.into_string())
                .map_err(|error| error.into_string())
        })
    };
    // The dialect a plugin picks its dialect-specific SQL by.
    let expected = match server.state.db.dialect() {
        xcore::db::Dialect::Sqlite => "\"sqlite\"",
        xcore::db::Dialect::Postgres => "\"postgres\"",
    };
    assert_eq!(run(json!({"op": "dialect"})), Ok(expected.to_string()));
    let own = json!({"op": "execute", "sql": "INSERT INTO hello_notes (id, text) VALUES ($1, $2)", "params": [1, "mine"]});
    assert_eq!(run(own), Ok("1".to_string()));
    // SDK 0.3's `write`: what changed, and on SQLite the inserted rowid,
    // for inserts only (SQLite's last rowid belongs to the connection).
    let written = |sql: &str| -> Value {
        let reply = run(json!({"op": "write", "sql": sql})).expect("own table");
        serde_json::from_str(&reply).expect("json")
    };
    let inserted = written("INSERT INTO hello_notes (id, text) VALUES (7, 'seven')");
    assert_eq!(inserted["rows_affected"], 1);
    match server.state.db.dialect() {
        xcore::db::Dialect::Sqlite => assert!(inserted["last_insert_id"].is_i64(), "{inserted}"),
        xcore::db::Dialect::Postgres => assert!(inserted["last_insert_id"].is_null()),
    }
    let updated = written("UPDATE hello_notes SET text = 'changed' WHERE id = 7");
    assert_eq!(
        (
            updated["rows_affected"].clone(),
            updated["last_insert_id"].clone()
        ),
        (json!(1), Value::Null)
    );
    let deleted = written("DELETE FROM hello_notes WHERE id = 7");
    assert_eq!(deleted["rows_affected"], 1);
    let error = run(json!({"op": "query", "sql": "SELECT password_hash FROM users"}))
        .expect_err("users is the host's");
    assert!(error.contains("users"), "{error}");
    let error = run(json!({"op": "query", "sql": "SELECT * FROM hello_notes; DELETE FROM users"}))
        .expect_err("two statements");
    assert!(error.contains("one statement"), "{error}");
    let error = run(json!({"op": "transaction", "statements": [
        {"sql": "INSERT INTO hello_notes (id, text) VALUES (2, 'lost')"},
        {"sql": "UPDATE roles SET description = 'x'"},
    ]}))
    .expect_err("roles is the host's");
    assert!(error.contains("roles"), "{error}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hello_notes")
        .fetch_one(server.state.db.pool())
        .await
        .expect("count");
    assert_eq!(count, 1, "the refused transaction wrote nothing");
    let untouched: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE description = 'x'")
        .fetch_one(server.state.db.pool())
        .await
        .expect("roles");
    assert_eq!(untouched, 0);
    drop(host);
    server.stop().await;
}

#[test]
fn bad_files_are_refused_with_their_reason() {
    let shadow = tempfile::tempdir().expect("shadow dir");
    let good = hello_bytes();
    let refuse = |bytes: &[u8]| {
        library::load(bytes, None, shadow.path(), "bad", 1)
            .expect_err("refused")
            .to_string()
    };
    assert!(refuse(&good[..good.len() / 2]).contains("truncated"));
    assert!(refuse(&good[..100]).contains("truncated"));
    assert!(refuse(b"").contains("empty"));
    assert!(refuse(&[0x5a; 4096]).contains("not an ELF"));
    // A real shared library that is not an xcore plugin.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .iter()
    .find_map(|path| std::fs::read(path).ok());
    if let Some(libm) = libm {
        assert!(refuse(&libm).contains("not an xcore plugin"));
    }
    // The good one still loads after all that.
    assert!(library::load(&good, None, shadow.path(), "good", 2).is_ok());
}

#[test]
fn generations_load_and_unload_repeatedly() {
    let shadow = tempfile::tempdir().expect("shadow dir");
    let bytes = hello_bytes();
    for generation in 0..30 {
        let loaded = library::load(
            &bytes,
            None,
            shadow.path(),
            "libxcore_plugin_hello",
            generation,
        )
        .expect("loads");
        assert_eq!(loaded.manifest.id, "hello");
    }
    assert!(std::fs::read_dir(shadow.path())
        .expect("dir")
        .next()
        .is_none());
}
