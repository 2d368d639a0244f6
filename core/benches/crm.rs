//! CRM plugin benchmarks, run with `cargo bench -p xcore --bench crm`.
//!
//! One server with the release `libxcore_plugin_crm.so` (and the products
//! plugin it depends on) on a fresh database: SQLite by default, or a new
//! database on the PostgreSQL server `XCORE_BENCH_DATABASE_URL` points at
//! (created for the run, dropped after).
//!
//! 1. Seeds [`CUSTOMERS`] customers, [`OPPORTUNITIES`] opportunities in
//!    the default pipeline and [`ACTIVITIES`] activities with multi-row
//!    `INSERT`s straight into the plugin's tables (the API has no bulk
//!    route for them; the FTS5 triggers and the `tsvector` column still
//!    do their work on every row). `XCORE_BENCH_CRM_SCALE` (a divisor,
//!    default 1) seeds less for a quick run. The plugin's
//!    `rebuild_totals` job then computes the dashboard's running totals,
//!    which rows written past the API do not update.
//!    `XCORE_BENCH_KEEP=<dir>` keeps the seeded database afterwards, for
//!    timing statements by hand.
//! 2. Latency over HTTP, one request at a time, p50/p90/p99:
//!    - `GET /customers` with a full-text search + `type` + sort by name
//!      (the search word changes per request: 40 words, each in 2.5% of
//!      the customers);
//!    - `GET /customers` with `owner_id` + `type` + sort by creation;
//!    - `GET /opportunities?status=open&sort_by=amount`;
//!    - `GET /dashboard` and `GET /dashboard?owner=`.
//! 3. `GET /customers/export` of every customer: time, bytes and the
//!    process's peak RSS growth during it (peak reset before through
//!    `/proc/self/clear_refs`; the client counts the body without keeping
//!    it).
//!
//! Numbers only: nothing fails on a slow machine. Client and server share
//! the machine's cores.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CUSTOMERS: usize = 100_000;
const OPPORTUNITIES: usize = 200_000;
const ACTIVITIES: usize = 500_000;
const SAMPLES: usize = 300;
/// Rows per seeding statement.
const CHUNK: usize = 1_000;

/// Nouns: each names 1/40 of the customers.
const NOUNS: [&str; 40] = [
    "atelier",
    "boulangerie",
    "cabinet",
    "garage",
    "pharmacie",
    "librairie",
    "hotel",
    "restaurant",
    "agence",
    "studio",
    "clinique",
    "ecole",
    "ferme",
    "brasserie",
    "fromagerie",
    "menuiserie",
    "plomberie",
    "imprimerie",
    "pressing",
    "fleuriste",
    "epicerie",
    "boucherie",
    "cordonnerie",
    "bijouterie",
    "opticien",
    "traiteur",
    "laboratoire",
    "chantier",
    "domaine",
    "manufacture",
    "fonderie",
    "scierie",
    "quincaillerie",
    "droguerie",
    "parfumerie",
    "papeterie",
    "tannerie",
    "verrerie",
    "poterie",
    "distillerie",
];
const CITIES: [&str; 10] = [
    "paris",
    "lyon",
    "marseille",
    "lille",
    "nantes",
    "bordeaux",
    "toulouse",
    "nice",
    "rennes",
    "dijon",
];
const KINDS: [&str; 5] = ["call", "meeting", "task", "email", "note"];

/// A cheap mix so neighbouring numbers get unrelated values.
fn mix(n: usize) -> usize {
    n.wrapping_mul(2_654_435_761) % 1_000_003
}

/// A timestamp `days` days (and some seconds) before 2026-12-01 (after
/// it when negative).
fn stamp(days: i64, seconds: usize) -> String {
    let base = 1_796_083_200_i64; // 2026-12-01T00:00:00Z
    let at = base - days * 86_400 - (seconds % 86_400) as i64;
    xcore_plugin_sdk::time::format_unix(at, 0)
}

async fn seed(pool: &sqlx::AnyPool, scale: usize, stages: &[(i64, &'static str, i64)]) {
    let customers = CUSTOMERS / scale;
    let opportunities = OPPORTUNITIES / scale;
    let activities = ACTIVITIES / scale;
    let started = Instant::now();
    for chunk in (0..customers).collect::<Vec<_>>().chunks(CHUNK) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let n = i + 1;
                let m = mix(n);
                let kind = if m % 10 < 3 { "company" } else { "person" };
                let tags = if m % 10 == 0 { "[\"vip\"]" } else { "[]" };
                let created = stamp((m % 730) as i64, m);
                format!(
                    "('{kind}', '{} {} {n}', 'c{n}@example{}.com', '+33 1 {:08}', '{tags}', {}, \
                     'client depuis {} a {}', '{created}', '{created}')",
                    NOUNS[n % NOUNS.len()],
                    CITIES[m % CITIES.len()],
                    m % 50,
                    m,
                    m % 20 + 1,
                    m % 30 + 1990,
                    CITIES[(m / 7) % CITIES.len()],
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO crm_customers (type, name, email, phone, tags, owner_id, notes, created_at, updated_at) VALUES {}",
            rows.join(", ")
        ))
        .execute(pool)
        .await
        .expect("seed customers");
    }
    println!(
        "seeded {customers} customers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    for chunk in (0..opportunities).collect::<Vec<_>>().chunks(CHUNK) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let n = i + 1;
                let m = mix(n + 7);
                let (stage, kind, _) = stages[m % stages.len()];
                let status = match kind {
                    "won" => "won",
                    "lost" => "lost",
                    _ => "open",
                };
                let created_days = m % 400 + 30;
                let created = stamp(created_days as i64, m);
                let closed_days = created_days.saturating_sub(m % 60 + 1);
                let (closed, cycle) = if status == "open" {
                    ("NULL".to_string(), "NULL".to_string())
                } else {
                    (
                        format!("'{}'", stamp(closed_days as i64, m)),
                        ((created_days - closed_days) * 86_400).to_string(),
                    )
                };
                let close_month = m % 18;
                format!(
                    "('Affaire {n}', {}, 1, {stage}, {}, 'EUR', '{}-{:02}-15', {}, '{status}', {closed}, {cycle}, 'seed-{n}', '{created}', '{created}')",
                    m % customers + 1,
                    (m % 5_000_000) + 10_000,
                    2026 + close_month / 12,
                    close_month % 12 + 1,
                    m % 20 + 1,
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO crm_opportunities (title, customer_id, pipeline_id, stage_id, amount_cents, currency, \
             expected_close, owner_id, status, closed_at, cycle_seconds, create_key, created_at, updated_at) VALUES {}",
            rows.join(", ")
        ))
        .execute(pool)
        .await
        .expect("seed opportunities");
    }
    println!(
        "seeded {opportunities} opportunities in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    for chunk in (0..activities).collect::<Vec<_>>().chunks(CHUNK) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let n = i + 1;
                let m = mix(n + 13);
                let opportunity = if m % 2 == 0 {
                    (m % opportunities + 1).to_string()
                } else {
                    "NULL".to_string()
                };
                // Due dates from a year ago to a year ahead.
                let due = stamp((m % 730) as i64 - 365, m);
                let done = if m % 3 == 0 { "FALSE" } else { "TRUE" };
                let created = stamp((m % 400 + 1) as i64, m);
                format!(
                    "('{}', 'Suivi {n}', {}, {opportunity}, '{due}', {}, {done}, '{created}', '{created}')",
                    KINDS[m % KINDS.len()],
                    m % customers + 1,
                    m % 20 + 1,
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO crm_activities (kind, subject, customer_id, opportunity_id, due_at, assignee_id, done, created_at, updated_at) VALUES {}",
            rows.join(", ")
        ))
        .execute(pool)
        .await
        .expect("seed activities");
    }
    println!(
        "seeded {activities} activities in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The deals were written straight into the table, past the plugin's
/// running totals: the plugin's `rebuild_totals` job computes them, as an
/// operator would after such a load. Waits until they count every deal.
async fn rebuild_totals(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pool: &sqlx::AnyPool,
    deals: usize,
) {
    let started = Instant::now();
    for (path, body) in [
        (
            "/system/tasks".to_string(),
            Some(
                json!({"id": "crm_totals", "name": "Rebuild totals", "type": "interval",
                        "interval": {"hours": 24}, "job": "crm.rebuild_totals"}),
            ),
        ),
        ("/system/tasks/crm_totals/run".to_string(), None),
    ] {
        let mut request = client.post(format!("{base}{path}")).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("task");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    loop {
        let counted: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(deals) AS BIGINT) FROM crm_deal_totals WHERE owner_key = -1",
        )
        .fetch_one(pool)
        .await
        .expect("totals");
        if counted == Some(deals as i64) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the totals were not rebuilt"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "rebuilt the dashboard totals of {deals} opportunities in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn average(totals: &[i64]) -> i64 {
    totals.iter().sum::<i64>() / totals.len().max(1) as i64
}

async fn latencies(client: &reqwest::Client, token: &str, api: &str, when: &str, bench_name: &str) {
    let (searched, totals) = support::measure_list(
        client,
        token,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/customers?search={}&type=company&sort_by=name&order=asc&page_size=20",
                NOUNS[i % NOUNS.len()]
            )
        }),
    )
    .await;
    searched.report(&format!(
        "customers: search + type + sort name (~{} hits){when}",
        average(&totals)
    ));
    searched.report_targets(
        bench_name,
        &format!("customers: search + type + sort name{when}"),
        5.0,
        20.0,
    );
    let (filtered, totals) = support::measure_list(
        client,
        token,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/customers?owner_id={}&type=person&sort_by=created_at&order=desc&page={}&page_size=20",
                i % 20 + 1,
                i % 10 + 1
            )
        }),
    )
    .await;
    filtered.report(&format!(
        "customers: owner + type + sort created_at, pages 1-10 (~{} hits){when}",
        average(&totals)
    ));
    filtered.report_targets(
        bench_name,
        &format!("customers: owner + type + sort created_at, pages 1-10{when}"),
        5.0,
        20.0,
    );
    let (deals, totals) = support::measure_list(
        client,
        token,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/opportunities?status=open&owner_id={}&sort_by=amount&order=desc&page_size=20",
                i % 20 + 1
            )
        }),
    )
    .await;
    deals.report(&format!(
        "opportunities: open + owner + sort amount (~{} hits){when}",
        average(&totals)
    ));
    deals.report_targets(
        bench_name,
        &format!("opportunities: open + owner + sort amount{when}"),
        5.0,
        20.0,
    );
    let (dashboard, _) = support::measure_list(
        client,
        token,
        (0..SAMPLES / 3).map(|_| format!("{api}/dashboard")),
    )
    .await;
    dashboard.report(&format!("GET /dashboard (everyone){when}"));
    // The CRM issue's target for the dashboard.
    dashboard.report_p50_target(bench_name, &format!("GET /dashboard{when}"), 50.0);
    let (dashboard, _) = support::measure_list(
        client,
        token,
        (0..SAMPLES / 3).map(|i| format!("{api}/dashboard?owner={}", i % 20 + 1)),
    )
    .await;
    dashboard.report(&format!("GET /dashboard?owner={{id}}{when}"));
}

async fn export(client: &reqwest::Client, token: &str, api: &str) {
    // Resets VmHWM to the current RSS, so the peak below is the export's.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = support::rss_mib("self");
    let started = Instant::now();
    let mut response = client
        .get(format!("{api}/customers/export"))
        .bearer_auth(token)
        .send()
        .await
        .expect("export");
    assert!(
        response.status().is_success(),
        "export: {}",
        response.status()
    );
    let (mut bytes, mut lines) = (0_usize, 0_usize);
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let elapsed = started.elapsed();
    println!(
        "GET /customers/export: {} rows, {:.1} MiB in {:.2} s; RSS before {:.1} MiB, peak during {:.1} MiB (growth {:.1} MiB{})",
        lines.saturating_sub(1),
        bytes as f64 / 1_048_576.0,
        elapsed.as_secs_f64(),
        before,
        support::status_mib("self", "VmHWM"),
        support::status_mib("self", "VmHWM") - before,
        if reset { "" } else { ", peak not reset: growth is an upper bound" }
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let release = support::build_release_plugins(&["xcore-plugin-products", "xcore-plugin-crm"]);
    let plugins = tempfile::tempdir().expect("plugins dir");
    let data = tempfile::tempdir().expect("data dir");
    for lib in ["libxcore_plugin_products.so", "libxcore_plugin_crm.so"] {
        std::fs::copy(release.join(lib), plugins.path().join(lib)).expect("copy plugin");
    }
    let scale: usize = std::env::var("XCORE_BENCH_CRM_SCALE")
        .ok()
        .and_then(|raw| raw.parse().ok())
        .filter(|scale| *scale >= 1)
        .unwrap_or(1);

    let config = support::bench_config(data.path(), plugins.path());
    let server = support::BenchServer::start(config, Duration::from_secs(600)).await;
    let (state, base, client, token, backend, postgres_url) = (
        server.state.clone(),
        server.base.clone(),
        server.client.clone(),
        server.token.clone(),
        server.backend,
        server.postgres_url.clone(),
    );
    let api = format!("{base}/api/v1/crm");
    let bench_name = format!("crm ({backend})");
    println!(
        "xcore crm benchmark ({} cores, {backend}, {} customers, {} opportunities, {} activities)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        CUSTOMERS / scale,
        OPPORTUNITIES / scale,
        ACTIVITIES / scale
    );

    // The default pipeline's stages, from the API.
    let pipelines: Value = client
        .get(format!("{api}/pipelines"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("pipelines")
        .json()
        .await
        .expect("json");
    let stages: Vec<(i64, &'static str, i64)> = pipelines["items"][0]["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|stage| {
            let kind = match stage["kind"].as_str() {
                Some("won") => "won",
                Some("lost") => "lost",
                _ => "open",
            };
            (
                stage["id"].as_i64().expect("id"),
                kind,
                stage["probability"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    seed(state.db.pool(), scale, &stages).await;
    rebuild_totals(
        &client,
        &base,
        &token,
        state.db.pool(),
        OPPORTUNITIES / scale,
    )
    .await;
    println!(
        "process RSS after seeding: {:.1} MiB",
        support::rss_mib("self")
    );

    // Warm-up: caches, the plugin's dialect lookup, connections.
    let _ = support::measure_list(
        &client,
        &token,
        (0..30).map(|i| {
            format!(
                "{api}/customers?search={}&page_size=20",
                NOUNS[i % NOUNS.len()]
            )
        }),
    )
    .await;
    latencies(&client, &token, &api, "", &bench_name).await;
    if let Some(url) = postgres_url.clone() {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        for table in [
            "crm_customers",
            "crm_opportunities",
            "crm_activities",
            "crm_stages",
        ] {
            sqlx::query(&format!("VACUUM ANALYZE {table}"))
                .execute(&pool)
                .await
                .expect("vacuum analyze");
        }
        pool.close().await;
        latencies(
            &client,
            &token,
            &api,
            " [after VACUUM ANALYZE]",
            &bench_name,
        )
        .await;
    }
    export(&client, &token, &api).await;

    server.keep_or_stop(data.path()).await;
}
