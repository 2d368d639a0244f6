//! `products`: the product catalogue (seeds 000 and 003) as an xcore plugin.
//!
//! Mounted at `/api/v1/products`:
//! - products (`/`, `/{id}`, `/bulk`, activate/deactivate), with full-text
//!   search and exact money (see [`catalogue`] and [`fields`]);
//! - categories (`/categories`, see [`categories`]);
//! - suppliers and their import configuration (`/suppliers`, see
//!   [`suppliers`]);
//! - CSV imports run by the plugin's `import` job (`/imports`, see
//!   [`imports`]);
//! - the dashboard (`/analytics/dashboard`, see [`analytics`]).
//!
//! Events: `products.created`, `products.updated`, `products.deleted` and
//! `products.import.*`.

pub mod analytics;
pub mod catalogue;
pub mod categories;
pub mod clock;
pub mod csv_source;
pub mod dialect;
pub mod fields;
pub mod imports;
pub mod money;
pub mod openapi;
pub mod search;
pub mod suppliers;

use serde_json::{Map, Value};
use xcore_plugin_api::{Host, HostError, Manifest, Plugin, Router};

use crate::dialect::Dialect;

/// Permission to read products, categories, suppliers, imports, analytics.
pub const READ: &str = "products:read";
/// Permission to create and change them.
pub const WRITE: &str = "products:write";
/// Permission to delete them.
pub const DELETE: &str = "products:delete";
/// Permission to upload and run imports.
pub const IMPORT: &str = "products:import";

/// The plugin instance.
pub struct Products {
    /// The host's services: the only way to the database and the event bus.
    pub host: Host,
}

impl Products {
    /// The database's SQL dialect (full-text search and JSON arrays differ).
    pub fn dialect(&self) -> Result<Dialect, HostError> {
        self.host.dialect()
    }
}

impl Plugin for Products {
    fn manifest() -> Manifest {
        let manifest = Manifest::new(
            "products",
            "Products",
            env!("CARGO_PKG_VERSION"),
            "/api/v1/products",
        )
        .author("xcore")
        .description("Product catalogue: products, categories, suppliers and CSV imports")
        .tags(&["catalogue", "domain"])
        .permission(READ, "Read products, categories, suppliers and imports")
        .permission(
            WRITE,
            "Create and change products, categories and suppliers",
        )
        .permission(DELETE, "Delete products, categories and suppliers")
        .permission(IMPORT, "Upload and run CSV imports");
        // Migration versions: catalogue and categories use 1..=9, suppliers
        // and imports 10..=19, so each part evolves without renumbering.
        let manifest = catalogue::declare(manifest);
        let manifest = categories::declare(manifest);
        let manifest = suppliers::declare(manifest);
        let manifest = imports::declare(manifest);
        let manifest = analytics::declare(manifest);
        let mut paths = Map::new();
        for part in [
            catalogue::openapi_paths(),
            categories::openapi_paths(),
            suppliers::openapi_paths(),
            imports::openapi_paths(),
            analytics::openapi_paths(),
        ] {
            paths.extend(part);
        }
        manifest.openapi(Value::Object(paths))
    }

    fn router() -> Router<Self> {
        // Literal segments before parameters: `/categories` is declared
        // before `/{id}` so neither shadows the other in the docs.
        let router = Router::new();
        let router = categories::routes(router);
        let router = suppliers::routes(router);
        let router = imports::routes(router);
        let router = analytics::routes(router);
        catalogue::routes(router)
    }

    fn new(host: Host, _config: Value) -> Result<Self, String> {
        Ok(Self { host })
    }

    fn run_job(&self, name: &str) -> Result<(), String> {
        match name {
            imports::JOB => imports::run_pending(self),
            other => Err(format!("no job named {other}")),
        }
    }
}

xcore_plugin_api::export_plugin!(Products);

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use xcore_plugin_api::sdk::full_manifest;

    use super::Products;

    /// Every route is documented, with its method, its path parameters and
    /// responses, so the merged OpenAPI document describes the plugin
    /// exactly.
    #[test]
    fn every_route_has_an_openapi_operation() {
        let manifest = full_manifest::<Products>();
        let paths = manifest.openapi.clone().unwrap_or(Value::Null);
        let paths = paths.as_object().expect("openapi paths");
        for route in &manifest.routes {
            let operation = paths
                .get(&route.path)
                .and_then(|item| item.get(route.method.to_ascii_lowercase()))
                .unwrap_or_else(|| panic!("{} {} is not documented", route.method, route.path));
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{} {} has no responses",
                route.method,
                route.path
            );
            // Parameters may sit on the operation or on the path item.
            let documented: Vec<&str> =
                [&operation["parameters"], &paths[&route.path]["parameters"]]
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
            for segment in route.path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(
                        documented.contains(&name),
                        "{} {}: path parameter {name} is not documented",
                        route.method,
                        route.path
                    );
                }
            }
        }
        // And nothing is documented that is not served.
        for (path, item) in paths {
            let methods = item.as_object().expect("path item").keys();
            for method in methods
                .filter(|key| !matches!(key.as_str(), "parameters" | "summary" | "description"))
            {
                assert!(
                    manifest
                        .routes
                        .iter()
                        .any(|r| r.path == *path && r.method.eq_ignore_ascii_case(method)),
                    "{method} {path} is documented but not served"
                );
            }
        }
    }
}
