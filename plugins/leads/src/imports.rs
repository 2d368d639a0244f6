//! imports (to come).

use xcore_plugin_sdk::prelude::*;

use crate::Leads;

/// The imports routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
}
