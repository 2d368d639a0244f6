//! Imports from a URL (seed 000: `POST /imports/create` with a JSON body
//! `{"supplier_id", "file_url", "scheduled_at", "import_type"}`), next to
//! the multipart uploads of [`crate::imports`], which that route still
//! takes (`POST /imports` takes uploads only).
//!
//! - The request is checked now (supplier active, `file_url` an http(s)
//!   URL, `scheduled_at` an RFC 3339 instant, `import_type` `full`, no
//!   other field) and the job is stored `pending` with the URL and the
//!   supplier's configuration, without its file.
//! - The file is fetched when the job runs, through [`Host::http`], so
//!   only URLs the operator allowed the plugin (`[plugins.products]
//!   http_allow`) are reached, with the host's time and size bounds. A
//!   refused URL, an unreachable server, a status other than 2xx, an HTML,
//!   JSON, XML, PDF, image, audio or video body, an empty body, a body
//!   the supplier's encoding cannot read or whose header its mapping does
//!   not fit, or a file without rows fails the job (`failed`, `error`, an
//!   `error` log line) before any product is written. Once fetched, the
//!   file is stored like an upload, so an interrupted run resumes on the
//!   same file instead of fetching again.
//! - Without `scheduled_at` the job waits for `POST /imports/{id}/start`
//!   like an upload. With it, it starts by itself at that time (at once if
//!   the time has passed); `/start` may still start it earlier.
//!
//! # How a scheduled job starts on time
//!
//! The plugin has no timer of its own, and the host's tasks are the
//! operator's. So the `import` job's run, once it has nothing left to
//! import, waits for the next scheduled import (woken early by a new
//! start, see [`Wake`]) and starts it when due. A run waits at most
//! [`MAX_WAIT_PER_RUN`] and then asks for a fresh run of itself (the host
//! runs it right after this one ends), so no run holds the instance long;
//! one blocking thread is held while a scheduled import waits, and none
//! otherwise. After a load (restart, reload) the start hook asks for a run
//! if an import is scheduled. Several hosts on one PostgreSQL each wait;
//! the first to start a due import owns it (the `pending` -> `running`
//! update is the guard, then the claim, as for uploads).

use std::{
    sync::{Condvar, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::Map;
use xcore_plugin_sdk::{
    extract::FromRequest, multipart::Multipart, openapi::Operation, prelude::*, HttpRequest,
    Statement,
};

use crate::{
    csv_source::{self, ImportConfig, Plan},
    fields::{self, FieldProblem},
    imports::{JOB, MAX_FILE_BYTES},
    Products,
};

/// Longest a run of the `import` job waits for a scheduled import before
/// handing over to a fresh run. The host calls the plugin's `shutdown`
/// only once no run holds the instance, so this bounds how long a waiting
/// run delays a reload's release of the old library or the server's exit
/// (and keeps runs far under the host's job timeout); the price is one
/// indexed query per wait while an import is scheduled.
pub const MAX_WAIT_PER_RUN: Duration = Duration::from_secs(5);

/// Media types that are certainly not a CSV file (a login page, an API's
/// error document...): refused before the supplier's mapping is tried.
const NOT_CSV: &[&str] = &[
    "text/html",
    "application/xhtml+xml",
    "application/json",
    "application/xml",
    "text/xml",
    "application/pdf",
    "image/",
    "audio/",
    "video/",
];

/// What `POST /imports/create` takes: an uploaded file (multipart) or a
/// URL to fetch (JSON), told apart by the Content-Type.
pub enum ImportSource {
    /// `multipart/form-data` with `supplier_id` and `file`.
    File(Multipart),
    /// `application/json`: see [`UrlImport`].
    Url(Map<String, Value>),
}

impl FromRequest for ImportSource {
    const READS: Reads = Reads::HEADERS.and(Reads::BODY);

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        let media_type = request
            .head
            .headers
            .get("content-type")
            .and_then(|value| value.split(';').next())
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media_type == "application/json" {
            return match request.json::<Value>()? {
                Value::Object(fields) => Ok(ImportSource::Url(fields)),
                _ => Err(Response::invalid("body", "must be a JSON object")),
            };
        }
        Multipart::from_request(request).map(ImportSource::File)
    }

    fn document(_operation: &mut Operation) {
        // Each route documents its body (see `imports::routes`).
    }
}

/// `POST /imports/create`'s JSON body, as documented; [`UrlImport::parse`]
/// reads it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation of the body `UrlImport::parse` reads.
pub struct UrlImportBody {
    /// An active supplier: its import configuration reads the file.
    #[schema(minimum = 1)]
    supplier_id: i64,
    /// An `http(s)` URL the operator allowed (`[plugins.products]
    /// http_allow`); fetched when the job runs.
    #[schema(max_length = 2048)]
    file_url: String,
    /// RFC 3339: the job starts by itself at this time. Without it, it
    /// waits for `POST /imports/{id}/start`.
    scheduled_at: Option<String>,
    /// `full` (the only kind: every row, existing SKUs skipped).
    import_type: Option<String>,
}

/// A checked URL import request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlImport {
    /// The supplier whose configuration reads the file.
    pub supplier_id: i64,
    /// Where the file is.
    pub url: String,
    /// When it starts by itself, in the stored format.
    pub scheduled_at: Option<String>,
}

impl UrlImport {
    /// Reads the body, reporting every problem at once.
    pub fn parse(body: &Map<String, Value>) -> Result<Self, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        for key in body.keys() {
            if !matches!(
                key.as_str(),
                "supplier_id" | "file_url" | "scheduled_at" | "import_type"
            ) {
                problems.push(FieldProblem::new(
                    key,
                    "unknown field; expected supplier_id, file_url, scheduled_at, import_type",
                ));
            }
        }
        let supplier_id = match body.get("supplier_id") {
            None | Some(Value::Null) => {
                problems.push(FieldProblem::new("supplier_id", "required"));
                None
            }
            Some(value) => {
                let id = value
                    .as_i64()
                    .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
                    .filter(|id| *id > 0);
                if id.is_none() {
                    problems.push(FieldProblem::new(
                        "supplier_id",
                        "must be a positive integer",
                    ));
                }
                id
            }
        };
        let url = match body.get("file_url") {
            None | Some(Value::Null) => {
                problems.push(FieldProblem::new("file_url", "required"));
                None
            }
            Some(Value::String(url)) => match fields::check_url(url.trim()) {
                Ok(()) => Some(url.trim().to_string()),
                Err(message) => {
                    problems.push(FieldProblem::new("file_url", message));
                    None
                }
            },
            Some(_) => {
                problems.push(FieldProblem::new("file_url", "must be an http(s) URL"));
                None
            }
        };
        let scheduled_at = match body.get("scheduled_at") {
            None | Some(Value::Null) => None,
            Some(value) => {
                let instant = value
                    .as_str()
                    .and_then(|text| chrono::DateTime::parse_from_rfc3339(text.trim()).ok());
                if instant.is_none() {
                    problems.push(FieldProblem::new(
                        "scheduled_at",
                        "must be an RFC 3339 date-time (2025-10-06T02:00:00Z)",
                    ));
                }
                instant.map(|instant| {
                    instant
                        .with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                })
            }
        };
        match body.get("import_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(kind)) if kind.trim().eq_ignore_ascii_case("full") => {}
            Some(_) => problems.push(FieldProblem::new(
                "import_type",
                "must be full (every row is imported; existing SKUs are skipped)",
            )),
        }
        match (supplier_id, url) {
            (Some(supplier_id), Some(url)) if problems.is_empty() => Ok(Self {
                supplier_id,
                url,
                scheduled_at,
            }),
            _ => Err(problems),
        }
    }

    /// The job's file name: the URL's last path segment, or `download.csv`.
    pub fn filename(&self) -> String {
        let path = self.url.split(['?', '#']).next().unwrap_or_default();
        let after_host = path
            .split_once("://")
            .map_or(path, |(_, rest)| rest)
            .split_once('/')
            .map_or("", |(_, path)| path);
        after_host
            .rsplit('/')
            .next()
            .filter(|name| !name.is_empty())
            .unwrap_or("download.csv")
            .chars()
            .take(255)
            .collect()
    }
}

/// The file a job fetched, checked like an upload.
pub struct Fetched {
    /// Its text, decoded with the supplier's encoding.
    pub text: String,
    /// Its size as sent.
    pub bytes: usize,
    /// Its rows.
    pub rows: u64,
}

/// Fetches `url` through the host and checks it the way an upload is
/// checked; the error says why, for the job's `error`.
pub fn fetch(products: &Products, url: &str, config: &ImportConfig) -> Result<Fetched, String> {
    let response = products
        .host
        .http(&HttpRequest::get(url))
        .map_err(|error| format!("cannot fetch {url}: {error}"))?;
    if !(200..300).contains(&response.status) {
        return Err(format!(
            "cannot fetch {url}: the server answered HTTP {}",
            response.status
        ));
    }
    let media_type = response
        .headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .and_then(|(_, value)| value.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if NOT_CSV
        .iter()
        .any(|refused| media_type.starts_with(refused))
    {
        return Err(format!(
            "{url} sent {media_type}, not a CSV file; nothing was imported"
        ));
    }
    let bytes = response
        .body()
        .map_err(|error| format!("cannot fetch {url}: {error}"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{url} sent a file larger than {MAX_FILE_BYTES} bytes"
        ));
    }
    if bytes.is_empty() {
        return Err(format!("{url} sent an empty file"));
    }
    let unreadable = |why: String| format!("the file at {url} cannot be imported: {why}");
    let text = csv_source::decode(&bytes, config.encoding).map_err(unreadable)?;
    Plan::new(&text, config).map_err(unreadable)?;
    let rows = Plan::count(&text, config);
    if rows == 0 {
        return Err(unreadable("it has a header but no rows".into()));
    }
    Ok(Fetched {
        text,
        bytes: bytes.len(),
        rows,
    })
}

/// Wakes a run of the `import` job that waits for a scheduled import: a
/// start, a new scheduled import or the shutdown should not wait for the
/// end of that wait.
#[derive(Debug, Default)]
pub struct Wake {
    changes: Mutex<u64>,
    changed: Condvar,
}

impl Wake {
    /// A mark to wait from: a [`Wake::notify`] after it ends the wait.
    pub fn mark(&self) -> u64 {
        self.changes.lock().map_or(0, |changes| *changes)
    }

    /// Ends the waits.
    pub fn notify(&self) {
        if let Ok(mut changes) = self.changes.lock() {
            *changes = changes.wrapping_add(1);
        }
        self.changed.notify_all();
    }

    /// Waits up to `timeout`, or until a notify after `mark`.
    fn wait(&self, mark: u64, timeout: Duration) {
        let Ok(guard) = self.changes.lock() else {
            return;
        };
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |changes| *changes == mark);
    }
}

/// A scheduled job's time.
#[derive(Deserialize)]
struct Scheduled {
    scheduled_at: String,
}

/// The earliest scheduled import still pending.
pub fn next_scheduled(products: &Products) -> Result<Option<String>, HostError> {
    let next: Option<Scheduled> = products.host.query_one_as(
        "SELECT scheduled_at FROM products_imports
         WHERE status = 'pending' AND scheduled_at IS NOT NULL
         ORDER BY scheduled_at LIMIT 1",
        params![],
    )?;
    Ok(next.map(|next| next.scheduled_at))
}

/// A job started by its schedule.
#[derive(Deserialize, Serialize)]
struct Due {
    id: i64,
    supplier_id: i64,
    rows_total: i64,
}

/// Starts the scheduled imports that are due (`pending` -> `running`, an
/// `info` line, `import.started`); the run claims them next.
pub fn start_due(products: &Products) -> Result<(), HostError> {
    let now = now();
    let results = products.host.transaction(vec![
        Statement::new(
            "UPDATE products_imports SET status = 'running', started_at = $1, heartbeat_at = $1, updated_at = $1
             WHERE status = 'pending' AND scheduled_at IS NOT NULL AND scheduled_at <= $1
             RETURNING id, supplier_id, rows_total",
            params![now],
        ),
        Statement::new(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
             SELECT id, 'info', CAST(NULL AS BIGINT),
                    'Import started at its scheduled time (' || scheduled_at || '): fetching ' || source_url, $1
             FROM products_imports
             WHERE status = 'running' AND started_at = $1 AND scheduled_at IS NOT NULL AND claim IS NULL",
            params![now],
        ),
    ])?;
    let started: Vec<Due> =
        xcore_plugin_sdk::host::rows_as(results.first().map_or(&[][..], Vec::as_slice))?;
    for job in &started {
        products.announce("import.started", job);
    }
    Ok(())
}

/// After a run has imported everything it could: waits for the next
/// scheduled import and answers true to go round again, or answers false
/// when the run should end (nothing scheduled, the plugin stopping, or
/// this run has waited long enough: a fresh run is asked for then).
/// `mark` was taken before the run last looked for work.
pub fn wait_for_schedule(
    products: &Products,
    began: Instant,
    mark: u64,
) -> Result<bool, HostError> {
    if products.stopping() {
        return Ok(false);
    }
    let Some(next) = next_scheduled(products)? else {
        return Ok(false);
    };
    let left = MAX_WAIT_PER_RUN.saturating_sub(began.elapsed());
    if left.is_zero() {
        products.host.run_job(JOB)?;
        return Ok(false);
    }
    let until_due = chrono::DateTime::parse_from_rfc3339(&next)
        .ok()
        .and_then(|due| {
            (due.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .ok()
        })
        .unwrap_or(Duration::ZERO);
    products.wake.wait(mark, until_due.min(left));
    Ok(!products.stopping())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<UrlImport, Vec<String>> {
        UrlImport::parse(body.as_object().expect("object"))
            .map_err(|problems| problems.into_iter().map(|p| p.field).collect())
    }

    #[test]
    fn a_url_import_request_is_read_whole() {
        let request = parse(json!({
            "supplier_id": 42, "import_type": "Full",
            "file_url": " https://cdn.example.com/exports/import.csv?day=1 ",
            "scheduled_at": "2025-10-06T04:00:00+02:00"
        }))
        .expect("valid");
        assert_eq!(
            request.url,
            "https://cdn.example.com/exports/import.csv?day=1"
        );
        assert_eq!(
            request.scheduled_at.as_deref(),
            Some("2025-10-06T02:00:00.000000Z")
        );
        assert_eq!(request.filename(), "import.csv");
        let bare =
            parse(json!({"supplier_id": "7", "file_url": "http://h.example"})).expect("valid");
        assert_eq!(
            (bare.supplier_id, bare.filename()),
            (7, "download.csv".into())
        );
        assert_eq!(
            parse(json!({"supplier_id": -1, "file_url": "file:///etc/passwd",
                "scheduled_at": "6 oct", "import_type": "delta", "extra": 1})),
            Err(vec![
                "extra".to_string(),
                "supplier_id".into(),
                "file_url".into(),
                "scheduled_at".into(),
                "import_type".into()
            ])
        );
        assert_eq!(
            parse(json!({})),
            Err(vec!["supplier_id".to_string(), "file_url".into()])
        );
    }

    #[test]
    fn a_notify_ends_a_wait_started_before_it() {
        let wake = std::sync::Arc::new(Wake::default());
        let mark = wake.mark();
        let waker = wake.clone();
        let notifier = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.notify();
        });
        let began = Instant::now();
        wake.wait(mark, Duration::from_secs(30));
        assert!(began.elapsed() < Duration::from_secs(10));
        notifier.join().expect("notifier");
        // A notify before the mark does not end a later wait early.
        let began = Instant::now();
        wake.wait(wake.mark(), Duration::from_millis(100));
        assert!(began.elapsed() >= Duration::from_millis(100));
    }
}
