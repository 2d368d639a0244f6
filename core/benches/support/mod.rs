//! Helpers shared by the benchmark binaries.

/// Resident set size in MiB of `process` (`"self"` or a pid), from /proc.
#[allow(dead_code)]
pub fn rss_mib(process: &str) -> f64 {
    status_mib(process, "VmRSS")
}

/// A memory figure of `process`'s `/proc/<process>/status` (`VmRSS`,
/// `VmHWM`...), in MiB; NaN when it cannot be read.
#[allow(dead_code)]
pub fn status_mib(process: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Builds the release libraries of `packages` (`xcore-plugin-<id>`) into
/// the workspace's `target/release`, where the benchmarks copy them from.
#[allow(dead_code)]
pub fn build_release_plugins(packages: &[&str]) -> std::path::PathBuf {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--release", "--quiet"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status().expect("cargo build");
    assert!(status.success(), "building the plugins failed");
    workspace.join("target").join("release")
}

/// The release library of plugin `id` (package `xcore-plugin-<id>`), built
/// first.
#[allow(dead_code)]
pub fn release_plugin(id: &str) -> std::path::PathBuf {
    build_release_plugins(&[&format!("xcore-plugin-{id}")]).join(format!("libxcore_plugin_{id}.so"))
}

/// Serves `state` on a loopback port of its own, in the background.
#[allow(dead_code)]
pub async fn serve(state: xcore::AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(xcore::serve(listener, state, std::future::pending()));
    addr
}

/// The configuration the benchmarks start from: development profile, a
/// SQLite file in `data_dir`, plugins from `plugins_dir`, no rate limits,
/// quiet logs, the bench administrator.
// Each benchmark binary uses part of this module.
#[allow(dead_code)]
pub fn bench_config(data_dir: &std::path::Path, plugins_dir: &std::path::Path) -> xcore::Config {
    let mut config = xcore::Config {
        profile: xcore::config::Profile::Development,
        ..xcore::Config::default()
    };
    config.database.url = format!("sqlite://{}/bench.db", data_dir.display());
    config.plugins.dir = plugins_dir.display().to_string();
    config.rate_limits.enabled = false;
    config.log.filter = "error".into();
    config.admin.email = BENCH_EMAIL.into();
    config.admin.password = BENCH_PASSWORD.into();
    config
}

/// The bench administrator's credentials.
#[allow(dead_code)]
pub const BENCH_EMAIL: &str = "bench@example.com";
#[allow(dead_code)]
pub const BENCH_PASSWORD: &str = "BenchPassw0rd!";

/// An access token for the bench administrator on the server at `base`.
#[allow(dead_code)]
pub async fn bench_token(client: &reqwest::Client, base: &str) -> String {
    let login: serde_json::Value = client
        .post(format!("{base}/auth/login"))
        .form(&[("username", BENCH_EMAIL), ("password", BENCH_PASSWORD)])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("token");
    login["access_token"].as_str().expect("token").to_string()
}

/// Client connections each throughput round keeps busy.
#[allow(dead_code)]
pub const CONNECTIONS: usize = 32;

/// How long one throughput round lasts.
#[allow(dead_code)]
pub const ROUND: std::time::Duration = std::time::Duration::from_secs(1);

/// Requests per second on `url` (as `token` when given) with
/// [`CONNECTIONS`] clients for one [`ROUND`]; only 2xx answers whose body
/// arrived count.
#[allow(dead_code)]
pub async fn throughput(client: &reqwest::Client, url: &str, token: Option<&str>) -> f64 {
    let bearer = token.map(|token| format!("Bearer {token}"));
    throughput_with(
        client,
        url,
        bearer.as_deref().map(|value| ("authorization", value)),
    )
    .await
}

/// [`throughput`] with one credential header `(name, value)` when given:
/// a Bearer token, or an `X-API-Key`.
#[allow(dead_code)]
pub async fn throughput_with(
    client: &reqwest::Client,
    url: &str,
    credential: Option<(&'static str, &str)>,
) -> f64 {
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    };
    let done = Arc::new(AtomicU64::new(0));
    let deadline = std::time::Instant::now() + ROUND;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.to_string(), done.clone());
            let credential = credential.map(|(name, value)| (name, value.to_string()));
            tokio::spawn(async move {
                while std::time::Instant::now() < deadline {
                    let mut request = client.get(&url);
                    if let Some((name, value)) = &credential {
                        request = request.header(*name, value);
                    }
                    if let Ok(response) = request.send().await {
                        if response.status().is_success() && response.bytes().await.is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64()
}

/// The median of `values` (the upper one of an even count).
#[allow(dead_code)]
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Megabytes (10^6 bytes, the unit the targets are written in) per MiB.
#[allow(dead_code)]
pub const MB_PER_MIB: f64 = 1.048_576;

/// How a measured figure compares with its target.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// Met when the measured figure is at most the target (latencies, memory).
    AtMost(f64),
    /// Met when the measured figure is at least the target (ratios, rates).
    AtLeast(f64),
}

/// Prints one target line, `TARGET bench | what | target | measured | verdict`,
/// and appends it to the file named by `XCORE_BENCH_TARGETS` when set, so
/// the `all` benchmark can print every target of a run in one table.
/// `unit` follows both numbers (`ms`, `MiB`, `x`, `s`).
#[allow(dead_code)]
pub fn report_target(bench: &str, what: &str, goal: Goal, measured: f64, unit: &str) {
    let (target, met) = match goal {
        Goal::AtMost(limit) => (format!("<= {limit} {unit}"), measured <= limit),
        Goal::AtLeast(floor) => (format!(">= {floor} {unit}"), measured >= floor),
    };
    let verdict = if met { "met" } else { "NOT MET" };
    let line = format!("{bench}\t{what}\t{target}\t{measured:.2} {unit}\t{verdict}");
    println!("TARGET {}", line.replace('\t', " | "));
    if let Some(path) = std::env::var_os("XCORE_BENCH_TARGETS") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("the targets file");
        writeln!(file, "{line}").expect("write the targets file");
    }
}

/// Request latencies of one kind, reported as p50/p90/p99 in ms.
#[allow(dead_code)]
pub struct Latencies(pub Vec<std::time::Duration>);

#[allow(dead_code)]
impl Latencies {
    /// The `q` quantile in milliseconds.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }

    /// Reports p50 and p99 against their targets (see [`report_target`]).
    pub fn report_targets(&self, bench: &str, what: &str, p50_ms: f64, p99_ms: f64) {
        let p50 = format!("{what}: p50");
        report_target(bench, &p50, Goal::AtMost(p50_ms), self.quantile(0.5), "ms");
        let p99 = format!("{what}: p99");
        report_target(bench, &p99, Goal::AtMost(p99_ms), self.quantile(0.99), "ms");
    }

    /// Reports p50 alone against its target (for pages whose target is
    /// a median, like a dashboard).
    pub fn report_p50_target(&self, bench: &str, what: &str, p50_ms: f64) {
        let p50 = format!("{what}: p50");
        report_target(bench, &p50, Goal::AtMost(p50_ms), self.quantile(0.5), "ms");
    }

    /// Prints one line: `what`, then p50, p90 and p99.
    pub fn report(&self, what: &str) {
        println!(
            "{what:<64} p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms",
            self.quantile(0.5),
            self.quantile(0.9),
            self.quantile(0.99)
        );
    }
}

/// GETs each of `urls` one at a time (with `token` as Bearer when given),
/// checks each answered 2xx, and returns the latencies and what `total`
/// reads off each JSON body (the match count, to show a query's breadth).
#[allow(dead_code)]
pub async fn measure_gets(
    client: &reqwest::Client,
    token: Option<&str>,
    urls: impl Iterator<Item = String>,
    total: impl Fn(&serde_json::Value) -> i64,
) -> (Latencies, Vec<i64>) {
    let mut latencies = Vec::new();
    let mut totals = Vec::new();
    for url in urls {
        let started = std::time::Instant::now();
        let mut request = client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("json");
        latencies.push(started.elapsed());
        assert!(status.is_success(), "{url}: {status} {body}");
        totals.push(total(&body));
    }
    (Latencies(latencies), totals)
}

/// [`measure_gets`] of a plugin's standard list body (`{"items", "total"}`)
/// as `token`, with each page's `total`.
#[allow(dead_code)]
pub async fn measure_list(
    client: &reqwest::Client,
    token: &str,
    urls: impl Iterator<Item = String>,
) -> (Latencies, Vec<i64>) {
    measure_gets(client, Some(token), urls, |body| {
        body["total"].as_i64().unwrap_or(1)
    })
    .await
}

/// A fresh database on the PostgreSQL server at `admin_url`: its URL and
/// name, for [`drop_database`].
#[allow(dead_code)]
pub async fn create_database(admin_url: &str) -> (String, String) {
    let name = format!("xcore_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(admin_url).await.expect("connect");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create database");
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    (format!("{base}/{name}"), name)
}

/// Drops a database [`create_database`] made.
#[allow(dead_code)]
pub async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}

/// A real listening server for a benchmark, on SQLite, or on a scratch
/// PostgreSQL database when `XCORE_BENCH_DATABASE_URL` names a server;
/// with a client and the bench admin's token.
#[allow(dead_code)]
pub struct BenchServer {
    /// The server's state (its pool, for seeding by SQL).
    pub state: xcore::AppState,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The client the benchmark times.
    pub client: reqwest::Client,
    /// The bench admin's access token.
    pub token: String,
    /// `SQLite` or `PostgreSQL`, for the report.
    pub backend: &'static str,
    /// The scratch PostgreSQL database's URL, when on PostgreSQL.
    pub postgres_url: Option<String>,
    /// `(admin URL, name)` of the scratch database, dropped by `stop`.
    scratch: Option<(String, String)>,
}

#[allow(dead_code)]
impl BenchServer {
    /// Starts the server with `config` and a client whose requests time out
    /// after `client_timeout`.
    pub async fn start(mut config: xcore::Config, client_timeout: std::time::Duration) -> Self {
        let admin_url = std::env::var("XCORE_BENCH_DATABASE_URL")
            .ok()
            .filter(|url| url.starts_with("postgres"));
        let mut scratch = None;
        if let Some(admin_url) = admin_url {
            let (url, name) = create_database(&admin_url).await;
            config.database.url = url;
            scratch = Some((admin_url, name));
        }
        let postgres_url = scratch.as_ref().map(|_| config.database.url.clone());
        let state = xcore::AppState::build(config).await.expect("state");
        let base = format!("http://{}", serve(state.clone()).await);
        let client = reqwest::Client::builder()
            .timeout(client_timeout)
            .build()
            .expect("client");
        let token = bench_token(&client, &base).await;
        Self {
            state,
            base,
            client,
            token,
            backend: if scratch.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            postgres_url,
            scratch,
        }
    }

    /// Closes the pool and drops the scratch database, if any.
    pub async fn stop(self) {
        self.state.db.close().await;
        if let Some((admin_url, name)) = self.scratch {
            drop_database(&admin_url, &name).await;
        }
    }

    /// Stops the server; with `XCORE_BENCH_KEEP=<dir>` the database is kept
    /// for timing statements by hand: SQLite's file (`bench.db` in
    /// `data_dir`) is copied to `<dir>`, the PostgreSQL scratch database is
    /// left in place (its URL printed).
    pub async fn keep_or_stop(self, data_dir: &std::path::Path) {
        match (
            std::env::var_os("XCORE_BENCH_KEEP"),
            self.postgres_url.clone(),
        ) {
            (Some(_), Some(url)) => println!("kept PostgreSQL database: {url}"),
            (Some(dir), None) => {
                self.stop().await;
                std::fs::create_dir_all(&dir).expect("keep dir");
                let kept = std::path::Path::new(&dir).join("bench.db");
                std::fs::copy(data_dir.join("bench.db"), &kept).expect("keep database");
                println!("kept SQLite database: {}", kept.display());
            }
            (None, _) => self.stop().await,
        }
    }
}
