//! TODO(skeleton): CSV imports.

use serde_json::{Map, Value};
use xcore_plugin_api::{Manifest, Router};

use crate::Products;

/// The job that runs started imports.
pub const JOB: &str = "import";

/// Adds this part's permissions, migrations, jobs and events.
pub fn declare(manifest: Manifest) -> Manifest {
    manifest.job(JOB, "Runs the CSV imports that were started")
}

/// This part's routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
}

/// OpenAPI `paths` for this part's routes, relative to the prefix.
pub fn openapi_paths() -> Map<String, Value> {
    Map::new()
}

/// Runs every started import.
pub fn run_pending(_products: &Products) -> Result<(), String> {
    Ok(())
}
