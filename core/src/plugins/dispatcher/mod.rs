//! The request path into plugins. Two entrances, the router's fallback
//! ([`dispatch`], HTTP) and a plugin calling another plugin's route
//! ([`call_from_plugin`], `Host::call`), take the same steps:
//!
//! 1. **Resolve**: longest `api_prefix` match in the route table (an atomic
//!    snapshot), then the plugin's own route table (matchit): 404, or 405
//!    (with `Allow` over HTTP).
//! 2. **Authorize**: the route's permission against the caller (401/403).
//!    HTTP finds the caller from the bearer token; a call between plugins
//!    carries the original request's caller.
//! 3. **Invoke** on this worker: the spike measured 0.95x a native route
//!    inline against 0.4x through the blocking pool. Host services park the
//!    thread with `block_in_place` when the plugin calls back for SQL.
//!    Routes the plugin marks `blocking` go to the blocking pool over HTTP,
//!    carrying the route matched in step 1. HTTP bodies are bounded by
//!    `server.max_body_bytes` or the route's own limit, itself capped by
//!    `plugins.max_route_body_bytes` (413).
//! 4. **Finish**: the answer is copied into host memory before the
//!    generation can drop, a structured error is rendered as the standard
//!    body (with the request id and timestamp), a streamed body is pulled
//!    as the client reads ([`super::streamed`]), and the route's metrics
//!    count it (the middleware for HTTP).
//!
//! The request crosses the boundary as borrowed strings and slices
//! ([`FfiRequest`]), with the matched route's index: encoding a JSON head
//! here and parsing it in the plugin was most of what a trivial plugin
//! route cost over a native one. Metric handles are resolved once per
//! route.
//!
//! While a handler runs, the thread knows who the request is for (a
//! thread-local [`CallContext`]): a plugin calling another plugin's route
//! through `HostServices` calls it with the original caller's rights.
//!
//! Files: this one holds the shared steps (resolve, authorize, the call
//! context, the error body); [`invoke`] builds the FFI request and calls
//! the handler; [`http_entrance`] and [`host_call`] are the two entrances.

mod host_call;
mod http_entrance;
mod invoke;

use std::{cell::RefCell, sync::Arc};

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use xcore_plugin_sdk::{manifest::RouteSpec, Caller};

pub use host_call::call_from_plugin;
pub use http_entrance::{dispatch, DispatchState};

use invoke::relative_path;

use super::{
    generation::{Generation, PluginError, RouteMatch},
    manager::PluginManager,
};
use crate::error::{ApiError, ErrorCode};

/// How deep plugin-to-plugin calls may nest before the host refuses: a
/// loop between plugins ends with an error instead of a stack overflow.
pub const MAX_CALL_DEPTH: u32 = 8;

/// Who a plugin handler is serving, known to the thread while it runs.
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    /// The authenticated caller, if any.
    pub caller: Option<Arc<Caller>>,
    /// The request id.
    pub request_id: Arc<str>,
    /// Plugin-to-plugin calls above this one.
    pub depth: u32,
}

thread_local! {
    static CURRENT_CALL: RefCell<Option<CallContext>> = const { RefCell::new(None) };
}

/// The context of the handler running on this thread, if any.
pub fn current_call() -> Option<CallContext> {
    CURRENT_CALL.with(|current| current.borrow().clone())
}

/// Runs `f` with `context` as the current call, restoring the previous one
/// after (calls nest when a plugin calls another), even if `f` unwinds.
fn with_call<T>(context: CallContext, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<CallContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT_CALL.with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CURRENT_CALL.with(|current| current.replace(Some(context))));
    f()
}

/// Where a method and full path lead: the route's index and spec in its
/// generation's manifest, the path under the prefix, and the parameters.
/// Step 1 of both entrances.
struct Resolved<'g, 'p> {
    route: usize,
    spec: &'g RouteSpec,
    relative: &'p str,
    params: Vec<(&'g str, &'p str)>,
}

/// Why a method and path lead to no plugin route.
enum Unrouted {
    /// No plugin prefix or no route under it: 404.
    Missing,
    /// The path exists with these other methods: 405 with `Allow`.
    WrongMethod(Vec<String>),
}

impl Unrouted {
    /// The standard error both entrances answer with.
    fn error(&self, method: &str, path: &str) -> ApiError {
        match self {
            Self::Missing => ApiError::not_found(format!("no route for {method} {path}")),
            Self::WrongMethod(allowed) => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::ValidationError,
                format!(
                    "{method} is not allowed on {path}; allowed: {}",
                    allowed.join(", ")
                ),
            ),
        }
    }

    /// The HTTP answer: the error, plus `Allow` for a 405.
    fn into_response(self, method: &str, path: &str) -> Response {
        let mut response = self.error(method, path).into_response();
        if let Self::WrongMethod(allowed) = self {
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
        }
        response
    }
}

/// The enabled generation whose prefix `path` lies under.
fn locate(manager: &PluginManager, path: &str) -> Result<Arc<Generation>, Unrouted> {
    manager.table().find(path).cloned().ok_or(Unrouted::Missing)
}

/// The route of `generation` that `method` and `path` (full, prefix
/// included) name.
fn resolve<'g, 'p>(
    generation: &'g Generation,
    method: &str,
    path: &'p str,
) -> Result<Resolved<'g, 'p>, Unrouted> {
    let relative = relative_path(path, &generation.prefix);
    match generation.route(method, relative) {
        RouteMatch::Found(route, params) => Ok(Resolved {
            route,
            spec: generation.spec(route),
            relative,
            params,
        }),
        RouteMatch::Missing => Err(Unrouted::Missing),
        RouteMatch::WrongMethod(allowed) => Err(Unrouted::WrongMethod(allowed)),
    }
}

/// Step 2 of both entrances: the route's permission against the caller,
/// `None` when the entrance found nobody (`anonymous` says why, in the 401).
fn authorize(
    spec: &RouteSpec,
    caller: Option<&Caller>,
    anonymous: &'static str,
) -> Result<(), ApiError> {
    let Some(permission) = &spec.permission else {
        return Ok(());
    };
    match caller {
        None => Err(ApiError::unauthenticated(anonymous)),
        Some(caller) if caller.permissions.iter().any(|held| held == permission) => Ok(()),
        Some(_) => Err(ApiError::forbidden(permission)),
    }
}

/// A plugin's structured error as the standard body.
fn error_body(error: &PluginError, request_id: &str) -> Value {
    crate::error::standard_body(
        &error.code,
        &error.message,
        &error.details,
        Some(request_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_contexts_nest_and_restore() {
        assert!(current_call().is_none());
        let outer = CallContext {
            request_id: Arc::from("outer"),
            ..CallContext::default()
        };
        with_call(outer, || {
            let inner = CallContext {
                request_id: Arc::from("inner"),
                depth: 1,
                ..CallContext::default()
            };
            with_call(inner, || {
                assert_eq!(current_call().map(|c| c.depth), Some(1));
            });
            assert_eq!(
                current_call().map(|c| c.request_id.to_string()),
                Some("outer".to_string())
            );
        });
        assert!(current_call().is_none());
    }
}
