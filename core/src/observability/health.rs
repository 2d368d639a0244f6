//! `/health` (full report), `/health/live` (process is up, no I/O) and
//! `/health/ready` (accepting traffic: database usable, not draining).
//!
//! The database check is [`Database::probe`](crate::db::Database::probe):
//! it reads a real table and starts a write transaction, because `SELECT 1`
//! touches neither the SQLite file nor any lock and kept answering while
//! requests failed on an unreadable file or a held write lock. Neither sees
//! a full disk (SQLite only writes at COMMIT), so on SQLite readiness also
//! fails when the database's file system is all but full. A failing check
//! is named in the body (`failed_check`); the error itself only goes to the
//! log.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::Serialize;
use serde_json::json;

use crate::{
    config::Config,
    db::{timestamp, Database, Dialect, ProbeFailure},
    http::server::Drain,
};

/// What the health endpoints (and the home page's health line) read.
#[derive(Debug)]
pub struct HealthState {
    /// `[health]` thresholds.
    pub config: Arc<Config>,
    /// The database probed.
    pub db: Database,
    /// Directory whose file system the disk check watches.
    pub data_dir: PathBuf,
    /// The database probe health requests share.
    pub health_probe: Arc<SharedProbe>,
    /// Start instant, for `uptime`.
    pub started_at: Instant,
    /// Readiness fails while the server drains.
    pub drain: Arc<Drain>,
}

impl HealthState {
    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.drain.is_draining()
    }
}

/// Longest a health probe waits for the database.
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Free space under which SQLite writes are failing or about to (a commit
/// appends whole pages to the WAL): readiness fails below it. The `disk`
/// check's `min_free_disk_mb` is the early warning; this is the wall.
const DISK_FULL_BYTES: u64 = 1024 * 1024;

/// The individual checks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// The database answered in time: a real table could be read and a
    /// write transaction could start.
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
    /// The check that failed, when one did: `database_connection`,
    /// `database_read`, `database_write`, or `disk` (low space, degraded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_check: Option<&'static str>,
    /// When the report was made.
    pub timestamp: String,
    /// xcore version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime: u64,
}

/// One database probe at a time, its result shared: every health request
/// that arrives while a probe runs gets that probe's answer, and requests
/// within `reuse` of it get it too. A prober polling in a loop, or a crowd
/// of them, costs the database one probe per `reuse`.
#[derive(Debug)]
pub struct SharedProbe {
    reuse: Duration,
    /// Held while a probe runs.
    running: tokio::sync::Mutex<()>,
    /// The last probe's end and result.
    last: std::sync::Mutex<Option<(Instant, Result<(), ProbeFailure>)>>,
    /// Probes run so far.
    runs: AtomicU64,
}

impl SharedProbe {
    /// Results are reused for `reuse` (zero: only by requests that waited
    /// for the probe).
    pub fn new(reuse: Duration) -> Self {
        Self {
            reuse,
            running: tokio::sync::Mutex::new(()),
            last: std::sync::Mutex::new(None),
            runs: AtomicU64::new(0),
        }
    }

    /// How many probes have run.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// The last result, if it is within the reuse time or ended after
    /// `waiting_since`.
    fn recent(&self, waiting_since: Option<Instant>) -> Option<Result<(), ProbeFailure>> {
        let last = self.last.lock().ok()?;
        let (ended, result) = last.as_ref()?;
        (ended.elapsed() < self.reuse || waiting_since.is_some_and(|since| *ended >= since))
            .then(|| result.clone())
    }

    async fn check(&self, db: &crate::db::Database) -> Result<(), ProbeFailure> {
        let arrived = Instant::now();
        if let Some(result) = self.recent(None) {
            return result;
        }
        let _running = self.running.lock().await;
        // A probe that ended while this request waited answers it too.
        if let Some(result) = self.recent(Some(arrived)) {
            return result;
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        let result = db.probe(DATABASE_PROBE_TIMEOUT).await;
        if let Err(failure) = &result {
            tracing::warn!(
                check = failure.check,
                error = failure.error.as_str(),
                "database health check failed"
            );
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), result.clone()));
        }
        result
    }
}

/// Probes the database through the shared probe.
async fn database_check(state: &HealthState) -> Result<(), ProbeFailure> {
    state.health_probe.check(&state.db).await
}

/// Free bytes on the file system holding `dir`; `None` when unknown.
fn free_bytes(dir: &Path) -> Option<u64> {
    nix::sys::statvfs::statvfs(dir).ok().map(|stats| {
        stats
            .blocks_available()
            .saturating_mul(stats.fragment_size())
    })
}

fn disk_ok(data_dir: &Path, min_free_mb: u64) -> bool {
    free_bytes(data_dir).is_some_and(|free| free >= min_free_mb.saturating_mul(1024 * 1024))
}

/// Whether writes to the SQLite file are failing for want of space. Only a
/// measurement says so: an unreadable `statvfs` is the `disk` check's
/// business, not a reason to stop traffic.
fn disk_full(state: &HealthState) -> bool {
    state.db.dialect() == Dialect::Sqlite
        && free_bytes(&state.data_dir).is_some_and(|free| free < DISK_FULL_BYTES)
}

/// Full report; 503 when the database is down.
#[utoipa::path(
    get, path = "/health", tag = "observability",
    responses(
        (status = 200, description = "`healthy`, or `degraded` when disk space is low", body = HealthReport),
        (status = 503, description = "`unhealthy`: the database does not answer", body = HealthReport),
    )
)]
pub async fn health(State(state): State<Arc<HealthState>>) -> impl IntoResponse {
    let (status_code, report) = report(&state).await;
    (status_code, Json(report))
}

/// Runs the checks: the report and the status `/health` answers with (the
/// home page shows the same report).
pub async fn report(state: &HealthState) -> (StatusCode, HealthReport) {
    let database = database_check(state).await;
    let checks = Checks {
        database: database.is_ok(),
        disk: disk_ok(&state.data_dir, state.config.health.min_free_disk_mb),
    };
    let failed_check = match &database {
        Err(failure) => Some(failure.check),
        Ok(()) if !checks.disk => Some("disk"),
        Ok(()) => None,
    };
    let (status_code, status) = match (checks.database, checks.disk) {
        (true, true) => (StatusCode::OK, "healthy"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy"),
    };
    let report = HealthReport {
        status,
        checks,
        failed_check,
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

/// Readiness: 503 while draining for shutdown or when the database cannot
/// serve requests (no connection, a real table unreadable, the write lock
/// held past a short wait, the SQLite file's disk full), so a load balancer
/// stops sending traffic here first.
#[utoipa::path(
    get, path = "/health/ready", tag = "observability",
    responses(
        (status = 200, description = "Ready for traffic"),
        (status = 503, description = "Draining for shutdown, the database is unusable or its disk is full (`failed_check` names the check)"),
    )
)]
pub async fn ready(State(state): State<Arc<HealthState>>) -> impl IntoResponse {
    if state.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting_down"})),
        );
    }
    if disk_full(&state) {
        tracing::warn!(
            data_dir = %state.data_dir.display(),
            "readiness: the database's disk is full"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "disk_full", "failed_check": "disk_full"})),
        );
    }
    if let Err(failure) = database_check(&state).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "database_unavailable", "failed_check": failure.check})),
        );
    }
    (StatusCode::OK, Json(json!({"status": "ready"})))
}
