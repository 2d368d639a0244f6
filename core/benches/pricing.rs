//! Pricing plugin benchmarks, run with `cargo bench -p xcore --bench pricing`.
//!
//! One server with the release products and pricing libraries on a fresh
//! database: SQLite by default, or a new database on the PostgreSQL server
//! `XCORE_BENCH_DATABASE_URL` points at (created for the run, dropped after).
//!
//! 1. Three stores, 100,000 offers each, sent as thirty
//!    `POST /stores/{id}/offers` batches of 10,000 (each timed). A third of
//!    the references are sold by all three stores (de-duplication has work
//!    to do); titles draw a noun from five (so each noun is a "broad" word,
//!    in a fifth of the titles), a brand from twenty and an adjective from
//!    twenty-five; ten categories of five sub-categories.
//! 2. Latency over HTTP, anonymous, one request at a time, p50/p90/p99 of
//!    [`SAMPLES`] requests each: `/produits/?q=<broad noun>&prix_max=...`,
//!    a two-word query with a brand filter, a reference query, a typo
//!    query, and `/categories/`.
//! 3. A 10,000-offer batch that updates existing offers (new prices).
//!
//! 4. One `TARGET` line per issue target (`support::report_target`): each
//!    search's p50 (<= 10 ms), `/categories/`' p50 (<= 20 ms), each kind
//!    of 10,000-offer batch (<= 1 s).
//!
//! Numbers only: nothing fails on a slow machine. Client and server share
//! the machine's cores.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{report_target, Goal};

/// The name of this bench in target lines.
const BENCH: &str = "pricing";
/// The targets: a search's p50, `/categories/`' p50 (ms), a batch
/// of 10,000 offers (s).
const SEARCH_P50_MS: f64 = 10.0;
const CATEGORIES_P50_MS: f64 = 20.0;
const BATCH_S: f64 = 1.0;

const STORES: [&str; 3] = ["mytek", "tunisianet", "spacenet"];
const PER_STORE: usize = 100_000;
const PER_BATCH: usize = 10_000;
const SAMPLES: usize = 200;

const NOUNS: [&str; 5] = [
    "smartphone",
    "televiseur",
    "ordinateur",
    "climatiseur",
    "casque",
];
const BRANDS: [&str; 20] = [
    "Samsung", "Apple", "Xiaomi", "Huawei", "Oppo", "LG", "Sony", "HP", "Dell", "Lenovo", "Asus",
    "Acer", "MSI", "Toshiba", "Philips", "Tcl", "Hisense", "Condor", "Brandt", "Beko",
];
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
    "premium",
    "standard",
    "mini",
    "maxi",
    "pliable",
    "etanche",
    "connecte",
    "intelligent",
    "inverter",
    "double",
    "pro",
];
const CATEGORIES: [&str; 10] = [
    "Téléphonie",
    "Image & Son",
    "Informatique",
    "Électroménager",
    "Gaming",
    "Maison",
    "Bureautique",
    "Réseau",
    "Stockage",
    "Accessoires",
];
const SUBS: [&str; 5] = [
    "Haut de gamme",
    "Milieu de gamme",
    "Entrée de gamme",
    "Pièces",
    "Packs",
];

fn build_release(workspace: &std::path::Path, package: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "--quiet", "-p", package])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building {package} failed");
}

/// Offer number `n` of `store` (deterministic, so runs compare).
fn offer(store: usize, n: usize, bump: i64) -> Value {
    let mixed = (n.wrapping_mul(2_654_435_761) + store * 7919) % 1_000_003;
    // References 0..33,333 are sold by every store.
    let reference = if n % 3 == 0 {
        format!("REF-{n:06}")
    } else {
        format!("{}-{n:06}", STORES[store].to_uppercase())
    };
    let noun = NOUNS[n % NOUNS.len()];
    let brand = BRANDS[mixed % BRANDS.len()];
    let adjective = ADJECTIVES[(mixed / 7) % ADJECTIVES.len()];
    let cents = (mixed % 300_000) as i64 + 1_000 + bump;
    json!({
        "reference": reference,
        "title": format!("{noun} {brand} {adjective} {}", mixed % 1000),
        "brand": brand,
        "category_path": [CATEGORIES[n % 10], SUBS[(n / 10) % 5]],
        "price": format!("{}.{:02}", cents / 100, cents % 100),
        "old_price": if mixed % 4 == 0 { Value::from(format!("{}.00", cents / 100 + 50)) } else { Value::Null },
        "in_stock": mixed % 5 != 0,
        "url": format!("https://{}.tn/p/{n}", STORES[store]),
    })
}

async fn send_batch(
    client: &reqwest::Client,
    token: &str,
    api: &str,
    store: usize,
    range: std::ops::Range<usize>,
    bump: i64,
) -> Duration {
    let offers: Vec<Value> = range.map(|n| offer(store, n, bump)).collect();
    let body = serde_json::to_vec(&json!({ "offers": offers })).expect("body");
    let started = Instant::now();
    let response = client
        .post(format!("{api}/stores/{}/offers", STORES[store]))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("batch");
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    let elapsed = started.elapsed();
    assert!(status.is_success(), "batch: {status} {answer}");
    elapsed
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let workspace = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    build_release(&workspace, "xcore-plugin-products");
    build_release(&workspace, "xcore-plugin-pricing");
    let plugins = tempfile::tempdir().expect("plugins dir");
    let data = tempfile::tempdir().expect("data dir");
    for lib in ["libxcore_plugin_products.so", "libxcore_plugin_pricing.so"] {
        std::fs::copy(
            workspace.join("target/release").join(lib),
            plugins.path().join(lib),
        )
        .expect("copy plugin");
    }
    let config = support::bench_config(data.path(), plugins.path());
    let server = support::BenchServer::start(config, Duration::from_secs(300)).await;
    let (base, client, token, backend, postgres_url) = (
        server.base.clone(),
        server.client.clone(),
        server.token.clone(),
        server.backend,
        server.postgres_url.clone(),
    );
    let api = format!("{base}/api/v1/pricing");
    println!(
        "xcore pricing benchmark ({} cores, {backend}, {} stores x {PER_STORE} offers)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        STORES.len()
    );

    for store in STORES {
        let response = client
            .post(format!("{api}/stores"))
            .bearer_auth(&token)
            .json(&json!({"id": store, "nom": store, "site_web": format!("https://{store}.tn")}))
            .send()
            .await
            .expect("store");
        assert!(response.status().is_success());
    }

    // 1. Load.
    let mut times = Vec::new();
    for start in (0..PER_STORE).step_by(PER_BATCH) {
        for store in 0..STORES.len() {
            times.push(send_batch(&client, &token, &api, store, start..start + PER_BATCH, 0).await);
        }
    }
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "POST /stores/{{id}}/offers, {} batches of {PER_BATCH} new offers: first {:.0} ms, \
         median {:.0} ms, slowest {:.0} ms",
        times.len(),
        times[0].as_secs_f64() * 1000.0,
        sorted[sorted.len() / 2].as_secs_f64() * 1000.0,
        sorted[sorted.len() - 1].as_secs_f64() * 1000.0
    );
    let median_batch = sorted[sorted.len() / 2].as_secs_f64();
    if let Some(url) = postgres_url.clone() {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        sqlx::query("VACUUM ANALYZE")
            .execute(&pool)
            .await
            .expect("analyze");
        pool.close().await;
    }
    let _ = measure(
        &client,
        (0..20).map(|i| format!("{api}/produits/?q={}", NOUNS[i % 5])),
    )
    .await;

    // 2. support::Latencies.
    let (broad, hits) = measure(
        &client,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/produits/?q={}&prix_max=2000&page={}",
                NOUNS[i % 5],
                i % 3 + 1
            )
        }),
    )
    .await;
    broad.report(&format!(
        "/produits/?q=<word in 1/5 of titles>&prix_max (~{hits} hits)"
    ));
    let (narrow, hits) = measure(
        &client,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/produits/?q={}%20{}&marque={}&en_promo=1",
                NOUNS[i % 5],
                ADJECTIVES[i % 25],
                BRANDS[i % 20]
            )
        }),
    )
    .await;
    narrow.report(&format!(
        "/produits/?q=<2 words>&marque&en_promo (~{hits} hits)"
    ));
    let (reference, _) = measure(
        &client,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/produits/?q=REF-{:06}",
                (i * 3 * 97) % PER_STORE / 3 * 3
            )
        }),
    )
    .await;
    reference.report("/produits/?q=<reference>");
    let (typo, hits) = measure(
        &client,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/produits/?q=televiseru%20{}",
                BRANDS[i % 20].to_lowercase()
            )
        }),
    )
    .await;
    typo.report(&format!("/produits/?q=<typo> <brand> (~{hits} hits)"));
    let (browse, hits) = measure(
        &client,
        (0..SAMPLES).map(|i| {
            format!(
                "{api}/produits/?categorie=informatique&prix_min=100&page={}",
                i % 5 + 1
            )
        }),
    )
    .await;
    browse.report(&format!(
        "/produits/?categorie&prix_min, no q (~{hits} hits)"
    ));
    let (categories, _) =
        measure(&client, (0..SAMPLES).map(|_| format!("{api}/categories/"))).await;
    categories.report("/categories/");

    // 3. Updates: 10,000 existing offers with new prices (half drops).
    let update = send_batch(&client, &token, &api, 0, 0..PER_BATCH, -500).await;
    println!(
        "POST /stores/{{id}}/offers, {PER_BATCH} existing offers with new prices: {:.0} ms",
        update.as_secs_f64() * 1000.0
    );
    let searches = [
        ("/produits/?q=<word in 1/5 of titles>&prix_max p50", &broad),
        ("/produits/?q=<2 words>&marque&en_promo p50", &narrow),
        ("/produits/?q=<reference> p50", &reference),
        ("/produits/?q=<typo> <brand> p50", &typo),
        ("/produits/?categorie&prix_min, no q p50", &browse),
    ];
    for (what, latencies) in searches {
        report_target(
            BENCH,
            what,
            Goal::AtMost(SEARCH_P50_MS),
            latencies.quantile(0.5),
            "ms",
        );
    }
    report_target(
        BENCH,
        "/categories/ p50",
        Goal::AtMost(CATEGORIES_P50_MS),
        categories.quantile(0.5),
        "ms",
    );
    report_target(
        BENCH,
        "batch of 10,000 new offers (median)",
        Goal::AtMost(BATCH_S),
        median_batch,
        "s",
    );
    report_target(
        BENCH,
        "batch of 10,000 existing offers, new prices",
        Goal::AtMost(BATCH_S),
        update.as_secs_f64(),
        "s",
    );
    println!(
        "process RSS (server and client): {:.1} MiB",
        support::rss_mib("self")
    );
    server.keep_or_stop(data.path()).await;
}

/// Timed anonymous GETs of the public API, with the mean of the seed
/// envelope's `meta.total_items`.
async fn measure(
    client: &reqwest::Client,
    urls: impl Iterator<Item = String>,
) -> (support::Latencies, i64) {
    let (latencies, totals) = support::measure_gets(client, None, urls, |body| {
        body["meta"]["total_items"].as_i64().unwrap_or(0)
    })
    .await;
    let mean = totals.iter().sum::<i64>() / totals.len().max(1) as i64;
    (latencies, mean)
}
