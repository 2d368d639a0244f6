//! Import runs: a job whose run died resumed after its last batch, ten
//! thousand rows in batches with a progress event each, and a job that
//! cannot run failed with its reason logged and published.

use crate::{create_supplier, finished, get, log_lines, start_import, start_server, uploaded};
use serde_json::{json, Value};
use std::time::Duration;

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
    let skus: Vec<&str> = crate::common::items(&products)
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
