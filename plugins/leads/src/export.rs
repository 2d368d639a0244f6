//! `GET /export?format=csv|xlsx`: the leads the list filters select (the
//! same query parameters as `GET /`), in id order, as CSV (UTF-8, comma,
//! a header line) or as an Excel `.xlsx` workbook.
//!
//! Both are streamed (`Response::stream`), so memory stays bounded whatever
//! the number of leads:
//! - CSV: rows are read [`EXPORT_BATCH`] at a time by id (keyset, never
//!   OFFSET), one chunk per batch, while the client reads; the first batch
//!   is read before answering, so a failing query is an error status;
//! - `.xlsx`: the writer runs in constant-memory mode (rows go through a
//!   temporary file) and saves the workbook to a temporary file, which is
//!   then streamed in [`FILE_CHUNK`] pieces and deleted.

use rust_xlsxwriter::Workbook;
use xcore_plugin_sdk::{keyset, prelude::*};

use crate::{
    filters::LeadFilter,
    leads::{Lead, LEAD_COLUMNS},
    Leads, Problems, READ,
};

/// Leads read per query.
pub const EXPORT_BATCH: i64 = 2000;

/// Bytes of a saved workbook sent per chunk.
const FILE_CHUNK: usize = 64 * 1024;

/// The exported columns, in order.
pub const HEADER: [&str; 17] = [
    "id",
    "company",
    "contact_name",
    "email",
    "phone",
    "website",
    "source",
    "niche_id",
    "campaign_id",
    "status",
    "score",
    "tags",
    "notes",
    "owner_id",
    "converted_at",
    "created_at",
    "updated_at",
];

/// `GET /export`'s query: the list filters and the format.
#[derive(serde::Deserialize, ToSchema)]
pub struct ExportParams {
    /// `csv` (default) or `xlsx`.
    format: Option<String>,
    #[serde(flatten)]
    filter: LeadFilter,
}

/// One exported cell.
enum Cell {
    Text(String),
    Number(i64),
    Empty,
}

fn cells(lead: &Lead) -> [Cell; 17] {
    let text = |value: &Option<String>| value.clone().map_or(Cell::Empty, Cell::Text);
    let number = |value: Option<i64>| value.map_or(Cell::Empty, Cell::Number);
    [
        Cell::Number(lead.id),
        Cell::Text(lead.company.clone()),
        text(&lead.contact_name),
        text(&lead.email),
        text(&lead.phone),
        text(&lead.website),
        text(&lead.source),
        number(lead.niche_id),
        number(lead.campaign_id),
        Cell::Text(lead.status.clone()),
        Cell::Number(lead.score),
        Cell::Text(lead.tags.join(";")),
        text(&lead.notes),
        number(lead.owner_id),
        text(&lead.converted_at),
        Cell::Text(lead.created_at.clone()),
        Cell::Text(lead.updated_at.clone()),
    ]
}

/// Up to [`EXPORT_BATCH`] leads `filter` selects after id `after`, in id
/// order.
fn batch_after(host: &Host, filter: &LeadFilter, after: i64) -> Result<Vec<Lead>, Response> {
    let mut clause = filter.clause(host.dialect()?);
    clause.push("l.id > {}", json!(after));
    clause.params.push(json!(EXPORT_BATCH));
    let sql = format!(
        "SELECT {LEAD_COLUMNS} FROM leads l {} ORDER BY id LIMIT ${}",
        clause.sql(),
        clause.params.len()
    );
    Ok(host.query_as(&sql, clause.params)?)
}

/// Every lead `filter` selects, in id order, a batch at a time.
fn export_batches(
    host: &Host,
    filter: &LeadFilter,
    mut visit: impl FnMut(&[Lead]) -> Result<(), Response>,
) -> Result<(), Response> {
    let mut after = 0_i64;
    loop {
        let batch = batch_after(host, filter, after)?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.id;
        visit(&batch)?;
        if (batch.len() as i64) < EXPORT_BATCH {
            return Ok(());
        }
    }
}

fn failed(error: impl std::fmt::Display) -> Response {
    Response::plugin_error(&format!("cannot write the export: {error}"))
}

/// What a stream chunk reports when it cannot go on.
fn reason(response: Response) -> String {
    response
        .error
        .map_or_else(|| "the export failed".into(), |error| error.message)
}

/// The CSV of the leads a filter selects, a batch per chunk.
struct CsvExport {
    host: Host,
    filter: LeadFilter,
    header: bool,
}

impl CsvExport {
    /// The leads after id `after` as CSV, and the id to read after next.
    fn chunk(&mut self, after: i64) -> Result<keyset::Batch, Response> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        if std::mem::take(&mut self.header) {
            writer.write_record(HEADER).map_err(failed)?;
        }
        let batch = batch_after(&self.host, &self.filter, after)?;
        for lead in &batch {
            let row = cells(lead).map(|cell| match cell {
                Cell::Text(text) => text,
                Cell::Number(number) => number.to_string(),
                Cell::Empty => String::new(),
            });
            writer.write_record(&row).map_err(failed)?;
        }
        let next = match batch.last() {
            Some(last) if batch.len() as i64 == EXPORT_BATCH => Some(last.id),
            _ => None,
        };
        let chunk = writer.into_inner().map_err(|error| failed(error.error()))?;
        Ok((chunk, next))
    }
}

/// Saves the `.xlsx` workbook of the leads `filter` selects to `path`.
fn save_xlsx(host: &Host, filter: &LeadFilter, path: &std::path::Path) -> Result<(), Response> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory();
    sheet.set_name("Leads").map_err(failed)?;
    for (column, name) in HEADER.iter().enumerate() {
        sheet
            .write_string(0, column as u16, *name)
            .map_err(failed)?;
    }
    let mut row = 0_u32;
    export_batches(host, filter, |batch| {
        for lead in batch {
            row += 1;
            for (column, cell) in cells(lead).into_iter().enumerate() {
                let column = column as u16;
                match cell {
                    Cell::Text(text) => sheet.write_string(row, column, text),
                    Cell::Number(number) => sheet.write_number(row, column, number as f64),
                    Cell::Empty => continue,
                }
                .map_err(failed)?;
            }
        }
        Ok(())
    })?;
    workbook.save(path).map_err(failed)
}

/// A saved file sent in [`FILE_CHUNK`] pieces, deleted once dropped (sent
/// whole, or the client went away).
struct FileChunks {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Iterator for FileChunks {
    type Item = Result<Vec<u8>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::Read;
        let mut chunk = vec![0; FILE_CHUNK];
        match self.file.read(&mut chunk) {
            Ok(0) => None,
            Ok(read) => {
                chunk.truncate(read);
                Some(Ok(chunk))
            }
            Err(error) => Some(Err(format!("cannot read the saved workbook: {error}"))),
        }
    }
}

impl Drop for FileChunks {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A temporary path no other export uses.
fn scratch_path() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "xcore-leads-export-{}-{n}-{}.xlsx",
        std::process::id(),
        now().replace([':', '.'], "")
    ))
}

impl Leads {
    fn export(&self, Query(params): Query<ExportParams>) -> Result<Response, Response> {
        let mut problems = Problems::default();
        params.filter.check("", &mut problems);
        let format = params.format.unwrap_or_else(|| "csv".into());
        if !["csv", "xlsx"].contains(&format.as_str()) {
            problems.add("format", "csv or xlsx");
        }
        problems.finish()?;
        let mut response = if format == "csv" {
            let mut export = CsvExport {
                host: self.host.clone(),
                filter: params.filter,
                header: true,
            };
            keyset::stream(
                "text/csv; charset=utf-8",
                move |after| export.chunk(after),
                reason,
            )?
        } else {
            // On a thread of its own: the writer uses `std::thread::scope`,
            // which registers a thread-local destructor of this library's
            // own std on the calling thread. On a host thread it would run
            // at that thread's exit, after the library is unloaded (a
            // crash when the host stops); a thread that ends here runs it
            // while the library is loaded.
            let host = self.host.clone();
            let filter = params.filter.clone();
            let path = scratch_path();
            let saved = path.clone();
            let outcome = std::thread::spawn(move || save_xlsx(&host, &filter, &saved))
                .join()
                .map_err(|_| Response::plugin_error("the .xlsx writer panicked"));
            if let Err(error) = outcome.and_then(|saved| saved) {
                let _ = std::fs::remove_file(&path);
                return Err(error);
            }
            let file = std::fs::File::open(&path).map_err(|error| {
                let _ = std::fs::remove_file(&path);
                failed(error)
            })?;
            Response::stream(
                200,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                FileChunks { file, path },
            )
        };
        response.headers.push((
            "content-disposition".into(),
            format!("attachment; filename=\"leads.{format}\""),
        ));
        Ok(response)
    }
}

/// The export route.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get("/export", Access::Requires(READ), Leads::export)
        .summary("Export the filtered leads as CSV or .xlsx")
        .doc(|op| {
            op.raw_response(200, "The leads as CSV", "text/csv");
            op.raw_response(
                200,
                "The leads as an Excel workbook",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            );
        })
        // Thousands of rows: off the host's async workers.
        .blocking()
}
