//! agents (to come).

use xcore_plugin_sdk::prelude::*;

use crate::Leads;

/// The agents routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
}
