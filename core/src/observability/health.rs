//! `/health` (full report), `/health/live` (process is up, no I/O) and
//! `/health/ready` (accepting traffic: database reachable, not draining).

use std::{path::Path, time::Duration};

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::Serialize;
use serde_json::json;

use crate::{app::AppState, db::timestamp};

/// Longest a health probe waits for the database.
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The individual checks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// The database answered `SELECT 1` in time.
    pub database: bool,
    /// The data directory's file system has enough free space.
    pub disk: bool,
}

/// The `/health` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// `healthy`, `degraded` (disk low, still serving) or `unhealthy`.
    pub status: &'static str,
    /// Per-check results.
    pub checks: Checks,
    /// When the report was made.
    pub timestamp: String,
    /// xcore version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime: u64,
}

async fn database_ok(state: &AppState) -> bool {
    matches!(
        tokio::time::timeout(DATABASE_PROBE_TIMEOUT, state.db.ping()).await,
        Ok(Ok(()))
    )
}

fn disk_ok(data_dir: &Path, min_free_mb: u64) -> bool {
    match nix::sys::statvfs::statvfs(data_dir) {
        Ok(stats) => {
            let free = stats
                .blocks_available()
                .saturating_mul(stats.fragment_size());
            free >= min_free_mb.saturating_mul(1024 * 1024)
        }
        Err(_) => false,
    }
}

/// Full report; 503 when the database is down.
#[utoipa::path(
    get, path = "/health", tag = "observability",
    responses(
        (status = 200, description = "`healthy`, or `degraded` when disk space is low", body = HealthReport),
        (status = 503, description = "`unhealthy`: the database does not answer", body = HealthReport),
    )
)]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (status_code, report) = report(&state).await;
    (status_code, Json(report))
}

/// Runs the checks: the report and the status `/health` answers with (the
/// home page shows the same report).
pub async fn report(state: &AppState) -> (StatusCode, HealthReport) {
    let checks = Checks {
        database: database_ok(state).await,
        disk: disk_ok(&state.data_dir, state.config.health.min_free_disk_mb),
    };
    let (status_code, status) = match (checks.database, checks.disk) {
        (true, true) => (StatusCode::OK, "healthy"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy"),
    };
    let report = HealthReport {
        status,
        checks,
        timestamp: timestamp::now(),
        version: env!("CARGO_PKG_VERSION"),
        uptime: state.started_at.elapsed().as_secs(),
    };
    (status_code, report)
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(
    get, path = "/health/live", tag = "observability",
    responses((status = 200, description = "The process serves HTTP"))
)]
pub async fn live() -> impl IntoResponse {
    Json(json!({"status": "alive"}))
}

/// Readiness: 503 while draining for shutdown or when the database is down,
/// so a load balancer stops sending traffic here first.
#[utoipa::path(
    get, path = "/health/ready", tag = "observability",
    responses(
        (status = 200, description = "Ready for traffic"),
        (status = 503, description = "Draining for shutdown, or the database is down"),
    )
)]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting_down"})),
        );
    }
    if !database_ok(&state).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "database_unavailable"})),
        );
    }
    (StatusCode::OK, Json(json!({"status": "ready"})))
}
