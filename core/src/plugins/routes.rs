//! `/system/plugins` (permission `plugins:manage`).

use std::path::{Path, PathBuf};

use axum::{
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State},
    http::{header, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    app::AppState,
    error::{ApiError, ApiResult},
    http::extract::{json_rejection, ApiPath, ApiQuery},
    rbac::permissions::{PluginsManage, Require},
};

/// Largest library accepted by upload.
const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/system/plugins",
            get(list)
                .post(install)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/system/plugins/{plugin_id}",
            get(details).delete(uninstall),
        )
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

/// `POST /system/plugins` JSON body (seed 001).
#[derive(Debug, Deserialize)]
pub struct InstallFromPath {
    /// Expected plugin id.
    name: String,
    /// Path of the `.so`, inside one of `plugins.install_from`.
    source: String,
    /// Expected version, if given.
    #[serde(default)]
    version: Option<String>,
}

/// Resolves `source` and checks it lies inside an allowed directory.
fn allowed_source(state: &AppState, source: &str) -> Result<PathBuf, ApiError> {
    let resolved = Path::new(source).canonicalize().map_err(|error| {
        ApiError::invalid_field("source", format!("cannot read {source}: {error}"))
    })?;
    let allowed = state
        .config
        .plugins
        .install_from
        .iter()
        .filter_map(|dir| Path::new(dir).canonicalize().ok())
        .any(|dir| resolved.starts_with(dir));
    if allowed {
        Ok(resolved)
    } else {
        Err(ApiError::invalid_field(
            "source",
            "not inside a directory listed in plugins.install_from",
        ))
    }
}

/// Installs a plugin: a multipart upload (field `file`) or JSON
/// `{"name", "source", "version"}` naming a file in an allowed directory.
pub async fn install(
    State(state): State<AppState>,
    _: Require<PluginsManage>,
    request: Request,
) -> ApiResult<impl IntoResponse> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (bytes, expected_id, expected_version) = if content_type.starts_with("multipart/form-data")
    {
        let mut multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        let mut file = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|error| ApiError::bad_request(error.body_text()))?
        {
            if field.name() == Some("file") {
                file = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|error| ApiError::bad_request(error.body_text()))?,
                );
            }
        }
        let file =
            file.ok_or_else(|| ApiError::invalid_field("file", "required: the plugin library"))?;
        (file.to_vec(), None, None)
    } else {
        let Json(body) = Json::<InstallFromPath>::from_request(request, &state)
            .await
            .map_err(json_rejection)?;
        let path = allowed_source(&state, &body.source)?;
        let bytes = std::fs::read(&path)
            .map_err(|error| ApiError::invalid_field("source", error.to_string()))?;
        (bytes, Some(body.name), body.version)
    };
    let plugin = state
        .plugins
        .install(&bytes, expected_id.as_deref(), expected_version.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": plugin.id, "status": "installed", "message": "plugin installed", "version": plugin.version}),
        ),
    ))
}

/// `DELETE /system/plugins/{id}` query.
#[derive(Debug, Deserialize)]
pub struct UninstallQuery {
    #[serde(default)]
    purge: bool,
}

/// Uninstalls a plugin; its data stays unless `?purge=true`.
pub async fn uninstall(
    State(state): State<AppState>,
    _: Require<PluginsManage>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<UninstallQuery>,
) -> ApiResult<StatusCode> {
    state.plugins.uninstall(&id, query.purge).await?;
    Ok(StatusCode::NO_CONTENT)
}
