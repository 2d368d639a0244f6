//! CSV imports (seed 000, "Imports"): a job per uploaded supplier file,
//! run off the request path by the plugin's `import` job.
//!
//! - `POST /imports` (or the seed's `POST /imports/create`),
//!   `products:import`: `multipart/form-data` with `supplier_id` and `file`.
//!   `POST /imports/create` also takes JSON with `supplier_id` and
//!   `file_url` (and maybe `scheduled_at`): a file fetched when the job
//!   runs, see [`crate::url_imports`].
//!   The file is decoded with the supplier's encoding, its header checked
//!   against the supplier's mapping and its rows counted while the client
//!   waits (a file that cannot be read is a 422 now, not a failed job
//!   later); it is stored as UTF-8 text in `products_import_files` with a
//!   snapshot of the supplier's configuration, and the job is `pending`.
//!   The file is deleted when the job completes (its rows are in the
//!   catalogue, its outcome in the log); a failed job keeps it.
//! - `POST /imports/{id}/start` (`products:import`): `pending` -> `running`,
//!   then the `import` job is asked to run now (`Host::run_job`); answers
//!   **202** with the job, since the rows are imported after the answer.
//!   Anything but a pending job is a 409.
//! - `GET /imports/jobs` (`products:read`): `status`, `supplier_id`,
//!   `date_from`, `date_to` (on `created_at`; a date or an RFC 3339
//!   instant; a bare `date_to` includes that whole day, UTC), paged.
//! - `GET /imports/{id}`: the job with its counters (`rows_total`,
//!   `rows_processed`, `rows_imported`, `rows_skipped`, `rows_failed`).
//! - `GET /imports/{id}/logs`: `info`/`warning`/`error` lines (`level`
//!   filter), each with the file `line` it is about. A duplicate SKU is a
//!   warning (the row is skipped); a malformed or invalid row is an error
//!   (the row fails); the other rows are imported either way.
//!
//! # How a job runs
//!
//! Rows go in batches of [`BATCH_ROWS`]: one host transaction per batch
//! holds its products (one multi-row INSERT), its log lines and the job's
//! progress (`rows_processed` and the counters). A batch is all or nothing,
//! so the counters always match what is stored, and a run that stops
//! anywhere (crash, restart, timeout) resumes exactly after the last
//! committed batch. Per-row transactions would cost a commit per row (an
//! fsync each on SQLite): 10,000 rows take seconds in batches, minutes
//! row by row. If a batch fails for a reason the checks before it missed
//! (a product inserted concurrently with the same SKU), it is split in
//! halves until the row at fault is alone, logged and skipped; the good
//! rows are kept.
//!
//! A run claims a job (`claim`, `heartbeat_at`), so two runs (an on-demand
//! one and a scheduled `products.import` task, or two host instances on one
//! PostgreSQL) never import the same job. Each batch's first statement
//! checks the claim and the expected progress and writes NULL into the
//! NOT NULL `fence` column if either changed, which fails the transaction:
//! a run that lost its claim cannot write anything more.
//!
//! # Interrupted jobs
//!
//! A `running` job whose heartbeat is older than [`STALE_AFTER_SECS`] (its
//! run died with the host) is claimed again by the next run of the job and
//! resumes where it stopped (an `info` line says so). Runs are asked for
//! right after the plugin is loaded (its start hook,
//! [`resume_after_load`]), by the next start of any import, by a
//! `products.import` task if an operator schedules one, and by reading a
//! stale job (`GET /imports/{id}`, `/imports/jobs`) or the dashboard. So
//! a restart resumes its imports by itself, and a job does not stay
//! `running` once anyone looks at it.
//!
//! A file that cannot be processed at all (no longer readable with its
//! mapping, storage failing) fails the job (`failed`, `error`, an `error`
//! log line). A job whose rows all fail still `completed`: its log says why
//! each row failed.
//!
//! Events (`products.import.*`): `started` (the start request), `progress`
//! (after each batch), `completed`, `failed`. After each batch that
//! stored products, `products.prices_imported` gives their first prices
//! (see [`crate::price_changes`]); it is outside `products.import.*`, whose
//! sequence subscribers already rely on.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{
    host::rows_as,
    multipart::Multipart,
    openapi::Operation,
    prelude::*,
    time::{format_unix, unix_seconds},
    Statement,
};

use crate::{
    csv_source::{self, ImportConfig, Plan},
    fields,
    price_changes::PriceChange,
    suppliers,
    url_imports::{self, ImportSource, UrlImport, UrlImportBody},
    Id, Products, IMPORT, READ,
};

/// The job that runs started imports.
pub const JOB: &str = "import";

/// Largest file accepted, in bytes: about 100,000 typical rows. The upload
/// route's body limit is a little larger for the multipart framing.
pub const MAX_FILE_BYTES: usize = 30 * 1024 * 1024;

/// Body limit of the upload route (file plus multipart framing).
pub const MAX_UPLOAD_BYTES: u64 = 32 * 1024 * 1024;

/// Rows per transaction, and per `import.progress` event.
pub const BATCH_ROWS: usize = fields::ROWS_PER_STATEMENT;

/// Seconds without a heartbeat after which a running job's run is taken
/// for dead. A batch commits in well under a second; a minute of silence
/// means the run is gone, and if it is only slow, the fence stops it.
pub const STALE_AFTER_SECS: i64 = 60;

/// Job statuses.
pub const STATUSES: &[&str] = &["pending", "running", "completed", "failed"];

/// Log levels.
pub const LEVELS: &[&str] = &["info", "warning", "error"];

/// Log lines per INSERT statement (5 parameters each).
const LOGS_PER_STATEMENT: usize = 500;

/// The job columns the API shows (never the file, the claim or the fence).
const JOB_COLUMNS: &str = "i.id, i.supplier_id, s.name AS supplier_name, i.filename, i.status, \
     i.file_bytes, i.rows_total, i.rows_processed, i.rows_imported, i.rows_skipped, \
     i.rows_failed, i.error, i.created_by, i.created_at, i.started_at, i.finished_at, \
     i.heartbeat_at, i.updated_at, i.source_url, i.scheduled_at";

const JOB_FROM: &str = "products_imports i JOIN products_suppliers s ON s.id = i.supplier_id";

/// Adds this part's migrations and events (the job is declared with its
/// handler in [`routes`]).
pub fn declare(manifest: Manifest) -> Manifest {
    manifest
        .event("import.started")
        .event("import.progress")
        .event("import.completed")
        .event("import.failed")
        .event("prices_imported")
        .migration(
            11,
            "imports, their files and logs",
            &migration("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
            &migration("BIGSERIAL PRIMARY KEY", "BIGINT"),
        )
        .migration(12, "imports from a URL", URL_MIGRATION, URL_MIGRATION)
}

/// Migration 12: where a URL import's file is, and when it starts by
/// itself (see [`crate::url_imports`]); the same SQL on both databases.
const URL_MIGRATION: &str = "ALTER TABLE products_imports ADD COLUMN source_url TEXT;
    ALTER TABLE products_imports ADD COLUMN scheduled_at TEXT";

fn migration(key: &str, integer: &str) -> String {
    format!(
        "CREATE TABLE products_imports (
            id {key},
            supplier_id {integer} NOT NULL REFERENCES products_suppliers (id),
            filename TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            config TEXT NOT NULL,
            file_bytes {integer} NOT NULL,
            rows_total {integer} NOT NULL DEFAULT 0,
            rows_processed {integer} NOT NULL DEFAULT 0,
            rows_imported {integer} NOT NULL DEFAULT 0,
            rows_skipped {integer} NOT NULL DEFAULT 0,
            rows_failed {integer} NOT NULL DEFAULT 0,
            error TEXT,
            upload_token TEXT NOT NULL UNIQUE,
            claim TEXT,
            heartbeat_at TEXT,
            fence {integer} NOT NULL DEFAULT 1,
            created_by {integer},
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX products_imports_created ON products_imports (created_at);
        CREATE INDEX products_imports_status ON products_imports (status, created_at);
        CREATE INDEX products_imports_supplier ON products_imports (supplier_id, created_at);
        CREATE TABLE products_import_files (
            import_id {integer} PRIMARY KEY REFERENCES products_imports (id),
            content TEXT NOT NULL
        );
        CREATE TABLE products_import_logs (
            id {key},
            import_id {integer} NOT NULL REFERENCES products_imports (id),
            level TEXT NOT NULL,
            line {integer},
            message TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX products_import_logs_import ON products_import_logs (import_id, level, id)"
    )
}

/// The upload routes' form.
fn upload_form(operation: &mut Operation) {
    operation.request_body_raw(
        "multipart/form-data",
        json!({
            "type": "object",
            "required": ["supplier_id", "file"],
            "properties": {
                "supplier_id": {"type": "integer", "minimum": 1, "description": "An active supplier"},
                "file": {"type": "string", "format": "binary", "description": format!(
                    "The CSV file, at most {MAX_FILE_BYTES} bytes, read with the supplier's import_config"
                )},
            },
        }),
    );
}

/// This part's routes, its job and its start hook. `/imports/jobs` comes
/// before `/imports/{id}` so in-process tests, which match in order, see it
/// first too.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .post("/imports", Access::Requires(IMPORT), upload)
        .summary("Upload a supplier CSV file as a pending import job")
        .doc(upload_form)
        .blocking()
        .max_body(MAX_UPLOAD_BYTES)
        .post("/imports/create", Access::Requires(IMPORT), create)
        .summary(
            "Create an import of the CSV file at file_url, fetched when it runs, started at \
             scheduled_at if given (the seed's path; a multipart upload works too)",
        )
        .doc(|op| {
            op.request_body::<UrlImportBody>();
        })
        .blocking()
        .max_body(MAX_UPLOAD_BYTES)
        .get("/imports/jobs", Access::Requires(READ), list)
        .summary("List import jobs")
        .get("/imports/{id}", Access::Requires(READ), show)
        .summary("An import job with its counters")
        .get("/imports/{id}/logs", Access::Requires(READ), logs)
        .summary("An import job's log")
        .post("/imports/{id}/start", Access::Requires(IMPORT), start)
        .summary("Start a pending import; it runs in the background")
        .doc(|op| {
            op.response::<Job>(202, "Started: the job, now running");
            op.error_response(409, "The import is not pending");
        })
        .job(
            JOB,
            "Runs the CSV imports that were started, and resumes interrupted ones",
            run_pending,
        )
        .on_start(resume_after_load)
}

/// An import job as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// Whose file it is.
    pub supplier_id: i64,
    /// The supplier's name.
    pub supplier_name: String,
    /// The uploaded file's name.
    pub filename: String,
    /// `pending`, `running`, `completed` or `failed`.
    #[schema(value_type = JobStatus)]
    pub status: String,
    /// The file's size.
    pub file_bytes: i64,
    /// Rows in the file.
    pub rows_total: i64,
    /// Rows done (imported, skipped or failed).
    pub rows_processed: i64,
    /// Products created.
    pub rows_imported: i64,
    /// Rows skipped (duplicate SKUs).
    pub rows_skipped: i64,
    /// Rows refused (malformed or invalid).
    pub rows_failed: i64,
    /// Percent of rows processed.
    #[serde(default)]
    pub progress: f64,
    /// Why the job failed; null otherwise.
    pub error: Option<String>,
    /// The user who uploaded it.
    pub created_by: Option<i64>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub started_at: Option<String>,
    /// RFC 3339, UTC.
    pub finished_at: Option<String>,
    /// The last sign of life of its run.
    pub heartbeat_at: Option<String>,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// Where the file is fetched from (URL imports; null for uploads).
    pub source_url: Option<String>,
    /// When it starts by itself (URL imports with a schedule).
    pub scheduled_at: Option<String>,
}

impl Job {
    /// Fills `progress` from the counters.
    fn with_progress(mut self) -> Self {
        self.progress = match self.rows_total {
            0 => 0.0,
            total => ((self.rows_processed as f64) * 1000.0 / (total as f64)).round() / 10.0,
        };
        self
    }

    /// Running, and its run has not beaten since `stale_before`.
    fn is_stale(&self, stale_before: &str) -> bool {
        self.status == "running"
            && self
                .heartbeat_at
                .as_deref()
                .is_none_or(|beat| beat < stale_before)
    }
}

/// An import's status.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documentation: stored and checked as text.
pub enum JobStatus {
    /// Uploaded, not started.
    Pending,
    /// Being imported.
    Running,
    /// Every row was processed (some may have been refused: see the log).
    Completed,
    /// The file could not be processed.
    Failed,
}

/// A line of an import's log.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Its id (log order).
    id: i64,
    /// RFC 3339, UTC.
    timestamp: String,
    /// `info`, `warning` or `error`.
    #[schema(value_type = LogLevel)]
    level: String,
    /// The file line it is about; null for the whole job.
    line: Option<i64>,
    /// What happened.
    message: String,
}

/// A log line's level.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documentation: stored and checked as text.
pub enum LogLevel {
    /// What happened.
    Info,
    /// A row skipped (duplicate SKU).
    Warning,
    /// A row refused.
    Error,
}

/// `GET /imports/jobs`' filters, as text: [`list`] checks them together.
#[derive(Deserialize, ToSchema)]
pub struct JobFilter {
    /// Only jobs in this status.
    #[schema(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Only this supplier's jobs.
    #[schema(value_type = Option<i64>, minimum = 1)]
    supplier_id: Option<String>,
    /// Created at or after: a date (UTC) or an RFC 3339 date-time.
    date_from: Option<String>,
    /// Created at or before: a date (whole day, UTC) or an RFC 3339
    /// date-time.
    date_to: Option<String>,
}

/// `GET /imports/{id}/logs`' filter.
#[derive(Deserialize, ToSchema)]
pub struct LogFilter {
    /// Only lines of this level.
    #[schema(value_type = Option<LogLevel>)]
    level: Option<String>,
}

/// `GET /imports/jobs`' sort columns.
pub struct ByJob;

impl SortColumns for ByJob {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("created_at", "i.created_at"),
        ("id", "i.id"),
        ("status", "i.status"),
    ];
    const DEFAULT: (&'static str, &'static str) = ("created_at", "DESC");
    const TIEBREAK: &'static str = "i.id";
}

/// A token unique to this process and moment: claims and upload keys.
fn token(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{kind}-{}-{}-{}",
        std::process::id(),
        now(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Now minus `seconds`, in the stored format.
fn seconds_ago(seconds: i64) -> String {
    format_unix(unix_seconds() - seconds, 0)
}

fn log_statement(import: i64, entries: &[(&str, Option<u64>, String)], now: &str) -> Statement {
    let mut params = Vec::with_capacity(entries.len() * 5);
    let mut tuples = Vec::with_capacity(entries.len());
    for (level, line, message) in entries {
        let n = params.len();
        // The cast: the line is bound as text, NULL or not (see
        // `fields::nullable_integer`).
        tuples.push(format!(
            "(${}, ${}, CAST(${} AS BIGINT), ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5
        ));
        let line = fields::nullable_integer(line.and_then(|line| i64::try_from(line).ok()));
        params.extend(params![import, level, line, message, now]);
    }
    Statement {
        sql: format!(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at) VALUES {}",
            tuples.join(", ")
        ),
        params,
    }
}

/// A job, or a 404.
fn find_job(products: &Products, id: i64) -> Result<Job, Response> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM {JOB_FROM} WHERE i.id = $1");
    let job: Option<Job> = products.host.query_one_as(&sql, params![id])?;
    job.map(Job::with_progress)
        .ok_or_else(|| Response::not_found(&format!("import {id} not found")))
}

/// Asks for a run, logging (not returning) a failure: the caller's answer
/// does not depend on it, and reading a stale job asks again.
fn ask_for_run(products: &Products, why: &str) {
    if let Err(error) = products.host.run_job(JOB) {
        products.host.warn(why, json!({"error": error.to_string()}));
    }
}

/// Asks for a run if one of `jobs` is running with a stale heartbeat: its
/// run died (see the module docs).
fn resume_stale(products: &Products, jobs: &[Job]) {
    let stale_before = seconds_ago(STALE_AFTER_SECS);
    if jobs.iter().any(|job| job.is_stale(&stale_before)) {
        ask_for_run(products, "cannot ask for a run to resume a stale import");
    }
}

/// Asks for a run if any job is running with a stale heartbeat (one
/// indexed query): for pages that show imports without reading them one
/// by one (the dashboard).
pub fn resume_interrupted(products: &Products) {
    let sql = "SELECT COUNT(*) FROM products_imports
               WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $1)";
    match products
        .host
        .query_scalar::<i64>(sql, params![seconds_ago(STALE_AFTER_SECS)])
    {
        Ok(0) => {}
        Ok(_) => ask_for_run(products, "cannot ask for a run to resume a stale import"),
        Err(error) => products.host.warn(
            "cannot look for interrupted imports",
            json!({"error": error.to_string()}),
        ),
    }
}

/// A running job's claim and heartbeat, for the start hook.
#[derive(Deserialize)]
struct Beat {
    id: i64,
    claim: Option<String>,
    heartbeat_at: Option<String>,
}

/// The start hook: resumes the imports a stopped host left `running`,
/// without waiting for a request.
///
/// A job whose run is gone can be claimed once its heartbeat is stale. A
/// fresh heartbeat may be a run that died a moment ago with the previous
/// host, or a live one (the previous generation during a reload, another
/// host on the same PostgreSQL), so such a job is watched: if its heartbeat
/// has not moved when it turns stale, its run is gone and a run is asked
/// for; if it moved, its run is alive and owns it. This holds the hook
/// (off the request path) for at most about [`STALE_AFTER_SECS`].
pub fn resume_after_load(products: &Products) -> Result<(), HostError> {
    // A scheduled import needs a run to wait for it (url_imports).
    if url_imports::next_scheduled(products)?.is_some() {
        products.host.run_job(JOB)?;
    }
    let sql = "SELECT id, claim, heartbeat_at FROM products_imports WHERE status = 'running'";
    let mut watched: Option<HashMap<i64, Option<String>>> = None;
    loop {
        let running: Vec<Beat> = products.host.query_as(sql, params![])?;
        let stale_before = seconds_ago(STALE_AFTER_SECS);
        let claimable = running.iter().any(|job| {
            job.claim.is_none()
                || job
                    .heartbeat_at
                    .as_deref()
                    .is_none_or(|beat| beat < stale_before.as_str())
        });
        if claimable {
            return products.host.run_job(JOB);
        }
        // Still watched: the jobs seen at load whose heartbeat has not
        // moved since.
        let beats: HashMap<i64, Option<String>> = running
            .into_iter()
            .map(|job| (job.id, job.heartbeat_at))
            .filter(|(id, beat)| {
                watched
                    .as_ref()
                    .is_none_or(|seen| seen.get(id).is_some_and(|seen| seen == beat))
            })
            .collect();
        if beats.is_empty() {
            return Ok(());
        }
        watched = Some(beats);
        // In short steps, so a shutdown is not held up.
        for _ in 0..5 {
            if products.stopping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn create(
    products: &Products,
    caller: Option<Caller>,
    source: ImportSource,
) -> Result<Created<Job>, Response> {
    match source {
        ImportSource::File(form) => upload(products, caller, form),
        ImportSource::Url(body) => create_from_url(products, caller, &body),
    }
}

/// The supplier of a new import: it must exist (else a 422 naming
/// `supplier_id`) and be active.
fn import_supplier(products: &Products, supplier_id: i64) -> Result<ImportConfig, Response> {
    let supplier = match suppliers::find(products, supplier_id) {
        Ok(supplier) => supplier,
        Err(response) if response.status == 404 => {
            return Err(Response::invalid(
                "supplier_id",
                &format!("no supplier {supplier_id}"),
            ))
        }
        Err(response) => return Err(response),
    };
    if supplier.status != "active" {
        return Err(Response::invalid(
            "supplier_id",
            &format!("supplier {supplier_id} is inactive"),
        ));
    }
    Ok(supplier.import_config)
}

/// `POST /imports/create` with JSON: a pending job without its file,
/// fetched when it runs (see [`crate::url_imports`]).
fn create_from_url(
    products: &Products,
    caller: Option<Caller>,
    body: &serde_json::Map<String, Value>,
) -> Result<Created<Job>, Response> {
    let request = UrlImport::parse(body)
        .map_err(|problems| crate::catalogue::problems_response(&problems))?;
    let config = import_supplier(products, request.supplier_id)?;
    let now = now();
    let upload_token = token("url");
    let created_by = caller.map(|caller| caller.user_id);
    let note = match &request.scheduled_at {
        Some(at) => format!(
            "Import from {} created: fetched when it starts, scheduled at {at}",
            request.url
        ),
        None => format!(
            "Import from {} created: fetched when it is started",
            request.url
        ),
    };
    let results = products.host.transaction(vec![
        Statement::new(
            "INSERT INTO products_imports (supplier_id, filename, status, config, file_bytes, rows_total, upload_token, created_by, created_at, updated_at, source_url, scheduled_at)
             VALUES ($1, $2, 'pending', $3, 0, 0, $4, CAST($5 AS BIGINT), $6, $6, $7, $8)",
            params![
                request.supplier_id,
                request.filename(),
                config.to_json().to_string(),
                upload_token,
                fields::nullable_integer(created_by),
                now,
                request.url,
                request.scheduled_at
            ],
        ),
        Statement::new(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
             SELECT id, 'info', CAST(NULL AS BIGINT), $2, $3 FROM products_imports WHERE upload_token = $1",
            params![upload_token, note, now],
        ),
        Statement::new(
            "SELECT id FROM products_imports WHERE upload_token = $1",
            params![upload_token],
        ),
    ])?;
    let created: Vec<Returned> = rows_as(results.last().map_or(&[][..], Vec::as_slice))?;
    let id = created
        .first()
        .map(|row| row.id)
        .ok_or_else(|| Response::plugin_error("the new import has no id"))?;
    if request.scheduled_at.is_some() {
        // A run waits for it (or starts it now if it is due).
        products.wake.notify();
        ask_for_run(products, "cannot ask for a run for a scheduled import");
    }
    Ok(Created(find_job(products, id)?))
}

fn upload(
    products: &Products,
    caller: Option<Caller>,
    form: Multipart,
) -> Result<Created<Job>, Response> {
    let supplier_id = form
        .required_text("supplier_id")?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Response::invalid("supplier_id", "must be a positive integer"))?;
    let file = form.required_file("file")?;
    if file.bytes.len() > MAX_FILE_BYTES {
        return Err(Response::error(
            413,
            "VALIDATION_ERROR",
            &format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    if file.bytes.is_empty() {
        return Err(Response::invalid("file", "the file is empty"));
    }
    let config = import_supplier(products, supplier_id)?;
    let text = csv_source::decode(&file.bytes, config.encoding)
        .map_err(|message| Response::invalid("file", &message))?;
    let plan = Plan::new(&text, &config).map_err(|message| Response::invalid("file", &message))?;
    let rows = Plan::count(&text, &config);
    if rows == 0 {
        return Err(Response::invalid(
            "file",
            "the file has a header but no rows",
        ));
    }
    let filename = file
        .filename
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "upload.csv".into());
    let now = now();
    let upload_token = token("upload");
    let created_by = caller.map(|caller| caller.user_id);
    let encoding = serde_json::to_value(config.encoding).unwrap_or_default();
    let mut notes = vec![format!(
        "File {filename} uploaded: {rows} rows, encoding {}, delimiter {:?}",
        encoding.as_str().unwrap_or_default(),
        config.delimiter
    )];
    if !plan.ignored.is_empty() {
        notes.push(format!(
            "Columns not imported (not mapped): {}",
            plan.ignored.join(", ")
        ));
    }
    let mut statements = vec![
        Statement::new(
            "INSERT INTO products_imports (supplier_id, filename, status, config, file_bytes, rows_total, upload_token, created_by, created_at, updated_at)
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, CAST($7 AS BIGINT), $8, $8)",
            params![
                supplier_id,
                filename,
                config.to_json().to_string(),
                file.bytes.len(),
                rows,
                upload_token,
                fields::nullable_integer(created_by),
                now
            ],
        ),
        // The transaction cannot pass the new id along; the upload token
        // finds the row it just wrote.
        Statement::new(
            "INSERT INTO products_import_files (import_id, content)
             SELECT id, $2 FROM products_imports WHERE upload_token = $1",
            params![upload_token, text],
        ),
    ];
    for note in notes {
        statements.push(Statement::new(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
             SELECT id, 'info', CAST(NULL AS BIGINT), $2, $3 FROM products_imports WHERE upload_token = $1",
            params![upload_token, note, now],
        ));
    }
    statements.push(Statement::new(
        "SELECT id FROM products_imports WHERE upload_token = $1",
        params![upload_token],
    ));
    let results = products.host.transaction(statements)?;
    let created: Vec<Returned> = rows_as(results.last().map_or(&[][..], Vec::as_slice))?;
    let id = created
        .first()
        .map(|row| row.id)
        .ok_or_else(|| Response::plugin_error("the new import has no id"))?;
    Ok(Created(find_job(products, id)?))
}

/// The id a statement returned.
#[derive(Deserialize)]
struct Returned {
    id: i64,
}

/// What `import.started` says.
#[derive(Serialize, Deserialize)]
struct Started {
    id: i64,
    supplier_id: i64,
    rows_total: i64,
}

fn start(products: &Products, Id(id): Id) -> Result<Response, Response> {
    let now = now();
    // The UPDATE is the guard: only one request moves a job out of
    // `pending`; the log line is written only by the one that did.
    let results = products.host.transaction(vec![
        Statement::new(
            "UPDATE products_imports SET status = 'running', started_at = $2, heartbeat_at = $2, updated_at = $2
             WHERE id = $1 AND status = 'pending' RETURNING id, rows_total, supplier_id",
            params![id, now],
        ),
        Statement::new(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
             SELECT id, 'info', CAST(NULL AS BIGINT),
                    CASE WHEN source_url IS NULL
                         THEN 'Import started: ' || CAST(rows_total AS TEXT) || ' products to process'
                         ELSE 'Import started: fetching ' || source_url END, $2
             FROM products_imports WHERE id = $1 AND status = 'running' AND started_at = $2",
            params![id, now],
        ),
    ])?;
    let started: Vec<Started> = rows_as(results.first().map_or(&[][..], Vec::as_slice))?;
    let Some(started) = started.first() else {
        let job = find_job(products, id)?;
        return Err(Response::conflict(&format!(
            "import {id} is {}; only a pending import can be started",
            job.status
        )));
    };
    products.announce("import.started", started);
    // A run waiting for a scheduled import takes this one first.
    products.wake.notify();
    // If the run cannot be asked for now, the job is running with an
    // old-enough heartbeat soon: reading it asks again (see resume_stale).
    ask_for_run(products, "cannot ask for the import run now");
    Ok(Response::json(202, &find_job(products, id)?))
}

/// Reads `date_from`/`date_to`: a date (`2025-10-05`) or an RFC 3339
/// instant, as the stored format; a bare `date_to` date ends with its day.
fn date_bound(raw: Option<&str>, name: &str, end_of_day: bool) -> Result<Option<String>, Response> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let raw = raw.trim();
    if let Ok(instant) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(
            instant
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ));
    }
    match chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(date) => {
            let time = if end_of_day {
                "T23:59:59.999999Z"
            } else {
                "T00:00:00.000000Z"
            };
            Ok(Some(format!("{}{time}", date.format("%Y-%m-%d"))))
        }
        Err(_) => Err(Response::invalid(
            name,
            "must be a date (2025-10-05) or an RFC 3339 date-time (2025-10-05T10:30:00Z)",
        )),
    }
}

fn list(
    products: &Products,
    window: Window,
    sort: Sort<ByJob>,
    Query(filter): Query<JobFilter>,
) -> Result<ListBody<Job>, Response> {
    let mut problems: Vec<Response> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if let Some(status) = filter.status {
        if STATUSES.contains(&status.as_str()) {
            params.push(status.into());
            conditions.push(format!("i.status = ${}", params.len()));
        } else {
            problems.push(Response::invalid(
                "status",
                "must be pending, running, completed or failed",
            ));
        }
    }
    if let Some(supplier) = filter.supplier_id {
        match supplier.parse::<i64>() {
            Ok(id) if id > 0 => {
                params.push(id.into());
                conditions.push(format!("i.supplier_id = ${}", params.len()));
            }
            _ => problems.push(Response::invalid(
                "supplier_id",
                "must be a positive integer",
            )),
        }
    }
    let mut bound = |raw: Option<&str>, name: &str, end_of_day: bool| {
        date_bound(raw, name, end_of_day).unwrap_or_else(|problem| {
            problems.push(problem);
            None
        })
    };
    let from = bound(filter.date_from.as_deref(), "date_from", false);
    let to = bound(filter.date_to.as_deref(), "date_to", true);
    if let (Some(from), Some(to)) = (&from, &to) {
        if from > to {
            problems.push(Response::invalid("date_to", "must not be before date_from"));
        }
    }
    if let Some(problem) = combine(problems) {
        return Err(problem);
    }
    if let Some(from) = from {
        params.push(from.into());
        conditions.push(format!("i.created_at >= ${}", params.len()));
    }
    if let Some(to) = to {
        params.push(to.into());
        conditions.push(format!("i.created_at <= ${}", params.len()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM {JOB_FROM} {filter} ORDER BY {}",
        sort.order_by
    );
    let mut page = products.host.query_page::<Job>(&sql, params, window)?;
    page.items = page.items.into_iter().map(Job::with_progress).collect();
    resume_stale(products, &page.items);
    Ok(page)
}

/// One 422 with the details of every problem.
fn combine(problems: Vec<Response>) -> Option<Response> {
    match problems.len() {
        0 => None,
        1 => problems.into_iter().next(),
        _ => {
            let details: Vec<(&str, &str)> = problems
                .iter()
                .filter_map(|problem| problem.error.as_ref())
                .flat_map(|error| &error.details)
                .map(|detail| (detail.field.as_str(), detail.message.as_str()))
                .collect();
            Some(Response::validation(&details))
        }
    }
}

fn show(products: &Products, Id(id): Id) -> Result<Json<Job>, Response> {
    let job = find_job(products, id)?;
    resume_stale(products, std::slice::from_ref(&job));
    Ok(Json(job))
}

fn logs(
    products: &Products,
    Id(id): Id,
    window: Window,
    Query(filter): Query<LogFilter>,
) -> Result<ListBody<LogLine>, Response> {
    find_job(products, id)?;
    let mut params = params![id];
    let mut condition = "WHERE import_id = $1";
    if let Some(level) = filter.level {
        if !LEVELS.contains(&level.as_str()) {
            return Err(Response::invalid("level", "must be info, warning or error"));
        }
        params.push(level.into());
        condition = "WHERE import_id = $1 AND level = $2";
    }
    let sql = format!(
        "SELECT id, created_at AS timestamp, level, line, message FROM products_import_logs \
         {condition} ORDER BY id"
    );
    Ok(products.host.query_page(&sql, params, window)?)
}

// ---------------------------------------------------------------------
// The job.
// ---------------------------------------------------------------------

/// What happens to one row.
#[derive(Clone, Debug)]
enum Outcome {
    /// A valid new product.
    Insert(u64, Box<fields::ProductDraft>),
    /// Not imported: `warning` (skipped) or `error` (failed), with why.
    Refused(u64, &'static str, String),
}

impl Outcome {
    fn line(&self) -> u64 {
        match self {
            Outcome::Insert(line, _) | Outcome::Refused(line, _, _) => *line,
        }
    }
}

/// A claimed job, read from the claim's `RETURNING`.
#[derive(Deserialize)]
struct Claimed {
    id: i64,
    supplier_id: i64,
    /// The supplier's configuration when the file was uploaded, as stored.
    config: String,
    rows_total: i64,
    /// Rows done when this run took it; moves with each batch.
    #[serde(rename = "rows_processed")]
    processed: i64,
    #[serde(rename = "rows_imported")]
    imported: i64,
    #[serde(rename = "rows_skipped")]
    skipped: i64,
    #[serde(rename = "rows_failed")]
    failed: i64,
    /// Where the file is fetched from (URL imports).
    #[serde(default)]
    source_url: Option<String>,
}

/// Why a run stopped working on a job.
enum Stop {
    /// Another run owns it now: leave it alone.
    LostClaim,
    /// The job cannot go on: mark it failed, saying why.
    Failed(String),
    /// The database failed: mark the job failed; the details go to the
    /// server log, not to the job's readers.
    Storage(HostError),
}

impl From<HostError> for Stop {
    fn from(error: HostError) -> Self {
        Stop::Storage(error)
    }
}

/// The `import` job: runs every started import, and resumes interrupted
/// ones, until none is left to claim.
pub fn run_pending(products: &Products) -> Result<(), HostError> {
    let claim = token("run");
    let began = std::time::Instant::now();
    loop {
        let mark = products.wake.mark();
        url_imports::start_due(products)?;
        run_claimable(products, &claim)?;
        if !url_imports::wait_for_schedule(products, began, mark)? {
            return Ok(());
        }
    }
}

/// Runs every job this run can claim.
fn run_claimable(products: &Products, claim: &str) -> Result<(), HostError> {
    while let Some(job) = claim_next(products, claim)? {
        let id = job.id;
        let supplier_id = job.supplier_id;
        match run_one(products, job, claim) {
            Ok(()) | Err(Stop::LostClaim) => {}
            Err(Stop::Failed(error)) => fail(products, id, supplier_id, claim, &error)?,
            Err(Stop::Storage(error)) => {
                products.host.log(
                    Level::Error,
                    "an import failed on a storage call",
                    json!({"import": id, "error": error.to_string()}),
                );
                let reason = "storage failed; the server log has the details";
                fail(products, id, supplier_id, claim, reason)?;
            }
        }
    }
    Ok(())
}

fn claim_next(products: &Products, claim: &str) -> Result<Option<Claimed>, HostError> {
    let stale_before = seconds_ago(STALE_AFTER_SECS);
    products.host.query_one_as(
        "UPDATE products_imports SET claim = $1, heartbeat_at = $2, updated_at = $2
         WHERE id = (SELECT id FROM products_imports
                     WHERE status = 'running' AND (claim IS NULL OR heartbeat_at < $3)
                     ORDER BY id LIMIT 1)
           AND status = 'running' AND (claim IS NULL OR heartbeat_at < $3)
         RETURNING id, supplier_id, config, rows_total, rows_processed, rows_imported, rows_skipped, rows_failed, source_url",
        params![claim, now(), stale_before],
    )
}

/// A stored file.
#[derive(Deserialize)]
struct File {
    content: String,
}

fn run_one(products: &Products, mut job: Claimed, claim: &str) -> Result<(), Stop> {
    let config = serde_json::from_str(&job.config)
        .ok()
        .and_then(|config| ImportConfig::from_json(&config).ok())
        .ok_or_else(|| Stop::Failed("the import's configuration is unreadable".into()))?;
    let sql = "SELECT content FROM products_import_files WHERE import_id = $1";
    let file: Option<File> = products.host.query_one_as(sql, params![job.id])?;
    let content = match (file, job.source_url.clone()) {
        (Some(file), _) => file.content,
        (None, Some(url)) => store_fetched(products, &mut job, claim, &url, &config)?,
        (None, None) => return Err(Stop::Failed("the uploaded file is missing".into())),
    };
    let plan = Plan::new(&content, &config).map_err(Stop::Failed)?;
    let mut resumed = (job.processed > 0).then(|| {
        format!(
            "Import resumed at row {} after an interrupted run",
            job.processed + 1
        )
    });
    let skip = usize::try_from(job.processed).unwrap_or(usize::MAX);
    let mut rows = plan.rows(&content, &config, skip).peekable();
    while rows.peek().is_some() {
        let batch: Vec<csv_source::Row> = rows.by_ref().take(BATCH_ROWS).collect();
        let outcomes = judge(products, &job, batch)?;
        commit(products, &mut job, claim, &outcomes, resumed.take())?;
        products.announce(
            "import.progress",
            &json!({
                "id": job.id,
                "rows_total": job.rows_total,
                "rows_processed": job.processed,
                "rows_imported": job.imported,
                "rows_skipped": job.skipped,
                "rows_failed": job.failed,
            }),
        );
    }
    finish(products, &job, claim)
}

/// Fetches a URL import's file and stores it with its size and rows (in
/// one transaction fenced by the claim), so the rows are counted and an
/// interrupted run resumes on this very file; nothing is written if the
/// file cannot be imported (see [`url_imports::fetch`]).
fn store_fetched(
    products: &Products,
    job: &mut Claimed,
    claim: &str,
    url: &str,
    config: &ImportConfig,
) -> Result<String, Stop> {
    let fetched = url_imports::fetch(products, url, config).map_err(Stop::Failed)?;
    let now = now();
    let rows = i64::try_from(fetched.rows).unwrap_or(i64::MAX);
    let stored = products.host.transaction(vec![
        Statement::new(
            "UPDATE products_imports SET file_bytes = $2, rows_total = $3, heartbeat_at = $4, updated_at = $4,
                 fence = CASE WHEN claim = $5 AND rows_processed = 0 THEN 1 ELSE NULL END
             WHERE id = $1",
            params![job.id, fetched.bytes, rows, now, claim],
        ),
        Statement::new(
            "INSERT INTO products_import_files (import_id, content) VALUES ($1, $2)",
            params![job.id, fetched.text],
        ),
        log_statement(
            job.id,
            &[(
                "info",
                None,
                format!(
                    "Fetched {url}: {} bytes, {} products to process",
                    fetched.bytes, fetched.rows
                ),
            )],
            &now,
        ),
    ]);
    if let Err(error) = stored {
        return if still_ours(products, job, claim)? {
            Err(Stop::from(error))
        } else {
            Err(Stop::LostClaim)
        };
    }
    job.rows_total = rows;
    Ok(fetched.text)
}

/// Validates a batch's rows and checks them against the stored products:
/// duplicate SKUs (in the table or earlier in the batch) and unknown
/// categories are refused here, so the batch's INSERT does not fail.
fn judge(
    products: &Products,
    job: &Claimed,
    batch: Vec<csv_source::Row>,
) -> Result<Vec<Outcome>, Stop> {
    let mut outcomes: Vec<Outcome> = batch
        .into_iter()
        .map(|row| match row.fields {
            Err(message) => {
                Outcome::Refused(row.line, "error", format!("Malformed row: {message}"))
            }
            Ok(mut object) => {
                object.insert("supplier_id".into(), job.supplier_id.into());
                match fields::validate_new(&object) {
                    Ok(draft) => Outcome::Insert(row.line, Box::new(draft)),
                    Err(problems) => {
                        let reasons: Vec<String> = problems
                            .iter()
                            .map(|problem| format!("{}: {}", problem.field, problem.message))
                            .collect();
                        Outcome::Refused(
                            row.line,
                            "error",
                            format!("Invalid row: {}", reasons.join("; ")),
                        )
                    }
                }
            }
        })
        .collect();
    let drafts: Vec<&fields::ProductDraft> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Insert(_, draft) => Some(draft.as_ref()),
            Outcome::Refused(..) => None,
        })
        .collect();
    let skus: Vec<Value> = drafts
        .iter()
        .map(|draft| draft.sku.clone().into())
        .collect();
    let existing = values_in(products, "SELECT sku AS v FROM products WHERE sku IN", skus)?;
    let categories: Vec<Value> = drafts
        .iter()
        .filter_map(|draft| draft.category_id.map(Value::from))
        .collect();
    let known_categories = values_in(
        products,
        "SELECT CAST(id AS TEXT) AS v FROM products_categories WHERE id IN",
        categories,
    )?;
    let mut seen = HashSet::new();
    for outcome in &mut outcomes {
        let Outcome::Insert(line, draft) = outcome else {
            continue;
        };
        let refusal = if existing.contains(&draft.sku) || !seen.insert(draft.sku.clone()) {
            Some(("warning", format!("Duplicate SKU detected: {}", draft.sku)))
        } else {
            draft
                .category_id
                .filter(|id| !known_categories.contains(&id.to_string()))
                .map(|id| {
                    (
                        "error",
                        format!("Invalid row: category_id: no category {id}"),
                    )
                })
        };
        if let Some((level, message)) = refusal {
            *outcome = Outcome::Refused(*line, level, message);
        }
    }
    Ok(outcomes)
}

/// One text column `v`.
#[derive(Deserialize)]
struct Text {
    v: String,
}

/// The values of `select ... IN (values)`, which selects one text column
/// `v`.
fn values_in(
    products: &Products,
    select: &str,
    values: Vec<Value>,
) -> Result<HashSet<String>, Stop> {
    if values.is_empty() {
        return Ok(HashSet::new());
    }
    let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
    let sql = format!("{select} ({})", placeholders.join(", "));
    let rows: Vec<Text> = products.host.query_as(&sql, values)?;
    Ok(rows.into_iter().map(|row| row.v).collect())
}

/// Commits `outcomes` (consecutive rows following `job.processed`) in one
/// transaction; if it fails while the claim still holds, the rows are
/// split until the one at fault is alone and refused (see module docs).
fn commit(
    products: &Products,
    job: &mut Claimed,
    claim: &str,
    outcomes: &[Outcome],
    note: Option<String>,
) -> Result<(), Stop> {
    let now = now();
    let mut logs: Vec<(&str, Option<u64>, String)> = Vec::new();
    if let Some(note) = &note {
        logs.push(("info", None, note.clone()));
    }
    let mut drafts = Vec::new();
    let (mut skipped, mut failed) = (0i64, 0i64);
    for outcome in outcomes {
        match outcome {
            Outcome::Insert(_, draft) => drafts.push(draft.as_ref()),
            Outcome::Refused(line, level, message) => {
                if *level == "warning" {
                    skipped += 1;
                } else {
                    failed += 1;
                }
                logs.push((*level, Some(*line), format!("Line {line}: {message}")));
            }
        }
    }
    let processed = job.processed + outcomes.len() as i64;
    let imported = drafts.len() as i64;
    let mut statements = vec![Statement::new(
        "UPDATE products_imports SET rows_processed = $2, rows_imported = rows_imported + $3,
             rows_skipped = rows_skipped + $4, rows_failed = rows_failed + $5,
             heartbeat_at = $6, updated_at = $6,
             fence = CASE WHEN claim = $7 AND rows_processed = $8 THEN 1 ELSE NULL END
         WHERE id = $1",
        params![
            job.id,
            processed,
            imported,
            skipped,
            failed,
            now,
            claim,
            job.processed
        ],
    )];
    if !drafts.is_empty() {
        statements.push(fields::insert_many(&drafts, &now, None));
    }
    for chunk in logs.chunks(LOGS_PER_STATEMENT) {
        statements.push(log_statement(job.id, chunk, &now));
    }
    match products.host.transaction(statements) {
        Ok(results) => {
            announce_prices(products, job.id, &now, &drafts, &results);
            job.processed = processed;
            job.imported += imported;
            job.skipped += skipped;
            job.failed += failed;
            Ok(())
        }
        Err(error) => {
            if !still_ours(products, job, claim)? {
                return Err(Stop::LostClaim);
            }
            match outcomes {
                [] => Err(Stop::from(error)),
                [Outcome::Insert(line, draft)] => {
                    let refusal = if matches!(error, HostError::UniqueViolation { .. }) {
                        Outcome::Refused(
                            *line,
                            "warning",
                            format!("Duplicate SKU detected: {}", draft.sku),
                        )
                    } else {
                        products.host.log(
                            Level::Warn,
                            "an import row could not be stored",
                            json!({"import": job.id, "line": line, "error": error.to_string()}),
                        );
                        Outcome::Refused(
                            *line,
                            "error",
                            "Row could not be stored: the database refused it (the server log has the details)".into(),
                        )
                    };
                    commit(products, job, claim, &[refusal], note)
                }
                [Outcome::Refused(..)] if drafts.is_empty() => Err(Stop::from(error)),
                _ => {
                    let (first, second) = outcomes.split_at(outcomes.len() / 2);
                    products.host.log(
                        Level::Info,
                        "an import batch failed; splitting it to find the row at fault",
                        json!({"import": job.id, "from_line": first.first().map(Outcome::line), "error": error.to_string()}),
                    );
                    commit(products, job, claim, first, note)?;
                    commit(products, job, claim, second, None)
                }
            }
        }
    }
}

/// Publishes `prices_imported`: the first price of each product a batch
/// stored (its INSERT is the batch's second statement, see [`commit`]).
fn announce_prices(
    products: &Products,
    import: i64,
    changed_at: &str,
    drafts: &[&fields::ProductDraft],
    results: &[Vec<xcore_plugin_sdk::Row>],
) {
    if drafts.is_empty() {
        return;
    }
    let ids: HashMap<String, i64> = results
        .get(1)
        .and_then(|rows| rows_as::<Stored>(rows).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|row| (row.sku, row.id))
        .collect();
    let price_changes: Vec<PriceChange> = drafts
        .iter()
        .filter_map(|draft| {
            let id = *ids.get(&draft.sku)?;
            PriceChange::between(id, &draft.sku, None, draft.price_cents)
        })
        .collect();
    products.announce(
        "prices_imported",
        &json!({"id": import, "changed_at": changed_at, "price_changes": price_changes}),
    );
}

/// A stored product's id and SKU (what a batch's INSERT returns).
#[derive(Deserialize)]
struct Stored {
    id: i64,
    sku: String,
}

/// Who owns a job, and how far it is.
#[derive(Deserialize)]
struct Owner {
    claim: Option<String>,
    rows_processed: i64,
    status: String,
}

/// Whether this run still owns `job` at the progress it expects.
fn still_ours(products: &Products, job: &Claimed, claim: &str) -> Result<bool, Stop> {
    let sql = "SELECT claim, rows_processed, status FROM products_imports WHERE id = $1";
    let owner: Option<Owner> = products.host.query_one_as(sql, params![job.id])?;
    Ok(owner.is_some_and(|owner| {
        owner.claim.as_deref() == Some(claim)
            && owner.rows_processed == job.processed
            && owner.status == "running"
    }))
}

fn finish(products: &Products, job: &Claimed, claim: &str) -> Result<(), Stop> {
    let now = now();
    let summary = format!(
        "Import finished: {} imported, {} skipped (duplicates), {} failed, of {} rows",
        job.imported, job.skipped, job.failed, job.rows_total
    );
    let done = products.host.transaction(vec![
        Statement::new(
            "UPDATE products_imports SET status = 'completed', finished_at = $2, updated_at = $2,
                 claim = NULL, fence = CASE WHEN claim = $3 THEN 1 ELSE NULL END
             WHERE id = $1",
            params![job.id, now, claim],
        ),
        log_statement(job.id, &[("info", None, summary)], &now),
        // The rows are in the catalogue and the outcome in the log: the
        // file (up to 30 MiB) has served. A failed job keeps it.
        Statement::new(
            "DELETE FROM products_import_files WHERE import_id = $1",
            params![job.id],
        ),
    ]);
    if let Err(error) = done {
        return if still_ours(products, job, claim)? {
            Err(Stop::from(error))
        } else {
            Err(Stop::LostClaim)
        };
    }
    products.announce(
        "import.completed",
        &json!({
            "id": job.id,
            "supplier_id": job.supplier_id,
            "rows_total": job.rows_total,
            "rows_imported": job.imported,
            "rows_skipped": job.skipped,
            "rows_failed": job.failed,
        }),
    );
    Ok(())
}

fn fail(
    products: &Products,
    id: i64,
    supplier_id: i64,
    claim: &str,
    error: &str,
) -> Result<(), HostError> {
    let now = now();
    let changed = products.host.transaction(vec![
        Statement::new(
            "UPDATE products_imports SET status = 'failed', error = $2, finished_at = $3, updated_at = $3, claim = NULL
             WHERE id = $1 AND claim = $4 RETURNING id",
            params![id, error, now, claim],
        ),
        Statement::new(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
             SELECT id, 'error', CAST(NULL AS BIGINT), $2, $3 FROM products_imports WHERE id = $1 AND status = 'failed' AND finished_at = $3",
            params![id, format!("Import failed: {error}"), now],
        ),
    ])?;
    if changed.first().is_some_and(|rows| !rows.is_empty()) {
        products.announce(
            "import.failed",
            &json!({"id": id, "supplier_id": supplier_id, "error": error}),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use xcore_plugin_sdk::{
        host::HostOp,
        testing::{FakeHost, TestPlugin},
    };

    use super::*;

    /// What the fake database holds.
    #[derive(Default)]
    struct Stored {
        claim: Option<String>,
        processed: i64,
        skus: Vec<String>,
        logs: Vec<String>,
        completed: bool,
    }

    /// A batch whose INSERT hits a SKU inserted behind the checks' back is
    /// split until that row is alone: it becomes a warning, every other row
    /// is stored, and progress ends at the last row.
    #[test]
    fn a_batch_that_fails_is_split_and_only_the_row_at_fault_is_refused() {
        let stored = Arc::new(Mutex::new(Stored::default()));
        let state = stored.clone();
        let config = json!({"delimiter": ",", "encoding": "utf-8", "mapping": {}}).to_string();
        let host = FakeHost::with_sql(move |op| {
            let mut db = state.lock().map_err(|_| "poisoned".to_string())?;
            match op {
                HostOp::Query(statement)
                    if statement
                        .sql
                        .starts_with("UPDATE products_imports SET claim") =>
                {
                    if db.claim.is_some() {
                        return Ok(json!([]));
                    }
                    db.claim = statement.params[0].as_str().map(str::to_string);
                    Ok(
                        json!([{"id": 1, "supplier_id": 7, "config": config, "rows_total": 5,
                        "rows_processed": 0, "rows_imported": 0, "rows_skipped": 0, "rows_failed": 0}]),
                    )
                }
                HostOp::Query(statement) if statement.sql.starts_with("SELECT content") => {
                    Ok(json!([{
                        "content": "sku,name,price\nS-1,One,1\nS-2,Two,2\nRACE,Raced,3\nS-4,Four,4\nS-5,Five,5\n"
                    }]))
                }
                HostOp::Query(statement) if statement.sql.starts_with("SELECT claim") => {
                    Ok(json!([{
                        "claim": db.claim, "rows_processed": db.processed, "status": "running"
                    }]))
                }
                HostOp::Transaction { statements } => {
                    let inserted: Vec<String> = statements
                        .iter()
                        .filter(|s| s.sql.starts_with("INSERT INTO products ("))
                        .flat_map(|s| s.params.iter())
                        .filter_map(|p| p.as_str())
                        .filter(|p| p.starts_with("S-") || *p == "RACE")
                        .map(str::to_string)
                        .collect();
                    if inserted.iter().any(|sku| sku == "RACE") {
                        return Err(
                            json!({"kind": "unique_violation", "column": "sku"}).to_string()
                        );
                    }
                    let first = &statements[0];
                    if first.sql.contains("rows_processed = $2") {
                        assert_eq!(first.params[7], json!(db.processed), "progress follows on");
                        db.processed = first.params[1].as_i64().unwrap_or_default();
                    }
                    if first.sql.contains("status = 'completed'") {
                        db.completed = true;
                    }
                    db.skus.extend(inserted);
                    for statement in statements
                        .iter()
                        .filter(|s| s.sql.starts_with("INSERT INTO products_import_logs"))
                    {
                        db.logs.extend(
                            statement
                                .params
                                .iter()
                                .filter_map(|p| p.as_str())
                                .filter(|p| p.starts_with("Line") || p.starts_with("Import"))
                                .map(str::to_string),
                        );
                    }
                    Ok(Value::Array(statements.iter().map(|_| json!([])).collect()))
                }
                _ => Ok(json!([])),
            }
        });
        let plugin = TestPlugin::start::<Products>(&host, Value::Null).expect("starts");
        plugin.run_job(JOB).expect("the job runs");
        let db = stored.lock().expect("state");
        assert_eq!(db.skus, vec!["S-1", "S-2", "S-4", "S-5"]);
        assert_eq!(db.processed, 5);
        assert!(db.completed);
        assert!(
            db.logs
                .contains(&"Line 4: Duplicate SKU detected: RACE".to_string()),
            "{:?}",
            db.logs
        );
        let progress: Vec<Value> = host
            .recorded()
            .published
            .iter()
            .filter(|(topic, _)| topic == "import.progress")
            .map(|(_, data)| data["rows_processed"].clone())
            .collect();
        assert_eq!(progress, vec![json!(5)], "one event per batch read");
    }

    /// After a load, an import a dead run left `running` (stale heartbeat)
    /// is resumed by the start hook, with no request needed.
    #[test]
    fn the_start_hook_resumes_an_interrupted_import() {
        let host = FakeHost::with_sql(|op| match op {
            HostOp::Query(statement) if statement.sql.starts_with("SELECT id, claim") => {
                Ok(json!([{"id": 1, "claim": "dead-run",
                    "heartbeat_at": "2000-01-01T00:00:00.000000Z"}]))
            }
            HostOp::RunJob { .. } => Ok(Value::Null),
            _ => Ok(json!([])),
        });
        let plugin = TestPlugin::start::<Products>(&host, Value::Null).expect("starts");
        assert!(plugin.manifest().on_start);
        plugin.signal_start();
        let recorded = host.recorded();
        assert!(recorded.failures.is_empty(), "{:?}", recorded.failures);
        assert!(recorded
            .sql
            .iter()
            .any(|op| matches!(op, HostOp::RunJob { job } if job == JOB)));
    }

    /// With nothing running, the start hook asks for nothing.
    #[test]
    fn the_start_hook_is_quiet_when_nothing_was_interrupted() {
        let host = FakeHost::default();
        let plugin = TestPlugin::start::<Products>(&host, Value::Null).expect("starts");
        plugin.signal_start();
        let recorded = host.recorded();
        assert!(recorded.failures.is_empty());
        assert!(!recorded
            .sql
            .iter()
            .any(|op| matches!(op, HostOp::RunJob { .. })));
    }
}
