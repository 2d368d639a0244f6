//! export (to come).

use xcore_plugin_sdk::prelude::*;

use crate::Leads;

/// The export routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
}
