//! Built-in roles and permissions, kept present at every start.
//!
//! `admin` holds every permission: each permission is granted to it when it
//! is created (here, through `/admin/permissions`, or when a plugin registers
//! its own), and this start-up pass re-grants any that are missing. `user`
//! is the role self-registered accounts get.

use sqlx::Row;

use super::permissions::{parse_permission_name, CORE_PERMISSIONS};
use crate::{
    auth::{
        cache::AuthCache,
        changes::Change,
        roles::{ADMIN_ROLE, BUILTIN_ROLES},
    },
    db::{timestamp, Database},
    error::ApiError,
};

/// Creates the built-in roles and core permissions when missing and grants
/// every permission to `admin`. Idempotent; safe with concurrent starts.
pub async fn ensure_builtins(db: &Database, auth: &AuthCache) -> anyhow::Result<()> {
    let now = timestamp::now();
    let mut tx = db.begin_write().await?;
    let mut changed = 0;
    for (name, description) in BUILTIN_ROLES {
        changed += sqlx::query(
            "INSERT INTO roles (name, description, is_builtin, created_at, updated_at)
             VALUES ($1, $2, TRUE, $3, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(*name)
        .bind(*description)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    for (name, description) in CORE_PERMISSIONS {
        let (resource, action) = parse_permission_name(name)
            .ok_or_else(|| anyhow::anyhow!("core permission {name} is malformed"))?;
        changed += sqlx::query(
            "INSERT INTO permissions (name, description, resource, action, owner, created_at)
             VALUES ($1, $2, $3, $4, 'core', $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(*name)
        .bind(*description)
        .bind(resource)
        .bind(action)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    changed += sqlx::query(
        "INSERT INTO role_permissions (role_id, permission_id)
         SELECT r.id, p.id FROM roles r CROSS JOIN permissions p WHERE r.name = $1
         ON CONFLICT (role_id, permission_id) DO NOTHING",
    )
    .bind(ADMIN_ROLE)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        tx.commit().await?;
    } else {
        // Running instances must see what an upgrade added.
        auth.commit(tx, &[Change::Grants]).await?;
    }
    Ok(())
}

/// Creates a permission (granting it to `admin`) and returns its id; 409 if
/// the name exists. Used by `/admin/permissions` and plugin registration.
pub async fn create_permission(
    db: &Database,
    auth: &AuthCache,
    name: &str,
    description: Option<&str>,
    owner: &str,
) -> Result<i64, ApiError> {
    let (resource, action) = parse_permission_name(name).ok_or_else(|| {
        ApiError::invalid_field(
            "name",
            "must be resource:action in lower-case letters, digits, _ - .",
        )
    })?;
    let mut tx = db.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO permissions (name, description, resource, action, owner, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(resource)
    .bind(action)
    .bind(owner)
    .bind(timestamp::now())
    .fetch_one(&mut *tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ApiError::conflict(format!("permission {name} already exists"))
        }
        _ => error.into(),
    })?
    .try_get("id")?;
    sqlx::query("INSERT INTO role_permissions (role_id, permission_id) SELECT id, $1 FROM roles WHERE name = $2")
        .bind(id)
        .bind(ADMIN_ROLE)
        .execute(&mut *tx)
        .await?;
    // Admins hold it from the next request on.
    auth.commit(tx, &[Change::Grants]).await?;
    Ok(id)
}

/// The names of the permissions `owner` registered, read without a
/// transaction: a plugin's activation creates only the ones missing (on a
/// restart, none) instead of trying each in a write transaction of its own.
pub async fn permission_names_of(
    db: &Database,
    owner: &str,
) -> Result<std::collections::HashSet<String>, ApiError> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM permissions WHERE owner = $1")
        .bind(owner)
        .fetch_all(db.pool())
        .await?;
    Ok(names.into_iter().collect())
}

/// Grants `plugin`'s declared default grants, `(permission, role)` pairs,
/// that were never applied before, and records them as applied; returns
/// how many it granted. A recorded default is never granted again: an
/// admin's revocation outlives restarts, reloads and upgrades (see
/// migration 0008). Run after the permissions are registered.
pub async fn apply_default_grants(
    db: &Database,
    auth: &AuthCache,
    plugin: &str,
    defaults: &[(&str, &str)],
) -> Result<u64, ApiError> {
    // Those recorded already are left out before taking the write lock: on
    // a restart that is all of them. The insert below still decides races.
    let recorded: Vec<(String, String)> =
        sqlx::query_as("SELECT permission, role FROM permission_defaults WHERE plugin = $1")
            .bind(plugin)
            .fetch_all(db.pool())
            .await?;
    let defaults: Vec<(&str, &str)> = defaults
        .iter()
        .copied()
        .filter(|(permission, role)| {
            !recorded
                .iter()
                .any(|(p, r)| p.as_str() == *permission && r.as_str() == *role)
        })
        .collect();
    if defaults.is_empty() {
        return Ok(0);
    }
    let now = timestamp::now();
    let mut tx = db.begin_write().await?;
    let mut granted = 0;
    for (permission, role) in &defaults {
        // The record first: of two instances activating at once, only the
        // one whose insert lands grants.
        let first = sqlx::query(
            "INSERT INTO permission_defaults (plugin, permission, role, applied_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (plugin, permission, role) DO NOTHING",
        )
        .bind(plugin)
        .bind(*permission)
        .bind(*role)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if first == 0 {
            continue;
        }
        granted += sqlx::query(
            "INSERT INTO role_permissions (role_id, permission_id)
             SELECT r.id, p.id FROM roles r CROSS JOIN permissions p
             WHERE r.name = $1 AND p.name = $2 AND p.owner = $3
             ON CONFLICT (role_id, permission_id) DO NOTHING",
        )
        .bind(*role)
        .bind(*permission)
        .bind(plugin)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    if granted == 0 {
        tx.commit().await?;
    } else {
        // Plain users hold it from the next request on, on every instance.
        auth.commit(tx, &[Change::Grants]).await?;
    }
    Ok(granted)
}
