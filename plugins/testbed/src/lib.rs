//! `testbed`: the fixture plugin of the host's integration tests, never
//! deployed. By default it stands in for `hello` (same id, prefix and
//! table) with routes that attack or exercise the host; its features build
//! the variants the host must refuse, and an event listener. See the
//! features in `Cargo.toml`.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

// Hello's guest book itself, table and answers, not a copy (see the file).
#[path = "../../hello/src/greetings.rs"]
mod greetings;

use greetings::{Greeting, NewGreeting, POSTGRES_TABLE, SQLITE_TABLE};

/// Producers of `/stream` bodies alive now: the host's tests watch it fall
/// back when a client goes away mid-body.
static OPEN_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// `/stream` query: `chunks` lines of `size` bytes each (`NNNNNNNN:xxx…\n`),
/// `delay_ms` before each, failing or panicking after `fail_after` or
/// `panic_after` chunks.
#[derive(Deserialize, ToSchema)]
struct StreamShape {
    chunks: Option<usize>,
    size: Option<usize>,
    delay_ms: Option<u64>,
    fail_after: Option<usize>,
    panic_after: Option<usize>,
}

/// One `/stream` body in the making, counted in [`OPEN_STREAMS`].
struct Lines {
    next: usize,
    shape: StreamShape,
}

impl Lines {
    fn new(shape: StreamShape) -> Self {
        OPEN_STREAMS.fetch_add(1, Ordering::SeqCst);
        Self { next: 0, shape }
    }
}

impl Iterator for Lines {
    type Item = Result<Vec<u8>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.next;
        if index >= self.shape.chunks.unwrap_or(10) {
            return None;
        }
        self.next += 1;
        if let Some(delay) = self.shape.delay_ms {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        if self.shape.fail_after == Some(index) {
            return Some(Err(format!("failed on purpose after {index} chunks")));
        }
        if self.shape.panic_after == Some(index) {
            panic!("the stream panicked on purpose after {index} chunks");
        }
        let size = self.shape.size.unwrap_or(16).max(10);
        let mut line = format!("{index:08}:").into_bytes();
        line.resize(size - 1, b'x');
        line.push(b'\n');
        Some(Ok(line))
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The instance.
pub struct Testbed {
    host: Host,
}

/// Identity: the variants change it.
#[cfg(not(any(
    feature = "alias",
    feature = "needs-ghost",
    feature = "listener",
    feature = "calm-listener"
)))]
const IDENTITY: (&str, &str) = ("hello", "/api/v1/hello");
#[cfg(feature = "alias")]
const IDENTITY: (&str, &str) = ("hello_alias", "/api/v1/hello");
#[cfg(all(feature = "needs-ghost", not(feature = "alias")))]
const IDENTITY: (&str, &str) = ("hello_needy", "/api/v1/hello-needy");
#[cfg(all(
    feature = "listener",
    not(any(feature = "alias", feature = "needs-ghost"))
))]
const IDENTITY: (&str, &str) = ("listener", "/api/v1/listener");
#[cfg(all(
    feature = "calm-listener",
    not(any(feature = "alias", feature = "needs-ghost", feature = "listener"))
))]
const IDENTITY: (&str, &str) = ("calm_listener", "/api/v1/calm-listener");

/// Whether this build listens to hello's events (and which one panics).
const LISTENS: bool = cfg!(any(feature = "listener", feature = "calm-listener"));

const PING: &str = if cfg!(feature = "v2") {
    "pong v2"
} else {
    "pong"
};

#[derive(Deserialize, ToSchema)]
struct Target {
    path: Option<String>,
    name: Option<String>,
    url: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Received {
    id: i64,
    topic: String,
    text: Option<String>,
}

impl Plugin for Testbed {
    fn manifest() -> Manifest {
        let manifest = Manifest::new(IDENTITY.0, "Testbed", env!("CARGO_PKG_VERSION"), IDENTITY.1)
            .description("Fixture for the host's tests")
            .tags(&["fixture"])
            .permission("hello:read", "Read greetings")
            .permission("hello:write", "Write greetings")
            .event("greeted");
        let mut manifest = manifest;
        if cfg!(feature = "greedy-default") {
            // A role admins made: not the plugin's to grant to.
            manifest.permissions[0].default_roles = vec!["manager".into()];
        }
        match IDENTITY.0 {
            "hello" => manifest.migration(1, "greetings table", SQLITE_TABLE, POSTGRES_TABLE),
            _ if LISTENS => Manifest::new(IDENTITY.0, "Listener", env!("CARGO_PKG_VERSION"), IDENTITY.1)
                .migration(
                    1,
                    "received events",
                    &format!("CREATE TABLE {}_received (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, text TEXT)", IDENTITY.0),
                    &format!("CREATE TABLE {}_received (id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, text TEXT)", IDENTITY.0),
                ),
            // The renamed variants exist to be refused before they serve;
            // `hello_greetings` is not theirs to create.
            _ if cfg!(feature = "needs-ghost") => manifest.depends_on("ghost", "^1"),
            _ => manifest,
        }
    }

    fn router() -> Router<Self> {
        if LISTENS {
            return Router::new()
                .get("/events", Access::Public, |testbed: &Testbed| {
                    let sql = format!(
                        "SELECT id, topic, text FROM {}_received ORDER BY id",
                        IDENTITY.0
                    );
                    testbed.host.query_as::<Received>(&sql, params![]).map(Json)
                })
                .on("hello.*", Testbed::record)
                .on_start(|testbed: &Testbed| testbed.store("!start", None));
        }
        Router::new()
            .get("/ping", Access::Public, |_: &Testbed| {
                Json(json!({"message": PING, "plugin": "hello", "greeting": null}))
            })
            // The host's `GET /health/live` answer, byte for byte: the
            // dispatch benchmarks compare the two routes, so the handlers
            // must do the same work and only the dispatch differs.
            .get("/live", Access::Public, |_: &Testbed| {
                Json(json!({"status": "alive"}))
            })
            .get("/greetings", Access::Requires("hello:read"), Testbed::list)
            .post("/greetings", Access::Requires("hello:write"), Testbed::create)
            .get("/panic", Access::Public, |_: &Testbed| -> Response {
                panic!("hello panicked on purpose")
            })
            .get("/relay", Access::Public, Testbed::relay)
            .get("/stream", Access::Public, |_: &Testbed, Query(shape): Query<StreamShape>| {
                Response::stream(200, "text/plain", Lines::new(shape))
            })
            .get("/stream/open", Access::Public, |_: &Testbed| {
                Json(json!({"open": OPEN_STREAMS.load(Ordering::SeqCst)}))
            })
            // Accepts up to 4 MiB (more than the server's default), to
            // prove a route's own body limit is honoured.
            .post("/measure", Access::Public, |_: &Testbed, Body(body): Body| {
                Json(json!({"bytes": body.len()}))
            })
            .max_body(4 * 1024 * 1024)
            .get("/run-job", Access::Public, Testbed::run_job_now)
            .get("/steal", Access::Public, |testbed: &Testbed| {
                match testbed.host.query("SELECT email, password_hash FROM users", params![]) {
                    Ok(rows) => Response::json(200, &rows),
                    Err(error) => Response::error(403, "AUTHORIZATION_ERROR", &error.to_string()),
                }
            })
            .get("/fetch", Access::Public, Testbed::fetch)
            .get("/whoami", Access::Requires("hello:read"), |_: &Testbed, caller: Caller| {
                Json(json!({"user_id": caller.user_id, "email": caller.email}))
            })
            .get("/conflict", Access::Public, |testbed: &Testbed| -> Result<NoContent, HostError> {
                // Two rows with the same id: the second insert is a unique
                // violation the host must classify, without SQL text.
                let now = now();
                let sql = "INSERT INTO hello_greetings (id, text, created_at) VALUES (-1, 'twin', $1)";
                let _ = testbed.host.execute(sql, params![now]);
                testbed.host.execute(sql, params![now])?;
                Ok(NoContent)
            })
            .job("tick", "Logs the number of greetings", |_: &Testbed| Ok::<_, String>(()))
            .job("nap", "Sleeps 1.5 s, to test overlapping runs", |_: &Testbed| {
                std::thread::sleep(std::time::Duration::from_millis(1500));
                Ok::<_, String>(())
            })
            .job("stamp", "Sleeps 0.3 s, then stores the greeting \"stamp\"", |testbed: &Testbed| {
                std::thread::sleep(std::time::Duration::from_millis(300));
                let sql = "INSERT INTO hello_greetings (text, created_at) VALUES ('stamp', $1)";
                testbed.host.execute(sql, params![now()]).map(|_| ())
            })
    }

    fn new(host: Host, _config: Value) -> Result<Self, String> {
        Ok(Self { host })
    }
}

impl Testbed {
    fn list(&self, window: Window) -> Result<ListBody<Greeting>, HostError> {
        greetings::list(&self.host, window)
    }

    fn create(&self, Json(new): Json<NewGreeting>) -> Result<Created<Greeting>, Response> {
        greetings::create(&self.host, new)
    }

    fn relay(&self, Query(target): Query<Target>) -> Response {
        let Some(path) = target.path else {
            return Response::invalid("path", "required");
        };
        match self.host.call("GET", &path, None) {
            Ok(answer) => {
                Response::json(200, &json!({"status": answer.status, "body": answer.body}))
            }
            Err(error) => Response::error(502, "PLUGIN_ERROR", &error.to_string()),
        }
    }

    fn run_job_now(&self, Query(target): Query<Target>) -> Response {
        let Some(name) = target.name else {
            return Response::invalid("name", "required");
        };
        match self.host.run_job(&name) {
            Ok(()) => Response::json(202, &json!({"queued": name})),
            Err(error) => Response::error(409, "CONFLICT", &error.to_string()),
        }
    }

    /// Fetches `url` through the host; answers what came back, or the
    /// host's refusal as text (the test reads the reason).
    fn fetch(&self, Query(target): Query<Target>) -> Response {
        let Some(url) = target.url else {
            return Response::invalid("url", "required");
        };
        match self.host.http(&HttpRequest::get(&url)) {
            Ok(answer) => {
                let body = answer.body().unwrap_or_default();
                Response::json(
                    200,
                    &json!({"status": answer.status, "bytes": body.len(), "body": String::from_utf8_lossy(&body)}),
                )
            }
            Err(error) => Response::json(
                502,
                &json!({"refused": error, "message": error.to_string()}),
            ),
        }
    }

    /// Stores what the listener received; an event saying "panic" makes
    /// `listener` (not `calm_listener`) panic.
    fn record(&self, event: &Event) -> Result<(), HostError> {
        let text = event
            .data
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_string);
        if text.as_deref() == Some("panic") && IDENTITY.0 == "listener" {
            panic!("the listener panicked on purpose");
        }
        self.store(&event.topic, text)
    }

    fn store(&self, topic: &str, text: Option<String>) -> Result<(), HostError> {
        let sql = format!(
            "INSERT INTO {}_received (topic, text) VALUES ($1, $2)",
            IDENTITY.0
        );
        self.host.execute(&sql, params![topic, text]).map(|_| ())
    }
}

xcore_plugin_sdk::export_plugin!(Testbed);
