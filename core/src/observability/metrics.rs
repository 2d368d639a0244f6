//! Prometheus metrics: the registry every subsystem registers into, the
//! per-request middleware, and `GET /metrics`.
//!
//! The `endpoint` label is the matched route template (`/admin/users/{user_id}`),
//! never the raw path: raw paths would create one time series per id and
//! exhaust the scraper. Requests that match no route share `unmatched`.
//! Routes served outside axum's router (plugin routes) put a [`RouteLabel`]
//! in the response extensions to name their template; the per-plugin
//! families are derived from these series when scraped.

use std::sync::Arc;

use std::{collections::BTreeMap, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus::{
    proto::MetricFamily, Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use crate::error::ApiError;

/// The plugin routes' metric labels, by label: read at each scrape.
pub type RouteLabels =
    Box<dyn Fn() -> std::collections::BTreeMap<&'static str, String> + Send + Sync>;

/// What `/metrics` reads: the registry and the plugin routes' labels
/// (a function, so this module need not know the plugin manager).
pub struct MetricsState {
    /// The registry.
    pub metrics: Arc<Metrics>,
    /// The plugin routes' labels.
    pub route_labels: RouteLabels,
}

impl std::fmt::Debug for MetricsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsState").finish_non_exhaustive()
    }
}

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

    /// Records one request (HTTP, or a plugin's call to another plugin).
    pub fn record(&self, method: &str, endpoint: &str, status: &str, seconds: f64) {
        self.requests
            .with_label_values(&[method, endpoint, status])
            .inc();
        self.duration
            .with_label_values(&[method, endpoint])
            .observe(seconds);
    }
}

/// Bounds the `method` label to the standard verbs.
pub fn method_label(method: &Method) -> &'static str {
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
pub async fn middleware(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
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
    metrics.record(method, endpoint, response.status().as_str(), elapsed);
    response
}

/// `GET /metrics` in the Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "observability",
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4"),
        (status = 500, description = "Metrics could not be encoded", body = crate::error::ErrorBody),
    )
)]
pub async fn render(State(state): State<Arc<MetricsState>>) -> Result<Response, ApiError> {
    let encoder = TextEncoder::new();
    let mut families = state.metrics.registry.gather();
    let plugin_routes = (state.route_labels)();
    families.extend(plugin_families(&families, &plugin_routes));
    let mut buffer = Vec::with_capacity(16 * 1024);
    encoder
        .encode(&families, &mut buffer)
        .map_err(ApiError::internal)?;
    Ok((
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        buffer,
    )
        .into_response())
}

fn label<'a>(metric: &'a prometheus::proto::Metric, name: &str) -> Option<&'a str> {
    metric
        .get_label()
        .iter()
        .find(|pair| pair.name() == name)
        .map(|pair| pair.value())
}

fn label_pairs(pairs: &[(&str, &str)]) -> Vec<prometheus::proto::LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut pair = prometheus::proto::LabelPair::default();
            pair.set_name((*name).to_string());
            pair.set_value((*value).to_string());
            pair
        })
        .collect()
}

/// `xcore_plugin_requests_total{plugin,route,status}` and
/// `xcore_plugin_request_duration_seconds{plugin,route}`, derived at scrape
/// time from the request metrics of the plugin routes (`route_owner` maps a
/// route label to its plugin), summed over methods. Deriving them costs the
/// request path nothing: recording a second set per request measured about
/// 3% of a trivial plugin route's throughput.
pub fn plugin_families(
    gathered: &[MetricFamily],
    route_owner: &BTreeMap<&'static str, String>,
) -> Vec<MetricFamily> {
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut durations: BTreeMap<(String, String), prometheus::proto::Histogram> = BTreeMap::new();
    for family in gathered {
        for metric in family.get_metric() {
            let Some(route) = label(metric, "endpoint") else {
                continue;
            };
            let Some(plugin) = route_owner.get(route) else {
                continue;
            };
            match family.name() {
                "xcore_requests_total" => {
                    let status = label(metric, "status").unwrap_or_default();
                    *counts
                        .entry((plugin.clone(), route.to_string(), status.to_string()))
                        .or_default() += metric.get_counter().get_value() as u64;
                }
                "xcore_request_duration_seconds" => {
                    let source = metric.get_histogram();
                    let total = durations
                        .entry((plugin.clone(), route.to_string()))
                        .or_insert_with(|| {
                            let mut empty = source.clone();
                            empty.set_sample_count(0);
                            empty.set_sample_sum(0.0);
                            let buckets = empty
                                .get_bucket()
                                .iter()
                                .map(|bucket| {
                                    let mut zero = bucket.clone();
                                    zero.set_cumulative_count(0);
                                    zero
                                })
                                .collect();
                            empty.set_bucket(buckets);
                            empty
                        });
                    total.set_sample_count(total.get_sample_count() + source.get_sample_count());
                    total.set_sample_sum(total.get_sample_sum() + source.get_sample_sum());
                    let buckets = total
                        .get_bucket()
                        .iter()
                        .zip(source.get_bucket())
                        .map(|(sum, add)| {
                            let mut bucket = sum.clone();
                            bucket.set_cumulative_count(
                                sum.cumulative_count() + add.cumulative_count(),
                            );
                            bucket
                        })
                        .collect();
                    total.set_bucket(buckets);
                }
                _ => {}
            }
        }
    }
    let mut requests = MetricFamily::default();
    requests.set_name("xcore_plugin_requests_total".into());
    requests.set_help("Plugin requests by plugin, route template and status".into());
    requests.set_field_type(prometheus::proto::MetricType::COUNTER);
    for ((plugin, route, status), count) in counts {
        let mut metric = prometheus::proto::Metric::from_label(label_pairs(&[
            ("plugin", &plugin),
            ("route", &route),
            ("status", &status),
        ]));
        let mut counter = prometheus::proto::Counter::default();
        counter.set_value(count as f64);
        metric.set_counter(counter);
        requests.mut_metric().push(metric);
    }
    let mut duration = MetricFamily::default();
    duration.set_name("xcore_plugin_request_duration_seconds".into());
    duration.set_help("Plugin request duration by plugin and route template".into());
    duration.set_field_type(prometheus::proto::MetricType::HISTOGRAM);
    for ((plugin, route), histogram) in durations {
        let mut metric = prometheus::proto::Metric::from_label(label_pairs(&[
            ("plugin", &plugin),
            ("route", &route),
        ]));
        metric.set_histogram(histogram);
        duration.mut_metric().push(metric);
    }
    [requests, duration]
        .into_iter()
        .filter(|family| !family.get_metric().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_families_sum_plugin_routes_over_methods_and_skip_the_rest() {
        let metrics = Metrics::new().expect("metrics");
        metrics.record("GET", "/api/v1/hello/greetings", "200", 0.002);
        metrics.record("POST", "/api/v1/hello/greetings", "200", 0.004);
        metrics.record("POST", "/api/v1/hello/greetings", "422", 0.001);
        metrics.record("GET", "/health", "200", 0.001);
        let owners = BTreeMap::from([("/api/v1/hello/greetings", "hello".to_string())]);
        let derived = plugin_families(&metrics.registry().gather(), &owners);
        let text = TextEncoder::new()
            .encode_to_string(&derived)
            .expect("encode");
        assert!(text.contains(
            r#"xcore_plugin_requests_total{plugin="hello",route="/api/v1/hello/greetings",status="200"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"xcore_plugin_requests_total{plugin="hello",route="/api/v1/hello/greetings",status="422"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"xcore_plugin_request_duration_seconds_count{plugin="hello",route="/api/v1/hello/greetings"} 3"#
        ), "{text}");
        assert!(text.contains(
            r#"xcore_plugin_request_duration_seconds_bucket{plugin="hello",route="/api/v1/hello/greetings",le="0.0025"} 2"#
        ), "{text}");
        assert!(!text.contains("/health"), "{text}");
    }
}
