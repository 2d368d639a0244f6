//! The leads plugin through the real host and the real `.so`: leads CRUD
//! with status moves (409 naming the allowed ones), duplicates (409 naming
//! the lead), lists with search/filters/sorts/pages, niches with stats and
//! recommendations, campaigns (placeholders, status moves, sending to a
//! local HTTP server with a failure retried), signed idempotent webhooks,
//! settings (422 naming the field, secrets masked), stats and logs. Runs
//! on SQLite, and on PostgreSQL when `XCORE_TEST_DATABASE_URL` is set.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{http::StatusCode as AxumStatus, routing::post, Router};
use common::{detail_fields, expect_error, expect_status, next_bus_event, PluginApp};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

const API: &str = "/api/v1/leads";
const SECRET: &str = "webhook-secret-0123456789";

common::plugin_app!(
    /// The host with the leads plugin.
    Plant
);

/// What the local webhook server saw, and how many of the first requests
/// it refuses with a 500.
#[derive(Default)]
struct Hook {
    bodies: Mutex<Vec<(Option<String>, Value)>>,
    fail_first: AtomicUsize,
}

/// A local HTTP server standing in for a campaign's delivery webhook and
/// for an enrichment service.
async fn hook_server(hook: Arc<Hook>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route(
            "/enrich",
            post(|| async {
                axum::Json(json!({"website": "https://enriched.example", "contact_name": "Enriched Person", "source": 7}))
            }),
        )
        .route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let hook = hook.clone();
            async move {
                let signature = headers
                    .get("x-signature")
                    .map(|v| v.to_str().unwrap_or_default().to_string());
                let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if hook
                    .fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return AxumStatus::INTERNAL_SERVER_ERROR;
                }
                hook.bodies.lock().expect("lock").push((signature, value));
                AxumStatus::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn start(allow: Option<std::net::SocketAddr>) -> Plant {
    Plant(
        PluginApp::start(API, &["leads"], move |config| {
            if let Some(addr) = allow {
                config.plugins.settings.insert(
                    "leads".into(),
                    xcore::config::PluginSettings {
                        http_allow: vec![format!("http://{addr}/")],
                        ..Default::default()
                    },
                );
            }
        })
        .await,
    )
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

impl Plant {
    async fn create(&self, lead: Value) -> Value {
        self.post("", lead).await
    }

    async fn sql(&self, sql: &str) {
        sqlx::query(sql)
            .execute(self.server.state.db.pool())
            .await
            .expect("statement");
    }

    async fn webhook(
        &self,
        path: &str,
        body: &Value,
        signature: Option<String>,
        key: Option<&str>,
    ) -> reqwest::Response {
        let raw = body.to_string();
        let mut request = self
            .server
            .post(&format!("{API}{path}"))
            .header("content-type", "application/json")
            .body(raw);
        if let Some(signature) = signature {
            request = request.header("x-signature", signature);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.expect("send")
    }

    /// [`webhook`](Self::webhook) with `body` signed with [`SECRET`].
    async fn signed(&self, path: &str, body: &Value, key: Option<&str>) -> reqwest::Response {
        let signature = sign(body.to_string().as_bytes());
        self.webhook(path, body, Some(signature), key).await
    }

    async fn wait_for(&self, sql: &str, expected: i64) {
        for _ in 0..200 {
            if self.scalar(sql).await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{sql} never reached {expected} (is {})",
            self.scalar(sql).await
        );
    }
}

fn companies(list: &Value) -> Vec<String> {
    common::items(list)
        .iter()
        .map(|item| item["company"].as_str().expect("company").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_crud_status_moves_and_duplicates() {
    let plant = start(None).await;
    let mut events = plant.server.state.events.subscribe();
    let acme = plant
        .create(
            json!({"company": "Acme SARL", "contact_name": "Alice Martin",
            "email": "Alice@Acme.fr", "phone": "+33 6 12 34 56 78", "source": "linkedin",
            "tags": ["b2b", "b2b", "paris"], "score": 40}),
        )
        .await;
    let id = acme["id"].as_i64().expect("id");
    assert_eq!(acme["status"], "new");
    assert_eq!(acme["tags"], json!(["b2b", "paris"]));
    let event = next_bus_event(&mut events, "leads.created").await;
    assert_eq!(event["id"], id);

    // Every bad field at once.
    let bad = plant
        .invalid(
            Method::POST,
            "",
            json!({"company": "", "email": "nope", "phone": "12", "score": 101, "status": "won"}),
        )
        .await;
    let fields = detail_fields(&bad);
    for field in ["company", "email", "phone", "score", "status"] {
        assert!(fields.contains(&field.to_string()), "{field}: {bad}");
    }
    plant
        .invalid(Method::POST, "", json!({"company": "X", "niche_id": 999}))
        .await;
    plant
        .invalid(Method::POST, "", json!({"company": "X", "colour": "red"}))
        .await;

    // Duplicates: same email ignoring case, same phone digits.
    let duplicate = plant
        .conflict(
            Method::POST,
            "",
            json!({"company": "Other", "email": "alice@ACME.fr"}),
        )
        .await;
    let message = duplicate["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("lead {id}")) && message.contains("Acme SARL"),
        "{message}"
    );
    assert_eq!(detail_fields(&duplicate), ["email"]);
    let duplicate = plant
        .conflict(
            Method::POST,
            "",
            json!({"company": "Other", "phone": "+33612345678"}),
        )
        .await;
    assert_eq!(detail_fields(&duplicate), ["phone"]);
    let beta = plant
        .create(json!({"company": "Beta", "email": "bob@beta.io"}))
        .await;
    let beta_id = beta["id"].as_i64().expect("id");
    plant
        .put_conflict(&format!("/{beta_id}"), json!({"email": "ALICE@acme.fr"}))
        .await;

    // Status moves.
    let forbidden = plant
        .put_conflict(&format!("/{id}"), json!({"status": "converted"}))
        .await;
    let message = forbidden["error"]["message"].as_str().expect("message");
    assert!(message.contains("contacted, lost"), "{message}");
    for status in ["contacted", "qualified", "converted"] {
        let moved = plant
            .put(&format!("/{id}"), json!({"status": status}))
            .await;
        assert_eq!(moved["status"], status);
    }
    let converted = plant.get(&format!("/{id}")).await;
    assert!(converted["converted_at"].is_string());
    let history: Vec<&str> = converted["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["to_status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(history, ["new", "contacted", "qualified", "converted"]);
    let final_move = plant
        .put_conflict(&format!("/{id}"), json!({"status": "lost"}))
        .await;
    assert!(final_move["error"]["message"]
        .as_str()
        .expect("m")
        .contains("converted is final"));
    // Any non-final status may be lost; lost is final too.
    plant
        .put(
            &format!("/{beta_id}"),
            json!({"status": "lost", "notes": "no budget"}),
        )
        .await;
    plant
        .put_conflict(&format!("/{beta_id}"), json!({"status": "new"}))
        .await;

    // Partial update; an empty string clears.
    let changed = plant
        .put(
            &format!("/{beta_id}"),
            json!({"website": "https://beta.io", "notes": ""}),
        )
        .await;
    assert_eq!(changed["website"], "https://beta.io");
    assert!(changed["notes"].is_null());
    assert_eq!(changed["email"], "bob@beta.io");

    // Delete, 404s, RBAC.
    plant.remove(&format!("/{beta_id}")).await;
    plant
        .not_found(Method::DELETE, &format!("/{beta_id}"))
        .await;
    plant.not_found(Method::GET, "/abc").await;
    let anonymous = plant.server.get(API).send().await.expect("send");
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    let (_, reader) = plant.user_with("reader@leads.test", &["leads:read"]).await;
    expect_status(
        plant.send_as(&reader, Method::GET, "", None).await,
        StatusCode::OK,
    )
    .await;
    plant
        .forbidden_as(&reader, Method::POST, "", json!({"company": "Nope"}))
        .await;
    plant
        .forbidden_as(&reader, Method::DELETE, &format!("/{id}"), None)
        .await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_search_filter_sort_and_page() {
    let plant = start(None).await;
    let niche = plant.post("/niches", json!({"name": "Restaurants"})).await;
    let niche_id = niche["id"].as_i64().expect("id");
    for (company, score, source, notes, tags) in [
        (
            "Café de Flore",
            80,
            "linkedin",
            "terrasse parisienne",
            json!(["paris"]),
        ),
        (
            "Brasserie Lipp",
            60,
            "salon",
            "choucroute",
            json!(["paris", "vip"]),
        ),
        ("Le Procope", 20, "linkedin", "plus ancien café", json!([])),
        ("Chez Janou", 50, "web", "pastis", json!(["marseille"])),
    ] {
        plant
            .create(
                json!({"company": company, "score": score, "source": source, "notes": notes,
                "tags": tags, "niche_id": niche_id}),
            )
            .await;
    }
    plant.create(json!({"company": "Acme", "score": 90})).await;

    let all = plant.get("?sort_by=score&sort_order=desc").await;
    assert_eq!(all["total"], 5);
    assert_eq!(
        companies(&all),
        [
            "Acme",
            "Café de Flore",
            "Brasserie Lipp",
            "Chez Janou",
            "Le Procope"
        ]
    );
    // Words, diacritics folded on SQLite; prefix on the last word.
    let found = plant
        .get("?search=cafe&sort_by=company&sort_order=asc")
        .await;
    let on_postgres =
        std::env::var("XCORE_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    if !on_postgres {
        assert_eq!(companies(&found), ["Café de Flore", "Le Procope"]);
    }
    let found = plant.get("?search=bras").await;
    assert_eq!(companies(&found), ["Brasserie Lipp"]);
    let found = plant.get("?search=terrasse%20paris").await;
    assert_eq!(companies(&found), ["Café de Flore"]);
    // Query syntax is just text.
    assert_eq!(plant.get("?search=%22OR%20*").await["total"], 0);
    let filtered = plant
        .get(&format!(
            "?niche_id={niche_id}&source=linkedin&score_min=30&sort_by=score"
        ))
        .await;
    assert_eq!(companies(&filtered), ["Café de Flore"]);
    let tagged = plant.get("?tag=paris&sort_by=company&sort_order=asc").await;
    assert_eq!(companies(&tagged), ["Brasserie Lipp", "Café de Flore"]);
    let page = plant
        .get("?sort_by=company&sort_order=asc&page=2&page_size=2")
        .await;
    assert_eq!(companies(&page), ["Café de Flore", "Chez Janou"]);
    assert_eq!(page["total_pages"], 3);
    assert_eq!(page["has_more"], true);
    let window = plant
        .get("?sort_by=company&sort_order=asc&skip=4&limit=2")
        .await;
    assert_eq!(companies(&window), ["Le Procope"]);
    assert_eq!(window["has_more"], false);
    let today = plant
        .get("?created_from=2020-01-01&created_to=2999-12-31")
        .await;
    assert_eq!(today["total"], 5);
    assert_eq!(plant.get("?created_to=2020-01-01").await["total"], 0);
    for bad in [
        "?sort_by=colour",
        "?score_min=200",
        "?status=won",
        "?created_from=yesterday",
        "?limit=0",
    ] {
        plant.invalid(Method::GET, bad, None).await;
    }

    // /status/{status} takes the same filters.
    let first = plant.get("?search=acme").await["items"][0]["id"]
        .as_i64()
        .expect("id");
    plant
        .put(&format!("/{first}"), json!({"status": "contacted"}))
        .await;
    let contacted = plant.get("/status/contacted").await;
    assert_eq!(companies(&contacted), ["Acme"]);
    assert_eq!(
        plant.get("/status/new?sort_by=score&limit=1").await["total"],
        4
    );
    assert_eq!(
        companies(&plant.get("/status/new?sort_by=score&limit=1").await),
        ["Café de Flore"]
    );
    plant.not_found(Method::GET, "/status/won").await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn niches_with_stats_and_recommendations() {
    let plant = start(None).await;
    let niche = plant
        .post(
            "/niches",
            json!({"name": "SaaS", "description": "B2B software",
            "criteria": {"size": "10-50", "regions": ["FR"]}}),
        )
        .await;
    let niche_id = niche["id"].as_i64().expect("id");
    assert_eq!(niche["criteria"]["regions"], json!(["FR"]));
    plant
        .conflict(Method::POST, "/niches", json!({"name": "SaaS"}))
        .await;
    plant
        .invalid(
            Method::POST,
            "/niches",
            json!({"name": "X", "criteria": [1]}),
        )
        .await;
    let renamed = plant
        .put(
            &format!("/niches/{niche_id}"),
            json!({"description": "Logiciels"}),
        )
        .await;
    assert_eq!(renamed["name"], "SaaS");
    assert_eq!(renamed["description"], "Logiciels");
    assert_eq!(plant.get("/niches").await["total"], 1);

    // linkedin converts 2 of 3, salon 0 of 2; one open lead is stale.
    let mut ids = Vec::new();
    for (index, source) in ["linkedin", "linkedin", "linkedin", "salon", "salon"]
        .iter()
        .enumerate()
    {
        let lead = plant
            .create(
                json!({"company": format!("Co {index}"), "source": source, "niche_id": niche_id}),
            )
            .await;
        ids.push(lead["id"].as_i64().expect("id"));
    }
    for id in &ids[..2] {
        for status in ["contacted", "qualified", "converted"] {
            plant
                .put(&format!("/{id}"), json!({"status": status}))
                .await;
        }
    }
    plant
        .put(&format!("/{}", ids[3]), json!({"status": "lost"}))
        .await;
    plant
        .sql(&format!(
            "UPDATE leads SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id = {}",
            ids[4]
        ))
        .await;

    let stats = plant.get(&format!("/niches/{niche_id}/stats")).await;
    assert_eq!(stats["leads"], 5);
    assert_eq!(stats["converted"], 2);
    assert_eq!(stats["conversion_rate"], 0.4);
    assert_eq!(
        stats["per_status"],
        json!({"new": 2, "contacted": 0, "qualified": 0, "converted": 2, "lost": 1})
    );

    let recommendations = plant
        .get(&format!("/niches/{niche_id}/recommendations"))
        .await;
    let list = recommendations.as_array().expect("list");
    let best = list
        .iter()
        .find(|r| r["kind"] == "best_source")
        .expect("best source");
    assert_eq!(best["data"]["source"], "linkedin");
    assert!(
        best["reason"].as_str().expect("reason").contains("2 of 3"),
        "{best}"
    );
    let follow = list
        .iter()
        .find(|r| r["kind"] == "follow_up")
        .expect("follow up");
    assert_eq!(follow["data"]["lead_ids"], json!([ids[4]]));
    assert!(follow["reason"]
        .as_str()
        .expect("reason")
        .contains("14 days"));
    assert!(
        list.iter().all(|r| r["kind"] != "best_campaign"),
        "no campaign data"
    );

    plant
        .conflict(Method::DELETE, &format!("/niches/{niche_id}"), None)
        .await;
    let empty = plant.post("/niches", json!({"name": "Empty"})).await;
    plant.remove(&format!("/niches/{}", empty["id"])).await;
    plant.not_found(Method::GET, "/niches/999/stats").await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_send_through_the_host_with_a_retry() {
    let hook = Arc::new(Hook::default());
    hook.fail_first.store(1, Ordering::SeqCst);
    let addr = hook_server(hook.clone()).await;
    let plant = start(Some(addr)).await;
    plant
        .put("/settings/integrations", json!({"webhook_secret": SECRET}))
        .await;
    plant
        .put(
            "/settings/scheduling",
            json!({"delivery_max_attempts": 3, "delivery_backoff_ms": 10}),
        )
        .await;
    let niche = plant.post("/niches", json!({"name": "Bakeries"})).await;
    let niche_id = niche["id"].as_i64().expect("id");
    for (company, email, score) in [
        ("Boulangerie Paul", "paul@bread.fr", 70),
        ("Fournil", "f@four.fr", 80),
        ("Low", "low@x.fr", 5),
    ] {
        plant
            .create(
                json!({"company": company, "email": email, "score": score, "niche_id": niche_id}),
            )
            .await;
    }
    plant
        .create(json!({"company": "Elsewhere", "email": "e@x.fr", "score": 99}))
        .await;

    // Templates are checked on save.
    let bad = plant
        .invalid(
            Method::POST,
            "/campaigns",
            json!({"name": "C", "channel": "fax", "template": "Hi {{name}}",
            "target": {"score_min": 500, "colour": 1}}),
        )
        .await;
    let fields = detail_fields(&bad);
    for field in ["channel", "template", "target.colour", "target.score_min"] {
        assert!(fields.contains(&field.to_string()), "{field}: {bad}");
    }
    assert!(bad.to_string().contains("{{name}}"), "{bad}");
    let campaign = plant
        .post("/campaigns", json!({"name": "Hiver", "niche_id": niche_id, "channel": "email",
            "template": "Bonjour {{ company }}, score {{score}} ({{niche}})", "target": {"score_min": 50}}))
        .await;
    let id = campaign["id"].as_i64().expect("id");
    assert_eq!(campaign["status"], "draft");
    plant
        .put_conflict(
            &format!("/campaigns/{id}/status"),
            json!({"status": "paused"}),
        )
        .await;
    plant
        .invalid(
            Method::PUT,
            &format!("/campaigns/{id}/status"),
            json!({"status": "active"}),
        )
        .await;
    plant
        .put(
            &format!("/campaigns/{id}"),
            json!({"webhook_url": format!("http://{addr}/hook")}),
        )
        .await;
    let stats = plant.get(&format!("/campaigns/{id}/stats")).await;
    assert_eq!(stats["targeted"], 2);
    assert_eq!(stats["contacted"], 0);

    let active = plant
        .put(
            &format!("/campaigns/{id}/status"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(active["status"], "active");
    plant
        .wait_for(
            &format!("SELECT COUNT(*) FROM leads_deliveries WHERE campaign_id = {id}"),
            2,
        )
        .await;
    let deliveries = plant.get(&format!("/campaigns/{id}/deliveries")).await;
    let items = common::items(&deliveries);
    assert!(
        items.iter().all(|d| d["status"] == "delivered"),
        "{deliveries}"
    );
    let attempts: Vec<i64> = items
        .iter()
        .map(|d| d["attempts"].as_i64().expect("n"))
        .collect();
    assert_eq!(attempts, [2, 1], "the first delivery was retried once");
    let bodies = hook.bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2);
    let (signature, first) = &bodies[0];
    assert_eq!(
        first["message"],
        "Bonjour Boulangerie Paul, score 70 (Bakeries)"
    );
    assert_eq!(first["to"], "paul@bread.fr");
    assert_eq!(
        signature.as_deref(),
        Some(sign(first.to_string().as_bytes()).as_str())
    );
    assert_eq!(plant.get("/status/contacted").await["total"], 2);

    // A partner reports a response, signed.
    let update = json!({"campaign_id": id, "lead_id": first["lead_id"], "status": "responded"});
    let response = plant.signed("/webhooks/campaigns", &update, None).await;
    assert_eq!(
        expect_status(response, StatusCode::OK).await["status"],
        "responded"
    );
    let stats = plant.get(&format!("/campaigns/{id}/stats")).await;
    assert_eq!(
        (stats["contacted"].as_i64(), stats["responded"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(stats["response_rate"], 0.5);

    // Moves after active; completed is final.
    plant
        .put(
            &format!("/campaigns/{id}/status"),
            json!({"status": "paused"}),
        )
        .await;
    plant
        .put(
            &format!("/campaigns/{id}/status"),
            json!({"status": "active"}),
        )
        .await;
    plant
        .conflict(Method::DELETE, &format!("/campaigns/{id}"), None)
        .await;
    plant
        .put(
            &format!("/campaigns/{id}/status"),
            json!({"status": "completed"}),
        )
        .await;
    let final_move = plant
        .put_conflict(
            &format!("/campaigns/{id}/status"),
            json!({"status": "active"}),
        )
        .await;
    assert!(final_move["error"]["message"]
        .as_str()
        .expect("m")
        .contains("completed is final"));
    assert_eq!(plant.get("/campaigns").await["total"], 1);
    plant.remove(&format!("/campaigns/{id}")).await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_need_a_signature_and_are_idempotent() {
    let plant = start(None).await;
    let form = json!({"company": "Formulaire SA", "email": "contact@form.fr"});
    let raw = form.to_string();
    // No secret configured yet: nothing is accepted.
    let response = plant.signed("/webhooks/leads", &form, None).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;

    // Settings: 422 naming the field; the secret never comes back.
    let bad = plant
        .invalid(
            Method::PUT,
            "/settings/integrations",
            json!({"webhook_secret": "short", "outbound_urls": ["ftp://x"]}),
        )
        .await;
    assert_eq!(detail_fields(&bad), ["webhook_secret", "outbound_urls[0]"]);
    let saved = plant
        .put("/settings/integrations", json!({"webhook_secret": SECRET}))
        .await;
    assert_eq!(saved["webhook_secret"], "********");
    let read = plant.get("/settings/integrations").await;
    assert_eq!(read["webhook_secret"], "********");
    assert_eq!(read["webhook_secret_set"], true);
    assert!(!read.to_string().contains(SECRET));
    // A PUT without the secret (or with the mask) keeps it.
    plant
        .put(
            "/settings/integrations",
            json!({"webhook_secret": "********", "outbound_events": ["created"]}),
        )
        .await;

    let response = plant.webhook("/webhooks/leads", &form, None, None).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    let response = plant
        .webhook("/webhooks/leads", &form, Some("sha256=00".into()), None)
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    let other = json!({"company": "Tampered", "email": "contact@form.fr"});
    let response = plant
        .webhook("/webhooks/leads", &other, Some(sign(raw.as_bytes())), None)
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    assert_eq!(plant.scalar("SELECT COUNT(*) FROM leads").await, 0);

    let response = plant.signed("/webhooks/leads", &form, Some("form-1")).await;
    let created = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(created["source"], "webhook");
    // The replay answers the same and creates nothing.
    let response = plant.signed("/webhooks/leads", &form, Some("form-1")).await;
    assert_eq!(
        response
            .headers()
            .get("idempotent-replay")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("true")
    );
    let replayed = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(replayed, created);
    assert_eq!(plant.scalar("SELECT COUNT(*) FROM leads").await, 1);
    // A new key is a new request: here a duplicate.
    let response = plant.signed("/webhooks/leads", &form, Some("form-2")).await;
    expect_error(response, StatusCode::CONFLICT, "CONFLICT").await;
    let bad = json!({"company": ""});
    let response = plant.signed("/webhooks/leads", &bad, None).await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let update = json!({"campaign_id": 1, "lead_id": 1, "status": "responded"});
    let response = plant.signed("/webhooks/campaigns", &update, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let response = plant
        .webhook(
            "/webhooks/campaigns",
            &update,
            Some("sha256=bad".into()),
            None,
        )
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_accept_a_host_api_key_holding_leads_write() {
    let plant = start(None).await;
    let key_of = |token: String, permissions: Value| {
        let server = &plant.server;
        async move {
            let created = server
                .create_as(
                    &token,
                    "/auth/api-keys",
                    json!({"name": "forms", "permissions": permissions}),
                )
                .await;
            created["key"].as_str().expect("key").to_string()
        }
    };
    let writer = key_of(plant.admin.clone(), json!(["leads:write"])).await;
    let (_, reader_token) = plant.user_with("reader@example.com", &["leads:read"]).await;
    let reader = key_of(reader_token, json!(["leads:read"])).await;
    let keyed = |key: &str, path: &str, body: &Value, signature: Option<String>| {
        let mut request = plant
            .server
            .post(&format!("{API}{path}"))
            .header("content-type", "application/json")
            .header("x-api-key", key)
            .body(body.to_string());
        if let Some(signature) = signature {
            request = request.header("x-signature", signature);
        }
        request.send()
    };
    let form = json!({"company": "Clé SA", "email": "cle@form.fr"});

    // No webhook secret is configured: the key alone is the credential.
    let response = keyed(&writer, "/webhooks/leads", &form, None)
        .await
        .expect("send");
    let created = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(created["source"], "webhook");
    let update = json!({"campaign_id": 1, "lead_id": created["id"], "status": "opened"});
    let response = keyed(&writer, "/webhooks/campaigns", &update, None)
        .await
        .expect("send");
    expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    // A key without leads:write is a 403 naming it; a made-up key, or a
    // revoked-looking one, identifies nobody: 401.
    let other = json!({"company": "Lecteur SA", "email": "lecteur@form.fr"});
    let response = keyed(&reader, "/webhooks/leads", &other, None)
        .await
        .expect("send");
    let refused = expect_error(response, StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR").await;
    assert!(refused.to_string().contains("leads:write"), "{refused}");
    let (prefix, _) = writer.rsplit_once('_').expect("key shape");
    for forged in [format!("{prefix}_forged"), "xk_0000000000000000_x".into()] {
        let response = keyed(&forged, "/webhooks/leads", &other, None)
            .await
            .expect("send");
        expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    }
    // The key is on the header only: in the query string it is nothing.
    let response = plant
        .server
        .post(&format!("{API}/webhooks/leads?api_key={writer}"))
        .header("content-type", "application/json")
        .body(other.to_string())
        .send()
        .await
        .expect("send");
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    assert_eq!(plant.scalar("SELECT COUNT(*) FROM leads").await, 1);

    // A reader's key with a good signature: the signature is enough.
    plant
        .put("/settings/integrations", json!({"webhook_secret": SECRET}))
        .await;
    let response = keyed(
        &reader,
        "/webhooks/leads",
        &other,
        Some(sign(other.to_string().as_bytes())),
    )
    .await
    .expect("send");
    expect_status(response, StatusCode::CREATED).await;
    let response = keyed(&reader, "/webhooks/leads", &form, Some("sha256=00".into()))
        .await
        .expect("send");
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    assert_eq!(plant.scalar("SELECT COUNT(*) FROM leads").await, 2);
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_log_is_the_host_audit_log() {
    let plant = start(None).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = |path: &str| format!("http://{}{path}", plant.server.addr);
    let response = no_redirects
        .get(url(&format!(
            "{API}/logs/auth?limit=1&action=user.&from=2026-01-01T00:00:00Z"
        )))
        .bearer_auth(&plant.admin)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(
        location, "/admin/audit?action=auth.&limit=1&from=2026-01-01T00%3A00%3A00Z",
        "the caller's action is replaced, the other filters kept"
    );
    // Followed, with the same credential: the host's rows, logins only.
    let followed = plant
        .server
        .get_as(&plant.admin, &format!("{API}/logs/auth"))
        .await;
    let actions: Vec<&str> = common::items(&followed)
        .iter()
        .filter_map(|row| row["action"].as_str())
        .collect();
    assert!(actions.contains(&"auth.login"), "{followed}");
    assert!(
        actions.iter().all(|a| a.starts_with("auth.")),
        "{actions:?}"
    );
    // The host decides who reads it: a leads reader without audit:read is
    // refused at the host; nobody anonymous gets even the redirect.
    let (_, reader) = plant.user_with("reader@example.com", &["leads:read"]).await;
    plant
        .forbidden_as(&reader, Method::GET, "/logs/auth", None)
        .await;
    let response = no_redirects
        .get(url(&format!("{API}/logs/auth")))
        .send()
        .await
        .expect("send");
    expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_stats_and_logs() {
    let plant = start(None).await;
    for (name, body, field) in [
        (
            "general",
            json!({"lead_retention_days": 0}),
            "lead_retention_days",
        ),
        ("general", json!({"colour": "red"}), "colour"),
        (
            "notifications",
            json!({"recipients": ["nope"]}),
            "recipients[0]",
        ),
        (
            "notifications",
            json!({"notify_on": ["everything"]}),
            "notify_on[0]",
        ),
        (
            "scheduling",
            json!({"delivery_max_attempts": 11}),
            "delivery_max_attempts",
        ),
        (
            "scheduling",
            json!({"follow_up_days": "soon"}),
            "follow_up_days",
        ),
    ] {
        let bad = plant
            .invalid(Method::PUT, &format!("/settings/{name}"), body)
            .await;
        assert_eq!(detail_fields(&bad), [field], "{name}: {bad}");
    }
    assert_eq!(plant.get("/settings/general").await["timezone"], "UTC");
    let saved = plant
        .put(
            "/settings/general",
            json!({"company_name": "BerinIA", "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(saved["lead_retention_days"], 365);
    assert_eq!(
        plant.get("/settings/general").await["company_name"],
        "BerinIA"
    );
    plant
        .put(
            "/settings/notifications",
            json!({"email_enabled": true, "recipients": ["ops@berinia.fr"]}),
        )
        .await;
    assert_eq!(
        plant.get("/settings/notifications").await["recipients"],
        json!(["ops@berinia.fr"])
    );
    assert_eq!(
        plant.get("/settings/scheduling").await["delivery_max_attempts"],
        3
    );
    let (_, reader) = plant.user_with("reader@stats.test", &["leads:read"]).await;
    plant
        .forbidden_as(&reader, Method::GET, "/settings/general", None)
        .await;

    let mut ids = Vec::new();
    for (company, source) in [("A", "web"), ("B", "web"), ("C", "salon"), ("D", "web")] {
        ids.push(
            plant
                .create(json!({"company": company, "source": source, "score": 50}))
                .await["id"]
                .as_i64()
                .expect("id"),
        );
    }
    for status in ["contacted", "qualified", "converted"] {
        plant
            .put(&format!("/{}", ids[0]), json!({"status": status}))
            .await;
    }
    plant
        .put(&format!("/{}", ids[1]), json!({"status": "contacted"}))
        .await;
    plant
        .put(&format!("/{}", ids[2]), json!({"status": "lost"}))
        .await;

    let overview = plant.get("/stats/overview").await;
    assert_eq!(overview["leads"]["total"], 4);
    assert_eq!(overview["leads"]["converted"], 1);
    assert_eq!(overview["leads"]["conversion_rate"], 0.25);
    assert_eq!(overview["leads"]["average_score"], 50.0);
    assert_eq!(overview["leads"]["new_last_30_days"], 4);
    assert_eq!(overview["leads"]["per_status"]["lost"], 1);
    let leads = plant.get("/stats/leads").await;
    assert_eq!(
        leads["per_source"][0],
        json!({"key": "web", "leads": 3, "converted": 1, "conversion_rate": 0.3333})
    );
    assert_eq!(leads["score_distribution"]["40-59"], 4);
    let conversion = plant.get("/stats/conversion").await;
    let funnel: Vec<i64> = conversion["funnel"]
        .as_array()
        .expect("funnel")
        .iter()
        .map(|s| s["leads"].as_i64().expect("n"))
        .collect();
    assert_eq!(funnel, [4, 2, 1, 1]);
    assert_eq!(plant.get("/stats/campaigns").await, json!([]));
    assert_eq!(plant.get("/stats/niches").await, json!([]));
    for (period, points) in [
        ("day", 30),
        ("week", 12),
        ("month", 12),
        ("quarter", 8),
        ("year", 5),
    ] {
        let series = plant.get(&format!("/stats/period/{period}")).await;
        let list = series["series"].as_array().expect("series");
        assert_eq!(list.len(), points, "{period}");
        let last = &list[points - 1];
        assert_eq!(
            (last["leads"].as_i64(), last["converted"].as_i64()),
            (Some(4), Some(1)),
            "{period}: {series}"
        );
        assert_eq!(series["leads"], 4);
    }
    // Old rows fall in their own bucket or outside the window.
    plant
        .sql(&format!(
            "UPDATE leads SET created_at = '2001-01-01T00:00:00.000000Z' WHERE id = {}",
            ids[3]
        ))
        .await;
    assert_eq!(plant.get("/stats/period/year").await["leads"], 3);
    plant.not_found(Method::GET, "/stats/period/decade").await;

    let logs = plant.get("/logs?kind=lead").await;
    assert_eq!(logs["total"], 4);
    assert!(logs["items"][0]["message"]
        .as_str()
        .expect("m")
        .contains("created via api"));
    assert!(plant.get("/logs").await["total"].as_i64().expect("n") >= 6);
    assert_eq!(plant.get("/logs/errors").await["total"], 0);
    assert_eq!(plant.get("/logs/agents").await["total"], 0);
    plant.0.stop().await;
}

/// A lead's current row.
async fn lead(plant: &Plant, id: i64) -> Value {
    plant.get(&format!("/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_do_their_jobs_on_real_rows() {
    let hook = Arc::new(Hook::default());
    let addr = hook_server(hook.clone()).await;
    let plant = start(Some(addr)).await;
    let mut events = plant.server.state.events.subscribe();
    let acme = plant
        .create(json!({"company": "Acme SARL", "email": "a@acme.fr", "source": "linkedin", "tags": ["vip"], "contact_name": "Alice"}))
        .await["id"].as_i64().expect("id");
    let acme_again = plant
        .create(json!({"company": "Acme S.A.R.L.", "email": "b@acme.fr", "phone": "01 02 03 04 05", "notes": "second", "tags": ["fr"]}))
        .await["id"].as_i64().expect("id");
    let gamma = plant
        .create(json!({"company": "Gamma", "website": "https://www.gamma.io", "source": "salon"}))
        .await["id"]
        .as_i64()
        .expect("id");
    let delta = plant
        .create(json!({"company": "Delta", "email": "d@delta.fr", "contact_name": "Dan", "website": "https://delta.fr"}))
        .await["id"].as_i64().expect("id");

    // Configs are checked against the type.
    let bad = plant
        .invalid(
            Method::POST,
            "/agents",
            json!({"name": "s", "type": "scorer", "schedule": "soon",
            "config": {"rules": [{"field": "colour", "op": "like", "points": 500}], "extra": 1}}),
        )
        .await;
    let fields = detail_fields(&bad);
    for field in [
        "config.extra",
        "config.rules[0].field",
        "config.rules[0].op",
        "config.rules[0].points",
        "schedule",
    ] {
        assert!(fields.contains(&field.to_string()), "{field}: {bad}");
    }
    for (kind, config, field) in [
        (
            "qualifier",
            json!({"qualify_at": 50, "lose_below": 60}),
            "config.lose_below",
        ),
        (
            "deduplicator",
            json!({"match_on": "vibes"}),
            "config.match_on",
        ),
        ("follow_up", json!({}), "config.days"),
        (
            "enricher",
            json!({"url": "ftp://x", "fields": ["email"]}),
            "config.url",
        ),
        ("oracle", json!({}), "type"),
    ] {
        let bad = plant
            .invalid(
                Method::POST,
                "/agents",
                json!({"name": kind, "type": kind, "config": config}),
            )
            .await;
        assert!(
            detail_fields(&bad).contains(&field.to_string()),
            "{kind}: {bad}"
        );
    }

    // Scorer: rules to scores.
    let scorer = plant
        .post(
            "/agents",
            json!({"name": "Scorer", "type": "scorer", "config": {"base": 10, "rules": [
            {"field": "source", "op": "equals", "value": "LinkedIn", "points": 50},
            {"field": "tags", "op": "equals", "value": "vip", "points": 20},
            {"field": "email", "op": "present", "points": 10}]}}),
        )
        .await;
    assert_eq!(
        (scorer["status"].as_str(), scorer["schedule"].as_str()),
        (Some("active"), Some("manual"))
    );
    let run = plant
        .action(&format!("/agents/{}/restart", scorer["id"]), None)
        .await;
    assert_eq!(
        (
            run["outcome"].as_str(),
            run["examined"].as_i64(),
            run["changed"].as_i64()
        ),
        (Some("ok"), Some(4), Some(4))
    );
    assert_eq!(lead(&plant, acme).await["score"], 90);
    assert_eq!(lead(&plant, acme_again).await["score"], 20);
    assert_eq!(lead(&plant, gamma).await["score"], 10);

    // Qualifier: thresholds to statuses, through the allowed moves only.
    plant
        .put(&format!("/{acme}"), json!({"status": "contacted"}))
        .await;
    let qualifier = plant
        .post("/agents", json!({"name": "Qualifier", "type": "qualifier", "config": {"qualify_at": 80, "lose_below": 15}}))
        .await;
    let run = plant
        .action(&format!("/agents/{}/restart", qualifier["id"]), None)
        .await;
    assert_eq!(run["changed"], 2, "{run}");
    assert_eq!(lead(&plant, acme).await["status"], "qualified");
    assert_eq!(lead(&plant, gamma).await["status"], "lost");
    assert_eq!(lead(&plant, delta).await["status"], "new");

    // Deduplicator: same company and domain, merged into the oldest.
    let dedup = plant
        .post(
            "/agents",
            json!({"name": "Dedup", "type": "deduplicator", "config": {}}),
        )
        .await;
    let run = plant
        .action(&format!("/agents/{}/restart", dedup["id"]), None)
        .await;
    assert_eq!(run["changed"], 1, "{run}");
    plant
        .not_found(Method::GET, &format!("/{acme_again}"))
        .await;
    let merged = lead(&plant, acme).await;
    assert_eq!(merged["phone"], "01 02 03 04 05");
    assert_eq!(merged["email"], "a@acme.fr");
    assert_eq!(merged["notes"], "second");
    assert_eq!(merged["tags"], json!(["vip", "fr"]));
    let history = merged["history"].as_array().expect("history");
    let entry = history
        .iter()
        .find(|h| h["action"] == "merged")
        .expect("merged entry");
    assert_eq!(entry["data"]["merged"]["id"], acme_again);
    assert_eq!(entry["data"]["merged"]["email"], "b@acme.fr");
    // The merged phone now counts as the survivor's for duplicates.
    plant
        .conflict(
            Method::POST,
            "",
            json!({"company": "X", "phone": "0102030405"}),
        )
        .await;

    // Follow-up: open leads untouched for N days get flagged.
    plant.sql(&format!("UPDATE leads SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id IN ({delta}, {gamma})")).await;
    let follow = plant
        .post(
            "/agents",
            json!({"name": "Follow", "type": "follow_up", "config": {"days": 7}}),
        )
        .await;
    let run = plant
        .action(&format!("/agents/{}/restart", follow["id"]), None)
        .await;
    assert_eq!(run["changed"], 1, "{run}");
    let flagged = lead(&plant, delta).await;
    assert_eq!(flagged["tags"], json!(["follow_up"]));
    assert_eq!(
        flagged["updated_at"], "2020-01-01T00:00:00.000000Z",
        "a flag is not a touch"
    );
    assert_eq!(
        lead(&plant, gamma).await["tags"],
        json!([]),
        "lost leads need no follow-up"
    );
    let again = plant
        .action(&format!("/agents/{}/restart", follow["id"]), None)
        .await;
    assert_eq!(again["changed"], 0);

    // Enricher: fills the empty fields from a configured URL, via Host::http.
    let enricher = plant
        .post("/agents", json!({"name": "Enricher", "type": "enricher",
            "config": {"url": format!("http://{addr}/broken"), "fields": ["website", "contact_name", "source"]}}))
        .await;
    let enricher_id = enricher["id"].as_i64().expect("id");
    let failed = plant
        .action(&format!("/agents/{enricher_id}/restart"), None)
        .await;
    assert_eq!(failed["outcome"], "failed");
    assert!(
        failed["errors"][0].as_str().expect("error").contains("404"),
        "{failed}"
    );
    let broken = plant.get(&format!("/agents/{enricher_id}")).await;
    assert_eq!(broken["status"], "error");
    assert!(broken["last_error"]
        .as_str()
        .expect("error")
        .contains("404"));
    let event = next_bus_event(&mut events, "leads.agent.failed").await;
    assert_eq!(event["id"], enricher_id);
    assert_eq!(plant.get("/logs/errors").await["total"], 1);
    plant
        .put_conflict(
            &format!("/agents/{enricher_id}/status"),
            json!({"status": "active"}),
        )
        .await;
    plant
        .put(&format!("/agents/{enricher_id}"), json!({"config": {"url": format!("http://{addr}/enrich"), "fields": ["website", "contact_name", "source"]}}))
        .await;
    let run = plant
        .action(&format!("/agents/{enricher_id}/restart"), None)
        .await;
    assert_eq!(
        (
            run["outcome"].as_str(),
            run["examined"].as_i64(),
            run["changed"].as_i64()
        ),
        (Some("ok"), Some(3), Some(2)),
        "{run}"
    );
    let enriched = lead(&plant, acme).await;
    assert_eq!(enriched["website"], "https://enriched.example");
    assert_eq!(
        enriched["contact_name"], "Alice",
        "only empty fields are filled"
    );
    assert_eq!(
        enriched["source"], "linkedin",
        "a value of the wrong type is ignored"
    );
    assert_eq!(
        plant.get(&format!("/agents/{enricher_id}")).await["status"],
        "active"
    );
    let logs = plant.get(&format!("/agents/{enricher_id}/logs")).await;
    assert_eq!(logs["total"], 2);
    assert_eq!(logs["items"][1]["outcome"], "failed");
    assert!(
        plant.get("/logs/agents").await["total"]
            .as_i64()
            .expect("n")
            >= 7
    );

    // A scheduled agent runs from the host's scheduler: a task on the
    // plugin's run_agents job.
    let stale = plant
        .post("/agents", json!({"name": "Stale", "type": "follow_up", "schedule": "1h", "config": {"days": 7, "tag": "stale"}}))
        .await;
    assert!(stale["next_run_at"].is_string());
    let task = json!({"id": "leads-agents", "name": "Leads agents", "type": "interval", "interval": {"hours": 1},
        "job": "leads.run_agents", "enabled": true});
    plant.create_task(task).await;
    plant.run_task("leads-agents").await;
    plant
        .wait_for(
            "SELECT COUNT(*) FROM leads WHERE tags LIKE '%\"stale\"%'",
            1,
        )
        .await;
    // The agent's run is stamped after its leads are tagged, in a later
    // statement: wait for it too rather than race it.
    plant
        .wait_for(
            &format!(
                "SELECT COUNT(*) FROM leads_agents WHERE id = {} AND last_run_at IS NOT NULL",
                stale["id"]
            ),
            1,
        )
        .await;
    let ran = plant.get(&format!("/agents/{}", stale["id"])).await;
    assert!(ran["last_run_at"].is_string());
    assert!(
        ran["next_run_at"].as_str() > ran["last_run_at"].as_str(),
        "next run an hour later: {ran}"
    );

    plant
        .put(
            &format!("/agents/{}/status", stale["id"]),
            json!({"status": "inactive"}),
        )
        .await;
    assert!(plant.get(&format!("/agents/{}", stale["id"])).await["next_run_at"].is_null());
    plant
        .invalid(
            Method::PUT,
            &format!("/agents/{}/status", stale["id"]),
            json!({"status": "error"}),
        )
        .await;
    assert_eq!(plant.get("/agents").await["total"], 6);
    plant.delete(&format!("/agents/{}", stale["id"])).await;
    plant
        .not_found(Method::GET, &format!("/agents/{}/logs", stale["id"]))
        .await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_csv_and_xlsx_and_import_csv() {
    use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};

    let plant = start(None).await;
    let acme = plant
        .create(
            json!({"company": "Acme, \"the\" SARL", "email": "a@acme.fr", "score": 70,
            "tags": ["vip", "paris"], "notes": "line one\nline two", "source": "linkedin"}),
        )
        .await;
    plant
        .create(json!({"company": "Beta", "phone": "+33 1 23 45 67 89", "source": "salon"}))
        .await;
    plant
        .create(json!({"company": "Gamma", "source": "linkedin", "score": 10}))
        .await;

    let response = plant
        .send(Method::GET, "/export?format=csv&source=linkedin", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(response.headers()["content-disposition"]
        .to_str()
        .expect("h")
        .contains("leads.csv"));
    let text = response.text().await.expect("text");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,company,contact_name,email,phone,website,source,niche_id,campaign_id,status,score,tags,notes,owner_id,converted_at,created_at,updated_at")
    );
    assert!(text.contains(&format!("{},\"Acme, \"\"the\"\" SARL\",,a@acme.fr,,,linkedin,,,new,70,vip;paris,\"line one\nline two\",", acme["id"])), "{text}");
    assert!(text.contains(",Gamma,"));
    assert!(!text.contains("Beta"), "filtered out");
    plant.invalid(Method::GET, "/export?format=pdf", None).await;

    let response = plant
        .send(Method::GET, "/export?format=xlsx&sort_by=company", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("bytes").to_vec();
    let mut workbook: Xlsx<_> =
        open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an xlsx the reader opens");
    let sheet = workbook.worksheet_range("Leads").expect("the Leads sheet");
    let rows: Vec<Vec<Data>> = sheet.rows().map(|row| row.to_vec()).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0][1], Data::String("company".into()));
    assert_eq!(rows[1][1], Data::String("Acme, \"the\" SARL".into()));
    assert_eq!(rows[1][10], Data::Float(70.0));
    assert_eq!(rows[1][12], Data::String("line one\nline two".into()));
    assert_eq!(rows[2][4], Data::String("+33 1 23 45 67 89".into()));
    assert_eq!(rows[3][1], Data::String("Gamma".into()));

    // Import: a header checked at upload, then the job, with per-line
    // errors and duplicates.
    let bad = plant
        .server
        .post(&format!("{API}/import"))
        .bearer_auth(&plant.admin)
        .header("content-type", "text/csv")
        .body("name;colour\nx;y\n")
        .send()
        .await
        .expect("send");
    let bad = expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
    assert!(bad.to_string().contains("unknown column colour"), "{bad}");
    let file = "company,email,phone,score,tags,status\n\
                Delta,d@delta.fr,,40,b2b; x,\n\
                Epsilon,,+33 6 00 00 00 01,,,contacted\n\
                Copy of Acme,A@ACME.fr,,,,\n\
                Delta again,D@delta.fr,,,,\n\
                Broken,not-an-email,,,,\n\
                Scored,,,high,,\n\
                ,,,,,\n";
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file.as_bytes().to_vec()).file_name("leads.csv"),
    );
    let response = plant
        .server
        .post(&format!("{API}/import"))
        .bearer_auth(&plant.admin)
        .multipart(form)
        .send()
        .await
        .expect("send");
    let import = expect_status(response, StatusCode::ACCEPTED).await;
    let id = import["id"].as_i64().expect("id");
    assert_eq!(import["rows_total"], 7);
    plant
        .wait_for(
            &format!("SELECT COUNT(*) FROM leads_imports WHERE id = {id} AND status = 'completed'"),
            1,
        )
        .await;
    let done = plant.get(&format!("/import/{id}")).await;
    assert_eq!(
        (
            done["rows_imported"].as_i64(),
            done["rows_duplicate"].as_i64(),
            done["rows_failed"].as_i64()
        ),
        (Some(2), Some(2), Some(3)),
        "{done}"
    );
    let problems: Vec<(i64, String, String)> = done["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["line"].as_i64().expect("line"),
                p["kind"].as_str().expect("kind").to_string(),
                p["message"].as_str().expect("message").to_string(),
            )
        })
        .collect();
    assert_eq!(problems.len(), 5, "{problems:?}");
    assert_eq!((problems[0].0, problems[0].1.as_str()), (4, "duplicate"));
    assert!(
        problems[0].2.contains(&format!("lead {}", acme["id"])),
        "{problems:?}"
    );
    assert_eq!((problems[1].0, problems[1].1.as_str()), (5, "duplicate"));
    assert!(problems[1].2.contains("line 2"), "{problems:?}");
    assert_eq!(problems[2].0, 6);
    assert_eq!(done["problems"][2]["field"], "email");
    assert_eq!(
        (problems[3].0, done["problems"][3]["field"].as_str()),
        (7, Some("score"))
    );
    assert_eq!(
        (problems[4].0, done["problems"][4]["field"].as_str()),
        (8, Some("company"))
    );
    let delta = plant.get("?search=delta").await;
    assert_eq!(delta["items"][0]["tags"], json!(["b2b", "x"]));
    assert_eq!(delta["items"][0]["source"], "import");
    assert_eq!(delta["items"][0]["score"], 40);
    assert_eq!(
        plant.get("/status/contacted").await["items"][0]["company"],
        "Epsilon"
    );
    assert!(plant.get("/logs?kind=import").await["items"][0]["message"]
        .as_str()
        .expect("m")
        .contains("2 leads created"));
    plant.not_found(Method::GET, "/import/999").await;
    plant.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_and_converted_are_posted_signed_to_outbound_urls() {
    let hook = Arc::new(Hook::default());
    let addr = hook_server(hook.clone()).await;
    let plant = start(Some(addr)).await;
    plant
        .put(
            "/settings/integrations",
            json!({"webhook_secret": SECRET,
            "outbound_urls": [format!("http://{addr}/hook")], "outbound_events": ["converted"]}),
        )
        .await;
    let lead = plant.create(json!({"company": "Outbound"})).await;
    let id = lead["id"].as_i64().expect("id");
    for status in ["contacted", "qualified", "converted"] {
        plant
            .put(&format!("/{id}"), json!({"status": status}))
            .await;
    }
    for _ in 0..100 {
        if !hook.bodies.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Only converted was asked for: created is not posted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bodies = hook.bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let (signature, body) = &bodies[0];
    assert_eq!(body["event"], "leads.converted");
    assert_eq!(body["data"]["id"], id);
    assert_eq!(body["data"]["status"], "converted");
    assert_eq!(
        signature.as_deref(),
        Some(sign(body.to_string().as_bytes()).as_str())
    );
    plant.0.stop().await;
}

/// One seeded lead of `list_pages_keep_the_order_on_every_plan`.
#[derive(Clone, Debug)]
struct Seeded {
    id: i64,
    status: &'static str,
    source: &'static str,
    score: i64,
    company: String,
    created_at: String,
    updated_at: String,
    words: Vec<&'static str>,
}

impl Seeded {
    fn new(n: usize) -> Self {
        const STATUSES: [&str; 7] = [
            "new",
            "new",
            "new",
            "contacted",
            "qualified",
            "converted",
            "lost",
        ];
        const SOURCES: [&str; 3] = ["linkedin", "salon", "web"];
        let mut words = Vec::new();
        if n % 3 == 0 {
            words.push("quartz");
        }
        if n % 50 == 7 {
            words.push("zircon");
        }
        // Few distinct values in every sort column: the id decides ties.
        Self {
            id: 0,
            status: STATUSES[n * 5 % STATUSES.len()],
            source: SOURCES[n / 2 % SOURCES.len()],
            score: (n % 5) as i64 * 25,
            company: format!("Company{}", ["A", "B", "C", "D", "E", "F", "G"][n * 3 % 7]),
            created_at: format!("2026-0{}-01T00:00:00.000000Z", n % 9 + 1),
            updated_at: format!("2026-10-{:02}T00:00:00.000000Z", n % 4 + 10),
            words,
        }
    }

    fn key(&self, sort: &str) -> String {
        match sort {
            "created_at" => self.created_at.clone(),
            "updated_at" => self.updated_at.clone(),
            "score" => format!("{:03}", self.score),
            "company" => self.company.clone(),
            _ => self.status.to_string(),
        }
    }
}

/// Every list plan (an index walked in order, with or without other
/// filters to skip, or the matches fetched and sorted; which one depends
/// on the counts and the page) gives the same pages: the sort column, then
/// the id in the same direction, and the same total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_keep_the_order_on_every_plan() {
    const LEADS: usize = 1_500;
    let plant = start(None).await;
    let mut seeded: Vec<Seeded> = (0..LEADS).map(Seeded::new).collect();
    for chunk in seeded
        .chunks(500)
        .map(<[Seeded]>::to_vec)
        .collect::<Vec<_>>()
    {
        let rows: Vec<String> = chunk
            .iter()
            .map(|lead| {
                format!(
                    "('{}', 'Someone', '{}', '{}', {}, 'notes {} end', '{}', '{}')",
                    lead.company,
                    lead.source,
                    lead.status,
                    lead.score,
                    lead.words.join(" "),
                    lead.created_at,
                    lead.updated_at
                )
            })
            .collect();
        plant
            .sql(&format!(
                "INSERT INTO leads (company, contact_name, source, status, score, notes, created_at, updated_at) VALUES {}",
                rows.join(", ")
            ))
            .await;
    }
    // One multi-row INSERT after another: ids follow the order of the rows.
    let first = plant.scalar("SELECT MIN(id) FROM leads").await;
    assert_eq!(
        plant.scalar("SELECT MAX(id) FROM leads").await,
        first + LEADS as i64 - 1
    );
    for (n, lead) in seeded.iter_mut().enumerate() {
        lead.id = first + n as i64;
    }

    type Keep = dyn Fn(&Seeded) -> bool;
    let filters: [(&str, &Keep); 10] = [
        ("", &|_| true),
        ("status=new", &|l| l.status == "new"),
        ("status=contacted&source=web", &|l| {
            l.status == "contacted" && l.source == "web"
        }),
        ("source=salon", &|l| l.source == "salon"),
        ("status=new&score_min=50", &|l| {
            l.status == "new" && l.score >= 50
        }),
        // A range on the sort column of the (source, score) walk.
        ("source=salon&score_min=50", &|l| {
            l.source == "salon" && l.score >= 50
        }),
        ("search=quartz", &|l| l.words.contains(&"quartz")),
        ("search=quartz&status=new", &|l| {
            l.words.contains(&"quartz") && l.status == "new"
        }),
        ("search=zircon&status=new", &|l| {
            l.words.contains(&"zircon") && l.status == "new"
        }),
        ("search=quartz&status=qualified&source=salon", &|l| {
            l.words.contains(&"quartz") && l.status == "qualified" && l.source == "salon"
        }),
    ];
    let mut checked = 0;
    for (query, keep) in filters {
        let matching: Vec<&Seeded> = seeded.iter().filter(|l| keep(l)).collect();
        assert!(!matching.is_empty(), "{query} matches nothing");
        for sort in ["created_at", "updated_at", "score", "company", "status"] {
            for order in ["asc", "desc"] {
                let mut expected = matching.clone();
                expected.sort_by_key(|lead| (lead.key(sort), lead.id));
                if order == "desc" {
                    expected.reverse();
                }
                let total = expected.len();
                // First page, a middle one, the last one (maybe short), past
                // the end.
                for skip in [0, total / 2, total.saturating_sub(7), total + 5] {
                    let url =
                        format!("?{query}&sort_by={sort}&sort_order={order}&skip={skip}&limit=10");
                    let list = plant.get(&url).await;
                    let ids: Vec<i64> = common::items(&list)
                        .iter()
                        .map(|item| item["id"].as_i64().expect("id"))
                        .collect();
                    let wanted: Vec<i64> =
                        expected.iter().skip(skip).take(10).map(|l| l.id).collect();
                    assert_eq!(ids, wanted, "{url}");
                    assert_eq!(list["total"], total, "{url}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 10 * 5 * 2 * 4);
    // The same through /status/{status}.
    let list = plant
        .get("/status/new?sort_by=updated_at&skip=3&limit=4")
        .await;
    let mut expected: Vec<&Seeded> = seeded.iter().filter(|l| l.status == "new").collect();
    expected.sort_by_key(|lead| std::cmp::Reverse((lead.key("updated_at"), lead.id)));
    let wanted: Vec<i64> = expected.iter().skip(3).take(4).map(|l| l.id).collect();
    let ids: Vec<i64> = common::items(&list)
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, wanted);
    assert_eq!(list["total"], expected.len());
    plant.0.stop().await;
}
