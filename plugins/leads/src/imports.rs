//! CSV imports (seed 004, `POST /import`), run by the plugin's `import`
//! job off the request path.
//!
//! - `POST /import` (`leads:write`): the CSV as the body (`text/csv`) or
//!   as the `file` field of a `multipart/form-data` upload, up to 30 MiB,
//!   UTF-8, comma- or semicolon-separated (the header line says which). Its
//!   header is checked now (a `company` column is required; every column
//!   must be a lead field: company, contact_name, email, phone, website,
//!   source, niche_id, campaign_id, status, score, tags (`;`-separated),
//!   notes, owner_id): a 422 naming the columns, not a failed job later.
//!   The file is stored and the job asked to run; answers **202** with the
//!   import.
//! - `GET /import/{id}`: status (`pending`, `running`, `completed`,
//!   `failed`), counters and the problems, each with its file `line`: a
//!   bad value is an `error` (the row fails), a duplicate of an existing
//!   lead or of an earlier line a `duplicate` naming the lead or line (the
//!   row is skipped); the other rows are imported with `source`
//!   `import` unless they give one.
//!
//! The job claims one pending import at a time (`pending` → `running` in
//! one guarded update, so two runs never take the same one), writes the
//! counters every [`PROGRESS_ROWS`] rows, and deletes the file when done.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{multipart::Multipart, prelude::*};

use crate::{
    json_text,
    leads::{LeadInput, LeadValues},
    Id, Leads, Problems, READ, WRITE,
};

/// Largest file accepted.
pub const MAX_IMPORT_BYTES: u64 = 30 * 1024 * 1024;

/// Counters are saved after this many rows.
pub const PROGRESS_ROWS: usize = 500;

/// Columns a file may have: the exported ones but those the database
/// assigns (`id` first, the three timestamps last), so the two lists
/// cannot drift apart.
const COLUMNS: &[&str] = crate::export::HEADER
    .split_at(1)
    .1
    .split_at(crate::export::HEADER.len() - 4)
    .0;

/// One problem with a line.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportProblem {
    /// The file line (the header is line 1).
    pub line: u64,
    /// `error` or `duplicate`.
    pub kind: String,
    /// The field at fault, if one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// An import.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Import {
    /// Id.
    pub id: i64,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// Data rows in the file.
    pub rows_total: i64,
    /// Leads created.
    pub rows_imported: i64,
    /// Rows skipped as duplicates.
    pub rows_duplicate: i64,
    /// Rows refused.
    pub rows_failed: i64,
    /// Every problem, by line.
    #[serde(deserialize_with = "json_text::read")]
    pub problems: Vec<ImportProblem>,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

const IMPORT_COLUMNS: &str =
    "id, status, rows_total, rows_imported, rows_duplicate, rows_failed, problems, created_at, updated_at";

/// The delimiter a header line uses.
fn delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or_default();
    if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    }
}

fn reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter(text))
        .flexible(true)
        .from_reader(text.as_bytes())
}

/// A row as a lead's input, or the field that does not parse.
fn row_input(header: &[String], record: &csv::StringRecord) -> Result<LeadInput, (String, String)> {
    let mut input = LeadInput::default();
    for (name, raw) in header.iter().zip(record.iter()) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let text = Some(raw.to_string());
        let number = || {
            raw.parse::<i64>()
                .map(Some)
                .map_err(|_| (name.clone(), "must be an integer".to_string()))
        };
        match name.as_str() {
            "company" => input.company = text,
            "contact_name" => input.contact_name = text,
            "email" => input.email = text,
            "phone" => input.phone = text,
            "website" => input.website = text,
            "source" => input.source = text,
            "status" => input.status = text,
            "notes" => input.notes = text,
            "tags" => {
                input.tags = Some(
                    raw.split(';')
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect(),
                )
            }
            "niche_id" => input.niche_id = number()?,
            "campaign_id" => input.campaign_id = number()?,
            "score" => input.score = number()?,
            "owner_id" => input.owner_id = number()?,
            _ => {}
        }
    }
    Ok(input)
}

impl Leads {
    fn import(&self, id: i64) -> Result<Import, Response> {
        self.host
            .query_one_as(
                &format!("SELECT {IMPORT_COLUMNS} FROM leads_imports WHERE id = $1"),
                params![id],
            )?
            .ok_or_else(|| Response::not_found(&format!("no import {id}")))
    }

    fn upload(&self, request: Request) -> Result<Response, Response> {
        let content_type = request
            .head
            .headers
            .get("content-type")
            .cloned()
            .unwrap_or_default();
        let bytes = if content_type.starts_with("multipart/form-data") {
            let boundary = content_type
                .split("boundary=")
                .nth(1)
                .map(|b| b.trim_matches('"').to_string())
                .ok_or_else(|| Response::invalid("file", "multipart without a boundary"))?;
            let form = Multipart::parse(request.body, &boundary)?;
            form.required_file("file")?.bytes.clone()
        } else {
            request.body
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Response::invalid("file", "must be UTF-8 text"))?;
        let text = text.trim_start_matches('\u{feff}').to_string();
        let mut csv = reader(&text);
        let header: Vec<String> = csv
            .headers()
            .map_err(|e| Response::invalid("file", &format!("unreadable header: {e}")))?
            .iter()
            .map(|h| h.trim().to_lowercase())
            .collect();
        let mut problems = Problems::default();
        for name in &header {
            if !COLUMNS.contains(&name.as_str()) {
                problems.add(
                    "file",
                    format!("unknown column {name}; columns: {}", COLUMNS.join(", ")),
                );
            }
        }
        if !header.iter().any(|h| h == "company") {
            problems.add("file", "a company column is required");
        }
        problems.finish()?;
        let rows = csv.records().count() as i64;
        if rows == 0 {
            return Err(Response::invalid("file", "no data row"));
        }
        let now = now();
        let import: Import = self.host.query_row_as(
            &format!(
                "INSERT INTO leads_imports (status, content, rows_total, created_at, updated_at) \
                 VALUES ('pending', $1, $2, $3, $3) RETURNING {IMPORT_COLUMNS}"
            ),
            params![text, rows, now],
        )?;
        if let Err(error) = self.host.run_job("import") {
            self.host.warn(
                "cannot start the import job",
                json!({"error": error.to_string()}),
            );
        }
        Ok(Response::json(202, &import))
    }

    /// The `import` job: every pending import, one at a time.
    pub fn run_imports(&self) -> Result<(), HostError> {
        loop {
            let next: Option<crate::niches::IdOnly> = self.host.query_one_as(
                "SELECT id FROM leads_imports WHERE status = 'pending' ORDER BY id LIMIT 1",
                params![],
            )?;
            let Some(next) = next else { return Ok(()) };
            let claimed = self.host.execute(
                "UPDATE leads_imports SET status = 'running', updated_at = $1 WHERE id = $2 AND status = 'pending'",
                params![now(), next.id],
            )?;
            if claimed.rows_affected == 1 {
                if let Err(error) = self.import_file(next.id) {
                    self.host.execute(
                        "UPDATE leads_imports SET status = 'failed', updated_at = $1 WHERE id = $2",
                        params![now(), next.id],
                    )?;
                    crate::activity::record(
                        &self.host,
                        "error",
                        "import",
                        &format!("import {} failed: {error}", next.id),
                        Some(next.id),
                        json!({}),
                    );
                }
            }
        }
    }

    fn import_file(&self, id: i64) -> Result<(), HostError> {
        #[derive(Deserialize)]
        struct Content {
            content: Option<String>,
        }
        let content: Content = self.host.query_row_as(
            "SELECT content FROM leads_imports WHERE id = $1",
            params![id],
        )?;
        let text = content.content.unwrap_or_default();
        let mut csv = reader(&text);
        let header: Vec<String> = csv
            .headers()
            .map_err(|e| HostError::Other {
                message: e.to_string(),
            })?
            .iter()
            .map(|h| h.trim().to_lowercase())
            .collect();
        let (mut imported, mut duplicates, mut failed) = (0_i64, 0_i64, 0_i64);
        let mut problems: Vec<ImportProblem> = Vec::new();
        // Keys seen in this file: a second line with them is a duplicate.
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut done = 0_usize;
        for record in csv.records() {
            let problem =
                |line: u64, kind: &str, field: Option<String>, message: String| ImportProblem {
                    line,
                    kind: kind.into(),
                    field,
                    message,
                };
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    failed += 1;
                    let line = error.position().map_or(0, |p| p.line());
                    problems.push(problem(line, "error", None, error.to_string()));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            done += 1;
            let input = match row_input(&header, &record) {
                Ok(input) => input,
                Err((field, message)) => {
                    failed += 1;
                    problems.push(problem(line, "error", Some(field), message));
                    continue;
                }
            };
            let mut values = LeadValues::blank();
            values.source = Some("import".into());
            let mut found = Problems::default();
            values.apply(&input, "", &mut found);
            if let Some(status) = &input.status {
                values.status = status.clone();
            }
            self.check_references(values.niche_id, values.campaign_id, &mut found)?;
            if !found.0.is_empty() {
                failed += 1;
                for (field, message) in found.0 {
                    problems.push(problem(line, "error", Some(field), message));
                }
                continue;
            }
            let keys: Vec<String> = [
                values.email_key().map(|k| format!("email {k}")),
                values.phone_key().map(|k| format!("phone {k}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if let Some(earlier) = keys.iter().find_map(|k| seen.get(k)) {
                duplicates += 1;
                problems.push(problem(
                    line,
                    "duplicate",
                    None,
                    format!("same email or phone as line {earlier}"),
                ));
                continue;
            }
            if let Some(conflict) = self.duplicate_of(&values, None)? {
                duplicates += 1;
                let body: Value =
                    serde_json::from_slice(&conflict.body_bytes()).unwrap_or_default();
                let message = body["error"]["message"]
                    .as_str()
                    .unwrap_or("a duplicate")
                    .to_string();
                problems.push(problem(line, "duplicate", None, message));
                continue;
            }
            let insert = values.insert(&values.status);
            match self.host.query_one(&insert.sql, insert.params) {
                Ok(_) => {
                    imported += 1;
                    for key in keys {
                        seen.insert(key, line);
                    }
                }
                Err(HostError::UniqueViolation { .. }) => {
                    duplicates += 1;
                    problems.push(problem(
                        line,
                        "duplicate",
                        None,
                        "a lead with this email or phone was created meanwhile".into(),
                    ));
                }
                Err(error) => {
                    failed += 1;
                    problems.push(problem(line, "error", None, error.to_string()));
                }
            }
            if done % PROGRESS_ROWS == 0 {
                self.host.execute(
                    "UPDATE leads_imports SET rows_imported = $1, rows_duplicate = $2, rows_failed = $3, updated_at = $4 WHERE id = $5",
                    params![imported, duplicates, failed, now(), id],
                )?;
            }
        }
        self.host.execute(
            "UPDATE leads_imports SET status = 'completed', content = NULL, rows_imported = $1, rows_duplicate = $2, \
             rows_failed = $3, problems = $4, updated_at = $5 WHERE id = $6",
            params![imported, duplicates, failed, json_text::text(&problems), now(), id],
        )?;
        crate::activity::record(
            &self.host,
            "info",
            "import",
            &format!(
                "import {id}: {imported} leads created, {duplicates} duplicates, {failed} refused"
            ),
            Some(id),
            json!({}),
        );
        Ok(())
    }
}

/// The import routes and job.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .post("/import", Access::Requires(WRITE), Leads::upload)
        .summary("Upload a CSV of leads; the import job creates them (202)")
        .doc(|op| {
            op.request_body_raw("text/csv", json!({"type": "string"}));
            op.response::<Import>(202, "The import, pending");
        })
        .max_body(MAX_IMPORT_BYTES)
        .get(
            "/import/{id}",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id| l.import(id).map(Json),
        )
        .summary("An import: status, counters and problems by line")
        .job(
            "import",
            "Creates the leads of the pending CSV imports",
            Leads::run_imports,
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_may_have_the_exported_columns_the_database_does_not_assign() {
        assert_eq!(super::COLUMNS.len(), 13);
        assert_eq!(super::COLUMNS.first(), Some(&"company"));
        assert_eq!(super::COLUMNS.last(), Some(&"owner_id"));
    }
}
