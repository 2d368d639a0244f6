//! CSV imports of customers (placeholder until the import job lands).

use xcore_plugin_sdk::prelude::*;

use crate::Crm;

/// The imports' routes.
pub fn routes(router: Router<Crm>) -> Router<Crm> {
    router.job(
        "import",
        "Imports uploaded customer CSV files",
        |_: &Crm| Ok::<_, String>(()),
    )
}
