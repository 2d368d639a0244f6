//! The plugin manager: loading shared libraries safely, their lifecycle,
//! the request dispatcher and `/system/plugins`.
//!
//! In place: the ELF check, loading generations, the manager (load at
//! start, enable, disable, reload, state in the database), the dispatcher
//! and `/system/plugins` list, details, enable, disable and reload. Still to
//! come: calls between plugins, and limiting a plugin's SQL to its own
//! tables.

pub mod dependencies;
pub mod dispatcher;
pub mod elf;
pub mod generation;
pub mod host_services;
pub mod library;
pub mod manager;
pub mod prefix;
pub mod routes;
pub mod watcher;
