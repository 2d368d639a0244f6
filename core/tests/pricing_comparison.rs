//! The pricing plugin's price comparison (seed 002) through the real host
//! and the real `.so` files: stores (CRUD, 409, 422, 404), offers
//! (all-or-nothing batches, 10,000 at once, 10,001 refused, price drops
//! published), feed files (CSV, JSON), feeds fetched from a local HTTP
//! server through the allow list (and one outside it refused), and the
//! anonymous public API: reference and typo queries, de-duplication by
//! reference, round-robin across stores, filters, French slugs with
//! accents and `&`, brands, stores, requests. Runs on SQLite, and on
//! PostgreSQL when `XCORE_TEST_DATABASE_URL` is set.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{call, expect_error, expect_status, ws, PluginApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const API: &str = "/api/v1/pricing";

/// The host with the products and pricing plugins, pricing allowed to
/// fetch from `allow`.
struct Shop(PluginApp);

impl std::ops::Deref for Shop {
    type Target = PluginApp;

    fn deref(&self) -> &PluginApp {
        &self.0
    }
}

async fn start_with(allow: Vec<String>) -> Shop {
    Shop(
        PluginApp::start(API, &["products", "pricing"], move |config| {
            config.plugins.settings.insert(
                "pricing".into(),
                xcore::config::PluginSettings {
                    http_allow: allow,
                    ..Default::default()
                },
            );
        })
        .await,
    )
}

impl Shop {
    /// An anonymous GET of the public API.
    async fn public(&self, path: &str) -> Value {
        self.server.public_get(&format!("{API}{path}")).await
    }

    async fn store(&self, id: &str, nom: &str) {
        self.ok(
            Method::POST,
            "/stores",
            Some(json!({"id": id, "nom": nom, "site_web": format!("https://{id}.tn")})),
            StatusCode::CREATED,
        )
        .await;
    }

    async fn offers(&self, store: &str, offers: Value) -> Value {
        self.ok(
            Method::POST,
            &format!("/stores/{store}/offers"),
            Some(json!({"offers": offers})),
            StatusCode::OK,
        )
        .await
    }
}

/// A category's slug and count, with its sub-categories' slugs and counts.
type CategoryCount = (String, i64, Vec<(String, i64)>);

fn offer(reference: &str, title: &str, brand: &str, path: &[&str], price: f64) -> Value {
    json!({"reference": reference, "title": title, "brand": brand, "category_path": path,
           "price": price, "url": format!("https://shop.tn/{reference}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_and_offer_batches() {
    let shop = start_with(Vec::new()).await;
    shop.store("mytek", "Mytek").await;
    let taken = expect_error(
        shop.send(
            Method::POST,
            "/stores",
            Some(json!({"id": "mytek", "nom": "Again"})),
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    assert_eq!(taken["error"]["details"][0]["field"], "id");
    let bad = expect_error(
        shop.send(
            Method::POST,
            "/stores",
            Some(json!({"id": "Not A Slug", "nom": "", "feed_url": "ftp://x"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let fields: Vec<&str> = bad["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["id", "nom", "feed_url"]);
    let changed = shop
        .ok(
            Method::PUT,
            "/stores/mytek",
            Some(json!({"nom": "Mytek TN", "feed_url": "https://mytek.tn/feed.json"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(changed["nom"], "Mytek TN");
    assert_eq!(changed["site_web"], "https://mytek.tn");
    expect_error(
        shop.send(Method::GET, "/stores/nope", None).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    // Stores are pricing:admin's.
    let (_, user) = shop.server.user_token("shopper@example.com").await;
    expect_error(
        call(
            &shop.server,
            Method::GET,
            &format!("{API}/stores"),
            &user,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;

    // A batch with one bad offer writes nothing and names the offer.
    let refused = expect_error(
        shop.send(
            Method::POST,
            "/stores/mytek/offers",
            Some(json!({"offers": [
                offer("A-1", "Alpha", "Acme", &["Maison"], 10.0),
                {"reference": "A-2", "title": "Beta", "price": "1.234"},
                {"reference": "A-1", "title": "Again", "price": 1},
            ]})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let fields: Vec<&str> = refused["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["offers[1].price", "offers[2].reference"]);
    let listed = shop
        .ok(Method::GET, "/stores/mytek/offers", None, StatusCode::OK)
        .await;
    assert_eq!(listed["total"], 0);
    expect_error(
        shop.send(
            Method::POST,
            "/stores/nope/offers",
            Some(json!({"offers": [offer("A", "A", "A", &[], 1.0)]})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // 10,000 at once; 10,001 is too many.
    let many: Vec<Value> = (0..10_000)
        .map(|i| {
            offer(
                &format!("REF-{i}"),
                &format!("Produit {i}"),
                "Acme",
                &["Maison", "Cuisine"],
                10.0 + i as f64,
            )
        })
        .collect();
    let summary = shop.offers("mytek", Value::from(many.clone())).await;
    assert_eq!(summary["created"], 10_000);
    let mut too_many = many;
    too_many.push(offer("REF-X", "X", "X", &[], 1.0));
    expect_error(
        shop.send(
            Method::POST,
            "/stores/mytek/offers",
            Some(json!({"offers": too_many})),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "VALIDATION_ERROR",
    )
    .await;

    // Sending a reference again updates it; a lower price is a drop.
    let mut bus = shop.server.state.events.subscribe();
    let summary = shop
        .offers(
            "mytek",
            json!([offer("REF-1", "Produit 1", "Acme", &["Maison"], 9.5)]),
        )
        .await;
    assert_eq!(summary["updated"], 1);
    assert_eq!(summary["price_drops"], 1);
    let drop = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), bus.recv())
            .await
            .expect("an event in time")
            .expect("bus");
        if event.topic == "pricing.price_dropped" {
            break event;
        }
    };
    assert_eq!(drop.data["reference"], "REF-1");
    assert_eq!(drop.data["old_price"], json!(11.0));
    assert_eq!(drop.data["new_price"], json!(9.5));
    let listed = shop
        .ok(
            Method::GET,
            "/stores/mytek/offers?limit=1",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(listed["total"], 10_000);

    shop.ok(
        Method::DELETE,
        "/stores/mytek",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_error(
        shop.send(Method::DELETE, "/stores/mytek", None).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    shop.0.stop().await;
}

/// A feed server: `/feeds/mytek.json` and `/feeds/broken.json`.
async fn feed_server() -> SocketAddr {
    use axum::{routing::get, Router};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route(
            "/feeds/mytek.json",
            get(|| async {
                json!([{"reference": "FEED-1", "title": "Téléviseur Feed", "brand": "LG",
                        "category_path": ["Image & Son", "Téléviseurs"], "price": "999.90"}])
                .to_string()
            }),
        )
        .route(
            "/feeds/broken.json",
            get(|| async { "[{\"reference\": \"X\"}]" }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_come_from_files_and_from_allowed_urls_only() {
    let feeds = feed_server().await;
    let shop = start_with(vec![format!("http://{feeds}/feeds/")]).await;
    shop.store("mytek", "Mytek").await;

    // A CSV file, then a JSON file, through the upload route.
    for (name, bytes, mime) in [
        (
            "feed.csv",
            "reference,title,brand,category_path,price,old_price,in_stock\n\
             CSV-1,Clavier Sans Fil,Logitech,Informatique > Périphériques,\"49,90\",59.90,oui\n"
                .as_bytes()
                .to_vec(),
            "text/csv",
        ),
        (
            "feed.json",
            json!({"offers": [{"reference": "JSON-1", "title": "Souris", "price": 19}]})
                .to_string()
                .into_bytes(),
            "application/json",
        ),
    ] {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(name)
                .mime_str(mime)
                .expect("mime"),
        );
        let response = shop
            .server
            .post(&format!("{API}/stores/mytek/feed"))
            .bearer_auth(&shop.admin)
            .multipart(form)
            .send()
            .await
            .expect("send");
        let summary = expect_status(response, StatusCode::OK).await;
        assert_eq!(summary["created"], 1, "{name}");
    }
    let csv = shop.public("/produits/?q=clavier").await;
    assert_eq!(csv["data"][0]["prix_min"], json!(49.9));
    assert_eq!(csv["data"][0]["prix_max"], json!(59.9));
    assert_eq!(csv["data"][0]["discount"], json!(10.0));
    // A bad file: 422 naming the offer's fields.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"reference,title,price\nB-1,,abc\n".to_vec())
            .file_name("bad.csv"),
    );
    let response = shop
        .server
        .post(&format!("{API}/stores/mytek/feed"))
        .bearer_auth(&shop.admin)
        .multipart(form)
        .send()
        .await
        .expect("send");
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;

    // The store's feed_url, fetched through the host's allow list.
    let mut bus = shop.server.state.events.subscribe();
    shop.ok(
        Method::PUT,
        "/stores/mytek",
        Some(json!({"feed_url": format!("http://{feeds}/feeds/mytek.json")})),
        StatusCode::OK,
    )
    .await;
    let summary = shop
        .ok(Method::POST, "/stores/mytek/refresh", None, StatusCode::OK)
        .await;
    assert_eq!(summary["created"], 1);
    let fetched = shop.public("/produits/?q=televiseur").await;
    assert_eq!(fetched["data"][0]["reference"], "FEED-1");
    assert_eq!(fetched["data"][0]["categorie"], "image-son");
    let completed = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), bus.recv())
            .await
            .expect("event in time")
            .expect("bus");
        if event.topic.starts_with("pricing.feed.") {
            break event;
        }
    };
    assert_eq!(completed.topic, "pricing.feed.completed");

    // A feed that does not parse fails (502) and is recorded.
    shop.ok(
        Method::PUT,
        "/stores/mytek",
        Some(json!({"feed_url": format!("http://{feeds}/feeds/broken.json")})),
        StatusCode::OK,
    )
    .await;
    expect_error(
        shop.send(Method::POST, "/stores/mytek/refresh", None).await,
        StatusCode::BAD_GATEWAY,
        "PLUGIN_ERROR",
    )
    .await;
    let store = shop
        .ok(Method::GET, "/stores/mytek", None, StatusCode::OK)
        .await;
    assert!(
        store["last_feed_error"]
            .as_str()
            .is_some_and(|e| e.contains("problems")),
        "{store}"
    );

    // A URL outside the allow list is refused by the host.
    shop.ok(
        Method::PUT,
        "/stores/mytek",
        Some(json!({"feed_url": format!("http://{feeds}/private/feed.json")})),
        StatusCode::OK,
    )
    .await;
    let refused = expect_error(
        shop.send(Method::POST, "/stores/mytek/refresh", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(refused["error"]["details"][0]["field"], "feed_url");
    let failed = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), bus.recv())
            .await
            .expect("event in time")
            .expect("bus");
        if event.topic == "pricing.feed.failed"
            && event.data["url"]
                .as_str()
                .is_some_and(|u| u.contains("private"))
        {
            break event;
        }
    };
    assert!(failed.data["error"]
        .as_str()
        .is_some_and(|e| e.contains("allow")));
    shop.0.stop().await;
}

/// Three stores; the same Galaxy S24 in all three; ten cables per store.
async fn catalogue(shop: &Shop) {
    for (id, nom) in [
        ("mytek", "Mytek"),
        ("tunisianet", "Tunisianet"),
        ("spacenet", "Spacenet"),
    ] {
        shop.store(id, nom).await;
    }
    let phones = ["Téléphonie", "Smartphone & Mobile"];
    let mut mytek = vec![
        json!({"reference": "SM-S921B", "title": "Samsung Galaxy S24 128Go", "brand": "Samsung",
               "category_path": phones, "price": 2799, "old_price": 2999, "in_stock": true}),
        offer(
            "HP-15",
            "Ordinateur Portable HP 15",
            "HP",
            &["Informatique", "Ordinateurs Portables"],
            1500.0,
        ),
        offer(
            "AC-12",
            "Climatiseur Samsung 12000BTU",
            "Samsung",
            &["Électroménager", "Climatiseurs"],
            1200.0,
        ),
    ];
    let mut tunisianet = vec![
        json!({"reference": "sm-s921b", "title": "Samsung Galaxy S24 128 Go Noir", "brand": "SAMSUNG",
               "category_path": phones, "price": 2849}),
        offer(
            "HP-15X",
            "HP Pavilion Laptop",
            "hp",
            &["Informatique", "Ordinateurs Portables"],
            2100.0,
        ),
    ];
    let mut spacenet = vec![
        json!({"reference": "SM-S921B", "title": "Galaxy S24 Samsung", "brand": "Samsung",
               "category_path": phones, "price": 2999, "in_stock": false}),
    ];
    for i in 0..10 {
        let path = ["Informatique", "Câbles & Connectique"];
        mytek.push(offer(
            &format!("MY-C{i}"),
            &format!("Câble HDMI {i}m"),
            "Ugreen",
            &path,
            10.0 + f64::from(i),
        ));
        tunisianet.push(offer(
            &format!("TN-C{i}"),
            &format!("Câble USB-C {i}"),
            "Ugreen",
            &path,
            20.0 + f64::from(i),
        ));
        spacenet.push(offer(
            &format!("SP-C{i}"),
            &format!("Câble Ethernet {i}"),
            "Tenda",
            &path,
            30.0 + f64::from(i),
        ));
    }
    shop.offers("mytek", Value::from(mytek)).await;
    shop.offers("tunisianet", Value::from(tunisianet)).await;
    shop.offers("spacenet", Value::from(spacenet)).await;
}

fn stores_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|card| card["boutique"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_api_searches_compares_and_lists_like_the_seed() {
    let shop = start_with(Vec::new()).await;
    catalogue(&shop).await;

    // A reference: exact (any case), one result, the cheapest offer.
    let found = shop.public("/produits/?q=sm-s921b").await;
    assert_eq!(
        found["meta"],
        json!({"page": 1, "total_pages": 1, "total_items": 1, "par_page": 20})
    );
    let card = &found["data"][0];
    assert_eq!(card["boutique"], "Mytek");
    assert_eq!(card["prix_min"], json!(2799.0));
    assert_eq!(card["prix_max"], json!(2999.0));
    assert_eq!(card["discount"], json!(200.0));
    assert_eq!(card["slug"], Value::Null);
    assert_eq!(card["categorie"], "telephonie");
    // A reference-looking word that is no reference is searched as text.
    let btu = shop.public("/produits?q=12000BTU").await;
    assert_eq!(btu["data"][0]["reference"], "AC-12");

    // Free text: the three Galaxy offers are one result (de-duplicated by
    // reference, cheapest kept); titles starting with the phrase first.
    let galaxy = shop.public("/produits/?q=samsung galaxy").await;
    assert_eq!(galaxy["meta"]["total_items"], 1);
    assert_eq!(galaxy["data"][0]["prix_min"], json!(2799.0));
    // A typo still finds it.
    let typo = shop.public("/produits/?q=samsnug galxy").await;
    assert_eq!(typo["data"][0]["reference"], "SM-S921B", "{typo}");
    // Prefix of the last word.
    let prefix = shop.public("/produits/?q=ordinat").await;
    assert_eq!(prefix["meta"]["total_items"], 1);

    // Round-robin: 30 cables, three stores, no store twice in a row.
    let cables = shop.public("/produits/?q=cable").await;
    assert_eq!(cables["meta"]["total_items"], 30);
    assert_eq!(cables["meta"]["total_pages"], 2);
    let order = stores_of(&cables);
    assert_eq!(order.len(), 20);
    assert_eq!(&order[..3], ["Mytek", "Spacenet", "Tunisianet"]);
    for pair in order.windows(2) {
        assert_ne!(pair[0], pair[1], "{order:?}");
    }
    let second = shop.public("/produits/?q=cable&page=2").await;
    assert_eq!(second["data"].as_array().map(Vec::len), Some(10));

    // Filters.
    let promo = shop.public("/produits/?en_promo=1").await;
    assert_eq!(promo["meta"]["total_items"], 1);
    let ranged = shop
        .public("/produits/?q=cable&prix_min=25&prix_max=29.5")
        .await;
    assert_eq!(ranged["meta"]["total_items"], 5);
    let brand = shop
        .public("/produits/?marque=UGREEN&categorie=cables-connectique")
        .await;
    assert_eq!(brand["meta"]["total_items"], 20);
    let out_of_range = shop
        .server
        .get(&format!("{API}/produits/?page=101"))
        .send()
        .await
        .expect("send");
    expect_error(
        out_of_range,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;

    // Detail: every store's offer for the reference, cheapest first.
    let id = card["id"].as_str().expect("id").to_string();
    let detail = shop.public(&format!("/produits/{id}/")).await;
    let offers: Vec<(&str, &str)> = detail["offres"]
        .as_array()
        .expect("offres")
        .iter()
        .map(|o| {
            (
                o["boutique"].as_str().unwrap_or_default(),
                o["stock"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        offers,
        [
            ("Mytek", "En stock"),
            ("Tunisianet", "En stock"),
            ("Spacenet", "Rupture")
        ]
    );
    let by_slug = shop.public("/produits/sm-s921b").await;
    assert_eq!(by_slug["offres"].as_array().map(Vec::len), Some(3));
    expect_error(
        shop.server
            .get(&format!("{API}/produits/999999/"))
            .send()
            .await
            .expect("send"),
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // Categories: French slugs, most products first, with sub-categories.
    let categories = shop.public("/categories/").await;
    let first = &categories["data"][0];
    assert_eq!(first["slug"], "informatique");
    assert_eq!(first["nombre_produits"], 32);
    assert_eq!(
        first["sous_categories"][0]["slug"],
        "informatique/cables-connectique"
    );
    assert_eq!(first["sous_categories"][0]["nom"], "Câbles & Connectique");
    let slugs: Vec<&str> = categories["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["slug"].as_str())
        .collect();
    assert_eq!(slugs, ["informatique", "telephonie", "electromenager"]);
    let phones = shop
        .public("/categories/telephonie/smartphone-mobile/")
        .await;
    assert_eq!(phones["categorie"]["nom"], "Smartphone & Mobile");
    assert_eq!(phones["categorie"]["parent_nom"], "Téléphonie");
    assert_eq!(phones["meta"]["total_items"], 1);
    let appliances = shop.public("/categories/electromenager").await;
    assert_eq!(appliances["categorie"]["nom"], "Électroménager");
    assert_eq!(appliances["data"][0]["reference"], "AC-12");
    expect_error(
        shop.server
            .get(&format!("{API}/categories/nope/"))
            .send()
            .await
            .expect("send"),
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // Brands, case-insensitive.
    let brands = shop.public("/marques/").await;
    assert_eq!(brands["data"][0]["slug"], "ugreen");
    assert_eq!(brands["data"][0]["nombre_produits"], 20);
    let hp = shop.public("/marques/Hp/").await;
    assert_eq!(hp["marque"]["slug"], "hp");
    assert_eq!(hp["meta"]["total_items"], 2);

    // Stores.
    let stores = shop.public("/boutiques").await;
    assert_eq!(stores["meta"]["total_items"], 3);
    assert_eq!(
        stores["data"][0],
        json!({"id": "mytek", "nom": "Mytek", "site_web": "https://mytek.tn"})
    );
    shop.0.stop().await;
}

/// One offer of [`a_broad_search_reads_only_what_the_page_needs`]'s
/// catalogue: (reference, title, brand, price in cents, rank tier for
/// `q=lampe`, or `None` when it does not match).
fn lamp(store: usize, i: usize) -> (String, String, &'static str, i64, Option<u8>) {
    let stores = ["MYTEK", "SPACENET", "TUNISIANET"];
    // A third of the references are sold by every store.
    let reference = if i % 3 == 0 {
        format!("LAMP-{i}")
    } else {
        format!("{}-L{i}", stores[store])
    };
    // Distinct prices (9973 is prime), so the cheapest is never a tie.
    let cents = ((i as i64 * 7919) % 9973) * 10 + store as i64 + 100;
    let (title, brand, tier) = match i % 4 {
        0 => (format!("Lampe de bureau {i}"), "Osram", Some(0)),
        1 => (format!("Grande lampe {i}"), "Philips", Some(1)),
        // Matches through the brand only ("lampe" is a prefix of it).
        2 => (format!("Applique murale {i}"), "Lampex", Some(2)),
        _ => (format!("Ampoule {i}"), "Osram", None),
    };
    (reference, title, brand, cents, tier)
}

/// What `/produits/?q=lampe` must list, by the seed's rules: matches
/// de-duplicated by reference (cheapest kept), each store's ranked by
/// (tier, price), interleaved store by store. (store name, reference).
fn expected_lamps(per_store: usize) -> Vec<(String, String)> {
    let names = ["Mytek", "Spacenet", "Tunisianet"];
    let mut cheapest: std::collections::HashMap<String, (i64, usize)> = Default::default();
    for store in 0..3 {
        for i in 0..per_store {
            let (reference, _, _, cents, tier) = lamp(store, i);
            if tier.is_some() {
                let best = cheapest.entry(reference).or_insert((cents, store));
                if cents < best.0 {
                    *best = (cents, store);
                }
            }
        }
    }
    let lists: Vec<Vec<(u8, i64, String)>> = (0..3)
        .map(|store| {
            let mut list: Vec<(u8, i64, String)> = (0..per_store)
                .map(|i| lamp(store, i))
                .filter(|(reference, _, _, cents, tier)| {
                    tier.is_some() && cheapest[reference] == (*cents, store)
                })
                .map(|(reference, _, _, cents, tier)| (tier.unwrap_or(9), cents, reference))
                .collect();
            list.sort();
            list
        })
        .collect();
    let mut order = Vec::new();
    for turn in 0..per_store {
        for (store, list) in lists.iter().enumerate() {
            if let Some((_, _, reference)) = list.get(turn) {
                order.push((names[store].to_string(), reference.clone()));
            }
        }
    }
    order
}

fn cards_of(page: &Value) -> Vec<(String, String)> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|card| {
            (
                card["boutique"].as_str().unwrap_or_default().to_string(),
                card["reference"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// More matches than are ranked at once (500): each store's cheapest
/// matches are read in price order, as far as the page (and the total's
/// horizon, five pages further) needs. Same results as ranking them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broad_search_reads_only_what_the_page_needs() {
    const PER_STORE: usize = 400;
    let shop = start_with(Vec::new()).await;
    for (id, nom) in [
        ("mytek", "Mytek"),
        ("tunisianet", "Tunisianet"),
        ("spacenet", "Spacenet"),
    ] {
        shop.store(id, nom).await;
    }
    for (store, id) in ["mytek", "spacenet", "tunisianet"].iter().enumerate() {
        let offers: Vec<Value> = (0..PER_STORE)
            .map(|i| {
                let (reference, title, brand, cents, _) = lamp(store, i);
                json!({"reference": reference, "title": title, "brand": brand,
                       "category_path": ["Maison", "Luminaires"],
                       "price": format!("{}.{:02}", cents / 100, cents % 100)})
            })
            .collect();
        shop.offers(id, Value::from(offers)).await;
    }
    let expected = expected_lamps(PER_STORE);
    // 3 stores x 300 matches, a third shared: 700 results.
    assert_eq!(expected.len(), 700);

    let first = shop.public("/produits/?q=lampe").await;
    assert_eq!(cards_of(&first), expected[..20], "{first}");
    // Tier 0 (title starts with the word) first in every store.
    assert!(first["data"][0]["nom"]
        .as_str()
        .is_some_and(|t| t.starts_with("Lampe")));
    // The total: a lower bound five pages ahead while there are more.
    assert_eq!(
        first["meta"],
        json!({"page": 1, "total_pages": 6, "total_items": 120, "par_page": 20})
    );
    // A deep page: still the exact ranking, still no store twice in a row.
    let deep = shop.public("/produits/?q=lampe&page=20").await;
    assert_eq!(cards_of(&deep), expected[380..400], "{deep}");
    for pair in cards_of(&deep).windows(2) {
        assert_ne!(pair[0].0, pair[1].0);
    }
    // Five pages ahead (a lower bound), or exact when the engine found it
    // cheaper to rank every match (SQLite, knowing there are only 900).
    let total = deep["meta"]["total_items"].as_i64();
    assert!(matches!(total, Some(500 | 700)), "{}", deep["meta"]);
    // Near the end the total is exact.
    let last = shop.public("/produits/?q=lampe&page=35").await;
    assert_eq!(cards_of(&last), expected[680..700]);
    assert_eq!(last["meta"]["total_items"], 700);
    assert_eq!(last["meta"]["total_pages"], 35);
    let past = shop.public("/produits/?q=lampe&page=36").await;
    assert_eq!(past["data"], json!([]));
    assert_eq!(past["meta"]["total_items"], 700);

    // Browsing a category: each store's cheapest first, interleaved.
    let browse = shop.public("/produits/?categorie=luminaires&page=2").await;
    let cards = cards_of(&browse);
    assert_eq!(cards.len(), 20);
    for pair in cards.windows(2) {
        assert_ne!(pair[0].0, pair[1].0);
    }
    // A price filter is applied before the page is cut.
    let cheap = shop.public("/produits/?q=lampe&prix_max=5").await;
    for card in cheap["data"].as_array().expect("data") {
        assert!(
            card["prix_min"].as_f64().is_some_and(|p| p <= 5.0),
            "{card}"
        );
    }
    let in_range: Vec<(String, String)> = expected
        .iter()
        .filter(|(store, reference)| {
            let store = ["Mytek", "Spacenet", "Tunisianet"]
                .iter()
                .position(|s| s == store)
                .unwrap_or(0);
            (0..PER_STORE)
                .map(|i| lamp(store, i))
                .any(|(r, _, _, cents, _)| &r == reference && cents <= 500)
        })
        .cloned()
        .collect();
    assert_eq!(cheap["meta"]["total_items"], in_range.len());
    shop.0.stop().await;
}

/// `/categories/` reads counts that the offer writes keep: a new offer,
/// an offer moved to another category, a store deleted with its offers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn category_counts_follow_offer_writes() {
    let shop = start_with(Vec::new()).await;
    shop.store("mytek", "Mytek").await;
    shop.store("spacenet", "Spacenet").await;
    let tv = ["Image & Son", "Téléviseurs"];
    let pc = ["Informatique", "Portables"];
    shop.offers(
        "mytek",
        json!([offer("A1", "TV A1", "LG", &tv, 100.0), offer("A2", "TV A2", "LG", &tv, 200.0),
               offer("A3", "PC A3", "HP", &pc, 300.0),
               {"reference": "A4", "title": "Sans catégorie", "price": 5}]),
    )
    .await;
    shop.offers("spacenet", json!([offer("A1", "TV A1", "LG", &tv, 90.0)]))
        .await;
    let counts = |page: &Value| -> Vec<CategoryCount> {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|c| {
                let subs = c["sous_categories"]
                    .as_array()
                    .expect("subs")
                    .iter()
                    .map(|s| {
                        (
                            s["slug"].as_str().unwrap_or_default().to_string(),
                            s["nombre_produits"].as_i64().unwrap_or(-1),
                        )
                    })
                    .collect();
                (
                    c["slug"].as_str().unwrap_or_default().to_string(),
                    c["nombre_produits"].as_i64().unwrap_or(-1),
                    subs,
                )
            })
            .collect()
    };
    let before = shop.public("/categories/").await;
    assert_eq!(
        counts(&before),
        [
            (
                "image-son".into(),
                3,
                vec![("image-son/televiseurs".into(), 3)]
            ),
            (
                "informatique".into(),
                1,
                vec![("informatique/portables".into(), 1)]
            ),
        ]
    );
    assert_eq!(before["data"][0]["nom"], "Image & Son");
    // A2 moves to computers; an update of the same category counts once.
    shop.offers(
        "mytek",
        json!([
            offer("A2", "PC A2", "LG", &pc, 200.0),
            offer("A1", "TV A1", "LG", &tv, 95.0)
        ]),
    )
    .await;
    let moved = shop.public("/categories/").await;
    assert_eq!(
        counts(&moved),
        [
            (
                "image-son".into(),
                2,
                vec![("image-son/televiseurs".into(), 2)]
            ),
            (
                "informatique".into(),
                2,
                vec![("informatique/portables".into(), 2)]
            ),
        ]
    );
    // A store's offers go with it.
    shop.ok(
        Method::DELETE,
        "/stores/mytek",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let left = shop.public("/categories/").await;
    assert_eq!(
        counts(&left),
        [(
            "image-son".into(),
            1,
            vec![("image-son/televiseurs".into(), 1)]
        )]
    );
    let gone = shop
        .server
        .get(&format!("{API}/categories/informatique/"))
        .send()
        .await
        .expect("send");
    expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    shop.0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_taken_anonymously_and_triaged_by_admins() {
    let shop = start_with(Vec::new()).await;
    let response = shop
        .server
        .post(&format!("{API}/demandes/"))
        .json(&json!({"request_type": "store", "store_name": "TechStore", "website": "https://techstore.tn",
                      "contact_person": "Ali Ben Ahmed", "email": "ali@techstore.tn", "phone": "+216 99 000 000"}))
        .send()
        .await
        .expect("send");
    let body = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(body, json!({"message": "Demande enregistrée avec succès."}));
    let response = shop
        .server
        .post(&format!("{API}/demandes"))
        .json(&json!({"request_type": "other", "email": "not-an-email"}))
        .send()
        .await
        .expect("send");
    let error = expect_error(response, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
    let fields: Vec<&str> = error["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for field in ["contact_person", "phone", "request_type", "email"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    let anonymous = shop
        .server
        .get(&format!("{API}/demandes"))
        .send()
        .await
        .expect("send");
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    let list = shop
        .ok(Method::GET, "/demandes?status=new", None, StatusCode::OK)
        .await;
    assert_eq!(list["total"], 1);
    let id = list["items"][0]["id"].as_i64().expect("id");
    let triaged = shop
        .ok(
            Method::PUT,
            &format!("/demandes/{id}"),
            Some(json!({"status": "accepted"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(triaged["status"], "accepted");
    expect_error(
        shop.send(
            Method::PUT,
            &format!("/demandes/{id}"),
            Some(json!({"status": "maybe"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    shop.0.stop().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next `pricing.alert` event on the socket, if one comes in `wait`.
async fn next_alert(socket: &mut Socket, wait: Duration) -> Option<Value> {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .ok()?;
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).ok()?;
            if value["type"] == "event" && value["topic"] == "pricing.alert" {
                return Some(value);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_delivered_once_per_crossing_over_websocket() {
    use futures_util::SinkExt;
    let shop = start_with(Vec::new()).await;
    shop.store("mytek", "Mytek").await;
    shop.store("spacenet", "Spacenet").await;
    shop.offers(
        "mytek",
        json!([offer("TV-55", "Téléviseur 55", "LG", &["Image"], 1500.0)]),
    )
    .await;

    // Alerts are per signed-in user.
    let anonymous = shop
        .server
        .get(&format!("{API}/alerts"))
        .send()
        .await
        .expect("send");
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    let alert = shop
        .ok(
            Method::POST,
            "/alerts",
            Some(json!({"reference": "tv-55", "price": 1000})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(alert["below"], false);
    expect_error(
        shop.send(
            Method::POST,
            "/alerts",
            Some(json!({"reference": "TV-55", "price": "abc"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let (_, other) = shop.server.user_token("other@example.com").await;
    let theirs = call(
        &shop.server,
        Method::GET,
        &format!("{API}/alerts"),
        &other,
        None,
    )
    .await;
    assert_eq!(expect_status(theirs, StatusCode::OK).await["total"], 0);
    let id = alert["id"].as_i64().expect("id");
    expect_error(
        call(
            &shop.server,
            Method::DELETE,
            &format!("{API}/alerts/{id}"),
            &other,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws?token={}",
        shop.server.addr, shop.admin
    ))
    .await
    .expect("upgrade");
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"type": "subscribe", "topics": ["pricing.alert"]})
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribe");
    // Another user, who may read prices, watches every pricing event: they
    // see the price drops, never the admin's alert.
    let mut onlooker = ws::connect(&shop.server, &format!("?token={other}")).await;
    ws::next_json(&mut onlooker, Duration::from_secs(5)).await;
    ws::send(
        &mut onlooker,
        json!({"type": "subscribe", "topics": ["pricing.*"]}),
    )
    .await;
    ws::next_json(&mut onlooker, Duration::from_secs(5)).await;

    // Another store goes under the target: one alert.
    shop.offers(
        "spacenet",
        json!([offer("TV-55", "TV 55", "LG", &["Image"], 999.0)]),
    )
    .await;
    let event = next_alert(&mut socket, Duration::from_secs(10))
        .await
        .expect("an alert");
    assert_eq!(event["data"]["alert_id"], id);
    assert_eq!(event["data"]["price"], json!(999.0));
    assert_eq!(event["data"]["boutique"], "Spacenet");
    assert!(event["data"]["user_id"].as_i64().is_some());
    // Lower still, and the other store too: still under, no new alert.
    shop.offers(
        "spacenet",
        json!([offer("TV-55", "TV 55", "LG", &["Image"], 950.0)]),
    )
    .await;
    shop.offers(
        "mytek",
        json!([offer("TV-55", "Téléviseur 55", "LG", &["Image"], 980.0)]),
    )
    .await;
    assert!(
        next_alert(&mut socket, Duration::from_millis(1500))
            .await
            .is_none(),
        "alerted twice"
    );
    let mut seen = Vec::new();
    while let Some(message) = ws::next_json(&mut onlooker, Duration::from_secs(1)).await {
        seen.extend(message["topic"].as_str().map(str::to_owned));
    }
    assert!(
        seen.iter().any(|t| t == "pricing.price_dropped"),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|t| t == "pricing.alert"),
        "another user's alert reached them: {seen:?}"
    );
    // Back above, then under again: a new crossing, a new alert.
    shop.offers(
        "spacenet",
        json!([offer("TV-55", "TV 55", "LG", &["Image"], 1100.0)]),
    )
    .await;
    shop.offers(
        "mytek",
        json!([offer("TV-55", "Téléviseur 55", "LG", &["Image"], 1200.0)]),
    )
    .await;
    shop.offers(
        "mytek",
        json!([offer("TV-55", "Téléviseur 55", "LG", &["Image"], 900.0)]),
    )
    .await;
    let again = next_alert(&mut socket, Duration::from_secs(10))
        .await
        .expect("a second alert");
    assert_eq!(again["data"]["price"], json!(900.0));

    let mine = shop.ok(Method::GET, "/alerts", None, StatusCode::OK).await;
    assert_eq!(mine["items"][0]["below"], true);
    shop.ok(
        Method::DELETE,
        &format!("/alerts/{id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    shop.0.stop().await;
}
