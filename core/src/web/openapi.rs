//! `/openapi.json`: one OpenAPI 3.1 document for the whole server.
//!
//! The core part is generated at compile time from the `#[utoipa::path]`
//! annotation next to each core handler ([`CoreApi`] lists them), so a route
//! and its documentation change in the same place. Each enabled plugin's
//! manifest fragment (OpenAPI `paths` relative to its prefix) is merged in
//! on every request from the route table the dispatcher serves, so the
//! document follows loads, reloads, enables, disables and removals without
//! any cache to invalidate. Every plugin operation gets the plugin's id as
//! its one tag.
//!
//! Plugin fragments are written by plugin authors, so the merge repairs what
//! would make the whole document invalid rather than trusting them: missing
//! `responses`, undeclared path parameters, `$ref`s that resolve nowhere in
//! the document (a fragment carries paths only: schemas must be inline or
//! the core's `ErrorBody`), and `operationId`s that could collide with
//! another plugin's or the core's.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Map, Value};
use utoipa::{
    openapi::{
        security::{
            ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
        },
        RefOr,
    },
    Modify, OpenApi,
};
use xcore_plugin_sdk::Manifest;

use crate::{
    error::ApiError, plugins::manager::PluginManager, rbac::permissions::PERMISSION_EXTENSION,
};

/// The name of the bearer security scheme core operations refer to.
pub const BEARER_SCHEME: &str = "bearer";

/// The name of the API key security scheme (`X-API-Key`).
pub const API_KEY_SCHEME: &str = "api_key";

/// Operation keys of an OpenAPI path item.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The core routes' part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "xcore API",
        description = "The xcore host: authentication, RBAC, plugins, tasks, events, health and \
            metrics, plus the routes of every enabled plugin (one tag per plugin). Errors \
            always use the `ErrorBody` shape. Send the access token from `POST /auth/login` \
            as `Authorization: Bearer <token>`, or a key from `POST /auth/api-keys` as `X-API-Key: <key>` \
            (not both; keys cannot manage credentials).",
    ),
    paths(
        crate::auth::routes::register,
        crate::auth::routes::login,
        crate::auth::routes::me,
        crate::auth::routes::refresh,
        crate::auth::routes::logout,
        crate::auth::routes::password_reset,
        crate::auth::routes::password_update,
        crate::auth::api_keys::routes::list,
        crate::auth::api_keys::routes::create,
        crate::auth::api_keys::routes::revoke,
        crate::rbac::role_routes::list,
        crate::rbac::role_routes::create,
        crate::rbac::role_routes::get_one,
        crate::rbac::role_routes::update,
        crate::rbac::role_routes::delete,
        crate::rbac::role_routes::grant,
        crate::rbac::role_routes::revoke,
        crate::rbac::permission_routes::list,
        crate::rbac::permission_routes::create,
        crate::rbac::user_admin::list,
        crate::rbac::user_admin::create,
        crate::rbac::user_admin::get_one,
        crate::rbac::user_admin::assign_role,
        crate::rbac::user_admin::remove_role,
        crate::rbac::user_admin::activate,
        crate::rbac::user_admin::deactivate,
        crate::audit::routes::list,
        crate::plugins::routes::list,
        crate::plugins::routes::install,
        crate::plugins::routes::details,
        crate::plugins::routes::uninstall,
        crate::plugins::routes::enable,
        crate::plugins::routes::disable,
        crate::plugins::routes::reload,
        crate::tasks::routes::list,
        crate::tasks::routes::create,
        crate::tasks::routes::details,
        crate::tasks::routes::update,
        crate::tasks::routes::remove,
        crate::tasks::routes::run,
        crate::tasks::routes::pause,
        crate::tasks::routes::resume,
        crate::events::ws::upgrade,
        crate::observability::health::health,
        crate::observability::health::live,
        crate::observability::health::ready,
        crate::observability::metrics::render,
        crate::web::pages::home,
        crate::web::pages::core_docs,
        crate::web::pages::console,
        document,
        crate::web::assets::static_file,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Accounts, tokens and passwords"),
        (name = "admin", description = "Users, roles, permissions and the audit log"),
        (name = "plugins", description = "Plugin lifecycle (`plugins:manage`)"),
        (name = "tasks", description = "Scheduled tasks (`tasks:manage`)"),
        (name = "events", description = "Live events over WebSocket"),
        (name = "observability", description = "Health and metrics"),
        (name = "pages", description = "HTML pages, this document and static files"),
    )
)]
pub struct CoreApi;

/// Adds the bearer scheme the core operations' `security` names, and
/// requires it on every route guarded by a permission (its responses list
/// the permission marker, `responses(UsersRead, ...)`, whose 403 carries
/// [`PERMISSION_EXTENSION`]). Routes that need a token but no permission
/// (`/auth/me`) say `security` themselves.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some("The `access_token` from `POST /auth/login`.".into());
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
        // The second entrance: accepted wherever `bearer` is, except by the
        // routes that manage credentials (see crate::auth::api_keys).
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "A key from `POST /auth/api-keys`; accepted wherever `bearer` is, except \
                 by the routes that manage credentials (refresh, logout, password, API keys).",
            ))),
        );
        let bearer = || {
            vec![SecurityRequirement::new(
                BEARER_SCHEME,
                Vec::<String>::new(),
            )]
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let guarded = match operation.responses.responses.get("403") {
                    Some(RefOr::T(refusal)) => refusal
                        .extensions
                        .as_ref()
                        .is_some_and(|extensions| extensions.contains_key(PERMISSION_EXTENSION)),
                    _ => false,
                };
                if operation.security.is_none() && guarded {
                    operation.security = Some(bearer());
                }
            }
        }
    }
}

/// The whole document: core routes plus every enabled plugin's.
#[utoipa::path(
    get, path = "/openapi.json", tag = "pages",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1); it changes as plugins are loaded, enabled, disabled, reloaded or removed", content_type = "application/json"),
    )
)]
pub async fn document(State(plugins): State<Arc<PluginManager>>) -> Result<Response, ApiError> {
    let table = plugins.table();
    let mut document = core_document()?;
    for generation in table.generations() {
        merge_plugin(
            &mut document,
            &generation.manifest,
            PluginFragment {
                paths: generation.openapi.paths().as_ref(),
                schemas: generation.openapi.schemas().as_ref(),
            },
            &generation.prefix,
        );
    }
    document_standard_errors(&mut document);
    let mut response = Json(document).into_response();
    // It changes with the plugins: always revalidate.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The core part as JSON, with an `operationId` per operation made from its
/// method and path (utoipa's default, the handler's name, repeats: every
/// module has its `list`).
pub fn core_document() -> Result<Value, ApiError> {
    let mut document = serde_json::to_value(CoreApi::openapi()).map_err(ApiError::internal)?;
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            for (method, operation) in operations(item) {
                operation.insert(
                    "operationId".into(),
                    Value::String(operation_id(&method, path)),
                );
            }
        }
    }
    Ok(document)
}

/// The error statuses the server's own layers can answer on an operation,
/// whatever its handler does, with when they apply.
fn standard_errors(
    path: &str,
    method: &str,
    operation: &Map<String, Value>,
) -> Vec<(&'static str, &'static str)> {
    let takes_body = matches!(method, "post" | "put" | "patch");
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|schemes| !schemes.is_empty());
    let rate_limited =
        !(path.starts_with("/health") || path == "/metrics" || path.starts_with("/static/"));
    let mut errors = vec![
        ("400", "Malformed request: unreadable body, query or path"),
        (
            "422",
            "Invalid request: a field, query or path value is out of range or unknown",
        ),
        ("500", "Internal error (details are logged, never sent)"),
    ];
    if secured {
        errors.push(("401", "Missing, invalid, expired or revoked access token"));
        errors.push((
            "403",
            "The caller lacks the permission this operation needs",
        ));
    }
    if path.contains('{') {
        errors.push(("404", "Nothing at this path"));
    }
    if takes_body {
        errors.push(("413", "Body larger than the limit"));
        errors.push(("415", "Unsupported content type"));
    }
    if rate_limited {
        errors.push(("429", "Rate limit reached: see `Retry-After`"));
    }
    errors
}

/// Documents on every operation the error statuses the server's layers
/// (body and query parsing, authentication, RBAC, rate limits, panics)
/// can answer, in the standard error body, where the operation's own
/// annotation does not already: a client must never meet an undocumented
/// status.
fn document_standard_errors(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for (method, operation) in operations(item) {
            let errors = standard_errors(path, &method, operation);
            let Some(responses) = operation
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
            else {
                continue;
            };
            for (status, description) in errors {
                responses.entry(status).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    })
                });
            }
        }
    }
}

/// `get_admin_roles_role_id` for `GET /admin/roles/{role_id}`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        id.push('_');
        let segment = segment.trim_start_matches('{').trim_end_matches('}');
        id.extend(segment.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        }));
    }
    if path == "/" {
        id.push_str("_root");
    }
    id
}

/// The operation objects of a path item, with their method.
fn operations(item: &mut Value) -> Vec<(String, &mut Map<String, Value>)> {
    let Some(item) = item.as_object_mut() else {
        return Vec::new();
    };
    item.iter_mut()
        .filter(|(key, _)| METHODS.contains(&key.as_str()))
        .filter_map(|(key, operation)| operation.as_object_mut().map(|op| (key.clone(), op)))
        .collect()
}

/// A plugin's part of the document, as its manifest declared it.
#[derive(Clone, Copy, Default)]
pub struct PluginFragment<'a> {
    /// OpenAPI `paths`, relative to the plugin's prefix.
    pub paths: Option<&'a Value>,
    /// Component schemas, named `<id>.<Type>`.
    pub schemas: Option<&'a Value>,
}

/// Adds a plugin's tag and its paths under `prefix`. `manifest` gives the
/// plugin's name, description and routes (its own OpenAPI parts are not
/// read: the generation keeps them apart, see `OpenApiText`).
pub fn merge_plugin(
    document: &mut Value,
    manifest: &Manifest,
    fragment: PluginFragment<'_>,
    prefix: &str,
) {
    let id = &manifest.id;
    let tag = json!({
        "name": id,
        "description": format!(
            "Plugin **{}** {} (`{id}`), mounted at `{prefix}`. {}",
            manifest.name, manifest.version, manifest.description
        ),
    });
    if let Some(tags) = object(document).map(|root| {
        root.entry("tags")
            .or_insert_with(|| Value::Array(Vec::new()))
    }) {
        if let Some(tags) = tags.as_array_mut() {
            tags.push(tag);
        }
    }
    let schemas = fragment.schemas;
    let Some(fragment) = fragment.paths.and_then(Value::as_object) else {
        return;
    };
    // The component schemas the SDK generated, named `<id>.<Type>`: only
    // names under the plugin's own id are taken, and never over another's.
    if let Some(schemas) = schemas.and_then(Value::as_object) {
        let scope = format!("{id}.");
        if let Some(known) = object(document)
            .map(|root| root.entry("components").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
            .map(|components| components.entry("schemas").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            for (name, schema) in schemas {
                if name.starts_with(&scope) && !known.contains_key(name) {
                    known.insert(name.clone(), schema.clone());
                }
            }
        }
    }
    // What a fragment's `$ref`s may point at: the core's components and
    // the plugin's own schemas.
    let components =
        json!({"components": document.get("components").cloned().unwrap_or(Value::Null)});
    let Some(paths) = object(document)
        .map(|root| root.entry("paths").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (relative, item) in fragment {
        if !relative.starts_with('/') || !item.is_object() {
            tracing::warn!(
                plugin = id.as_str(),
                path = relative.as_str(),
                "OpenAPI fragment entry skipped: paths must start with / and be objects"
            );
            continue;
        }
        let full = if relative == "/" {
            prefix.to_string()
        } else {
            format!("{prefix}{relative}")
        };
        let mut item = item.clone();
        drop_unresolved_refs(&mut item, &components, id);
        let path_level = declared_path_parameters(item.get("parameters"));
        for (method, operation) in operations(&mut item) {
            operation.insert("tags".into(), json!([id]));
            if let Some(given) = operation.get("operationId").and_then(Value::as_str) {
                let scoped = format!("{id}.{given}");
                operation.insert("operationId".into(), Value::String(scoped));
            }
            operation.entry("responses").or_insert_with(
                || json!({"default": {"description": "See the plugin's documentation"}}),
            );
            let route = manifest.routes.iter().find(|route| {
                route.method.eq_ignore_ascii_case(&method) && route.path == *relative
            });
            if route.is_some_and(|route| route.permission.is_some())
                && !operation.contains_key("security")
            {
                operation.insert("security".into(), json!([{ BEARER_SCHEME: [] }]));
            }
            let mut declared = path_level.clone();
            declared.extend(declared_path_parameters(operation.get("parameters")));
            let missing: Vec<Value> = template_parameters(&full)
                .into_iter()
                .filter(|name| !declared.contains(name))
                .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect();
            if !missing.is_empty() {
                if let Some(parameters) = operation
                    .entry("parameters")
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                {
                    parameters.extend(missing);
                }
            }
        }
        paths.insert(full, item);
    }
}

/// Replaces every `$ref` that does not resolve inside the document (a
/// plugin's own `#/components/...`, or an external URL a validator or
/// ReDoc would try to fetch) with a schema that says so, so one plugin's
/// fragment can never make the whole document invalid.
fn drop_unresolved_refs(value: &mut Value, components: &Value, plugin: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let resolves = reference
                    .strip_prefix('#')
                    .is_some_and(|pointer| components.pointer(pointer).is_some());
                if !resolves {
                    tracing::warn!(
                        plugin,
                        reference = reference.as_str(),
                        "OpenAPI fragment: unresolved $ref replaced"
                    );
                    let description = format!("(unresolved reference {reference})");
                    map.clear();
                    map.insert("description".into(), Value::String(description));
                    return;
                }
            }
            for child in map.values_mut() {
                drop_unresolved_refs(child, components, plugin);
            }
        }
        Value::Array(items) => {
            for child in items {
                drop_unresolved_refs(child, components, plugin);
            }
        }
        _ => {}
    }
}

fn object(value: &mut Value) -> Option<&mut Map<String, Value>> {
    value.as_object_mut()
}

/// Names of the `in: path` parameters declared in a `parameters` list.
fn declared_path_parameters(parameters: Option<&Value>) -> BTreeSet<String> {
    parameters
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|parameter| parameter.get("in").and_then(Value::as_str) == Some("path"))
        .filter_map(|parameter| parameter.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// `{name}` placeholders of a path template.
fn template_parameters(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*').to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xcore_plugin_sdk::manifest::RouteSpec;

    #[test]
    fn core_document_has_every_core_route_once_with_unique_operation_ids() {
        let document = core_document().expect("document");
        assert!(document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")));
        assert_eq!(document["info"]["title"], "xcore API");
        let paths = document["paths"].as_object().expect("paths");
        for path in [
            "/auth/login",
            "/admin/roles/{role_id}",
            "/system/plugins/{plugin_id}/disable",
            "/system/tasks/{task_id}/run",
            "/ws",
            "/health",
            "/metrics",
            "/",
            "/core-docs",
            "/console",
            "/openapi.json",
            "/static/{path}",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        let mut ids = BTreeSet::new();
        for item in paths.values() {
            for (_, operation) in operations(&mut item.clone()) {
                let id = operation["operationId"].as_str().expect("id").to_string();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            }
        }
        assert!(document["components"]["schemas"]["ErrorBody"].is_object());
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(
            document["paths"]["/system/plugins"]["get"]["security"],
            json!([{"bearer": []}])
        );
        // Every route guarded by a permission needs the token and says
        // which permission; a public route that may answer 403 does not.
        let mut guarded = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let permission = &operation["responses"]["403"]["x-permission"];
                if permission.is_string() {
                    guarded += 1;
                    assert_eq!(
                        operation["security"],
                        json!([{"bearer": []}]),
                        "{method} {path}"
                    );
                }
            }
        }
        assert!(guarded >= 30, "only {guarded} guarded operations");
        let register = &document["paths"]["/auth/register"]["post"];
        assert!(register.get("security").is_none(), "{register}");
    }

    #[test]
    fn plugin_paths_are_prefixed_tagged_and_repaired() {
        let mut document = json!({
            "openapi": "3.1.0", "paths": {}, "tags": [],
            "components": {"schemas": {"ErrorBody": {"type": "object"}}},
        });
        let mut manifest = Manifest::new("shop", "Shop", "1.2.0", "/api/v1/shop").openapi(json!({
            "/items/{id}": {"get": {"summary": "One item", "operationId": "getItem"}},
            "/items": {"post": {"responses": {
                "201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                "422": {"description": "Invalid", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
                "500": {"description": "Remote", "content": {"application/json": {"schema": {"$ref": "https://example.com/s.json"}}}},
            }}},
            "no-slash": {"get": {}},
        }));
        manifest.routes.push(RouteSpec {
            method: "POST".into(),
            path: "/items".into(),
            permission: Some("shop:write".into()),
            blocking: false,
            max_body_bytes: None,
        });
        let fragment = PluginFragment {
            paths: manifest.openapi.as_ref(),
            schemas: manifest.openapi_schemas.as_ref(),
        };
        merge_plugin(&mut document, &manifest, fragment, "/shop");
        let get = &document["paths"]["/shop/items/{id}"]["get"];
        assert_eq!(get["tags"], json!(["shop"]));
        assert_eq!(get["operationId"], "shop.getItem");
        assert!(get["responses"]["default"].is_object());
        assert_eq!(get["parameters"][0]["name"], "id");
        assert_eq!(get["parameters"][0]["in"], "path");
        assert!(get.get("security").is_none(), "no permission: public");
        let post = &document["paths"]["/shop/items"]["post"];
        assert_eq!(post["security"], json!([{"bearer": []}]));
        assert!(post.get("parameters").is_none());
        let schema =
            |status: &str| &post["responses"][status]["content"]["application/json"]["schema"];
        assert_eq!(
            schema("201"),
            &json!({"description": "(unresolved reference #/components/schemas/Item)"})
        );
        assert_eq!(
            schema("422"),
            &json!({"$ref": "#/components/schemas/ErrorBody"})
        );
        assert!(
            schema("500").get("$ref").is_none(),
            "external refs are not fetched"
        );
        assert!(document["paths"].get("/shopno-slash").is_none());
        assert_eq!(document["tags"][0]["name"], "shop");
    }

    #[test]
    fn operation_ids_come_from_method_and_path() {
        assert_eq!(
            operation_id("get", "/admin/roles/{role_id}"),
            "get_admin_roles_role_id"
        );
        assert_eq!(operation_id("get", "/openapi.json"), "get_openapi_json");
        assert_eq!(operation_id("get", "/"), "get_root");
    }
}
