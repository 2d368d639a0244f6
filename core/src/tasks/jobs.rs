//! The host's own jobs, and the tasks that run them on a fresh install.

use serde_json::{json, Value};

use crate::{
    config::{AuditConfig, TasksConfig},
    db::{timestamp, Database},
};

/// Built-in jobs: `(name, what it does)`.
pub const BUILTIN_JOBS: &[(&str, &str)] = &[
    (
        "core.purge_expired_tokens",
        "Deletes expired refresh tokens, revoked access-token ids and sessions past their expiry, and expired password-reset tokens",
    ),
    (
        "core.prune_task_runs",
        "Keeps the newest tasks.history_per_task runs of each task",
    ),
    (
        "core.prune_audit_log",
        "Deletes audit-log rows older than audit.retention_days",
    ),
];

/// The tasks present on a fresh install: `(id, name, cron, job)`.
const BUILTIN_TASKS: &[(&str, &str, &str, &str)] = &[
    (
        "purge_expired_tokens",
        "Purge expired tokens",
        "0 * * * *",
        "core.purge_expired_tokens",
    ),
    (
        "prune_task_runs",
        "Prune task run history",
        "30 3 * * *",
        "core.prune_task_runs",
    ),
    (
        "prune_audit_log",
        "Prune the audit log",
        "45 3 * * *",
        "core.prune_audit_log",
    ),
];

/// Creates the built-in tasks that do not exist yet (an operator's changes
/// to them are kept).
pub async fn ensure_builtin_tasks(db: &Database) -> anyhow::Result<()> {
    let now = timestamp::now();
    for (id, name, cron, job) in BUILTIN_TASKS {
        sqlx::query(
            "INSERT INTO tasks (id, name, kind, schedule, job, enabled, builtin, created_at, updated_at)
             VALUES ($1, $2, 'cron', $3, $4, $5, $6, $7, $7)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(*id)
        .bind(*name)
        .bind(*cron)
        .bind(*job)
        .bind(true)
        .bind(true)
        .bind(&now)
        .execute(db.pool())
        .await?;
    }
    Ok(())
}

/// How long authentication change-log rows are kept.
const CHANGE_LOG_RETENTION: chrono::Duration = chrono::Duration::hours(1);

/// Runs built-in job `name`; `Ok` holds what it did.
pub async fn run_builtin(
    name: &str,
    db: &Database,
    config: &TasksConfig,
    audit: &AuditConfig,
) -> Result<Value, String> {
    let failed = |error: sqlx::Error| error.to_string();
    match name {
        "core.purge_expired_tokens" => {
            let now = timestamp::now();
            let mut tx = db.begin_write().await.map_err(failed)?;
            let mut deleted = Vec::new();
            for sql in [
                "DELETE FROM refresh_tokens WHERE expires_at < $1",
                "DELETE FROM revoked_access_tokens WHERE expires_at < $1",
                "DELETE FROM password_reset_tokens WHERE expires_at < $1",
                "DELETE FROM revoked_sessions WHERE expires_at < $1",
            ] {
                let done = sqlx::query(sql)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                deleted.push(done.rows_affected());
            }
            // The change log only needs to outlast the slowest instance's
            // poll; one that misses pruned rows reloads everything.
            let log_horizon = timestamp::format(chrono::Utc::now() - CHANGE_LOG_RETENTION);
            deleted.push(
                crate::auth::changes::prune(&mut tx, &log_horizon)
                    .await
                    .map_err(failed)?,
            );
            tx.commit().await.map_err(failed)?;
            Ok(json!({
                "auth_changes": deleted[4],
                "refresh_tokens": deleted[0],
                "revoked_access_tokens": deleted[1],
                "password_reset_tokens": deleted[2],
                "revoked_sessions": deleted[3],
            }))
        }
        "core.prune_task_runs" => {
            let keep = i64::from(config.history_per_task.max(1));
            let done = sqlx::query(
                "DELETE FROM task_runs WHERE id IN (
                    SELECT r.id FROM task_runs r
                    WHERE (SELECT COUNT(*) FROM task_runs newer
                           WHERE newer.task_id = r.task_id AND newer.id > r.id) >= $1)",
            )
            .bind(keep)
            .execute(db.pool())
            .await
            .map_err(failed)?;
            Ok(json!({"deleted_runs": done.rows_affected()}))
        }
        "core.prune_audit_log" => {
            let deleted = crate::audit::prune(db, audit.retention_days)
                .await
                .map_err(failed)?;
            Ok(json!({"deleted_rows": deleted}))
        }
        other => Err(format!("unknown built-in job {other}")),
    }
}
