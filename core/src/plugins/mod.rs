//! The plugin manager: loading shared libraries safely, their lifecycle,
//! the request dispatcher and `/system/plugins`.
//!
//! Being built in steps; so far the pre-`dlopen` ELF check.

pub mod elf;
