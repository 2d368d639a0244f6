//! Ordered, checksummed schema migrations for an owner (`core` or, later, a
//! plugin id), each applied in its own transaction and recorded in
//! `xcore_migrations`.
//!
//! Several instances may start at once against one PostgreSQL: each
//! migration takes a transaction-scoped advisory lock before checking
//! whether it is applied, so exactly one instance applies it.

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{timestamp, Database, Dialect};

/// One migration, with a script per dialect.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Strictly increasing within an owner.
    pub version: i64,
    /// Short description, recorded.
    pub name: &'static str,
    /// Script for SQLite.
    pub sqlite: &'static str,
    /// Script for PostgreSQL.
    pub postgres: &'static str,
}

impl Migration {
    fn script(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// The host's own schema.
pub const CORE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "users, rbac, tokens, password resets, outbox",
    sqlite: include_str!("../../migrations/sqlite/0001_core.sql"),
    postgres: include_str!("../../migrations/postgres/0001_core.sql"),
}];

const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS xcore_migrations (
    owner TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (owner, version)
)";

/// Arbitrary constant identifying xcore's migration lock in PostgreSQL.
const ADVISORY_LOCK_KEY: i64 = 0x0078_636f_7265;

/// Applies the pending migrations of `owner`; returns how many ran.
/// Refuses to proceed when an applied migration's script has since changed.
pub async fn apply(db: &Database, owner: &str, migrations: &[Migration]) -> anyhow::Result<usize> {
    sqlx::query(LEDGER_DDL)
        .execute(db.pool())
        .await
        .context("cannot create the migration ledger")?;
    let mut applied = 0;
    for migration in migrations {
        let script = migration.script(db.dialect());
        let checksum = hex_sha256(script);
        let mut tx = db.pool().begin().await?;
        if db.dialect() == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ADVISORY_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
        }
        let recorded =
            sqlx::query("SELECT checksum FROM xcore_migrations WHERE owner = $1 AND version = $2")
                .bind(owner)
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = recorded {
            let recorded: String = row.try_get("checksum")?;
            if recorded != checksum {
                bail!(
                    "migration {owner} v{} ({}) was changed after it was applied; \
                     restore the original script and add a new migration instead",
                    migration.version,
                    migration.name
                );
            }
            continue;
        }
        sqlx::raw_sql(script)
            .execute(&mut *tx)
            .await
            .with_context(|| {
                format!(
                    "migration {owner} v{} ({}) failed",
                    migration.version, migration.name
                )
            })?;
        sqlx::query(
            "INSERT INTO xcore_migrations (owner, version, name, checksum, applied_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
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

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
