//! The plugin manager: loading shared libraries safely, their lifecycle,
//! the request dispatcher and `/system/plugins`.
//!
//! Being built in steps; so far the pre-`dlopen` ELF check, dependency
//! ordering, and id and prefix rules.

pub mod dependencies;
pub mod elf;
pub mod prefix;
