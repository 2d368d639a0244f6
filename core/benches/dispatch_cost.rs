//! CPU cost of one request through the router, in-process (no sockets):
//! `GET /api/v1/hello/live` of the release `testbed` library (standing in
//! for `hello`), whose handler answers the native route's body, through
//! the plugin dispatcher, against the native `GET /health/live`: the
//! difference is the dispatch alone. Run with
//! `cargo bench -p xcore --bench dispatch_cost`; `XCORE_BENCH_PLUGIN=<file>`
//! loads another library as `hello` (its `/live` route is called).
//!
//! Wall-clock numbers here are as noisy as the machine. For a repeatable
//! count, run the built binary under callgrind, which counts instructions
//! whatever else the machine is doing:
//!
//! ```sh
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='*measure_native*' --toggle-collect='*measure_plugin*' \
//!     target/release/deps/dispatch_cost-<hash> 2000
//! callgrind_annotate callgrind.out.<pid> | grep measure_
//! ```
//!
//! (the argument is the number of requests per route; 20,000 by default).

mod support;

use std::time::Instant;

use axum::{body::Body, http::Request, Router};
use tower::ServiceExt;
use xcore::AppState;

async fn one(router: &Router, path: &'static str) {
    let request = Request::get(path)
        .header("host", "127.0.0.1")
        .header("accept", "*/*")
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("response");
    assert!(response.status().is_success(), "{path}");
    let _ = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
}

// Named, never inlined: callgrind collects inside these two only.
#[inline(never)]
async fn measure_native(router: &Router, requests: usize) {
    for _ in 0..requests {
        one(router, "/health/live").await;
    }
}

#[inline(never)]
async fn measure_plugin(router: &Router, requests: usize) {
    for _ in 0..requests {
        one(router, "/api/v1/hello/live").await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let requests: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(20_000);
    let library = if std::env::var_os("XCORE_BENCH_PLUGIN").is_some() {
        std::path::PathBuf::from(std::env::var_os("XCORE_BENCH_PLUGIN").expect("set"))
    } else {
        support::release_plugin("testbed")
    };
    let plugins = tempfile::tempdir().expect("plugins dir");
    let data = tempfile::tempdir().expect("data dir");
    std::fs::copy(&library, plugins.path().join("libxcore_plugin_hello.so")).expect("copy");
    let mut config = support::bench_config(data.path(), plugins.path());
    config.plugins.watch = false;
    let state = AppState::build(config).await.expect("state");
    let router = xcore::app(state);

    // Warm both paths, then alternate so drift hits both alike.
    measure_native(&router, requests / 10 + 1).await;
    measure_plugin(&router, requests / 10 + 1).await;
    let (mut native, mut plugin) = (0.0, 0.0);
    for _ in 0..4 {
        let started = Instant::now();
        measure_native(&router, requests / 4).await;
        native += started.elapsed().as_secs_f64();
        let started = Instant::now();
        measure_plugin(&router, requests / 4).await;
        plugin += started.elapsed().as_secs_f64();
    }
    let per_request = |seconds: f64| seconds * 1e6 / (requests / 4 * 4) as f64;
    println!(
        "in-process, {requests} requests each: native {:.2} us, plugin {:.2} us per request",
        per_request(native),
        per_request(plugin)
    );
}
