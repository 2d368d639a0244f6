//! `crm`: the sales CRM of seed 001's `erp_crm` ("Module CRM complet") as
//! an xcore plugin, mounted at `/api/v1/crm`.
//!
//! # Layout
//!
//! - [`customers`]: companies and people, their contacts, full-text
//!   search, and the CSV export (read from the database in pages);
//! - [`imports`]: CSV imports of customers, run by the plugin's `import`
//!   job with per-line errors;
//! - [`pipelines`]: pipelines and their ordered stages (a default pipeline
//!   comes with the install, see migration 1);
//! - [`opportunities`]: deals, their lines priced from the products
//!   plugin's catalogue (through [`Host::call`], with the caller's rights),
//!   stage moves, won/lost and the stage history;
//! - [`activities`]: calls, meetings, tasks, emails and notes, and the
//!   `due_activities` job that publishes `crm.activity.due`;
//! - [`dashboard`]: pipeline value, won/lost, forecast and activity counts,
//!   read from [`totals`], the running totals every write of a deal keeps
//!   (and the `rebuild_totals` job recomputes);
//! - [`money`], [`search`], [`dates`]: exact amounts, full-text queries and
//!   the date formats the API accepts.
//!
//! Each part owns its routes (`routes`), merged in [`Plugin::router`]; the
//! OpenAPI document is generated from that table and the handlers' types.
//! Events: `crm.customer.created`, `crm.opportunity.created`,
//! `crm.opportunity.stage_changed`, `crm.opportunity.won`,
//! `crm.opportunity.lost`, `crm.activity.due`.

pub mod activities;
pub mod customers;
pub mod dashboard;
pub mod dates;
pub mod imports;
pub mod money;
pub mod opportunities;
pub mod pipelines;
pub mod search;
pub mod totals;

use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};
use xcore_plugin_sdk::prelude::*;
pub use xcore_plugin_sdk::Clause;

/// Permission to read customers, pipelines, opportunities, activities and
/// the dashboard.
pub const READ: &str = "crm:read";
/// Permission to create and change them.
pub const WRITE: &str = "crm:write";
/// Permission to delete them.
pub const DELETE: &str = "crm:delete";
/// Permission to manage pipelines and run imports.
pub const ADMIN: &str = "crm:admin";

/// Where the products plugin is mounted unless the operator says otherwise
/// (`[plugins.crm.config] products_prefix`).
const PRODUCTS_PREFIX: &str = "/api/v1/products";

/// The plugin instance.
pub struct Crm {
    /// The host's services: the only way to the database and the event bus.
    pub host: Host,
    /// Where catalogue prices are read (the products plugin's prefix).
    pub products_prefix: String,
}

impl Crm {
    /// Publishes `crm.<topic>`; a failure is logged, not returned: the
    /// write it reports has already happened.
    pub fn announce<T: serde::Serialize>(&self, topic: &str, data: &T) {
        self.host
            .publish_or_warn(topic, data, "cannot publish a crm event");
    }
}

impl Plugin for Crm {
    fn manifest() -> Manifest {
        Manifest::new("crm", "CRM", env!("CARGO_PKG_VERSION"), "/api/v1/crm")
            .author("xcore")
            .description(
                "Customers, contacts, pipelines, opportunities, activities and the sales dashboard",
            )
            .tags(&["crm", "customers", "domain"])
            .depends_on("products", "^0.1")
            .user_permission(
                READ,
                "Read customers, opportunities, activities and the dashboard",
            )
            .permission(
                WRITE,
                "Create and change customers, opportunities and activities",
            )
            .permission(DELETE, "Delete customers, opportunities and activities")
            .permission(ADMIN, "Manage pipelines and stages, import customers")
            .migration(
                1,
                "customers, pipelines, opportunities, activities, imports",
                include_str!("../migrations/sqlite/0001_crm.sql"),
                include_str!("../migrations/postgres/0001_crm.sql"),
            )
            .migration(
                2,
                "running totals of the opportunities for the dashboard",
                include_str!("../migrations/sqlite/0002_totals.sql"),
                include_str!("../migrations/postgres/0002_totals.sql"),
            )
            .event("customer.created")
            .event("opportunity.created")
            .event("opportunity.stage_changed")
            .event("opportunity.won")
            .event("opportunity.lost")
            .event("activity.due")
            .event("import.completed")
    }

    fn router() -> Router<Self> {
        // Literal segments before parameters (`/customers/export` before
        // `/customers/{id}`) so neither shadows the other in the docs.
        let router = Router::new();
        let router = imports::routes(router);
        let router = customers::routes(router);
        let router = pipelines::routes(router);
        let router = opportunities::routes(router);
        let router = activities::routes(router);
        dashboard::routes(router)
    }

    fn new(host: Host, config: Value) -> Result<Self, String> {
        let products_prefix = config
            .get("products_prefix")
            .and_then(Value::as_str)
            .unwrap_or(PRODUCTS_PREFIX)
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            host,
            products_prefix,
        })
    }
}

xcore_plugin_sdk::export_plugin!(Crm);

/// The `{id}` of a route (a positive integer, anything else a 404), as
/// every module of this plugin names it.
pub use xcore_plugin_sdk::Id;

/// Reads a flag as SQLite (0/1) and PostgreSQL (`true`/`false`) return it.
pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(value) => value,
        Value::Number(number) => number.as_i64().unwrap_or(0) != 0,
        _ => false,
    })
}

/// An optional id as a statement parameter for `CAST($n AS BIGINT)`:
/// text or NULL. A parameter bound sometimes as NULL (text) and sometimes
/// as an integer would give one cached PostgreSQL statement two types;
/// as text it always has one.
pub fn nullable_id(id: Option<i64>) -> Value {
    id.map_or(Value::Null, |id| Value::String(id.to_string()))
}

/// The standard 422 for a list of `(field, message)`.
pub fn invalid(problems: &[(String, String)]) -> Response {
    let details: Vec<(&str, &str)> = problems
        .iter()
        .map(|(field, message)| (field.as_str(), message.as_str()))
        .collect();
    Response::validation(&details)
}

/// A partial update: the fields of the `patch` object over `current`,
/// read as the input `I` a create takes, so an update is checked exactly
/// like a create. 422 when the patch is not an object or the merge does
/// not read.
pub fn patched<I: DeserializeOwned>(current: &impl Serialize, patch: Value) -> Result<I, Response> {
    let Value::Object(patch) = patch else {
        return Err(Response::invalid("body", "must be a JSON object"));
    };
    let mut merged = serde_json::to_value(current)
        .map_err(|error| Response::plugin_error(&error.to_string()))?;
    for (field, value) in patch {
        merged[field] = value;
    }
    serde_json::from_value(merged).map_err(|error| Response::invalid("body", &error.to_string()))
}

/// The standard 404 for a missing `what`.
pub fn missing(what: &str) -> Response {
    Response::not_found(&format!("no such {what}"))
}

/// Ids joined by commas for an `IN (...)` list written into the SQL:
/// integers only, never client text.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use xcore_plugin_sdk::testing::assert_routes_documented;

    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::{patched, Crm};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Input {
        name: String,
        notes: Option<String>,
    }

    /// A patch changes the fields it names and keeps the others; what is
    /// not an object, or does not read as the input, is a 422.
    #[test]
    fn a_patch_is_merged_over_the_current_row() {
        let current = Input {
            name: "Acme".into(),
            notes: Some("old".into()),
        };
        let input: Input = patched(&current, json!({"notes": null})).expect("merged");
        assert_eq!(
            input,
            Input {
                name: "Acme".into(),
                notes: None
            }
        );
        let not_object = patched::<Input>(&current, json!([1])).expect_err("array");
        assert_eq!(not_object.status, 422);
        let wrong = patched::<Input>(&current, json!({"name": 5})).expect_err("type");
        assert_eq!(wrong.status, 422);
    }

    /// Every served route is documented (summary, success, path
    /// parameters), and the plugin's jobs are declared.
    #[test]
    fn every_route_has_an_openapi_operation() {
        let manifest = assert_routes_documented::<Crm>();
        assert!(manifest.jobs.iter().any(|job| job.name == "due_activities"));
        assert!(manifest.jobs.iter().any(|job| job.name == "import"));
    }
}
