//! `hello`, the example plugin to copy: a public ping, and a guest book with a table (migration 1),
//! typed rows, paging, an event per greeting, a job (`hello.tick`) and a generated OpenAPI document.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

/// The instance: the host's services, and `greeting` from `[plugins.hello.config]`.
pub struct Hello {
    host: Host,
    greeting: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Greeting {
    id: i64,
    text: String,
    created_at: String,
}

#[derive(Deserialize, ToSchema)]
struct NewGreeting {
    #[schema(min_length = 1, max_length = 280)]
    text: String,
}

impl Plugin for Hello {
    fn manifest() -> Manifest {
        manifest!("hello", "Hello", "/api/v1/hello")
            .permission("hello:read", "Read greetings")
            .permission("hello:write", "Write greetings")
            .event("greeted")
            .migration(1, "greetings table", SQLITE_TABLE, POSTGRES_TABLE)
    }

    fn router() -> Router<Self> {
        Router::new()
            .get("/ping", Access::Public, |hello: &Hello| {
                Json(json!({"message": "pong", "plugin": "hello", "greeting": hello.greeting}))
            })
            .get("/greetings", Access::Requires("hello:read"), Hello::list)
            .post("/greetings", Access::Requires("hello:write"), Hello::create)
            .job("tick", "Logs the number of greetings", Hello::tick)
    }

    fn new(host: Host, config: Value) -> Result<Self, String> {
        let greeting = serde_json::from_value(config["greeting"].clone())
            .map_err(|_| format!("config.greeting must be a string: {}", config["greeting"]))?;
        Ok(Self { host, greeting })
    }
}

const SQLITE_TABLE: &str = "CREATE TABLE hello_greetings (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, created_at TEXT NOT NULL)";
const POSTGRES_TABLE: &str = "CREATE TABLE hello_greetings (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL, created_at TEXT NOT NULL)";

impl Hello {
    fn list(&self, window: Window) -> Result<ListBody<Greeting>, HostError> {
        let sql = "SELECT * FROM hello_greetings ORDER BY id DESC";
        self.host.query_page(sql, params![], window)
    }

    fn create(&self, Json(new): Json<NewGreeting>) -> Result<Created<Greeting>, Response> {
        let text = new.text.trim();
        if !(1..=280).contains(&text.chars().count()) || text.contains('\0') {
            return Err(Response::invalid("text", "1 to 280 characters, no NUL"));
        }
        let sql = "INSERT INTO hello_greetings (text, created_at) VALUES ($1, $2) RETURNING *";
        let greeting: Greeting = self.host.query_row_as(sql, params![text, now()])?;
        self.host.publish("greeted", &greeting)?;
        Ok(Created(greeting))
    }

    fn tick(&self) -> Result<(), HostError> {
        let sql = "SELECT COUNT(*) FROM hello_greetings";
        let count: i64 = self.host.query_scalar(sql, params![])?;
        self.host.info("tick", json!({ "greetings": count }));
        Ok(())
    }
}

xcore_plugin_sdk::export_plugin!(Hello);
