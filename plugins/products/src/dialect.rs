//! The few statements that differ between the host's databases (reading a
//! JSON array parameter as rows); the dialect itself comes from the host
//! ([`xcore_plugin_api::Host::dialect`]).

pub use xcore_plugin_api::Dialect;

/// A subquery yielding the elements of the JSON array bound at placeholder
/// `param` as rows of one column `value` (text, or `BIGINT` with
/// `as_integer`): one parameter for any number of values, instead of
/// thousands of placeholders.
pub fn json_array_rows(dialect: Dialect, param: usize, as_integer: bool) -> String {
    match (dialect, as_integer) {
        (Dialect::Sqlite, _) => format!("SELECT value FROM json_each(${param})"),
        (Dialect::Postgres, false) => {
            format!("SELECT value FROM json_array_elements_text(${param}::json)")
        }
        (Dialect::Postgres, true) => format!(
            "SELECT CAST(value AS BIGINT) AS value FROM json_array_elements_text(${param}::json)"
        ),
    }
}
