//! Purge: the plugin's tables dropped in an order their dependencies
//! allow.

use sqlx::Row;

use crate::error::ApiError;

/// Drops the tables and views a plugin's SQL may own: `<id>` and `<id>_*`
/// (see [`super::sql_guard`]), whatever order their dependencies need.
pub(super) async fn drop_plugin_tables(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    dialect: crate::db::Dialect,
    id: &str,
) -> Result<(), ApiError> {
    let pattern = format!("{}\\_%", id.replace('_', "\\_"));
    // Names come from the catalogue but are spliced into DDL: only plain
    // identifiers are ever dropped.
    let plain = |name: &String| {
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    match dialect {
        crate::db::Dialect::Sqlite => {
            // Views first, then virtual tables (dropping an FTS index drops
            // its shadow tables, which the IF EXISTS below then skips), then
            // the rest; foreign keys between the plugin's own tables are
            // checked at commit, when all of them are gone.
            let objects: Vec<(String, String)> = sqlx::query(
                "SELECT name, type FROM sqlite_master \
                 WHERE type IN ('table', 'view') AND (name = $1 OR name LIKE $2 ESCAPE '\\') \
                 ORDER BY CASE WHEN type = 'view' THEN 0 \
                 WHEN sql LIKE 'CREATE VIRTUAL TABLE%' THEN 1 ELSE 2 END, name",
            )
            .bind(id)
            .bind(&pattern)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("type")?)))
            .collect::<Result<_, sqlx::Error>>()?;
            sqlx::query("PRAGMA defer_foreign_keys = ON")
                .execute(&mut **tx)
                .await?;
            for (name, kind) in objects.iter().filter(|(name, _)| plain(name)) {
                let kind = if kind == "view" { "VIEW" } else { "TABLE" };
                sqlx::query(&format!("DROP {kind} IF EXISTS {name}"))
                    .execute(&mut **tx)
                    .await?;
            }
        }
        crate::db::Dialect::Postgres => {
            for (kind, catalogue, column) in [
                ("VIEW", "pg_views", "viewname"),
                ("TABLE", "pg_tables", "tablename"),
            ] {
                let names: Vec<String> = sqlx::query(&format!(
                    "SELECT {column}::text AS name FROM {catalogue} \
                     WHERE schemaname = current_schema() \
                     AND ({column} = $1 OR {column} LIKE $2 ESCAPE '\\')"
                ))
                .bind(id)
                .bind(&pattern)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|row| row.try_get("name"))
                .collect::<Result<_, _>>()?;
                let names: Vec<&str> = names
                    .iter()
                    .filter(|n| plain(n))
                    .map(String::as_str)
                    .collect();
                if !names.is_empty() {
                    // One statement, CASCADE: foreign keys and sequences
                    // between the plugin's own tables never block the drop.
                    sqlx::query(&format!(
                        "DROP {kind} IF EXISTS {} CASCADE",
                        names.join(", ")
                    ))
                    .execute(&mut **tx)
                    .await?;
                }
            }
            crate::plugins::confinement::postgres_roles::forget(tx, id)
                .await
                .map_err(|error| {
                    ApiError::internal(anyhow::anyhow!(
                        "cannot drop plugin {id}'s database role: {error}"
                    ))
                })?;
        }
    }
    Ok(())
}
