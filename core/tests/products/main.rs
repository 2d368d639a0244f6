//! The products plugin's catalogue through the real host and the real
//! `.so`: CRUD with every error status, RBAC (401/403), categories and the
//! 409 for one in use, list paging/filters/sorting, full-text search (word
//! and prefix matching, never substrings, user text never query syntax),
//! exact money, and `POST /bulk` (all or nothing, every bad row by index,
//! 10,000 in one request, 10,001 refused). Runs on SQLite, and on
//! PostgreSQL when `XCORE_TEST_DATABASE_URL` is set.
//!
//! One test binary, one file per topic: [`crud`] (products and categories,
//! every error status, the events), [`listing`] (paging, filters, sorting,
//! full-text search, exact money), [`bulk`] (`POST /bulk`), [`search`]
//! (each kind of search, the same rows on both databases, every write
//! searchable at once), [`breadth`] (broad and narrow searches, early and
//! deep pages, against pages computed from the rows; a bulk stores every
//! field) and [`seed_names`] (seed 003's camelCase names).
//! This file:
//! the running catalogue the topics share, and the plugin's schema and
//! routes once loaded.

#[path = "../common/mod.rs"]
mod common;

mod breadth;
mod bulk;
mod crud;
mod default_grants;
mod listing;
mod search;
mod seed_names;

pub(crate) use common::detail_fields;
use common::PluginApp;
use serde_json::{json, Value};
use sqlx::Row;

pub(crate) const API: &str = "/api/v1/products";

common::plugin_app!(
    /// The host with the products plugin.
    pub(crate) Catalogue
);

pub(crate) fn on_postgres() -> bool {
    std::env::var("XCORE_TEST_DATABASE_URL").is_ok_and(|url| url.starts_with("postgres"))
}

pub(crate) async fn start() -> Catalogue {
    Catalogue(PluginApp::start(API, &["products"], |_| {}).await)
}

impl Catalogue {
    pub(crate) async fn create(&self, product: Value) -> Value {
        self.post("/", product).await
    }

    pub(crate) async fn supplier(&self, name: &str) -> i64 {
        sqlx::query(
            "INSERT INTO products_suppliers (name, import_config, created_at, updated_at) \
             VALUES ($1, '{}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z') \
             RETURNING id",
        )
        .bind(name)
        .fetch_one(self.server.state.db.pool())
        .await
        .expect("supplier")
        .try_get::<i64, _>("id")
        .expect("id")
    }

    pub(crate) async fn count_rows(&self) -> i64 {
        sqlx::query("SELECT COUNT(*) AS n FROM products")
            .fetch_one(self.server.state.db.pool())
            .await
            .expect("count")
            .try_get::<i64, _>("n")
            .expect("n")
    }
}

pub(crate) fn skus(list: &Value) -> Vec<String> {
    crate::common::items(list)
        .iter()
        .map(|item| item["sku"].as_str().expect("sku").to_string())
        .collect()
}

pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_loads_with_its_schema_and_routes() {
    let catalogue = start().await;
    let details = catalogue
        .server
        .get_as(&catalogue.admin, "/system/plugins/products")
        .await;
    assert_eq!(details["state"], "active", "{details}");
    let routes = details["routes"].as_array().expect("routes");
    for route in [
        "/api/v1/products/",
        "/api/v1/products/bulk",
        "/api/v1/products/{id}",
        "/api/v1/products/{id}/activate",
        "/api/v1/products/categories",
        "/api/v1/products/suppliers",
    ] {
        assert!(routes.contains(&json!(route)), "{route} in {routes:?}");
    }
    let endpoints = details["endpoints"].as_array().expect("endpoints");
    for endpoint in [
        json!({"method": "GET", "path": "/api/v1/products/", "permission": "products:read"}),
        json!({"method": "POST", "path": "/api/v1/products/bulk", "permission": "products:write"}),
        json!({"method": "DELETE", "path": "/api/v1/products/{id}", "permission": "products:delete"}),
    ] {
        assert!(endpoints.contains(&endpoint), "{endpoint} in {endpoints:?}");
    }
    // The document: the host keeps the plugin's OpenAPI parts as text and
    // parses them back per request; its paths and the component schemas
    // they refer to must all be there.
    let document = catalogue.server.public_get("/openapi.json").await;
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("component schemas");
    let product = &document["paths"]["/api/v1/products/{id}"]["get"];
    assert_eq!(product["tags"], json!(["products"]), "{product}");
    let answer = product["responses"]["200"].to_string();
    let referred: Vec<&str> = answer
        .split("#/components/schemas/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        referred.iter().any(|name| name.starts_with("products.")),
        "{answer}"
    );
    for name in referred {
        assert!(schemas.contains_key(name), "{name} is not in the document");
    }
    // The search index is the database's own full-text machinery.
    let pool = catalogue.server.state.db.pool();
    let sql = if on_postgres() {
        "SELECT COUNT(*) AS n FROM pg_indexes WHERE indexname = 'products_search_idx' AND indexdef LIKE '%gin%'"
    } else {
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'products_fts' AND sql LIKE '%fts5%'"
    };
    let n: i64 = sqlx::query(sql)
        .fetch_one(pool)
        .await
        .expect("index")
        .try_get("n")
        .expect("n");
    assert_eq!(n, 1);
}
