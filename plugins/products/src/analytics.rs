//! The dashboard (seed 000, "Analytics"): `GET /analytics/dashboard`
//! (`products:read`).
//!
//! - `total_products`: every stored product, whatever its status.
//! - `active_suppliers`: suppliers with status `active`.
//! - `imports_today`: import jobs created since 00:00 UTC today (the host
//!   stores and answers UTC; a per-user time zone is not known here).
//! - `imports_success_rate`: percent of finished imports (`completed` or
//!   `failed`) that completed, one decimal; `null` while none has finished
//!   (0 or 100 would both claim something that did not happen). A completed
//!   import may have refused rows: they are in its log, not a failure of
//!   the import.
//! - `recent_activity`: the ten most recently changed imports, newest
//!   first, each as `{type, timestamp, details, import_id}` with `type`
//!   `import.created`, `import.started`, `import.completed` or
//!   `import.failed` (the last thing that happened to it).
//!
//! Each figure is one aggregate query on indexed columns; nothing is
//! cached, so the numbers are as fresh as the request.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{imports, Products, READ};

/// Entries in `recent_activity`.
const RECENT: i64 = 10;

/// This part's routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .get("/analytics/dashboard", Access::Requires(READ), dashboard)
        .summary("Dashboard figures")
}

/// The dashboard's figures.
#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    /// Every stored product.
    total_products: i64,
    /// Suppliers with status `active`.
    active_suppliers: i64,
    /// Imports created since 00:00 UTC.
    imports_today: i64,
    /// Percent of finished imports that completed; null while none has
    /// finished.
    imports_success_rate: Option<f64>,
    /// The ten most recently changed imports, newest first.
    recent_activity: Vec<Activity>,
}

/// The last thing that happened to an import.
#[derive(Serialize, ToSchema)]
pub struct Activity {
    /// `import.created`, `import.started`, `import.completed` or
    /// `import.failed`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// When (RFC 3339, UTC).
    timestamp: Option<String>,
    /// A sentence for people.
    details: String,
    /// The import.
    import_id: i64,
}

/// The columns of an import an activity entry reads.
#[derive(Deserialize)]
struct RecentImport {
    id: i64,
    status: String,
    filename: String,
    rows_total: i64,
    rows_imported: i64,
    rows_skipped: i64,
    rows_failed: i64,
    error: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    supplier: String,
}

fn dashboard(products: &Products) -> Result<Json<Dashboard>, HostError> {
    // A dashboard is what people leave open: a good place to notice an
    // import whose run died with the host.
    imports::resume_interrupted(products);
    let count = |sql: &str, params: Vec<Value>| products.host.query_scalar::<i64>(sql, params);
    let midnight = format!("{}T00:00:00.000000Z", &now()[..10]);
    let completed = count(
        "SELECT COUNT(*) FROM products_imports WHERE status = 'completed'",
        params![],
    )?;
    let failed = count(
        "SELECT COUNT(*) FROM products_imports WHERE status = 'failed'",
        params![],
    )?;
    let recent: Vec<RecentImport> = products.host.query_as(
        "SELECT i.id, i.status, i.filename, i.rows_total, i.rows_imported, i.rows_skipped,
                i.rows_failed, i.error, i.created_at, i.started_at, i.finished_at, s.name AS supplier
         FROM products_imports i JOIN products_suppliers s ON s.id = i.supplier_id
         ORDER BY i.updated_at DESC, i.id DESC LIMIT $1",
        params![RECENT],
    )?;
    Ok(Json(Dashboard {
        total_products: count("SELECT COUNT(*) FROM products", params![])?,
        active_suppliers: count(
            "SELECT COUNT(*) FROM products_suppliers WHERE status = 'active'",
            params![],
        )?,
        imports_today: count(
            "SELECT COUNT(*) FROM products_imports WHERE created_at >= $1",
            params![midnight],
        )?,
        imports_success_rate: success_rate(completed, failed),
        recent_activity: recent.into_iter().map(activity).collect(),
    }))
}

/// Percent of finished imports that completed, one decimal.
fn success_rate(completed: i64, failed: i64) -> Option<f64> {
    match completed + failed {
        0 => None,
        finished => Some(((completed as f64) * 1000.0 / (finished as f64)).round() / 10.0),
    }
}

/// One import as an activity entry.
fn activity(import: RecentImport) -> Activity {
    let supplier = &import.supplier;
    let (kind, timestamp, details) = match import.status.as_str() {
        "completed" => (
            "import.completed",
            import.finished_at,
            format!(
                "Import from {supplier}: {} products ({} skipped, {} failed)",
                import.rows_imported, import.rows_skipped, import.rows_failed
            ),
        ),
        "failed" => (
            "import.failed",
            import.finished_at,
            format!(
                "Import from {supplier} failed: {}",
                import.error.unwrap_or_default()
            ),
        ),
        "running" => (
            "import.started",
            import.started_at,
            format!("Import from {supplier} started: {} rows", import.rows_total),
        ),
        _ => (
            "import.created",
            Some(import.created_at),
            format!(
                "File {} uploaded for {supplier}: {} rows",
                import.filename, import.rows_total
            ),
        ),
    };
    Activity {
        kind,
        timestamp,
        details,
        import_id: import.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_is_null_until_an_import_finishes() {
        assert_eq!(success_rate(0, 0), None);
        assert_eq!(success_rate(2, 1), Some(66.7));
        assert_eq!(success_rate(5, 0), Some(100.0));
    }
}
