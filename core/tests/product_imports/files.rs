//! What an uploaded file holds: a Latin-1 `;` file read through its
//! mapping (with the events and the dashboard), bad rows logged by line
//! with duplicates warned and good rows kept, and uploads refused before a
//! job exists when they cannot be read.

use crate::common::expect_error;
use crate::{
    create_supplier, field_names, finished, get, log_lines, path, start_import, start_server,
    upload, uploaded,
};
use reqwest::{multipart::Form, StatusCode};
use serde_json::json;
use std::time::Duration;

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
        crate::common::items(&imported)
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
    let mut skus: Vec<&str> = crate::common::items(&products)
        .iter()
        .map(|p| p["sku"].as_str().expect("sku"))
        .collect();
    skus.sort_unstable();
    assert_eq!(skus, vec!["B-1", "B-5", "B-7", "DUP-1"]);
    let kept = crate::common::items(&products)
        .iter()
        .find(|p| p["sku"] == "B-1")
        .expect("B-1");
    assert_eq!(kept["name"], "Good one", "the first B-1 wins");

    // Filters: by status, supplier and creation date; bad values are 422.
    let other = create_supplier(&server, &admin, json!({"name": "Other"})).await;
    uploaded(&server, &admin, other, b"sku,name,price\nO-1,Other,1\n").await;
    let all = get(&server, &admin, "/imports/jobs").await;
    assert_eq!(all["total"], 3, "{all}");
    let ids: Vec<i64> = crate::common::items(&all)
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
    let (_, user) = server.roleless_token(&admin, "nobody@example.com").await;
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
