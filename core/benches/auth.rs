//! Authenticated-request benchmark, run with `cargo bench -p xcore --bench auth`.
//!
//! One server, one run, the release test fixture plugin (`plugins/testbed`,
//! which stands in for hello and adds `GET /whoami`), deployed as hello. Four routes, measured in
//! rounds that visit each in turn (the order rotates every round), so each
//! route is compared with the public route of the same round:
//! 1. `GET /api/v1/hello/ping`: public plugin route, the reference;
//! 2. `GET /api/v1/hello/whoami`: plugin route needing `hello:read`,
//!    answering from the caller the host hands over (no host calls);
//! 3. `GET /auth/me`: the caller's profile;
//! 4. `GET /system/plugins`: an admin route (`plugins:manage`).
//!
//! The three authenticated routes use the bench administrator's token.
//! Numbers only: nothing fails on a slow machine. Client and server share
//! the machine's cores, equally for every route.

mod support;

use std::net::SocketAddr;

use support::{median, throughput, CONNECTIONS, ROUND};
use xcore::AppState;

const ROUNDS: usize = 12;

/// Builds the fixture in a target directory of its own, so the deployable
/// `target/release` libraries stay untouched.
fn build_release_plugin(workspace: &std::path::Path) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = workspace.join("target").join("bench-testbed");
    let status = std::process::Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "xcore-plugin-testbed",
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the fixture plugin failed");
    target.join("release/libxcore_plugin_testbed.so")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let workspace = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let library = build_release_plugin(&workspace);
    let plugins = tempfile::tempdir().expect("plugins dir");
    let data = tempfile::tempdir().expect("data dir");
    std::fs::copy(&library, plugins.path().join("libxcore_plugin_hello.so")).expect("copy");

    let config = support::bench_config(data.path(), plugins.path());
    let state = AppState::build(config).await.expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(xcore::serve(listener, state, std::future::pending()));
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    let token = support::bench_token(&client, &base).await;

    let routes: [(&str, String, Option<&str>); 4] = [
        (
            "GET /api/v1/hello/ping (public)",
            format!("{base}/api/v1/hello/ping"),
            None,
        ),
        (
            "GET /api/v1/hello/whoami (hello:read)",
            format!("{base}/api/v1/hello/whoami"),
            Some(&token),
        ),
        ("GET /auth/me", format!("{base}/auth/me"), Some(&token)),
        (
            "GET /system/plugins (plugins:manage)",
            format!("{base}/system/plugins"),
            Some(&token),
        ),
    ];
    for (_, url, token) in &routes {
        let answer = throughput(&client, url, *token).await;
        assert!(answer > 0.0, "{url} answered no 200 while warming up");
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); routes.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); routes.len()];
    for round in 0..ROUNDS {
        let mut this_round = vec![0.0; routes.len()];
        for step in 0..routes.len() {
            let index = (round + step) % routes.len();
            let (_, url, token) = &routes[index];
            this_round[index] = throughput(&client, url, *token).await;
        }
        for (index, rate) in this_round.iter().enumerate() {
            rates[index].push(*rate);
            ratios[index].push(rate / this_round[0]);
        }
    }
    println!(
        "xcore auth benchmark ({} cores, {CONNECTIONS} connections, {ROUNDS} rounds of {} x {}s)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        routes.len(),
        ROUND.as_secs()
    );
    for (index, (name, _, _)) in routes.iter().enumerate() {
        let (lowest, highest) = (
            ratios[index].iter().copied().fold(f64::INFINITY, f64::min),
            ratios[index].iter().copied().fold(0.0, f64::max),
        );
        println!(
            "{name:<40} {:>8.0} req/s (median)  {:>5.2}x public (median of rounds; {lowest:.2}..{highest:.2})",
            median(rates[index].clone()),
            median(ratios[index].clone()),
        );
    }
}
