//! Plugins: loading shared libraries safely, their lifecycle, the request
//! dispatcher and `/system/plugins`.
//!
//! # Layout
//!
//! - [`elf`]: the structural check every file passes before `dlopen`.
//! - [`library`]: one generation of a library: shadow copy, version
//!   handshake, layout check, manifest (the only `unsafe` of the host).
//! - [`generation`]: a loaded, instantiated generation and the route table.
//! - [`manager`]: install, load at start, enable, disable, reload,
//!   uninstall, quarantine; state kept in the database.
//! - [`dependencies`], [`prefix`]: load order and naming rules.
//! - [`host_services`]: what the host offers a plugin (SQL, events, logs).
//! - [`dispatcher`]: the router's fallback into plugin routes.
//! - [`routes`]: the `/system/plugins` API.
//! - [`watcher`]: hot reload from the plugins directory.
//!
//! Not yet: calls from one plugin to another's routes, and limiting a
//! plugin's SQL to its own tables.

pub mod dependencies;
pub mod dispatcher;
pub mod elf;
pub mod generation;
pub mod host_services;
pub mod library;
pub mod manager;
pub mod prefix;
pub mod routes;
pub mod sql_guard;
pub mod watcher;
