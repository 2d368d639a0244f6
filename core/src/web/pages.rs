//! The askama pages: `/` (home), `/core-docs` (ReDoc) and `/console`.
//!
//! The home page is public, so it shows only what is safe for anyone who
//! can reach the port: names, versions, states, prefixes, route counts,
//! schedules and the health verdict. It never shows a plugin's or a task's
//! `last_error`: those messages carry file paths, SQL and library details
//! meant for operators, and the console shows them after login through
//! `/system/plugins` and `/system/tasks`, where `plugins:manage` and
//! `tasks:manage` are checked.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{Html, IntoResponse, Response},
};

use crate::{
    error::ApiError,
    observability::health::{self, HealthState},
    plugins::manager::PluginManager,
    tasks::Scheduler,
};

/// The vendored ReDoc bundle (see `static/vendor/redoc-*/README.md`).
pub const REDOC_SCRIPT: &str = "/static/vendor/redoc-2.5.4/redoc.standalone.js";

/// A plugin row on the home page.
#[derive(Debug)]
pub struct PluginRow {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version, when the library could be read.
    pub version: String,
    /// `active`, `disabled`, `refused` or `failed`.
    pub state: &'static str,
    /// Mount point.
    pub prefix: String,
    /// Number of routes it serves.
    pub routes: usize,
}

/// A task row on the home page.
#[derive(Debug)]
pub struct TaskRow {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Schedule, human-readable.
    pub schedule: String,
    /// `scheduled`, `running`, `paused`, ...
    pub status: &'static str,
    /// Last run start, or `-`.
    pub last_run: String,
    /// Next run, or `-`.
    pub next_run: String,
}

/// `templates/home.html`.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// Product name.
    pub name: &'static str,
    /// xcore version.
    pub version: &'static str,
    /// Uptime, human-readable.
    pub uptime: String,
    /// `healthy`, `degraded` or `unhealthy`.
    pub health: &'static str,
    /// Database check.
    pub database_ok: bool,
    /// Disk check.
    pub disk_ok: bool,
    /// Installed plugins.
    pub plugins: Vec<PluginRow>,
    /// Scheduled tasks; `None` when they could not be read.
    pub tasks: Option<Vec<TaskRow>>,
}

/// `templates/core_docs.html`.
#[derive(Template)]
#[template(path = "core_docs.html")]
pub struct DocsPage {
    /// Where the bundle is served.
    pub redoc_script: &'static str,
}

/// `templates/console.html`.
#[derive(Template)]
#[template(path = "console.html")]
pub struct ConsolePage {
    /// xcore version.
    pub version: &'static str,
}

/// What the pages may load: this origin only. Besides hardening, it keeps
/// the pages offline-clean: the one external URL inside the vendored ReDoc
/// bundle (the Redocly logo in its sidebar footer) is never requested, and
/// ReDoc drops the image when it fails to load. ReDoc needs inline styles
/// (styled-components) and runs its search index in a `blob:` worker.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; script-src 'self'; worker-src 'self' blob:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Renders a template as an HTML response.
fn render(page: &impl Template) -> Result<Response, ApiError> {
    let html = page.render().map_err(ApiError::internal)?;
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    // Pages show live state; never serve a stale copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    Ok(response)
}

/// `3d 4h 5m 6s`, leading zero units left out.
pub fn format_uptime(uptime: Duration) -> String {
    let total = uptime.as_secs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let mut parts = Vec::new();
    for (value, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if value > 0 || !parts.is_empty() {
            parts.push(format!("{value}{unit}"));
        }
    }
    parts.push(format!("{seconds}s"));
    parts.join(" ")
}

/// The home page.
#[utoipa::path(
    get, path = "/", tag = "pages",
    responses((status = 200, description = "HTML: version, uptime, health, plugins, tasks and links", content_type = "text/html"))
)]
pub async fn home(
    State(health_state): State<Arc<HealthState>>,
    State(plugins): State<Arc<PluginManager>>,
    State(tasks): State<Arc<Scheduler>>,
) -> Result<Response, ApiError> {
    let (_, report) = health::report(&health_state).await;
    let plugins = plugins
        .list()
        .await
        .into_iter()
        .map(|plugin| PluginRow {
            routes: plugin.endpoints.len(),
            version: plugin.version.unwrap_or_else(|| "-".into()),
            prefix: plugin.api_prefix.unwrap_or_else(|| "-".into()),
            state: plugin.state,
            name: plugin.name,
            id: plugin.id,
        })
        .collect();
    // A task store failure must not take the whole page down: the health
    // line already says whether the database answers.
    let tasks = match tasks.records().await {
        Ok(records) => {
            let mut rows = Vec::with_capacity(records.len());
            for record in records {
                let view = tasks.view(record).await;
                rows.push(TaskRow {
                    id: view.id,
                    name: view.name,
                    schedule: view.schedule,
                    status: view.status,
                    last_run: view.last_run.unwrap_or_else(|| "-".into()),
                    next_run: view.next_run.unwrap_or_else(|| "-".into()),
                });
            }
            Some(rows)
        }
        Err(error) => {
            tracing::warn!(error = error.message(), "home page: cannot list tasks");
            None
        }
    };
    render(&HomePage {
        name: "xcore",
        version: env!("CARGO_PKG_VERSION"),
        uptime: format_uptime(health_state.started_at.elapsed()),
        health: report.status,
        database_ok: report.checks.database,
        disk_ok: report.checks.disk,
        plugins,
        tasks,
    })
}

/// The API reference: ReDoc over `/openapi.json`, every script served here.
#[utoipa::path(
    get, path = "/core-docs", tag = "pages",
    responses((status = 200, description = "HTML: ReDoc over /openapi.json (no external resources)", content_type = "text/html"))
)]
pub async fn core_docs() -> Result<Response, ApiError> {
    render(&DocsPage {
        redoc_script: REDOC_SCRIPT,
    })
}

/// The operator console (its data comes from the authenticated API).
#[utoipa::path(
    get, path = "/console", tag = "pages",
    responses((status = 200, description = "HTML: log in, manage plugins and tasks, watch the event feed", content_type = "text/html"))
)]
pub async fn console() -> Result<Response, ApiError> {
    render(&ConsolePage {
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_naturally() {
        assert_eq!(format_uptime(Duration::from_secs(0)), "0s");
        assert_eq!(format_uptime(Duration::from_secs(61)), "1m 1s");
        assert_eq!(format_uptime(Duration::from_secs(3600)), "1h 0m 0s");
        assert_eq!(
            format_uptime(Duration::from_secs(2 * 86_400 + 5)),
            "2d 0h 0m 5s"
        );
    }

    #[test]
    fn home_page_escapes_what_plugins_supply() {
        let page = HomePage {
            name: "xcore",
            version: "0.1.0",
            uptime: "1s".into(),
            health: "healthy",
            database_ok: true,
            disk_ok: true,
            plugins: vec![PluginRow {
                id: "evil".into(),
                name: "<script>alert(1)</script>".into(),
                version: "1.0.0".into(),
                state: "active",
                prefix: "/api/evil".into(),
                routes: 2,
            }],
            tasks: Some(Vec::new()),
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(html.contains("/api/evil"));
    }

    #[test]
    fn docs_page_uses_only_the_local_bundle() {
        let html = DocsPage {
            redoc_script: REDOC_SCRIPT,
        }
        .render()
        .expect("renders");
        assert!(html.contains(REDOC_SCRIPT));
        assert!(html.contains("spec-url=\"/openapi.json\""));
        assert!(!html.contains("http://") && !html.contains("https://"));
        let bundle = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(REDOC_SCRIPT.trim_start_matches('/'));
        assert!(bundle.is_file(), "{} is missing", bundle.display());
    }
}
