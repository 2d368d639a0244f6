//! `GET /export?format=csv|xlsx`: the leads the list filters select (the
//! same query parameters as `GET /`), in id order, as CSV (UTF-8, comma,
//! a header line) or as an Excel `.xlsx` workbook.
//!
//! Rows are read [`EXPORT_BATCH`] at a time by id (keyset, never OFFSET),
//! so the database side and the rows held are bounded whatever the count;
//! the `.xlsx` writer runs in constant-memory mode (rows go through a
//! temporary file, not a sheet in memory). The file itself is built
//! whole: a plugin answers with one body, the SDK has no streamed body
//! across the plugin boundary, so the answer's size is the memory bound
//! (about 40 MB of CSV for 200,000 leads; see BENCHMARKS.md).

use rust_xlsxwriter::Workbook;
use xcore_plugin_sdk::prelude::*;

use crate::{
    filters::LeadFilter,
    leads::{Lead, LEAD_COLUMNS},
    Leads, Problems, READ,
};

/// Leads read per query.
pub const EXPORT_BATCH: i64 = 2000;

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

/// Every lead `filter` selects, in id order, a batch at a time.
fn export_batches(
    host: &Host,
    filter: &LeadFilter,
    mut visit: impl FnMut(&[Lead]) -> Result<(), Response>,
) -> Result<(), Response> {
    let mut after = 0_i64;
    loop {
        let mut clause = filter.clause(host.dialect()?);
        clause.push("l.id > {}", json!(after));
        clause.params.push(json!(EXPORT_BATCH));
        let sql = format!(
            "SELECT {LEAD_COLUMNS} FROM leads l {} ORDER BY id LIMIT ${}",
            clause.sql(),
            clause.params.len()
        );
        let batch: Vec<Lead> = host.query_as(&sql, clause.params)?;
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

/// The CSV of the leads `filter` selects.
fn csv_file(host: &Host, filter: &LeadFilter) -> Result<Vec<u8>, Response> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(HEADER).map_err(failed)?;
    export_batches(host, filter, |batch| {
        for lead in batch {
            let row = cells(lead).map(|cell| match cell {
                Cell::Text(text) => text,
                Cell::Number(number) => number.to_string(),
                Cell::Empty => String::new(),
            });
            writer.write_record(&row).map_err(failed)?;
        }
        Ok(())
    })?;
    writer.into_inner().map_err(failed)
}

/// The `.xlsx` workbook of the leads `filter` selects.
fn xlsx_file(host: &Host, filter: &LeadFilter) -> Result<Vec<u8>, Response> {
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
    workbook.save_to_buffer().map_err(failed)
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
        let (body, content_type) = if format == "csv" {
            (
                csv_file(&self.host, &params.filter)?,
                "text/csv; charset=utf-8",
            )
        } else {
            // On a thread of its own: the writer uses `std::thread::scope`,
            // which registers a thread-local destructor of this library's
            // own std on the calling thread. On a host thread it would run
            // at that thread's exit, after the library is unloaded (a
            // crash when the host stops); a thread that ends here runs it
            // while the library is loaded.
            let host = self.host.clone();
            let filter = params.filter.clone();
            let body = std::thread::spawn(move || xlsx_file(&host, &filter))
                .join()
                .map_err(|_| Response::plugin_error("the .xlsx writer panicked"))??;
            (
                body,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        };
        Ok(Response {
            status: 200,
            headers: vec![
                ("content-type".into(), content_type.into()),
                (
                    "content-disposition".into(),
                    format!("attachment; filename=\"leads.{format}\""),
                ),
            ],
            body,
        })
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
