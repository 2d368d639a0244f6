//! The request path into plugins: the router's fallback.
//!
//! 1. Longest `api_prefix` match in the route table (an atomic snapshot).
//! 2. The plugin's own route table (matchit): 404, or 405 with `Allow`.
//! 3. RBAC: the route's permission against the caller (401/403).
//! 4. The body, bounded by `server.max_body_bytes` (413).
//! 5. The handler, called inline on this worker: the spike measured that at
//!    0.95x a native route against 0.4x through the blocking pool. Host
//!    services park the thread with `block_in_place` when the plugin calls
//!    back for SQL. Routes the plugin marks `blocking` go to the blocking
//!    pool.
//! 6. The answer is copied into host memory before the generation can drop,
//!    plugin error bodies get the request id and timestamp, and per-plugin
//!    metrics are recorded.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Body,
    extract::{FromRequestParts, Request, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use xcore_plugin_api::{Caller, RequestHead};

use xcore_plugin_api::manifest::RouteSpec;

use super::generation::{Generation, PluginResponse, RouteMatch};
use crate::{
    app::AppState,
    auth::{extract::bearer_token, AuthUser},
    error::{ApiError, ErrorCode},
    http::request_context::current_request_id,
    observability::metrics::RouteLabel,
};

/// `xcore_plugin_requests_total` and `xcore_plugin_request_duration_seconds`.
#[derive(Clone, Debug)]
pub struct PluginMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl PluginMetrics {
    /// Registers the plugin metrics.
    pub fn new(registry: &Registry) -> anyhow::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "xcore_plugin_requests_total",
                "Plugin requests by plugin, route template and status",
            ),
            &["plugin", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "xcore_plugin_request_duration_seconds",
                "Time spent in plugin handlers",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            &["plugin", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }
}

/// Serves a request under a plugin prefix, or 404.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    match serve(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    let generation: Arc<Generation> =
        state.plugins.table().find(&path).cloned().ok_or_else(|| {
            ApiError::not_found(format!("no route for {} {path}", request.method()))
        })?;
    let relative = match &path[generation.prefix.len()..] {
        "" => "/",
        rest => rest,
    };
    let method = request.method().as_str().to_string();
    let (spec, label, params) = match generation.route(&method, relative) {
        RouteMatch::Found(spec, label, params) => (spec.clone(), label.to_string(), params),
        RouteMatch::Missing => {
            return Err(ApiError::not_found(format!("no route for {method} {path}")))
        }
        RouteMatch::WrongMethod(allowed) => {
            let mut response = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::ValidationError,
                format!(
                    "{method} is not allowed on {path}; allowed: {}",
                    allowed.join(", ")
                ),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return Ok(response);
        }
    };
    // From here on the route is known: label every outcome with its
    // template, refusals included.
    let mut response = call(state, &generation, &spec, &label, params, relative, request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(RouteLabel(label));
    Ok(response)
}

/// Checks the caller, reads the body and calls the matched route.
async fn call(
    state: &AppState,
    generation: &Arc<Generation>,
    spec: &RouteSpec,
    label: &str,
    params: Vec<(String, String)>,
    relative: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let method = request.method().as_str().to_string();
    let (mut parts, body) = request.into_parts();
    let caller = match &spec.permission {
        Some(permission) => {
            let user = AuthUser::from_request_parts(&mut parts, state).await?;
            user.require(permission)?;
            Some(user)
        }
        // Public routes still learn who calls when a valid token is sent.
        None if bearer_token(&parts).is_some() => {
            AuthUser::from_request_parts(&mut parts, state).await.ok()
        }
        None => None,
    };
    let body = axum::body::to_bytes(body, state.config.server.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::ValidationError,
                "request body too large",
            )
        })?;
    let head = RequestHead {
        method,
        path: relative.to_string(),
        route: spec.path.clone(),
        params: params.into_iter().collect(),
        query: parts
            .uri
            .query()
            .map(|query| serde_urlencoded::from_str(query).unwrap_or_default())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| *name != header::AUTHORIZATION && *name != header::COOKIE)
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        caller: caller.map(|user| Caller {
            user_id: user.id,
            email: user.email,
            permissions: user.permissions.into_iter().collect(),
        }),
        request_id: current_request_id().unwrap_or_default(),
    };
    let head = serde_json::to_string(&head).map_err(ApiError::internal)?;
    let started = Instant::now();
    let answer = if spec.blocking {
        let generation = generation.clone();
        tokio::task::spawn_blocking(move || generation.handle(&head, &body))
            .await
            .map_err(ApiError::internal)?
    } else {
        generation.handle(&head, &body)
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    state
        .plugin_metrics
        .requests
        .with_label_values(&[generation.id.as_str(), label, status.as_str()])
        .inc();
    state
        .plugin_metrics
        .duration
        .with_label_values(&[generation.id.as_str(), label])
        .observe(started.elapsed().as_secs_f64());
    let streak = generation.record_outcome(answer.panicked);
    if answer.panicked {
        tracing::error!(
            plugin = generation.id.as_str(),
            route = label,
            streak,
            "plugin handler panicked"
        );
        // Exactly one request reaches the threshold, so one quarantine runs;
        // off the request path, which answers the 500 at once.
        if streak == state.config.plugins.quarantine_after_panics {
            let (manager, id) = (state.plugins.clone(), generation.id.clone());
            tokio::spawn(async move {
                let reason = format!("quarantined after {streak} consecutive panics");
                if let Err(error) = manager.quarantine(&id, reason).await {
                    tracing::error!(
                        plugin = id.as_str(),
                        error = error.message(),
                        "quarantine failed"
                    );
                }
            });
        }
    }
    Ok(to_response(answer))
}

/// Builds the HTTP response; a plugin's error body gets the host's
/// `timestamp` and `request_id` so clients see one error shape everywhere.
fn to_response(answer: PluginResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = answer.body;
    if status.as_u16() >= 400 {
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) {
            if let Some(error) = value
                .get_mut("error")
                .and_then(serde_json::Value::as_object_mut)
            {
                error.insert("timestamp".into(), crate::db::timestamp::now().into());
                error.insert("request_id".into(), current_request_id().into());
                error
                    .entry("details")
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                body = serde_json::to_vec(&value).unwrap_or(body);
            }
        }
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
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
