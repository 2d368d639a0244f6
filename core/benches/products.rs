//! Products plugin benchmarks, run with `cargo bench -p xcore --bench products`.
//!
//! One server with the release `libxcore_plugin_products.so` on a fresh
//! database: SQLite by default, or a new database on the PostgreSQL server
//! `XCORE_BENCH_DATABASE_URL` points at (created for the run, dropped after).
//!
//! 1. Seeds 100,000 products with ten `POST /bulk` requests of 10,000 each,
//!    timing every request (the first into an empty table, the last into
//!    90,000 rows).
//! 2. Latency over HTTP, one request at a time, p50/p90/p99 of
//!    [`SAMPLES`] requests each:
//!    - a list with full-text search + a status filter + a sort by price
//!      (the search word changes per request: 40 words, each in 2.5% of
//!      the products);
//!    - the same with a two-word search (prefix on the second word);
//!    - a plain list: filter + sort, no search;
//!    - `GET /{id}` of random products.
//!
//!    On PostgreSQL the lines are measured twice: right after the loads,
//!    before the server has statistics on the new rows, and again after
//!    `VACUUM ANALYZE` (what autovacuum does soon after in a live system).
//!
//! Numbers only: nothing fails on a slow machine. Client and server share
//! the machine's cores.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BULKS: usize = 10;
const PER_BULK: usize = 10_000;
const SAMPLES: usize = 400;

/// Nouns: each names 1/40 of the products.
const NOUNS: [&str; 40] = [
    "clavier",
    "souris",
    "ecran",
    "cable",
    "adaptateur",
    "casque",
    "enceinte",
    "micro",
    "webcam",
    "chargeur",
    "batterie",
    "disque",
    "memoire",
    "routeur",
    "switch",
    "imprimante",
    "scanner",
    "projecteur",
    "tablette",
    "stylet",
    "support",
    "sacoche",
    "hub",
    "lecteur",
    "graveur",
    "manette",
    "volant",
    "tapis",
    "lampe",
    "ventilateur",
    "boitier",
    "alimentation",
    "carte",
    "processeur",
    "radiateur",
    "onduleur",
    "camera",
    "montre",
    "balance",
    "telephone",
];

/// Adjectives: each names 1/25 of the products.
const ADJECTIVES: [&str; 25] = [
    "noir",
    "blanc",
    "rouge",
    "bleu",
    "vert",
    "compact",
    "robuste",
    "leger",
    "rapide",
    "silencieux",
    "ergonomique",
    "portable",
    "professionnel",
    "gaming",
    "sans-fil",
    "filaire",
    "mecanique",
    "optique",
    "premium",
    "standard",
    "mini",
    "maxi",
    "pliable",
    "etanche",
    "connecte",
];

const STATUSES: [&str; 3] = ["active", "active", "inactive"];

fn build_release_plugin(workspace: &std::path::Path) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "xcore-plugin-products",
        ])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the products plugin failed");
    workspace.join("target/release/libxcore_plugin_products.so")
}

/// Product number `n` of the seed: deterministic, so runs compare.
fn product(n: usize) -> Value {
    // A cheap mix so neighbouring numbers get unrelated words and prices.
    let mixed = n.wrapping_mul(2_654_435_761) % 1_000_003;
    let noun = NOUNS[n % NOUNS.len()];
    let adjective = ADJECTIVES[mixed % ADJECTIVES.len()];
    json!({
        "sku": format!("SKU-{n:06}"),
        "name": format!("{noun} {adjective} {}", mixed % 1000),
        "description": format!(
            "Un {noun} {adjective} de la gamme {}, garanti deux ans, livre en {} jours.",
            mixed % 97,
            mixed % 9 + 1
        ),
        "price": format!("{}.{:02}", mixed % 2000, mixed % 100),
        "stock": mixed % 500,
        "status": STATUSES[mixed % STATUSES.len()],
        "attributes": {"lot": n / 1000}
    })
}

/// The latency lines: lists with and without search, and `GET /{id}`;
/// `when` is appended to each label.
async fn latencies(client: &reqwest::Client, token: &str, api: &str, when: &str) {
    let (searched, totals) = measure(
        client,
        token,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/?search={}&status=active&sort_by=price&order=asc&page_size=20",
                NOUNS[i % NOUNS.len()]
            )
        }),
    )
    .await;
    searched.report(&format!(
        "list: search 1 word + status + sort price (~{} hits){when}",
        totals.iter().sum::<i64>() / totals.len() as i64
    ));
    let (two_words, totals) = measure(
        client,
        token,
        (0..SAMPLES).map(|i| {
            let adjective = ADJECTIVES[i % ADJECTIVES.len()];
            format!(
                "{api}/?search={}%20{}&status=active&sort_by=price&order=desc&page_size=20",
                NOUNS[i % NOUNS.len()],
                &adjective[..adjective.len().min(4)]
            )
        }),
    )
    .await;
    two_words.report(&format!(
        "list: search 2 words (prefix) + status + sort (~{} hits){when}",
        totals.iter().sum::<i64>() / totals.len() as i64
    ));
    let (plain, totals) = measure(
        client,
        token,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/?status=active&sort_by=price&order=asc&page={}&page_size=20",
                i % 50 + 1
            )
        }),
    )
    .await;
    plain.report(&format!(
        "list: no search, status + sort price, pages 1-50 (~{} hits){when}",
        totals.iter().sum::<i64>() / totals.len() as i64
    ));
    let total = (BULKS * PER_BULK) as u64;
    let (by_id, _) = measure(
        client,
        token,
        (0..SAMPLES as u64).map(|i| {
            let id = i.wrapping_mul(2_654_435_761) % total + 1;
            format!("{api}/{id}")
        }),
    )
    .await;
    by_id.report(&format!("GET /{{id}}{when}"));
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let workspace = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let library = build_release_plugin(&workspace);
    let plugins = tempfile::tempdir().expect("plugins dir");
    let data = tempfile::tempdir().expect("data dir");
    std::fs::copy(&library, plugins.path().join("libxcore_plugin_products.so"))
        .expect("copy plugin");

    let config = support::bench_config(data.path(), plugins.path());
    let server = support::BenchServer::start(config, Duration::from_secs(300)).await;
    let (base, client, token, backend, postgres_url) = (
        server.base.clone(),
        server.client.clone(),
        server.token.clone(),
        server.backend,
        server.postgres_url.clone(),
    );
    let api = format!("{base}/api/v1/products");

    println!(
        "xcore products benchmark ({} cores, {backend}, {} products)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        BULKS * PER_BULK
    );

    // 1. Seed with bulk requests, each timed.
    let mut bulk_times = Vec::new();
    for bulk in 0..BULKS {
        let products: Vec<Value> = (bulk * PER_BULK..(bulk + 1) * PER_BULK)
            .map(product)
            .collect();
        let body = serde_json::to_vec(&json!({ "products": products })).expect("body");
        let size = body.len();
        let started = Instant::now();
        let response = client
            .post(format!("{api}/bulk"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("bulk");
        let status = response.status();
        let answer: Value = response.json().await.expect("json");
        let elapsed = started.elapsed();
        assert!(status.is_success(), "bulk {bulk}: {status} {answer}");
        assert_eq!(answer["created"], PER_BULK);
        if bulk == 0 {
            println!(
                "POST /bulk of {PER_BULK} products ({:.1} MiB JSON) into an empty table: {:.0} ms",
                size as f64 / 1_048_576.0,
                elapsed.as_secs_f64() * 1000.0
            );
        }
        bulk_times.push(elapsed);
    }
    let mut sorted = bulk_times.clone();
    sorted.sort();
    println!(
        "POST /bulk of {PER_BULK}, {BULKS} requests (table growing to {}): median {:.0} ms, \
         slowest {:.0} ms, last (into {} rows) {:.0} ms",
        BULKS * PER_BULK,
        sorted[BULKS / 2].as_secs_f64() * 1000.0,
        sorted[BULKS - 1].as_secs_f64() * 1000.0,
        (BULKS - 1) * PER_BULK,
        bulk_times[BULKS - 1].as_secs_f64() * 1000.0
    );

    println!(
        "process RSS after seeding (server and client): {:.1} MiB",
        support::rss_mib("self")
    );

    // Warm-up: caches, the plugin's dialect lookup, connections.
    let _ = measure(
        &client,
        &token,
        (0..50).map(|i| format!("{api}/?search={}&page_size=20", NOUNS[i % NOUNS.len()])),
    )
    .await;

    // 2. support::Latencies.
    latencies(&client, &token, &api, "").await;
    if let Some(url) = postgres_url.clone() {
        // Right after the loads PostgreSQL has no statistics on the new
        // rows; autovacuum gathers them within a minute or so in a live
        // system. The same lines once it has, to show both states.
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        sqlx::query("VACUUM ANALYZE products")
            .execute(&pool)
            .await
            .expect("vacuum analyze");
        pool.close().await;
        latencies(&client, &token, &api, " [after VACUUM ANALYZE]").await;
    }

    server.stop().await;
}

/// Timed GETs of the standard list body, each with its `total`.
async fn measure(
    client: &reqwest::Client,
    token: &str,
    urls: impl Iterator<Item = String>,
) -> (support::Latencies, Vec<i64>) {
    support::measure_gets(client, Some(token), urls, |body| {
        body["total"].as_i64().unwrap_or(1)
    })
    .await
}
