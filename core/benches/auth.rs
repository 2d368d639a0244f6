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
//! 4. `GET /system/plugins`: an admin route (`plugins:manage`);
//! 5. `GET /auth/me` again, with an API key (`X-API-Key`) instead;
//! 6. `GET /api/v1/hello/whoami` again, with that API key.
//!
//! The authenticated routes use the bench administrator's token, or an API
//! key the administrator created with `hello:read`, so the same route is
//! measured with a JWT and with a key in the same rounds.
//! Numbers only: nothing fails on a slow machine. Client and server share
//! the machine's cores, equally for every route.

mod support;

use support::{median, throughput_with, CONNECTIONS, ROUND};
use xcore::AppState;

const ROUNDS: usize = 12;

/// The credential header a route is measured with: `(name, value)`.
type Credential<'a> = Option<(&'static str, &'a str)>;

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
    let base = format!("http://{}", support::serve(state).await);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    let token = support::bench_token(&client, &base).await;
    let created: serde_json::Value = client
        .post(format!("{base}/auth/api-keys"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "bench", "permissions": ["hello:read"]}))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("key");
    let key = created["key"].as_str().expect("key").to_string();
    let bearer = format!("Bearer {token}");
    let jwt = Some(("authorization", bearer.as_str()));
    let api_key = Some(("x-api-key", key.as_str()));

    let routes: [(&str, String, Credential<'_>); 6] = [
        (
            "GET /api/v1/hello/ping (public)",
            format!("{base}/api/v1/hello/ping"),
            None,
        ),
        (
            "GET /api/v1/hello/whoami (hello:read)",
            format!("{base}/api/v1/hello/whoami"),
            jwt,
        ),
        ("GET /auth/me", format!("{base}/auth/me"), jwt),
        (
            "GET /system/plugins (plugins:manage)",
            format!("{base}/system/plugins"),
            jwt,
        ),
        ("GET /auth/me (API key)", format!("{base}/auth/me"), api_key),
        (
            "GET /api/v1/hello/whoami (API key)",
            format!("{base}/api/v1/hello/whoami"),
            api_key,
        ),
    ];
    for (_, url, credential) in &routes {
        let answer = throughput_with(&client, url, *credential).await;
        assert!(answer > 0.0, "{url} answered no 200 while warming up");
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); routes.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); routes.len()];
    for round in 0..ROUNDS {
        let mut this_round = vec![0.0; routes.len()];
        for step in 0..routes.len() {
            let index = (round + step) % routes.len();
            let (_, url, credential) = &routes[index];
            this_round[index] = throughput_with(&client, url, *credential).await;
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
    // The same route with a key and with a JWT, round by round.
    for (name, key_index, jwt_index) in [("GET /auth/me", 4, 2), ("GET /api/v1/hello/whoami", 5, 1)]
    {
        let per_round: Vec<f64> = rates[key_index]
            .iter()
            .zip(&rates[jwt_index])
            .map(|(key, jwt)| key / jwt)
            .collect();
        let (lowest, highest) = (
            per_round.iter().copied().fold(f64::INFINITY, f64::min),
            per_round.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "{name:<40} API key / JWT throughput {:>5.2}x (median of rounds; {lowest:.2}..{highest:.2})",
            median(per_round.clone()),
        );
    }
}
