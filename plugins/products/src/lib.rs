//! `products`: the product catalogue (seeds 000 and 003) as an xcore plugin.
//!
//! Mounted at `/api/v1/products`:
//! - products (`/`, `/{id}`, `/bulk`, activate/deactivate), with full-text
//!   search and exact money (see [`catalogue`] and [`fields`]);
//! - categories (`/categories`, see [`categories`]);
//! - suppliers and their import configuration (`/suppliers`, see
//!   [`suppliers`]);
//! - CSV imports run by the plugin's `import` job (`/imports`, see
//!   [`imports`]), uploaded or fetched from a URL, maybe at a scheduled
//!   time (see [`url_imports`]);
//! - the dashboard (`/analytics/dashboard`, see [`analytics`]);
//! - seed 003's camelCase names (`minPrice`, `categoryId`, `isActive`,
//!   `clearCategory`...) next to the API's own (see [`seed_names`]).
//!
//! Events: `products.created`, `products.updated`, `products.deleted`,
//! `products.bulk` and `products.import.*`; the ones that change prices
//! carry the old and new price (see [`price_changes`]).
//!
//! # Layout
//!
//! Each part owns its migrations (`declare`) and its routes (`routes`),
//! merged in [`Plugin::router`]; the OpenAPI document is generated from
//! that route table and the handlers' types. Handlers answer errors as
//! [`Response`]s: a failed host call converts with `?` (the host's
//! [`HostError`](xcore_plugin_sdk::HostError) never carries SQL text), and
//! the few failures that mean something here (a taken SKU or name, a row
//! still referenced) are matched on its variant where they can happen.
//! This file holds what every part shares: the permissions and the two
//! extractors for what products reads by hand ([`Id`], [`JsonObject`]).

pub mod analytics;
pub mod catalogue;
pub mod categories;
pub mod csv_source;
pub mod fields;
pub mod imports;
pub mod money;
pub mod price_changes;
pub mod search;
pub mod seed_names;
pub mod suppliers;
pub mod url_imports;

use std::{
    marker::PhantomData,
    sync::atomic::{AtomicBool, Ordering},
};

use serde_json::Map;
use xcore_plugin_sdk::{extract::FromRequest, openapi::Operation, prelude::*};

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
    /// Set by `shutdown`, so the start hook stops waiting for an
    /// interrupted import (see [`imports::resume_after_load`]).
    pub stopping: AtomicBool,
    /// Wakes a run waiting for a scheduled import (see [`url_imports`]).
    pub wake: url_imports::Wake,
}

impl Products {
    /// Whether the host is dropping this instance.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Publishes `<id>.<topic>`; a failure is logged, not returned: the
    /// write it reports has already happened.
    pub fn announce<T: serde::Serialize>(&self, topic: &str, data: &T) {
        self.host
            .publish_or_warn(topic, data, "cannot publish a products event");
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
        .user_permission(READ, "Read products, categories, suppliers and imports")
        .permission(
            WRITE,
            "Create and change products, categories and suppliers",
        )
        .permission(DELETE, "Delete products, categories and suppliers")
        .permission(IMPORT, "Upload and run CSV imports");
        // Migration versions: catalogue and categories use 1..=9, suppliers
        // and imports 10..=19, so each part evolves without renumbering.
        let manifest = catalogue::declare(manifest);
        let manifest = suppliers::declare(manifest);
        imports::declare(manifest)
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
        Ok(Self {
            host,
            stopping: AtomicBool::new(false),
            wake: url_imports::Wake::default(),
        })
    }

    fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake.notify();
    }
}

xcore_plugin_sdk::export_plugin!(Products);

/// The `{id}` of a route (a positive integer, anything else a 404), as
/// every module of this plugin names it.
pub use xcore_plugin_sdk::Id;

/// A JSON object body kept as its fields (400 when not JSON, 422 when not
/// an object): products validates its inputs by hand, so every problem is
/// reported at once, `null` is told from absent and CSV-style strings
/// (`"12,50"`) are accepted. `T` is the shape the OpenAPI document shows.
pub struct JsonObject<T> {
    /// The body's fields.
    pub fields: Map<String, Value>,
    shape: PhantomData<T>,
}

impl<T: ToSchema> FromRequest for JsonObject<T> {
    const READS: Reads = Reads::BODY;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        match request.json::<Value>()? {
            Value::Object(fields) => Ok(Self {
                fields,
                shape: PhantomData,
            }),
            _ => Err(Response::invalid("body", "must be a JSON object")),
        }
    }

    fn document(operation: &mut Operation) {
        operation.request_body::<T>();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use xcore_plugin_sdk::testing::assert_routes_documented;

    use super::Products;

    /// Every served route is documented (summary, success, path
    /// parameters, nothing documented that is not served), every body a
    /// route takes is documented, and imports resume after a load.
    #[test]
    fn every_route_has_an_openapi_operation() {
        let manifest = assert_routes_documented::<Products>();
        let paths = manifest.openapi.clone().unwrap_or(Value::Null);
        for route in &manifest.routes {
            // Activating and starting take no body; every other write does.
            if matches!(route.method.as_str(), "POST" | "PUT")
                && !route.path.ends_with("activate")
                && !route.path.ends_with("/start")
            {
                let operation = &paths[&route.path][route.method.to_ascii_lowercase()];
                assert!(
                    operation["requestBody"]["content"].is_object(),
                    "{} {} documents no body",
                    route.method,
                    route.path
                );
            }
        }
        assert!(manifest.on_start, "interrupted imports resume after a load");
        assert!(manifest.jobs.iter().any(|job| job.name == "import"));
    }
}
