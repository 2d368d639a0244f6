//! What a failed plugin statement tells the plugin: the kind of failure the
//! database reported ([`HostError`]), with the column or constraint it
//! names, and never the database's own text, which goes to the host's log
//! (with the request's span, so its request id) for whoever investigates.

use sqlx::error::ErrorKind;
use xcore_plugin_sdk::HostError;

/// Classifies `error` from a statement of `plugin`, and logs it in full.
pub fn classify(plugin: &str, error: sqlx::Error) -> HostError {
    let classified = match &error {
        sqlx::Error::Database(database) => {
            let constraint = database.constraint().map(str::to_string);
            let message = database.message();
            match database.kind() {
                ErrorKind::UniqueViolation => HostError::UniqueViolation {
                    column: sqlite_column(message).or_else(|| postgres_key_column(&error)),
                    constraint,
                },
                ErrorKind::ForeignKeyViolation => HostError::ForeignKeyViolation { constraint },
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    HostError::CheckViolation {
                        column: sqlite_column(message)
                            .or_else(|| database.column_name())
                            .or(constraint),
                    }
                }
                // PostgreSQL's insufficient_privilege: the plugin's role
                // reached outside what it was granted.
                _ if database.code().as_deref() == Some("42501") => HostError::Refused {
                    reason: message.to_string(),
                },
                // SQLSTATE (five characters, PostgreSQL) class 22, data exception: a value the column
                // cannot take (bad encoding, out of range, malformed
                // number or date): the client's data, so a 422.
                _ if database
                    .code()
                    .is_some_and(|code| code.len() == 5 && code.starts_with("22")) =>
                {
                    HostError::CheckViolation {
                        column: database.column_name(),
                    }
                }
                _ => HostError::Other {
                    message: "the database refused the statement".into(),
                },
            }
        }
        sqlx::Error::PoolTimedOut => HostError::Timeout {
            message: "no database connection was free in time".into(),
        },
        _ => HostError::Other {
            message: "the database failed".into(),
        },
    };
    tracing::warn!(plugin, %error, kind = ?classified, "plugin statement failed");
    classified
}

/// SQLite names the columns: `UNIQUE constraint failed: items.sku`, or
/// `NOT NULL constraint failed: items.name`; the first column is kept.
fn sqlite_column(message: &str) -> Option<String> {
    let (_, columns) = message.split_once("constraint failed: ")?;
    let first = columns.split(',').next()?.trim();
    let column = first.rsplit('.').next()?;
    (!column.is_empty()).then(|| column.to_string())
}

/// PostgreSQL names the key in the detail: `Key (sku)=(A-1) already exists.`
fn postgres_key_column(error: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(database) = error else {
        return None;
    };
    let postgres = database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    let detail = postgres.detail()?;
    let inside = detail.strip_prefix("Key (")?.split_once(")=")?.0;
    let first = inside.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.trim_matches('"').to_string())
}

/// The column a database error names, where the driver exposes it.
trait ColumnName {
    fn column_name(&self) -> Option<String>;
}

impl ColumnName for Box<dyn sqlx::error::DatabaseError> {
    fn column_name(&self) -> Option<String> {
        self.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|postgres| postgres.column())
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_column;

    #[test]
    fn sqlite_messages_name_the_first_column() {
        assert_eq!(
            sqlite_column("UNIQUE constraint failed: products_items.sku").as_deref(),
            Some("sku")
        );
        assert_eq!(
            sqlite_column("UNIQUE constraint failed: t.a, t.b").as_deref(),
            Some("a")
        );
        assert_eq!(sqlite_column("FOREIGN KEY constraint failed"), None);
    }
}
