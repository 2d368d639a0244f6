//! Helpers shared by the benchmark binaries.

/// Resident set size in MiB of `process` (`"self"` or a pid), from /proc.
#[allow(dead_code)]
pub fn rss_mib(process: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
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
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    };
    let done = Arc::new(AtomicU64::new(0));
    let deadline = std::time::Instant::now() + ROUND;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.to_string(), done.clone());
            let token = token.map(str::to_string);
            tokio::spawn(async move {
                while std::time::Instant::now() < deadline {
                    let mut request = client.get(&url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
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
