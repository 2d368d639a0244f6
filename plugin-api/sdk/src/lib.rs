//! `xcore-plugin-sdk`: what plugin authors write against. It wraps the FFI
//! contract (`xcore-plugin-api`, re-exported as [`contract`]) so a plugin
//! never touches it.
//!
//! # Layout
//!
//! - [`manifest`](mod@manifest): what a plugin declares (identity, permissions,
//!   migrations), sent as JSON; the router fills in routes, jobs,
//!   subscriptions and the OpenAPI document.
//! - [`router`]: the [`Plugin`] trait and the [`Router`]: routes, jobs and
//!   event listeners declared once, with their handlers.
//! - [`extract`]: what handlers take ([`Json`], [`Path`], [`Id`], [`Query`],
//!   [`Caller`], [`listing::Window`], [`listing::Sort`],
//!   [`multipart::Multipart`], ...); [`respond`]: what they return.
//! - [`host`]: the host's services (typed SQL, events, outbound HTTP,
//!   calls to other plugins, jobs now) and the typed [`HostError`].
//! - [`http`]: requests, responses, the standard error and list bodies;
//!   [`listing`]: paging and sorting; [`time`]: the one clock and format;
//!   [`keyset`]: an export of any size as a streamed body.
//! - [`openapi`]: the document generated from the route table.
//! - [`money`]: exact amounts in hundredths from decimal text.
//! - [`search`]: search-box text as FTS5 and `to_tsquery` query text.
//! - [`testing`]: handlers unit-tested in-process against a fake host.
//!
//! No axum, sqlx or tokio here: a plugin is a plain library the host calls.
//!
//! # Versioning
//!
//! This crate's version is the SDK's: it grows with helpers and host
//! operations (JSON, no layout change) and every plugin reports it. The FFI
//! contract is the `xcore-plugin-api` crate's version, which moves only
//! when a boundary type changes. A host loads plugins built with any SDK
//! from `OLDEST_COMPATIBLE_SDK` up to its own; see [`contract`].
//!
//! # A complete plugin
//!
//! A CRUD plugin: typed handlers, typed rows, a migration, an event, a job,
//! an event listener, and its OpenAPI document generated from the types.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use xcore_plugin_sdk::prelude::*;
//!
//! pub struct Notes { host: Host }
//!
//! #[derive(Serialize, Deserialize, ToSchema)]
//! pub struct Note { id: i64, text: String, created_at: String }
//!
//! #[derive(Deserialize, ToSchema)]
//! pub struct NewNote { text: String }
//!
//! struct ByDate;
//! impl SortColumns for ByDate {
//!     const COLUMNS: &'static [(&'static str, &'static str)] = &[("created_at", "created_at")];
//!     const DEFAULT: (&'static str, &'static str) = ("created_at", "DESC");
//!     const TIEBREAK: &'static str = "id";
//! }
//!
//! impl Plugin for Notes {
//!     fn manifest() -> Manifest {
//!         Manifest::new("notes", "Notes", "0.1.0", "/api/v1/notes")
//!             .permission("notes:read", "Read notes")
//!             .permission("notes:write", "Write notes")
//!             .event("created")
//!             .migration(1, "notes",
//!                 "CREATE TABLE notes_items (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)",
//!                 "CREATE TABLE notes_items (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)")
//!     }
//!
//!     fn router() -> Router<Self> {
//!         Router::new()
//!             .get("/notes", Access::Requires("notes:read"), Notes::list)
//!             .get("/notes/{id}", Access::Requires("notes:read"), Notes::show)
//!             .post("/notes", Access::Requires("notes:write"), Notes::create)
//!             .put("/notes/{id}", Access::Requires("notes:write"), Notes::update)
//!             .delete("/notes/{id}", Access::Requires("notes:write"), Notes::remove)
//!             .job("count", "Logs how many notes exist", Notes::count)
//!             .on("users.deleted", |_: &Notes, _: &Event| Ok::<_, String>(()))
//!     }
//!
//!     fn new(host: Host, _config: serde_json::Value) -> Result<Self, String> {
//!         Ok(Self { host })
//!     }
//! }
//!
//! const COLUMNS: &str = "id, text, created_at";
//!
//! impl Notes {
//!     fn list(&self, window: Window, sort: Sort<ByDate>) -> Result<ListBody<Note>, HostError> {
//!         let total = self.host.query_scalar("SELECT COUNT(*) FROM notes_items", params![])?;
//!         let sql = format!("SELECT {COLUMNS} FROM notes_items ORDER BY {} LIMIT $1 OFFSET $2", sort.order_by);
//!         let notes = self.host.query_as(&sql, params![window.limit, window.skip])?;
//!         Ok(listing::body(notes, total, window))
//!     }
//!
//!     fn show(&self, Path(id): Path<i64>) -> Result<Json<Note>, Response> {
//!         let sql = format!("SELECT {COLUMNS} FROM notes_items WHERE id = $1");
//!         let note = self.host.query_one_as(&sql, params![id])?;
//!         note.map(Json).ok_or_else(|| Response::not_found("no such note"))
//!     }
//!
//!     fn create(&self, Json(new): Json<NewNote>) -> Result<Created<Note>, Response> {
//!         let sql = format!("INSERT INTO notes_items (text, created_at) VALUES ($1, $2) RETURNING {COLUMNS}");
//!         let note: Option<Note> = self.host.query_one_as(&sql, params![new.text, now()])?;
//!         let note = note.ok_or_else(|| Response::plugin_error("no row"))?;
//!         self.host.publish("created", &note)?;
//!         Ok(Created(note))
//!     }
//!
//!     fn update(&self, Path(id): Path<i64>, Json(new): Json<NewNote>) -> Result<NoContent, Response> {
//!         let done = self.host.execute("UPDATE notes_items SET text = $1 WHERE id = $2", params![new.text, id])?;
//!         if done.rows_affected == 0 { return Err(Response::not_found("no such note")); }
//!         Ok(NoContent)
//!     }
//!
//!     fn remove(&self, Path(id): Path<i64>) -> Result<NoContent, HostError> {
//!         self.host.execute("DELETE FROM notes_items WHERE id = $1", params![id])?;
//!         Ok(NoContent)
//!     }
//!
//!     fn count(&self) -> Result<(), HostError> {
//!         let n: i64 = self.host.query_scalar("SELECT COUNT(*) FROM notes_items", params![])?;
//!         self.host.log(Level::Info, "notes", serde_json::json!({"count": n}));
//!         Ok(())
//!     }
//! }
//!
//! // In the plugin crate (a `cdylib`):
//! // xcore_plugin_sdk::export_plugin!(Notes);
//! ```

pub mod clause;
pub mod extract;
pub mod host;
pub mod http;
pub mod keyset;
pub mod listing;
pub mod manifest;
pub mod money;
pub mod multipart;
pub mod openapi;
pub mod respond;
pub mod router;
pub mod search;
pub mod testing;
pub mod time;

pub use clause::Clause;
pub use extract::{Body, Headers, Id, Json, Path, Query};
pub use host::{
    CallResponse, Dialect, Executed, Host, HostError, HttpRequest, HttpResponse, Level, Row,
    Statement,
};
pub use http::{
    BodyStream, Caller, ErrorDetail, HandlerResult, ListBody, Reads, Request, RequestHead,
    Response, StandardError,
};
pub use manifest::Manifest;
pub use respond::{Created, IntoResponse, NoContent};
pub use router::{Access, Event, Plugin, Router};
pub use time::now;

// What the macros and derives expand to, reachable through this crate so a
// plugin needs neither as a dependency of its own.
#[doc(hidden)]
pub use abi_stable;
pub use serde_json;
pub use utoipa;
/// The FFI contract this SDK wraps.
pub use xcore_plugin_api as contract;
pub use xcore_plugin_api::ffi;

/// Everything a plugin module usually needs, including `ToSchema` and the
/// `utoipa` name its derive expands to: `use xcore_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        listing::{self, Sort, SortColumns, Window},
        manifest,
        multipart::Multipart,
        now, params, utoipa,
        utoipa::ToSchema,
        Access, Body, Caller, Created, Event, Executed, Headers, Host, HostError, HttpRequest, Id,
        IntoResponse, Json, Level, ListBody, Manifest, NoContent, Path, Plugin, Query, Reads,
        Request, Response, Router,
    };
    pub use serde_json::{json, Value};
}

/// The SDK version this crate is, reported by every plugin built with it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
