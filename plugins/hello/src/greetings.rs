//! The guest book: its table, its rows, and what its two routes do.
//!
//! The host's tests load the `testbed` fixture in hello's place, and it must
//! answer exactly as hello does, with hello's table byte for byte (a reload
//! from one to the other finds the migration already applied). So testbed
//! compiles this very file (`#[path]`) rather than a copy that could drift.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

/// Migration 1 on SQLite.
pub const SQLITE_TABLE: &str = "CREATE TABLE hello_greetings (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, created_at TEXT NOT NULL)";
/// Migration 1 on PostgreSQL.
pub const POSTGRES_TABLE: &str = "CREATE TABLE hello_greetings (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL, created_at TEXT NOT NULL)";

// A greeting as stored and answered. (No doc comment: it would become
// the schema's description in the OpenAPI document.)
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Greeting {
    id: i64,
    text: String,
    created_at: String,
}

// `POST /greetings` body.
#[derive(Deserialize, ToSchema)]
pub struct NewGreeting {
    #[schema(min_length = 1, max_length = 280)]
    text: String,
}

/// `GET /greetings`: the newest first, a page at a time.
pub fn list(host: &Host, window: Window) -> Result<ListBody<Greeting>, HostError> {
    let sql = "SELECT * FROM hello_greetings ORDER BY id DESC";
    host.query_page(sql, params![], window)
}

/// `POST /greetings`: 1 to 280 characters (trimmed), no NUL; stored, then
/// announced as the `greeted` event.
pub fn create(host: &Host, new: NewGreeting) -> Result<Created<Greeting>, Response> {
    let text = new.text.trim();
    if !(1..=280).contains(&text.chars().count()) || text.contains('\0') {
        return Err(Response::invalid("text", "1 to 280 characters, no NUL"));
    }
    let sql = "INSERT INTO hello_greetings (text, created_at) VALUES ($1, $2) RETURNING *";
    let greeting: Greeting = host.query_row_as(sql, params![text, now()])?;
    host.publish("greeted", &greeting)?;
    Ok(Created(greeting))
}
