//! CSV imports (seed 000, "Imports"): a job per uploaded supplier file,
//! run off the request path by the plugin's `import` job.
//!
//! - `POST /imports` (or the seed's `POST /imports/create`),
//!   `products:import`: `multipart/form-data` with `supplier_id` and `file`.
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
//! resumes where it stopped (an `info` line says so). Runs come from the
//! next start of any import, a `products.import` task if an operator
//! schedules one, and reading a stale job (`GET /imports/{id}`,
//! `/imports/jobs`) or the dashboard, which ask for a run. So a job does
//! not stay `running` once anyone looks at it. (The host does not tell a
//! plugin it was loaded, so nothing runs it with no request at all; a
//! `products.import` interval task closes that gap.)
//!
//! A file that cannot be processed at all (no longer readable with its
//! mapping, storage failing) fails the job (`failed`, `error`, an `error`
//! log line). A job whose rows all fail still `completed`: its log says why
//! each row failed.
//!
//! Events (`products.import.*`): `started` (the start request), `progress`
//! (after each batch), `completed`, `failed`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};
use xcore_plugin_api::listing::{self, Window};
use xcore_plugin_api::{
    multipart::Form, Access, HostError, Level, Manifest, Request, Response, Router, Row, Statement,
};

use crate::{
    clock,
    csv_source::{self, ImportConfig, Plan},
    fields,
    suppliers::{self, storage_error},
    Products, IMPORT, READ,
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
     i.heartbeat_at, i.updated_at";

const JOB_FROM: &str = "products_imports i JOIN products_suppliers s ON s.id = i.supplier_id";

/// Adds this part's migrations, job and events.
pub fn declare(manifest: Manifest) -> Manifest {
    manifest
        .job(
            JOB,
            "Runs the CSV imports that were started, and resumes interrupted ones",
        )
        .event("import.started")
        .event("import.progress")
        .event("import.completed")
        .event("import.failed")
        .migration(
            11,
            "imports, their files and logs",
            &migration("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
            &migration("BIGSERIAL PRIMARY KEY", "BIGINT"),
        )
}

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

/// This part's routes. `/imports/jobs` comes before `/imports/{id}` so
/// in-process tests, which match in order, see it first too.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .post("/imports", Access::Requires(IMPORT), upload)
        .blocking()
        .max_body(MAX_UPLOAD_BYTES)
        .post("/imports/create", Access::Requires(IMPORT), upload)
        .blocking()
        .max_body(MAX_UPLOAD_BYTES)
        .get("/imports/jobs", Access::Requires(READ), list)
        .get("/imports/{id}", Access::Requires(READ), show)
        .get("/imports/{id}/logs", Access::Requires(READ), logs)
        .post("/imports/{id}/start", Access::Requires(IMPORT), start)
}

/// A token unique to this process and moment: claims and upload keys.
fn token(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{kind}-{}-{}-{}",
        std::process::id(),
        clock::now(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Now minus `seconds`, in the stored format.
fn seconds_ago(seconds: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn log_statement(import: i64, entries: &[(&str, Option<u64>, String)], now: &str) -> Statement {
    let mut params = Vec::with_capacity(entries.len() * 5);
    let mut tuples = Vec::with_capacity(entries.len());
    for (level, line, message) in entries {
        let n = params.len();
        // The cast: a NULL parameter is NULL text to PostgreSQL.
        tuples.push(format!(
            "(${}, ${}, CAST(${} AS BIGINT), ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5
        ));
        params.extend([
            import.into(),
            (*level).into(),
            line.map_or(Value::Null, Value::from),
            message.clone().into(),
            now.into(),
        ]);
    }
    Statement {
        sql: format!(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at) VALUES {}",
            tuples.join(", ")
        ),
        params,
    }
}

/// The API view of a job row.
fn job_json(row: &Row) -> Value {
    let mut job = row.clone();
    let number = |name: &str| row.get(name).and_then(Value::as_i64).unwrap_or(0);
    let progress = match number("rows_total") {
        0 => 0.0,
        total => ((number("rows_processed") as f64) * 1000.0 / (total as f64)).round() / 10.0,
    };
    job.insert("progress".into(), json!(progress));
    Value::Object(job)
}

/// A job, or a 404.
fn find_job(products: &Products, id: i64) -> Result<Row, Response> {
    products
        .host
        .query_one(
            &format!("SELECT {JOB_COLUMNS} FROM {JOB_FROM} WHERE i.id = $1"),
            vec![id.into()],
        )
        .map_err(storage_error(products))?
        .ok_or_else(|| Response::not_found(&format!("import {id} not found")))
}

/// Asks for a run if one of `jobs` is running with a stale heartbeat: its
/// run died (see the module docs).
fn resume_stale(products: &Products, jobs: &[Row]) {
    let stale_before = seconds_ago(STALE_AFTER_SECS);
    let stale = jobs.iter().any(|job| {
        job.get("status").and_then(Value::as_str) == Some("running")
            && job
                .get("heartbeat_at")
                .and_then(Value::as_str)
                .is_none_or(|beat| beat < stale_before.as_str())
    });
    if stale {
        if let Err(error) = products.host.run_job(JOB) {
            products.host.log(
                Level::Warn,
                "cannot ask for a run to resume a stale import",
                json!({"error": error.0}),
            );
        }
    }
}

/// Asks for a run if any job is running with a stale heartbeat (one
/// indexed query): for pages that show imports without reading them one
/// by one (the dashboard).
pub fn resume_interrupted(products: &Products) {
    let stale = products.host.query(
        "SELECT id, status, heartbeat_at FROM products_imports
         WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $1) LIMIT 1",
        vec![seconds_ago(STALE_AFTER_SECS).into()],
    );
    match stale {
        Ok(rows) => resume_stale(products, &rows),
        Err(error) => products.host.log(
            Level::Warn,
            "cannot look for interrupted imports",
            json!({"error": error.0}),
        ),
    }
}

fn upload(products: &Products, request: &Request) -> Result<Response, Response> {
    let form = Form::from_request(request)?;
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
    if supplier.get("status").and_then(Value::as_str) != Some("active") {
        return Err(Response::invalid(
            "supplier_id",
            &format!("supplier {supplier_id} is inactive"),
        ));
    }
    let config = supplier
        .get("import_config")
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|value| ImportConfig::from_json(&value).ok())
        .ok_or_else(|| {
            Response::plugin_error("the supplier's stored import_config is unreadable")
        })?;
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
    let now = clock::now();
    let upload_token = token("upload");
    let created_by = request
        .head
        .caller
        .as_ref()
        .map_or(Value::Null, |caller| caller.user_id.into());
    let mut notes = vec![format!(
        "File {filename} uploaded: {rows} rows, encoding {}, delimiter {:?}",
        serde_json::to_value(config.encoding)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
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
            vec![
                supplier_id.into(),
                filename.into(),
                config.to_json().to_string().into(),
                (file.bytes.len() as u64).into(),
                rows.into(),
                upload_token.clone().into(),
                created_by,
                now.clone().into(),
            ],
        ),
        // The transaction cannot pass the new id along; the upload token
        // finds the row it just wrote.
        Statement::new(
            "INSERT INTO products_import_files (import_id, content)
             SELECT id, $2 FROM products_imports WHERE upload_token = $1",
            vec![upload_token.clone().into(), text.into()],
        ),
    ];
    for note in notes {
        statements.push(Statement::new(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
             SELECT id, 'info', CAST(NULL AS BIGINT), $2, $3 FROM products_imports WHERE upload_token = $1",
            vec![upload_token.clone().into(), note.into(), now.clone().into()],
        ));
    }
    statements.push(Statement::new(
        "SELECT id FROM products_imports WHERE upload_token = $1",
        vec![upload_token.into()],
    ));
    let results = products
        .host
        .transaction(statements)
        .map_err(storage_error(products))?;
    let id = results
        .last()
        .and_then(|rows| rows.first())
        .and_then(|row| row.get("id"))
        .and_then(Value::as_i64)
        .ok_or_else(|| Response::plugin_error("the new import has no id"))?;
    Ok(Response::json(201, &job_json(&find_job(products, id)?)))
}

fn start(products: &Products, request: &Request) -> Result<Response, Response> {
    let id = request.param_as::<i64>("id")?;
    let now = clock::now();
    // The UPDATE is the guard: only one request moves a job out of
    // `pending`; the log line is written only by the one that did.
    let results = products
        .host
        .transaction(vec![
            Statement::new(
                "UPDATE products_imports SET status = 'running', started_at = $2, heartbeat_at = $2, updated_at = $2
                 WHERE id = $1 AND status = 'pending' RETURNING id, rows_total, supplier_id",
                vec![id.into(), now.clone().into()],
            ),
            Statement::new(
                "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
                 SELECT id, 'info', CAST(NULL AS BIGINT), 'Import started: ' || CAST(rows_total AS TEXT) || ' products to process', $2
                 FROM products_imports WHERE id = $1 AND status = 'running' AND started_at = $2",
                vec![id.into(), now.into()],
            ),
        ])
        .map_err(storage_error(products))?;
    let Some(started) = results.first().and_then(|rows| rows.first()) else {
        let job = find_job(products, id)?;
        let status = job.get("status").and_then(Value::as_str).unwrap_or("?");
        return Err(Response::conflict(&format!(
            "import {id} is {status}; only a pending import can be started"
        )));
    };
    let _ = products.host.publish(
        "import.started",
        json!({
            "id": id,
            "supplier_id": started.get("supplier_id"),
            "rows_total": started.get("rows_total"),
        }),
    );
    if let Err(error) = products.host.run_job(JOB) {
        // The job is running with an old-enough heartbeat soon: reading it
        // asks again (see resume_stale).
        products.host.log(
            Level::Warn,
            "cannot ask for the import run now",
            json!({"import": id, "error": error.0}),
        );
    }
    Ok(Response::json(202, &job_json(&find_job(products, id)?)))
}

/// Reads `date_from`/`date_to`: a date (`2025-10-05`) or an RFC 3339
/// instant, as the stored format; a bare `date_to` date ends with its day.
fn date_bound(request: &Request, name: &str, end_of_day: bool) -> Result<Option<String>, Response> {
    let Some(raw) = request.query(name) else {
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

fn list(products: &Products, request: &Request) -> Result<Response, Response> {
    let window = listing::window(request)?;
    let order = listing::order_by(
        request,
        &[
            ("created_at", "i.created_at"),
            ("id", "i.id"),
            ("status", "i.status"),
        ],
        ("created_at", "DESC"),
        "i.id",
    )?;
    let mut problems: Vec<Response> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if let Some(status) = request.query("status") {
        if STATUSES.contains(&status) {
            params.push(status.into());
            conditions.push(format!("i.status = ${}", params.len()));
        } else {
            problems.push(Response::invalid(
                "status",
                "must be pending, running, completed or failed",
            ));
        }
    }
    if let Some(supplier) = request.query("supplier_id") {
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
    let from = date_bound(request, "date_from", false).unwrap_or_else(|problem| {
        problems.push(problem);
        None
    });
    let to = date_bound(request, "date_to", true).unwrap_or_else(|problem| {
        problems.push(problem);
        None
    });
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
    let total = suppliers::count(
        products,
        &format!("SELECT COUNT(*) AS n FROM {JOB_FROM} {filter}"),
        params.clone(),
    )?;
    let rows = suppliers::page(
        products,
        &format!("SELECT {JOB_COLUMNS} FROM {JOB_FROM} {filter} ORDER BY {order}"),
        params,
        window,
    )?;
    resume_stale(products, &rows);
    Ok(Response::json(
        200,
        &listing::body(rows.iter().map(job_json).collect(), total, window),
    ))
}

/// One 422 with the details of every problem.
fn combine(problems: Vec<Response>) -> Option<Response> {
    match problems.len() {
        0 => None,
        1 => problems.into_iter().next(),
        _ => {
            let details: Vec<Value> = problems
                .iter()
                .filter_map(|problem| serde_json::from_slice::<Value>(&problem.body).ok())
                .flat_map(|body| {
                    body["error"]["details"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            Some(Response::json(
                422,
                &json!({"error": {"code": "VALIDATION_ERROR", "message": "Validation failed", "details": details}}),
            ))
        }
    }
}

fn show(products: &Products, request: &Request) -> Result<Response, Response> {
    let id = request.param_as::<i64>("id")?;
    let job = find_job(products, id)?;
    resume_stale(products, std::slice::from_ref(&job));
    Ok(Response::json(200, &job_json(&job)))
}

fn logs(products: &Products, request: &Request) -> Result<Response, Response> {
    let id = request.param_as::<i64>("id")?;
    find_job(products, id)?;
    let window: Window = listing::window(request)?;
    let mut params: Vec<Value> = vec![id.into()];
    let mut filter = "WHERE import_id = $1".to_string();
    if let Some(level) = request.query("level") {
        if !LEVELS.contains(&level) {
            return Err(Response::invalid("level", "must be info, warning or error"));
        }
        params.push(level.into());
        filter.push_str(" AND level = $2");
    }
    let total = suppliers::count(
        products,
        &format!("SELECT COUNT(*) AS n FROM products_import_logs {filter}"),
        params.clone(),
    )?;
    let rows = suppliers::page(
        products,
        &format!(
            "SELECT id, created_at AS timestamp, level, line, message FROM products_import_logs {filter} ORDER BY id"
        ),
        params,
        window,
    )?;
    Ok(Response::json(
        200,
        &listing::body(rows.into_iter().map(Value::Object).collect(), total, window),
    ))
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

/// A claimed job.
struct Claimed {
    id: i64,
    supplier_id: i64,
    config: Value,
    rows_total: i64,
    /// Rows done when this run took it; moves with each batch.
    processed: i64,
    imported: i64,
    skipped: i64,
    failed: i64,
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

/// Runs every started import, and resumes interrupted ones, until none is
/// left to claim.
pub fn run_pending(products: &Products) -> Result<(), String> {
    let claim = token("run");
    while let Some(job) = claim_next(products, &claim).map_err(|error| error.to_string())? {
        let id = job.id;
        let supplier_id = job.supplier_id;
        match run_one(products, job, &claim) {
            Ok(()) | Err(Stop::LostClaim) => {}
            Err(Stop::Failed(error)) => {
                fail(products, id, supplier_id, &claim, &error).map_err(|e| e.to_string())?
            }
            Err(Stop::Storage(error)) => {
                products.host.log(
                    Level::Error,
                    "an import failed on a storage call",
                    json!({"import": id, "error": error.0}),
                );
                let reason = "storage failed; the server log has the details";
                fail(products, id, supplier_id, &claim, reason).map_err(|e| e.to_string())?
            }
        }
    }
    Ok(())
}

fn claim_next(products: &Products, claim: &str) -> Result<Option<Claimed>, HostError> {
    let now = clock::now();
    let stale_before = seconds_ago(STALE_AFTER_SECS);
    let row = products.host.query_one(
        "UPDATE products_imports SET claim = $1, heartbeat_at = $2, updated_at = $2
         WHERE id = (SELECT id FROM products_imports
                     WHERE status = 'running' AND (claim IS NULL OR heartbeat_at < $3)
                     ORDER BY id LIMIT 1)
           AND status = 'running' AND (claim IS NULL OR heartbeat_at < $3)
         RETURNING id, supplier_id, config, rows_total, rows_processed, rows_imported, rows_skipped, rows_failed",
        vec![claim.into(), now.into(), stale_before.into()],
    )?;
    Ok(row.map(|row| {
        let number = |name: &str| row.get(name).and_then(Value::as_i64).unwrap_or(0);
        Claimed {
            id: number("id"),
            supplier_id: number("supplier_id"),
            config: row
                .get("config")
                .and_then(Value::as_str)
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null),
            rows_total: number("rows_total"),
            processed: number("rows_processed"),
            imported: number("rows_imported"),
            skipped: number("rows_skipped"),
            failed: number("rows_failed"),
        }
    }))
}

fn run_one(products: &Products, mut job: Claimed, claim: &str) -> Result<(), Stop> {
    let content = products
        .host
        .query_one(
            "SELECT content FROM products_import_files WHERE import_id = $1",
            vec![job.id.into()],
        )?
        .and_then(|row| {
            row.get("content")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| Stop::Failed("the uploaded file is missing".into()))?;
    let config = ImportConfig::from_json(&job.config)
        .map_err(|_| Stop::Failed("the import's configuration is unreadable".into()))?;
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
        let _ = products.host.publish(
            "import.progress",
            json!({
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
    let mut seen = std::collections::HashSet::new();
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

/// The values of `select ... IN (values)` as strings.
fn values_in(
    products: &Products,
    select: &str,
    values: Vec<Value>,
) -> Result<std::collections::HashSet<String>, Stop> {
    if values.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
    let rows = products
        .host
        .query(&format!("{select} ({})", placeholders.join(", ")), values)?;
    Ok(rows
        .iter()
        .filter_map(|row| match row.get("v") {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        })
        .collect())
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
    let now = clock::now();
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
        vec![
            job.id.into(),
            processed.into(),
            imported.into(),
            skipped.into(),
            failed.into(),
            now.clone().into(),
            claim.into(),
            job.processed.into(),
        ],
    )];
    if !drafts.is_empty() {
        statements.push(fields::insert_many(&drafts, &now, None));
    }
    for chunk in logs.chunks(LOGS_PER_STATEMENT) {
        statements.push(log_statement(job.id, chunk, &now));
    }
    match products.host.transaction(statements) {
        Ok(_) => {
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
                    let refusal = if suppliers::is_unique_violation(&error) {
                        Outcome::Refused(
                            *line,
                            "warning",
                            format!("Duplicate SKU detected: {}", draft.sku),
                        )
                    } else {
                        products.host.log(
                            Level::Warn,
                            "an import row could not be stored",
                            json!({"import": job.id, "line": line, "error": error.0}),
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
                        json!({"import": job.id, "from_line": first.first().map(Outcome::line), "error": error.0}),
                    );
                    commit(products, job, claim, first, note)?;
                    commit(products, job, claim, second, None)
                }
            }
        }
    }
}

/// Whether this run still owns `job` at the progress it expects.
fn still_ours(products: &Products, job: &Claimed, claim: &str) -> Result<bool, Stop> {
    let row = products.host.query_one(
        "SELECT claim, rows_processed, status FROM products_imports WHERE id = $1",
        vec![job.id.into()],
    )?;
    Ok(row.is_some_and(|row| {
        row.get("claim").and_then(Value::as_str) == Some(claim)
            && row.get("rows_processed").and_then(Value::as_i64) == Some(job.processed)
            && row.get("status").and_then(Value::as_str) == Some("running")
    }))
}

fn finish(products: &Products, job: &Claimed, claim: &str) -> Result<(), Stop> {
    let now = clock::now();
    let summary = format!(
        "Import finished: {} imported, {} skipped (duplicates), {} failed, of {} rows",
        job.imported, job.skipped, job.failed, job.rows_total
    );
    let done = products.host.transaction(vec![
        Statement::new(
            "UPDATE products_imports SET status = 'completed', finished_at = $2, updated_at = $2,
                 claim = NULL, fence = CASE WHEN claim = $3 THEN 1 ELSE NULL END
             WHERE id = $1",
            vec![job.id.into(), now.clone().into(), claim.into()],
        ),
        log_statement(job.id, &[("info", None, summary)], &now),
        // The rows are in the catalogue and the outcome in the log: the
        // file (up to 30 MiB) has served. A failed job keeps it.
        Statement::new(
            "DELETE FROM products_import_files WHERE import_id = $1",
            vec![job.id.into()],
        ),
    ]);
    if let Err(error) = done {
        return if still_ours(products, job, claim)? {
            Err(Stop::from(error))
        } else {
            Err(Stop::LostClaim)
        };
    }
    let _ = products.host.publish(
        "import.completed",
        json!({
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
    let now = clock::now();
    let changed = products.host.transaction(vec![
        Statement::new(
            "UPDATE products_imports SET status = 'failed', error = $2, finished_at = $3, updated_at = $3, claim = NULL
             WHERE id = $1 AND claim = $4 RETURNING id",
            vec![id.into(), error.into(), now.clone().into(), claim.into()],
        ),
        Statement::new(
            "INSERT INTO products_import_logs (import_id, level, line, message, created_at)
             SELECT id, 'error', CAST(NULL AS BIGINT), $2, $3 FROM products_imports WHERE id = $1 AND status = 'failed' AND finished_at = $3",
            vec![id.into(), format!("Import failed: {error}").into(), now.into()],
        ),
    ])?;
    if changed.first().is_some_and(|rows| !rows.is_empty()) {
        let _ = products.host.publish(
            "import.failed",
            json!({"id": id, "supplier_id": supplier_id, "error": error}),
        );
    }
    Ok(())
}

/// OpenAPI `paths` for this part's routes, relative to the prefix.
pub fn openapi_paths() -> Map<String, Value> {
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": suppliers::error_schema()}}});
    let ok = |description: &str, schema: Value| json!({"description": description, "content": {"application/json": {"schema": schema}}});
    let integer = json!({"type": "integer"});
    let text = json!({"type": "string"});
    let job = json!({
        "type": "object",
        "properties": {
            "id": integer, "supplier_id": integer, "supplier_name": text, "filename": text,
            "status": {"type": "string", "enum": STATUSES},
            "file_bytes": integer, "rows_total": integer, "rows_processed": integer,
            "rows_imported": integer, "rows_skipped": integer, "rows_failed": integer,
            "progress": {"type": "number", "description": "Percent of rows processed"},
            "error": {"type": "string", "description": "Why the job failed; null otherwise"},
            "created_by": integer,
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": "string", "format": "date-time"},
            "heartbeat_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}
        }
    });
    let list_of = |items: Value| {
        json!({
            "type": "object",
            "properties": {
                "total": {"type": "integer"}, "skip": {"type": "integer"}, "limit": {"type": "integer"},
                "has_more": {"type": "boolean"}, "items": {"type": "array", "items": items},
                "page": {"type": "integer"}, "page_size": {"type": "integer"}, "total_pages": {"type": "integer"}
            }
        })
    };
    let paging = vec![
        json!({"name": "skip", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 0}}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}),
        json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000}}),
        json!({"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}),
    ];
    let id = crate::openapi::path_id("Id");
    let upload = json!({
        "summary": "Upload a supplier CSV file as a pending import job",
        "description": format!("The file is decoded with the supplier's import_config encoding, its header checked against the mapping and its rows counted before the job is stored. At most {MAX_FILE_BYTES} bytes."),
        "tags": ["imports"],
        "requestBody": {
            "required": true,
            "content": {"multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["supplier_id", "file"],
                    "properties": {
                        "supplier_id": {"type": "integer", "description": "An active supplier"},
                        "file": {"type": "string", "format": "binary", "description": "The CSV file"}
                    }
                },
                "encoding": {"file": {"contentType": "text/csv, application/octet-stream"}}
            }}
        },
        "responses": {
            "201": ok("The pending job", job.clone()),
            "400": error("Not a well-formed multipart/form-data body"),
            "401": error("Not authenticated"),
            "403": error("Needs products:import"),
            "413": error("File too large"),
            "422": error("Missing part, unknown or inactive supplier, or a file that cannot be read with the supplier's configuration")
        }
    });
    let mut list_parameters = paging.clone();
    list_parameters.extend([
        json!({"name": "status", "in": "query", "schema": {"type": "string", "enum": STATUSES}}),
        json!({"name": "supplier_id", "in": "query", "schema": {"type": "integer", "minimum": 1}}),
        json!({"name": "date_from", "in": "query", "description": "Created at or after: a date (UTC) or an RFC 3339 date-time", "schema": {"type": "string"}}),
        json!({"name": "date_to", "in": "query", "description": "Created at or before: a date (whole day, UTC) or an RFC 3339 date-time", "schema": {"type": "string"}}),
        json!({"name": "sort_by", "in": "query", "schema": {"type": "string", "enum": ["created_at", "id", "status"]}}),
        json!({"name": "sort_order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}}),
    ]);
    let mut log_parameters = vec![id.clone()];
    log_parameters.extend(paging);
    log_parameters.push(
        json!({"name": "level", "in": "query", "schema": {"type": "string", "enum": LEVELS}}),
    );
    let log = json!({
        "type": "object",
        "properties": {
            "id": integer, "timestamp": {"type": "string", "format": "date-time"},
            "level": {"type": "string", "enum": LEVELS},
            "line": {"type": "integer", "description": "Line of the file the entry is about; null for the whole job"},
            "message": text
        }
    });
    let mut paths = Map::new();
    paths.insert("/imports".into(), json!({"post": upload}));
    let mut create = upload;
    create["summary"] =
        json!("Upload a supplier CSV file (the seed's path; same as POST /imports)");
    create["operationId"] = json!("productsImportsCreate");
    paths.insert("/imports/create".into(), json!({"post": create}));
    paths.insert("/imports/jobs".into(), json!({"get": {
        "summary": "List import jobs", "tags": ["imports"],
        "parameters": list_parameters,
        "responses": {"200": ok("Jobs, newest first", list_of(job.clone())), "401": error("Not authenticated"), "403": error("Needs products:read"), "422": error("Bad filter or paging")}
    }}));
    paths.insert("/imports/{id}".into(), json!({"get": {
        "summary": "An import job with its counters", "tags": ["imports"],
        "parameters": [id.clone()],
        "responses": {"200": ok("The job", job.clone()), "401": error("Not authenticated"), "403": error("Needs products:read"), "404": error("No such import")}
    }}));
    paths.insert("/imports/{id}/logs".into(), json!({"get": {
        "summary": "An import job's log", "tags": ["imports"],
        "parameters": log_parameters,
        "responses": {"200": ok("Log lines, oldest first", list_of(log)), "401": error("Not authenticated"), "403": error("Needs products:read"), "404": error("No such import"), "422": error("Bad level or paging")}
    }}));
    paths.insert("/imports/{id}/start".into(), json!({"post": {
        "summary": "Start a pending import; it runs in the background", "tags": ["imports"],
        "parameters": [id],
        "responses": {"202": ok("Started: the job, now running", job), "401": error("Not authenticated"), "403": error("Needs products:import"), "404": error("No such import"), "409": error("The import is not pending")}
    }}));
    paths
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use xcore_plugin_api::{
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
                        return Err("UNIQUE constraint failed: products.sku".into());
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
}
