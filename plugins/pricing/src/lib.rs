//! `pricing`: catalogue prices and discounts (seed 003), and Toprix, the
//! multi-store price comparison of seed 002, as an xcore plugin.
//!
//! Mounted at `/api/v1/pricing`, depending on `products`:
//! - catalogue prices: `/products/{id}/price`, `/discount`,
//!   `/price-history` (see [`catalogue`]); the history is fed by products'
//!   own events, so a price changed by a products `PUT`, a bulk or a CSV
//!   import is recorded too (see [`history`]);
//! - stores and their offers, uploaded in batches or as feed files, or
//!   fetched from each store's feed URL (see [`stores`], [`offers`],
//!   [`feeds`]);
//! - the seed's public API (`/produits/`, `/categories/`, `/marques/`,
//!   `/boutiques/`, `/demandes/`), anonymous, with the seed's list
//!   envelope (see [`public`], [`search`], [`requests`]);
//! - price alerts of signed-in users (`/alerts`, see [`alerts`]);
//! - the seed's blog (`/blog/`, `/blog/{id}/` by slug), written by
//!   `pricing:write` holders, its HTML sanitised on write (see [`blog`]).
//!
//! Events: `pricing.price_changed` (a catalogue price), `pricing.price_dropped`
//! (an offer got cheaper), `pricing.alert` (a watched reference crossed
//! under a user's price), `pricing.feed.completed` / `pricing.feed.failed`.
//!
//! # Layout
//!
//! Each part owns its routes (`routes`), merged in [`Plugin::router`]; the
//! one migration is in `migrations/`. Text rules (slugs, folding, typo
//! distance) are in [`text`], exact money in [`money`]. This file holds the
//! permissions, the plugin instance and the path extractors every part
//! shares.

pub mod alerts;
pub mod blog;
pub mod catalogue;
pub mod feeds;
pub mod history;
pub mod money;
pub mod offers;
pub mod public;
pub mod requests;
pub mod search;
pub mod stores;
pub mod text;

use xcore_plugin_sdk::{extract::FromRequest, openapi::Operation, prelude::*};

/// Permission to read prices, history, stores and offers.
pub const READ: &str = "pricing:read";
/// Permission to change prices and discounts, and to send offers.
pub const WRITE: &str = "pricing:write";
/// Permission to manage stores and triage requests.
pub const ADMIN: &str = "pricing:admin";

/// Where the products plugin serves when the configuration does not say.
const PRODUCTS_PREFIX: &str = "/api/v1/products";

/// The plugin instance.
pub struct Pricing {
    /// The host's services.
    pub host: Host,
    /// The products plugin's prefix (`[plugins.pricing.config]
    /// products_prefix`), for the calls that change a product's price
    /// through products' own route.
    pub products_prefix: String,
}

impl Pricing {
    /// Publishes `pricing.<topic>`; a failure is logged, not returned:
    /// the write it reports has already happened.
    pub fn announce<T: serde::Serialize>(&self, topic: &str, data: &T) {
        self.host
            .publish_or_warn(topic, data, "cannot publish a pricing event");
    }
}

impl Plugin for Pricing {
    fn manifest() -> Manifest {
        Manifest::new(
            "pricing",
            "Pricing",
            env!("CARGO_PKG_VERSION"),
            "/api/v1/pricing",
        )
        .author("xcore")
        .description(
            "Catalogue prices and discounts, multi-store price comparison (Toprix), price history",
        )
        .tags(&["pricing", "domain"])
        .depends_on("products", ">=0.1.0")
        .user_permission(READ, "Read prices, price history, stores and offers")
        .permission(WRITE, "Change prices and discounts, send offers")
        .permission(ADMIN, "Manage stores and feeds, triage requests")
        .event("price_changed")
        .event("price_dropped")
        .event("feed.completed")
        .event("feed.failed")
        .event("alert")
        .migration(
            1,
            "history, discounts, stores, offers, search, requests",
            include_str!("../migrations/sqlite/0001_pricing.sql"),
            include_str!("../migrations/postgres/0001_pricing.sql"),
        )
        .migration(
            2,
            "price alerts",
            include_str!("../migrations/sqlite/0002_alerts.sql"),
            include_str!("../migrations/postgres/0002_alerts.sql"),
        )
        .migration(
            3,
            "blog articles",
            include_str!("../migrations/sqlite/0003_blog.sql"),
            include_str!("../migrations/postgres/0003_blog.sql"),
        )
        .migration(
            4,
            "offers in price order per store, category counts",
            include_str!("../migrations/sqlite/0004_offer_search.sql"),
            include_str!("../migrations/postgres/0004_offer_search.sql"),
        )
    }

    fn router() -> Router<Self> {
        let router = Router::new();
        let router = catalogue::routes(router);
        let router = stores::routes(router);
        let router = offers::routes(router);
        let router = feeds::routes(router);
        let router = public::routes(router);
        let router = requests::routes(router);
        let router = alerts::routes(router);
        let router = blog::routes(router);
        history::listeners(router)
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

xcore_plugin_sdk::export_plugin!(Pricing);

/// The `{id}` of a catalogue product: a positive integer, else 404 (no
/// product can have that id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductId(pub i64);

impl FromRequest for ProductId {
    const READS: Reads = Reads::PARAMS;

    fn from_request(request: &mut Request) -> Result<Self, Response> {
        Id::read(request, "no product has this id").map(ProductId)
    }

    fn document(operation: &mut Operation) {
        Id::document_parameter(operation);
    }
}

/// Text path parameters, each documented under its name.
macro_rules! text_param {
    ($(#[$doc:meta])* $name:ident, $param:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub String);

        impl FromRequest for $name {
            const READS: Reads = Reads::PARAMS;

            fn from_request(request: &mut Request) -> Result<Self, Response> {
                request
                    .param($param)
                    .map(|raw| $name(raw.to_string()))
                    .ok_or_else(|| Response::not_found(concat!("no ", $param, " in the path")))
            }

            fn document(operation: &mut Operation) {
                operation.add_parameter(json!({
                    "name": $param, "in": "path", "required": true,
                    "schema": {"type": "string"},
                }));
            }
        }
    };
}

text_param!(
    /// `{store_id}`: a store's id (`mytek`).
    StoreId,
    "store_id"
);
text_param!(
    /// `{id}` of the public API: an offer id or a comparison slug.
    OfferKey,
    "id"
);
text_param!(
    /// `{slug}`: a category's slug (the parent's, under a sub-category).
    CategorySlug,
    "slug"
);
text_param!(
    /// `{sous}`: a sub-category's slug.
    SubSlug,
    "sous"
);
text_param!(
    /// `{nom}`: a brand's name or slug, any case.
    BrandName,
    "nom"
);

#[cfg(test)]
mod tests {
    use xcore_plugin_sdk::testing::assert_routes_documented;

    use super::Pricing;

    /// Every served route is documented (summary, success, path
    /// parameters), and pricing depends on and listens to products.
    #[test]
    fn every_route_has_an_openapi_operation() {
        let manifest = assert_routes_documented::<Pricing>();
        assert!(manifest.dependencies.iter().any(|d| d.id == "products"));
        assert!(manifest.subscriptions.iter().any(|s| s == "products.*"));
    }
}
