//! Partner stores (`pricing:admin`): `/stores` CRUD. A store is
//! `{"id": "mytek", "nom", "site_web", "feed_url"}`; its id is the slug
//! the public API and the offers use. Deleting a store deletes its offers.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{Pricing, StoreId, ADMIN};

/// A store as stored and shown.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct Store {
    /// Slug: lower-case letters, digits and dashes.
    pub id: String,
    /// Display name.
    pub nom: String,
    /// Home page.
    pub site_web: Option<String>,
    /// The feed fetched by the scheduled refresh (CSV or JSON).
    pub feed_url: Option<String>,
    /// When the feed was last fetched.
    pub last_feed_at: Option<String>,
    /// Why the last fetch failed, if it did.
    pub last_feed_error: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// `POST /stores`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    /// Slug (`mytek`): 1 to 40 lower-case letters, digits or dashes.
    id: String,
    /// Display name.
    nom: String,
    /// Home page (http or https).
    site_web: Option<String>,
    /// Feed URL (http or https).
    feed_url: Option<String>,
}

/// `PUT /stores/{store_id}`'s body: the fields to change (`null` clears
/// the optional ones).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreChanges {
    /// Display name.
    nom: Option<String>,
    /// Home page.
    #[serde(default, deserialize_with = "present")]
    site_web: Option<Option<String>>,
    /// Feed URL.
    #[serde(default, deserialize_with = "present")]
    feed_url: Option<Option<String>>,
}

/// Tells `null` (clear) from absent (keep).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

const COLUMNS: &str =
    "id, nom, site_web, feed_url, last_feed_at, last_feed_error, created_at, updated_at";

/// The routes.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    router
        .get("/stores", Access::Requires(ADMIN), Pricing::list_stores)
        .summary("List the stores")
        .post("/stores", Access::Requires(ADMIN), Pricing::create_store)
        .summary("Create a store")
        .doc(|op| op.error_response(409, "A store has this id"))
        .get(
            "/stores/{store_id}",
            Access::Requires(ADMIN),
            Pricing::get_store,
        )
        .summary("Get a store")
        .doc(|op| op.error_response(404, "No such store"))
        .put(
            "/stores/{store_id}",
            Access::Requires(ADMIN),
            Pricing::update_store,
        )
        .summary("Change a store's name, site or feed URL")
        .doc(|op| op.error_response(404, "No such store"))
        .delete(
            "/stores/{store_id}",
            Access::Requires(ADMIN),
            Pricing::delete_store,
        )
        .summary("Delete a store and its offers")
        .doc(|op| op.error_response(404, "No such store"))
}

/// Whether `url` is an absolute http(s) URL.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an http or https URL")?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url.len() > 2000
        || url.contains(char::is_whitespace)
    {
        return Err("must be an http or https URL".into());
    }
    Ok(())
}

fn check_optional_url(
    value: Option<&str>,
    field: &'static str,
    problems: &mut Vec<(&'static str, String)>,
) {
    if let Some(Err(message)) = value.map(check_url) {
        problems.push((field, message));
    }
}

fn check_name(nom: &str, problems: &mut Vec<(&'static str, String)>) {
    if nom.trim().is_empty() || nom.chars().count() > 200 {
        problems.push(("nom", "required, at most 200 characters".into()));
    }
}

fn refuse(problems: Vec<(&'static str, String)>) -> Result<(), Response> {
    if problems.is_empty() {
        return Ok(());
    }
    let details: Vec<(&str, &str)> = problems.iter().map(|(f, m)| (*f, m.as_str())).collect();
    Err(Response::validation(&details))
}

fn no_store(id: &str) -> Response {
    Response::not_found(&format!("no store {id}"))
}

impl Pricing {
    /// The store, or a 404.
    pub fn store(&self, id: &str) -> Result<Store, Response> {
        let sql = format!("SELECT {COLUMNS} FROM pricing_stores WHERE id = $1");
        self.host
            .query_one_as(&sql, params![id])?
            .ok_or_else(|| no_store(id))
    }

    fn list_stores(&self, window: Window) -> Result<ListBody<Store>, HostError> {
        let sql = format!("SELECT {COLUMNS} FROM pricing_stores ORDER BY id");
        self.host.query_page(&sql, params![], window)
    }

    fn create_store(&self, Json(body): Json<NewStore>) -> Result<Created<Store>, Response> {
        let mut problems = Vec::new();
        let id_ok = (1..=40).contains(&body.id.len())
            && body
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !body.id.starts_with('-');
        if !id_ok {
            problems.push(("id", "1 to 40 lower-case letters, digits or dashes".into()));
        }
        check_name(&body.nom, &mut problems);
        check_optional_url(body.site_web.as_deref(), "site_web", &mut problems);
        check_optional_url(body.feed_url.as_deref(), "feed_url", &mut problems);
        refuse(problems)?;
        let now = now();
        let sql = format!(
            "INSERT INTO pricing_stores (id, nom, site_web, feed_url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
        );
        let store: Store = self
            .host
            .query_row_as(
                &sql,
                params![body.id, body.nom.trim(), body.site_web, body.feed_url, now],
            )
            .map_err(|error| match error {
                HostError::UniqueViolation { .. } => Response::error_with_details(
                    409,
                    "CONFLICT",
                    &format!("a store with id {} already exists", body.id),
                    &[("id", "already used")],
                ),
                other => other.into_response(),
            })?;
        Ok(Created(store))
    }

    fn get_store(&self, StoreId(id): StoreId) -> Result<Json<Store>, Response> {
        self.store(&id).map(Json)
    }

    fn update_store(
        &self,
        StoreId(id): StoreId,
        Json(body): Json<StoreChanges>,
    ) -> Result<Json<Store>, Response> {
        let mut store = self.store(&id)?;
        let mut problems = Vec::new();
        if let Some(nom) = &body.nom {
            check_name(nom, &mut problems);
            store.nom = nom.trim().to_string();
        }
        if let Some(site) = body.site_web {
            check_optional_url(site.as_deref(), "site_web", &mut problems);
            store.site_web = site;
        }
        if let Some(feed) = body.feed_url {
            check_optional_url(feed.as_deref(), "feed_url", &mut problems);
            store.feed_url = feed;
        }
        refuse(problems)?;
        let sql = format!(
            "UPDATE pricing_stores SET nom = $1, site_web = $2, feed_url = $3, updated_at = $4 \
             WHERE id = $5 RETURNING {COLUMNS}"
        );
        let store: Store = self
            .host
            .query_one_as(
                &sql,
                params![store.nom, store.site_web, store.feed_url, now(), id],
            )?
            .ok_or_else(|| no_store(&id))?;
        Ok(Json(store))
    }

    fn delete_store(&self, StoreId(id): StoreId) -> Result<NoContent, Response> {
        // Offers go with their store (the foreign key cascades; their
        // price records are keyed by store and go explicitly).
        let done = self.host.transaction(vec![
            xcore_plugin_sdk::Statement::new(
                "DELETE FROM pricing_offer_prices WHERE store_id = $1",
                params![id],
            ),
            crate::offers::count_categories('-', "store_id = $1", params![id]),
            xcore_plugin_sdk::Statement::new(
                "DELETE FROM pricing_offers WHERE store_id = $1",
                params![id],
            ),
            xcore_plugin_sdk::Statement::new(
                "DELETE FROM pricing_stores WHERE id = $1 RETURNING id",
                params![id],
            ),
        ])?;
        if done.last().is_none_or(|rows| rows.is_empty()) {
            return Err(no_store(&id));
        }
        Ok(NoContent)
    }
}
