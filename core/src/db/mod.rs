//! The database: one sqlx `AnyPool` over SQLite (the embedded default) or
//! PostgreSQL, chosen by URL.
//!
//! All SQL is written once, with `$1`-style placeholders that both drivers
//! accept, and sticks to types both dialects decode the same way through the
//! Any driver: BIGINT integers and TEXT. Flags are BOOLEAN in PostgreSQL but
//! INTEGER in SQLite (the Any driver cannot decode SQLite's BOOLEAN), so
//! they are read with [`flag`]; binding a Rust `bool` and writing `= TRUE`
//! work on both. Timestamps are TEXT in one
//! fixed RFC 3339 UTC format (see [`timestamp`]), so they sort and compare
//! correctly as strings on both. Where the dialects truly differ (DDL), the
//! migration carries one script per dialect.
//!
//! A connection never goes back to the pool inside a transaction: see
//! `discard_if_in_transaction`, which every release passes through, so
//! a failed BEGIN, statement, COMMIT or ROLLBACK on any transaction path
//! costs one connection, not every later write.

pub mod migrate;
pub mod timestamp;

use std::{
    path::Path,
    str::FromStr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions, AnyRow},
    pool::PoolConnectionMetadata,
    Any, AnyPool, ConnectOptions, Connection, Executor, Row, Transaction,
};

use crate::config::{redact_url, DatabaseConfig};

/// SQL dialect behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A connection pool and the dialect it speaks.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    /// The URL connected to (with its credentials): plugins' confined pools
    /// open the same database. Never logged (see the `Debug` impl).
    url: std::sync::Arc<str>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("dialect", &self.dialect)
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

/// Pragmas every SQLite connection needs: referential integrity (off by
/// default in SQLite) and the durability level WAL is designed for.
const SQLITE_CONNECTION_PRAGMAS: &str = "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// Waiting on a locked database instead of failing at once; set on every
/// SQLite connection, and set back after a readiness probe shortened it.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// A readiness probe's lock wait: long enough for an ordinary write to
/// finish, short enough that a held lock answers 503 well within a load
/// balancer's probe timeout instead of hanging for the full busy timeout.
const SQLITE_PROBE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 500";

/// The same wait on PostgreSQL, where a probe's statements also get a
/// ceiling (transaction-local: they end with the probe's transaction).
const POSTGRES_PROBE_TIMEOUTS: &str =
    "SELECT set_config('lock_timeout', '500ms', true), set_config('statement_timeout', '1500ms', true)";

/// The readiness checks, in the order a probe runs them: a pooled
/// connection, a read of a real table (what `SELECT 1` never does: it
/// touches neither the file nor any lock), and the start of a write
/// transaction.
pub const PROBE_CHECKS: [&str; 3] = ["database_connection", "database_read", "database_write"];

/// A failed readiness check.
#[derive(Clone, Debug)]
pub struct ProbeFailure {
    /// Which check failed: one of [`PROBE_CHECKS`].
    pub check: &'static str,
    /// What went wrong, for the log; never sent to clients.
    pub error: String,
}

impl Database {
    /// Connects, creating the SQLite file and its directory when missing.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if config.url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        let url = match dialect {
            Dialect::Sqlite => prepare_sqlite_url(&config.url)?,
            Dialect::Postgres => config.url.clone(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("invalid database URL {}", redact_url(&config.url)))?
            .log_statements(tracing::log::LevelFilter::Debug)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
            .after_release(|connection, metadata| {
                Box::pin(discard_if_in_transaction(connection, metadata))
            });
        if dialect == Dialect::Sqlite {
            pool_options = pool_options.after_connect(|connection, _| {
                Box::pin(async move {
                    connection.execute(SQLITE_CONNECTION_PRAGMAS).await?;
                    connection.execute(SQLITE_BUSY_TIMEOUT).await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to {}", redact_url(&config.url)))?;
        if dialect == Dialect::Sqlite {
            switch_to_wal(&pool).await?;
        }
        Ok(Self {
            pool,
            dialect,
            url: url.into(),
        })
    }

    /// The URL connected to, credentials included: for opening other
    /// connections to the same database, never for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`, taking the write lock up front: a
    /// deferred transaction that reads and then writes cannot wait for the
    /// lock when another writer committed in between (SQLITE_BUSY_SNAPSHOT,
    /// "database is locked" at once, whatever the busy timeout). Taking it at
    /// BEGIN makes concurrent writers queue on the busy timeout instead.
    ///
    /// Whatever fails (the BEGIN, a statement, the COMMIT), the connection
    /// is checked when it goes back to the pool and closed if it is still
    /// inside a transaction (`discard_if_in_transaction`).
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    /// The dialect, for the few statements that differ.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Checks, cheaply, that requests would succeed: a pooled connection, a
    /// read of a real table, and the start of a write transaction (SQLite:
    /// `BEGIN IMMEDIATE`, which takes the write lock, then ROLLBACK;
    /// PostgreSQL: an id is assigned, which a read-only or standby server
    /// refuses). Lock waits are short (500 ms), so a held lock fails the
    /// probe quickly; `deadline` bounds the whole probe.
    pub async fn probe(&self, deadline: Duration) -> Result<(), ProbeFailure> {
        let stage = Arc::new(AtomicUsize::new(0));
        // Spawned so the probe always runs to its end, even when the caller
        // gives up or its client disconnects: a SQLite connection must not
        // go back to the pool with the probe's short busy timeout.
        let task = tokio::spawn(run_probe(self.clone(), stage.clone()));
        let error = match tokio::time::timeout(deadline, task).await {
            Ok(Ok(outcome)) => return outcome,
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", deadline.as_millis()),
        };
        Err(ProbeFailure {
            check: probe_check(stage.load(Ordering::Acquire)),
            error,
        })
    }

    /// Closes every connection, waiting for checked-out ones to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The pool's release check: closes a connection that comes back still
/// inside a transaction instead of handing it to the next caller.
///
/// sqlx counts transaction depth itself and only lowers the count when its
/// COMMIT or ROLLBACK succeeds. After some errors (SQLITE_FULL, SQLITE_IOERR,
/// SQLITE_NOMEM, SQLITE_INTERRUPT) SQLite may roll the whole transaction back
/// on its own; the ROLLBACK a dropped transaction sends then fails with "no
/// transaction is active" and the count stays at one. Such a connection
/// refuses every later `begin_with` ("attempted to call begin_with at
/// non-zero transaction depth"): on a full disk, every write failed until a
/// restart, long after space was freed. Closing it lets the pool open a
/// clean one; closing also ends whatever transaction really is open, on
/// either database.
pub(crate) async fn discard_if_in_transaction<C: Connection>(
    connection: &mut C,
    _: PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if !connection.is_in_transaction() {
        return Ok(true);
    }
    // A dropped transaction queues its ROLLBACK (SQLite's worker thread runs
    // it later, in order): a round trip lets it finish before judging. This
    // only happens after a transaction ended without commit.
    connection.ping().await?;
    if connection.is_in_transaction() {
        tracing::warn!(
            "a database connection came back inside a transaction (its rollback failed); \
             closing it"
        );
        return Ok(false);
    }
    Ok(true)
}

fn probe_check(stage: usize) -> &'static str {
    PROBE_CHECKS[stage.min(PROBE_CHECKS.len() - 1)]
}

/// Runs the readiness checks, recording in `stage` which one is under way.
async fn run_probe(db: Database, stage: Arc<AtomicUsize>) -> Result<(), ProbeFailure> {
    let failed = |stage: usize| {
        move |error: sqlx::Error| ProbeFailure {
            check: probe_check(stage),
            error: error.to_string(),
        }
    };
    let mut connection = db.pool.acquire().await.map_err(failed(0))?;
    stage.store(1, Ordering::Release);
    match db.dialect {
        Dialect::Sqlite => {
            let outcome = match connection.execute(SQLITE_PROBE_BUSY_TIMEOUT).await {
                Ok(_) => {
                    async {
                        sqlx::query("SELECT 1 FROM users LIMIT 1")
                            .fetch_optional(&mut *connection)
                            .await
                            .map_err(failed(1))?;
                        stage.store(2, Ordering::Release);
                        connection
                            .begin_with("BEGIN IMMEDIATE")
                            .await
                            .map_err(failed(2))?
                            .rollback()
                            .await
                            .map_err(failed(2))
                    }
                    .await
                }
                Err(error) => Err(failed(1)(error)),
            };
            if let Err(error) = connection.execute(SQLITE_BUSY_TIMEOUT).await {
                tracing::warn!(%error, "cannot restore a probed connection's busy timeout; closing it");
                // Closing is what matters; its own error adds nothing.
                let _ = connection.close().await;
            }
            outcome
        }
        Dialect::Postgres => {
            let mut tx = connection.begin().await.map_err(failed(1))?;
            sqlx::query(POSTGRES_PROBE_TIMEOUTS)
                .execute(&mut *tx)
                .await
                .map_err(failed(1))?;
            sqlx::query("SELECT 1 FROM users LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed(1))?;
            stage.store(2, Ordering::Release);
            sqlx::query("SELECT txid_current()")
                .execute(&mut *tx)
                .await
                .map_err(failed(2))?;
            tx.rollback().await.map_err(failed(2))
        }
    }
}

/// The file path of a `sqlite:` URL; `None` for an in-memory database.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Adds `mode=rwc` (create if missing) and creates the parent directory.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    if let Some(parent) = sqlite_path(url)
        .and_then(|path| Path::new(path).parent())
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create database directory {}", parent.display()))?;
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Reads a flag column: BOOLEAN in PostgreSQL, INTEGER 0/1 in SQLite.
pub fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    row.try_get::<bool, _>(column)
        .or_else(|_| row.try_get::<i64, _>(column).map(|value| value != 0))
}

/// Numbers `$n` placeholders while a dynamic statement is assembled, so
/// optional filters can be appended in any combination.
#[derive(Debug, Default)]
pub struct Placeholders(usize);

impl Placeholders {
    /// The next placeholder (`$1`, `$2`, ...).
    pub fn next_placeholder(&mut self) -> String {
        self.0 += 1;
        format!("${}", self.0)
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern and wraps the
/// needle for a substring match, lower-cased for case-insensitive search.
pub fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for ch in needle.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// WAL is a property of the file, so setting it once is enough; it lets
/// readers proceed while a writer commits. Changing the journal mode needs
/// the file to itself: when another pool is doing the same on a new file,
/// SQLite answers "database is locked" at once (the busy timeout does not
/// apply) or leaves the mode unchanged, so the answer is checked and the
/// switch retried for a few seconds.
async fn switch_to_wal(pool: &AnyPool) -> anyhow::Result<()> {
    let mut attempt: u64 = 0;
    loop {
        let outcome: Result<String, sqlx::Error> = sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(pool)
            .await;
        let retry = match outcome {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => format!("journal mode stayed {mode}"),
            Err(sqlx::Error::Database(error)) if error.message().contains("locked") => {
                error.message().to_string()
            }
            Err(error) => return Err(error).context("cannot switch SQLite to WAL"),
        };
        attempt += 1;
        if attempt >= 50 {
            anyhow::bail!("cannot switch SQLite to WAL: {retry}");
        }
        tokio::time::sleep(Duration::from_millis(20 * attempt.min(10))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/nested/x.db", dir.path().display());
        assert!(prepare_sqlite_url(&url)
            .expect("prepared")
            .ends_with("x.db?mode=rwc"));
        assert!(dir.path().join("nested").is_dir());
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:?cache=shared").expect("prepared"),
            "sqlite::memory:?cache=shared&mode=rwc"
        );
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}
