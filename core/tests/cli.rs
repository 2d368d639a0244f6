//! The real `xcore` binary: start-up refusals, `migrate`, `admin
//! create-user`, `serve` with the XCORE_* contract variables, and a clean
//! exit on SIGTERM.

mod common;

use std::{
    io::Write,
    net::TcpListener,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::{expect_status, TestDatabase};
use reqwest::StatusCode;
use serde_json::json;

const SECRET: &str = "cli-test-secret-cli-test-secret-0123456789";

/// The binary with a clean environment: no inherited XCORE_* variables, run
/// from a scratch directory so the repository's config is not picked up.
fn xcore(dir: &std::path::Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xcore"));
    for (key, _) in std::env::vars() {
        if key.starts_with("XCORE_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(dir)
        .env("XCORE_DATABASE_URL", database_url)
        .env("XCORE_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().expect("run xcore");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_the_development_secret_outside_development() {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::new().await;
    let (output, _, stderr) = run(xcore(dir.path(), &db.url).arg("serve"));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("development secret") && stderr.contains("XCORE_JWT_SECRET"),
        "{stderr}"
    );

    let (output, _, stderr) = run(xcore(dir.path(), &db.url)
        .env("XCORE_JWT_SECRET", "short")
        .arg("serve"));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_config_file_stops_start_up_with_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::new().await;
    let path = dir.path().join("broken.toml");
    let mut file = std::fs::File::create(&path).expect("create");
    writeln!(
        file,
        "[server]\nbind = \"127.0.0.1:0\"\nmax_body_bytes = \"lots\""
    )
    .expect("write");
    let (output, _, stderr) =
        run(xcore(dir.path(), &db.url).args(["--config", "broken.toml", "serve"]));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.toml") && stderr.contains("line 3"),
        "{stderr}"
    );

    let (output, _, stderr) = run(xcore(dir.path(), &db.url)
        .env("XCORE_CONFIG", "missing.toml")
        .arg("migrate"));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing.toml") && stderr.contains("not found"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_create_user_makes_an_admin() {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::new().await;
    let (output, stdout, stderr) = run(xcore(dir.path(), &db.url).arg("migrate"));
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "{} migration(s) applied",
            xcore::db::migrate::CORE_MIGRATIONS.len()
        )
    );
    let (_, stdout, _) = run(xcore(dir.path(), &db.url).arg("migrate"));
    assert_eq!(stdout.trim(), "0 migration(s) applied");

    let (output, stdout, stderr) = run(xcore(dir.path(), &db.url).args([
        "admin",
        "create-user",
        "--email",
        "Ops@Example.com",
        "--password",
        "OpsPassw0rd!",
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("ops@example.com") && stdout.contains("role admin"),
        "{stdout}"
    );

    let (output, _, stderr) = run(xcore(dir.path(), &db.url).args([
        "admin",
        "create-user",
        "--email",
        "ops@example.com",
        "--password",
        "OpsPassw0rd!",
    ]));
    assert!(!output.status.success());
    assert!(stderr.contains("already exists"), "{stderr}");

    let (output, _, stderr) = run(xcore(dir.path(), &db.url).args([
        "admin",
        "create-user",
        "--email",
        "x@example.com",
        "--password",
        "weak",
    ]));
    assert!(!output.status.success());
    assert!(stderr.contains("password"), "{stderr}");

    // The account works against a server started by the binary.
    let server = Server::start(dir.path(), &db.url, &[]).await;
    let tokens = server.login("ops@example.com", "OpsPassw0rd!").await;
    let me = server
        .client
        .get(server.url("/auth/me"))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("send");
    let me = expect_status(me, StatusCode::OK).await;
    assert_eq!(me["roles"], json!(["admin"]));
    // The audit log names the host, not an account, for the command line.
    let audit = server
        .client
        .get(server.url("/admin/audit?action=user.created"))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("send");
    let audit = expect_status(audit, StatusCode::OK).await;
    assert_eq!(audit["total"], 1, "{audit}");
    let row = &audit["items"][0];
    assert_eq!(row["actor"], "system", "{row}");
    assert_eq!(row["actor_id"], json!(null), "{row}");
    assert_eq!(row["target"], format!("user:{}", me["id"]), "{row}");
    assert_eq!(row["details"]["via"], "command line", "{row}");
    assert!(!audit.to_string().contains("OpsPassw0rd!"), "{audit}");
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_uses_the_contract_variables_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::new().await;
    let server = Server::start(
        dir.path(),
        &db.url,
        &[
            ("XCORE_ADMIN_EMAIL", "boot@example.com"),
            ("XCORE_ADMIN_PASSWORD", "BootPassw0rd!"),
            ("XCORE_RATE_LIMITS", "off"),
        ],
    )
    .await;
    println!("cold start to first /health 200: {:?}", server.cold_start);
    let tokens = server.login("boot@example.com", "BootPassw0rd!").await;
    assert_eq!(tokens["token_type"], "bearer");
    let response = server
        .client
        .get(server.url("/auth/me"))
        .send()
        .await
        .expect("send");
    assert!(
        response.headers().get("x-ratelimit-limit").is_none(),
        "XCORE_RATE_LIMITS=off"
    );
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_or_hash_reaches_the_logs() {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDatabase::new().await;
    let log_path = dir.path().join("server.log");
    let server = Server::start_logging(
        dir.path(),
        &db.url,
        &[
            ("XCORE_ADMIN_EMAIL", "boot@example.com"),
            ("XCORE_ADMIN_PASSWORD", "BootPassw0rd!"),
            ("XCORE_LOG", "debug"),
        ],
        Some(&log_path),
    )
    .await;
    let tokens = server.login("boot@example.com", "BootPassw0rd!").await;
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let rotated = server
        .client
        .post(server.url("/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .expect("send");
    let rotated = expect_status(rotated, StatusCode::OK).await;
    // An API key: created, used, and forged (right prefix, wrong secret).
    let created = server
        .client
        .post(server.url("/auth/api-keys"))
        .bearer_auth(rotated["access_token"].as_str().expect("access"))
        .json(&json!({"name": "logs", "permissions": ["users:read"]}))
        .send()
        .await
        .expect("send");
    let api_key = expect_status(created, StatusCode::CREATED).await["key"]
        .as_str()
        .expect("key")
        .to_string();
    // `xk_<prefix>_<secret>`: the secret is base64url and may itself hold
    // underscores, so it is everything after the second one.
    let api_secret = api_key.splitn(3, '_').nth(2).expect("secret").to_string();
    assert_eq!(api_secret.len(), 43, "a 256-bit secret: {api_key}");
    let forged = format!("{}{}", &api_key[..api_key.len() - 4], "AAAA");
    for key in [&api_key, &forged] {
        server
            .client
            .get(server.url("/admin/users"))
            .header("x-api-key", key)
            .send()
            .await
            .expect("send");
    }
    // A token in the query string must not be logged either.
    server
        .client
        .get(server.url(&format!("/auth/me?token={access}")))
        .send()
        .await
        .expect("send");
    server
        .client
        .post(server.url("/auth/password/reset"))
        .json(&json!({"email": "boot@example.com"}))
        .send()
        .await
        .expect("send");
    server
        .client
        .post(server.url("/auth/logout"))
        .bearer_auth(rotated["access_token"].as_str().expect("access"))
        .send()
        .await
        .expect("send");
    server.terminate();

    let log = std::fs::read_to_string(&log_path).expect("log file");
    assert!(
        log.contains("user logged in"),
        "the log was captured: {log}"
    );
    assert!(log.contains("password reset requested"), "{log}");
    assert!(log.contains("API key created"), "{log}");
    let secrets = [
        ("password", "BootPassw0rd!".to_string()),
        ("access token", access),
        ("refresh token", refresh),
        (
            "rotated access token",
            rotated["access_token"].as_str().expect("a").to_string(),
        ),
        (
            "rotated refresh token",
            rotated["refresh_token"].as_str().expect("r").to_string(),
        ),
        ("argon2 hash", "$argon2".to_string()),
        ("API key secret", api_secret),
        ("forged API key", forged),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "the log contains the {what}");
    }
}

/// `xcore serve` as a child process on a free loopback port.
struct Server {
    child: std::process::Child,
    base: String,
    client: reqwest::Client,
    cold_start: Duration,
}

impl Server {
    async fn start(dir: &std::path::Path, database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_logging(dir, database_url, env, None).await
    }

    /// Starts with stderr (the log) written to `log_file` when given.
    async fn start_logging(
        dir: &std::path::Path,
        database_url: &str,
        env: &[(&str, &str)],
        log_file: Option<&std::path::Path>,
    ) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("probe")
            .local_addr()
            .expect("addr")
            .port();
        let started = Instant::now();
        let mut command = xcore(dir, database_url);
        command
            .env("XCORE_BIND", format!("127.0.0.1:{port}"))
            .env("XCORE_JWT_SECRET", SECRET)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(match log_file {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
                None => Stdio::inherit(),
            });
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn xcore serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(format!("{base}/health")).send().await {
                if response.status() == StatusCode::OK {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "xcore serve did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            base,
            client,
            cold_start: started.elapsed(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let response = self
            .client
            .post(self.url("/auth/login"))
            .form(&[("username", email), ("password", password)])
            .send()
            .await
            .expect("send");
        expect_status(response, StatusCode::OK).await
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "xcore did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
