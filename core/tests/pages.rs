//! The pages, `/openapi.json` and `/static`, against a real server with the
//! real hello plugin loaded: plain HTTP for headers, escaping and traversal;
//! the OpenAPI validator on the live document; and a real headless Chromium
//! for the home page, ReDoc with the network closed, and the console's
//! login, disable button and live event feed.
//!
//! Needs Debian's `chromium` (the browser tests fail, saying so, without
//! it) and `python3 -m openapi_spec_validator` (pip package
//! `openapi-spec-validator`); `.ci/run` installs both.

mod browser;
mod common;

use std::{
    io::{Read, Write},
    path::Path,
    time::Duration,
};

use browser::Browser;
use common::{deploy, expect_status, hello_variant, TestServer};
use reqwest::{header, StatusCode};
use serde_json::Value;

const HELLO: &str = "libxcore_plugin_hello.so";

/// A server with the hello plugin (and any extra files) in its plugins
/// directory; the test config serves the repository's `static/`.
async fn start(dir: &Path) -> TestServer {
    deploy(&hello_variant(""), dir, HELLO);
    let dir = dir.to_path_buf();
    TestServer::start_with(move |config| config.plugins.dir = dir.display().to_string()).await
}

async fn text(server: &TestServer, path: &str) -> (StatusCode, header::HeaderMap, String) {
    let response = server.get(path).send().await.expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

async fn openapi(server: &TestServer) -> Value {
    server.public_get("/openapi.json").await
}

/// Sends `path` byte for byte (reqwest would normalise `..` away) and
/// returns the status line and the body.
fn raw_get(server: &TestServer, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_page_shows_state_but_no_error_details() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("libxcore_plugin_broken.so"),
        vec![0x42u8; 4096],
    )
    .expect("write");
    let server = start(dir.path()).await;
    let admin = server.admin_token().await;
    let broken = server.get_as(&admin, "/system/plugins/broken").await;
    let error = broken["last_error"]
        .as_str()
        .expect("the broken plugin has an error");

    let (status, headers, html) = text(&server, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .expect("type")
        .starts_with("text/html"));
    assert!(headers.contains_key("x-request-id"));
    assert!(html.contains(env!("CARGO_PKG_VERSION")), "{html}");
    assert!(
        html.contains("id=\"health\" class=\"badge healthy\""),
        "{html}"
    );
    assert!(html.contains("<tr data-plugin=\"hello\">"), "{html}");
    assert!(html.contains("/api/v1/hello"), "{html}");
    assert!(html.contains("<tr data-plugin=\"broken\">"), "{html}");
    // A library admission refused is shown as such.
    assert!(html.contains("badge refused"), "{html}");
    assert!(
        !html.contains(error),
        "the home page is public: it must not show {error:?}"
    );
    assert!(
        html.contains("<tr data-task=\"purge_expired_tokens\">"),
        "{html}"
    );
    for link in [
        "/core-docs",
        "/openapi.json",
        "/console",
        "/static/css/xcore.css",
    ] {
        assert!(html.contains(&format!("\"{link}\"")), "link to {link}");
    }
    assert!(
        !html.contains("<script"),
        "the home page needs no JavaScript"
    );

    let (status, _, docs) = text(&server, "/core-docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(docs.contains("/static/vendor/redoc-2.5.4/redoc.standalone.js"));
    assert!(!docs.contains("https://") && !docs.contains("http://"));
    let (status, _, console) = text(&server, "/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(console.contains("/static/js/console.js"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_cached_and_traversal_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path()).await;

    let (status, headers, css) = text(&server, "/static/css/xcore.css").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/css");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=3600");
    assert!(headers.contains_key(header::LAST_MODIFIED));
    assert!(css.contains("--accent"));
    let (status, headers, _) = text(&server, "/static/js/console.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .expect("type")
        .contains("javascript"));
    let (status, headers, redoc) =
        text(&server, "/static/vendor/redoc-2.5.4/redoc.standalone.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(redoc.len() > 500_000, "the real bundle");

    // Conditional requests work through ServeDir.
    let modified = server
        .get("/static/css/xcore.css")
        .send()
        .await
        .expect("send")
        .headers()[header::LAST_MODIFIED]
        .clone();
    let again = server
        .get("/static/css/xcore.css")
        .header(header::IF_MODIFIED_SINCE, modified)
        .send()
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    server
        .anonymous()
        .get("/static/nope.css")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .anonymous()
        .get("/static/css")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;

    // `..` raw, percent-encoded, and with an encoded slash: all refused
    // before the file system is touched.
    for path in [
        "/static/../Cargo.toml",
        "/static/css/../../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/css/..%2f..%2fCargo.toml",
        "/static/..%5c..%5cCargo.toml",
    ] {
        let (status, body) = raw_get(&server, path);
        assert!(status.contains(" 400 "), "{path}: {status} {body}");
        assert!(body.contains("VALIDATION_ERROR"), "{path}: {body}");
        assert!(!body.contains("[workspace]"), "{path} leaked a file");
    }
}

/// Runs openapi-spec-validator on `document`.
fn validate_openapi(document: &Value) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), document.to_string()).expect("write");
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("python3 is needed to validate the OpenAPI document");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stderr.contains("No module named openapi_spec_validator"),
        "the OpenAPI validator is not installed: `pip install openapi-spec-validator` \
         (.ci/run installs it)"
    );
    assert!(
        output.status.success(),
        "/openapi.json is not a valid OpenAPI document:\n{stdout}\n{stderr}"
    );
}

fn has_tag(document: &Value, name: &str) -> bool {
    document["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|tag| tag["name"] == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_valid_and_follows_the_plugins() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path()).await;
    let admin = server.admin_token().await;

    let document = openapi(&server).await;
    validate_openapi(&document);
    assert_eq!(document["info"]["title"], "xcore API");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = document["paths"].as_object().expect("paths");
    for core in [
        "/auth/login",
        "/system/plugins/{plugin_id}/disable",
        "/system/tasks",
        "/health",
        "/ws",
        "/",
        "/static/{path}",
    ] {
        assert!(paths.contains_key(core), "{core}");
    }
    let ping = &document["paths"]["/api/v1/hello/ping"]["get"];
    assert_eq!(ping["tags"], serde_json::json!(["hello"]));
    assert!(ping.get("security").is_none(), "/ping is public");
    assert_eq!(
        document["paths"]["/api/v1/hello/greetings"]["post"]["security"],
        serde_json::json!([{"bearer": []}]),
        "a permission-guarded plugin route needs the bearer token"
    );
    assert!(has_tag(&document, "hello"));

    let call = |method: reqwest::Method, path: &str| {
        server.request(method, path).bearer_auth(&admin).send()
    };
    expect_status(
        call(reqwest::Method::POST, "/system/plugins/hello/disable")
            .await
            .expect("send"),
        StatusCode::OK,
    )
    .await;
    let disabled = openapi(&server).await;
    assert!(disabled["paths"].get("/api/v1/hello/ping").is_none());
    assert!(!has_tag(&disabled, "hello"));
    validate_openapi(&disabled);

    expect_status(
        call(reqwest::Method::POST, "/system/plugins/hello/enable")
            .await
            .expect("send"),
        StatusCode::OK,
    )
    .await;
    let enabled = openapi(&server).await;
    assert_eq!(
        enabled["paths"]["/api/v1/hello/ping"],
        document["paths"]["/api/v1/hello/ping"]
    );
    assert!(has_tag(&enabled, "hello"));

    expect_status(
        call(reqwest::Method::POST, "/system/plugins/hello/reload")
            .await
            .expect("send"),
        StatusCode::OK,
    )
    .await;
    assert!(openapi(&server).await["paths"]
        .get("/api/v1/hello/ping")
        .is_some());

    expect_status(
        call(reqwest::Method::DELETE, "/system/plugins/hello")
            .await
            .expect("send"),
        StatusCode::NO_CONTENT,
    )
    .await;
    let removed = openapi(&server).await;
    assert!(removed["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .all(|path| !path.starts_with("/api/v1/hello")));
    assert!(!has_tag(&removed, "hello"));
}

/// Every request the page sent went to this server (or was inline data).
/// Requests the page's Content-Security-Policy stopped never left the
/// browser, so they do not count.
fn assert_only_local_requests(browser: &Browser, server: &TestServer) {
    let origin = format!("http://{}/", server.addr);
    let requested = browser.requested_urls();
    assert!(!requested.is_empty(), "no request was recorded");
    let blocked = browser.blocked_by_csp();
    for url in requested.into_iter().filter(|url| !blocked.contains(url)) {
        assert!(
            url.starts_with(&origin)
                || url.starts_with("data:")
                || url.starts_with("blob:")
                || url.starts_with("about:"),
            "the page requested {url}, which is not served by xcore"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_renders_the_home_page_plugins_table() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path()).await;
    let mut browser = Browser::launch().await;
    browser.goto(&server.url("/")).await;

    let row = browser
        .eval(
            "[...document.querySelectorAll('table#plugins tbody tr')].map(tr => \
             [...tr.cells].map(td => td.innerText.trim()))",
        )
        .await;
    let rows = row.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{row}");
    let cells: Vec<&str> = rows[0]
        .as_array()
        .expect("cells")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        cells,
        [
            "hello",
            "Hello",
            env!("CARGO_PKG_VERSION"),
            "active",
            "/api/v1/hello",
            "3"
        ]
    );
    // Styled from /static: the stylesheet loaded and applies.
    let styled = browser
        .eval(
            "getComputedStyle(document.querySelector('header.site')).display === 'flex' && \
             [...document.styleSheets].some(s => (s.href || '').endsWith('/static/css/xcore.css'))",
        )
        .await;
    assert_eq!(styled, Value::Bool(true));
    assert_only_local_requests(&browser, &server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_renders_redoc_with_the_network_closed() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path()).await;
    let mut browser = Browser::launch().await;

    // The network really is closed to this browser: from one of the
    // server's documents without a Content-Security-Policy in the way (the
    // JSON one), the server answers and anything off loopback fails.
    browser.goto(&server.url("/openapi.json")).await;
    let probe = |url: &str| {
        format!("fetch('{url}', {{mode: 'no-cors'}}).then(() => 'reached', () => 'blocked')")
    };
    let local = browser.eval(&probe(&server.url("/health/live"))).await;
    assert_eq!(local, "reached", "the probe itself works");
    for outside in [
        "http://example.com/",
        "https://cdn.redoc.ly/redoc/logo-mini.svg",
    ] {
        let answer = browser.eval(&probe(outside)).await;
        assert_eq!(answer, "blocked", "{outside} must be unreachable");
    }
    // Only what /core-docs itself requests counts below.
    browser.events.clear();

    browser.goto(&server.url("/core-docs")).await;
    browser
        .wait_for(
            "[...document.querySelectorAll('h1')].some(h => h.innerText.includes('xcore API'))",
            Duration::from_secs(60),
        )
        .await;
    browser
        .wait_for(
            "document.body.innerText.includes('/api/v1/hello/ping')",
            Duration::from_secs(30),
        )
        .await;
    // The plugin's tag is a section of its own in ReDoc's menu.
    browser
        .wait_for(
            "[...document.querySelectorAll('[role=menuitem], label, li')].some(e => e.innerText.trim() === 'hello')",
            Duration::from_secs(10),
        )
        .await;
    browser.screenshot("core-docs").await;
    assert_only_local_requests(&browser, &server);
    assert!(
        browser
            .requested_urls()
            .iter()
            .any(|url| url.ends_with("/openapi.json")),
        "ReDoc fetched the document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_console_logs_in_disables_a_plugin_and_shows_the_event() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path()).await;
    let mut browser = Browser::launch().await;
    browser.goto(&server.url("/console")).await;

    // A wrong password: the standard error body's message is shown.
    browser.type_into("#login-email", common::ADMIN_EMAIL).await;
    browser
        .type_into("#login-password", "wrong-password-1")
        .await;
    browser.click("#login-submit").await;
    browser
        .wait_for(
            "!document.getElementById('login-error').hidden && \
             document.getElementById('login-error').innerText.includes('AUTHENTICATION_ERROR')",
            Duration::from_secs(20),
        )
        .await;

    browser
        .eval("document.getElementById('login-password').value = ''")
        .await;
    browser
        .type_into("#login-password", common::ADMIN_PASSWORD)
        .await;
    browser.click("#login-submit").await;
    let disable = "#console-plugins tr[data-plugin='hello'] button[data-action='disable']";
    browser
        .wait_for(
            &format!("document.querySelector(\"{disable}\") !== null"),
            Duration::from_secs(20),
        )
        .await;
    browser
        .wait_for(
            "document.querySelector(\"#console-tasks tr[data-task='purge_expired_tokens'] button[data-action='run']\") !== null",
            Duration::from_secs(10),
        )
        .await;
    // Subscribed before acting, so the event cannot be missed.
    browser
        .wait_for(
            "document.getElementById('feed-status').dataset.state === 'live'",
            Duration::from_secs(20),
        )
        .await;

    browser.click(disable).await;
    browser
        .wait_for(
            "document.querySelector(\"#console-plugins tr[data-plugin='hello']\")?.dataset.state === 'disabled'",
            Duration::from_secs(20),
        )
        .await;
    let admin = server.admin_token().await;
    let plugin = server.get_as(&admin, "/system/plugins/hello").await;
    assert_eq!(plugin["state"], "disabled");
    assert_eq!(plugin["active"], false);
    browser
        .wait_for(
            "[...document.querySelectorAll('#feed li')].some(li => li.dataset.topic === 'plugin.disabled' && li.innerText.includes('hello'))",
            Duration::from_secs(20),
        )
        .await;
    // The enable button replaced it, and nothing was persisted.
    browser
        .wait_for(
            "document.querySelector(\"#console-plugins tr[data-plugin='hello'] button[data-action='enable']\") !== null",
            Duration::from_secs(5),
        )
        .await;
    browser.screenshot("console").await;
    let stored = browser
        .eval("localStorage.length + sessionStorage.length + document.cookie.length")
        .await;
    assert_eq!(stored, 0, "the console keeps its token in memory only");
    assert_only_local_requests(&browser, &server);
}
