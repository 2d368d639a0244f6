//! The plugin manager: loading shared libraries safely, their lifecycle,
//! the request dispatcher and `/system/plugins`.
//!
//! Being built in steps; so far: the pre-`dlopen` ELF check, loading a
//! library generation, dependency ordering, and id and prefix rules.

pub mod dependencies;
pub mod elf;
pub mod host_services;
pub mod library;
pub mod prefix;
