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
//!    generation can drop, error bodies get the request id and timestamp,
//!    and the route's metrics count it (the middleware for HTTP).
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

use std::{cell::RefCell, sync::Arc, time::Instant};

use abi_stable::std_types::{RSlice, RStr};
use axum::{
    body::Body,
    extract::{FromRef, Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use xcore_plugin_sdk::{
    ffi::{FfiCaller, FfiPair, FfiRequest},
    host::CallResponse,
    manifest::RouteSpec,
    Caller,
};

use super::{
    generation::{Generation, PluginResponse, RouteMatch},
    manager::PluginManager,
};
use crate::{
    auth::{
        api_keys,
        extract::{presented, verify, Presented},
        Gate,
    },
    config::Config,
    error::{ApiError, ErrorCode},
    http::request_id::RequestId,
    observability::metrics::{method_label, RouteLabel},
};

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

/// What a plugin route is called with, borrowed from the request being
/// served (or, for a call between plugins, from the calling handler).
struct RouteCall<'a> {
    /// Index of the matched route in the manifest.
    route: usize,
    /// Its pattern, e.g. `/greetings/{id}`.
    pattern: &'a str,
    method: &'a str,
    /// Path relative to the prefix.
    path: &'a str,
    params: &'a [(&'a str, &'a str)],
    query: Option<&'a str>,
    headers: Option<&'a HeaderMap>,
    /// Headers the host adds (a call between plugins names its caller).
    extra_headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

impl RouteCall<'_> {
    /// Runs `f` with the request as it crosses the boundary: borrowed
    /// strings and slices, nothing encoded.
    fn with_ffi<T>(
        &self,
        caller: Option<&Caller>,
        request_id: &str,
        f: impl FnOnce(FfiRequest<'_>) -> T,
    ) -> T {
        let params: Vec<FfiPair<'_>> = self
            .params
            .iter()
            .map(|(n, v)| FfiPair::new(n, v))
            .collect();
        let decoded = query_pairs(self.query);
        let query: Vec<FfiPair<'_>> = decoded.iter().map(|(n, v)| FfiPair::new(n, v)).collect();
        let mut headers =
            Vec::with_capacity(self.headers.map_or(0, HeaderMap::len) + self.extra_headers.len());
        for (name, value) in self.headers.into_iter().flatten() {
            // Credentials stay with the host: the plugin learns who calls
            // from `caller`, never the token or the session.
            if name == header::AUTHORIZATION
                || name == header::COOKIE
                || name.as_str() == crate::auth::api_keys::HEADER
            {
                continue;
            }
            if let Ok(value) = value.to_str() {
                headers.push(FfiPair::new(name.as_str(), value));
            }
        }
        headers.extend(self.extra_headers.iter().map(|(n, v)| FfiPair::new(n, v)));
        let permissions: Vec<RStr<'_>> = caller
            .iter()
            .flat_map(|caller| caller.permissions.iter().map(|p| RStr::from_str(p)))
            .collect();
        f(FfiRequest {
            method: RStr::from_str(self.method),
            path: RStr::from_str(self.path),
            route: RStr::from_str(self.pattern),
            route_index: self.route,
            params: RSlice::from_slice(&params),
            query: RSlice::from_slice(&query),
            headers: RSlice::from_slice(&headers),
            caller: caller
                .map(|caller| FfiCaller {
                    user_id: caller.user_id,
                    email: RStr::from_str(&caller.email),
                    permissions: RSlice::from_slice(&permissions),
                })
                .into(),
            request_id: RStr::from_str(request_id),
            body: RSlice::from_slice(self.body),
        })
    }

    /// Calls the route of `generation` on this thread with `context` as
    /// the current call, and counts panics towards quarantine.
    fn invoke(
        &self,
        manager: &PluginManager,
        generation: &Generation,
        context: CallContext,
    ) -> PluginResponse {
        // The context moves into the thread-local; the request borrows
        // from these shared handles instead.
        let (caller, request_id) = (context.caller.clone(), context.request_id.clone());
        let answer = self.with_ffi(caller.as_deref(), &request_id, |request| {
            with_call(context, || generation.handle(request))
        });
        let streak = generation.record_outcome(answer.panicked);
        if answer.panicked {
            tracing::error!(
                plugin = generation.id.as_str(),
                route = generation.label(self.route),
                streak,
                "plugin handler panicked"
            );
            // Exactly one request reaches the threshold, so one quarantine
            // runs, off the request path, which answers the 500 at once.
            if streak == manager.quarantine_after_panics() {
                manager.quarantine_later(&generation.id, streak);
            }
        }
        answer
    }
}

/// `path` relative to `prefix`, which it lies under.
fn relative_path<'p>(path: &'p str, prefix: &str) -> &'p str {
    match &path[prefix.len()..] {
        "" => "/",
        rest => rest,
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    query
        .map(|query| form_urlencoded::parse(query.as_bytes()).collect())
        .unwrap_or_default()
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

/// What the HTTP entrance uses.
#[derive(Debug)]
pub struct DispatchState {
    /// The route table and the plugins behind it.
    pub plugins: Arc<PluginManager>,
    /// Authenticates callers.
    pub gate: Arc<Gate>,
    /// Body limits (`server.max_body_bytes`, `plugins.max_route_body_bytes`).
    pub config: Arc<Config>,
}

/// Serves a request under a plugin prefix, or 404: the router's fallback,
/// for any application state that provides [`DispatchState`].
pub async fn dispatch<S>(State(state): State<S>, request: Request) -> Response
where
    Arc<DispatchState>: FromRef<S>,
{
    let state = Arc::<DispatchState>::from_ref(&state);
    match serve(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The HTTP entrance: resolve, identify and authorize the caller from the
/// bearer token, read the body, invoke (inline, or on the blocking pool
/// with the route already matched), finish. The metrics middleware counts
/// the answer under the route label this stamps on it.
async fn serve(state: &DispatchState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (uri, method) = (&parts.uri, parts.method.as_str());
    let path = uri.path();
    let generation = match locate(&state.plugins, path) {
        Ok(generation) => generation,
        Err(unrouted) => return Ok(unrouted.into_response(method, path)),
    };
    let resolved = match resolve(&generation, method, path) {
        Ok(resolved) => resolved,
        Err(unrouted) => return Ok(unrouted.into_response(method, path)),
    };
    // From here on the route is known: label every outcome with its
    // template, refusals included.
    let label = RouteLabel(generation.label(resolved.route));
    let refused = |error: ApiError| Ok(labelled(error.into_response(), label));
    let caller = match identify(state, &parts, resolved.spec.permission.is_some()).await {
        Ok(caller) => caller,
        Err(error) => return refused(error),
    };
    if let Err(error) = authorize(resolved.spec, caller.as_deref(), "missing bearer token") {
        return refused(error);
    }
    // Most plugin calls are bodiless GETs: skip the body machinery for them.
    let body = match axum::body::HttpBody::size_hint(&body).exact() {
        Some(0) => Ok(axum::body::Bytes::new()),
        _ => axum::body::to_bytes(body, body_limit(state, resolved.spec)).await,
    };
    let Ok(body) = body else {
        return refused(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ValidationError,
            "request body too large",
        ));
    };
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map_or_else(|| Arc::from(""), |id| id.0.clone());
    let context = CallContext {
        caller,
        request_id: request_id.clone(),
        depth: 0,
    };
    let answer = if resolved.spec.blocking {
        let owned = OwnedCall {
            route: resolved.route,
            relative: resolved.relative.to_owned(),
            params: resolved
                .params
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            method: method.to_owned(),
            query: uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            body,
        };
        let (manager, generation) = (state.plugins.clone(), generation.clone());
        // The request's span follows it to the pool, so what the host logs
        // for this call (a failed statement, say) carries its request id.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            owned.invoke(&manager, &generation, context)
        })
        .await
        .map_err(ApiError::internal)?
    } else {
        RouteCall {
            route: resolved.route,
            pattern: &resolved.spec.path,
            method,
            path: resolved.relative,
            params: &resolved.params,
            query: uri.query(),
            headers: Some(&parts.headers),
            extra_headers: &[],
            body: &body,
        }
        .invoke(&state.plugins, &generation, context)
    };
    Ok(labelled(to_response(answer, &request_id), label))
}

/// A matched route with owned inputs, for the blocking pool: the route is
/// matched once, on the request's worker, and travels with the request.
struct OwnedCall {
    route: usize,
    relative: String,
    params: Vec<(String, String)>,
    method: String,
    query: Option<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
}

impl OwnedCall {
    fn invoke(
        &self,
        manager: &PluginManager,
        generation: &Generation,
        context: CallContext,
    ) -> PluginResponse {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        RouteCall {
            route: self.route,
            pattern: &generation.spec(self.route).path,
            method: &self.method,
            path: &self.relative,
            params: &params,
            query: self.query.as_deref(),
            headers: Some(&self.headers),
            extra_headers: &[],
            body: &self.body,
        }
        .invoke(manager, generation, context)
    }
}

/// Who sends an HTTP request, as plugins see them: the cache's prebuilt
/// caller, shared rather than rebuilt per request. When the route needs a
/// permission a missing or bad token is the `AuthUser` extractor's 401;
/// a public route still learns who calls when a valid token is sent.
async fn identify(
    state: &DispatchState,
    parts: &axum::http::request::Parts,
    required: bool,
) -> Result<Option<Arc<Caller>>, ApiError> {
    let caller = match presented(&parts.headers) {
        Ok(None) => return Ok(None),
        Ok(Some(Presented::Bearer(token))) => verify(&state.gate, token)
            .await
            .map(|(_, user)| user.caller.clone()),
        Ok(Some(Presented::ApiKey(key))) => api_keys::verify(&state.gate, key)
            .await
            .map(|keyed| keyed.caller()),
        Err(error) => Err(error),
    };
    match caller {
        Ok(caller) => Ok(Some(caller)),
        Err(error) if required => Err(error),
        Err(_) => Ok(None),
    }
}

/// The route's own body limit when it declares one (capped by the
/// operator's `plugins.max_route_body_bytes`), else the server's.
fn body_limit(state: &DispatchState, spec: &RouteSpec) -> usize {
    match spec.max_body_bytes {
        Some(wanted) => usize::try_from(wanted.min(state.config.plugins.max_route_body_bytes))
            .unwrap_or(usize::MAX),
        None => state.config.server.max_body_bytes,
    }
}

fn labelled(mut response: Response, label: RouteLabel) -> Response {
    response.extensions_mut().insert(label);
    response
}

/// Step 4, HTTP: the response, with the stamped error body.
fn to_response(answer: PluginResponse, request_id: &str) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = stamp_error_body(status, answer.body, request_id);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if answer.json {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Step 4 of both entrances: a plugin's error body gets the host's
/// `timestamp`, `request_id` and `details`, so clients see one error
/// shape everywhere. Success bodies pass untouched.
fn stamp_error_body(status: StatusCode, body: Vec<u8>, request_id: &str) -> Vec<u8> {
    if status.as_u16() < 400 {
        return body;
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let Some(error) = value.get_mut("error").and_then(Value::as_object_mut) else {
        return body;
    };
    error.insert("timestamp".into(), crate::db::timestamp::now().into());
    error.insert("request_id".into(), request_id.into());
    error
        .entry("details")
        .or_insert_with(|| Value::Array(Vec::new()));
    serde_json::to_vec(&value).unwrap_or(body)
}

/// The `Host::call` entrance: a plugin's call to another plugin's route
/// (`HostOp::Call`), made on the calling handler's thread with the original
/// caller's rights, through the same steps as HTTP: resolve, authorize,
/// invoke, finish. It counts in the route's metrics itself (no middleware
/// sees it).
///
/// `path` is the full path (the other plugin's prefix included) and may
/// carry a query string. Refusals come back as the status and standard
/// error body an HTTP client would have received.
pub fn call_from_plugin(
    manager: &PluginManager,
    calling_plugin: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<CallResponse, String> {
    let context = current_call().unwrap_or_default();
    if context.depth >= MAX_CALL_DEPTH {
        return Err(format!(
            "plugin calls nested more than {MAX_CALL_DEPTH} deep; is there a loop between plugins?"
        ));
    }
    let method = method.to_ascii_uppercase();
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let refused = |error: ApiError| Ok(error_call_response(&error, &context.request_id));
    let generation = match locate(manager, path) {
        Ok(generation) => generation,
        Err(unrouted) => return refused(unrouted.error(&method, path)),
    };
    let resolved = match resolve(&generation, &method, path) {
        Ok(resolved) => resolved,
        Err(unrouted) => return refused(unrouted.error(&method, path)),
    };
    let started = Instant::now();
    let count = |status: StatusCode| {
        manager.request_metrics().record(
            method_label(&axum::http::Method::from_bytes(method.as_bytes()).unwrap_or_default()),
            generation.label(resolved.route),
            status.as_str(),
            started.elapsed().as_secs_f64(),
        );
    };
    if let Err(error) = authorize(
        resolved.spec,
        context.caller.as_deref(),
        "this route needs an authenticated caller, and the calling request has none",
    ) {
        count(error.status());
        return refused(error);
    }
    let body = match body {
        Some(value) => serde_json::to_vec(value).map_err(|error| error.to_string())?,
        None => Vec::new(),
    };
    let mut extra_headers = vec![("x-xcore-calling-plugin", calling_plugin)];
    if !body.is_empty() {
        extra_headers.push(("content-type", "application/json"));
    }
    let nested = CallContext {
        depth: context.depth + 1,
        ..context.clone()
    };
    let call = RouteCall {
        route: resolved.route,
        pattern: &resolved.spec.path,
        method: &method,
        path: resolved.relative,
        params: &resolved.params,
        query,
        headers: None,
        extra_headers: &extra_headers,
        body: &body,
    };
    let run = || call.invoke(manager, &generation, nested);
    // A route marked blocking may take long: let the runtime move other
    // tasks off this worker meanwhile.
    let answer = if resolved.spec.blocking && tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    count(status);
    let body = stamp_error_body(status, answer.body, &context.request_id);
    Ok(CallResponse {
        status: answer.status,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// A refusal as the calling plugin receives it: the standard error body.
fn error_call_response(error: &ApiError, request_id: &str) -> CallResponse {
    CallResponse {
        status: error.status().as_u16(),
        body: serde_json::json!({
            "error": {
                "code": error.code(),
                "message": error.message(),
                "details": error.details(),
                "timestamp": crate::db::timestamp::now(),
                "request_id": request_id,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_the_host_builds_is_the_head_plugins_read() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        headers.insert(header::COOKIE, HeaderValue::from_static("session=secret"));
        headers.insert(
            crate::auth::api_keys::HEADER,
            HeaderValue::from_static("xk_secret"),
        );
        let caller = Caller {
            user_id: 7,
            email: "a@example.com".into(),
            permissions: vec!["hello:read".into()],
        };
        let params = [("id", "42")];
        let call = RouteCall {
            route: 3,
            pattern: "/greetings/{id}",
            method: "GET",
            path: "/greetings/42",
            params: &params,
            query: Some("q=a+b&tag=x&tag=y%21"),
            headers: Some(&headers),
            extra_headers: &[("x-xcore-calling-plugin", "crm")],
            body: b"{}",
        };
        let (read, index, body) = call.with_ffi(Some(&caller), "req_1", |request| {
            (
                xcore_plugin_sdk::RequestHead::from_ffi(&request),
                request.route_index,
                request.body.as_slice().to_vec(),
            )
        });
        assert_eq!((index, body.as_slice()), (3, &b"{}"[..]));
        assert!(!format!("{read:?}").contains("secret"), "{read:?}");
        assert_eq!(read.method, "GET");
        assert_eq!(read.path, "/greetings/42");
        assert_eq!(read.route, "/greetings/{id}");
        assert_eq!(read.params.get("id").map(String::as_str), Some("42"));
        assert_eq!(
            read.query,
            vec![
                ("q".to_string(), "a b".to_string()),
                ("tag".to_string(), "x".to_string()),
                ("tag".to_string(), "y!".to_string()),
            ]
        );
        assert_eq!(
            read.headers.get("accept").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            read.headers
                .get("x-xcore-calling-plugin")
                .map(String::as_str),
            Some("crm")
        );
        assert_eq!(read.headers.len(), 2);
        assert_eq!(read.caller, Some(caller));
        assert_eq!(read.request_id, "req_1");
    }

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
