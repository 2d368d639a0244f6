//! The SQL dialect behind the host's database, for the few statements that
//! differ between SQLite and PostgreSQL (full-text search, reading a JSON
//! array parameter as rows).
//!
//! The host does not say which database it runs; migration 1 records it in
//! `products_meta` (each dialect's script writes its own name), so the
//! plugin reads it once and remembers it.

use std::sync::OnceLock;

use serde_json::Value;
use xcore_plugin_api::{Host, HostError};

/// A SQL dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded SQLite database.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Dialect {
    /// Reads the dialect migration 1 recorded.
    pub fn detect(host: &Host) -> Result<Dialect, HostError> {
        let row = host.query_one(
            "SELECT value FROM products_meta WHERE key = 'dialect'",
            Vec::new(),
        )?;
        match row
            .as_ref()
            .and_then(|row| row.get("value"))
            .and_then(Value::as_str)
        {
            Some("sqlite") => Ok(Dialect::Sqlite),
            Some("postgres") => Ok(Dialect::Postgres),
            other => Err(HostError(format!(
                "products_meta has no known dialect (found {other:?})"
            ))),
        }
    }

    /// The dialect, detected on first use.
    pub fn cached(cell: &OnceLock<Dialect>, host: &Host) -> Result<Dialect, HostError> {
        if let Some(dialect) = cell.get() {
            return Ok(*dialect);
        }
        let dialect = Dialect::detect(host)?;
        Ok(*cell.get_or_init(|| dialect))
    }

    /// A subquery yielding the elements of the JSON array bound at
    /// placeholder `param` as rows of one column `value` (text, or
    /// `BIGINT` with `as_integer`): one parameter for any number of values,
    /// instead of thousands of placeholders.
    pub fn json_array_rows(self, param: usize, as_integer: bool) -> String {
        match (self, as_integer) {
            (Dialect::Sqlite, _) => format!("SELECT value FROM json_each(${param})"),
            (Dialect::Postgres, false) => {
                format!("SELECT value FROM json_array_elements_text(${param}::json)")
            }
            (Dialect::Postgres, true) => format!(
                "SELECT CAST(value AS BIGINT) AS value FROM json_array_elements_text(${param}::json)"
            ),
        }
    }
}
