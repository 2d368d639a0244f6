//! `/admin/permissions`: list and create `resource:action` permissions.
//! A new permission is granted to `admin` at once (see `store`).

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::{Deserialize, Serialize};
use sqlx::{any::AnyRow, Row};

use super::RbacState;
use super::{
    permissions::{parse_permission_name, Require, RolesRead, RolesWrite},
    store,
};
use crate::{
    audit::{self, Audited},
    db::Placeholders,
    error::{ApiError, ApiResult, FieldError},
    http::{
        answers::{InvalidInput, NameTaken},
        extract::{ApiJson, ApiQuery},
        pagination::{list_query, Page, SortOrder},
    },
};

/// A permission.
#[derive(Debug, Serialize)]
pub struct Permission {
    id: i64,
    name: String,
    description: Option<String>,
    resource: String,
    action: String,
}

fn from_row(row: &AnyRow) -> Result<Permission, sqlx::Error> {
    Ok(Permission {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        resource: row.try_get("resource")?,
        action: row.try_get("action")?,
    })
}

list_query! {
    /// `GET /admin/permissions` query.
    pub struct ListQuery {
        sort_by: "name (default), resource, id or created_at",
        /// Only this resource's permissions.
        resource: Option<String>,
    }
}

/// Sort fields of `GET /admin/permissions`: public name and column.
const SORTABLE: &[(&str, &str)] = &[
    ("name", "name"),
    ("resource", "resource"),
    ("id", "id"),
    ("created_at", "created_at"),
];

/// Lists permissions by name, optionally for one resource.
#[utoipa::path(
    get, path = "/admin/permissions", tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of permissions"),
        RolesRead,
        InvalidInput,
    )
)]
pub async fn list(
    State(state): State<Arc<RbacState>>,
    _: Require<RolesRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let (window, column, order) = query.window_and_sort(SORTABLE, ("name", SortOrder::Asc))?;
    let mut placeholders = Placeholders::default();
    let filter = match &query.resource {
        Some(_) => format!(" WHERE resource = {}", placeholders.next_placeholder()),
        None => String::new(),
    };
    let count_sql = format!("SELECT COUNT(*) FROM permissions{filter}");
    let mut count = sqlx::query_as::<_, (i64,)>(&count_sql);
    if let Some(resource) = &query.resource {
        count = count.bind(resource);
    }
    let (total,) = count.fetch_one(state.db.pool()).await?;
    let limit = placeholders.next_placeholder();
    let offset = placeholders.next_placeholder();
    let sql = format!(
        "SELECT id, name, description, resource, action FROM permissions{filter} ORDER BY {column} {}, name LIMIT {limit} OFFSET {offset}",
        order.sql()
    );
    let mut page = sqlx::query(&sql);
    if let Some(resource) = &query.resource {
        page = page.bind(resource);
    }
    let items = page
        .bind(window.limit)
        .bind(window.skip)
        .fetch_all(state.db.pool())
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Page::new(items, total, window)))
}

/// `POST /admin/permissions` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreatePermission {
    #[schema(pattern = "^[a-z0-9_.-]{1,64}:[a-z0-9_.-]{1,64}$")]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

/// Creates a permission (granted to admin).
#[utoipa::path(
    post, path = "/admin/permissions", tag = "admin",
    request_body = CreatePermission,
    responses(
        (status = 201, description = "The permission (granted to admin)"),
        RolesWrite,
        NameTaken,
        InvalidInput,
    )
)]
pub async fn create(
    State(state): State<Arc<RbacState>>,
    caller: Audited<RolesWrite>,
    ApiJson(body): ApiJson<CreatePermission>,
) -> ApiResult<impl IntoResponse> {
    let (resource, action) = parse_permission_name(&body.name).ok_or_else(|| {
        ApiError::invalid_field(
            "name",
            "must be resource:action in lower-case letters, digits, _ - .",
        )
    })?;
    let mut problems = Vec::new();
    if body
        .resource
        .as_deref()
        .is_some_and(|given| given != resource)
    {
        problems.push(FieldError::new(
            "resource",
            format!("must be {resource:?}, the part of name before the colon"),
        ));
    }
    if body.action.as_deref().is_some_and(|given| given != action) {
        problems.push(FieldError::new(
            "action",
            format!("must be {action:?}, the part of name after the colon"),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let id = store::create_permission(
        &state.db,
        &state.auth,
        &body.name,
        body.description.as_deref(),
        "core",
    )
    .await?;
    // After the fact: the permission is created in a transaction of its own
    // (shared with plugin registration).
    caller
        .record(
            audit::PERMISSION_CREATED,
            "permission",
            id,
            serde_json::json!({"name": body.name}),
        )
        .await;
    let row = sqlx::query(
        "SELECT id, name, description, resource, action FROM permissions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(state.db.pool())
    .await?;
    Ok((StatusCode::CREATED, Json(from_row(&row)?)))
}
