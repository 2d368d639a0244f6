//! `/system/plugins` (permission `plugins:manage`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    extract::{DefaultBodyLimit, FromRef, FromRequest, Multipart, Request, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;

use super::manager::PluginManager;
use crate::{
    audit::{self, Audited},
    auth::Gate,
    config::Config,
    db::Database,
    error::{ApiError, ApiResult},
    http::{
        answers::NoSuchPlugin,
        extract::{content_type, json_rejection, ApiPath, ApiQuery},
        pagination::{list_query, sort_in_memory, Page, SortOrder},
    },
    rbac::permissions::{PluginsManage, Require},
};

/// Largest library accepted by upload.
const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// The routes.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<PluginManager>: FromRef<S>,
    Arc<Config>: FromRef<S>,
    Arc<Gate>: FromRef<S>,
    Database: FromRef<S>,
{
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

list_query! {
    /// `GET /system/plugins` query.
    pub struct ListQuery {
        sort_by: "id (default), name, state or version",
        /// Only the plugins serving requests.
        #[serde(default)]
        active_only: bool,
    }
}

/// `{plugin_id}`, for the annotations only: the handlers extract the bare
/// string (see [`crate::rbac::paths`]).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PluginIdPath {
    /// Plugin id
    pub plugin_id: String,
}

/// Sort fields of `GET /system/plugins`.
const SORTABLE: &[(&str, &str)] = &[
    ("id", "id"),
    ("name", "name"),
    ("state", "state"),
    ("version", "version"),
];

/// Lists installed plugins (all of them: they are few).
#[utoipa::path(
    get, path = "/system/plugins", tag = "plugins",
    params(ListQuery),
    responses(
        (status = 200, description = "Every installed plugin with its state and last error"),
        PluginsManage,
    )
)]
pub async fn list(
    State(plugins): State<Arc<PluginManager>>,
    _: Require<PluginsManage>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let (window, field, order) = query.window_and_sort(SORTABLE, ("id", SortOrder::Asc))?;
    let mut items: Vec<_> = plugins
        .list()
        .await
        .into_iter()
        .filter(|plugin| !query.active_only || plugin.active)
        .collect();
    sort_in_memory(
        &mut items,
        field,
        order,
        |a, b| match field {
            "name" => a.name.cmp(&b.name),
            "state" => a.state.cmp(b.state),
            "version" => a.version.cmp(&b.version),
            _ => std::cmp::Ordering::Equal,
        },
        |item| item.id.as_str(),
    );
    Ok(Json(Page::from_all(items, window)))
}

/// One plugin, with its state, error, generation and checksum.
#[utoipa::path(
    get, path = "/system/plugins/{plugin_id}", tag = "plugins",
    params(PluginIdPath),
    responses(
        (status = 200, description = "The plugin: state, routes, last error, generation, checksum", body = crate::plugins::manager::PluginInfo),
        PluginsManage,
        NoSuchPlugin,
    )
)]
pub async fn details(
    State(plugins): State<Arc<PluginManager>>,
    _: Require<PluginsManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plugins.get(&id).await?))
}

/// Serves the plugin again.
#[utoipa::path(
    post, path = "/system/plugins/{plugin_id}/enable", tag = "plugins",
    params(PluginIdPath),
    responses(
        (status = 200, description = "Serving again"),
        PluginsManage,
        NoSuchPlugin,
        (status = 409, description = "Not loaded, or a dependency is not active", body = crate::error::ErrorBody),
    )
)]
pub async fn enable(
    State(plugins): State<Arc<PluginManager>>,
    caller: Audited<PluginsManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let plugin = plugins.enable(&id).await?;
    caller
        .record(audit::PLUGIN_ENABLED, "plugin", &id, json!({}))
        .await;
    Ok(Json(json!({"id": plugin.id, "active": plugin.active})))
}

/// `POST /system/plugins/{id}/disable` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableQuery {
    #[serde(default)]
    cascade: bool,
}

/// Stops serving the plugin.
#[utoipa::path(
    post, path = "/system/plugins/{plugin_id}/disable", tag = "plugins",
    params(
        PluginIdPath,
        ("cascade" = Option<bool>, Query, description = "Disable the plugins that depend on it too"),
    ),
    responses(
        (status = 200, description = "No longer serving"),
        PluginsManage,
        NoSuchPlugin,
        (status = 409, description = "Enabled plugins depend on it (pass cascade)", body = crate::error::ErrorBody),
    )
)]
pub async fn disable(
    State(plugins): State<Arc<PluginManager>>,
    caller: Audited<PluginsManage>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DisableQuery>,
) -> ApiResult<impl IntoResponse> {
    let plugin = plugins.disable(&id, query.cascade).await?;
    caller
        .record(
            audit::PLUGIN_DISABLED,
            "plugin",
            &id,
            json!({"cascade": query.cascade}),
        )
        .await;
    Ok(Json(json!({"id": plugin.id, "active": plugin.active})))
}

/// Loads the plugin's file again.
#[utoipa::path(
    post, path = "/system/plugins/{plugin_id}/reload", tag = "plugins",
    params(PluginIdPath),
    responses(
        (status = 200, description = "The new generation serves"),
        PluginsManage,
        NoSuchPlugin,
        (status = 422, description = "The new file failed; the previous generation keeps serving", body = crate::error::ErrorBody),
    )
)]
pub async fn reload(
    State(plugins): State<Arc<PluginManager>>,
    caller: Audited<PluginsManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let plugin = plugins.reload(&id).await?;
    caller
        .record(
            audit::PLUGIN_RELOADED,
            "plugin",
            &id,
            json!({"generation": plugin.generation}),
        )
        .await;
    Ok(Json(json!({
        "id": plugin.id,
        "status": "reloaded",
        "message": "plugin reloaded",
        "generation": plugin.generation,
    })))
}

/// `POST /system/plugins` JSON body (seed 001).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InstallFromPath {
    /// Expected plugin id.
    name: String,
    /// Path of the `.so`, inside one of `plugins.install_from`.
    source: String,
    /// Expected version, if given.
    #[serde(default)]
    version: Option<String>,
}

/// `POST /system/plugins` multipart body, for the OpenAPI document only
/// (the handler reads the fields itself, so it can stream a large file).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The plugin library (`libxcore_plugin_<id>.so`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Resolves `source` and checks it lies inside an allowed directory.
fn allowed_source(config: &Config, source: &str) -> Result<PathBuf, ApiError> {
    let resolved = Path::new(source).canonicalize().map_err(|error| {
        ApiError::invalid_field("source", format!("cannot read {source}: {error}"))
    })?;
    let allowed = config
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
#[utoipa::path(
    post, path = "/system/plugins", tag = "plugins",
    request_body(
        description = "JSON naming a file in `plugins.install_from`, or a multipart upload whose field `file` is the library",
        content(
            (InstallFromPath = "application/json"),
            (UploadForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Installed, enabled and serving"),
        PluginsManage,
        (status = 409, description = "Already installed, or its prefix is taken", body = crate::error::ErrorBody),
        (status = 422, description = "Not a loadable plugin, or a path outside plugins.install_from", body = crate::error::ErrorBody),
    )
)]
pub async fn install(
    State(plugins): State<Arc<PluginManager>>,
    State(config): State<Arc<Config>>,
    caller: Audited<PluginsManage>,
    request: Request,
) -> ApiResult<impl IntoResponse> {
    let content_type = content_type(request.headers());
    let (bytes, expected_id, expected_version) = if content_type.starts_with("multipart/form-data")
    {
        let mut multipart = Multipart::from_request(request, &())
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
        let Json(body) = Json::<InstallFromPath>::from_request(request, &())
            .await
            .map_err(json_rejection)?;
        let path = allowed_source(&config, &body.source)?;
        let bytes = std::fs::read(&path)
            .map_err(|error| ApiError::invalid_field("source", error.to_string()))?;
        (bytes, Some(body.name), body.version)
    };
    let plugin = plugins
        .install(&bytes, expected_id.as_deref(), expected_version.as_deref())
        .await?;
    caller
        .record(
            audit::PLUGIN_INSTALLED,
            "plugin",
            &plugin.id,
            json!({"version": plugin.version}),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": plugin.id, "status": "installed", "message": "plugin installed", "version": plugin.version}),
        ),
    ))
}

/// `DELETE /system/plugins/{id}` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UninstallQuery {
    #[serde(default)]
    purge: bool,
}

/// Uninstalls a plugin; its data stays unless `?purge=true`.
#[utoipa::path(
    delete, path = "/system/plugins/{plugin_id}", tag = "plugins",
    params(
        PluginIdPath,
        ("purge" = Option<bool>, Query, description = "Also drop its tables, migrations and permissions"),
    ),
    responses(
        (status = 204, description = "Uninstalled"),
        PluginsManage,
        NoSuchPlugin,
        (status = 409, description = "Enabled plugins depend on it", body = crate::error::ErrorBody),
    )
)]
pub async fn uninstall(
    State(plugins): State<Arc<PluginManager>>,
    caller: Audited<PluginsManage>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<UninstallQuery>,
) -> ApiResult<StatusCode> {
    plugins.uninstall(&id, query.purge).await?;
    caller
        .record(
            audit::PLUGIN_UNINSTALLED,
            "plugin",
            &id,
            json!({"purge": query.purge}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
