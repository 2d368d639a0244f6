//! The `Host::call` entrance: a plugin calling another plugin's route.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::Value;
use xcore_plugin_sdk::host::CallResponse;

use super::{
    authorize, current_call, error_body, invoke::RouteCall, locate, resolve, CallContext,
    MAX_CALL_DEPTH,
};
use crate::{
    error::ApiError,
    observability::metrics::method_label,
    plugins::{generation::Generation, manager::PluginManager},
};

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
    let body = match (&answer.error, answer.stream) {
        (Some(error), _) => error_body(error, &context.request_id),
        (None, Some(stream)) => {
            let body = drain_stream(&generation, stream, answer.body)?;
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        }
        (None, None) => serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    };
    Ok(CallResponse {
        status: answer.status,
        body,
    })
}

/// Largest streamed answer a `Host::call` reads whole.
const MAX_CALLED_STREAM_BYTES: usize = 32 << 20;

/// A streamed answer to `Host::call`, read whole (the caller gets JSON,
/// not a stream); the stream is closed if it fails or grows too large.
fn drain_stream(
    generation: &Generation,
    stream: u64,
    mut body: Vec<u8>,
) -> Result<Vec<u8>, String> {
    loop {
        match generation.next_chunk(stream)? {
            Some(chunk) if body.len() + chunk.len() <= MAX_CALLED_STREAM_BYTES => {
                body.extend_from_slice(&chunk);
            }
            Some(_) => {
                generation.close_stream(stream);
                return Err(format!(
                    "the called route streamed more than {MAX_CALLED_STREAM_BYTES} bytes"
                ));
            }
            None => return Ok(body),
        }
    }
}

/// A refusal as the calling plugin receives it: the standard error body.
fn error_call_response(error: &ApiError, request_id: &str) -> CallResponse {
    CallResponse {
        status: error.status().as_u16(),
        body: crate::error::standard_body(
            error.code().as_str(),
            error.message(),
            error.details(),
            Some(request_id),
        ),
    }
}
