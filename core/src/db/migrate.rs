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

/// The host's own schema.
pub const CORE_MIGRATIONS: &[Migration<'static>] = &[
    Migration {
        version: 1,
        name: "users, rbac, tokens, password resets, outbox",
        sqlite: include_str!("../../migrations/sqlite/0001_core.sql"),
        postgres: include_str!("../../migrations/postgres/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "plugin state",
        sqlite: include_str!("../../migrations/sqlite/0002_plugins.sql"),
        postgres: include_str!("../../migrations/postgres/0002_plugins.sql"),
    },
    Migration {
        version: 3,
        name: "scheduled tasks and run history",
        sqlite: include_str!("../../migrations/sqlite/0003_tasks.sql"),
        postgres: include_str!("../../migrations/postgres/0003_tasks.sql"),
    },
    Migration {
        version: 4,
        name: "revoked sessions, refresh-token versions",
        sqlite: include_str!("../../migrations/sqlite/0004_session_revocation.sql"),
        postgres: include_str!("../../migrations/postgres/0004_session_revocation.sql"),
    },
    Migration {
        version: 5,
        name: "authentication change counter and log",
        sqlite: include_str!("../../migrations/sqlite/0005_auth_changes.sql"),
        postgres: include_str!("../../migrations/postgres/0005_auth_changes.sql"),
    },
    Migration {
        version: 6,
        name: "API keys",
        sqlite: include_str!("../../migrations/sqlite/0006_api_keys.sql"),
        postgres: include_str!("../../migrations/postgres/0006_api_keys.sql"),
    },
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

/// Records an applied migration: owner, version, name, checksum, time.
pub const RECORD_APPLIED: &str =
    "INSERT INTO xcore_migrations (owner, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)";

/// Arbitrary constant identifying xcore's migration lock in PostgreSQL.
pub const ADVISORY_LOCK_KEY: i64 = 0x0078_636f_7265;

/// Applies the pending migrations of `owner`; returns how many ran.
/// Refuses to proceed when an applied migration's script has since changed.
pub async fn apply(
    db: &Database,
    owner: &str,
    migrations: &[Migration<'_>],
) -> anyhow::Result<usize> {
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
        sqlx::query(RECORD_APPLIED)
            .bind(owner)
            .bind(migration.version)
            .bind(migration.name)
            .bind(&checksum)
            .bind(timestamp::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            owner,
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
        applied += 1;
    }
    Ok(applied)
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
