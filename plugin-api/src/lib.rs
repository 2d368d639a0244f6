//! `xcore-plugin-api`: the contract between the xcore host and its plugins,
//! and a small SDK so plugin authors never touch the FFI.
//!
//! # Layout
//!
//! - [`ffi`]: the ABI-stable root module and boundary objects (abi_stable).
//!   Small on purpose; see there how it may evolve.
//! - [`manifest`]: what a plugin declares (routes, permissions, jobs,
//!   events, migrations, OpenAPI), sent as JSON.
//! - [`http`]: requests, responses, the standard error and list bodies.
//! - [`listing`]: list windows by `skip`/`limit` or `page`/`page_size`,
//!   `sort_by`/`sort_order`, and the list body with the page fields.
//! - [`host`]: the host's services (SQL, events, logs, calls to other
//!   plugins, running its own jobs now) as a plugin uses them.
//! - [`multipart`]: `multipart/form-data` bodies (file uploads) parsed
//!   into named parts.
//! - [`sdk`]: the [`Plugin`] trait, the [`Router`], and the glue behind
//!   [`export_plugin!`], which wraps every entry point in `catch_unwind`.
//!
//! No axum, sqlx or tokio here: a plugin is a plain library the host calls.
//!
//! # Versioning
//!
//! The host checks the plugin-api version a plugin was built with against
//! its own with semver rules (0.x: same minor) and refuses a mismatch with
//! "built for plugin-api X, host speaks Y"; abi_stable additionally checks
//! the root module's layout.
//!
//! # Example
//!
//! ```
//! use serde_json::json;
//! use xcore_plugin_api::{Access, Host, Manifest, Plugin, Request, Response, Router};
//!
//! pub struct Echo {
//!     host: Host,
//! }
//!
//! impl Plugin for Echo {
//!     fn manifest() -> Manifest {
//!         Manifest::new("echo", "Echo", "0.1.0", "/api/v1/echo")
//!             .permission("echo:write", "Echo things back")
//!             .event("echoed")
//!     }
//!
//!     fn router() -> Router<Self> {
//!         Router::new()
//!             .get("/ping", Access::Public, |_, _| Ok(Response::json(200, &json!({"pong": true}))))
//!             .post("/echo", Access::Requires("echo:write"), Echo::echo)
//!     }
//!
//!     fn new(host: Host, _config: serde_json::Value) -> Result<Self, String> {
//!         Ok(Self { host })
//!     }
//! }
//!
//! impl Echo {
//!     fn echo(&self, request: &Request) -> Result<Response, Response> {
//!         let body: serde_json::Value = request.json()?;
//!         self.host
//!             .publish("echoed", body.clone())
//!             .map_err(|error| Response::plugin_error(&error.to_string()))?;
//!         Ok(Response::json(201, &body))
//!     }
//! }
//!
//! // In the plugin crate (a `cdylib` with a direct `abi_stable` dependency):
//! // xcore_plugin_api::export_plugin!(Echo);
//! ```

pub mod ffi;
pub mod host;
pub mod http;
pub mod listing;
pub mod manifest;
pub mod multipart;
pub mod sdk;
pub mod testing;

pub use host::{Dialect, Host, HostError, Level, Row, Statement};
pub use http::{Caller, HandlerResult, ListBody, Request, RequestHead, Response};
pub use manifest::Manifest;
pub use sdk::{Access, Plugin, Router};

/// The plugin-api version this crate speaks.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether a plugin built for `plugin` can be loaded by a host speaking
/// `host`: same major, and for 0.x the same minor (semver caret rules).
pub fn check_compatible(plugin: &str, host: &str) -> Result<(), String> {
    let parts = |version: &str| -> Option<(u64, u64)> {
        let mut numbers = version.split('.').map(|part| part.parse::<u64>().ok());
        Some((numbers.next()??, numbers.next()??))
    };
    let refused = || Err(format!("built for plugin-api {plugin}, host speaks {host}"));
    match (parts(plugin), parts(host)) {
        (Some((0, plugin_minor)), Some((0, host_minor))) if plugin_minor == host_minor => Ok(()),
        (Some((plugin_major, _)), Some((host_major, _)))
            if plugin_major == host_major && plugin_major > 0 =>
        {
            Ok(())
        }
        _ => refused(),
    }
}

#[cfg(test)]
mod tests {
    use super::check_compatible;

    #[test]
    fn versions_follow_caret_rules() {
        assert!(check_compatible("0.1.7", "0.1.0").is_ok());
        assert!(check_compatible("1.4.0", "1.0.2").is_ok());
        assert_eq!(
            check_compatible("0.2.0", "0.1.3"),
            Err("built for plugin-api 0.2.0, host speaks 0.1.3".to_string())
        );
        assert!(check_compatible("2.0.0", "1.9.0").is_err());
        assert!(check_compatible("garbage", "0.1.0").is_err());
    }
}
