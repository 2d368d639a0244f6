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
