//! The crm plugin through the real host and the real
//! `libxcore_plugin_crm.so` (with the real products plugin it depends on):
//! customers (CRUD, 409 on a taken email, 422s, search, filters, sorting,
//! paging, `mine=true`, the detail with contacts, open deals and recent
//! activities, CSV export), pipelines and stages (the default pipeline, a
//! stage in use refused without `move_to`), opportunities (lines priced by
//! the products plugin, a missing product named by line, stage moves with
//! history, won and lost terminal), activities (`mine`, `overdue`), the
//! dashboard, `crm.activity.due` reaching its assignee over a WebSocket,
//! and RBAC (a `crm:read` user cannot write). Runs on SQLite, or
//! PostgreSQL with `XCORE_TEST_DATABASE_URL`.

mod common;

use std::time::Duration;

use common::{call, deploy, expect_error, expect_status, plugin_library, TestServer};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const API: &str = "/api/v1/crm";

struct Crm {
    server: TestServer,
    admin: String,
    _plugins: tempfile::TempDir,
}

async fn start() -> Crm {
    let plugins = tempfile::tempdir().expect("dir");
    let products = plugin_library("xcore-plugin-products", "xcore_plugin_products", "");
    deploy(&products, plugins.path(), "libxcore_plugin_products.so");
    let crm = plugin_library("xcore-plugin-crm", "xcore_plugin_crm", "");
    deploy(&crm, plugins.path(), "libxcore_plugin_crm.so");
    let dir = plugins.path().to_path_buf();
    let server =
        TestServer::start_with(move |config| config.plugins.dir = dir.display().to_string()).await;
    let admin = server.admin_token().await;
    Crm {
        server,
        admin,
        _plugins: plugins,
    }
}

impl Crm {
    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        call(&self.server, method, &format!("{API}{path}"), token, body).await
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        expect_status(self.send(&self.admin, method, path, body).await, status).await
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None, StatusCode::OK).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(Method::POST, path, Some(body), StatusCode::CREATED)
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
        expect_error(
            self.send(&self.admin, method, path, body).await,
            status,
            code,
        )
        .await
    }

    /// A user holding exactly `permissions`; returns `(id, token)`.
    async fn user_with(&self, email: &str, permissions: &[&str]) -> (i64, String) {
        let (user_id, _) = self.server.user_token(email).await;
        let role = expect_status(
            call(
                &self.server,
                Method::POST,
                "/admin/roles",
                &self.admin,
                Some(json!({"name": format!("role_{user_id}")})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let role_id = role["id"].as_i64().expect("role id");
        for permission in permissions {
            let response = call(
                &self.server,
                Method::POST,
                &format!("/admin/roles/{role_id}/permissions/{permission}"),
                &self.admin,
                None,
            )
            .await;
            assert!(response.status().is_success(), "grant {permission}");
        }
        let response = call(
            &self.server,
            Method::POST,
            &format!("/admin/users/{user_id}/roles/{role_id}"),
            &self.admin,
            None,
        )
        .await;
        assert!(response.status().is_success(), "assign role");
        let token = common::access_token(&self.server.login(email, "UserPassw0rd!").await);
        (user_id, token)
    }

    async fn product(&self, sku: &str, price: f64) -> i64 {
        let created = expect_status(
            call(
                &self.server,
                Method::POST,
                "/api/v1/products",
                &self.admin,
                Some(json!({"sku": sku, "name": format!("Product {sku}"), "price": price, "stock": 5})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        created["id"].as_i64().expect("product id")
    }

    async fn default_pipeline(&self) -> Value {
        let pipelines = self.get("/pipelines").await;
        pipelines["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|p| p["is_default"] == true)
            .cloned()
            .expect("a default pipeline")
    }
}

fn ids(list: &Value) -> Vec<i64> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect()
}

fn stage_id(pipeline: &Value, name: &str) -> i64 {
    pipeline["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["id"].as_i64())
        .unwrap_or_else(|| panic!("stage {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_crud_search_filters_export_and_rbac() {
    let crm = start().await;
    let (reader_id, reader) = crm.user_with("reader@example.com", &["crm:read"]).await;
    let (seller_id, seller) = crm
        .user_with("seller@example.com", &["crm:read", "crm:write"])
        .await;

    let acme = crm
        .post(
            "/customers",
            json!({"type": "company", "name": "Acme Industries", "email": "Contact@Acme.com",
                   "phone": "+33 1 23 45 67 89", "tags": ["VIP", "retail"], "address": "1 rue de Paris",
                   "notes": "Fabricant de clôtures"}),
        )
        .await;
    let acme_id = acme["id"].as_i64().expect("id");
    assert_eq!(
        acme["email"], "contact@acme.com",
        "emails are stored lower-case"
    );
    assert_eq!(acme["tags"], json!(["vip", "retail"]));
    assert!(acme["owner_id"].is_i64(), "the creator owns it by default");

    // A taken email (any case) is a 409 naming it and its holder.
    let taken = crm
        .refused(
            Method::POST,
            "/customers",
            Some(json!({"type": "person", "name": "Other", "email": "CONTACT@acme.com"})),
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    let message = taken["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("contact@acme.com") && message.contains("Acme Industries"),
        "{message}"
    );
    assert_eq!(taken["error"]["details"][0]["field"], "email");

    // Every problem at once.
    let invalid = crm
        .refused(
            Method::POST,
            "/customers",
            Some(json!({"type": "robot", "name": " ", "email": "nope", "tags": ["a\"b"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    let fields: Vec<&str> = invalid["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for field in ["type", "name", "email", "tags"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    crm.refused(
        Method::POST,
        "/customers",
        Some(json!({"type": "person", "name": "Jane", "company_id": 999_999})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;

    // A person of Acme, owned by the seller (who creates it).
    let jane = expect_status(
        crm.send(
            &seller,
            Method::POST,
            "/customers",
            Some(
                json!({"type": "person", "name": "Jane Doe", "email": "jane@acme.com",
                        "company_id": acme_id, "tags": ["decision-maker"]}),
            ),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let jane_id = jane["id"].as_i64().expect("id");
    assert_eq!(jane["owner_id"], seller_id);
    let globex = crm
        .post(
            "/customers",
            json!({"type": "company", "name": "Globex", "tags": ["retail"]}),
        )
        .await;
    let globex_id = globex["id"].as_i64().expect("id");

    // A read-only user reads but cannot write or delete.
    let list = expect_status(
        crm.send(&reader, Method::GET, "/customers", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["total"], 3);
    expect_error(
        crm.send(
            &reader,
            Method::POST,
            "/customers",
            Some(json!({"name": "X"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    expect_error(
        crm.send(
            &reader,
            Method::PUT,
            &format!("/customers/{acme_id}"),
            Some(json!({"name": "X"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    expect_error(
        crm.send(
            &seller,
            Method::DELETE,
            &format!("/customers/{globex_id}"),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    let _ = reader_id;

    // Search: words, a prefix, diacritics, email parts; never substrings.
    assert_eq!(
        ids(&crm.get("/customers?search=indus").await),
        vec![acme_id]
    );
    // Email words count: Jane works at acme.com.
    assert_eq!(
        ids(&crm
            .get("/customers?search=acm&sort_by=name&order=asc")
            .await),
        vec![acme_id, jane_id]
    );
    assert_eq!(ids(&crm.get("/customers?search=jane").await), vec![jane_id]);
    assert_eq!(
        ids(&crm.get("/customers?search=fabricant%20cl").await),
        vec![acme_id]
    );
    assert!(ids(&crm.get("/customers?search=cme").await).is_empty());
    assert!(ids(&crm.get("/customers?search=%22%20OR%20*").await).is_empty());

    // Filters.
    assert_eq!(ids(&crm.get("/customers?type=person").await), vec![jane_id]);
    let mut retail = ids(&crm
        .get("/customers?tag=retail&sort_by=name&sort_order=asc")
        .await);
    assert_eq!(retail, vec![acme_id, globex_id]);
    retail = ids(&crm.get("/customers?tag=ret").await);
    assert!(retail.is_empty(), "a tag matches whole");
    let mine = expect_status(
        crm.send(&seller, Method::GET, "/customers?mine=true", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ids(&mine),
        vec![jane_id],
        "mine=true shows only the caller's"
    );
    assert_eq!(
        ids(&crm.get(&format!("/customers?owner_id={seller_id}")).await),
        vec![jane_id]
    );
    assert_eq!(
        ids(&crm.get(&format!("/customers?company_id={acme_id}")).await),
        vec![jane_id]
    );
    assert_eq!(
        crm.get("/customers?created_from=2000-01-01&created_to=2999-12-31")
            .await["total"],
        3
    );
    assert_eq!(
        crm.get("/customers?created_to=2000-01-01").await["total"],
        0
    );
    crm.refused(
        Method::GET,
        "/customers?created_from=yesterday",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    crm.refused(
        Method::GET,
        "/customers?type=robot",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    crm.refused(
        Method::GET,
        "/customers?sort_by=password",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;

    // Sorting and paging.
    let by_name = crm.get("/customers?sort_by=name&order=desc").await;
    assert_eq!(ids(&by_name), vec![jane_id, globex_id, acme_id]);
    let page = crm
        .get("/customers?sort_by=name&order=asc&page=2&page_size=2")
        .await;
    assert_eq!(ids(&page), vec![jane_id]);
    assert_eq!(page["total"], 3);
    assert_eq!(page["total_pages"], 2);
    let window = crm.get("/customers?sort_by=name&skip=1&limit=1").await;
    assert_eq!(ids(&window), vec![globex_id]);
    assert_eq!(window["has_more"], true);

    // Update (partial), the email rule on update, 404s.
    let updated = crm
        .ok(
            Method::PUT,
            &format!("/customers/{globex_id}"),
            Some(json!({"phone": "0102030405", "tags": ["prospect"]})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(updated["name"], "Globex");
    assert_eq!(updated["phone"], "0102030405");
    assert_eq!(updated["tags"], json!(["prospect"]));
    crm.refused(
        Method::PUT,
        &format!("/customers/{globex_id}"),
        Some(json!({"email": "jane@acme.com"})),
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    crm.refused(
        Method::GET,
        "/customers/999999",
        None,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    crm.refused(
        Method::GET,
        "/customers/abc",
        None,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    crm.refused(
        Method::PUT,
        "/customers/999999",
        Some(json!({})),
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // The detail: contacts, open opportunities, recent activities.
    let deal = crm
        .post(
            "/opportunities",
            json!({"title": "Fences 2027", "customer_id": acme_id, "amount": 1200.5}),
        )
        .await;
    let lost = crm
        .post(
            "/opportunities",
            json!({"title": "Old deal", "customer_id": acme_id, "amount": 10}),
        )
        .await;
    crm.ok(
        Method::POST,
        &format!("/opportunities/{}/lost", lost["id"]),
        Some(json!({"reason": "price"})),
        StatusCode::OK,
    )
    .await;
    crm.post(
        "/activities",
        json!({"type": "call", "subject": "Intro call", "customer_id": acme_id}),
    )
    .await;
    let detail = crm.get(&format!("/customers/{acme_id}")).await;
    assert_eq!(detail["name"], "Acme Industries");
    assert_eq!(detail["contacts"][0]["id"], jane_id);
    let open: Vec<&Value> = detail["open_opportunities"]
        .as_array()
        .expect("open")
        .iter()
        .collect();
    assert_eq!(open.len(), 1, "only open deals");
    assert_eq!(open[0]["id"], deal["id"]);
    assert_eq!(open[0]["amount"], 1200.5);
    assert_eq!(detail["recent_activities"][0]["subject"], "Intro call");

    // CSV export: every customer, quoted, with a header.
    let response = crm
        .send(&crm.admin, Method::GET, "/customers/export", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/csv"));
    let csv = response.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("id,type,name,email"));
    assert!(csv.contains("Acme Industries,contact@acme.com"));
    assert!(csv.contains("vip|retail"));
    let filtered = crm
        .send(
            &crm.admin,
            Method::GET,
            "/customers/export?type=person",
            None,
        )
        .await;
    assert_eq!(filtered.text().await.expect("csv").lines().count(), 2);
    let by_reader = crm
        .send(&reader, Method::GET, "/customers/export", None)
        .await;
    assert_eq!(by_reader.status(), StatusCode::OK, "exporting is reading");

    // Delete: 409 while deals refer to it; a customer without is gone, its
    // people detached.
    crm.refused(
        Method::DELETE,
        &format!("/customers/{acme_id}"),
        None,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    crm.ok(
        Method::DELETE,
        &format!("/customers/{globex_id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    crm.refused(
        Method::GET,
        &format!("/customers/{globex_id}"),
        None,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
}
