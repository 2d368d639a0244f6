//! Observability: Prometheus metrics, health endpoints, and logging setup.

pub mod health;
pub mod logging;
pub mod metrics;

use axum::{routing::get, Router};

use crate::app::AppState;

/// `/health`, `/health/live`, `/health/ready` and `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
}
