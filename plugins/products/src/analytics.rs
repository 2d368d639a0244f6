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

use serde_json::{json, Map, Value};
use xcore_plugin_api::{Access, Manifest, Request, Response, Router, Row};

use crate::{
    clock, imports,
    suppliers::{self, storage_error},
    Products, READ,
};

/// Entries in `recent_activity`.
const RECENT: i64 = 10;

/// Adds this part's declarations (none: it reads the other parts' tables).
pub fn declare(manifest: Manifest) -> Manifest {
    manifest
}

/// This part's routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router.get("/analytics/dashboard", Access::Requires(READ), dashboard)
}

fn dashboard(products: &Products, _request: &Request) -> Result<Response, Response> {
    // A dashboard is what people leave open: a good place to notice an
    // import whose run died with the host.
    imports::resume_interrupted(products);
    let total_products = suppliers::count(products, "SELECT COUNT(*) AS n FROM products", vec![])?;
    let active_suppliers = suppliers::count(
        products,
        "SELECT COUNT(*) AS n FROM products_suppliers WHERE status = 'active'",
        vec![],
    )?;
    let now = clock::now();
    let midnight = format!("{}T00:00:00.000000Z", &now[..10]);
    let imports_today = suppliers::count(
        products,
        "SELECT COUNT(*) AS n FROM products_imports WHERE created_at >= $1",
        vec![midnight.into()],
    )?;
    let completed = suppliers::count(
        products,
        "SELECT COUNT(*) AS n FROM products_imports WHERE status = 'completed'",
        vec![],
    )?;
    let failed = suppliers::count(
        products,
        "SELECT COUNT(*) AS n FROM products_imports WHERE status = 'failed'",
        vec![],
    )?;
    let recent = products
        .host
        .query(
            "SELECT i.id, i.status, i.filename, i.rows_total, i.rows_imported, i.rows_skipped,
                    i.rows_failed, i.error, i.created_at, i.started_at, i.finished_at, s.name AS supplier
             FROM products_imports i JOIN products_suppliers s ON s.id = i.supplier_id
             ORDER BY i.updated_at DESC, i.id DESC LIMIT $1",
            vec![RECENT.into()],
        )
        .map_err(storage_error(products))?;
    Ok(Response::json(
        200,
        &json!({
            "total_products": total_products,
            "active_suppliers": active_suppliers,
            "imports_today": imports_today,
            "imports_success_rate": success_rate(completed, failed),
            "recent_activity": recent.iter().map(activity).collect::<Vec<_>>(),
        }),
    ))
}

/// Percent of finished imports that completed, one decimal.
fn success_rate(completed: i64, failed: i64) -> Value {
    match completed + failed {
        0 => Value::Null,
        finished => json!(((completed as f64) * 1000.0 / (finished as f64)).round() / 10.0),
    }
}

/// One import as an activity entry.
fn activity(row: &Row) -> Value {
    let text = |name: &str| row.get(name).and_then(Value::as_str).unwrap_or_default();
    let number = |name: &str| row.get(name).and_then(Value::as_i64).unwrap_or(0);
    let supplier = text("supplier");
    let (kind, timestamp, details) = match text("status") {
        "completed" => (
            "import.completed",
            text("finished_at"),
            format!(
                "Import from {supplier}: {} products ({} skipped, {} failed)",
                number("rows_imported"),
                number("rows_skipped"),
                number("rows_failed")
            ),
        ),
        "failed" => (
            "import.failed",
            text("finished_at"),
            format!("Import from {supplier} failed: {}", text("error")),
        ),
        "running" => (
            "import.started",
            text("started_at"),
            format!(
                "Import from {supplier} started: {} rows",
                number("rows_total")
            ),
        ),
        _ => (
            "import.created",
            text("created_at"),
            format!(
                "File {} uploaded for {supplier}: {} rows",
                text("filename"),
                number("rows_total")
            ),
        ),
    };
    json!({
        "type": kind,
        "timestamp": timestamp,
        "details": details,
        "import_id": row.get("id"),
    })
}

/// OpenAPI `paths` for this part's routes, relative to the prefix.
pub fn openapi_paths() -> Map<String, Value> {
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": suppliers::error_schema()}}});
    let mut paths = Map::new();
    paths.insert(
        "/analytics/dashboard".into(),
        json!({"get": {
            "summary": "Dashboard figures", "tags": ["analytics"],
            "responses": {
                "200": {"description": "The figures", "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {
                        "total_products": {"type": "integer"},
                        "active_suppliers": {"type": "integer"},
                        "imports_today": {"type": "integer", "description": "Created since 00:00 UTC"},
                        "imports_success_rate": {"type": ["number", "null"], "description": "Percent of finished imports that completed; null while none has finished"},
                        "recent_activity": {"type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string", "enum": ["import.created", "import.started", "import.completed", "import.failed"]},
                                "timestamp": {"type": "string", "format": "date-time"},
                                "details": {"type": "string"},
                                "import_id": {"type": "integer"}
                            }
                        }}
                    }
                }}}},
                "401": error("Not authenticated"),
                "403": error("Needs products:read")
            }
        }}),
    );
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_is_null_until_an_import_finishes() {
        assert_eq!(success_rate(0, 0), Value::Null);
        assert_eq!(success_rate(2, 1), json!(66.7));
        assert_eq!(success_rate(5, 0), json!(100.0));
    }
}
