//! `hello`: the example xcore plugin, and the one to copy.
//!
//! - `GET /ping` (public): a small JSON body, no I/O; it echoes `greeting`
//!   from the plugin's configuration section, if set.
//! - `GET /greetings` (`hello:read`): the stored greetings, newest first,
//!   in the standard list body (`skip`, `limit`).
//! - `POST /greetings` (`hello:write`): stores `{"text": ...}` (1 to 280
//!   characters) in the plugin's own table and publishes `hello.greeted`.
//! - job `tick`: logs how many greetings there are (the scheduler calls it
//!   `hello.tick`).
//!
//! Everything goes through the SDK: the manifest and the router declare the
//! plugin, `export_plugin!` makes it loadable, and the host's services are
//! the only way out (no database connection or runtime of its own).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use xcore_plugin_api::{
    Access, Host, Level, ListBody, Manifest, Plugin, Request, Response, Router,
};

/// Longest greeting accepted.
const MAX_TEXT_CHARS: usize = 280;

/// What `/ping` says; the `v2` build says something else, so a test can
/// tell which generation served it.
#[cfg(not(feature = "v2"))]
const PING_MESSAGE: &str = "pong";
#[cfg(feature = "v2")]
const PING_MESSAGE: &str = "pong v2";

/// Identity: the test variants change it (see the crate features).
#[cfg(not(any(feature = "alias", feature = "needs-ghost")))]
const IDENTITY: (&str, &str) = ("hello", "/api/v1/hello");
#[cfg(feature = "alias")]
const IDENTITY: (&str, &str) = ("hello_alias", "/api/v1/hello");
#[cfg(all(feature = "needs-ghost", not(feature = "alias")))]
const IDENTITY: (&str, &str) = ("hello_needy", "/api/v1/hello-needy");

/// The plugin instance.
pub struct Hello {
    host: Host,
    /// `greeting` from the plugin's `[plugins.hello.config]`, echoed by /ping.
    greeting: Option<String>,
}

/// What `/ping` answers.
#[derive(Serialize)]
struct Pong<'a> {
    message: &'a str,
    plugin: &'a str,
    greeting: Option<&'a str>,
}

#[derive(Deserialize)]
struct NewGreeting {
    text: String,
}

impl Plugin for Hello {
    fn manifest() -> Manifest {
        let manifest = Manifest::new(IDENTITY.0, "Hello", env!("CARGO_PKG_VERSION"), IDENTITY.1)
            .author("xcore")
            .description("The example plugin: a ping and a guest book")
            .tags(&["example"])
            .permission("hello:read", "Read greetings")
            .permission("hello:write", "Write greetings")
            .job("tick", "Logs the number of greetings")
            .event("greeted")
            .openapi(json!({
                "/ping": {"get": {"summary": "Ping", "responses": {"200": {"description": "pong"}}}},
                "/greetings": {
                    "get": {"summary": "List greetings", "responses": {"200": {"description": "A list"}}},
                    "post": {
                        "summary": "Add a greeting",
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["text"],
                            "properties": {"text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS, "pattern": "^[^\\u0000]*\\S[^\\u0000]*$"}}
                        }}}},
                        "responses": {"201": {"description": "Created"}}
                    }
                }
            }));
        #[cfg(feature = "test-routes")]
        let manifest = manifest
            .job("nap", "Sleeps 1.5 s, to test overlapping runs")
            .job(
                "stamp",
                "Sleeps 0.3 s, then stores the greeting \"stamp\", to count on-demand runs",
            );
        if IDENTITY.0 != "hello" {
            // The renamed test variants exist to be refused before they
            // serve; `hello_greetings` is not theirs to create (the host
            // keeps a plugin to tables named after its own id).
            return if cfg!(feature = "needs-ghost") {
                manifest.depends_on("ghost", "^1")
            } else {
                manifest
            };
        }
        manifest.migration(
            1,
            "greetings table",
            "CREATE TABLE hello_greetings (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, created_at TEXT NOT NULL)",
            "CREATE TABLE hello_greetings (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL, created_at TEXT NOT NULL)",
        )
    }

    fn router() -> Router<Self> {
        let router = Router::new()
            .get("/ping", Access::Public, |hello: &Hello, _: &Request| {
                Ok(Response::json(
                    200,
                    &Pong {
                        message: PING_MESSAGE,
                        plugin: "hello",
                        greeting: hello.greeting.as_deref(),
                    },
                ))
            })
            .get("/greetings", Access::Requires("hello:read"), Hello::list)
            .post("/greetings", Access::Requires("hello:write"), Hello::create);
        #[cfg(feature = "test-routes")]
        let router = router
            .get("/panic", Access::Public, |_, _| {
                panic!("hello panicked on purpose")
            })
            .get(
                "/relay",
                Access::Public,
                |hello: &Hello, request: &Request| {
                    let path = request
                        .query("path")
                        .ok_or_else(|| Response::invalid("path", "required"))?;
                    match hello.host.call("GET", path, None) {
                        Ok(answer) => Ok(Response::json(
                            200,
                            &json!({"status": answer.status, "body": answer.body}),
                        )),
                        Err(error) => Ok(Response::error(502, "PLUGIN_ERROR", &error.to_string())),
                    }
                },
            )
            // Needs a permission and touches nothing else: what an
            // authenticated request costs the host, measured by the
            // `plugins` benchmark against `/ping`.
            .get(
                "/whoami",
                Access::Requires("hello:read"),
                |_: &Hello, request: &Request| match &request.head.caller {
                    Some(caller) => Ok(Response::json(
                        200,
                        &json!({"user_id": caller.user_id, "email": caller.email}),
                    )),
                    None => Ok(Response::error(
                        401,
                        "AUTHENTICATION_ERROR",
                        "no authenticated caller",
                    )),
                },
            )
            // Accepts up to 4 MiB (more than the server's default), to
            // prove a route's own body limit is honoured.
            .post("/measure", Access::Public, |_, request: &Request| {
                Ok(Response::json(200, &json!({"bytes": request.body.len()})))
            })
            .max_body(4 * 1024 * 1024)
            .get(
                "/run-job",
                Access::Public,
                |hello: &Hello, request: &Request| {
                    let name = request
                        .query("name")
                        .ok_or_else(|| Response::invalid("name", "required"))?;
                    match hello.host.run_job(name) {
                        Ok(()) => Ok(Response::json(202, &json!({"queued": name}))),
                        Err(error) => Ok(Response::error(409, "CONFLICT", &error.to_string())),
                    }
                },
            )
            .get(
                "/steal",
                Access::Public,
                |hello: &Hello, _: &Request| match hello
                    .host
                    .query("SELECT email, password_hash FROM users", vec![])
                {
                    Ok(rows) => Ok(Response::json(200, &rows)),
                    Err(error) => Ok(Response::error(
                        403,
                        "AUTHORIZATION_ERROR",
                        &error.to_string(),
                    )),
                },
            );
        router
    }

    fn new(host: Host, config: Value) -> Result<Self, String> {
        let greeting = match config.get("greeting") {
            None => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => return Err(format!("config.greeting must be a string, got {other}")),
        };
        Ok(Self { host, greeting })
    }

    fn run_job(&self, name: &str) -> Result<(), String> {
        match name {
            "tick" => {
                let count = self
                    .host
                    .query_one("SELECT COUNT(*) AS n FROM hello_greetings", vec![])
                    .map_err(|error| error.to_string())?
                    .and_then(|row| row.get("n").and_then(Value::as_i64))
                    .unwrap_or(0);
                self.host
                    .log(Level::Info, "tick", json!({"greetings": count}));
                Ok(())
            }
            #[cfg(feature = "test-routes")]
            "nap" => {
                std::thread::sleep(std::time::Duration::from_millis(1500));
                Ok(())
            }
            #[cfg(feature = "test-routes")]
            "stamp" => {
                std::thread::sleep(std::time::Duration::from_millis(300));
                self.host
                    .execute(
                        "INSERT INTO hello_greetings (text, created_at) VALUES ('stamp', $1)",
                        vec![json!(now())],
                    )
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            }
            other => Err(format!("no job named {other}")),
        }
    }
}

fn host_failure(error: xcore_plugin_api::HostError) -> Response {
    Response::plugin_error(&error.to_string())
}

impl Hello {
    fn list(&self, request: &Request) -> Result<Response, Response> {
        let (skip, limit) = xcore_plugin_api::http::window(request)?;
        let total = self
            .host
            .query_one("SELECT COUNT(*) AS n FROM hello_greetings", vec![])
            .map_err(host_failure)?
            .and_then(|row| row.get("n").and_then(Value::as_i64))
            .unwrap_or(0);
        let items = self
            .host
            .query(
                "SELECT id, text, created_at FROM hello_greetings ORDER BY id DESC LIMIT $1 OFFSET $2",
                vec![json!(limit), json!(skip)],
            )
            .map_err(host_failure)?;
        Ok(Response::json(
            200,
            &ListBody::new(items, total, skip, limit),
        ))
    }

    fn create(&self, request: &Request) -> Result<Response, Response> {
        let greeting: NewGreeting = request.json()?;
        let text = greeting.text.trim();
        let length = text.chars().count();
        if length == 0 || length > MAX_TEXT_CHARS {
            return Err(Response::invalid(
                "text",
                &format!("must be 1 to {MAX_TEXT_CHARS} characters"),
            ));
        }
        // PostgreSQL cannot store NUL in text.
        if text.contains('\0') {
            return Err(Response::invalid("text", "must not contain NUL characters"));
        }
        let row = self
            .host
            .query_one(
                "INSERT INTO hello_greetings (text, created_at) VALUES ($1, $2) RETURNING id, text, created_at",
                vec![json!(text), json!(now())],
            )
            .map_err(host_failure)?
            .ok_or_else(|| Response::plugin_error("the insert returned no row"))?;
        self.host
            .publish("greeted", Value::Object(row.clone()))
            .map_err(host_failure)?;
        Ok(Response::json(201, &row))
    }
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp, without pulling a
/// date crate into the example.
fn now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

xcore_plugin_api::export_plugin!(Hello);

#[cfg(test)]
mod tests {
    use super::*;
    use xcore_plugin_api::{
        host::HostOp,
        testing::{FakeHost, TestPlugin},
    };

    #[test]
    fn ping_needs_no_host() {
        let plugin = TestPlugin::start::<Hello>(&FakeHost::default(), Value::Null).expect("starts");
        let response = plugin.request("GET", "/ping", None, None);
        assert_eq!(response.status, 200);
        let body: Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(body["plugin"], "hello");
        assert_eq!(body["message"], PING_MESSAGE);
    }

    #[test]
    fn greetings_are_validated_stored_and_announced() {
        let host = FakeHost::with_sql(|op| match op {
            HostOp::Query(statement) if statement.sql.starts_with("INSERT") => Ok(
                json!([{"id": 1, "text": statement.params[0], "created_at": statement.params[1]}]),
            ),
            _ => Ok(json!([])),
        });
        let plugin = TestPlugin::start::<Hello>(&host, Value::Null).expect("starts");
        let empty = plugin.request("POST", "/greetings", Some(&json!({"text": "  "})), None);
        assert_eq!(empty.status, 422);
        let nul = plugin.request(
            "POST",
            "/greetings",
            Some(&json!({"text": "a\u{0}b"})),
            None,
        );
        assert_eq!(nul.status, 422);
        let long = plugin.request(
            "POST",
            "/greetings",
            Some(&json!({"text": "x".repeat(281)})),
            None,
        );
        assert_eq!(long.status, 422);
        let wrong_shape = plugin.request("POST", "/greetings", Some(&json!({"txt": "hi"})), None);
        assert_eq!(wrong_shape.status, 422);

        let created = plugin.request("POST", "/greetings", Some(&json!({"text": " hi "})), None);
        assert_eq!(created.status, 201);
        let body: Value = serde_json::from_slice(&created.body).expect("json");
        assert_eq!(body["text"], "hi");
        assert!(body["created_at"]
            .as_str()
            .is_some_and(|t| t.len() == 27 && t.ends_with('Z')));
        let recorded = host.recorded();
        assert_eq!(recorded.published.len(), 1);
        assert_eq!(recorded.published[0].0, "greeted");
        assert_eq!(recorded.published[0].1["text"], "hi");
    }

    #[test]
    fn list_checks_the_window() {
        let plugin = TestPlugin::start::<Hello>(&FakeHost::default(), Value::Null).expect("starts");
        assert_eq!(
            plugin
                .request("GET", "/greetings?limit=101", None, None)
                .status,
            422
        );
        let ok = plugin.request("GET", "/greetings?limit=5", None, None);
        assert_eq!(ok.status, 200);
        let body: Value = serde_json::from_slice(&ok.body).expect("json");
        assert_eq!(body["limit"], 5);
        assert_eq!(body["items"], json!([]));
    }

    #[test]
    fn tick_counts_and_logs() {
        let host = FakeHost::with_sql(|_| Ok(json!([{"n": 3}])));
        let plugin = TestPlugin::start::<Hello>(&host, Value::Null).expect("starts");
        plugin.run_job("tick").expect("tick");
        assert_eq!(
            host.recorded().logs,
            vec![(Level::Info as u8, "tick".to_string())]
        );
        assert!(plugin.run_job("nope").is_err());
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[cfg(feature = "test-routes")]
    #[test]
    fn a_panicking_handler_becomes_a_plugin_error() {
        let plugin = TestPlugin::start::<Hello>(&FakeHost::default(), Value::Null).expect("starts");
        let response = plugin.request("GET", "/panic", None, None);
        assert_eq!(response.status, 500);
        let body: Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(body["error"]["code"], "PLUGIN_ERROR");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("hello panicked on purpose")));
        // The instance keeps serving after a panic.
        assert_eq!(plugin.request("GET", "/ping", None, None).status, 200);
    }

    #[cfg(feature = "test-routes")]
    #[test]
    fn whoami_answers_the_caller_and_nothing_else() {
        let plugin = TestPlugin::start::<Hello>(&FakeHost::default(), Value::Null).expect("starts");
        let caller = xcore_plugin_api::Caller {
            user_id: 7,
            email: "ada@example.com".into(),
            permissions: vec!["hello:read".into()],
        };
        let response = plugin.request("GET", "/whoami", None, Some(caller));
        assert_eq!(response.status, 200);
        let body: Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(body, json!({"user_id": 7, "email": "ada@example.com"}));
        assert_eq!(plugin.request("GET", "/whoami", None, None).status, 401);
    }
}
