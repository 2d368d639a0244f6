//! Placeholder, filled in by a later commit.

use xcore_plugin_sdk::prelude::*;

use crate::Pricing;

/// The routes.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    router
}
