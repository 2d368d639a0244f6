//! Leads plugin benchmarks, run with `cargo bench -p xcore --bench leads`.
//!
//! One server with the release `libxcore_plugin_leads.so` on a fresh
//! database: SQLite by default, or a new database on the PostgreSQL server
//! `XCORE_BENCH_DATABASE_URL` points at (created for the run, dropped
//! after).
//!
//! 1. Seeds 200,000 leads with multi-row SQL inserts through the host's
//!    pool (the FTS triggers and indexes do their work as for API writes;
//!    the API has no bulk route to time here).
//! 2. Latency over HTTP, one request at a time, p50/p90/p99 of
//!    [`SAMPLES`] requests per line, for the lists users ask for: broad
//!    and narrow, early and deep pages (a full-text search with a status
//!    filter and a sort by score, the word changing per request, each in
//!    1/40 of the leads; status + source sorted by created_at; the
//!    unfiltered list; `/status/{status}`; a deep page sorted by
//!    updated_at; a search alone; two words; source + score range), then
//!    `/stats/overview`. Measured as loaded, then again after `ANALYZE`
//!    (SQLite; production never has these statistics, a plugin cannot run
//!    `ANALYZE`) or `VACUUM ANALYZE` (PostgreSQL, what autovacuum does
//!    soon after a load).
//! 3. `GET /export?format=csv` of all 200,000 leads: time, size, and the
//!    growth of the process's resident memory while it runs (sampled
//!    every 5 ms; the client discards the body as it arrives).
//! 4. A campaign over 10,000 leads delivered to a local webhook (an axum
//!    server answering 200): time from activation to the last delivery.
//!
//! Numbers only: nothing fails on a slow machine. Client and server share
//! the machine's cores.

mod support;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use xcore::AppState;

const LEADS: usize = 200_000;
const CAMPAIGN_LEADS: usize = 10_000;
const SAMPLES: usize = 400;
const INSERT_ROWS: usize = 1_000;

const NOUNS: [&str; 40] = [
    "boulangerie",
    "pharmacie",
    "garage",
    "cabinet",
    "agence",
    "atelier",
    "studio",
    "clinique",
    "librairie",
    "fromagerie",
    "brasserie",
    "restaurant",
    "hotel",
    "camping",
    "ecole",
    "academie",
    "imprimerie",
    "menuiserie",
    "plomberie",
    "electricite",
    "toiture",
    "jardinerie",
    "fleuriste",
    "opticien",
    "dentiste",
    "notaire",
    "avocat",
    "comptable",
    "architecte",
    "transport",
    "logistique",
    "boucherie",
    "poissonnerie",
    "epicerie",
    "cave",
    "salon",
    "institut",
    "pressing",
    "laverie",
    "cordonnerie",
];
const TOWNS: [&str; 25] = [
    "paris",
    "lyon",
    "marseille",
    "toulouse",
    "nice",
    "nantes",
    "strasbourg",
    "montpellier",
    "bordeaux",
    "lille",
    "rennes",
    "reims",
    "toulon",
    "grenoble",
    "dijon",
    "angers",
    "nimes",
    "villeurbanne",
    "clermont",
    "limoges",
    "tours",
    "amiens",
    "metz",
    "besancon",
    "perpignan",
];
const STATUSES: [&str; 5] = ["new", "new", "contacted", "qualified", "converted"];
const SOURCES: [&str; 5] = ["linkedin", "salon", "web", "import", "referral"];

/// The VALUES tuple of lead `n` (deterministic, so runs compare; only
/// letters, digits and spaces, so it is safe as SQL text).
fn lead_values(n: usize, niche: i64) -> String {
    let mixed = n.wrapping_mul(2_654_435_761) % 1_000_003;
    let noun = NOUNS[n % NOUNS.len()];
    let town = TOWNS[mixed % TOWNS.len()];
    let status = STATUSES[mixed % STATUSES.len()];
    let day = mixed % 700;
    let created = format!(
        "2025-{:02}-{:02}T{:02}:00:00.000000Z",
        day / 60 % 12 + 1,
        day % 28 + 1,
        mixed % 24
    );
    let converted = if status == "converted" {
        format!("'{created}'")
    } else {
        "NULL".into()
    };
    format!(
        "('{noun} {town} {n}', 'Contact {n}', 'lead{n}@{noun}{}.fr', 'lead{n}@{noun}{}.fr', '{}', {}, \
         '{status}', {}, '[\"{town}\"]', 'prospect {noun} a {town} rencontre {}', {converted}, '{created}', '{created}')",
        mixed % 1000,
        mixed % 1000,
        // Not `mixed % 5` like the status: the two would be the same key,
        // and a status + source filter would match 40,000 leads or none.
        SOURCES[(mixed / 5) % SOURCES.len()],
        niche,
        mixed % 101,
        TOWNS[(mixed / 7) % TOWNS.len()]
    )
}

async fn scalar(state: &AppState, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_one(state.db.pool())
        .await
        .expect("query")
        .try_get::<i64, _>(0)
        .expect("integer")
}

async fn latencies(client: &reqwest::Client, token: &str, api: &str, when: &str, bench_name: &str) {
    // Each line: a label (with the mean total) and its URLs.
    type Urls = Box<dyn Fn(usize) -> String>;
    let lines: Vec<(&str, Urls)> = vec![
        (
            "list: search + status + sort score",
            Box::new(move |i| {
                format!(
                    "?search={}&status=new&sort_by=score&sort_order=desc&page_size=20",
                    NOUNS[i % NOUNS.len()]
                )
            }),
        ),
        (
            "list: status + source + sort created_at, pages 1-20",
            Box::new(move |i| {
                format!(
                    "?status=contacted&source={}&sort_by=created_at&page={}&page_size=20",
                    SOURCES[i % SOURCES.len()],
                    i % 20 + 1
                )
            }),
        ),
        (
            "list: no filter, default sort, pages 1-20",
            Box::new(move |i| format!("?page={}&page_size=20", i % 20 + 1)),
        ),
        (
            "list: /status/{status}, default sort, pages 1-20",
            Box::new(move |i| {
                format!(
                    "/status/{}?page={}&page_size=20",
                    STATUSES[i % STATUSES.len()],
                    i % 20 + 1
                )
            }),
        ),
        (
            "list: status + sort updated_at, page 200",
            Box::new(move |i| {
                format!(
                    "?status={}&sort_by=updated_at&page=200&page_size=20",
                    STATUSES[i % STATUSES.len()]
                )
            }),
        ),
        (
            "list: search, default sort, pages 1-5",
            Box::new(move |i| {
                format!(
                    "?search={}&page={}&page_size=20",
                    NOUNS[i % NOUNS.len()],
                    i % 5 + 1
                )
            }),
        ),
        (
            "list: search 2 words + sort company",
            Box::new(move |i| {
                format!(
                    "?search={}%20{}&sort_by=company&sort_order=asc&page_size=20",
                    NOUNS[i % NOUNS.len()],
                    TOWNS[i % TOWNS.len()]
                )
            }),
        ),
        (
            "list: source + score_min + sort score, pages 1-5",
            Box::new(move |i| {
                format!(
                    "?source={}&score_min=90&sort_by=score&page={}&page_size=20",
                    SOURCES[i % SOURCES.len()],
                    i % 5 + 1
                )
            }),
        ),
    ];
    for (label, query) in lines {
        let (latencies, totals) = support::measure_list(
            client,
            token,
            (0..SAMPLES).map(|i| format!("{api}{}", query(i))),
        )
        .await;
        latencies.report(&format!(
            "{label} (~{} hits){when}",
            totals.iter().sum::<i64>() / totals.len() as i64
        ));
        latencies.report_targets(bench_name, &format!("{label}{when}"), 5.0, 20.0);
    }
    let (overview, _) = support::measure_list(
        client,
        token,
        (0..SAMPLES / 4).map(|_| format!("{api}/stats/overview")),
    )
    .await;
    overview.report(&format!("GET /stats/overview{when}"));
    // The leads issue's target for the overview.
    overview.report_p50_target(bench_name, &format!("GET /stats/overview{when}"), 50.0);
}

/// A local webhook answering 200 to every delivery; counts them.
async fn webhook() -> (SocketAddr, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, count)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let library = support::release_plugin("leads");
    let plugins = tempfile::tempdir().expect("plugins dir");
    let data = tempfile::tempdir().expect("data dir");
    std::fs::copy(&library, plugins.path().join("libxcore_plugin_leads.so")).expect("copy plugin");
    let (hook, delivered) = webhook().await;

    let mut config = support::bench_config(data.path(), plugins.path());
    config.plugins.settings.insert(
        "leads".into(),
        xcore::config::PluginSettings {
            http_allow: vec![format!("http://{hook}/")],
            ..Default::default()
        },
    );
    let server = support::BenchServer::start(config, Duration::from_secs(600)).await;
    let (state, base, client, token, backend, postgres_url) = (
        server.state.clone(),
        server.base.clone(),
        server.client.clone(),
        server.token.clone(),
        server.backend,
        server.postgres_url.clone(),
    );
    let api = format!("{base}/api/v1/leads");
    let bench_name = format!("leads ({backend})");
    println!(
        "xcore leads benchmark ({} cores, {backend}, {LEADS} leads)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Two niches through the API: the bulk, and the campaign's 10,000.
    let mut niches = Vec::new();
    for name in ["Commerces", "Campagne bench"] {
        let niche: Value = client
            .post(format!("{api}/niches"))
            .bearer_auth(&token)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("niche")
            .json()
            .await
            .expect("json");
        niches.push(niche["id"].as_i64().expect("niche id"));
    }

    // 1. Seed.
    let started = Instant::now();
    for chunk in 0..LEADS / INSERT_ROWS {
        let rows: Vec<String> = (chunk * INSERT_ROWS..(chunk + 1) * INSERT_ROWS)
            .map(|n| {
                lead_values(
                    n,
                    if n < CAMPAIGN_LEADS {
                        niches[1]
                    } else {
                        niches[0]
                    },
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO leads (company, contact_name, email, email_key, source, niche_id, status, score, tags, notes, \
             converted_at, created_at, updated_at) VALUES {}",
            rows.join(", ")
        );
        sqlx::query(&sql)
            .execute(state.db.pool())
            .await
            .expect("seed");
    }
    println!(
        "seeded {LEADS} leads with SQL in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "process RSS after seeding (server and client): {:.1} MiB",
        support::rss_mib("self")
    );

    // Warm-up, then 2. latencies.
    let _ = support::measure_list(
        &client,
        &token,
        (0..50).map(|i| format!("{api}?search={}&page_size=20", NOUNS[i % NOUNS.len()])),
    )
    .await;
    // As loaded (SQLite never has statistics in production: a plugin
    // cannot run ANALYZE), then after (VACUUM) ANALYZE, which PostgreSQL's
    // autovacuum does soon after a load.
    latencies(&client, &token, &api, "", &bench_name).await;
    let analyze = if postgres_url.is_some() {
        "VACUUM ANALYZE leads"
    } else {
        "ANALYZE"
    };
    sqlx::query(analyze)
        .execute(state.db.pool())
        .await
        .expect("analyze");
    latencies(
        &client,
        &token,
        &api,
        &format!(" [after {analyze}]"),
        &bench_name,
    )
    .await;

    // 3. Export all leads as CSV, sampling RSS while it runs.
    let before = support::rss_mib("self");
    let peak = Arc::new(AtomicU64::new(before.to_bits()));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, running) = (peak.clone(), running.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let now = support::rss_mib("self");
                if now > f64::from_bits(peak.load(Ordering::Relaxed)) {
                    peak.store(now.to_bits(), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    let mut response = client
        .get(format!("{api}/export?format=csv"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("export");
    assert!(
        response.status().is_success(),
        "export: {}",
        response.status()
    );
    let mut bytes = 0_usize;
    let mut lines = 0_usize;
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let elapsed = started.elapsed();
    running.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let peak = f64::from_bits(peak.load(Ordering::Relaxed));
    println!(
        "GET /export?format=csv of {LEADS} leads: {:.2} s, {:.1} MiB, {lines} lines; RSS {before:.1} -> peak {peak:.1} MiB (+{:.1} MiB)",
        elapsed.as_secs_f64(),
        bytes as f64 / 1_048_576.0,
        peak - before
    );

    // 4. A campaign over the 10,000 leads of its niche.
    let campaign: Value = client
        .post(format!("{api}/campaigns"))
        .bearer_auth(&token)
        .json(&json!({"name": "Bench", "niche_id": niches[1], "channel": "email",
            "template": "Bonjour {{contact_name}} de {{company}}", "webhook_url": format!("http://{hook}/hook")}))
        .send()
        .await
        .expect("campaign")
        .json()
        .await
        .expect("json");
    let id = campaign["id"].as_i64().expect("campaign id");
    let started = Instant::now();
    let response = client
        .put(format!("{api}/campaigns/{id}/status"))
        .bearer_auth(&token)
        .json(&json!({"status": "active"}))
        .send()
        .await
        .expect("activate");
    assert!(
        response.status().is_success(),
        "activate: {}",
        response.status()
    );
    let count = format!("SELECT COUNT(*) FROM leads_deliveries WHERE campaign_id = {id}");
    while (scalar(&state, &count).await as usize) < CAMPAIGN_LEADS {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "the campaign did not finish"
        );
    }
    let elapsed = started.elapsed();
    println!(
        "campaign job over {CAMPAIGN_LEADS} leads to a local webhook: {:.2} s ({:.0} deliveries/s, webhook saw {})",
        elapsed.as_secs_f64(),
        CAMPAIGN_LEADS as f64 / elapsed.as_secs_f64(),
        delivered.load(Ordering::Relaxed)
    );

    server.stop().await;
}
