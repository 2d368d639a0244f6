//! Observability: Prometheus metrics, health endpoints, and logging setup.

pub mod health;
pub mod logging;
pub mod metrics;

use std::sync::Arc;

use axum::{extract::FromRef, routing::get, Router};

use health::HealthState;
use metrics::MetricsState;

/// `/health`, `/health/live`, `/health/ready` and `/metrics`.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<HealthState>: FromRef<S>,
    Arc<MetricsState>: FromRef<S>,
{
    Router::new()
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
}
