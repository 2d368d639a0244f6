//! `hello`, the example plugin to copy: a public ping, and a guest book with a table (migration 1),
//! typed rows, paging, an event per greeting, a job (`hello.tick`) and a generated OpenAPI document.

mod greetings;

use xcore_plugin_sdk::prelude::*;

use greetings::{Greeting, NewGreeting, POSTGRES_TABLE, SQLITE_TABLE};

/// The instance: the host's services, and `greeting` from `[plugins.hello.config]`.
pub struct Hello {
    host: Host,
    greeting: Option<String>,
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

impl Hello {
    fn list(&self, window: Window) -> Result<ListBody<Greeting>, HostError> {
        greetings::list(&self.host, window)
    }

    fn create(&self, Json(new): Json<NewGreeting>) -> Result<Created<Greeting>, Response> {
        greetings::create(&self.host, new)
    }

    fn tick(&self) -> Result<(), HostError> {
        let sql = "SELECT COUNT(*) FROM hello_greetings";
        let count: i64 = self.host.query_scalar(sql, params![])?;
        self.host.info("tick", json!({ "greetings": count }));
        Ok(())
    }
}

xcore_plugin_sdk::export_plugin!(Hello);
