//! The API matches its document: schemathesis (PyPI package `schemathesis`,
//! installed by `.ci/run`) generates requests from the live
//! `/openapi.json` of a real server with the products and hello plugins
//! loaded, as the admin, and checks every answer against the document: no
//! server error, no undocumented status, bodies and headers as documented,
//! invalid requests refused. Fixed seed and a bounded number of examples,
//! so a run is repeatable and short.
//!
//! Every check runs. Left out: `/auth/logout`, which would revoke the
//! run's own token halfway (logout has its own tests in `auth.rs`).
//! `schemathesis.toml` beside this file lists, per operation, the refusals
//! of schema-valid requests that no schema can state (a cross-field rule,
//! a row that must exist, a secret that must be right), each with its rule.

mod common;

use std::process::Command;

use common::{deploy, plugin_library, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_openapi_document() {
    let plugins = tempfile::tempdir().expect("dir");
    deploy(
        &common::hello_variant(""),
        plugins.path(),
        "libxcore_plugin_hello.so",
    );
    deploy(
        &plugin_library("xcore-plugin-products", "xcore_plugin_products", ""),
        plugins.path(),
        "libxcore_plugin_products.so",
    );
    let dir = plugins.path().to_path_buf();
    let server =
        TestServer::start_with(move |config| config.plugins.dir = dir.display().to_string()).await;
    let token = server.admin_token().await;
    // Hypothesis keeps a database of examples in the working directory.
    let scratch = tempfile::tempdir().expect("scratch");
    let url = server.url("/openapi.json");
    let settings = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .current_dir(scratch.path())
            .args(["-m", "schemathesis.cli", "--config-file"])
            .arg(&settings)
            .args(["run", &url])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            .args(["--exclude-path", "/auth/logout"])
            .args(["--seed", "1", "--max-examples", "20", "--workers", "1"])
            .args(["--no-color"])
            .output()
    })
    .await
    .expect("join");
    let output = match run {
        Ok(output) => output,
        Err(error) => {
            panic!("cannot run python3 -m schemathesis.cli ({error}): pip install schemathesis")
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named"),
        "schemathesis is missing: pip install schemathesis\n{stderr}"
    );
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("generated"), "no test case ran:\n{stdout}");
    server.stop().await;
}
