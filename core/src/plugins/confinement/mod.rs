//! A plugin's own way into the database, confined by the database itself.
//!
//! Every plugin generation gets a [`PluginDatabase`]: a small pool of
//! connections of its own, on which its migrations and all its runtime SQL
//! run, and nothing else.
//!
//! - SQLite: each connection carries an authorizer ([`sqlite_authorizer`])
//!   that SQLite consults while compiling every statement, after it has
//!   resolved names, so quoting, parentheses, CTE or window names, views,
//!   triggers and pragma functions are all seen for what they touch.
//! - PostgreSQL: the connections log in as the plugin's own role
//!   ([`postgres_roles`]), which owns the plugin's tables, may read its
//!   dependencies' and nothing else; `SET ROLE` or `set_config('role', ..)`
//!   cannot climb out of a login role that is a member of nothing.
//!
//! The lexical check of `sql_guard` still runs first, for early messages
//! that name the table; this module is what holds when it is parsed around.
//!
//! Parameters bind from JSON: null, bool, integer, float, string; arrays and
//! objects bind as their JSON text. On PostgreSQL a null binds as a text
//! null (sqlx's Any driver has no untyped null), so a plugin casts it where
//! the column is not text (`CAST($1 AS BIGINT)`); each combination of kinds
//! gets its own prepared statement ([`keyed_sql`]). Rows come back as JSON
//! objects.

mod failures;
pub mod namespace;
pub mod postgres_roles;
pub mod sqlite_authorizer;

use std::{str::FromStr, sync::Arc, time::Duration};

use serde_json::{Map, Number, Value};
use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions, AnyRow},
    sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow, SqliteSynchronous},
    Any, AnyPool, Column, ConnectOptions, Connection, Executor, Row, Sqlite, SqlitePool, TypeInfo,
    ValueRef,
};
use xcore_plugin_sdk::{Executed, HostError, Statement};

use failures::classify;
pub use namespace::Namespace;
use sqlite_authorizer::Mode;

use crate::db::{
    migrate::{self, Migration},
    Database, Dialect,
};

/// Connections one plugin generation may hold at once.
const MAX_CONNECTIONS: u32 = 4;
/// An idle plugin connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a plugin statement waits for SQLite's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One plugin generation's confined access to the host database.
#[derive(Clone, Debug)]
pub struct PluginDatabase {
    namespace: Arc<Namespace>,
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres {
        pool: AnyPool,
        role: postgres_roles::PluginRole,
    },
}

impl PluginDatabase {
    /// Prepares the plugin's confinement (on PostgreSQL its role and
    /// grants) and a lazy pool; nothing connects until the first statement.
    /// `secret` derives the PostgreSQL role's password, so every host
    /// instance sharing the configuration derives the same one.
    pub async fn open(host: &Database, namespace: Namespace, secret: &str) -> Result<Self, String> {
        let namespace = Arc::new(namespace);
        let backend = match host.dialect() {
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(host.url())
                    .map_err(|error| format!("invalid SQLite URL: {error}"))?
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .synchronous(SqliteSynchronous::Normal)
                    .log_statements(tracing::log::LevelFilter::Debug);
                let policy = namespace.clone();
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .min_connections(0)
                    .idle_timeout(IDLE_TIMEOUT)
                    // As on the host's pool: never hand out a connection
                    // stuck inside a transaction SQLite already ended.
                    .after_release(|connection, metadata| {
                        Box::pin(crate::db::discard_if_in_transaction(connection, metadata))
                    })
                    .after_connect(move |connection, _| {
                        let policy = policy.clone();
                        Box::pin(
                            async move { sqlite_authorizer::install(connection, policy).await },
                        )
                    })
                    .connect_lazy_with(options);
                Backend::Sqlite(pool)
            }
            Dialect::Postgres => {
                let role = postgres_roles::prepare(host, &namespace, secret).await?;
                let options = AnyConnectOptions::from_str(&role.login_url(host.url())?)
                    .map_err(|error| format!("invalid PostgreSQL URL: {error}"))?
                    .log_statements(tracing::log::LevelFilter::Debug);
                let pool = AnyPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .min_connections(0)
                    .idle_timeout(IDLE_TIMEOUT)
                    .after_release(|connection, metadata| {
                        Box::pin(crate::db::discard_if_in_transaction(connection, metadata))
                    })
                    .connect_lazy_with(options);
                Backend::Postgres { pool, role }
            }
        };
        Ok(Self { namespace, backend })
    }

    /// Applies the plugin's pending migrations as the plugin: schema
    /// changes to its own tables only, checked by the database.
    pub async fn migrate(
        &self,
        host: &Database,
        migrations: &[Migration<'_>],
    ) -> Result<usize, String> {
        let owner = format!("plugin:{}", self.namespace.owner());
        // On a restart: no connection of its own, no write lock, and on
        // PostgreSQL no advisory lock or CREATE grant.
        if migrate::all_applied(host, &owner, migrations).await {
            return Ok(0);
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut connection = pool.acquire().await.map_err(|e| e.to_string())?.detach();
                let outcome =
                    migrate_sqlite(&mut connection, &self.namespace, &owner, migrations).await;
                // Statements compiled in migration mode stay in the
                // connection's cache: the connection is not reused.
                let _ = connection.close().await;
                outcome
            }
            Backend::Postgres { pool, role } => role.migrate(host, pool, &owner, migrations).await,
        }
    }

    /// Runs one statement and returns its rows as JSON objects.
    pub async fn query(&self, statement: &Statement) -> Result<Value, HostError> {
        let owner = self.namespace.owner();
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut connection = pool.acquire().await.map_err(|e| classify(owner, e))?;
                let rows = bind_sqlite(statement)?.fetch_all(&mut *connection).await;
                match rows {
                    Ok(rows) => sqlite_rows_to_json(&rows).map_err(unreadable),
                    Err(error) => Err(refusal_or(owner, &mut connection, error).await),
                }
            }
            Backend::Postgres { pool, .. } => {
                let sql = keyed_sql(statement);
                let rows = bind_any(&sql, statement)?
                    .fetch_all(pool)
                    .await
                    .map_err(|e| classify(owner, e))?;
                any_rows_to_json(&rows).map_err(unreadable)
            }
        }
    }

    /// Runs one statement; the rows it changed and, on SQLite, the rowid
    /// it inserted last.
    pub async fn execute(&self, statement: &Statement) -> Result<Executed, HostError> {
        let owner = self.namespace.owner();
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut connection = pool.acquire().await.map_err(|e| classify(owner, e))?;
                let done = bind_sqlite(statement)?.execute(&mut *connection).await;
                match done {
                    Ok(done) => Ok(Executed {
                        rows_affected: done.rows_affected(),
                        // SQLite's last rowid is the connection's, so it is
                        // this statement's only when this statement inserted.
                        last_insert_id: (done.rows_affected() > 0 && inserts(&statement.sql))
                            .then(|| done.last_insert_rowid()),
                    }),
                    Err(error) => Err(refusal_or(owner, &mut connection, error).await),
                }
            }
            Backend::Postgres { pool, .. } => {
                let sql = keyed_sql(statement);
                let done = bind_any(&sql, statement)?
                    .execute(pool)
                    .await
                    .map_err(|e| classify(owner, e))?;
                Ok(Executed {
                    rows_affected: done.rows_affected(),
                    last_insert_id: None,
                })
            }
        }
    }

    /// Runs `statements` in one write transaction: all or nothing (the
    /// transaction is rolled back when any statement fails).
    pub async fn transaction(&self, statements: &[Statement]) -> Result<Value, HostError> {
        let owner = self.namespace.owner();
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut connection = pool.acquire().await.map_err(|e| classify(owner, e))?;
                let outcome = sqlite_transaction(&mut connection, statements).await;
                match outcome {
                    Ok(results) => Ok(results),
                    Err(Failure::Sql(error)) => {
                        Err(refusal_or(owner, &mut connection, error).await)
                    }
                    Err(Failure::Other(error)) => Err(error),
                }
            }
            Backend::Postgres { pool, .. } => {
                let mut tx = pool.begin().await.map_err(|e| classify(owner, e))?;
                let mut results = Vec::with_capacity(statements.len());
                for statement in statements {
                    let sql = keyed_sql(statement);
                    let rows = bind_any(&sql, statement)?
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| classify(owner, e))?;
                    results.push(any_rows_to_json(&rows).map_err(unreadable)?);
                }
                tx.commit().await.map_err(|e| classify(owner, e))?;
                Ok(Value::Array(results))
            }
        }
    }
}

/// Whether a statement is an insert (`INSERT`, `REPLACE`, `INSERT OR ...`).
fn inserts(sql: &str) -> bool {
    sql.split_whitespace().next().is_some_and(|verb| {
        verb.eq_ignore_ascii_case("insert") || verb.eq_ignore_ascii_case("replace")
    })
}

/// A row the host could not turn into JSON (a column type it does not
/// map): the host's limit, said plainly.
fn unreadable(message: String) -> HostError {
    HostError::Other { message }
}

/// Why a SQLite transaction failed: the database (maybe the authorizer),
/// or something on the host's side.
enum Failure {
    Sql(sqlx::Error),
    Other(HostError),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

async fn sqlite_transaction(
    connection: &mut sqlx::SqliteConnection,
    statements: &[Statement],
) -> Result<Value, Failure> {
    // Dropping `tx` on an early return rolls the transaction back before
    // the connection goes back to the pool.
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(statements.len());
    for statement in statements {
        let rows = bind_sqlite(statement)
            .map_err(Failure::Other)?
            .fetch_all(&mut *tx)
            .await?;
        results.push(sqlite_rows_to_json(&rows).map_err(|e| Failure::Other(unreadable(e)))?);
    }
    tx.commit().await?;
    Ok(Value::Array(results))
}

/// The error a failed SQLite plugin statement reports: when the authorizer
/// refused it, the refusal (which names the table) instead of SQLite's
/// "not authorized".
async fn refusal_or(
    plugin: &str,
    connection: &mut sqlx::SqliteConnection,
    error: sqlx::Error,
) -> HostError {
    // Taken whatever the error, so no refusal outlives its statement.
    let refusal = sqlite_authorizer::take_refusal(connection).await;
    match refusal {
        Some(reason) if is_authorization_error(&error) => {
            tracing::warn!(plugin, reason = reason.as_str(), "plugin statement refused");
            HostError::Refused { reason }
        }
        _ => classify(plugin, error),
    }
}

/// SQLITE_AUTH (23): the authorizer said no.
fn is_authorization_error(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|code| code == "23"))
}

/// The plugin's migrations on a SQLite connection of its own pool: the
/// scripts run in migration mode, the ledger statements in host mode,
/// uncached, each migration in one `BEGIN IMMEDIATE` transaction.
async fn migrate_sqlite(
    connection: &mut sqlx::SqliteConnection,
    namespace: &Namespace,
    owner: &str,
    migrations: &[Migration<'_>],
) -> Result<usize, String> {
    let fail = |e: sqlx::Error| e.to_string();
    sqlite_authorizer::set_mode(connection, Mode::Host)
        .await
        .map_err(fail)?;
    sqlx::query(migrate::LEDGER_DDL)
        .persistent(false)
        .execute(&mut *connection)
        .await
        .map_err(fail)?;
    let mut applied = 0;
    for migration in migrations {
        let checksum = migrate::script_checksum(migration.sqlite);
        sqlite_authorizer::set_mode(connection, Mode::Host)
            .await
            .map_err(fail)?;
        let mut tx = connection
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(fail)?;
        let recorded: Option<String> = sqlx::query_scalar(migrate::RECORDED_CHECKSUM)
            .bind(owner)
            .bind(migration.version)
            .persistent(false)
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
        if let Some(recorded) = recorded {
            if recorded != checksum {
                return Err(migrate::changed_after_applied(owner, migration));
            }
            continue;
        }
        let names_before = schema_names(&mut tx).await.map_err(fail)?;
        sqlite_authorizer::set_mode(&mut tx, Mode::Migration)
            .await
            .map_err(fail)?;
        if let Err(error) = (&mut *tx).execute(migration.sqlite).await {
            // For the operator installing it: the refusal, or the
            // database's own words.
            let why = match sqlite_authorizer::take_refusal(&mut tx).await {
                Some(refusal) if is_authorization_error(&error) => refusal,
                _ => match &error {
                    sqlx::Error::Database(database) => database.message().to_string(),
                    other => other.to_string(),
                },
            };
            return Err(format!(
                "migration {owner} v{} ({}) failed: {why}",
                migration.version, migration.name
            ));
        }
        sqlite_authorizer::set_mode(&mut tx, Mode::Host)
            .await
            .map_err(fail)?;
        // The authorizer sees a renamed table under its old name only: the
        // names the script brought must all be the plugin's.
        let mut problems: Vec<String> = schema_names(&mut tx)
            .await
            .map_err(fail)?
            .into_iter()
            .filter(|name| !names_before.contains(name))
            .filter(|name| !namespace.owns(name) && !name.starts_with("sqlite_"))
            .map(|name| namespace.outside(&name))
            .collect();
        problems.extend(foreign_keys_out(&mut tx, namespace).await.map_err(fail)?);
        if !problems.is_empty() {
            return Err(format!(
                "migration {owner} v{} ({}) is refused: {}",
                migration.version,
                migration.name,
                problems.join("; ")
            ));
        }
        migrate::commit_applied(tx, owner, migration, &checksum)
            .await
            .map_err(fail)?;
        applied += 1;
    }
    Ok(applied)
}

/// Foreign keys from the plugin's tables to anyone else's (host mode,
/// uncached). They are refused: deleting a referenced row would make the
/// other side read and cascade into this plugin's tables, which its own
/// authorizer refuses (and a key to `users` would let a plugin block the
/// host's deletes); PostgreSQL refuses them too, plugins have no
/// `REFERENCES` right on others' tables. A plugin keeps another's ids as
/// plain columns and follows its events.
async fn foreign_keys_out(
    connection: &mut sqlx::SqliteConnection,
    namespace: &Namespace,
) -> Result<Vec<String>, sqlx::Error> {
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, f.\"table\" FROM sqlite_master m \
         JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
    )
    .persistent(false)
    .fetch_all(connection)
    .await?;
    Ok(keys
        .into_iter()
        .filter(|(child, parent)| namespace.owns(child) && !namespace.owns(parent))
        .map(|(child, parent)| {
            format!(
                "table {child} has a foreign key to {}, outside plugin {}'s tables; \
                 keep its ids as plain columns",
                parent.to_ascii_lowercase(),
                namespace.owner()
            )
        })
        .collect())
}

/// Every name in SQLite's catalogue (host mode, uncached).
async fn schema_names(
    connection: &mut sqlx::SqliteConnection,
) -> Result<std::collections::BTreeSet<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master")
        .persistent(false)
        .fetch_all(connection)
        .await?;
    Ok(names.into_iter().collect())
}

/// `sql` with its JSON parameters bound, for either driver.
fn bind<'q, DB>(
    sql: &'q str,
    params: &[Value],
) -> Result<sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>, HostError>
where
    DB: sqlx::Database,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::query::<DB>(sql);
    for param in params {
        query = match param {
            Value::Null => query.bind(None::<String>),
            Value::Bool(flag) => query.bind(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => query.bind(integer),
                None => query.bind(number.as_f64().ok_or_else(|| HostError::Other {
                    message: format!("unsupported number {number}"),
                })?),
            },
            Value::String(text) => query.bind(text.clone()),
            other => query.bind(other.to_string()),
        };
    }
    Ok(query)
}

/// SQLite types each value as it is bound, whatever the statement was
/// first compiled with: the cached statement serves every kind of value.
fn bind_sqlite(
    statement: &Statement,
) -> Result<sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments<'_>>, HostError> {
    bind(&statement.sql, &statement.params)
}

/// The SQL text sent to PostgreSQL: the plugin's, with a trailing comment
/// naming the kind each parameter binds as.
///
/// PostgreSQL fixes a prepared statement's parameter types when it
/// prepares it, and sqlx caches prepared statements per connection by SQL
/// text alone; a statement prepared for a null (bound as text) and run
/// again with an integer would send the integer's binary bytes as text
/// ("invalid byte sequence for encoding UTF8: 0x00"), and an integer's
/// statement run with a text would misread it the other way. With the
/// kinds in the text, each combination gets its own prepared statement:
/// every run behaves as on a fresh connection. A plugin that always binds
/// the same kinds still prepares once; the comment is a few bytes.
fn keyed_sql(statement: &Statement) -> String {
    let mut sql = String::with_capacity(statement.sql.len() + statement.params.len() + 16);
    sql.push_str(&statement.sql);
    if statement.params.is_empty() {
        return sql;
    }
    // On a line of its own: the plugin's SQL may end in a `--` comment.
    sql.push_str("\n/* xcore:params ");
    sql.extend(statement.params.iter().map(|param| match param {
        Value::Null => 'n',
        Value::Bool(_) => 'b',
        Value::Number(number) if number.is_i64() => 'i',
        Value::Number(_) => 'f',
        Value::String(_) => 't',
        Value::Array(_) | Value::Object(_) => 'j',
    }));
    sql.push_str(" */");
    sql
}

/// PostgreSQL text cannot hold NUL: refused here as a value the database
/// refuses (a 422 for the client) rather than the server's encoding error.
/// `sql` is [`keyed_sql`] of `statement`.
fn bind_any<'q>(
    sql: &'q str,
    statement: &Statement,
) -> Result<sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>, HostError> {
    if let Some(index) = statement
        .params
        .iter()
        .position(|param| param.as_str().is_some_and(|text| text.contains('\0')))
    {
        tracing::warn!(
            parameter = index + 1,
            "plugin parameter contains a NUL character, which PostgreSQL text cannot hold"
        );
        return Err(HostError::CheckViolation { column: None });
    }
    bind(sql, &statement.params)
}

/// SQLite rows by each value's storage class.
fn sqlite_rows_to_json(rows: &[SqliteRow]) -> Result<Value, String> {
    rows.iter()
        .map(|row| {
            let mut object = Map::with_capacity(row.columns().len());
            for (index, column) in row.columns().iter().enumerate() {
                let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
                let value = if raw.is_null() {
                    Value::Null
                } else {
                    match raw.type_info().name() {
                        "INTEGER" => Value::from(row.try_get::<i64, _>(index).map_err(|e| e.to_string())?),
                        "REAL" => row
                            .try_get::<f64, _>(index)
                            .ok()
                            .and_then(Number::from_f64)
                            .map_or(Value::Null, Value::Number),
                        "TEXT" => Value::String(row.try_get::<String, _>(index).map_err(|e| e.to_string())?),
                        _ => {
                            return Err(format!(
                                "column {} has a type plugins cannot read; cast it to INTEGER, REAL or TEXT",
                                column.name()
                            ))
                        }
                    }
                };
                object.insert(column.name().to_string(), value);
            }
            Ok(Value::Object(object))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Value::Array)
}

fn any_rows_to_json(rows: &[AnyRow]) -> Result<Value, String> {
    rows.iter()
        .map(|row| {
            let mut object = Map::with_capacity(row.columns().len());
            for (index, column) in row.columns().iter().enumerate() {
                object.insert(column.name().to_string(), any_cell(row, index)?);
            }
            Ok(Value::Object(object))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Value::Array)
}

/// Decodes one cell by trying the types the Any driver can produce.
fn any_cell(row: &AnyRow, index: usize) -> Result<Value, String> {
    if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::from));
    }
    if let Ok(value) = row.try_get::<Option<i32>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::from));
    }
    if let Ok(value) = row.try_get::<Option<f64>, _>(index) {
        return Ok(value
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number));
    }
    if let Ok(value) = row.try_get::<Option<String>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::String));
    }
    if let Ok(value) = row.try_get::<Option<bool>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::Bool));
    }
    Err(format!(
        "column {} has a type plugins cannot read; cast it to BIGINT, DOUBLE PRECISION or TEXT",
        row.columns()[index].name()
    ))
}
