//! `GET /admin/audit` (permission `audit:read`): the audit log, newest
//! first, filtered by actor, action and time, in the standard list body.

use std::sync::Arc;

use axum::{
    extract::{FromRef, State},
    response::IntoResponse,
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::{
    auth::Gate,
    db::{timestamp, Database, Placeholders},
    error::{ApiError, ApiResult, FieldError},
    http::{
        answers::Unauthenticated,
        extract::ApiQuery,
        pagination::{window_and_sort, Page, SortOrder},
    },
    rbac::permissions::{AuditRead, Require},
};

/// The routes.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Database: FromRef<S>,
    Arc<Gate>: FromRef<S>,
{
    Router::new().route("/admin/audit", get(list))
}

/// One audit row as operators see it.
#[derive(Debug, Serialize)]
pub struct AuditItem {
    id: i64,
    /// When (RFC 3339, UTC); `timestamp` as in the seed's log entries.
    timestamp: String,
    actor_id: Option<i64>,
    actor: String,
    action: String,
    target: Option<String>,
    ip: Option<String>,
    details: Value,
}

/// Public sort fields and their columns.
const SORTABLE: &[(&str, &str)] = &[
    ("id", "id"),
    ("timestamp", "created_at"),
    ("action", "action"),
    ("actor", "actor"),
];

/// `GET /admin/audit` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    skip: Option<i64>,
    limit: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    #[serde(alias = "date_from")]
    from: Option<String>,
    #[serde(alias = "date_to")]
    to: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

/// A time bound as stored (fixed-width UTC), or the problem with it.
fn time_bound(field: &str, value: Option<&str>) -> Result<Option<String>, FieldError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text.trim())
                .map(|instant| timestamp::format(instant.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    FieldError::new(field, "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
                })
        })
        .transpose()
}

/// A value bound to a filter's placeholder.
enum Bound {
    Int(i64),
    Text(String),
}

/// Lists audit rows with filters, sort and paging.
#[utoipa::path(
    get, path = "/admin/audit", tag = "admin",
    security(("bearer" = [])),
    params(
        ("skip" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20, max 100)"),
        ("actor" = Option<String>, Query, description = "A user id, or an email (also matches the email a failed login tried), or `system`"),
        ("action" = Option<String>, Query, description = "An action (`auth.login`), or a prefix ending in a dot (`auth.`)"),
        ("from" = Option<String>, Query, description = "Rows at or after this RFC 3339 time (alias `date_from`)"),
        ("to" = Option<String>, Query, description = "Rows at or before this RFC 3339 time (alias `date_to`)"),
        ("sort_by" = Option<String>, Query, pattern = "^(id|timestamp|action|actor)$", description = "id, timestamp (default), action or actor"),
        ("sort_order" = Option<String>, Query, pattern = "^(asc|desc)$", description = "asc or desc (default desc)"),
    ),
    responses(
        (status = 200, description = "A page of audit rows: `id`, `timestamp`, `actor_id`, `actor`, `action`, `target`, `ip`, `details`"),
        Unauthenticated,
        (status = 403, description = "Lacks `audit:read`", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid query", body = crate::error::ErrorBody),
    )
)]
pub async fn list(
    State(db): State<Database>,
    _: Require<AuditRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let sorted = window_and_sort(
        query.skip,
        query.limit,
        query.sort_by.as_deref(),
        query.sort_order.as_deref(),
        SORTABLE,
        ("created_at", SortOrder::Desc),
    );
    let from = time_bound("from", query.from.as_deref());
    let to = time_bound("to", query.to.as_deref());
    let mut problems: Vec<FieldError> = Vec::new();
    if let Err(error) = &sorted {
        problems.extend(error.details().iter().cloned());
    }
    let (from, to) = match (from, to) {
        (Ok(from), Ok(to)) => (from, to),
        (from, to) => {
            problems.extend(from.err());
            problems.extend(to.err());
            (None, None)
        }
    };
    if let (Some(from), Some(to)) = (&from, &to) {
        if from > to {
            problems.push(FieldError::new("to", "must not be before from"));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let (window, column, order) = sorted?;

    let mut placeholders = Placeholders::default();
    let mut conditions = Vec::new();
    let mut bound = Vec::new();
    if let Some(actor) = query
        .actor
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match actor.parse::<i64>() {
            Ok(id) => {
                conditions.push(format!("actor_id = {}", placeholders.next_placeholder()));
                bound.push(Bound::Int(id));
            }
            Err(_) => {
                conditions.push(format!("actor = {}", placeholders.next_placeholder()));
                bound.push(Bound::Text(crate::auth::users::normalize_email(actor)));
            }
        }
    }
    if let Some(action) = query
        .action
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        if action.ends_with('.') {
            // A prefix: `substr` rather than LIKE, so `_` in an action is
            // not a wildcard.
            let p = placeholders.next_placeholder();
            conditions.push(format!("substr(action, 1, {}) = {p}", action.len()));
        } else {
            conditions.push(format!("action = {}", placeholders.next_placeholder()));
        }
        bound.push(Bound::Text(action.to_string()));
    }
    if let Some(from) = from {
        conditions.push(format!("created_at >= {}", placeholders.next_placeholder()));
        bound.push(Bound::Text(from));
    }
    if let Some(to) = to {
        conditions.push(format!("created_at <= {}", placeholders.next_placeholder()));
        bound.push(Bound::Text(to));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    macro_rules! bind_filters {
        ($query:expr) => {{
            let mut query = $query;
            for value in &bound {
                query = match value {
                    Bound::Int(id) => query.bind(*id),
                    Bound::Text(text) => query.bind(text.clone()),
                };
            }
            query
        }};
    }
    let count_sql = format!("SELECT COUNT(*) FROM audit_log{filter}");
    let (total,): (i64,) = bind_filters!(sqlx::query_as(&count_sql))
        .fetch_one(db.pool())
        .await?;
    let limit = placeholders.next_placeholder();
    let offset = placeholders.next_placeholder();
    // The id tie-break (same direction) keeps rows written in one
    // microsecond in the order they were written.
    let page_sql = format!(
        "SELECT id, created_at, actor_id, actor, action, target, ip, details FROM audit_log{filter}
         ORDER BY {column} {order}, id {order} LIMIT {limit} OFFSET {offset}",
        order = order.sql()
    );
    let rows = bind_filters!(sqlx::query(&page_sql))
        .bind(window.limit)
        .bind(window.skip)
        .fetch_all(db.pool())
        .await?;
    let items = rows
        .iter()
        .map(|row| {
            let details: String = row.try_get("details")?;
            Ok(AuditItem {
                id: row.try_get("id")?,
                timestamp: row.try_get("created_at")?,
                actor_id: row.try_get("actor_id")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                ip: row.try_get("ip")?,
                details: serde_json::from_str(&details).unwrap_or(Value::String(details)),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(Page::new(items, total, window)))
}
