//! `leads`: the lead-generation product of seed 004 (BerinIA) as an xcore
//! plugin.
//!
//! Mounted at `/api/v1/leads`; leads sit at the prefix's root:
//! - leads (`/`, `/{id}`, `/status/{status}`, `/export`, `/import`), with
//!   status moves, duplicate refusal and full-text search (see [`leads`],
//!   [`filters`], [`search`], [`export`], [`imports`]);
//! - niches with their stats and recommendations ([`niches`]);
//! - campaigns with template checks, status moves and the sending job
//!   ([`campaigns`], [`sending`]);
//! - rule-based agents run on the host's scheduler ([`agents`]);
//! - statistics ([`stats`]), the activity log ([`activity`]), settings
//!   documents ([`settings`]) and signed webhooks ([`webhooks`]).
//!
//! The seed's authentication, users, roles and API keys are the host's
//! (`/auth/*`, `/admin/*`); this plugin only defines its permissions.
//!
//! Events: `leads.created`, `leads.status_changed`, `leads.converted`,
//! `leads.campaign.status_changed`, `leads.agent.failed`.
//!
//! # Layout
//!
//! Each part owns its routes (`routes`) merged in [`Plugin::router`]; the
//! schema is migrations per dialect (`migrations/`: 1 the tables, 2 and 3
//! the list indexes that `page` walks). This file holds
//! what every part shares: permissions, the `{id}` extractor, events and
//! the activity log.

pub mod activity;
pub mod agents;
pub mod campaigns;
pub mod export;
pub mod filters;
pub mod imports;
pub mod json_text;
pub mod leads;
pub mod niches;
pub mod page;
pub mod search;
pub mod sending;
pub mod settings;
pub mod signature;
pub mod stats;
pub mod webhooks;

use xcore_plugin_sdk::prelude::*;

/// Every lead status, in funnel order.
pub const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "lost"];

/// Permission to read leads, niches, campaigns, agents, stats and logs.
pub const READ: &str = "leads:read";
/// Permission to create and change them.
pub const WRITE: &str = "leads:write";
/// Permission to delete them.
pub const DELETE: &str = "leads:delete";
/// Permission to read and change settings and manage agents.
pub const ADMIN: &str = "leads:admin";

/// The plugin instance.
pub struct Leads {
    /// The host's services: the only way to the database, events and HTTP.
    pub host: Host,
}

impl Leads {
    /// Publishes `leads.<topic>`; a failure is logged, not returned: the
    /// write it reports has already happened.
    pub fn announce<T: serde::Serialize>(&self, topic: &str, data: &T) {
        self.host
            .publish_or_warn(topic, data, "cannot publish a leads event");
    }
}

impl Plugin for Leads {
    fn manifest() -> Manifest {
        xcore_plugin_sdk::manifest!("leads", "Leads", "/api/v1/leads")
            .tags(&["leads", "domain"])
            .user_permission(
                READ,
                "Read leads, niches, campaigns, agents, stats and logs",
            )
            .permission(WRITE, "Create and change leads, niches and campaigns")
            .permission(DELETE, "Delete leads, niches, campaigns and agents")
            .permission(ADMIN, "Settings and agents")
            .migration(
                1,
                "leads, niches, campaigns, deliveries, agents, activity, settings",
                include_str!("../migrations/sqlite/0001_leads.sql"),
                include_str!("../migrations/postgres/0001_leads.sql"),
            )
            .migration(
                2,
                "list indexes: status + sort column (+ source), status + id",
                include_str!("../migrations/sqlite/0002_list_indexes.sql"),
                include_str!("../migrations/postgres/0002_list_indexes.sql"),
            )
            .migration(
                3,
                "list indexes: status + updated_at, source + score",
                include_str!("../migrations/sqlite/0003_range_and_update_indexes.sql"),
                include_str!("../migrations/postgres/0003_range_and_update_indexes.sql"),
            )
            .event("created")
            .event("status_changed")
            .event("converted")
            .event("campaign.status_changed")
            .event("agent.failed")
    }

    fn router() -> Router<Self> {
        // Literal segments (`/niches`, `/export`, ...) are declared before
        // the leads' `/{id}` so the documentation lists them first.
        let router = Router::new();
        let router = niches::routes(router);
        let router = campaigns::routes(router);
        let router = sending::routes(router);
        let router = agents::routes(router);
        let router = stats::routes(router);
        let router = activity::routes(router);
        let router = settings::routes(router);
        let router = webhooks::routes(router);
        let router = export::routes(router);
        let router = imports::routes(router);
        leads::routes(router)
    }

    fn new(host: Host, _config: Value) -> Result<Self, String> {
        Ok(Self { host })
    }
}

xcore_plugin_sdk::export_plugin!(Leads);

/// The `{id}` of a route (a positive integer, anything else a 404), as
/// every module of this plugin names it.
pub use xcore_plugin_sdk::Id;

/// An integer that may be absent, bound as text for `CAST($n AS BIGINT)`.
///
/// The host binds a JSON `null` as a text parameter and an integer as an
/// `INT8`; PostgreSQL connections cache a statement with the parameter
/// types of its first run, so a statement run once with `null` and once
/// with a number at the same placeholder sends the number's binary form
/// as text (refused: "invalid byte sequence 0x00"). Always text, with the
/// cast in the SQL, keeps one type per placeholder on both databases.
pub fn nullable(value: Option<i64>) -> Option<String> {
    value.map(|value| value.to_string())
}

/// Field problems gathered by a validation, answered as one 422.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<(String, String)>);

impl Problems {
    /// Records a problem with `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_string(), message.into()));
    }

    /// `Ok` when nothing was recorded, else the 422 naming every field.
    pub fn finish(self) -> Result<(), Response> {
        if self.0.is_empty() {
            return Ok(());
        }
        let details: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(field, message)| (field.as_str(), message.as_str()))
            .collect();
        Err(Response::validation(&details))
    }
}

/// The 409 of a write refused by a unique name (niches, campaigns and
/// agents each have one): `what` is the thing named, with its article
/// ("a campaign"). Any other host error passes through.
pub fn name_taken(what: &'static str) -> impl Fn(HostError) -> Response {
    move |error| match error {
        HostError::UniqueViolation { .. } => Response::error_with_details(
            409,
            "CONFLICT",
            &format!("{what} with this name already exists"),
            &[("name", "already used")],
        ),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use xcore_plugin_sdk::testing::assert_routes_documented;

    use super::Leads;

    /// Every served route has a documented operation (summary, success,
    /// path parameters), nothing is documented that is not served, and the
    /// plugin's jobs are declared.
    #[test]
    fn every_route_has_an_openapi_operation() {
        let manifest = assert_routes_documented::<Leads>();
        for job in ["send_campaigns", "run_agents", "import"] {
            assert!(manifest.jobs.iter().any(|j| j.name == job), "job {job}");
        }
    }
}
