//! `/admin/users`: list, search and create accounts, assign and remove
//! roles, activate and deactivate.
//!
//! Two guards keep an installation administrable: the last active holder of
//! the admin role can be neither deactivated nor stripped of the role, and
//! nobody can deactivate their own account.

use std::sync::Arc;

use std::collections::BTreeMap;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row, Transaction};

use super::paths::{RoleIdPath, UserIdPath};
use super::permissions::{Require, UsersRead, UsersWrite};
use super::RbacState;
use crate::{
    audit::{self, Audited},
    auth::{
        changes::Change,
        roles::{ADMIN_ROLE, USER_ROLE},
        sessions, users,
    },
    db::{flag, like_pattern, Database, Dialect, Placeholders},
    error::{ApiError, ApiResult},
    http::{
        answers::{EmailTaken, InvalidInput, NoSuchUser},
        extract::{ApiJson, ApiPath, ApiQuery},
        pagination::{list_query, Page, SortOrder},
    },
};

/// A user as administrators see it.
#[derive(Debug, Serialize)]
pub struct UserItem {
    id: i64,
    email: String,
    full_name: Option<String>,
    is_active: bool,
    roles: Vec<String>,
    last_login: Option<String>,
    created_at: String,
}

/// Public sort fields and their columns.
const SORTABLE: &[(&str, &str)] = &[
    ("id", "id"),
    ("email", "email"),
    ("full_name", "full_name"),
    ("created_at", "created_at"),
    ("last_login", "last_login"),
];

/// Loads users by id (in the given order) with their roles, in two queries.
async fn load_items(
    db: &Database,
    rows: Vec<sqlx::any::AnyRow>,
) -> Result<Vec<UserItem>, ApiError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut placeholders = Placeholders::default();
    let list: Vec<String> = rows
        .iter()
        .map(|_| placeholders.next_placeholder())
        .collect();
    let sql = format!(
        "SELECT ur.user_id, r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
         WHERE ur.user_id IN ({}) ORDER BY r.name",
        list.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for row in &rows {
        query = query.bind(row.try_get::<i64, _>("id")?);
    }
    let mut roles: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in query.fetch_all(db.pool()).await? {
        roles
            .entry(row.try_get("user_id")?)
            .or_default()
            .push(row.try_get("name")?);
    }
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            Ok(UserItem {
                id,
                email: row.try_get("email")?,
                full_name: row.try_get("full_name")?,
                is_active: flag(row, "is_active")?,
                roles: roles.remove(&id).unwrap_or_default(),
                last_login: row.try_get("last_login")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

const USER_COLUMNS: &str = "id, email, full_name, is_active, last_login, created_at";

async fn find_user(db: &Database, id: i64) -> Result<UserItem, ApiError> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    let mut items = load_items(db, vec![row]).await?;
    items
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))
}

list_query! {
    /// `GET /admin/users` query.
    pub struct ListQuery {
        sort_by: "id (default), email, full_name, created_at or last_login",
        /// Substring of the email or full name.
        search: Option<String>,
        /// Only active or inactive accounts.
        is_active: Option<bool>,
    }
}

/// Lists users with search, filter, sort and paging.
#[utoipa::path(
    get, path = "/admin/users", tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of users"),
        UsersRead,
        InvalidInput,
    )
)]
pub async fn list(
    State(state): State<Arc<RbacState>>,
    _: Require<UsersRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let (window, column, order) = query.window_and_sort(SORTABLE, ("id", SortOrder::Asc))?;
    let mut placeholders = Placeholders::default();
    let mut conditions = Vec::new();
    let search = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(like_pattern);
    if search.is_some() {
        let p = placeholders.next_placeholder();
        conditions.push(format!(
            "(LOWER(email) LIKE {p} ESCAPE '\\' OR LOWER(COALESCE(full_name, '')) LIKE {p} ESCAPE '\\')"
        ));
    }
    if query.is_active.is_some() {
        conditions.push(format!("is_active = {}", placeholders.next_placeholder()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let query_is_active = query.is_active;
    // Bind the filters the same way for the count and the page.
    macro_rules! bind_filters {
        ($query:expr) => {{
            let mut query = $query;
            if let Some(pattern) = &search {
                query = query.bind(pattern.clone());
            }
            if let Some(active) = query_is_active {
                query = query.bind(active);
            }
            query
        }};
    }
    let count_sql = format!("SELECT COUNT(*) FROM users{filter}");
    let (total,): (i64,) = bind_filters!(sqlx::query_as(&count_sql))
        .fetch_one(state.db.pool())
        .await?;
    let limit = placeholders.next_placeholder();
    let offset = placeholders.next_placeholder();
    // NULLS LAST and the id tie-break give both databases the same order.
    let page_sql = format!(
        "SELECT {USER_COLUMNS} FROM users{filter} ORDER BY {column} {} NULLS LAST, id ASC LIMIT {limit} OFFSET {offset}",
        order.sql()
    );
    let rows = bind_filters!(sqlx::query(&page_sql))
        .bind(window.limit)
        .bind(window.skip)
        .fetch_all(state.db.pool())
        .await?;
    Ok(Json(Page::new(
        load_items(&state.db, rows).await?,
        total,
        window,
    )))
}

/// One user.
#[utoipa::path(
    get, path = "/admin/users/{user_id}", tag = "admin",
    params(UserIdPath),
    responses(
        (status = 200, description = "The user"),
        UsersRead,
        NoSuchUser,
    )
)]
pub async fn get_one(
    State(state): State<Arc<RbacState>>,
    _: Require<UsersRead>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(find_user(&state.db, id).await?))
}

/// `POST /admin/users` body (seed 000: `name`, `role`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateUser {
    email: String,
    password: String,
    #[serde(default, alias = "name")]
    full_name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

/// Creates an account with the given role(s), `user` by default.
#[utoipa::path(
    post, path = "/admin/users", tag = "admin",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The user"),
        UsersWrite,
        EmailTaken,
        InvalidInput,
    )
)]
pub async fn create(
    State(state): State<Arc<RbacState>>,
    caller: Audited<UsersWrite>,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<impl IntoResponse> {
    let roles: Vec<String> = match (body.roles, body.role) {
        (Some(roles), _) => roles,
        (None, Some(role)) => vec![role],
        (None, None) => vec![USER_ROLE.to_string()],
    };
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let account = users::create_account(
        &state.db,
        &state.passwords,
        &body.email,
        &body.password,
        body.full_name.as_deref(),
        &roles,
    )
    .await?;
    tracing::info!(user_id = account.id, "user created by an administrator");
    // After the fact: the account is created in a transaction of its own
    // (shared with registration and the command line).
    caller
        .record(
            audit::USER_CREATED,
            "user",
            account.id,
            json!({"email": account.email, "roles": roles}),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(find_user(&state.db, account.id).await?),
    ))
}

async fn role_name(db: &Database, role_id: i64) -> Result<String, ApiError> {
    sqlx::query("SELECT name FROM roles WHERE id = $1")
        .bind(role_id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("role {role_id} not found")))?
        .try_get("name")
        .map_err(ApiError::from)
}

/// Whether `user_id` is the only active holder of the admin role.
///
/// Two administrators deactivating (or demoting) each other at once must not
/// both pass this check. SQLite write transactions are already serial
/// (`begin_write` takes the lock at BEGIN); PostgreSQL's READ COMMITTED would
/// let each see the other still active, so there every caller first locks
/// the admin role's row: the checks queue, and each one's count sees the
/// change the previous one committed.
async fn is_last_active_admin(
    db: &Database,
    tx: &mut Transaction<'static, Any>,
    user_id: i64,
) -> Result<bool, ApiError> {
    if db.dialect() == Dialect::Postgres {
        sqlx::query("SELECT id FROM roles WHERE name = $1 FOR UPDATE")
            .bind(ADMIN_ROLE)
            .fetch_optional(&mut **tx)
            .await?;
    }
    let rows = sqlx::query(
        "SELECT u.id FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id
         WHERE r.name = $1 AND u.is_active = TRUE",
    )
    .bind(ADMIN_ROLE)
    .fetch_all(&mut **tx)
    .await?;
    let ids: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
    Ok(ids == [user_id])
}

/// Gives a user a role (idempotent).
#[utoipa::path(
    post, path = "/admin/users/{user_id}/roles/{role_id}", tag = "admin",
    params(UserIdPath, RoleIdPath),
    responses(
        (status = 200, description = "Role assigned"),
        UsersWrite,
        (status = 404, description = "No such user or role", body = crate::error::ErrorBody),
    )
)]
pub async fn assign_role(
    State(state): State<Arc<RbacState>>,
    caller: Audited<UsersWrite>,
    ApiPath((user_id, role_id)): ApiPath<(i64, i64)>,
) -> ApiResult<impl IntoResponse> {
    find_user(&state.db, user_id).await?;
    let role = role_name(&state.db, role_id).await?;
    let mut tx = state.db.begin_write().await?;
    sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT (user_id, role_id) DO NOTHING")
        .bind(user_id)
        .bind(role_id)
        .execute(&mut *tx)
        .await
        .map_err(|error| match &error {
            // Deleted between the lookups above and this insert.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                ApiError::not_found(format!("user {user_id} or role {role_id} no longer exists"))
            }
            _ => error.into(),
        })?;
    caller
        .record_in(
            &mut tx,
            audit::USER_ROLE_ASSIGNED,
            "user",
            user_id,
            json!({"role": role}),
        )
        .await?;
    // The user holds the role's permissions from the next request on.
    state.auth.commit(tx, &[Change::User(user_id)]).await?;
    tracing::info!(user_id, role = role.as_str(), "role assigned");
    Ok(Json(json!({"message": "role assigned"})))
}

/// Takes a role away from a user.
#[utoipa::path(
    delete, path = "/admin/users/{user_id}/roles/{role_id}", tag = "admin",
    params(UserIdPath, RoleIdPath),
    responses(
        (status = 204, description = "Role removed"),
        UsersWrite,
        (status = 404, description = "No such user, role, or assignment", body = crate::error::ErrorBody),
        (status = 409, description = "Would remove the last active admin", body = crate::error::ErrorBody),
    )
)]
pub async fn remove_role(
    State(state): State<Arc<RbacState>>,
    caller: Audited<UsersWrite>,
    ApiPath((user_id, role_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    find_user(&state.db, user_id).await?;
    let role = role_name(&state.db, role_id).await?;
    let mut tx = state.db.begin_write().await?;
    if role == ADMIN_ROLE && is_last_active_admin(&state.db, &mut tx, user_id).await? {
        return Err(ApiError::conflict(
            "this is the last active administrator; give the admin role to someone else first",
        ));
    }
    let removed = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
        .bind(user_id)
        .bind(role_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ApiError::not_found(format!(
            "user {user_id} does not have the role {role}"
        )));
    }
    caller
        .record_in(
            &mut tx,
            audit::USER_ROLE_REMOVED,
            "user",
            user_id,
            json!({"role": role}),
        )
        .await?;
    // The role's permissions are refused from the next request on.
    state.auth.commit(tx, &[Change::User(user_id)]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lets a user log in again (with a new login: tokens from before the
/// deactivation stay dead).
#[utoipa::path(
    post, path = "/admin/users/{user_id}/activate", tag = "admin",
    params(UserIdPath),
    responses(
        (status = 200, description = "The user"),
        UsersWrite,
        NoSuchUser,
    )
)]
pub async fn activate(
    State(state): State<Arc<RbacState>>,
    caller: Audited<UsersWrite>,
    ApiPath(user_id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    find_user(&state.db, user_id).await?;
    let mut tx = state.db.begin_write().await?;
    sqlx::query("UPDATE users SET is_active = TRUE, updated_at = $1 WHERE id = $2")
        .bind(crate::db::timestamp::now())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    caller
        .record_in(
            &mut tx,
            audit::USER_ACTIVATED,
            "user",
            user_id,
            serde_json::Value::Null,
        )
        .await?;
    // New logins work from the next request on (older tokens stay dead:
    // their version is gone).
    state.auth.commit(tx, &[Change::User(user_id)]).await?;
    Ok(Json(json!({"id": user_id, "is_active": true})))
}

/// Stops a user from logging in and ends their sessions for good: their
/// access and refresh tokens are refused from the next request on, and stay
/// refused after a reactivation (the token version is bumped).
#[utoipa::path(
    post, path = "/admin/users/{user_id}/deactivate", tag = "admin",
    params(UserIdPath),
    responses(
        (status = 200, description = "The user"),
        UsersWrite,
        NoSuchUser,
        (status = 409, description = "Would deactivate the last active admin or yourself", body = crate::error::ErrorBody),
    )
)]
pub async fn deactivate(
    State(state): State<Arc<RbacState>>,
    caller: Audited<UsersWrite>,
    ApiPath(user_id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    if caller.user.id == user_id {
        return Err(ApiError::conflict("you cannot deactivate your own account"));
    }
    find_user(&state.db, user_id).await?;
    let mut tx = state.db.begin_write().await?;
    if is_last_active_admin(&state.db, &mut tx, user_id).await? {
        return Err(ApiError::conflict(
            "this is the last active administrator and cannot be deactivated",
        ));
    }
    sqlx::query("UPDATE users SET is_active = FALSE, updated_at = $1 WHERE id = $2")
        .bind(crate::db::timestamp::now())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    // is_active alone would refuse the tokens only until a reactivation;
    // the version bump and the revoked refresh tokens make it permanent.
    users::invalidate_tokens(&mut tx, user_id).await?;
    sessions::revoke_all_for_user(&mut tx, user_id).await?;
    caller
        .record_in(
            &mut tx,
            audit::USER_DEACTIVATED,
            "user",
            user_id,
            serde_json::Value::Null,
        )
        .await?;
    // Every token of the user is refused from the next request on.
    state.auth.commit(tx, &[Change::User(user_id)]).await?;
    tracing::info!(user_id, "user deactivated");
    Ok(Json(json!({"id": user_id, "is_active": false})))
}
