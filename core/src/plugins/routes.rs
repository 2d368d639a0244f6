//! `/system/plugins` (permission `plugins:manage`).

use axum::{
    extract::State,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    app::AppState,
    error::ApiResult,
    http::extract::{ApiPath, ApiQuery},
    rbac::permissions::{PluginsManage, Require},
};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/system/plugins", get(list))
        .route("/system/plugins/{plugin_id}", get(details))
        .route("/system/plugins/{plugin_id}/enable", post(enable))
        .route("/system/plugins/{plugin_id}/disable", post(disable))
        .route("/system/plugins/{plugin_id}/reload", post(reload))
}

/// `GET /system/plugins` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    active_only: bool,
}

/// Lists installed plugins (all of them: they are few).
pub async fn list(
    State(state): State<AppState>,
    _: Require<PluginsManage>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let items: Vec<_> = state
        .plugins
        .list()
        .await
        .into_iter()
        .filter(|plugin| !query.active_only || plugin.active)
        .collect();
    let total = items.len();
    Ok(Json(
        json!({"total": total, "skip": 0, "limit": total, "items": items, "has_more": false}),
    ))
}

/// One plugin, with its state, error, generation and checksum.
pub async fn details(
    State(state): State<AppState>,
    _: Require<PluginsManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.plugins.get(&id).await?))
}

/// Serves the plugin again.
pub async fn enable(
    State(state): State<AppState>,
    _: Require<PluginsManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let plugin = state.plugins.enable(&id).await?;
    Ok(Json(json!({"id": plugin.id, "active": plugin.active})))
}

/// `POST /system/plugins/{id}/disable` query.
#[derive(Debug, Deserialize)]
pub struct DisableQuery {
    #[serde(default)]
    cascade: bool,
}

/// Stops serving the plugin.
pub async fn disable(
    State(state): State<AppState>,
    _: Require<PluginsManage>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DisableQuery>,
) -> ApiResult<impl IntoResponse> {
    let plugin = state.plugins.disable(&id, query.cascade).await?;
    Ok(Json(json!({"id": plugin.id, "active": plugin.active})))
}

/// Loads the plugin's file again.
pub async fn reload(
    State(state): State<AppState>,
    _: Require<PluginsManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let plugin = state.plugins.reload(&id).await?;
    Ok(Json(json!({
        "id": plugin.id,
        "status": "reloaded",
        "message": "plugin reloaded",
        "generation": plugin.generation,
    })))
}
