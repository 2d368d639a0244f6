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
//! 3. The search matrix ([`matrix`], [`MATRIX_SAMPLES`] requests per line):
//!    words in about 1% (100 brands), 20% (5 ranges) and 60% (2 words) of
//!    the products, each without and with `status=active`, by relevance,
//!    price, name and newest, on page 1 and pages 40-49.
//!    `XCORE_BENCH_ONLY=<text>` runs only the matrix lines whose label
//!    holds the text; `XCORE_BENCH_KEEP=<file>` keeps a copy of the seeded
//!    SQLite database (for the `sqlite3` shell).
//!
//!    On PostgreSQL the lines of 2. are measured twice: right after the
//!    loads, before the server has statistics on the new rows, and again
//!    after `VACUUM ANALYZE` (what autovacuum does soon after in a live
//!    system); the matrix only after.
//!
//! Numbers only: nothing fails on a slow machine. Client and server share
//! the machine's cores.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BULKS: usize = 10;
const PER_BULK: usize = 10_000;
const SAMPLES: usize = 400;
/// Requests per line of the search matrix (48 lines).
const MATRIX_SAMPLES: usize = 200;

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

/// Syllables of the brand names: 10 x 10 = 100 brands, each naming 1/100
/// of the products (the narrow words of the search matrix).
const SYLLABLES: [&str; 10] = ["ka", "lo", "mi", "nu", "pe", "ro", "sa", "ti", "vo", "ze"];

/// Ranges: each names 1/5 of the products (the broad words).
const RANGES: [&str; 5] = ["bureau", "maison", "atelier", "studio", "voyage"];

/// Words each in 3/5 of the products, independently (the widest words).
const WIDE: [&str; 2] = ["livraison", "reparable"];

/// The brand of product `n` (its words are not prefixes of other words:
/// every brand ends in "x").
fn brand(hash: u64) -> String {
    let k = (hash % 100) as usize;
    format!("{}{}x", SYLLABLES[k / 10], SYLLABLES[k % 10])
}

/// A second mix of `n`, independent of the first, for the matrix words.
fn hash(n: usize) -> u64 {
    let mut x = (n as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Product number `n` of the seed: deterministic, so runs compare.
fn product(n: usize) -> Value {
    // A cheap mix so neighbouring numbers get unrelated words and prices.
    let mixed = n.wrapping_mul(2_654_435_761) % 1_000_003;
    let noun = NOUNS[n % NOUNS.len()];
    let adjective = ADJECTIVES[mixed % ADJECTIVES.len()];
    let h = hash(n);
    let range = RANGES[((h >> 8) % 5) as usize];
    let wide: Vec<&str> = WIDE
        .iter()
        .enumerate()
        .filter(|(i, _)| (h >> (16 + 8 * i)) % 5 < 3)
        .map(|(_, word)| *word)
        .collect();
    json!({
        "sku": format!("SKU-{n:06}"),
        "name": format!("{noun} {adjective} {}", mixed % 1000),
        "description": format!(
            "Un {noun} {adjective} {} de la gamme {}, collection {range}, garanti deux ans, \
             livre en {} jours. {}",
            brand(h),
            mixed % 97,
            mixed % 9 + 1,
            wide.join(" ")
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
    let (searched, totals) = support::measure_list(
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
    let (two_words, totals) = support::measure_list(
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
    let (plain, totals) = support::measure_list(
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
    let (by_id, _) = support::measure_list(
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

/// The search word of request `i` of a matrix line.
type WordOf = fn(usize) -> String;
/// The page of request `i` of a matrix line.
type PageOf = fn(usize) -> usize;

/// The search matrix: words matching about 1%, 20% and 60% of the
/// products, each without and with a status filter, in each order
/// (relevance, price, name, newest), on page 1 and on pages 40-49 (20 per
/// page). The word changes per request where its breadth has several
/// (100 brands, 5 ranges, 2 wide words). `XCORE_BENCH_ONLY=<text>` keeps
/// the lines whose label holds the text.
async fn matrix(client: &reqwest::Client, token: &str, api: &str, when: &str, bench_name: &str) {
    let only = std::env::var("XCORE_BENCH_ONLY").unwrap_or_default();
    let words: [(&str, WordOf); 3] = [
        ("1%", |i| brand((i as u64).wrapping_mul(37))),
        ("20%", |i| RANGES[i % RANGES.len()].to_string()),
        ("60%", |i| WIDE[i % WIDE.len()].to_string()),
    ];
    let filters = [("", ""), (" + status", "&status=active")];
    let orders = [
        ("relevance", ""),
        ("price", "&sort_by=price&order=asc"),
        ("name", "&sort_by=name&order=asc"),
        ("newest", "&sort_by=created_at&order=desc"),
    ];
    let pages: [(&str, PageOf); 2] = [("p1", |_| 1), ("p40-49", |i| 40 + i % 10)];
    for (breadth, word) in words {
        for (filter_name, filter) in filters {
            for (order_name, order) in orders {
                for (page_name, page) in pages {
                    let label = format!("search {breadth}{filter_name}, {order_name}, {page_name}");
                    if !label.contains(&only) {
                        continue;
                    }
                    let (latencies, totals) = support::measure_list(
                        client,
                        token,
                        (0..MATRIX_SAMPLES).map(|i| {
                            format!(
                                "{api}/?search={}{filter}{order}&page={}&page_size=20",
                                word(i),
                                page(i)
                            )
                        }),
                    )
                    .await;
                    latencies.report(&format!(
                        "{label} (~{} hits){when}",
                        totals.iter().sum::<i64>() / totals.len() as i64
                    ));
                    latencies.report_targets(bench_name, &format!("{label}{when}"), 5.0, 20.0);
                }
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let library = support::release_plugin("products");
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

    let bench_name = format!("products ({backend})");
    support::report_target(
        &bench_name,
        &format!("POST /bulk of {PER_BULK} products, median of {BULKS} as the table grows"),
        support::Goal::AtMost(1.0),
        sorted[BULKS / 2].as_secs_f64(),
        "s",
    );
    println!(
        "process RSS after seeding (server and client): {:.1} MiB",
        support::rss_mib("self")
    );

    // A copy of the seeded SQLite database, to replay queries in the
    // `sqlite3` shell: XCORE_BENCH_KEEP=<file>.
    if let (None, Ok(keep)) = (&postgres_url, std::env::var("XCORE_BENCH_KEEP")) {
        let url = format!("sqlite://{}/bench.db", data.path().display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        sqlx::query(&format!("VACUUM INTO '{keep}'"))
            .execute(&pool)
            .await
            .expect("vacuum into");
        pool.close().await;
    }

    // Warm-up: caches, the plugin's dialect lookup, connections.
    let _ = support::measure_list(
        &client,
        &token,
        (0..50).map(|i| format!("{api}/?search={}&page_size=20", NOUNS[i % NOUNS.len()])),
    )
    .await;

    // 2. support::Latencies.
    let only = std::env::var("XCORE_BENCH_ONLY").is_ok();
    if !only {
        latencies(&client, &token, &api, "").await;
    }
    if postgres_url.is_none() {
        matrix(&client, &token, &api, "", &bench_name).await;
    }
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
        if !only {
            latencies(&client, &token, &api, " [after VACUUM ANALYZE]").await;
        }
        // The matrix only in this state: the target is after ANALYZE.
        matrix(&client, &token, &api, " [analysed]", &bench_name).await;
    }

    server.stop().await;
}
