//! `/admin/roles`: role CRUD, and granting and revoking permissions.
//!
//! Granting is per permission, addressed by id or by name (the seed names no
//! route for it; this is the choice): `POST /admin/roles/{role_id}/permissions/{permission}`
//! grants (idempotent, answers the role with its permissions) and `DELETE`
//! on the same path revokes (204, or 404 if it was not granted). The
//! built-in roles cannot be renamed or deleted, and nothing can be revoked
//! from `admin`, which by definition holds every permission.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::{Deserialize, Serialize};
use sqlx::{any::AnyRow, Row};

use super::paths::{PermissionPath, RoleIdPath};
use super::permissions::{Require, RolesRead, RolesWrite};
use super::RbacState;
use crate::{
    audit::{self, Audited},
    auth::{changes::Change, roles::ADMIN_ROLE},
    db::{flag, timestamp, Database},
    error::{ApiError, ApiResult},
    http::{
        answers::{InvalidInput, NameTaken, NoSuchRole},
        extract::{ApiJson, ApiPath, ApiQuery},
        pagination::{list_query, Page, SortOrder},
    },
};

/// A role as listed.
#[derive(Debug, Serialize)]
pub struct Role {
    id: i64,
    name: String,
    description: Option<String>,
    is_builtin: bool,
    created_at: String,
}

/// A permission as shown inside a role.
#[derive(Debug, Serialize)]
pub struct GrantedPermission {
    id: i64,
    name: String,
    description: Option<String>,
}

/// A role with its permissions and how many users hold it.
#[derive(Debug, Serialize)]
pub struct RoleDetail {
    #[serde(flatten)]
    role: Role,
    permissions: Vec<GrantedPermission>,
    users_count: i64,
}

fn role_from_row(row: &AnyRow) -> Result<Role, sqlx::Error> {
    Ok(Role {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        is_builtin: flag(row, "is_builtin")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Role names: a lower-case letter, then up to 63 of `a-z0-9_-`.
fn check_role_name(name: &str) -> Result<(), ApiError> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "name",
            "must start with a lower-case letter and use only a-z, 0-9, _ and - (at most 64)",
        ))
    }
}

fn name_taken(error: sqlx::Error, name: &str) -> ApiError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ApiError::conflict(format!("a role named {name} already exists"))
        }
        _ => error.into(),
    }
}

async fn find_role(db: &Database, id: i64) -> Result<Role, ApiError> {
    let row = sqlx::query(
        "SELECT id, name, description, is_builtin, created_at FROM roles WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("role {id} not found")))?;
    Ok(role_from_row(&row)?)
}

async fn role_detail(db: &Database, id: i64) -> Result<RoleDetail, ApiError> {
    let role = find_role(db, id).await?;
    let permissions = sqlx::query(
        "SELECT p.id, p.name, p.description FROM permissions p
         JOIN role_permissions rp ON rp.permission_id = p.id
         WHERE rp.role_id = $1 ORDER BY p.name",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(GrantedPermission {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let users_count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM user_roles WHERE role_id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await?
        .try_get("n")?;
    Ok(RoleDetail {
        role,
        permissions,
        users_count,
    })
}

list_query! {
    /// `GET /admin/roles` query.
    pub struct ListQuery {
        sort_by: "id (default), name or created_at",
    }
}

/// Sort fields of `GET /admin/roles`: public name and column.
const SORTABLE: &[(&str, &str)] = &[("id", "id"), ("name", "name"), ("created_at", "created_at")];

/// Lists roles by id.
#[utoipa::path(
    get, path = "/admin/roles", tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of roles"),
        RolesRead,
        InvalidInput,
    )
)]
pub async fn list(
    State(state): State<Arc<RbacState>>,
    _: Require<RolesRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let (window, column, order) = query.window_and_sort(SORTABLE, ("id", SortOrder::Asc))?;
    let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM roles")
        .fetch_one(state.db.pool())
        .await?
        .try_get("n")?;
    let items = sqlx::query(&format!(
        "SELECT id, name, description, is_builtin, created_at FROM roles ORDER BY {column} {}, id LIMIT $1 OFFSET $2",
        order.sql()
    ))
    .bind(window.limit)
    .bind(window.skip)
    .fetch_all(state.db.pool())
    .await?
    .iter()
    .map(role_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Page::new(items, total, window)))
}

/// `POST /admin/roles` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateRole {
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// Creates a role.
#[utoipa::path(
    post, path = "/admin/roles", tag = "admin",
    request_body = CreateRole,
    responses(
        (status = 201, description = "The role"),
        RolesWrite,
        NameTaken,
        InvalidInput,
    )
)]
pub async fn create(
    State(state): State<Arc<RbacState>>,
    caller: Audited<RolesWrite>,
    ApiJson(body): ApiJson<CreateRole>,
) -> ApiResult<impl IntoResponse> {
    check_role_name(&body.name)?;
    let now = timestamp::now();
    // A transaction only so the audit row commits with the role.
    let mut tx = state.db.begin_write().await?;
    let row = sqlx::query(
        "INSERT INTO roles (name, description, is_builtin, created_at, updated_at)
         VALUES ($1, $2, FALSE, $3, $3) RETURNING id, name, description, is_builtin, created_at",
    )
    .bind(&body.name)
    .bind(&body.description)
    .bind(&now)
    .fetch_one(&mut *tx)
    .await
    .map_err(|error| name_taken(error, &body.name))?;
    let role = role_from_row(&row)?;
    caller
        .record_in(
            &mut tx,
            audit::ROLE_CREATED,
            "role",
            role.id,
            serde_json::json!({"name": role.name}),
        )
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// One role with its permissions and user count.
#[utoipa::path(
    get, path = "/admin/roles/{role_id}", tag = "admin",
    params(RoleIdPath),
    responses(
        (status = 200, description = "The role with its permissions and user count"),
        RolesRead,
        NoSuchRole,
    )
)]
pub async fn get_one(
    State(state): State<Arc<RbacState>>,
    _: Require<RolesRead>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(role_detail(&state.db, id).await?))
}

/// `PUT /admin/roles/{role_id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateRole {
    #[serde(default)]
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Renames or re-describes a role.
#[utoipa::path(
    put, path = "/admin/roles/{role_id}", tag = "admin",
    params(RoleIdPath),
    request_body = UpdateRole,
    responses(
        (status = 200, description = "The updated role"),
        RolesWrite,
        NoSuchRole,
        (status = 409, description = "Name taken, or renaming a built-in role", body = crate::error::ErrorBody),
        InvalidInput,
    )
)]
pub async fn update(
    State(state): State<Arc<RbacState>>,
    caller: Audited<RolesWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateRole>,
) -> ApiResult<impl IntoResponse> {
    let role = find_role(&state.db, id).await?;
    let name = body.name.unwrap_or_else(|| role.name.clone());
    check_role_name(&name)?;
    if role.is_builtin && name != role.name {
        return Err(ApiError::conflict(format!(
            "the built-in role {} cannot be renamed",
            role.name
        )));
    }
    let mut tx = state.db.begin_write().await?;
    sqlx::query("UPDATE roles SET name = $1, description = $2, updated_at = $3 WHERE id = $4")
        .bind(&name)
        .bind(body.description.or(role.description))
        .bind(timestamp::now())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|error| name_taken(error, &name))?;
    caller
        .record_in(
            &mut tx,
            audit::ROLE_UPDATED,
            "role",
            id,
            serde_json::json!({"name": name, "previous_name": role.name}),
        )
        .await?;
    // Callers' role names come from the cache.
    state.auth.commit(tx, &[Change::Grants]).await?;
    Ok(Json(role_detail(&state.db, id).await?))
}

/// Deletes a role (its grants and assignments go with it).
#[utoipa::path(
    delete, path = "/admin/roles/{role_id}", tag = "admin",
    params(RoleIdPath),
    responses(
        (status = 204, description = "Deleted"),
        RolesWrite,
        NoSuchRole,
        (status = 409, description = "A built-in role", body = crate::error::ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<Arc<RbacState>>,
    caller: Audited<RolesWrite>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let role = find_role(&state.db, id).await?;
    if role.is_builtin {
        return Err(ApiError::conflict(format!(
            "the built-in role {} cannot be deleted",
            role.name
        )));
    }
    let mut tx = state.db.begin_write().await?;
    sqlx::query("DELETE FROM roles WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    caller
        .record_in(
            &mut tx,
            audit::ROLE_DELETED,
            "role",
            id,
            serde_json::json!({"name": role.name}),
        )
        .await?;
    // Its holders lose what it granted from the next request on.
    state.auth.commit(tx, &[Change::Grants]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Finds a permission by numeric id or by name.
async fn find_permission(db: &Database, reference: &str) -> Result<(i64, String), ApiError> {
    let row = match reference.parse::<i64>() {
        Ok(id) => sqlx::query("SELECT id, name FROM permissions WHERE id = $1").bind(id),
        Err(_) => sqlx::query("SELECT id, name FROM permissions WHERE name = $1").bind(reference),
    }
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("permission {reference} not found")))?;
    Ok((row.try_get("id")?, row.try_get("name")?))
}

/// Grants a permission to a role.
#[utoipa::path(
    post, path = "/admin/roles/{role_id}/permissions/{permission}", tag = "admin",
    params(RoleIdPath, PermissionPath),
    responses(
        (status = 200, description = "The role with its permissions"),
        RolesWrite,
        (status = 404, description = "No such role or permission", body = crate::error::ErrorBody),
    )
)]
pub async fn grant(
    State(state): State<Arc<RbacState>>,
    caller: Audited<RolesWrite>,
    ApiPath((role_id, permission)): ApiPath<(i64, String)>,
) -> ApiResult<impl IntoResponse> {
    let role = find_role(&state.db, role_id).await?;
    let (permission_id, permission_name) = find_permission(&state.db, &permission).await?;
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO role_permissions (role_id, permission_id) VALUES ($1, $2)
         ON CONFLICT (role_id, permission_id) DO NOTHING",
    )
    .bind(role_id)
    .bind(permission_id)
    .execute(&mut *tx)
    .await
    .map_err(|error| match &error {
        // Deleted between the lookups above and this insert.
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => ApiError::not_found(format!(
            "role {role_id} or permission {permission} no longer exists"
        )),
        _ => error.into(),
    })?;
    caller
        .record_in(
            &mut tx,
            audit::ROLE_PERMISSION_GRANTED,
            "role",
            role_id,
            serde_json::json!({"role": role.name, "permission": permission_name}),
        )
        .await?;
    // The role's holders may use it from the next request on.
    state.auth.commit(tx, &[Change::Grants]).await?;
    Ok(Json(role_detail(&state.db, role_id).await?))
}

/// Revokes a permission from a role.
#[utoipa::path(
    delete, path = "/admin/roles/{role_id}/permissions/{permission}", tag = "admin",
    params(RoleIdPath, PermissionPath),
    responses(
        (status = 204, description = "Revoked"),
        RolesWrite,
        (status = 404, description = "No such role or permission, or not granted", body = crate::error::ErrorBody),
        (status = 409, description = "The admin role keeps every permission", body = crate::error::ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<Arc<RbacState>>,
    caller: Audited<RolesWrite>,
    ApiPath((role_id, permission)): ApiPath<(i64, String)>,
) -> ApiResult<StatusCode> {
    let role = find_role(&state.db, role_id).await?;
    let (permission_id, name) = find_permission(&state.db, &permission).await?;
    if role.name == ADMIN_ROLE {
        return Err(ApiError::conflict(
            "the admin role holds every permission; nothing can be revoked from it",
        ));
    }
    let mut tx = state.db.begin_write().await?;
    let removed =
        sqlx::query("DELETE FROM role_permissions WHERE role_id = $1 AND permission_id = $2")
            .bind(role_id)
            .bind(permission_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if removed == 0 {
        return Err(ApiError::not_found(format!(
            "role {} does not have {name}",
            role.name
        )));
    }
    caller
        .record_in(
            &mut tx,
            audit::ROLE_PERMISSION_REVOKED,
            "role",
            role_id,
            serde_json::json!({"role": role.name, "permission": name}),
        )
        .await?;
    // The role's holders are refused it from the next request on.
    state.auth.commit(tx, &[Change::Grants]).await?;
    Ok(StatusCode::NO_CONTENT)
}
