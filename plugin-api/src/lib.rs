//! `xcore-plugin-api`: the contract between the xcore host and its plugins.
//!
//! This crate is a placeholder until the plugin-runtime work lands: it will
//! hold the FFI-stable root module, the manifest and request/response types,
//! the `HostServices` the host hands each plugin instance, and a small safe
//! SDK (`Plugin` trait, router builder, `export_plugin!`). It deliberately
//! has no dependency on axum, sqlx or tokio so plugins stay light.

/// The plugin-api version this crate speaks; the host refuses plugins built
/// for an incompatible one.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");
