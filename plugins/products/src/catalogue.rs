//! TODO(skeleton): catalogue routes.

use serde_json::{Map, Value};
use xcore_plugin_api::{Manifest, Router};

use crate::Products;

/// Adds this part's permissions, migrations, jobs and events.
pub fn declare(manifest: Manifest) -> Manifest {
    manifest
}

/// This part's routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
}

/// OpenAPI `paths` for this part's routes, relative to the prefix.
pub fn openapi_paths() -> Map<String, Value> {
    Map::new()
}
