//! Host benchmarks, run with `cargo bench -p xcore --bench host`.
//!
//! Starts the real release `xcore` binary on a free loopback port, with the
//! default argon2id parameters, and reports:
//! - cold start: process spawn to the first `/health` 200 on a fresh
//!   SQLite file without plugins (median of 5);
//! - cold start as operators restart: the four domain plugins (products,
//!   pricing, crm, leads) and hello deployed, on the database a first
//!   start created and migrated, spawn to the first `/health/ready` 200
//!   (median of 5), with issue 18's target beside it;
//! - RSS at idle after start-up (both ways) and after the login run (from
//!   /proc), with the target for the idle server with every plugin,
//! - login latency over HTTP (sequential; p50, p90, p99) and what a native
//!   argon2id verification with the same parameters costs in-process, so
//!   the HTTP and database overhead shows as a ratio measured in this run.
//!
//! Numbers, not assertions: the machines are noisy, so nothing here fails
//! on a slow run.

mod support;

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use argon2::{password_hash::SaltString, Argon2, PasswordHasher, PasswordVerifier};

const LOGINS: usize = 60;
const COLD_STARTS: usize = 5;
const PASSWORD: &str = "BenchPassw0rd!";
const EMAIL: &str = "bench@example.com";
/// What a product deployment runs: the four domain plugins and the example.
const DEPLOYED: [&str; 5] = ["products", "pricing", "crm", "leads", "hello"];
/// Issue 18's targets.
const COLD_START_TARGET_MS: f64 = 50.0;
const IDLE_RSS_TARGET_MIB: f64 = 30.0;

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

async fn start(client: &reqwest::Client) -> (Server, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, base, elapsed) = spawn(client, dir.path(), None, "/health").await;
    (
        Server {
            child,
            base,
            _dir: dir,
        },
        elapsed,
    )
}

/// Spawns `xcore serve` on the SQLite file `bench.db` in `data` (and the
/// plugins in `plugins`, if any); returns once `ready_path` answers 200,
/// with the time from spawn.
async fn spawn(
    client: &reqwest::Client,
    data: &Path,
    plugins: Option<&Path>,
    ready_path: &str,
) -> (Child, String, Duration) {
    let port = free_port();
    let empty = data.join("no-plugins");
    let plugins = plugins.map_or(empty, Path::to_path_buf);
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_xcore"))
        .arg("serve")
        .current_dir(data)
        .env("XCORE_BIND", format!("127.0.0.1:{port}"))
        .env(
            "XCORE_DATABASE_URL",
            format!("sqlite://{}/bench.db", data.display()),
        )
        .env("XCORE_PLUGINS_DIR", &plugins)
        .env(
            "XCORE_JWT_SECRET",
            "bench-secret-bench-secret-bench-secret-42",
        )
        .env("XCORE_ADMIN_EMAIL", EMAIL)
        .env("XCORE_ADMIN_PASSWORD", PASSWORD)
        .env("XCORE_RATE_LIMITS", "off")
        .env("XCORE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn xcore");
    let base = format!("http://127.0.0.1:{port}");
    loop {
        if let Ok(response) = client.get(format!("{base}{ready_path}")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (child, base, started.elapsed())
}

/// Stops a server the way an operator's supervisor does (SIGTERM, then
/// wait), so the next start finds the database as a restart would.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Cold starts with every plugin on an existing database; the durations
/// and the idle RSS of the last one.
async fn restarts_with_every_plugin(client: &reqwest::Client) -> (Vec<Duration>, f64, usize) {
    let release = support::build_release_plugins(
        &DEPLOYED
            .map(|id| format!("xcore-plugin-{id}"))
            .each_ref()
            .map(String::as_str),
    );
    let plugins = tempfile::tempdir().expect("plugins dir");
    for id in DEPLOYED {
        let lib = format!("libxcore_plugin_{id}.so");
        std::fs::copy(release.join(&lib), plugins.path().join(&lib)).expect("copy plugin");
    }
    let data = tempfile::tempdir().expect("data dir");
    // The first start creates and migrates the database.
    let (child, base, _) = spawn(client, data.path(), Some(plugins.path()), "/health/ready").await;
    let token = support::bench_token(client, &base).await;
    let listed: serde_json::Value = client
        .get(format!("{base}/system/plugins"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("plugins")
        .json()
        .await
        .expect("json");
    let active = listed["items"].as_array().map_or(0, |items| {
        items.iter().filter(|p| p["active"] == true).count()
    });
    stop(child);
    let mut cold = Vec::new();
    let mut idle_rss = f64::NAN;
    for round in 0..COLD_STARTS {
        let (child, _, elapsed) =
            spawn(client, data.path(), Some(plugins.path()), "/health/ready").await;
        cold.push(elapsed);
        if round + 1 == COLD_STARTS {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            idle_rss = support::rss_mib(&child.id().to_string());
        }
        stop(child);
    }
    cold.sort();
    (cold, idle_rss, active)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let client = reqwest::Client::new();

    let mut cold = Vec::new();
    for _ in 0..COLD_STARTS {
        let (server, elapsed) = start(&client).await;
        cold.push(elapsed);
        drop(server);
    }
    cold.sort();

    let (restarts, fleet_rss, active) = restarts_with_every_plugin(&client).await;

    let (server, _) = start(&client).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = support::rss_mib(&server.child.id().to_string());

    let mut logins = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let started = Instant::now();
        let response = client
            .post(format!("{}/auth/login", server.base))
            .form(&[("username", EMAIL), ("password", PASSWORD)])
            .send()
            .await
            .expect("login");
        assert!(
            response.status().is_success(),
            "login failed: {}",
            response.status()
        );
        response.bytes().await.expect("body");
        logins.push(started.elapsed());
    }
    logins.sort();
    let busy_rss = support::rss_mib(&server.child.id().to_string());
    // The hashing threads free their argon2 memory once idle.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after_rss = support::rss_mib(&server.child.id().to_string());

    // The same verification in-process, default parameters, for the ratio.
    let argon2 = Argon2::default();
    let salt = SaltString::encode_b64(b"bench-salt-16byt").expect("salt");
    let hash = argon2
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("hash");
    let mut native = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let started = Instant::now();
        argon2
            .verify_password(PASSWORD.as_bytes(), &hash)
            .expect("verify");
        native.push(started.elapsed());
    }
    native.sort();

    let params = argon2.params();
    println!(
        "xcore host benchmark ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "cold start to first /health 200: median {:.1} ms (min {:.1}, max {:.1}, {COLD_STARTS} starts)",
        ms(percentile(&cold, 0.5)),
        ms(cold[0]),
        ms(cold[cold.len() - 1])
    );
    let restart = ms(percentile(&restarts, 0.5));
    println!(
        "cold start with {} (active: {active}), existing database, to the first /health/ready 200: median {restart:.1} ms (min {:.1}, max {:.1}); target <= {COLD_START_TARGET_MS} ms: {}",
        DEPLOYED.join(", "),
        ms(restarts[0]),
        ms(restarts[restarts.len() - 1]),
        if restart <= COLD_START_TARGET_MS { "met" } else { "not met" }
    );
    support::report_target(
        "host",
        "restart to /health/ready with the four domain plugins and hello",
        support::Goal::AtMost(COLD_START_TARGET_MS),
        restart,
        "ms",
    );
    support::report_target(
        "host",
        "idle RSS with the four domain plugins and hello",
        support::Goal::AtMost(IDLE_RSS_TARGET_MIB),
        fleet_rss * support::MB_PER_MIB,
        "MB",
    );
    println!(
        "RSS at idle after start, no plugins: {idle_rss:.1} MiB; right after {LOGINS} logins: {busy_rss:.1} MiB; idle 1 s later: {after_rss:.1} MiB"
    );
    println!(
        "RSS at idle after start with {}: {fleet_rss:.1} MiB; target <= {IDLE_RSS_TARGET_MIB} MiB: {}",
        DEPLOYED.join(", "),
        if fleet_rss <= IDLE_RSS_TARGET_MIB { "met" } else { "not met" }
    );
    println!(
        "login over HTTP ({LOGINS} sequential, argon2id m={} KiB t={} p={}): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        ms(percentile(&logins, 0.5)),
        ms(percentile(&logins, 0.9)),
        ms(percentile(&logins, 0.99))
    );
    let native_p50 = percentile(&native, 0.5);
    println!(
        "argon2id verify alone, in-process: p50 {:.1} ms; login p50 / verify p50 = {:.2}x",
        ms(native_p50),
        percentile(&logins, 0.5).as_secs_f64() / native_p50.as_secs_f64()
    );
}
