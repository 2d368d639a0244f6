//! Hello's handlers, driven in-process through the same glue the FFI uses,
//! against the SDK's fake host (real SQL runs in the host's tests).

use serde_json::{json, Value};
use xcore_plugin_hello::Hello;
use xcore_plugin_sdk::{
    host::HostOp,
    testing::{FakeHost, TestPlugin},
    Level,
};

fn body(response: &xcore_plugin_sdk::Response) -> Value {
    serde_json::from_slice(&response.body_bytes()).expect("json")
}

#[test]
fn ping_echoes_the_configured_greeting() {
    let plugin = TestPlugin::start::<Hello>(&FakeHost::default(), json!({"greeting": "salut"}))
        .expect("starts");
    let pong = plugin.request("GET", "/ping", None, None);
    assert_eq!(pong.status, 200);
    assert_eq!(
        body(&pong),
        json!({"message": "pong", "plugin": "hello", "greeting": "salut"})
    );
    assert!(TestPlugin::start::<Hello>(&FakeHost::default(), json!({"greeting": 7})).is_err());
}

#[test]
fn greetings_are_validated_stored_and_announced() {
    let host = FakeHost::with_sql(|op| match op {
        HostOp::Query(statement) if statement.sql.starts_with("INSERT") => {
            Ok(json!([{"id": 1, "text": statement.params[0], "created_at": statement.params[1]}]))
        }
        _ => Ok(json!([])),
    });
    let plugin = TestPlugin::start::<Hello>(&host, Value::Null).expect("starts");
    for refused in [
        json!({"text": "  "}),
        json!({"text": "a\u{0}b"}),
        json!({"text": "x".repeat(281)}),
    ] {
        let answer = plugin.request("POST", "/greetings", Some(&refused), None);
        assert_eq!(answer.status, 422, "{refused}");
        assert_eq!(body(&answer)["error"]["details"][0]["field"], "text");
    }
    let wrong_shape = plugin.request("POST", "/greetings", Some(&json!({"txt": "hi"})), None);
    assert_eq!(wrong_shape.status, 422);
    assert_eq!(body(&wrong_shape)["error"]["details"][0]["field"], "text");

    let created = plugin.request("POST", "/greetings", Some(&json!({"text": " hi "})), None);
    assert_eq!(created.status, 201);
    let greeting = body(&created);
    assert_eq!(greeting["text"], "hi");
    assert!(greeting["created_at"]
        .as_str()
        .is_some_and(|t| t.len() == 27 && t.ends_with('Z')));
    let recorded = host.recorded();
    assert_eq!(recorded.published, vec![("greeted".to_string(), greeting)]);
}

#[test]
fn the_list_checks_its_window_and_pages() {
    let host = FakeHost::with_sql(|op| match op {
        HostOp::Query(statement) if statement.sql.contains("COUNT(*)") => {
            Ok(json!([{"total": 12}]))
        }
        HostOp::Query(_) => Ok(json!([{"id": 12, "text": "last", "created_at": "t"}])),
        _ => Ok(json!([])),
    });
    let plugin = TestPlugin::start::<Hello>(&host, Value::Null).expect("starts");
    assert_eq!(
        plugin
            .request("GET", "/greetings?limit=101", None, None)
            .status,
        422
    );
    let page = plugin.request("GET", "/greetings?page=2&page_size=5", None, None);
    assert_eq!(page.status, 200);
    let list = body(&page);
    assert_eq!(
        (
            list["total"].clone(),
            list["skip"].clone(),
            list["total_pages"].clone()
        ),
        (json!(12), json!(5), json!(3))
    );
    assert_eq!(list["items"][0]["text"], "last");
    let window = host.recorded().sql.into_iter().find_map(|op| match op {
        HostOp::Query(statement) if statement.sql.contains("LIMIT") => Some(statement.params),
        _ => None,
    });
    assert_eq!(window, Some(vec![json!(5), json!(5)]));
}

#[test]
fn tick_counts_and_logs_and_is_declared_with_its_handler() {
    let host = FakeHost::with_sql(|_| Ok(json!([{"count": 3}])));
    let plugin = TestPlugin::start::<Hello>(&host, Value::Null).expect("starts");
    assert!(plugin.manifest().jobs.iter().any(|job| job.name == "tick"));
    plugin.run_job("tick").expect("tick");
    assert_eq!(
        host.recorded().logs,
        vec![(Level::Info as u8, "tick".to_string())]
    );
    assert!(plugin.run_job("nope").is_err());
}

#[test]
fn the_openapi_document_comes_from_the_types() {
    let plugin = TestPlugin::start::<Hello>(&FakeHost::default(), Value::Null).expect("starts");
    let paths = plugin.manifest().openapi.clone().expect("generated");
    let create = &paths["/greetings"]["post"];
    let schema = &create["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(schema["properties"]["text"]["maxLength"], 280);
    assert!(create["responses"]["201"].is_object());
    let list = &paths["/greetings"]["get"];
    assert!(list["parameters"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "page_size")));
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["items"]
            ["items"]["properties"]["text"]["type"],
        "string"
    );
}
