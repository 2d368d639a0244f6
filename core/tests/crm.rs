//! The crm plugin through the real host and the real
//! `libxcore_plugin_crm.so` (with the real products plugin it depends on):
//! customers (CRUD, 409 on a taken email, 422s, search, filters, sorting,
//! paging, `mine=true`, the detail with contacts, open deals and recent
//! activities, CSV export), pipelines and stages (the default pipeline, a
//! stage in use refused without `move_to`), opportunities (lines priced by
//! the products plugin, a missing product named by line, stage moves with
//! history, won and lost terminal), activities (`mine`, `overdue`), the
//! dashboard, the events on a WebSocket (`crm.activity.due` reaching its
//! assignee once, from the scheduled job), CSV imports with per-line
//! errors, and RBAC (a `crm:read` user cannot write). Runs on SQLite, or
//! PostgreSQL with `XCORE_TEST_DATABASE_URL`.

mod common;

use std::time::Duration;

use common::{expect_error, expect_status, ws, PluginApp};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const API: &str = "/api/v1/crm";

common::plugin_app!(
    /// The host with the products and crm plugins.
    Crm
);

async fn start() -> Crm {
    Crm(PluginApp::start(API, &["products", "crm"], |_| {}).await)
}

impl Crm {
    async fn product(&self, sku: &str, price: f64) -> i64 {
        let created = self
            .server
            .create_as(
                &self.admin,
                "/api/v1/products",
                json!({"sku": sku, "name": format!("Product {sku}"), "price": price, "stock": 5}),
            )
            .await;
        created["id"].as_i64().expect("product id")
    }

    /// Marks the opportunity `id` won (200); the opportunity.
    async fn win(&self, id: impl std::fmt::Display) -> Value {
        self.action(&format!("/opportunities/{id}/won"), None).await
    }

    /// Marks the opportunity `id` lost for `reason` (200); the opportunity.
    async fn lose(&self, id: impl std::fmt::Display, reason: &str) -> Value {
        let path = format!("/opportunities/{id}/lost");
        self.action(&path, json!({"reason": reason})).await
    }

    async fn default_pipeline(&self) -> Value {
        let pipelines = self.get("/pipelines").await;
        common::items(&pipelines)
            .iter()
            .find(|p| p["is_default"] == true)
            .cloned()
            .expect("a default pipeline")
    }
}

fn ids(list: &Value) -> Vec<i64> {
    common::items(list)
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
        .conflict(
            Method::POST,
            "/customers",
            json!({"type": "person", "name": "Other", "email": "CONTACT@acme.com"}),
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
        .invalid(
            Method::POST,
            "/customers",
            json!({"type": "robot", "name": " ", "email": "nope", "tags": ["a\"b"]}),
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
    crm.invalid(
        Method::POST,
        "/customers",
        json!({"type": "person", "name": "Jane", "company_id": 999_999}),
    )
    .await;

    // A person of Acme, owned by the seller (who creates it).
    let jane = expect_status(
        crm.send_as(
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
        crm.send_as(&reader, Method::GET, "/customers", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["total"], 3);
    crm.forbidden_as(&reader, Method::POST, "/customers", json!({"name": "X"}))
        .await;
    crm.forbidden_as(
        &reader,
        Method::PUT,
        &format!("/customers/{acme_id}"),
        json!({"name": "X"}),
    )
    .await;
    crm.forbidden_as(
        &seller,
        Method::DELETE,
        &format!("/customers/{globex_id}"),
        None,
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
    // Searching sorts the matches (on PostgreSQL by an expression, off the
    // name index): the same order both ways.
    assert_eq!(
        ids(&crm
            .get("/customers?search=acm&sort_by=name&sort_order=desc")
            .await),
        vec![jane_id, acme_id]
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
        crm.send_as(&seller, Method::GET, "/customers?mine=true", None)
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
    // An owner's customers of one type are counted from their own index.
    for (kind, expected) in [("person", vec![jane_id]), ("company", vec![])] {
        let list = crm
            .get(&format!("/customers?owner_id={seller_id}&type={kind}"))
            .await;
        assert_eq!(ids(&list), expected, "{kind}");
        assert_eq!(list["total"], expected.len(), "{kind}");
    }
    assert_eq!(
        crm.get("/customers?created_from=2000-01-01&created_to=2999-12-31")
            .await["total"],
        3
    );
    assert_eq!(
        crm.get("/customers?created_to=2000-01-01").await["total"],
        0
    );
    crm.invalid(Method::GET, "/customers?created_from=yesterday", None)
        .await;
    crm.invalid(Method::GET, "/customers?type=robot", None)
        .await;
    crm.invalid(Method::GET, "/customers?sort_by=password", None)
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
        .put(
            &format!("/customers/{globex_id}"),
            json!({"phone": "0102030405", "tags": ["prospect"]}),
        )
        .await;
    assert_eq!(updated["name"], "Globex");
    assert_eq!(updated["phone"], "0102030405");
    assert_eq!(updated["tags"], json!(["prospect"]));
    crm.put_conflict(
        &format!("/customers/{globex_id}"),
        json!({"email": "jane@acme.com"}),
    )
    .await;
    crm.not_found(Method::GET, "/customers/999999").await;
    crm.not_found(Method::GET, "/customers/abc").await;
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
    crm.lose(&lost["id"], "price").await;
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
        .send_as(&crm.admin, Method::GET, "/customers/export", None)
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
        .send_as(
            &crm.admin,
            Method::GET,
            "/customers/export?type=person",
            None,
        )
        .await;
    assert_eq!(filtered.text().await.expect("csv").lines().count(), 2);
    let by_reader = crm
        .send_as(&reader, Method::GET, "/customers/export", None)
        .await;
    assert_eq!(by_reader.status(), StatusCode::OK, "exporting is reading");

    // Delete: 409 while deals refer to it; a customer without is gone, its
    // people detached.
    crm.conflict(Method::DELETE, &format!("/customers/{acme_id}"), None)
        .await;
    crm.remove(&format!("/customers/{globex_id}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_opportunities_lines_stages_won_and_lost() {
    let crm = start().await;
    let (seller_id, seller) = crm
        .user_with(
            "seller@example.com",
            &["crm:read", "crm:write", "products:read"],
        )
        .await;
    let (_, no_catalogue) = crm
        .user_with("blind@example.com", &["crm:read", "crm:write"])
        .await;

    // The default pipeline came with the install.
    let pipeline = crm.default_pipeline().await;
    assert_eq!(pipeline["name"], "Sales");
    let stages = pipeline["stages"].as_array().expect("stages");
    let kinds: Vec<&str> = stages.iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(kinds, ["open", "open", "open", "open", "won", "lost"]);
    assert_eq!(stages[0]["position"], 1);
    assert_eq!(stages[0]["probability"], 10);
    let pipeline_id = pipeline["id"].as_i64().expect("id");
    let (lead, qualified, proposal) = (
        stage_id(&pipeline, "Lead"),
        stage_id(&pipeline, "Qualified"),
        stage_id(&pipeline, "Proposal"),
    );

    let customer = crm
        .post("/customers", json!({"type": "company", "name": "Initech"}))
        .await;
    let customer_id = customer["id"].as_i64().expect("id");
    let keyboard = crm.product("KB-1", 49.99).await;
    let screen = crm.product("SC-1", 199.9).await;

    // Lines priced from the catalogue, whatever the client says.
    let deal = expect_status(
        crm.send_as(&seller,
            Method::POST,
            "/opportunities",
            Some(json!({"title": "Office refit", "customer_id": customer_id, "expected_close": "2027-03-15",
                        "lines": [{"product_id": keyboard, "quantity": 3, "unit_price": 0.01},
                                  {"product_id": screen, "quantity": 2, "discount": 10}]})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let deal_id = deal["id"].as_i64().expect("id");
    assert_eq!(deal["pipeline_id"], pipeline_id);
    assert_eq!(deal["stage_id"], lead, "the first stage by default");
    assert_eq!(deal["probability"], 10, "the stage's probability");
    assert_eq!(deal["owner_id"], seller_id);
    assert_eq!(deal["status"], "open");
    assert_eq!(deal["currency"], "EUR");
    assert_eq!(deal["lines"][0]["unit_price"], 49.99);
    assert_eq!(deal["lines"][0]["total"], 149.97);
    assert_eq!(deal["lines"][0]["product_name"], "Product KB-1");
    assert_eq!(deal["lines"][1]["unit_price"], 199.9);
    assert_eq!(deal["lines"][1]["discount"], 10.0);
    assert_eq!(deal["lines"][1]["total"], 359.82);
    assert_eq!(deal["amount"], 509.79, "the lines' exact total");

    // A catalogue price change does not touch existing lines.
    crm.server
        .put_as(
            &crm.admin,
            &format!("/api/v1/products/{keyboard}"),
            json!({"price": 59.99}),
        )
        .await;
    assert_eq!(
        crm.get(&format!("/opportunities/{deal_id}")).await["lines"][0]["unit_price"],
        49.99
    );

    // A product that does not exist is a 422 naming the line.
    let missing = crm
        .invalid(
            Method::POST,
            "/opportunities",
            json!({"title": "Ghost", "customer_id": customer_id,
                        "lines": [{"product_id": keyboard}, {"product_id": 999_999}]}),
        )
        .await;
    assert_eq!(
        missing["error"]["details"][0]["field"],
        "lines[1].product_id"
    );
    assert!(missing["error"]["details"][0]["message"]
        .as_str()
        .expect("m")
        .contains("999999"));
    // Pricing reads the catalogue with the caller's rights.
    crm.forbidden_as(
        &no_catalogue,
        Method::POST,
        "/opportunities",
        json!({"title": "Blind", "customer_id": customer_id, "lines": [{"product_id": keyboard}]}),
    )
    .await;
    // Without lines, the amount is the client's, exact; other 422s.
    let plain = crm
        .post(
            "/opportunities",
            json!({"title": "Consulting", "customer_id": customer_id, "amount": "1234.56", "currency": "usd",
                   "probability": 60, "stage_id": qualified}),
        )
        .await;
    assert_eq!(plain["amount"], 1234.56);
    assert_eq!(plain["currency"], "USD");
    assert_eq!(plain["probability"], 60, "its own probability");
    let bad = crm
        .invalid(
            Method::POST,
            "/opportunities",
            json!({"title": "", "customer_id": 999_999, "amount": 1.234, "currency": "EURO",
                        "probability": 101, "expected_close": "soon"}),
        )
        .await;
    assert_eq!(
        bad["error"]["details"].as_array().expect("details").len(),
        6,
        "{bad}"
    );

    // Filters, mine, sorting.
    let mine = expect_status(
        crm.send_as(&seller, Method::GET, "/opportunities?mine=true", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&mine), vec![deal_id]);
    assert_eq!(
        ids(&crm.get("/opportunities?sort_by=amount&order=desc").await),
        vec![plain["id"].as_i64().expect("id"), deal_id]
    );
    assert_eq!(
        ids(&crm
            .get(&format!("/opportunities?stage_id={qualified}"))
            .await),
        vec![plain["id"].as_i64().expect("id")]
    );
    assert_eq!(
        ids(&crm.get("/opportunities?search=refit").await),
        vec![deal_id]
    );
    // The total is counted apart from the page (without the stage join):
    // it agrees with the rows for every filter, on a page of one too.
    for query in [
        String::new(),
        "status=open".to_string(),
        format!("stage_id={qualified}"),
        "search=refit".to_string(),
        "status=won".to_string(),
    ] {
        let all = crm.get(&format!("/opportunities?{query}")).await;
        let one = crm
            .get(&format!("/opportunities?{query}&page_size=1"))
            .await;
        assert_eq!(all["total"], ids(&all).len(), "{query}: {all}");
        assert_eq!(one["total"], all["total"], "{query}: {one}");
        assert!(ids(&one).len() <= 1, "{query}: {one}");
    }

    // Stage moves, recorded with who and when.
    let moved = crm
        .action(
            &format!("/opportunities/{deal_id}/stage"),
            json!({"stage_id": proposal}),
        )
        .await;
    assert_eq!(moved["stage_id"], proposal);
    assert_eq!(moved["probability"], 50);
    crm.invalid(
        Method::POST,
        &format!("/opportunities/{deal_id}/stage"),
        json!({"stage_id": stage_id(&pipeline, "Won")}),
    )
    .await;
    let won = expect_status(
        crm.send_as(
            &seller,
            Method::POST,
            &format!("/opportunities/{deal_id}/won"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(won["status"], "won");
    assert_eq!(won["stage_id"], stage_id(&pipeline, "Won"));
    assert!(won["closed_at"].is_string());
    // Won is terminal.
    for (path, body) in [
        ("stage", json!({"stage_id": lead})),
        ("lost", json!({"reason": "changed mind"})),
        ("won", json!({})),
    ] {
        crm.conflict(
            Method::POST,
            &format!("/opportunities/{deal_id}/{path}"),
            body,
        )
        .await;
    }
    crm.put_conflict(&format!("/opportunities/{deal_id}"), json!({"title": "x"}))
        .await;
    let history = crm.get(&format!("/opportunities/{deal_id}/history")).await;
    let entries = common::items(&history);
    assert_eq!(entries.len(), 3, "{history}");
    assert_eq!(entries[0]["to_stage"], "Lead");
    assert!(entries[0]["from_stage_id"].is_null());
    assert_eq!(entries[1]["from_stage"], "Lead");
    assert_eq!(entries[1]["to_stage"], "Proposal");
    assert_eq!(
        entries[1]["changed_by"],
        crm.get("/customers").await["items"][0]["owner_id"]
    );
    assert_eq!(entries[2]["to_stage"], "Won");
    assert_eq!(entries[2]["status"], "won");
    assert_eq!(entries[2]["changed_by"], seller_id);
    assert!(entries[2]["changed_at"].is_string());

    // Lost needs a reason and is terminal too.
    let plain_id = plain["id"].as_i64().expect("id");
    crm.invalid(
        Method::POST,
        &format!("/opportunities/{plain_id}/lost"),
        json!({"reason": " "}),
    )
    .await;
    let lost = crm.lose(plain_id, "Too expensive").await;
    assert_eq!(lost["status"], "lost");
    assert_eq!(lost["lost_reason"], "Too expensive");
    crm.conflict(
        Method::POST,
        &format!("/opportunities/{plain_id}/won"),
        None,
    )
    .await;

    // Updating an open deal: partial, lines re-priced at today's price.
    let open = crm
        .post(
            "/opportunities",
            json!({"title": "Renewal", "customer_id": customer_id, "amount": 100}),
        )
        .await;
    let open_id = open["id"].as_i64().expect("id");
    let updated = crm
        .put(
            &format!("/opportunities/{open_id}"),
            json!({"lines": [{"product_id": keyboard, "quantity": 1}]}),
        )
        .await;
    assert_eq!(updated["title"], "Renewal");
    assert_eq!(updated["amount"], 59.99, "today's catalogue price");
    crm.invalid(
        Method::PUT,
        &format!("/opportunities/{open_id}"),
        json!({"stage_id": proposal}),
    )
    .await;

    // A stage in use cannot be deleted without move_to; with it, deals move.
    crm.conflict(
        Method::DELETE,
        &format!("/pipelines/{pipeline_id}/stages/{lead}"),
        None,
    )
    .await;
    crm.invalid(
        Method::DELETE,
        &format!("/pipelines/{pipeline_id}/stages/{lead}?move_to={lead}"),
        None,
    )
    .await;
    crm.conflict(
        Method::DELETE,
        &format!(
            "/pipelines/{pipeline_id}/stages/{}",
            stage_id(&pipeline, "Won")
        ),
        None,
    )
    .await;
    crm.delete(&format!(
        "/pipelines/{pipeline_id}/stages/{lead}?move_to={qualified}"
    ))
    .await;
    assert_eq!(
        crm.get(&format!("/opportunities/{open_id}")).await["stage_id"],
        qualified
    );
    let moves = crm.get(&format!("/opportunities/{open_id}/history")).await;
    assert_eq!(moves["items"][1]["from_stage_id"], lead, "{moves}");
    assert_eq!(moves["items"][1]["to_stage_id"], qualified);
    let after = crm.get(&format!("/pipelines/{pipeline_id}")).await;
    assert_eq!(after["stages"].as_array().expect("stages").len(), 5);
    assert_eq!(after["stages"][0]["name"], "Qualified");
    assert_eq!(after["stages"][0]["position"], 1);

    // Pipelines: validation, creation, stages added and moved, crm:admin.
    crm.invalid(
        Method::POST,
        "/pipelines",
        json!({"name": "Bad", "stages": [{"name": "Only"}]}),
    )
    .await;
    crm.forbidden_as(
        &seller,
        Method::POST,
        "/pipelines",
        json!({"name": "Mine", "stages": []}),
    )
    .await;
    let partners = crm
        .post(
            "/pipelines",
            json!({"name": "Partners", "stages": [{"name": "Signed", "kind": "won"}, {"name": "Contact", "probability": 20},
                                                   {"name": "Dropped", "kind": "lost"}]}),
        )
        .await;
    let names: Vec<&str> = partners["stages"]
        .as_array()
        .expect("s")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Contact", "Signed", "Dropped"],
        "terminal stages last"
    );
    let partners_id = partners["id"].as_i64().expect("id");
    // Renamed, made the default (the former default stops being one), back.
    let renamed = crm
        .put(
            &format!("/pipelines/{partners_id}"),
            json!({"name": "Partners EU", "is_default": true}),
        )
        .await;
    assert_eq!(renamed["name"], "Partners EU");
    assert_eq!(crm.default_pipeline().await["id"], partners_id);
    crm.conflict(Method::DELETE, &format!("/pipelines/{partners_id}"), None)
        .await;
    crm.put(
        &format!("/pipelines/{pipeline_id}"),
        json!({"is_default": true}),
    )
    .await;
    assert_eq!(crm.default_pipeline().await["id"], pipeline_id);
    crm.put_conflict(
        &format!("/pipelines/{partners_id}"),
        json!({"name": "Sales"}),
    )
    .await;
    let grown = crm
        .post(
            &format!("/pipelines/{partners_id}/stages"),
            json!({"name": "Demo", "probability": 40}),
        )
        .await;
    let names: Vec<&str> = grown["stages"]
        .as_array()
        .expect("s")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["Contact", "Demo", "Signed", "Dropped"]);
    let demo = stage_id(&grown, "Demo");
    let reordered = crm
        .put(
            &format!("/pipelines/{partners_id}/stages/{demo}"),
            json!({"position": 1, "probability": 45}),
        )
        .await;
    assert_eq!(reordered["stages"][0]["name"], "Demo");
    assert_eq!(reordered["stages"][0]["probability"], 45);
    // A stage of another pipeline is refused.
    crm.invalid(
        Method::POST,
        &format!("/opportunities/{open_id}/stage"),
        json!({"stage_id": demo}),
    )
    .await;
    crm.conflict(Method::DELETE, &format!("/pipelines/{pipeline_id}"), None)
        .await;
    crm.remove(&format!("/pipelines/{partners_id}")).await;
    crm.remove(&format!("/opportunities/{open_id}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_dashboard_and_the_due_event_over_websocket() {
    let crm = start().await;
    let (seller_id, seller) = crm
        .user_with("seller@example.com", &["crm:read", "crm:write"])
        .await;
    let customer = crm
        .post("/customers", json!({"type": "company", "name": "Umbrella"}))
        .await;
    let customer_id = customer["id"].as_i64().expect("id");
    let deal = crm
        .post("/opportunities", json!({"title": "Big one", "customer_id": customer_id, "amount": 1000, "expected_close": "2027-01-20"}))
        .await;
    let deal_id = deal["id"].as_i64().expect("id");

    // Activities: validation, linking, mine and overdue.
    crm.invalid(
        Method::POST,
        "/activities",
        json!({"type": "lunch", "subject": ""}),
    )
    .await;
    let linked = crm
        .post("/activities", json!({"type": "meeting", "subject": "Demo", "opportunity_id": deal_id, "due_at": "2999-01-01T10:00:00+01:00"}))
        .await;
    assert_eq!(
        linked["customer_id"], customer_id,
        "the opportunity's customer"
    );
    assert_eq!(linked["due_at"], "2999-01-01T09:00:00.000000Z");
    let overdue = crm
        .post(
            "/activities",
            json!({"type": "call", "subject": "Call back", "customer_id": customer_id,
                                    "due_at": "2001-01-01", "assignee_id": seller_id}),
        )
        .await;
    let overdue_id = overdue["id"].as_i64().expect("id");
    let mine = expect_status(
        crm.send_as(&seller, Method::GET, "/activities?mine=true", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ids(&mine),
        vec![overdue_id],
        "mine=true shows only the caller's"
    );
    assert_eq!(
        ids(&crm.get("/activities?overdue=true").await),
        vec![overdue_id]
    );
    assert_eq!(
        ids(&crm
            .get(&format!("/activities?opportunity_id={deal_id}"))
            .await),
        vec![linked["id"].as_i64().expect("id")]
    );
    crm.invalid(Method::GET, "/activities?type=lunch", None)
        .await;

    // The dashboard.
    let dashboard = crm.get("/dashboard").await;
    assert_eq!(dashboard["pipeline_value"], 1000.0);
    assert_eq!(dashboard["pipeline_weighted_value"], 100.0, "10 % of 1000");
    assert_eq!(dashboard["pipeline"][0]["count"], 1);
    assert_eq!(dashboard["forecast"][0]["month"], "2027-01");
    assert_eq!(dashboard["activities_overdue"], 1);
    assert!(dashboard["conversion_rate"].is_null());
    crm.win(deal_id).await;
    let lost = crm
        .post(
            "/opportunities",
            json!({"title": "Small", "customer_id": customer_id, "amount": 10}),
        )
        .await;
    crm.lose(&lost["id"], "budget").await;
    let dashboard = crm.get("/dashboard").await;
    assert_eq!(dashboard["pipeline_value"], 0.0);
    assert_eq!(dashboard["this_month"]["won"], 1);
    assert_eq!(dashboard["this_month"]["lost"], 1);
    assert_eq!(dashboard["this_month"]["revenue"], 1000.0);
    assert_eq!(dashboard["this_quarter"]["revenue"], 1000.0);
    assert_eq!(dashboard["conversion_rate"], 50.0);
    assert_eq!(dashboard["average_deal_size"], 1000.0);
    assert!(dashboard["average_sales_cycle_days"]
        .as_f64()
        .is_some_and(|d| d >= 0.0));
    assert_eq!(dashboard["top_customers"][0]["name"], "Umbrella");
    let narrowed = crm.get(&format!("/dashboard?owner={seller_id}")).await;
    assert_eq!(narrowed["this_month"]["won"], 0, "the seller owns no deal");
    assert_eq!(
        narrowed["activities_overdue"], 1,
        "the call is the seller's"
    );
    crm.invalid(Method::GET, "/dashboard?currency=euros", None)
        .await;

    // The due activity reaches its assignee over a WebSocket, once.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={seller}", crm.server.addr))
            .await
            .expect("ws");
    socket.next().await.expect("auth reply").expect("frame");
    socket
        .send(Message::Text(
            json!({"type": "subscribe", "topics": ["crm.*"]})
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribe");
    socket
        .next()
        .await
        .expect("subscribe reply")
        .expect("frame");
    // Two onlookers who may read the CRM: an administrator and a teammate.
    // They get the team's events but not the seller's due activity.
    let (_, teammate) = crm.user_with("teammate@example.com", &["crm:read"]).await;
    let mut onlookers = Vec::new();
    for token in [&crm.admin, &teammate] {
        let mut onlooker = ws::connect(&crm.server, &format!("?token={token}")).await;
        ws::next_json(&mut onlooker, Duration::from_secs(5)).await;
        ws::send(
            &mut onlooker,
            json!({"type": "subscribe", "topics": ["crm.*"]}),
        )
        .await;
        ws::next_json(&mut onlooker, Duration::from_secs(5)).await;
        onlookers.push(onlooker);
    }

    // The writes' events, in order, on the same socket.
    let other = crm
        .post("/customers", json!({"type": "person", "name": "Evented"}))
        .await;
    let evented = crm
        .post(
            "/opportunities",
            json!({"title": "Evented deal", "customer_id": other["id"], "amount": 5}),
        )
        .await;
    let pipeline = crm.default_pipeline().await;
    crm.action(
        &format!("/opportunities/{}/stage", evented["id"]),
        json!({"stage_id": stage_id(&pipeline, "Proposal")}),
    )
    .await;
    crm.lose(&evented["id"], "timing").await;
    let topics = tokio::time::timeout(Duration::from_secs(10), async {
        let mut topics = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                let event: Value = serde_json::from_str(text.as_str()).expect("json");
                if let Some(topic) = event["topic"].as_str() {
                    topics.push(topic.to_string());
                    if topic == "crm.opportunity.lost" {
                        assert_eq!(event["data"]["lost_reason"], "timing");
                        return topics;
                    }
                }
            }
        }
        topics
    })
    .await
    .expect("the events in time");
    assert_eq!(
        topics,
        [
            "crm.customer.created",
            "crm.opportunity.created",
            "crm.opportunity.stage_changed",
            "crm.opportunity.stage_changed",
            "crm.opportunity.lost"
        ]
    );
    crm.create_task(
        json!({"id": "crm_due", "name": "Due activities", "type": "interval",
                        "interval": {"seconds": 1}, "job": "crm.due_activities"}),
    )
    .await;
    let event = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await {
                let event: Value = serde_json::from_str(text.as_str()).expect("json");
                if event["topic"] == "crm.activity.due" {
                    return event;
                }
            }
        }
    })
    .await
    .expect("crm.activity.due in time");
    assert_eq!(event["data"]["id"], overdue_id);
    assert_eq!(event["data"]["assignee_id"], seller_id);
    // Announced once: the next runs stay silent.
    let again = tokio::time::timeout(Duration::from_millis(2500), async {
        loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await {
                let event: Value = serde_json::from_str(text.as_str()).expect("json");
                if event["topic"] == "crm.activity.due" {
                    return event;
                }
            }
        }
    })
    .await;
    assert!(again.is_err(), "announced twice: {again:?}");
    // The onlookers saw the team's events (their sockets work) and not the
    // seller's due activity, which ran while the seller's socket waited.
    for onlooker in &mut onlookers {
        let topics = topics_until_silent(onlooker).await;
        assert!(
            topics.iter().any(|t| t == "crm.opportunity.lost"),
            "{topics:?}"
        );
        assert!(
            !topics.iter().any(|t| t == "crm.activity.due"),
            "someone else's due activity reached an onlooker: {topics:?}"
        );
    }
    // An activity created without an assignee is its creator's: the
    // administrator's own socket gets this one.
    let own = crm
        .post(
            "/activities",
            json!({"type": "task", "subject": "Anyone", "customer_id": customer_id, "due_at": "2001-01-02"}),
        )
        .await;
    let event = ws::next_event(&mut onlookers[0], "crm.activity.due").await;
    assert_eq!(event["data"]["id"], own["id"]);
    crm.delete(&format!("/activities/{}", own["id"])).await;

    // Done, updated, deleted; a reader cannot.
    let done = crm
        .put(&format!("/activities/{overdue_id}"), json!({"done": true}))
        .await;
    assert_eq!(done["done"], true);
    assert!(done["done_at"].is_string());
    assert_eq!(done["subject"], "Call back");
    assert!(ids(&crm.get("/activities?overdue=true").await).is_empty());
    let (_, reader) = crm.user_with("reader@example.com", &["crm:read"]).await;
    crm.forbidden_as(
        &reader,
        Method::DELETE,
        &format!("/activities/{overdue_id}"),
        None,
    )
    .await;
    crm.remove(&format!("/activities/{overdue_id}")).await;
}

/// The topics of the events `socket` receives until it stays silent for a
/// second.
async fn topics_until_silent(socket: &mut ws::Socket) -> Vec<String> {
    let mut topics = Vec::new();
    while let Some(message) = ws::next_json(socket, Duration::from_secs(1)).await {
        if let Some(topic) = message["topic"].as_str() {
            topics.push(topic.to_string());
        }
    }
    topics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_csv_import_keeps_good_rows_and_reports_bad_lines() {
    let crm = start().await;
    let existing = crm
        .post(
            "/customers",
            json!({"type": "company", "name": "Existing", "email": "taken@example.com"}),
        )
        .await;
    let company = existing["id"].as_i64().expect("id");
    let file = format!(
        "name;type;email;tags;company_id;notes\n\
         Alpha SA;company;alpha@example.com;vip|retail;;\"Multi\nline note\"\n\
         ;company;noname@example.com;;;\n\
         Bob;person;bob@example.com;;{company};\n\
         Carl;robot;carl@example.com;;;\n\
         Dup;person;TAKEN@example.com;;;\n\
         Eve;person;bob@example.com;;;\n\
         Fay;person;fay@example.com;;abc;\n"
    );
    let upload = |token: &str, body: &str| {
        crm.server
            .post(&format!("{API}/customers/imports"))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(body.to_string())
            .send()
    };
    // Only crm:admin imports; a file without a name column is refused now.
    let (_, writer) = crm
        .user_with("writer@example.com", &["crm:read", "crm:write"])
        .await;
    expect_error(
        upload(&writer, &file).await.expect("send"),
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    expect_error(
        upload(&crm.admin, "nom,email\nx,y\n").await.expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;

    let accepted = expect_status(
        upload(&crm.admin, &file).await.expect("send"),
        StatusCode::ACCEPTED,
    )
    .await;
    let import_id = accepted["id"].as_i64().expect("id");
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let import = crm.get(&format!("/customers/imports/{import_id}")).await;
            if import["status"] == "completed" || import["status"] == "failed" {
                return import;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the import finishes");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_total"], 7);
    assert_eq!(done["rows_imported"], 2, "{done}");
    assert_eq!(done["rows_failed"], 5);
    let errors: Vec<(i64, String)> = done["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["line"].as_i64().expect("line"),
                e["field"].as_str().expect("field").to_string(),
            )
        })
        .collect();
    // Line numbers are the file's: the quoted note spans lines 2 and 3.
    assert_eq!(
        errors,
        vec![
            (4, "name".to_string()),
            (6, "type".to_string()),
            (7, "email".to_string()),
            (8, "email".to_string()),
            (9, "company_id".to_string()),
        ]
    );
    let alpha = crm.get("/customers?search=alpha").await;
    assert_eq!(alpha["total"], 1);
    assert_eq!(alpha["items"][0]["tags"], json!(["vip", "retail"]));
    assert_eq!(alpha["items"][0]["notes"], "Multi\nline note");
    let bob = crm.get("/customers?search=bob").await;
    assert_eq!(bob["items"][0]["company_id"], company);
    assert_eq!(crm.get("/customers/imports").await["total"], 1);
    crm.not_found(Method::GET, "/customers/imports/999").await;
}

/// The running totals as `key|figures` lines, and the same lines computed
/// afresh from the deals: what every write must keep equal.
async fn totals_and_recomputed(crm: &Crm) -> [Vec<String>; 4] {
    let lines = |sql: &'static str| async move {
        sqlx::query(sql)
            .fetch_all(crm.server.state.db.pool())
            .await
            .expect("query")
            .iter()
            .map(|row| sqlx::Row::try_get::<String, _>(row, 0).expect("line"))
            .collect::<Vec<_>>()
    };
    [
        lines(
            "SELECT currency || '|' || owner_key || '|' || status || '|' || stage_id || '|' || month \
             || '|' || deals || '|' || amount_cents || '|' || weighted || '|' || unset_amount \
             || '|' || cycle_seconds || '|' || cycle_deals FROM crm_deal_totals WHERE deals <> 0 \
             ORDER BY 1",
        )
        .await,
        lines(
            "SELECT currency || '|' || owner_key || '|' || status || '|' || stage_id || '|' || month \
             || '|' || deals || '|' || amount || '|' || weighted || '|' || unset_amount \
             || '|' || cycle_seconds || '|' || cycle_deals FROM ( \
             SELECT o.currency, CASE WHEN k.everyone = 1 THEN -1 ELSE COALESCE(o.owner_id, 0) END AS owner_key, \
             o.status, o.stage_id, CASE WHEN o.status = 'open' THEN COALESCE(substr(o.expected_close, 1, 7), '') \
             ELSE COALESCE(substr(o.closed_at, 1, 7), '') END AS month, COUNT(*) AS deals, \
             CAST(SUM(o.amount_cents) AS BIGINT) AS amount, \
             CAST(SUM(o.amount_cents * COALESCE(o.probability, 0)) AS BIGINT) AS weighted, \
             CAST(SUM(CASE WHEN o.probability IS NULL THEN o.amount_cents ELSE 0 END) AS BIGINT) AS unset_amount, \
             CAST(COALESCE(SUM(o.cycle_seconds), 0) AS BIGINT) AS cycle_seconds, COUNT(o.cycle_seconds) AS cycle_deals \
             FROM crm_opportunities o CROSS JOIN (SELECT 0 AS everyone UNION ALL SELECT 1 AS everyone) k \
             GROUP BY 1, 2, 3, 4, 5) fresh ORDER BY 1",
        )
        .await,
        lines(
            "SELECT currency || '|' || owner_key || '|' || customer_id || '|' || deals || '|' || revenue \
             FROM crm_customer_revenue WHERE deals <> 0 ORDER BY 1",
        )
        .await,
        lines(
            "SELECT currency || '|' || owner_key || '|' || customer_id || '|' || deals || '|' || revenue FROM ( \
             SELECT o.currency, CASE WHEN k.everyone = 1 THEN -1 ELSE COALESCE(o.owner_id, 0) END AS owner_key, \
             o.customer_id, COUNT(*) AS deals, CAST(SUM(o.amount_cents) AS BIGINT) AS revenue \
             FROM crm_opportunities o CROSS JOIN (SELECT 0 AS everyone UNION ALL SELECT 1 AS everyone) k \
             WHERE o.status = 'won' GROUP BY 1, 2, 3) fresh ORDER BY 1",
        )
        .await,
    ]
}

async fn assert_totals_match(crm: &Crm, after: &str) {
    let [totals, fresh, revenue, fresh_revenue] = totals_and_recomputed(crm).await;
    assert!(!fresh.is_empty(), "after {after}: no deals?");
    assert_eq!(totals, fresh, "deal totals after {after}");
    assert_eq!(revenue, fresh_revenue, "customer revenue after {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_totals_follow_every_write_and_can_be_rebuilt() {
    let crm = start().await;
    let (seller_id, seller) = crm
        .user_with("seller@example.com", &["crm:read", "crm:write"])
        .await;
    let pipeline = crm.default_pipeline().await;
    let pipeline_id = pipeline["id"].as_i64().expect("pipeline id");
    let [qualified, proposal, negotiation] =
        ["Qualified", "Proposal", "Negotiation"].map(|name| stage_id(&pipeline, name));
    let mut customers = Vec::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        let customer = crm
            .post("/customers", json!({"type": "company", "name": name}))
            .await;
        customers.push(customer["id"].as_i64().expect("id"));
    }
    // Deals of two owners, two currencies, with and without their own
    // probability and expected close.
    let mut deals = Vec::new();
    for (n, (customer, amount, currency, probability, close)) in [
        (customers[0], 1000.5, "EUR", None, Some("2027-01-20")),
        (customers[0], 250.0, "EUR", Some(80), Some("2027-02-01")),
        (customers[1], 99.99, "USD", None, None),
        (customers[1], 5000.0, "EUR", Some(10), Some("2027-01-05")),
        (customers[2], 42.0, "EUR", None, Some("2027-03-31")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = json!({"title": format!("Deal {n}"), "customer_id": customer,
                              "amount": amount, "currency": currency});
        if let Some(probability) = probability {
            body["probability"] = json!(probability);
        }
        if let Some(close) = close {
            body["expected_close"] = json!(close);
        }
        let token = if n % 2 == 0 { &crm.admin } else { &seller };
        let created = expect_status(
            crm.send_as(token, Method::POST, "/opportunities", Some(body))
                .await,
            StatusCode::CREATED,
        )
        .await;
        deals.push(created["id"].as_i64().expect("id"));
    }
    assert_totals_match(&crm, "creating").await;

    // Changes of amount, currency, owner, probability and expected close.
    crm.put(
        &format!("/opportunities/{}", deals[0]),
        json!({"amount": 1500, "owner_id": seller_id, "probability": 30}),
    )
    .await;
    crm.put(
        &format!("/opportunities/{}", deals[2]),
        json!({"currency": "EUR", "expected_close": "2027-06-30", "probability": null}),
    )
    .await;
    assert_totals_match(&crm, "updates").await;

    // Stage moves, won, lost, and a refused second close.
    for (deal, stage) in [
        (deals[0], proposal),
        (deals[1], negotiation),
        (deals[3], qualified),
    ] {
        crm.action(
            &format!("/opportunities/{deal}/stage"),
            json!({"stage_id": stage}),
        )
        .await;
    }
    crm.win(deals[0]).await;
    crm.win(deals[2]).await;
    crm.lose(deals[1], "price").await;
    crm.conflict(
        Method::POST,
        &format!("/opportunities/{}/lost", deals[0]),
        json!({"reason": "late"}),
    )
    .await;
    assert_totals_match(&crm, "stage moves, won and lost").await;

    // A stage deleted with its deals moved, then a deal deleted.
    crm.delete(&format!(
        "/pipelines/{pipeline_id}/stages/{qualified}?move_to={negotiation}"
    ))
    .await;
    assert_totals_match(&crm, "a stage deleted with move_to").await;
    crm.delete(&format!("/opportunities/{}", deals[4])).await;
    assert_totals_match(&crm, "a deletion").await;

    // Writers at the same time (the pool's connections in parallel): each
    // queues on the totals lock, and nothing is counted twice or lost.
    let mut racing = Vec::new();
    for n in 0..6 {
        let created = crm
            .post(
                "/opportunities",
                json!({"title": format!("Race {n}"), "customer_id": customers[n % 3],
                       "amount": 10 + n, "expected_close": "2027-05-01"}),
            )
            .await;
        racing.push(created["id"].as_i64().expect("id"));
    }
    let writes = racing.iter().enumerate().flat_map(|(n, deal)| {
        let stage = if n % 2 == 0 { proposal } else { negotiation };
        [
            (
                Method::POST,
                format!("/opportunities/{deal}/stage"),
                json!({"stage_id": stage}),
            ),
            (
                Method::PUT,
                format!("/opportunities/{deal}"),
                json!({"amount": 100 + n, "owner_id": seller_id}),
            ),
        ]
    });
    let crm_ref = &crm;
    let answers = futures_util::future::join_all(writes.map(|(method, path, body)| async move {
        crm_ref
            .send_as(&crm_ref.admin, method, &path, Some(body))
            .await
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK, "{:?}", answer.text().await);
    }
    assert_totals_match(&crm, "concurrent writes").await;

    // The dashboard reads them: the seller's won deal is theirs, and the
    // team's includes it.
    let mine = crm.get(&format!("/dashboard?owner={seller_id}")).await;
    assert_eq!(mine["top_customers"][0]["customer_id"], customers[0]);
    assert_eq!(mine["average_deal_size"], json!(1500.0));
    let team = crm.get("/dashboard").await;
    assert_eq!(team["conversion_rate"], json!(66.67), "{team}");
    crm.invalid(Method::GET, "/dashboard?owner=-1", None).await;

    // Totals written wrong by hand are rebuilt by the job.
    for sql in [
        "DELETE FROM crm_deal_totals WHERE status = 'open'",
        "UPDATE crm_customer_revenue SET revenue = revenue + 1",
    ] {
        sqlx::query(sql)
            .execute(crm.server.state.db.pool())
            .await
            .expect("tamper");
    }
    let [totals, fresh, ..] = totals_and_recomputed(&crm).await;
    assert_ne!(totals, fresh, "the tampering shows");
    crm.create_task(
        json!({"id": "crm_totals", "name": "Rebuild totals", "type": "interval",
                        "interval": {"hours": 24}, "job": "crm.rebuild_totals"}),
    )
    .await;
    crm.run_task("crm_totals").await;
    for _ in 0..100 {
        let [totals, fresh, revenue, fresh_revenue] = totals_and_recomputed(&crm).await;
        if totals == fresh && revenue == fresh_revenue {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_totals_match(&crm, "the rebuild job").await;
}
