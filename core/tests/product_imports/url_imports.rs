//! Imports from a URL (seed 000's `POST /imports/create` with `file_url`
//! and `scheduled_at`), against a real HTTP server started by each test
//! and the plugin's real allow list (`[plugins.products] http_allow`): the
//! file is fetched when the job runs (not before), its rows are searchable
//! at once, a URL off the list or a file that cannot be imported fails the
//! job with its reason and writes no product, and a scheduled import
//! starts by itself, not before its time, even when it is further away
//! than one run of the job waits.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use axum::{
    extract::State,
    http::{header, StatusCode as AxumStatus, Uri},
    response::{IntoResponse, Response},
    Router,
};
use reqwest::{
    multipart::{Form, Part},
    StatusCode,
};
use serde_json::{json, Value};

use crate::common::TestServer;
use crate::{create_supplier, field_names, finished, get, log_lines, path, start_import};

/// The paths the feed server was asked for, with when.
type Requests = Arc<Mutex<Vec<(String, SystemTime)>>>;

struct Feed {
    addr: std::net::SocketAddr,
    requests: Requests,
}

impl Feed {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn asked(&self) -> Vec<(String, SystemTime)> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve(State(requests): State<Requests>, uri: Uri) -> Response {
    requests
        .lock()
        .expect("lock")
        .push((uri.path().to_string(), SystemTime::now()));
    let csv = |body: &'static str| ([(header::CONTENT_TYPE, "text/csv")], body).into_response();
    match uri.path() {
        "/feeds/products.csv" | "/private/products.csv" => csv(
            "sku,name,price,description\nURL-001,Lampe,10,Lampe de bureau\nURL-002,Chaise,20.50,\n",
        ),
        "/feeds/scheduled.csv" => csv("sku,name,price\nSCH-001,Tabouret,15\n"),
        "/feeds/wrong-header.csv" => csv("ref;label\nA;B\n"),
        "/feeds/header-only.csv" => csv("sku,name,price\n"),
        "/feeds/page.html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body>sku,name,price</body></html>",
        )
            .into_response(),
        "/feeds/data.json" => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"sku": "J-1", "name": "x", "price": 1}"#,
        )
            .into_response(),
        _ => AxumStatus::NOT_FOUND.into_response(),
    }
}

async fn feed_server() -> Feed {
    let requests: Requests = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().fallback(serve).with_state(requests.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Feed { addr, requests }
}

/// An address nothing listens on.
async fn closed_address() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr")
}

/// The server with the products plugin allowed `/feeds/` on the feed and
/// on `closed`, and nothing else.
async fn start(feed: &Feed, closed: std::net::SocketAddr) -> (TestServer, tempfile::TempDir) {
    let dir = crate::products_dir();
    let plugins = dir.path().display().to_string();
    let allow = vec![
        format!("http://{}/feeds/", feed.addr),
        format!("http://{closed}/feeds/"),
    ];
    let server = TestServer::start_with(move |config| {
        config.plugins.dir = plugins;
        config.plugins.http_timeout_ms = 5000;
        config.plugins.settings.insert(
            "products".into(),
            xcore::config::PluginSettings {
                http_allow: allow,
                ..Default::default()
            },
        );
    })
    .await;
    (server, dir)
}

async fn create(server: &TestServer, token: &str, body: Value) -> Value {
    server
        .create_as(token, &path("/imports/create"), body)
        .await
}

async fn product_count(server: &TestServer, token: &str) -> i64 {
    get(server, token, "/?page_size=1").await["total"]
        .as_i64()
        .expect("total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_import_is_fetched_when_it_runs_and_its_rows_are_searchable() {
    let feed = feed_server().await;
    let (server, _dir) = start(&feed, closed_address().await).await;
    let admin = server.admin_token().await;
    let supplier = create_supplier(&server, &admin, json!({"name": "Feeds"})).await;

    let url = feed.url("/feeds/products.csv");
    let job = create(
        &server,
        &admin,
        json!({"supplier_id": supplier, "import_type": "full", "file_url": url}),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["source_url"], url);
    assert_eq!(job["scheduled_at"], Value::Null);
    assert_eq!(job["filename"], "products.csv");
    assert_eq!(job["rows_total"], 0, "not fetched yet: {job}");
    assert!(
        feed.asked().is_empty(),
        "nothing fetched before the job runs"
    );

    start_import(&server, &admin, id).await;
    let done = finished(&server, &admin, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (done["rows_total"].as_i64(), done["rows_imported"].as_i64()),
        (Some(2), Some(2)),
        "{done}"
    );
    assert!(
        done["file_bytes"].as_i64().unwrap_or_default() > 0,
        "{done}"
    );
    assert_eq!(feed.asked().len(), 1, "fetched once: {:?}", feed.asked());
    let logs = log_lines(&server, &admin, id, "").await;
    assert!(
        logs.iter()
            .any(|(_, _, message)| message.contains("Fetched") && message.contains(&url)),
        "{logs:?}"
    );
    // Imported rows are searchable at once, by SKU, prefix and text.
    for (search, expected) in [
        ("URL-001", vec!["URL-001"]),
        ("URL-0", vec!["URL-001", "URL-002"]),
        ("bureau", vec!["URL-001"]),
    ] {
        let found = get(&server, &admin, &format!("/?search={search}&sort_by=name")).await;
        let mut skus: Vec<&str> = crate::common::items(&found)
            .iter()
            .filter_map(|item| item["sku"].as_str())
            .collect();
        skus.sort_unstable();
        assert_eq!(skus, expected, "search {search}");
    }

    // The seed's path still takes a multipart upload.
    let form = Form::new().text("supplier_id", supplier.to_string()).part(
        "file",
        Part::bytes(b"sku,name,price\nUP-1,Upload,1\n".to_vec())
            .file_name("up.csv")
            .mime_str("text/csv")
            .expect("mime"),
    );
    let uploaded = server
        .post(&path("/imports/create"))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(uploaded.status(), StatusCode::CREATED);

    // Bad requests: 422 naming every field, no job created.
    let jobs_before = get(&server, &admin, "/imports/jobs").await["total"].clone();
    for (body, fields) in [
        (json!({"supplier_id": supplier}), vec!["file_url"]),
        (
            json!({"supplier_id": supplier, "file_url": "ftp://example.com/a.csv"}),
            vec!["file_url"],
        ),
        (
            json!({"supplier_id": supplier, "file_url": url, "scheduled_at": "tomorrow"}),
            vec!["scheduled_at"],
        ),
        (
            json!({"supplier_id": supplier, "file_url": url, "import_type": "delta"}),
            vec!["import_type"],
        ),
        (
            json!({"supplier_id": supplier, "file_url": url, "fileUrl": url}),
            vec!["fileUrl"],
        ),
        (
            json!({"supplier_id": 0, "file_url": 7}),
            vec!["supplier_id", "file_url"],
        ),
        (
            json!({"supplier_id": 999_999, "file_url": url}),
            vec!["supplier_id"],
        ),
    ] {
        let refused = server
            .as_(&admin)
            .post(&path("/imports/create"))
            .json(body.clone())
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
            .await;
        let mut named = field_names(&refused);
        named.sort();
        let mut fields: Vec<String> = fields.into_iter().map(String::from).collect();
        fields.sort();
        assert_eq!(named, fields, "{body}: {refused}");
    }
    assert_eq!(
        get(&server, &admin, "/imports/jobs").await["total"],
        jobs_before
    );
    assert_eq!(feed.asked().len(), 1, "refused requests fetch nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_imports_that_cannot_be_imported_fail_with_their_reason_and_write_nothing() {
    let feed = feed_server().await;
    let closed = closed_address().await;
    let (server, _dir) = start(&feed, closed).await;
    let admin = server.admin_token().await;
    let supplier = create_supplier(&server, &admin, json!({"name": "Feeds"})).await;

    for (url, says) in [
        // Same server, a path outside the allow list.
        (feed.url("/private/products.csv"), "http_allow"),
        // Another host altogether.
        (
            "http://198.51.100.7/feeds/products.csv".to_string(),
            "http_allow",
        ),
        (feed.url("/feeds/missing.csv"), "HTTP 404"),
        (feed.url("/feeds/page.html"), "text/html"),
        (feed.url("/feeds/data.json"), "application/json"),
        (feed.url("/feeds/wrong-header.csv"), "cannot be imported"),
        (feed.url("/feeds/header-only.csv"), "no rows"),
        (
            format!("http://{closed}/feeds/products.csv"),
            "cannot fetch",
        ),
    ] {
        let job = create(
            &server,
            &admin,
            json!({"supplier_id": supplier, "file_url": url}),
        )
        .await;
        let id = job["id"].as_i64().expect("id");
        start_import(&server, &admin, id).await;
        let done = finished(&server, &admin, id).await;
        assert_eq!(done["status"], "failed", "{url}: {done}");
        let error = done["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{url}: {error}");
        assert_eq!(done["rows_imported"], 0, "{done}");
        let errors = log_lines(&server, &admin, id, "&level=error").await;
        assert!(
            errors.iter().any(|(_, _, message)| message.contains(says)),
            "{url}: {errors:?}"
        );
        assert_eq!(
            product_count(&server, &admin).await,
            0,
            "{url}: no row written"
        );
    }
    // The host refused the private URL before any request left.
    assert!(
        feed.asked()
            .iter()
            .all(|(path, _)| path.starts_with("/feeds/")),
        "{:?}",
        feed.asked()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_url_import_starts_by_itself_at_its_time() {
    let feed = feed_server().await;
    let (server, _dir) = start(&feed, closed_address().await).await;
    let admin = server.admin_token().await;
    let supplier = create_supplier(&server, &admin, json!({"name": "Feeds"})).await;

    // Whole seconds, so the stored time is this very instant; 8 to 9 s
    // ahead, longer than one run of the job waits (5 s), so the wait is
    // handed over to a fresh run at least once.
    let at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 9, 0).expect("time");
    let scheduled = create(
        &server,
        &admin,
        json!({
            "supplier_id": supplier,
            "file_url": feed.url("/feeds/scheduled.csv"),
            // Another offset, the same instant.
            "scheduled_at": at
                .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))
                .to_rfc3339(),
        }),
    )
    .await;
    let id = scheduled["id"].as_i64().expect("id");
    let stored_at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(scheduled["scheduled_at"], stored_at.as_str(), "{scheduled}");
    assert_eq!(scheduled["status"], "pending");

    // Polled, not slept: pending until the time, then done by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let done = loop {
        let job = get(&server, &admin, &format!("/imports/{id}")).await;
        if SystemTime::now() < SystemTime::from(at) - Duration::from_millis(500) {
            assert_eq!(job["status"], "pending", "not before its time: {job}");
        }
        if job["status"] == "completed" || job["status"] == "failed" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "never ran: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_imported"], 1, "{done}");
    let started = done["started_at"].as_str().expect("started_at");
    assert!(started >= stored_at.as_str(), "{started} < {stored_at}");
    let asked = feed.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].1 >= SystemTime::from(at),
        "fetched before its time"
    );
    let logs = log_lines(&server, &admin, id, "").await;
    assert!(
        logs.iter()
            .any(|(_, _, message)| message.contains("scheduled time")),
        "{logs:?}"
    );
    assert_eq!(get(&server, &admin, "/?search=SCH-001").await["total"], 1);

    // A time already past starts at once, without /start.
    let past = create(
        &server,
        &admin,
        json!({
            "supplier_id": supplier,
            "file_url": feed.url("/feeds/products.csv"),
            "scheduled_at": "2020-01-01T00:00:00Z",
        }),
    )
    .await;
    let done = finished(&server, &admin, past["id"].as_i64().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_imported"], 2, "{done}");

    // /start does not wait for a schedule an hour away.
    let later = create(
        &server,
        &admin,
        json!({
            "supplier_id": supplier,
            "file_url": feed.url("/feeds/scheduled.csv"),
            "scheduled_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        }),
    )
    .await;
    let later_id = later["id"].as_i64().expect("id");
    assert_eq!(later["status"], "pending");
    start_import(&server, &admin, later_id).await;
    let done = finished(&server, &admin, later_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    // SCH-001 exists: the row is skipped as a duplicate, nothing doubled.
    assert_eq!(
        (
            done["rows_imported"].as_i64(),
            done["rows_skipped"].as_i64()
        ),
        (Some(0), Some(1)),
        "{done}"
    );
    assert_eq!(feed.asked().len(), 3, "{:?}", feed.asked());
}
