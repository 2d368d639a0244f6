//! Ordered, checksummed schema migrations for an owner (`core` or, later, a
//! plugin id), each applied in its own transaction and recorded in
//! `xcore_migrations`.
//!
//! Several instances may start at once against one database. On PostgreSQL
//! the whole run holds a session-level advisory lock (even `CREATE TABLE IF
//! NOT EXISTS` races there); on SQLite each migration is a `BEGIN IMMEDIATE`
//! transaction, so runners queue on the write lock. Either way a migration
//! is checked against the ledger inside its own transaction, after the lock,
//! so exactly one instance applies it.
//!
//! A restart usually finds everything applied. [`all_applied`] answers that
//! with one read, before any lock or transaction: it was a write
//! transaction per migration, and per plugin a connection of its own.

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection, Executor, Row};

use super::{timestamp, Database, Dialect};

/// One migration, with a script per dialect.
#[derive(Clone, Copy, Debug)]
pub struct Migration<'a> {
    /// Strictly increasing within an owner.
    pub version: i64,
    /// Short description, recorded.
    pub name: &'a str,
    /// Script for SQLite.
    pub sqlite: &'a str,
    /// Script for PostgreSQL.
    pub postgres: &'a str,
}

impl<'a> Migration<'a> {
    fn script(&self, dialect: Dialect) -> &'a str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// A host migration: its version, what it does, and the file of that name
/// in both `migrations/sqlite/` and `migrations/postgres/`.
macro_rules! core_migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../../migrations/sqlite/", $file)),
            postgres: include_str!(concat!("../../migrations/postgres/", $file)),
        }
    };
}

/// The host's own schema.
pub const CORE_MIGRATIONS: &[Migration<'static>] = &[
    core_migration!(
        1,
        "users, rbac, tokens, password resets, outbox",
        "0001_core.sql"
    ),
    core_migration!(2, "plugin state", "0002_plugins.sql"),
    core_migration!(3, "scheduled tasks and run history", "0003_tasks.sql"),
    core_migration!(
        4,
        "revoked sessions, refresh-token versions",
        "0004_session_revocation.sql"
    ),
    core_migration!(
        5,
        "authentication change counter and log",
        "0005_auth_changes.sql"
    ),
    core_migration!(6, "API keys", "0006_api_keys.sql"),
    core_migration!(7, "audit log", "0007_audit_log.sql"),
    core_migration!(
        8,
        "default grants plugins declared, applied once",
        "0008_permission_defaults.sql"
    ),
    core_migration!(
        9,
        "what the bootstrap admin's start-up check proved",
        "0009_bootstrap_admin_proofs.sql"
    ),
];

/// The ledger of applied migrations, created on first use.
pub const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS xcore_migrations (
    owner TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (owner, version)
)";

/// The checksum recorded for `owner` ($1) and `version` ($2), if applied.
pub const RECORDED_CHECKSUM: &str =
    "SELECT checksum FROM xcore_migrations WHERE owner = $1 AND version = $2";

/// Records `migration` of `owner` as applied in the transaction that ran
/// it, commits, and logs it: the ledger row and the script's effects land
/// together or not at all. Shared by the host's runner and the confined
/// runner of plugin migrations. The statement is not cached: it runs once
/// per migration, and a plugin migration's connection has an authorizer
/// that a cached statement would outlive.
///
/// Generic over the driver because plugin migrations on SQLite run on a
/// native connection (it carries the authorizer), the host's on `Any`.
pub async fn commit_applied<DB>(
    mut tx: sqlx::Transaction<'_, DB>,
    owner: &str,
    migration: &Migration<'_>,
    checksum: &str,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: Executor<'c, Database = DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>(
        "INSERT INTO xcore_migrations (owner, version, name, checksum, applied_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(owner.to_string())
    .bind(migration.version)
    .bind(migration.name.to_string())
    .bind(checksum.to_string())
    .bind(timestamp::now())
    .persistent(false)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        owner,
        version = migration.version,
        name = migration.name,
        "migration applied"
    );
    Ok(())
}

/// Arbitrary constant identifying xcore's migration lock in PostgreSQL.
pub const ADVISORY_LOCK_KEY: i64 = 0x0078_636f_7265;

/// Applies the pending migrations of `owner`; returns how many ran.
/// Refuses to proceed when an applied migration's script has since changed.
pub async fn apply(
    db: &Database,
    owner: &str,
    migrations: &[Migration<'_>],
) -> anyhow::Result<usize> {
    if all_applied(db, owner, migrations).await {
        return Ok(0);
    }
    let mut connection = db.pool().acquire().await?;
    if db.dialect() == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(ADVISORY_LOCK_KEY)
            .execute(&mut *connection)
            .await?;
    }
    let result = apply_on(&mut connection, db.dialect(), owner, migrations, None).await;
    if db.dialect() == Dialect::Postgres {
        // Unlock even after a failure: the connection returns to the pool
        // and a held session lock would block every later run.
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(ADVISORY_LOCK_KEY)
            .execute(&mut *connection)
            .await?;
    }
    result
}

/// Applies `owner`'s pending migrations on `connection`, which the caller
/// has serialised against other runners. `verify`, when given, is a query
/// run inside each migration's transaction after its script: any row it
/// returns (a `problem` column) fails the migration, rolled back whole.
///
/// Takes the connection itself, not the pool guard: reborrowing through the
/// guard (`&mut **guard`) makes the future not Send-general, and lifecycle
/// changes run in axum handlers.
pub async fn apply_on(
    connection: &mut AnyConnection,
    dialect: Dialect,
    owner: &str,
    migrations: &[Migration<'_>],
    verify: Option<&str>,
) -> anyhow::Result<usize> {
    sqlx::query(LEDGER_DDL)
        .execute(&mut *connection)
        .await
        .context("cannot create the migration ledger")?;
    let mut applied = 0;
    for migration in migrations {
        let script = migration.script(dialect);
        let checksum = script_checksum(script);
        let mut tx = match dialect {
            Dialect::Sqlite => connection.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => connection.begin().await?,
        };
        let recorded = sqlx::query(RECORDED_CHECKSUM)
            .bind(owner)
            .bind(migration.version)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = recorded {
            let recorded: String = row.try_get("checksum")?;
            if recorded != checksum {
                bail!(changed_after_applied(owner, migration));
            }
            continue;
        }
        // Executor::execute on a bare script runs every statement in it (the
        // simple query protocol on PostgreSQL) and, unlike `raw_sql`, gives
        // a Send-general future.
        (&mut *tx).execute(script).await.with_context(|| {
            format!(
                "migration {owner} v{} ({}) failed",
                migration.version, migration.name
            )
        })?;
        if let Some(verify) = verify {
            let problems: Vec<String> = sqlx::query_scalar(verify)
                .fetch_all(&mut *tx)
                .await
                .context("cannot verify the migration")?;
            if !problems.is_empty() {
                bail!(
                    "migration {owner} v{} ({}) is refused: {}",
                    migration.version,
                    migration.name,
                    problems.join("; ")
                );
            }
        }
        commit_applied(tx, owner, migration, &checksum).await?;
        applied += 1;
    }
    Ok(applied)
}

/// Whether the ledger records every one of `owner`'s `migrations` with the
/// checksum of its script in this database's dialect, read without a lock.
/// A pending migration, a changed script, a ledger not created yet or a
/// failed read all answer false, and the caller takes the locked path,
/// which applies or reports them. True cannot go stale: the host's rows
/// are never removed, and a plugin's only by an uninstall with purge,
/// which holds the plugin manager's lock, as an activation does.
pub async fn all_applied(db: &Database, owner: &str, migrations: &[Migration<'_>]) -> bool {
    let recorded: Vec<(i64, String)> =
        match sqlx::query_as("SELECT version, checksum FROM xcore_migrations WHERE owner = $1")
            .bind(owner)
            .fetch_all(db.pool())
            .await
        {
            Ok(rows) => rows,
            Err(_) => return false,
        };
    let recorded: std::collections::HashMap<i64, String> = recorded.into_iter().collect();
    migrations.iter().all(|migration| {
        recorded.get(&migration.version).map(String::as_str)
            == Some(script_checksum(migration.script(db.dialect())).as_str())
    })
}

/// The error for a migration whose script changed after it was applied.
pub fn changed_after_applied(owner: &str, migration: &Migration<'_>) -> String {
    format!(
        "migration {owner} v{} ({}) was changed after it was applied; \
         restore the original script and add a new migration instead",
        migration.version, migration.name
    )
}

/// The checksum the ledger records for a script (SHA-256, hex).
pub fn script_checksum(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
