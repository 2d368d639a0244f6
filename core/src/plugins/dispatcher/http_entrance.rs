//! The HTTP entrance: the router's fallback for every path under a
//! plugin prefix.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{FromRef, Request, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use xcore_plugin_sdk::{manifest::RouteSpec, Caller};

use super::{
    authorize, error_body,
    invoke::{OwnedCall, RouteCall},
    locate, resolve, CallContext,
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
    observability::metrics::RouteLabel,
    plugins::{
        generation::{Generation, PluginResponse},
        manager::PluginManager,
        streamed,
    },
};

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
            owned.lend(&generation, |call| {
                call.invoke(&manager, &generation, context)
            })
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
    Ok(labelled(
        to_response(answer, &request_id, &generation),
        label,
    ))
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

/// Step 4, HTTP: the response; a structured error rendered as the standard
/// body, a stream pulled from the plugin as the client reads.
fn to_response(answer: PluginResponse, request_id: &str, generation: &Arc<Generation>) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match (&answer.error, answer.stream) {
        (Some(error), _) => {
            Body::from(serde_json::to_vec(&error_body(error, request_id)).unwrap_or_default())
        }
        (None, Some(stream)) => streamed::body(generation.clone(), stream, answer.body),
        (None, None) => Body::from(answer.body),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if answer.json || answer.error.is_some() {
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
