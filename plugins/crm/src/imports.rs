//! CSV imports of customers, run off the request path by the plugin's
//! `import` job.
//!
//! - `POST /customers/imports` (`crm:admin`): the body is the CSV file
//!   (UTF-8, `,` or `;` separated, first line the header; up to 20 MiB).
//!   Columns by name: `name` (required), `type`, `email`, `phone`,
//!   `company_id`, `address`, `tags` (`|`-separated), `owner_id`, `notes`;
//!   others are ignored. A file that is not UTF-8 or has no `name` column
//!   is a 422 now. Answers **202** with the `pending` import, and the job
//!   is asked to run now ([`Host::run_job`]).
//! - `GET /customers/imports`, `GET /customers/imports/{id}`: the import,
//!   its counters and its per-line errors (`line` is the file's line).
//!
//! The job claims one pending import at a time (the status guard makes a
//! second run skip it), checks every row with the API's rules (the same
//! [`validate`]; an email used by another customer or earlier in the file
//! is an error on its line), and writes 500 rows per transaction together
//! with their lines' errors and the counters, so a crash loses at most the
//! batch in progress. The file is dropped once imported. Events:
//! `crm.import.completed` (not one `crm.customer.created` per row).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{prelude::*, Statement};

use crate::{
    customers::{validate, CustomerInput, ValidCustomer},
    missing, nullable_id, Crm, Id, ADMIN, READ,
};

/// Largest file accepted.
const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;
/// Rows written per transaction.
const BATCH: usize = 500;
/// Errors shown by `GET /customers/imports/{id}`.
const SHOWN_ERRORS: i64 = 1_000;

/// A file's row once checked: its line, and the customer or its problems.
type CheckedRow = (i64, Result<ValidCustomer, Vec<(String, String)>>);

/// An import.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Import {
    /// Id.
    pub id: i64,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// Data rows in the file.
    pub rows_total: i64,
    /// Customers created.
    pub rows_imported: i64,
    /// Rows refused (see `errors`).
    pub rows_failed: i64,
    /// Who uploaded it.
    pub created_by: Option<i64>,
    /// When.
    pub created_at: String,
    /// When the job finished it.
    pub finished_at: Option<String>,
    /// Per-line errors (on `GET /customers/imports/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ImportError>>,
}

/// A refused row.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportError {
    /// The file's line (the header is line 1).
    pub line: i64,
    /// The column at fault.
    pub field: String,
    /// Why.
    pub message: String,
}

const COLUMNS: &str =
    "id, status, rows_total, rows_imported, rows_failed, created_by, created_at, finished_at";

/// The imports' routes and job.
pub fn routes(router: Router<Crm>) -> Router<Crm> {
    router
        .post(
            "/customers/imports",
            Access::Requires(ADMIN),
            Crm::upload_import,
        )
        .summary("Upload a customers CSV file; the import job runs it (202)")
        .doc(|op| {
            op.request_body_raw("text/csv", json!({"type": "string"}));
            op.response::<Import>(202, "Accepted: the import is pending");
        })
        .max_body(MAX_FILE_BYTES)
        .get(
            "/customers/imports",
            Access::Requires(READ),
            Crm::list_imports,
        )
        .summary("List customer imports")
        .get(
            "/customers/imports/{id}",
            Access::Requires(READ),
            Crm::show_import,
        )
        .summary("An import with its counters and per-line errors")
        .job(
            "import",
            "Imports pending customer CSV files",
            Crm::run_imports,
        )
}

/// The delimiter of a file: `;` when its header has more of them than `,`
/// (French spreadsheets), else `,`.
fn delimiter(content: &str) -> u8 {
    let header = content.lines().next().unwrap_or("");
    if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    }
}

/// The header's column positions by lower-case name.
fn header(content: &str) -> Result<HashMap<String, usize>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter(content))
        .from_reader(content.as_bytes());
    let headers = reader.headers().map_err(|error| error.to_string())?;
    let columns: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(index, name)| {
            (
                name.trim().trim_start_matches('\u{feff}').to_lowercase(),
                index,
            )
        })
        .collect();
    if columns.contains_key("name") {
        Ok(columns)
    } else {
        Err("the header has no name column".into())
    }
}

/// A row read into the API's input; a number that does not parse is an
/// error on its column.
fn row_input(
    record: &csv::StringRecord,
    columns: &HashMap<String, usize>,
) -> Result<CustomerInput, (String, String)> {
    let cell = |name: &str| {
        columns
            .get(name)
            .and_then(|index| record.get(*index))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let number = |name: &str| -> Result<Option<i64>, (String, String)> {
        cell(name)
            .map(|raw| {
                raw.parse::<i64>().map_err(|_| {
                    (
                        name.to_string(),
                        format!("must be a whole number, got {raw:?}"),
                    )
                })
            })
            .transpose()
    };
    Ok(CustomerInput {
        kind: cell("type"),
        name: cell("name"),
        email: cell("email"),
        phone: cell("phone"),
        other_emails: None,
        other_phones: None,
        company_id: number("company_id")?,
        address: cell("address"),
        tags: cell("tags").map(|tags| tags.split('|').map(str::to_string).collect()),
        owner_id: number("owner_id")?,
        notes: cell("notes"),
    })
}

impl Crm {
    fn import(&self, id: i64) -> Result<Import, Response> {
        self.host
            .query_one_as(
                &format!("SELECT {COLUMNS} FROM crm_imports WHERE id = $1"),
                params![id],
            )?
            .ok_or_else(|| missing("import"))
    }

    fn upload_import(&self, caller: Caller, Body(bytes): Body) -> Result<Response, Response> {
        let content = String::from_utf8(bytes)
            .map_err(|_| Response::invalid("file", "must be UTF-8 text"))?;
        header(&content).map_err(|message| Response::invalid("file", &message))?;
        let id: i64 = self.host.query_scalar(
            "INSERT INTO crm_imports (status, content, owner_id, created_by, created_at) \
             VALUES ('pending', $1, CAST($2 AS BIGINT), CAST($2 AS BIGINT), $3) RETURNING id",
            params![content, nullable_id(Some(caller.user_id)), now()],
        )?;
        self.host.run_job("import")?;
        Ok(Response::json(202, &self.import(id)?))
    }

    fn list_imports(&self, window: Window) -> Result<ListBody<Import>, Response> {
        let sql = format!("SELECT {COLUMNS} FROM crm_imports ORDER BY id DESC");
        Ok(self.host.query_page(&sql, params![], window)?)
    }

    fn show_import(&self, Id(id): Id) -> Result<Json<Import>, Response> {
        let mut import = self.import(id)?;
        import.errors = Some(self.host.query_as(
            &format!(
                "SELECT line, field, message FROM crm_import_errors WHERE import_id = $1 \
                 ORDER BY line, id LIMIT {SHOWN_ERRORS}"
            ),
            params![id],
        )?);
        Ok(Json(import))
    }

    /// The `import` job: runs every pending import, oldest first.
    pub fn run_imports(&self) -> Result<(), HostError> {
        loop {
            let claimed = self.host.query_one(
                "UPDATE crm_imports SET status = 'running' WHERE status = 'pending' AND id = \
                 (SELECT MIN(id) FROM crm_imports WHERE status = 'pending') \
                 RETURNING id, content, owner_id",
                params![],
            )?;
            let Some(row) = claimed else { return Ok(()) };
            let id = row.get("id").and_then(Value::as_i64).unwrap_or_default();
            let content = row
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let owner = row.get("owner_id").and_then(Value::as_i64);
            let outcome = self.import_file(id, &content, owner);
            let status = if outcome.is_ok() {
                "completed"
            } else {
                "failed"
            };
            self.host.execute(
                "UPDATE crm_imports SET status = $1, content = NULL, finished_at = $2 WHERE id = $3",
                params![status, now(), id],
            )?;
            if let Err(error) = &outcome {
                self.host.warn(
                    "a customer import failed",
                    json!({"import": id, "error": error.to_string()}),
                );
            }
            if let Ok(import) = self.import(id) {
                self.announce("import.completed", &import);
            }
        }
    }

    /// Imports one file's rows, batch by batch.
    fn import_file(&self, id: i64, content: &str, owner: Option<i64>) -> Result<(), HostError> {
        let Ok(columns) = header(content) else {
            return Ok(());
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter(content))
            .flexible(true)
            .from_reader(content.as_bytes());
        let mut seen_emails: HashSet<String> = HashSet::new();
        let mut batch: Vec<CheckedRow> = Vec::new();
        for record in reader.records() {
            let (line, checked) = match record {
                Ok(record) => {
                    let line = record.position().map_or(0, |p| p.line() as i64);
                    let checked = row_input(&record, &columns)
                        .map_err(|problem| vec![problem])
                        .and_then(|input| validate(&input))
                        .map(|mut valid| {
                            valid.owner_id = valid.owner_id.or(owner);
                            valid
                        });
                    (line, checked)
                }
                Err(error) => (
                    error.position().map_or(0, |p| p.line() as i64),
                    Err(vec![("row".to_string(), error.to_string())]),
                ),
            };
            batch.push((line, checked));
            if batch.len() == BATCH {
                self.write_batch(id, std::mem::take(&mut batch), &mut seen_emails)?;
            }
        }
        self.write_batch(id, batch, &mut seen_emails)
    }

    /// Checks a batch against the database (emails, companies) and writes
    /// its customers, its errors and the counters in one transaction.
    fn write_batch(
        &self,
        import_id: i64,
        batch: Vec<CheckedRow>,
        seen_emails: &mut HashSet<String>,
    ) -> Result<(), HostError> {
        if batch.is_empty() {
            return Ok(());
        }
        let emails: Vec<String> = batch
            .iter()
            .filter_map(|(_, row)| row.as_ref().ok().and_then(|c| c.email.clone()))
            .collect();
        let taken: HashSet<String> = if emails.is_empty() {
            HashSet::new()
        } else {
            let placeholders: Vec<String> = (1..=emails.len()).map(|n| format!("${n}")).collect();
            self.host
                .query(
                    &format!(
                        "SELECT email FROM crm_customers WHERE email IN ({})",
                        placeholders.join(", ")
                    ),
                    emails.iter().map(|email| json!(email)).collect(),
                )?
                .iter()
                .filter_map(|row| row.get("email").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        let mut rows: Vec<&ValidCustomer> = Vec::new();
        let mut errors: Vec<(i64, String, String)> = Vec::new();
        for (line, checked) in &batch {
            match checked {
                Err(problems) => {
                    for (field, message) in problems {
                        errors.push((*line, field.clone(), message.clone()));
                    }
                }
                Ok(customer) => {
                    if let Some(email) = &customer.email {
                        if taken.contains(email) {
                            errors.push((
                                *line,
                                "email".into(),
                                format!("{email} is already used by a customer"),
                            ));
                            continue;
                        }
                        if !seen_emails.insert(email.clone()) {
                            errors.push((
                                *line,
                                "email".into(),
                                format!("{email} appears earlier in the file"),
                            ));
                            continue;
                        }
                    }
                    if let Some(company) = customer.company_id {
                        let kind: Option<String> = self
                            .host
                            .query_one(
                                "SELECT type FROM crm_customers WHERE id = $1",
                                params![company],
                            )?
                            .and_then(|row| {
                                row.get("type").and_then(Value::as_str).map(str::to_string)
                            });
                        if kind.as_deref() != Some("company") {
                            errors.push((
                                *line,
                                "company_id".into(),
                                format!("{company} is not a company"),
                            ));
                            continue;
                        }
                    }
                    rows.push(customer);
                }
            }
        }
        let failed_lines: HashSet<i64> = errors.iter().map(|(line, _, _)| *line).collect();
        let now = now();
        let mut statements = Vec::new();
        if !rows.is_empty() {
            let mut params = Vec::new();
            let mut tuples = Vec::new();
            for customer in &rows {
                let base = params.len();
                tuples.push(format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, CAST(${} AS BIGINT), ${}, ${}, CAST(${} AS BIGINT), ${}, ${}, ${})",
                    base + 1, base + 2, base + 3, base + 4, base + 5, base + 6, base + 7,
                    base + 8, base + 9, base + 10, base + 11, base + 12, base + 12 + 1
                ));
                params.extend(params![
                    customer.kind,
                    customer.name,
                    customer.email,
                    customer.phone,
                    customer.other_emails,
                    customer.other_phones,
                    nullable_id(customer.company_id),
                    customer.address,
                    customer.tags,
                    nullable_id(customer.owner_id),
                    customer.notes,
                    now,
                    now
                ]);
            }
            statements.push(Statement::new(
                &format!(
                    "INSERT INTO crm_customers (type, name, email, phone, other_emails, other_phones, \
                     company_id, address, tags, owner_id, notes, created_at, updated_at) VALUES {}",
                    tuples.join(", ")
                ),
                params,
            ));
        }
        for (line, field, message) in &errors {
            statements.push(Statement::new(
                "INSERT INTO crm_import_errors (import_id, line, field, message) VALUES ($1, $2, $3, $4)",
                params![import_id, line, field, message],
            ));
        }
        statements.push(Statement::new(
            "UPDATE crm_imports SET rows_total = rows_total + $1, rows_imported = rows_imported + $2, \
             rows_failed = rows_failed + $3 WHERE id = $4",
            params![batch.len() as i64, rows.len() as i64, failed_lines.len() as i64, import_id],
        ));
        self.host.transaction(statements)?;
        Ok(())
    }
}
