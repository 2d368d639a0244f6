//! The products plugin's suppliers, CSV imports and dashboard, through the
//! real host and the real `libxcore_plugin_products.so`: supplier CRUD and
//! its errors, a Latin-1 `;` file read through a column mapping, a file
//! with bad rows (errors with their line numbers, duplicate SKUs as
//! warnings, good rows kept), starting twice, job filters, logs, the
//! `products.import.*` events on the bus, an interrupted job resumed from
//! its last batch, the dashboard, and 401/403.
//!
//! Runs on SQLite, or PostgreSQL with `XCORE_TEST_DATABASE_URL`.

mod common;

use std::time::Duration;

use common::{deploy, expect_error, expect_status, plugin_library, TestServer};
use reqwest::{
    multipart::{Form, Part},
    StatusCode,
};
use serde_json::{json, Value};

const BASE: &str = "/api/v1/products";

async fn start_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    deploy(
        &plugin_library("xcore-plugin-products", "xcore_plugin_products", ""),
        dir.path(),
        "libxcore_plugin_products.so",
    );
    let plugins = dir.path().display().to_string();
    let server = TestServer::start_with(move |config| config.plugins.dir = plugins).await;
    (server, dir)
}

fn path(rest: &str) -> String {
    format!("{BASE}{rest}")
}

async fn get(server: &TestServer, token: &str, rest: &str) -> Value {
    server
        .as_(token)
        .get(&path(rest))
        .expect(StatusCode::OK)
        .await
}

async fn create_supplier(server: &TestServer, token: &str, body: Value) -> i64 {
    let created = server
        .as_(token)
        .post(&path("/suppliers"))
        .json(body)
        .expect(StatusCode::CREATED)
        .await;
    created["id"].as_i64().expect("supplier id")
}

async fn upload(
    server: &TestServer,
    token: &str,
    supplier: &str,
    name: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let form = Form::new().text("supplier_id", supplier.to_string()).part(
        "file",
        Part::bytes(bytes.to_vec())
            .file_name(name.to_string())
            .mime_str("text/csv")
            .expect("mime"),
    );
    server
        .post(&path("/imports"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("send")
}

/// Uploads and returns the pending job.
async fn uploaded(server: &TestServer, token: &str, supplier: i64, bytes: &[u8]) -> Value {
    let job = expect_status(
        upload(server, token, &supplier.to_string(), "file.csv", bytes).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(job["status"], "pending", "{job}");
    job
}

/// Polls the job until it is `completed` or `failed`, for up to 20 s.
async fn finished(server: &TestServer, token: &str, id: i64) -> Value {
    for _ in 0..200 {
        let job = get(server, token, &format!("/imports/{id}")).await;
        if job["status"] == "completed" || job["status"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "import {id} did not finish: {}",
        get(server, token, &format!("/imports/{id}")).await
    );
}

async fn start_import(server: &TestServer, token: &str, id: i64) -> Value {
    let job = server
        .as_(token)
        .post(&path(&format!("/imports/{id}/start")))
        .expect(StatusCode::ACCEPTED)
        .await;
    // The run starts off the request and may already have ended, either
    // way, by the time the answer is written; callers check the outcome.
    assert!(
        ["running", "completed", "failed"].contains(&job["status"].as_str().unwrap_or_default()),
        "{job}"
    );
    job
}

/// `(level, line, message)` of a job's log lines with `query`.
async fn log_lines(
    server: &TestServer,
    token: &str,
    id: i64,
    query: &str,
) -> Vec<(String, Option<i64>, String)> {
    let body = get(
        server,
        token,
        &format!("/imports/{id}/logs?limit=100{query}"),
    )
    .await;
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|entry| {
            assert!(entry["timestamp"].is_string(), "{entry}");
            (
                entry["level"].as_str().expect("level").to_string(),
                entry["line"].as_i64(),
                entry["message"].as_str().expect("message").to_string(),
            )
        })
        .collect()
}

fn field_names(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|detail| detail["field"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppliers_are_validated_created_listed_changed_and_deleted() {
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("reader@example.com").await;

    server
        .anonymous()
        .get(&path("/suppliers"))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server
        .as_(&user)
        .get(&path("/suppliers"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .as_(&user)
        .post(&path("/suppliers"))
        .json(json!({"name": "Nope"}))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;

    // Every problem is reported, each under its field.
    let refused = server
        .as_(&admin)
        .post(&path("/suppliers"))
        .json(json!({
            "email": "not-an-email",
            "status": "sleeping",
            "colour": "red",
            "import_config": {
                "delimiter": "::",
                "encoding": "ebcdic",
                "mapping": {"ref": "sku", "nom": "label", "fournisseur": "supplier_id"}
            }
        }))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let fields = field_names(&refused);
    for expected in [
        "name",
        "email",
        "status",
        "colour",
        "import_config.delimiter",
        "import_config.encoding",
        "import_config.mapping.nom",
        "import_config.mapping.fournisseur",
        "import_config.mapping",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} in {fields:?}"
        );
    }
    server
        .as_(&admin)
        .post(&path("/suppliers"))
        .json(json!(["not", "an", "object"]))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;

    let created = server.as_(&admin).post(&path("/suppliers")).json(json!({
                "name": "Fournisseur XYZ",
                "email": "contact@fournisseur.com",
                "import_type": "csv",
                "import_config": {"delimiter": ";", "encoding": "utf-8", "mapping": {"ref": "sku", "nom": "name", "prix": "price"}}
            })).expect(StatusCode::CREATED)
    .await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["status"], "active");
    assert_eq!(created["import_config"]["delimiter"], ";");
    assert_eq!(created["import_config"]["mapping"]["prix"], "price");
    assert!(created["created_at"].is_string());
    // Names are unique ignoring case.
    server
        .as_(&admin)
        .post(&path("/suppliers"))
        .json(json!({"name": "fournisseur xyz"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    let other = create_supplier(
        &server,
        &admin,
        json!({"name": "Autre", "status": "inactive"}),
    )
    .await;
    let third = create_supplier(&server, &admin, json!({"name": "Troisième"})).await;

    let active = get(&server, &admin, "/suppliers?status=active").await;
    assert_eq!(active["total"], 2, "{active}");
    let names: Vec<&str> = active["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["Fournisseur XYZ", "Troisième"]);
    let paged = get(&server, &admin, "/suppliers?page=2&page_size=2").await;
    assert_eq!(paged["total_pages"], 2, "{paged}");
    assert_eq!(paged["items"].as_array().expect("items").len(), 1);
    server
        .as_(&admin)
        .get(&path("/suppliers?status=gone"))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;

    // A partial update changes what is sent, nothing else.
    let changed = server
        .as_(&admin)
        .put(&path(&format!("/suppliers/{id}")))
        .json(json!({"phone": "+33 1 23 45 67 89", "status": "inactive"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(changed["phone"], "+33 1 23 45 67 89");
    assert_eq!(changed["status"], "inactive");
    assert_eq!(changed["email"], "contact@fournisseur.com");
    assert_eq!(changed["import_config"]["mapping"]["ref"], "sku");
    server
        .as_(&admin)
        .put(&path(&format!("/suppliers/{id}")))
        .json(json!({"name": "AUTRE"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server
        .as_(&admin)
        .put(&path(&format!("/suppliers/{id}")))
        .json(json!({"import_config": {"mapping": {"ref": "sku"}}}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let shown = get(&server, &admin, &format!("/suppliers/{id}")).await;
    assert_eq!(
        shown["status"], "inactive",
        "a refused update changed nothing"
    );
    assert_eq!(shown["name"], "Fournisseur XYZ");

    server
        .as_(&admin)
        .get(&path("/suppliers/999999"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .get(&path("/suppliers/999999/products"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let none = get(&server, &admin, &format!("/suppliers/{third}/products")).await;
    assert_eq!(none["total"], 0);

    // Delete needs products:delete; an unused supplier goes.
    server
        .as_(&user)
        .delete(&path(&format!("/suppliers/{other}")))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .as_(&admin)
        .delete(&path(&format!("/suppliers/{other}")))
        .expect(StatusCode::NO_CONTENT)
        .await;
    server
        .as_(&admin)
        .get(&path(&format!("/suppliers/{other}")))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_semicolon_file_is_imported_through_its_mapping_with_events_and_dashboard() {
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    let mut bus = server.state.events.subscribe();

    let empty = get(&server, &admin, "/analytics/dashboard").await;
    assert_eq!(empty["total_products"], 0, "{empty}");
    assert_eq!(empty["imports_today"], 0);
    assert!(empty["imports_success_rate"].is_null(), "{empty}");

    let supplier = create_supplier(
        &server,
        &admin,
        json!({
            "name": "Meubles Dupré",
            "import_config": {
                "delimiter": ";",
                "encoding": "latin-1",
                "mapping": {"Réf": "sku", "Désignation": "name", "Prix": "price", "Qté": "stock"}
            }
        }),
    )
    .await;
    // Latin-1 bytes: é is 0xE9, and windows-1252's € is 0x80.
    let file: &[u8] = b"R\xe9f;D\xe9signation;Prix;Qt\xe9;Couleur\r\n\
MD-001;Chaise caf\xe9;12,50;3;rouge\r\n\
MD-002;\"Table; ch\xeane\";249,90;1;brun\r\n\
MD-003;Lampe 10 \x80;9.99;0;noir\r\n";
    let job = uploaded(&server, &admin, supplier, file).await;
    let id = job["id"].as_i64().expect("id");
    assert_eq!(job["rows_total"], 3, "{job}");
    assert_eq!(job["supplier_name"], "Meubles Dupré");
    assert_eq!(job["rows_imported"], 0);
    let notes = log_lines(&server, &admin, id, "").await;
    assert!(
        notes
            .iter()
            .any(|(level, _, message)| level == "info" && message.contains("Couleur")),
        "unmapped columns are noted: {notes:?}"
    );

    start_import(&server, &admin, id).await;
    let done = finished(&server, &admin, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_imported"], 3, "{done}");
    assert_eq!(done["rows_skipped"], 0);
    assert_eq!(done["rows_failed"], 0);
    assert_eq!(done["rows_processed"], 3);
    assert_eq!(done["progress"], 100.0);
    assert!(done["finished_at"].is_string());

    let imported = get(&server, &admin, &format!("/suppliers/{supplier}/products")).await;
    assert_eq!(imported["total"], 3, "{imported}");
    let by_sku = |sku: &str| {
        imported["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|p| p["sku"] == sku)
            .cloned()
            .unwrap_or_else(|| panic!("{sku} in {imported}"))
    };
    assert_eq!(by_sku("MD-001")["name"], "Chaise café");
    assert_eq!(by_sku("MD-001")["price"], 12.5);
    assert_eq!(by_sku("MD-001")["stock"], 3);
    assert_eq!(by_sku("MD-002")["name"], "Table; chêne");
    assert_eq!(by_sku("MD-002")["price"], 249.9);
    assert_eq!(by_sku("MD-003")["name"], "Lampe 10 €");
    assert_eq!(by_sku("MD-003")["supplier_id"], supplier);

    // A completed job's file is gone; its log and counters stay.
    let files: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products_import_files")
        .fetch_one(server.state.db.pool())
        .await
        .expect("count files");
    assert_eq!(files, 0);

    // Only a pending job starts.
    server
        .as_(&admin)
        .post(&path(&format!("/imports/{id}/start")))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server
        .as_(&admin)
        .post(&path("/imports/999999/start"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;

    // The events, in order, for this job.
    let mut topics = Vec::new();
    while !topics.contains(&"products.import.completed".to_string()) {
        let event = tokio::time::timeout(Duration::from_secs(10), bus.recv())
            .await
            .expect("an import event in time")
            .expect("bus open");
        if event.topic.starts_with("products.import.") {
            assert_eq!(event.data["id"], id, "{:?}", event.data);
            if event.topic == "products.import.completed" {
                assert_eq!(event.data["rows_imported"], 3);
            }
            if event.topic == "products.import.progress" {
                assert_eq!(event.data["rows_processed"], 3);
            }
            topics.push(event.topic.clone());
        }
    }
    assert_eq!(
        topics,
        vec![
            "products.import.started",
            "products.import.progress",
            "products.import.completed"
        ]
    );

    let logs = log_lines(&server, &admin, id, "").await;
    assert!(
        logs.iter()
            .any(|(_, _, m)| m == "Import started: 3 products to process"),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|(_, _, m)| m.starts_with("Import finished: 3 imported")),
        "{logs:?}"
    );

    // A supplier with products cannot be deleted.
    server
        .as_(&admin)
        .delete(&path(&format!("/suppliers/{supplier}")))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;

    let dashboard = get(&server, &admin, "/analytics/dashboard").await;
    assert_eq!(dashboard["total_products"], 3, "{dashboard}");
    assert_eq!(dashboard["active_suppliers"], 1);
    assert_eq!(dashboard["imports_today"], 1);
    assert_eq!(dashboard["imports_success_rate"], 100.0);
    let activity = &dashboard["recent_activity"][0];
    assert_eq!(activity["type"], "import.completed", "{dashboard}");
    assert_eq!(activity["import_id"], id);
    assert!(
        activity["details"]
            .as_str()
            .is_some_and(|d| d.contains("Meubles Dupré") && d.contains("3 products")),
        "{activity}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_logged_by_line_duplicates_warned_and_good_rows_kept() {
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    // Columns named like the fields: no mapping needed.
    let supplier = create_supplier(&server, &admin, json!({"name": "Plain CSV"})).await;
    let first = uploaded(
        &server,
        &admin,
        supplier,
        b"sku,name,price,stock,category_id\nDUP-1,Existing,1.00,1,\n",
    )
    .await;
    let first = first["id"].as_i64().expect("id");
    start_import(&server, &admin, first).await;
    assert_eq!(finished(&server, &admin, first).await["rows_imported"], 1);

    let file = "sku,name,price,stock,category_id\n\
DUP-1,Existing again,1.00,1,\n\
B-1,Good one,2.50,4,\n\
B-2,Missing price,,1,\n\
B-3,Too many,1.00,1,,extra\n\
B-4,Bad price,abc,1,\n\
B-1,Same SKU again,3.00,1,\n\
B-5,\"Quoted\nname\",4.00,2,\n\
B-6,Unknown category,1.00,1,99999\n\
B-7,Last,5.00,0,\n";
    let job = uploaded(&server, &admin, supplier, file.as_bytes()).await;
    let id = job["id"].as_i64().expect("id");
    assert_eq!(job["rows_total"], 9);
    start_import(&server, &admin, id).await;
    let done = finished(&server, &admin, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_imported"], 3, "{done}");
    assert_eq!(done["rows_skipped"], 2, "{done}");
    assert_eq!(done["rows_failed"], 4, "{done}");

    let errors = log_lines(&server, &admin, id, "&level=error").await;
    let lines: Vec<Option<i64>> = errors.iter().map(|(_, line, _)| *line).collect();
    assert_eq!(
        lines,
        vec![Some(4), Some(5), Some(6), Some(10)],
        "{errors:?}"
    );
    assert!(errors[0].2.contains("price"), "{errors:?}");
    assert!(errors[1].2.contains("Malformed row"), "{errors:?}");
    assert!(errors[3].2.contains("category"), "{errors:?}");
    let warnings = log_lines(&server, &admin, id, "&level=warning").await;
    assert_eq!(
        warnings,
        vec![
            (
                "warning".to_string(),
                Some(2),
                "Line 2: Duplicate SKU detected: DUP-1".to_string()
            ),
            (
                "warning".to_string(),
                Some(7),
                "Line 7: Duplicate SKU detected: B-1".to_string()
            ),
        ]
    );
    server
        .as_(&admin)
        .get(&path(&format!("/imports/{id}/logs?level=debug")))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;

    let products = get(&server, &admin, &format!("/suppliers/{supplier}/products")).await;
    let mut skus: Vec<&str> = products["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["sku"].as_str().expect("sku"))
        .collect();
    skus.sort_unstable();
    assert_eq!(skus, vec!["B-1", "B-5", "B-7", "DUP-1"]);
    let kept = products["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["sku"] == "B-1")
        .expect("B-1");
    assert_eq!(kept["name"], "Good one", "the first B-1 wins");

    // Filters: by status, supplier and creation date; bad values are 422.
    let other = create_supplier(&server, &admin, json!({"name": "Other"})).await;
    uploaded(&server, &admin, other, b"sku,name,price\nO-1,Other,1\n").await;
    let all = get(&server, &admin, "/imports/jobs").await;
    assert_eq!(all["total"], 3, "{all}");
    let ids: Vec<i64> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|j| j["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids[1..], [id, first], "newest first: {ids:?}");
    let pending = get(&server, &admin, "/imports/jobs?status=pending").await;
    assert_eq!(pending["total"], 1);
    assert_eq!(pending["items"][0]["supplier_id"], other);
    let mine = get(
        &server,
        &admin,
        &format!("/imports/jobs?supplier_id={supplier}&status=completed"),
    )
    .await;
    assert_eq!(mine["total"], 2);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        get(
            &server,
            &admin,
            &format!("/imports/jobs?date_from={today}&date_to={today}")
        )
        .await["total"],
        3
    );
    assert_eq!(
        get(
            &server,
            &admin,
            &format!("/imports/jobs?date_to={yesterday}")
        )
        .await["total"],
        0
    );
    assert_eq!(
        get(
            &server,
            &admin,
            &format!("/imports/jobs?date_from={tomorrow}T00:00:00Z")
        )
        .await["total"],
        0
    );
    for (query, field) in [
        ("status=done", "status"),
        ("supplier_id=abc", "supplier_id"),
        ("date_from=05/10/2025", "date_from"),
        ("date_to=2025-13-01", "date_to"),
    ] {
        let refused = server
            .as_(&admin)
            .get(&path(&format!("/imports/jobs?{query}")))
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
            .await;
        assert_eq!(field_names(&refused), vec![field], "{query}");
    }
    let both = server
        .as_(&admin)
        .get(&path(&format!(
            "/imports/jobs?date_from={tomorrow}&date_to={yesterday}&status=x"
        )))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(field_names(&both), vec!["status", "date_to"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_cannot_be_read_are_refused_before_a_job_exists() {
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("nobody@example.com").await;
    let supplier = create_supplier(
        &server,
        &admin,
        json!({"name": "Strict", "import_config": {"delimiter": ";", "mapping": {"ref": "sku", "nom": "name", "prix": "price"}}}),
    )
    .await;
    let inactive = create_supplier(
        &server,
        &admin,
        json!({"name": "Asleep", "status": "inactive"}),
    )
    .await;
    let good: &[u8] = b"ref;nom;prix\nA;B;1\n";

    expect_error(
        upload(&server, &user, &supplier.to_string(), "a.csv", good).await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    server
        .anonymous()
        .post(&path("/imports"))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    // Not multipart, or broken multipart: 400.
    server
        .as_(&admin)
        .post(&path("/imports"))
        .json(json!({"supplier_id": supplier}))
        .expect_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR")
        .await;
    expect_error(
        server
            .post(&path("/imports"))
            .bearer_auth(&admin)
            .header("content-type", "multipart/form-data; boundary=zzz")
            .body("--zzz\r\nContent-Disposition: form-data; name=\"supplier_id\"\r\n\r\n1\r\n")
            .send()
            .await
            .expect("send"),
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    )
    .await;
    // A missing file part.
    let form = Form::new().text("supplier_id", supplier.to_string());
    let missing = expect_error(
        server
            .post(&path("/imports/create"))
            .bearer_auth(&admin)
            .multipart(form)
            .send()
            .await
            .expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(field_names(&missing), vec!["file"]);

    for (supplier_id, bytes, field, needle) in [
        ("abc".to_string(), good, "supplier_id", "positive integer"),
        ("999999".to_string(), good, "supplier_id", "no supplier"),
        (inactive.to_string(), good, "supplier_id", "inactive"),
        (
            supplier.to_string(),
            b"ref;nom;prix\nA;Caf\xe9;1\n".as_slice(),
            "file",
            "latin-1",
        ),
        (
            supplier.to_string(),
            b"ref;name;prix\nA;B;1\n".as_slice(),
            "file",
            "nom",
        ),
        (
            supplier.to_string(),
            b"ref;nom;prix\n".as_slice(),
            "file",
            "no rows",
        ),
        (supplier.to_string(), b"".as_slice(), "file", "empty"),
    ] {
        let refused = expect_error(
            upload(&server, &admin, &supplier_id, "x.csv", bytes).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(field_names(&refused), vec![field], "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle)),
            "{needle}: {refused}"
        );
    }
    let jobs = get(&server, &admin, "/imports/jobs").await;
    assert_eq!(jobs["total"], 0, "nothing refused left a job: {jobs}");
    server
        .as_(&user)
        .get(&path("/imports/jobs"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .as_(&user)
        .get(&path("/analytics/dashboard"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .anonymous()
        .get(&path("/analytics/dashboard"))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server
        .as_(&admin)
        .get(&path("/imports/424242"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_run_died_is_resumed_after_its_last_batch() {
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    let supplier = create_supplier(&server, &admin, json!({"name": "Resumable"})).await;
    let job = uploaded(
        &server,
        &admin,
        supplier,
        b"sku,name,price\nR-1,First,1\nR-2,Second,2\nR-3,Third,3\n",
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    // What a host that died mid-import leaves behind: running, claimed by
    // a run that no longer beats, one row committed.
    sqlx::query(
        "UPDATE products_imports SET status = 'running', claim = 'dead-run',
             heartbeat_at = '2000-01-01T00:00:00.000000Z', started_at = '2000-01-01T00:00:00.000000Z',
             rows_processed = 1, rows_imported = 1 WHERE id = $1",
    )
    .bind(id)
    .execute(server.state.db.pool())
    .await
    .expect("simulate an interrupted run");
    // The dashboard notices the stale job and asks for a run, which
    // resumes it. (Polled through a list that does not show the running
    // job, so only the dashboard can have asked.)
    get(&server, &admin, "/analytics/dashboard").await;
    let mut waited = 0;
    while get(&server, &admin, "/imports/jobs?status=completed").await["total"] != 1 {
        assert!(waited < 200, "the interrupted import was not resumed");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = get(&server, &admin, &format!("/imports/{id}")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_processed"], 3);
    assert_eq!(done["rows_imported"], 3, "1 before the crash, 2 after");
    let products = get(&server, &admin, &format!("/suppliers/{supplier}/products")).await;
    let skus: Vec<&str> = products["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["sku"].as_str().expect("sku"))
        .collect();
    assert_eq!(skus, vec!["R-2", "R-3"], "row 1 was not imported twice");
    let logs = log_lines(&server, &admin, id, "&level=info").await;
    assert!(
        logs.iter().any(|(_, _, m)| m.contains("resumed at row 2")),
        "{logs:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rows_go_in_batches_with_a_progress_event_per_batch() {
    const PADDING: &str = "with a name long enough to make the whole file weigh well over one MiB";
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    let mut bus = server.state.events.subscribe();
    let supplier = create_supplier(&server, &admin, json!({"name": "Bulk"})).await;
    let mut file = String::from("sku,name,price,stock\n");
    for n in 0..10_000 {
        file.push_str(&format!(
            "BULK-{n:05},Product {n} {PADDING},{}.{:02},{n}\n",
            n % 500,
            n % 100
        ));
    }
    // Over the server's 1 MiB default: the upload route's own limit applies.
    assert!(file.len() > 1024 * 1024, "{}", file.len());
    let job = uploaded(&server, &admin, supplier, file.as_bytes()).await;
    let id = job["id"].as_i64().expect("id");
    assert_eq!(job["rows_total"], 10_000);
    let clock = std::time::Instant::now();
    start_import(&server, &admin, id).await;
    let mut processed = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), bus.recv())
            .await
            .expect("import events in time")
            .expect("bus open");
        match event.topic.as_str() {
            "products.import.progress" => processed.push(event.data["rows_processed"].clone()),
            "products.import.completed" => break,
            "products.import.failed" => panic!("failed: {:?}", event.data),
            _ => {}
        }
    }
    // Shown with --nocapture; a number for the report, not an assertion.
    eprintln!("10,000 rows imported in {:?}", clock.elapsed());
    let expected: Vec<Value> = (1..=20).map(|batch| json!(batch * 500)).collect();
    assert_eq!(processed, expected);
    let done = get(&server, &admin, &format!("/imports/{id}")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_imported"], 10_000);
    let dashboard = get(&server, &admin, "/analytics/dashboard").await;
    assert_eq!(dashboard["total_products"], 10_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_run_fails_with_its_reason_logged_and_published() {
    let (server, _dir) = start_server().await;
    let admin = server.admin_token().await;
    let mut bus = server.state.events.subscribe();
    let supplier = create_supplier(&server, &admin, json!({"name": "Vanishing"})).await;
    let job = uploaded(&server, &admin, supplier, b"sku,name,price\nV-1,Gone,1\n").await;
    let id = job["id"].as_i64().expect("id");
    // The stored file disappears before the run (an operator's cleanup).
    sqlx::query("DELETE FROM products_import_files WHERE import_id = $1")
        .bind(id)
        .execute(server.state.db.pool())
        .await
        .expect("delete the file");
    start_import(&server, &admin, id).await;
    let failed = finished(&server, &admin, id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"], "the uploaded file is missing");
    assert_eq!(failed["rows_imported"], 0);
    let errors = log_lines(&server, &admin, id, "&level=error").await;
    assert_eq!(
        errors,
        vec![(
            "error".to_string(),
            None,
            "Import failed: the uploaded file is missing".to_string()
        )]
    );
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), bus.recv())
            .await
            .expect("the failure is published")
            .expect("bus open");
        assert_ne!(event.topic, "products.import.completed");
        if event.topic == "products.import.failed" {
            assert_eq!(event.data["id"], id);
            assert_eq!(event.data["error"], "the uploaded file is missing");
            break;
        }
    }
    let dashboard = get(&server, &admin, "/analytics/dashboard").await;
    assert_eq!(dashboard["imports_success_rate"], 0.0, "{dashboard}");
    assert_eq!(dashboard["recent_activity"][0]["type"], "import.failed");
    server.stop().await;
}
