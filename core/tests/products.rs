//! The products plugin's catalogue through the real host and the real
//! `.so`: CRUD with every error status, RBAC (401/403), categories and the
//! 409 for one in use, list paging/filters/sorting, full-text search (word
//! and prefix matching, never substrings, user text never query syntax),
//! exact money, and `POST /bulk` (all or nothing, every bad row by index,
//! 10,000 in one request, 10,001 refused). Runs on SQLite, and on
//! PostgreSQL when `XCORE_TEST_DATABASE_URL` is set.

mod common;

use common::{deploy, expect_error, expect_status, next_bus_event, plugin_library, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

const API: &str = "/api/v1/products";

struct Catalogue {
    server: TestServer,
    admin: String,
    _plugins: tempfile::TempDir,
}

fn on_postgres() -> bool {
    std::env::var("XCORE_TEST_DATABASE_URL").is_ok_and(|url| url.starts_with("postgres"))
}

async fn start() -> Catalogue {
    let plugins = tempfile::tempdir().expect("dir");
    let library = plugin_library("xcore-plugin-products", "xcore_plugin_products", "");
    deploy(&library, plugins.path(), "libxcore_plugin_products.so");
    let dir = plugins.path().to_path_buf();
    let server =
        TestServer::start_with(move |config| config.plugins.dir = dir.display().to_string()).await;
    let admin = server.admin_token().await;
    Catalogue {
        server,
        admin,
        _plugins: plugins,
    }
}

impl Catalogue {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        self.server
            .as_(&self.admin)
            .request(method, &format!("{API}{path}"))
            .json_opt(body)
            .send()
            .await
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        expect_status(self.send(method, path, body).await, status).await
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None, StatusCode::OK).await
    }

    async fn create(&self, product: Value) -> Value {
        self.ok(Method::POST, "/", Some(product), StatusCode::CREATED)
            .await
    }

    async fn refused(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
        code: &str,
    ) -> Value {
        expect_error(self.send(method, path, body).await, status, code).await
    }

    /// A user holding exactly `permissions`, through a role of their own.
    async fn user_with(&self, email: &str, permissions: &[&str]) -> String {
        let (user_id, _) = self.server.user_token(email).await;
        let admin = &self.admin;
        let role = self
            .server
            .as_(admin)
            .post("/admin/roles")
            .json(json!({"name": format!("role_{}", user_id)}))
            .expect(StatusCode::CREATED)
            .await;
        let role_id = role["id"].as_i64().expect("role id");
        for permission in permissions {
            let response = self
                .server
                .as_(admin)
                .post(&format!("/admin/roles/{role_id}/permissions/{permission}"))
                .send()
                .await;
            assert!(response.status().is_success(), "grant {permission}");
        }
        let response = self
            .server
            .as_(admin)
            .post(&format!("/admin/users/{user_id}/roles/{role_id}"))
            .send()
            .await;
        assert!(response.status().is_success(), "assign role");
        common::access_token(&self.server.login(email, "UserPassw0rd!").await)
    }

    async fn supplier(&self, name: &str) -> i64 {
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

    async fn count_rows(&self) -> i64 {
        sqlx::query("SELECT COUNT(*) AS n FROM products")
            .fetch_one(self.server.state.db.pool())
            .await
            .expect("count")
            .try_get::<i64, _>("n")
            .expect("n")
    }
}

fn skus(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["sku"].as_str().expect("sku").to_string())
        .collect()
}

fn detail_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_crud_with_every_error_status_and_events() {
    let catalogue = start().await;
    let mut events = catalogue.server.state.events.subscribe();
    let category = catalogue
        .ok(
            Method::POST,
            "/categories",
            Some(json!({"name": "Claviers", "description": "Périphériques"})),
            StatusCode::CREATED,
        )
        .await;
    let category_id = category["id"].as_i64().expect("category id");
    let supplier_id = catalogue.supplier("Fournisseur XYZ").await;

    let created = catalogue
        .create(json!({
            "sku": "PROD-NEW-001", "name": "Nouveau Produit", "description": "Description complète",
            "price": 49.99, "stock": 100, "supplier_id": supplier_id, "category_id": category_id,
            "images": ["https://example.com/image.jpg"], "attributes": {"color": "blue", "size": "M"}
        }))
        .await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["sku"], "PROD-NEW-001");
    assert_eq!(created["price"], json!(49.99));
    assert_eq!(created["stock"], 100);
    assert_eq!(created["status"], "active");
    assert_eq!(created["supplier_id"], supplier_id);
    assert_eq!(created["category_id"], category_id);
    assert_eq!(created["images"], json!(["https://example.com/image.jpg"]));
    assert_eq!(created["attributes"], json!({"color": "blue", "size": "M"}));
    assert!(created["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let event = next_bus_event(&mut events, "products.created").await;
    assert_eq!(event["id"], id);
    assert_eq!(catalogue.get(&format!("/{id}")).await, created);

    // Duplicate SKU, bad values, unknown references.
    let conflict = catalogue
        .refused(
            Method::POST,
            "/",
            Some(json!({"sku": "PROD-NEW-001", "name": "Again", "price": 1})),
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    assert!(conflict["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("PROD-NEW-001")));
    let negative = catalogue
        .refused(
            Method::POST,
            "/",
            Some(json!({"sku": "NEG", "name": "Negative", "price": -10})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    assert_eq!(detail_fields(&negative), vec!["price"]);
    let many = catalogue
        .refused(
            Method::POST,
            "/",
            Some(json!({
                "sku": "X", "name": "x", "price": 19.999, "stock": -1, "status": "sold",
                "images": ["not a url"], "category_id": 999_999, "prce": 1
            })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    for field in ["prce", "price", "stock", "status", "images[0]"] {
        assert!(
            detail_fields(&many).contains(&field.to_string()),
            "{field}: {many}"
        );
    }
    let missing = catalogue
        .refused(
            Method::POST,
            "/",
            Some(json!({"sku": "Y", "name": "y", "price": 1, "category_id": 999_999, "supplier_id": 999_999})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    assert_eq!(detail_fields(&missing), vec!["category_id", "supplier_id"]);
    catalogue
        .refused(
            Method::POST,
            "/",
            Some(json!(["not", "an", "object"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    let malformed = catalogue
        .server
        .post(&format!("{API}/"))
        .bearer_auth(&catalogue.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    expect_error(malformed, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

    // Not found.
    for path in ["/999999", "/abc", "/0"] {
        catalogue
            .refused(Method::GET, path, None, StatusCode::NOT_FOUND, "NOT_FOUND")
            .await;
    }
    catalogue
        .refused(
            Method::PUT,
            "/999999",
            Some(json!({"stock": 1})),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

    // Partial update: only the given fields change.
    let other = catalogue
        .create(json!({"sku": "OTHER-1", "name": "Autre", "price": "5"}))
        .await;
    let updated = catalogue
        .ok(
            Method::PUT,
            &format!("/{id}"),
            Some(json!({"price": "39.99", "stock": 200, "category_id": null})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(updated["price"], json!(39.99));
    assert_eq!(updated["stock"], 200);
    assert_eq!(updated["category_id"], Value::Null);
    assert_eq!(updated["name"], "Nouveau Produit");
    assert_eq!(updated["supplier_id"], supplier_id);
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated["updated_at"].as_str() > created["updated_at"].as_str());
    assert_eq!(
        next_bus_event(&mut events, "products.updated").await["stock"],
        200
    );
    catalogue
        .refused(
            Method::PUT,
            &format!("/{id}"),
            Some(json!({"sku": "OTHER-1"})),
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    catalogue
        .refused(
            Method::PUT,
            &format!("/{id}"),
            Some(json!({"price": -1, "name": null})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    // Keeping its own SKU is not a conflict.
    catalogue
        .ok(
            Method::PUT,
            &format!("/{id}"),
            Some(json!({"sku": "PROD-NEW-001", "category_id": category_id})),
            StatusCode::OK,
        )
        .await;

    // Activate / deactivate.
    let inactive = catalogue
        .ok(
            Method::POST,
            &format!("/{id}/deactivate"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(inactive["status"], "inactive");
    let active = catalogue
        .ok(
            Method::POST,
            &format!("/{id}/activate"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(active["status"], "active");
    catalogue
        .refused(
            Method::POST,
            "/999999/activate",
            None,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

    // A category in use cannot go.
    let in_use = catalogue
        .refused(
            Method::DELETE,
            &format!("/categories/{category_id}"),
            None,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    assert!(in_use["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("1 product")));

    // RBAC: 401 without a token, 403 without the permission.
    expect_error(
        catalogue
            .server
            .get(&format!("{API}/"))
            .send()
            .await
            .expect("send"),
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    let (_, nobody) = catalogue.server.user_token("nobody@example.com").await;
    catalogue
        .server
        .as_(&nobody)
        .get(&format!("{API}/"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    let reader = catalogue
        .user_with("reader@example.com", &["products:read"])
        .await;
    catalogue
        .server
        .as_(&reader)
        .get(&format!("{API}/{id}"))
        .expect(StatusCode::OK)
        .await;
    for (method, path, body) in [
        (
            Method::POST,
            "/".to_string(),
            Some(json!({"sku": "R", "name": "r", "price": 1})),
        ),
        (Method::PUT, format!("/{id}"), Some(json!({"stock": 1}))),
        (Method::DELETE, format!("/{id}"), None),
        (Method::POST, format!("/{id}/deactivate"), None),
        (
            Method::POST,
            "/bulk".to_string(),
            Some(json!({"products": []})),
        ),
        (
            Method::POST,
            "/categories".to_string(),
            Some(json!({"name": "R"})),
        ),
    ] {
        catalogue
            .server
            .as_(&reader)
            .request(method, &format!("{API}{path}"))
            .json_opt(body)
            .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
            .await;
    }
    // Writing is not deleting.
    let writer = catalogue
        .user_with("writer@example.com", &["products:read", "products:write"])
        .await;
    catalogue
        .server
        .as_(&writer)
        .delete(&format!("{API}/{id}"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;

    // Delete.
    catalogue
        .ok(
            Method::DELETE,
            &format!("/{id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    let deleted = next_bus_event(&mut events, "products.deleted").await;
    assert_eq!(deleted, json!({"id": id, "sku": "PROD-NEW-001"}));
    catalogue
        .refused(
            Method::GET,
            &format!("/{id}"),
            None,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
    catalogue
        .refused(
            Method::DELETE,
            &format!("/{id}"),
            None,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
    // Now unused, the category goes.
    catalogue
        .ok(
            Method::DELETE,
            &format!("/categories/{category_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    assert_eq!(other["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_crud_with_active_filter_and_unique_names() {
    let catalogue = start().await;
    let tools = catalogue
        .ok(
            Method::POST,
            "/categories",
            Some(json!({"name": "Outils"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(tools["is_active"], true);
    assert_eq!(tools["description"], Value::Null);
    let old = catalogue
        .ok(
            Method::POST,
            "/categories",
            Some(json!({"name": "Archives", "description": "Anciens", "isActive": false})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(old["is_active"], false);
    catalogue
        .refused(
            Method::POST,
            "/categories",
            Some(json!({"name": "Outils"})),
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    catalogue
        .refused(
            Method::POST,
            "/categories",
            Some(json!({"description": "no name", "is_active": "yes"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;

    let all = catalogue.get("/categories").await;
    assert_eq!(all["total"], 2);
    assert_eq!(all["items"][0]["name"], "Archives", "sorted by name");
    assert_eq!(all["page"], 1);
    assert_eq!(all["total_pages"], 1);
    let active = catalogue.get("/categories?activeOnly=true").await;
    assert_eq!(active["total"], 1);
    assert_eq!(active["items"][0]["name"], "Outils");
    catalogue
        .refused(
            Method::GET,
            "/categories?activeOnly=maybe",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;

    let old_id = old["id"].as_i64().expect("id");
    let renamed = catalogue
        .ok(
            Method::PUT,
            &format!("/categories/{old_id}"),
            Some(json!({"is_active": true, "description": null})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(renamed["is_active"], true);
    assert_eq!(renamed["name"], "Archives");
    assert_eq!(renamed["description"], Value::Null);
    catalogue
        .refused(
            Method::PUT,
            &format!("/categories/{old_id}"),
            Some(json!({"name": "Outils"})),
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    assert_eq!(
        catalogue.get("/categories?activeOnly=true").await["total"],
        2
    );
    assert_eq!(
        catalogue.get(&format!("/categories/{old_id}")).await,
        renamed
    );
    catalogue
        .ok(
            Method::DELETE,
            &format!("/categories/{old_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    for method in [Method::GET, Method::DELETE] {
        catalogue
            .refused(
                method,
                &format!("/categories/{old_id}"),
                None,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_filter_sort_and_search_with_the_full_text_index() {
    let catalogue = start().await;
    let keyboards = catalogue
        .ok(
            Method::POST,
            "/categories",
            Some(json!({"name": "Claviers"})),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_i64()
        .expect("id");
    let supplier = catalogue.supplier("Fournisseur A").await;
    let rows = json!([
        {"sku": "KB-001", "name": "Clavier mécanique", "description": "Switches rouges, rétroéclairage", "price": 89.9, "stock": 5, "category_id": keyboards, "supplier_id": supplier},
        {"sku": "KB-002", "name": "Clavier sans fil", "description": "Bluetooth, AZERTY", "price": "49.99", "stock": 50, "category_id": keyboards},
        {"sku": "MS-001", "name": "Souris optique", "description": "Compatible avec le clavier KB-002", "price": 19.5, "stock": 0, "status": "inactive", "supplier_id": supplier},
        {"sku": "MON-27", "name": "Écran 27 pouces", "description": "Dalle IPS", "price": 249, "stock": 12, "status": "draft"},
        {"sku": "CAB-USB", "name": "Câble USB-C", "description": "Un mètre", "price": 0.1, "stock": 300},
        {"sku": "CAB-HDMI", "name": "Câble HDMI", "description": "Deux mètres", "price": 0.2, "stock": 200},
        {"sku": "ADAPT-1", "name": "Adaptateur", "description": "USB vers HDMI", "price": 0.3, "stock": 100}
    ]);
    let bulk = catalogue
        .ok(
            Method::POST,
            "/bulk",
            Some(json!({"products": rows})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(bulk["created"], 7);

    // Paging: page/page_size and skip/limit, with the page fields.
    let page = catalogue.get("/?page=2&page_size=3&sort_by=price").await;
    assert_eq!(page["total"], 7);
    assert_eq!(page["page"], 2);
    assert_eq!(page["page_size"], 3);
    assert_eq!(page["total_pages"], 3);
    assert_eq!(page["skip"], 3);
    assert_eq!(page["limit"], 3);
    assert_eq!(page["has_more"], true);
    assert_eq!(skus(&page), vec!["MS-001", "KB-002", "KB-001"]);
    let window = catalogue.get("/?skip=6&limit=3&sort_by=price").await;
    assert_eq!(skus(&window), vec!["MON-27"]);
    assert_eq!(
        (window["total"].as_i64(), window["has_more"].as_bool()),
        (Some(7), Some(false))
    );
    let past_the_end = catalogue.get("/?page=9&page_size=3").await;
    assert_eq!(past_the_end["total"], 7);
    assert!(skus(&past_the_end).is_empty());
    // The prefix alone is the list, as in the seed (`GET /products`).
    let newest = catalogue
        .server
        .as_(&catalogue.admin)
        .get(API)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(newest["page_size"], 20);
    assert_eq!(newest["items"].as_array().map(Vec::len), Some(7));

    // Bad parameters are 422, each named.
    for (query, field) in [
        ("page_size=1000", "page_size"),
        ("limit=1000", "limit"),
        ("page=0", "page"),
        ("sort_by=password", "sort_by"),
        ("sort_by=price&order=sideways", "order"),
        ("status=sold", "status"),
        ("price_min=abc", "price_min"),
        ("price_max=0.001", "price_max"),
        ("price_min=5&price_max=1", "price_min"),
        ("supplier_id=x", "supplier_id"),
        ("category_id=-1", "category_id"),
    ] {
        let body = catalogue
            .refused(
                Method::GET,
                &format!("/?{query}"),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
            )
            .await;
        assert_eq!(detail_fields(&body), vec![field.to_string()], "{query}");
    }

    // Filters, exact at the cent.
    let cheap = catalogue.get("/?price_max=0.3&sort_by=price").await;
    assert_eq!(skus(&cheap), vec!["CAB-USB", "CAB-HDMI", "ADAPT-1"]);
    let exactly = catalogue.get("/?price_min=0.3&price_max=0.30").await;
    assert_eq!(skus(&exactly), vec!["ADAPT-1"]);
    let above = catalogue.get("/?price_min=0.21&price_max=0.29").await;
    assert!(skus(&above).is_empty());
    let inactive = catalogue.get("/?status=inactive").await;
    assert_eq!(skus(&inactive), vec!["MS-001"]);
    let by_category = catalogue
        .get(&format!(
            "/?category_id={keyboards}&sort_by=name&order=desc"
        ))
        .await;
    assert_eq!(skus(&by_category), vec!["KB-002", "KB-001"]);
    let by_supplier = catalogue
        .get(&format!(
            "/?supplier_id={supplier}&sort_by=stock&sort_order=asc"
        ))
        .await;
    assert_eq!(skus(&by_supplier), vec!["MS-001", "KB-001"]);
    let by_stock = catalogue.get("/?sort_by=stock&order=desc&limit=2").await;
    assert_eq!(skus(&by_stock), vec!["CAB-USB", "CAB-HDMI"]);

    // Full-text search: words in name, description or SKU...
    let search = |query: &str| format!("/?search={}", urlencode(query));
    let found = catalogue.get(&search("clavier")).await;
    let mut found_skus = skus(&found);
    found_skus.sort();
    assert_eq!(
        found_skus,
        vec!["KB-001", "KB-002", "MS-001"],
        "name and description"
    );
    assert_eq!(
        skus(&catalogue.get(&search("bluetooth azerty")).await),
        vec!["KB-002"]
    );
    assert_eq!(
        skus(&catalogue.get(&search("MON-27")).await),
        vec!["MON-27"]
    );
    // ...the last word as a prefix (typing in a search box)...
    let mut prefixed = skus(&catalogue.get(&search("câble hd")).await);
    prefixed.sort();
    assert_eq!(prefixed, vec!["CAB-HDMI"]);
    assert_eq!(
        skus(&catalogue.get(&search("rétroécl")).await),
        vec!["KB-001"]
    );
    // ...but never a substring in the middle of a word (LIKE '%x%' would).
    assert!(skus(&catalogue.get(&search("lavier")).await).is_empty());
    assert!(skus(&catalogue.get(&search("canique")).await).is_empty());
    // Every word must match.
    assert!(skus(&catalogue.get(&search("clavier hdmi")).await).is_empty());
    // Relevance first without sort_by; combined with a filter and a sort.
    let relevant = catalogue.get(&search("clavier")).await;
    assert_eq!(relevant["total"], 3);
    let combined = catalogue
        .get(&format!(
            "{}&status=active&sort_by=price&order=desc",
            search("clavier")
        ))
        .await;
    assert_eq!(skus(&combined), vec!["KB-001", "KB-002"]);
    let paged = catalogue
        .get(&format!(
            "{}&sort_by=price&page=2&page_size=1",
            search("clavier")
        ))
        .await;
    assert_eq!(
        (paged["total"].as_i64(), paged["total_pages"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(skus(&paged), vec!["KB-002"]);
    // User text is never query syntax.
    for hostile in [
        "\"",
        "clavier\"",
        "*",
        "clavier OR souris",
        "NEAR(clavier souris)",
        "sku:KB",
        "-clavier",
        "clavier AND",
        "(",
        "'",
        "a & b | !c",
        ":*",
        "   ",
        "!!!",
    ] {
        let body = catalogue.get(&search(hostile)).await;
        assert!(body["items"].is_array(), "{hostile}: {body}");
    }
    // "OR" is a word to find, not an operator: no product holds it.
    assert!(skus(&catalogue.get(&search("clavier OR souris")).await).is_empty());
    if !on_postgres() {
        // SQLite's index folds diacritics.
        assert_eq!(skus(&catalogue.get(&search("ecran")).await), vec!["MON-27"]);
    }
    // The index follows updates and deletes.
    let mouse = &catalogue.get(&search("souris")).await["items"][0];
    let mouse_id = mouse["id"].as_i64().expect("id");
    catalogue
        .ok(
            Method::PUT,
            &format!("/{mouse_id}"),
            Some(json!({"name": "Trackball ergonomique", "description": "Sans fil"})),
            StatusCode::OK,
        )
        .await;
    assert!(skus(&catalogue.get(&search("souris")).await).is_empty());
    assert_eq!(
        skus(&catalogue.get(&search("trackball")).await),
        vec!["MS-001"]
    );
    catalogue
        .ok(
            Method::DELETE,
            &format!("/{mouse_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    assert!(skus(&catalogue.get(&search("trackball")).await).is_empty());
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_exact_through_json_sql_sorting_and_sums() {
    let catalogue = start().await;
    for (sku, price) in [
        ("P1", json!(0.1)),
        ("P2", json!(0.2)),
        ("P3", json!("0.30")),
        ("P4", json!(19.99)),
        ("P5", json!("999999999.99")),
        ("P6", json!("12,50")),
        ("P7", json!(0)),
    ] {
        catalogue
            .create(json!({"sku": sku, "name": sku, "price": price}))
            .await;
    }
    // The JSON text is the exact decimal: no 0.30000000000000004.
    let text = catalogue
        .send(Method::GET, "/?sort_by=price&order=asc", None)
        .await
        .text()
        .await
        .expect("text");
    for exact in [
        "\"price\":0.1,",
        "\"price\":0.2,",
        "\"price\":0.3,",
        "\"price\":19.99,",
        "\"price\":999999999.99,",
        "\"price\":12.5,",
    ] {
        assert!(text.contains(exact), "{exact} in {text}");
    }
    assert!(!text.contains("0000000"), "{text}");
    let list: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(skus(&list), vec!["P7", "P1", "P2", "P3", "P6", "P4", "P5"]);
    // Stored as integer cents, so SQL sums are exact: 0.1 + 0.2 == 0.3.
    let pool = catalogue.server.state.db.pool();
    let sum: i64 = sqlx::query(
        "SELECT CAST(SUM(price_cents) AS BIGINT) AS s FROM products WHERE sku IN ('P1', 'P2')",
    )
    .fetch_one(pool)
    .await
    .expect("sum")
    .try_get("s")
    .expect("s");
    let p3: i64 = sqlx::query("SELECT price_cents FROM products WHERE sku = 'P3'")
        .fetch_one(pool)
        .await
        .expect("p3")
        .try_get("price_cents")
        .expect("cents");
    assert_eq!((sum, p3), (30, 30));
    // 0.1 + 0.2 filtered as 0.3 finds exactly the 0.3 product.
    assert_eq!(
        skus(&catalogue.get("/?price_min=0.3&price_max=0.3").await),
        vec!["P3"]
    );
    for (price, reason) in [
        (json!(0.001), "at most 2 decimals"),
        (json!("1000000000"), "at most"),
        (json!(-0.01), ">= 0"),
        (json!("dix"), "decimal number"),
    ] {
        let body = catalogue
            .refused(
                Method::POST,
                "/",
                Some(json!({"sku": "BAD", "name": "bad", "price": price})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
            )
            .await;
        let message = body["error"]["details"][0]["message"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains(reason), "{price}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_is_all_or_nothing_and_takes_ten_thousand() {
    let catalogue = start().await;
    let mut events = catalogue.server.state.events.subscribe();
    let existing = catalogue
        .create(json!({"sku": "EXIST-1", "name": "Existant", "price": 5, "stock": 42, "description": "garde"}))
        .await;

    // One bad row: 422 naming every bad row and field, nothing written.
    let body = catalogue
        .refused(
            Method::POST,
            "/bulk",
            Some(json!({"products": [
                {"sku": "B-1", "name": "ok", "price": 1},
                {"sku": "B-2", "name": "ok", "price": 2},
                {"sku": "B-1", "name": "dup", "price": 3},
                {"sku": "B-4", "name": "", "price": -4},
                {"sku": "EXIST-1", "name": "clash", "price": 1},
                {"sku": "B-6", "name": "ok", "price": 1, "category_id": 424242}
            ]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    assert_eq!(
        detail_fields(&body),
        vec![
            "products[2].sku",
            "products[3].name",
            "products[3].price",
            "products[4].sku",
            "products[5].category_id",
        ]
    );
    assert_eq!(catalogue.count_rows().await, 1, "nothing written");
    // The `items` key works too and names its paths after it.
    let body = catalogue
        .refused(
            Method::POST,
            "/bulk",
            Some(json!({"items": [{"sku": "I-1", "name": "x", "price": "1.234"}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    assert_eq!(detail_fields(&body), vec!["items[0].price"]);

    // Only existing SKUs wrong: 409 with the rows, nothing written.
    let body = catalogue
        .refused(
            Method::POST,
            "/bulk",
            Some(json!({"products": [
                {"sku": "NEW-1", "name": "new", "price": 1},
                {"sku": "EXIST-1", "name": "clash", "price": 1}
            ]})),
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    assert_eq!(detail_fields(&body), vec!["products[1].sku"]);
    assert_eq!(catalogue.count_rows().await, 1);

    // update_existing: the existing row changes only in the fields given.
    let upsert = catalogue
        .ok(
            Method::POST,
            "/bulk",
            Some(json!({"update_existing": true, "products": [
                {"sku": "NEW-1", "name": "new", "price": 1},
                {"sku": "EXIST-1", "name": "Renommé", "price": "6.50"}
            ]})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (upsert["created"].as_i64(), upsert["updated"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(upsert["ids"][1], existing["id"]);
    let summary = next_bus_event(&mut events, "products.bulk").await;
    assert_eq!(summary["total"], 2);
    let changed = catalogue.get(&format!("/{}", existing["id"])).await;
    assert_eq!(changed["name"], "Renommé");
    assert_eq!(changed["price"], json!(6.5));
    assert_eq!(changed["stock"], 42, "not given, kept");
    assert_eq!(changed["description"], "garde");
    assert_eq!(changed["created_at"], existing["created_at"]);
    assert_eq!(
        skus(&catalogue.get("/?search=renomme").await).len(),
        usize::from(!on_postgres()),
        "the index follows upserts (diacritics folded on SQLite only)"
    );
    assert_eq!(
        skus(&catalogue.get("/?search=renommé").await),
        vec!["EXIST-1"]
    );

    // 10,001 is refused as a whole.
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"sku": format!("T-{i}"), "name": "t", "price": 1}))
        .collect();
    catalogue
        .refused(
            Method::POST,
            "/bulk",
            Some(json!({"products": too_many})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "VALIDATION_ERROR",
        )
        .await;

    // 10,000 in one request, a body well over the host's default 1 MiB.
    let products: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({
                "sku": format!("BULK-{i:05}"),
                "name": format!("Produit en masse numéro {i}"),
                "description": format!("Article {i} importé en une seule requête, avec une description assez longue pour peser."),
                "price": format!("{}.{:02}", i % 500, i % 100),
                "stock": i % 37,
                "status": if i % 10 == 0 { "draft" } else { "active" },
                "attributes": {"lot": i / 100}
            })
        })
        .collect();
    let body = json!({"products": products});
    assert!(
        body.to_string().len() > 2 * 1024 * 1024,
        "over the 1 MiB default"
    );
    let done = catalogue
        .ok(Method::POST, "/bulk", Some(body), StatusCode::OK)
        .await;
    assert_eq!(done["created"], 10_000);
    assert_eq!(done["ids"].as_array().map(Vec::len), Some(10_000));
    let summary = next_bus_event(&mut events, "products.bulk").await;
    assert_eq!(summary["created"], 10_000);
    assert_eq!(catalogue.count_rows().await, 10_002);
    let drafts = catalogue.get("/?status=draft&limit=1").await;
    assert_eq!(drafts["total"], 1000);
    // A search matching every bulk row, sorted: early pages walk the price
    // index on SQLite, deep ones sort the matches; both must agree with
    // the same list without a search (the two other products are cheaper
    // than every page compared here).
    for page in [1, 2, 440] {
        let sorted = |search: &str| {
            format!("/?{search}status=active&sort_by=price&order=desc&page={page}&page_size=20")
        };
        let searched = catalogue.get(&sorted("search=masse&")).await;
        let plain = catalogue.get(&sorted("")).await;
        assert_eq!(searched["total"], 9000, "{searched}");
        assert_eq!(skus(&searched).len(), 20);
        assert_eq!(skus(&searched), skus(&plain), "page {page}");
    }
    let one = catalogue.get("/?search=numéro%209999").await;
    assert_eq!(skus(&one), vec!["BULK-09999"]);
    assert_eq!(one["items"][0]["price"], json!(499.99));
    // No event per row: the next event on the bus is not a products.created.
    assert!(matches!(
        events.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_loads_with_its_schema_and_routes() {
    let catalogue = start().await;
    let details = catalogue
        .server
        .as_(&catalogue.admin)
        .get("/system/plugins/products")
        .expect(StatusCode::OK)
        .await;
    assert_eq!(details["state"], "active", "{details}");
    let routes = details["routes"].as_array().expect("routes");
    for route in [
        "GET /api/v1/products/",
        "POST /api/v1/products/bulk",
        "DELETE /api/v1/products/{id}",
        "POST /api/v1/products/{id}/activate",
        "GET /api/v1/products/categories",
    ] {
        assert!(routes.contains(&json!(route)), "{route} in {routes:?}");
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
