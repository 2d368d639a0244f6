//! The products plugin's suppliers, CSV imports and dashboard, through the
//! real host and the real `libxcore_plugin_products.so`: supplier CRUD and
//! its errors, a Latin-1 `;` file read through a column mapping, a file
//! with bad rows (errors with their line numbers, duplicate SKUs as
//! warnings, good rows kept), starting twice, job filters, logs, the
//! `products.import.*` events on the bus, an interrupted job resumed from
//! its last batch, the dashboard, and 401/403.
//!
//! Runs on SQLite, or PostgreSQL with `XCORE_TEST_DATABASE_URL`.
//!
//! One test binary, one file per topic: [`suppliers`] (supplier CRUD),
//! [`files`] (what an upload holds: mappings, bad rows, unreadable files),
//! [`jobs`] (resumed, batched and failed runs) and [`url_imports`] (files
//! fetched from a URL through the allow list, on a schedule or not). This
//! file: the helpers the topics share.

#[path = "../common/mod.rs"]
mod common;

mod files;
mod jobs;
mod suppliers;
mod url_imports;

use common::{deploy, expect_status, plugin_library, TestServer};
use reqwest::{
    multipart::{Form, Part},
    StatusCode,
};
use serde_json::Value;
use std::time::Duration;

pub(crate) const BASE: &str = "/api/v1/products";

/// A fresh plugins directory holding the products plugin.
pub(crate) fn products_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    deploy(
        &plugin_library("xcore-plugin-products", "xcore_plugin_products", ""),
        dir.path(),
        "libxcore_plugin_products.so",
    );
    dir
}

pub(crate) async fn start_server() -> (TestServer, tempfile::TempDir) {
    let dir = products_dir();
    let plugins = dir.path().display().to_string();
    let server = TestServer::start_with(move |config| config.plugins.dir = plugins).await;
    (server, dir)
}

pub(crate) fn path(rest: &str) -> String {
    format!("{BASE}{rest}")
}

pub(crate) async fn get(server: &TestServer, token: &str, rest: &str) -> Value {
    server.get_as(token, &path(rest)).await
}

pub(crate) async fn create_supplier(server: &TestServer, token: &str, body: Value) -> i64 {
    let created = server.create_as(token, &path("/suppliers"), body).await;
    created["id"].as_i64().expect("supplier id")
}

pub(crate) async fn upload(
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
pub(crate) async fn uploaded(
    server: &TestServer,
    token: &str,
    supplier: i64,
    bytes: &[u8],
) -> Value {
    let job = expect_status(
        upload(server, token, &supplier.to_string(), "file.csv", bytes).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(job["status"], "pending", "{job}");
    job
}

/// Polls the job until it is `completed` or `failed`, for up to 20 s.
pub(crate) async fn finished(server: &TestServer, token: &str, id: i64) -> Value {
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

pub(crate) async fn start_import(server: &TestServer, token: &str, id: i64) -> Value {
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
pub(crate) async fn log_lines(
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
    crate::common::items(&body)
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

pub(crate) fn field_names(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|detail| detail["field"].as_str().unwrap_or_default().to_string())
        .collect()
}
