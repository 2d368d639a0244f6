//! xcore: a plugin-hosting application core.
//!
//! The host owns everything cross-cutting (HTTP serving, authentication,
//! RBAC, health, metrics, rate limits, the database) so domain features can
//! live in plugins.
//!
//! # Layout
//!
//! - [`cli`]: the `xcore` command line (`serve`, `migrate`, `admin`).
//! - [`allocator`]: large buffers go back to the system when freed.
//! - [`mod@app`]: `AppState`, the router ([`app()`]) and [`serve`], which
//!   drains at shutdown so every request it read gets an answer.
//! - [`config`]: layered, typed configuration.
//! - [`error`]: `ApiError`, the one error body every client sees.
//! - [`events`]: the in-process event bus, topic patterns and `/ws`.
//! - [`http`]: request ids, extractors, pagination, rate limits, the server
//!   loop.
//! - [`db`]: the SQLite/PostgreSQL pool and migrations.
//! - [`auth`]: passwords, tokens, sessions, `/auth/*`, and the in-memory
//!   cache every authenticated request is decided from.
//! - [`rbac`]: permissions, roles, `/admin/*`.
//! - [`audit`]: the audit log and `/admin/audit`.
//! - [`observability`]: `/health*`, `/metrics`, logging.
//! - [`plugins`]: the plugin manager, dispatcher and `/system/plugins`.
//! - [`tasks`]: the scheduler and `/system/tasks`.
//! - [`web`]: the pages (`/`, `/core-docs`, `/console`), `/openapi.json` and
//!   `/static`.

pub mod allocator;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod observability;
pub mod plugins;
pub mod rbac;
pub mod tasks;
pub mod web;

pub use app::{app, serve, AppState};
pub use config::Config;
