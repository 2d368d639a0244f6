//! Plugins: loading shared libraries safely, their lifecycle, the request
//! dispatcher and `/system/plugins`.
//!
//! # Layout
//!
//! - [`admission`]: the one path every library takes in (start-up,
//!   watcher, upload, install by path, reload), and its refusals.
//! - [`probe`]: the child process that loads a new library first.
//! - [`elf`]: the structural check every file passes before `dlopen`.
//! - [`library`]: one generation of a library: shadow copy, version
//!   handshake, layout check, manifest (`dlopen`: unsafe by nature).
//! - [`generation`]: a loaded, instantiated generation and the route table.
//! - [`openapi_text`]: a plugin's OpenAPI parts, kept as text.
//! - [`manager`]: install, load at start, enable, disable, reload,
//!   uninstall, quarantine; state kept in the database.
//! - [`dependencies`], [`prefix`]: load order and naming rules.
//! - [`host_services`]: what the host offers a plugin (SQL, events, calls
//!   to other plugins, logs, running its own jobs now).
//! - [`subscriptions`]: events (and the start signal) delivered to the
//!   plugins that subscribe to them, in order, off the request path.
//! - [`outbound_http`]: `Host::http`, limited to each plugin's allow list.
//! - [`on_demand`]: the jobs plugins ask to run now, one run per job at a
//!   time, off the request that asked.
//! - [`job_runs`]: how a plugin job runs, scheduled or on demand (blocking
//!   pool, timeout, panics).
//! - [`confinement`]: each plugin's own pool, confined by the database
//!   (SQLite's authorizer, a PostgreSQL role per plugin).
//! - [`sql_guard`]: the lexical check that names a refused table early.
//! - [`dispatcher`]: the router's fallback into plugin routes, and calls
//!   from one plugin to another's.
//! - [`routes`]: the `/system/plugins` API.
//! - [`scaffold`]: `xcore plugin new`, a plugin crate for another team.
//! - [`watcher`]: hot reload from the plugins directory.

pub mod admission;
pub mod confinement;
pub mod dependencies;
pub mod dispatcher;
pub mod elf;
pub mod generation;
pub mod host_services;
pub mod job_runs;
pub mod library;
pub mod manager;
pub mod on_demand;
pub mod openapi_text;
pub mod outbound_http;
pub mod prefix;
pub mod probe;
pub mod routes;
pub mod scaffold;
pub mod sql_guard;
pub mod streamed;
pub mod subscriptions;
pub mod watcher;
