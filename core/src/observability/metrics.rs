//! Prometheus metrics: the registry every subsystem registers into, the
//! per-request middleware, and `GET /metrics`.
//!
//! The `endpoint` label is the matched route template (`/admin/users/{user_id}`),
//! never the raw path: raw paths would create one time series per id and
//! exhaust the scraper. Requests that match no route share `unmatched`.
//! Routes served outside axum's router (plugin routes) put a [`RouteLabel`]
//! in the response extensions to name their template.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::{app::AppState, error::ApiError};

/// Names the route template of a response served outside the axum router.
#[derive(Clone, Copy, Debug)]
pub struct RouteLabel(pub &'static str);

/// One shared copy of a route label. Labels are route templates, so there
/// are few of them and they live for the process anyway (as metric label
/// values); a `'static` copy costs no reference counting per request.
pub fn intern_label(label: &str) -> &'static str {
    static LABELS: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut labels = LABELS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = labels.get(label) {
        return known;
    }
    let leaked: &'static str = Box::leak(label.to_owned().into_boxed_str());
    labels.insert(leaked);
    leaked
}

/// The host's metric registry and its request metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    /// Creates the registry with the request metrics and process metrics.
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "xcore_requests_total",
                "HTTP requests by method, route template and status",
            ),
            &["method", "endpoint", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "xcore_request_duration_seconds",
                "HTTP request duration by method and route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method", "endpoint"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            requests,
            duration,
        })
    }

    /// The registry, for subsystems that add their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn record(&self, method: &str, endpoint: &str, status: &str, seconds: f64) {
        self.requests
            .with_label_values(&[method, endpoint, status])
            .inc();
        self.duration
            .with_label_values(&[method, endpoint])
            .observe(seconds);
    }
}

/// Bounds the `method` label to the standard verbs.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Records one request.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let endpoint = match (&matched, response.extensions().get::<RouteLabel>()) {
        (_, Some(label)) => label.0,
        (Some(path), None) => path.as_str(),
        (None, None) => "unmatched",
    };
    state
        .metrics
        .record(method, endpoint, response.status().as_str(), elapsed);
    response
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let encoder = TextEncoder::new();
    let mut buffer = Vec::with_capacity(16 * 1024);
    encoder
        .encode(&state.metrics.registry.gather(), &mut buffer)
        .map_err(ApiError::internal)?;
    Ok((
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        buffer,
    )
        .into_response())
}
