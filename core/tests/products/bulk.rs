//! `POST /bulk`: all or nothing, every bad row by its index, 10,000 rows in
//! one request, 10,001 refused.

use crate::common::next_bus_event;
use crate::{detail_fields, skus, start};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_is_all_or_nothing_and_takes_ten_thousand() {
    let catalogue = start().await;
    let mut events = catalogue.server.state.events.subscribe();
    let existing = catalogue
        .create(json!({"sku": "EXIST-1", "name": "Existant", "price": 5, "stock": 42, "description": "garde"}))
        .await;

    // One bad row: 422 naming every bad row and field, nothing written.
    let body = catalogue
        .invalid(
            Method::POST,
            "/bulk",
            json!({"products": [
                {"sku": "B-1", "name": "ok", "price": 1},
                {"sku": "B-2", "name": "ok", "price": 2},
                {"sku": "B-1", "name": "dup", "price": 3},
                {"sku": "B-4", "name": "", "price": -4},
                {"sku": "EXIST-1", "name": "clash", "price": 1},
                {"sku": "B-6", "name": "ok", "price": 1, "category_id": 424242}
            ]}),
        )
        .await;
    assert_eq!(
        detail_fields(&body),
        vec![
            "products[2].sku",
            "products[3].name",
            "products[3].price",
            "products[4].sku",
            "products[5].category_id",
        ]
    );
    assert_eq!(catalogue.count_rows().await, 1, "nothing written");
    // The `items` key works too and names its paths after it.
    let body = catalogue
        .invalid(
            Method::POST,
            "/bulk",
            json!({"items": [{"sku": "I-1", "name": "x", "price": "1.234"}]}),
        )
        .await;
    assert_eq!(detail_fields(&body), vec!["items[0].price"]);

    // Only existing SKUs wrong: 409 with the rows, nothing written.
    let body = catalogue
        .conflict(
            Method::POST,
            "/bulk",
            json!({"products": [
                {"sku": "NEW-1", "name": "new", "price": 1},
                {"sku": "EXIST-1", "name": "clash", "price": 1}
            ]}),
        )
        .await;
    assert_eq!(detail_fields(&body), vec!["products[1].sku"]);
    assert_eq!(catalogue.count_rows().await, 1);

    // update_existing: the existing row changes only in the fields given.
    let upsert = catalogue
        .action(
            "/bulk",
            json!({"update_existing": true, "products": [
                {"sku": "NEW-1", "name": "new", "price": 1},
                {"sku": "EXIST-1", "name": "Renommé", "price": "6.50"}
            ]}),
        )
        .await;
    assert_eq!(
        (upsert["created"].as_i64(), upsert["updated"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(upsert["ids"][1], existing["id"]);
    let summary = next_bus_event(&mut events, "products.bulk").await;
    assert_eq!(summary["total"], 2);
    let changed = catalogue.get(&format!("/{}", existing["id"])).await;
    assert_eq!(changed["name"], "Renommé");
    assert_eq!(changed["price"], json!(6.5));
    assert_eq!(changed["stock"], 42, "not given, kept");
    assert_eq!(changed["description"], "garde");
    assert_eq!(changed["created_at"], existing["created_at"]);
    assert_eq!(
        skus(&catalogue.get("/?search=renomme").await),
        vec!["EXIST-1"],
        "the index follows upserts (diacritics folded on both databases)"
    );
    assert_eq!(
        skus(&catalogue.get("/?search=renommé").await),
        vec!["EXIST-1"]
    );

    // 10,001 is refused as a whole.
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"sku": format!("T-{i}"), "name": "t", "price": 1}))
        .collect();
    catalogue
        .refused(
            Method::POST,
            "/bulk",
            Some(json!({"products": too_many})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "VALIDATION_ERROR",
        )
        .await;

    // 10,000 in one request, a body well over the host's default 1 MiB.
    let products: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({
                "sku": format!("BULK-{i:05}"),
                "name": format!("Produit en masse numéro {i}"),
                "description": format!("Article {i} importé en une seule requête, avec une description assez longue pour peser."),
                "price": format!("{}.{:02}", i % 500, i % 100),
                "stock": i % 37,
                "status": if i % 10 == 0 { "draft" } else { "active" },
                "attributes": {"lot": i / 100}
            })
        })
        .collect();
    let body = json!({"products": products});
    assert!(
        body.to_string().len() > 2 * 1024 * 1024,
        "over the 1 MiB default"
    );
    let done = catalogue.action("/bulk", body).await;
    assert_eq!(done["created"], 10_000);
    assert_eq!(done["ids"].as_array().map(Vec::len), Some(10_000));
    let summary = next_bus_event(&mut events, "products.bulk").await;
    assert_eq!(summary["created"], 10_000);
    assert_eq!(catalogue.count_rows().await, 10_002);
    let drafts = catalogue.get("/?status=draft&limit=1").await;
    assert_eq!(drafts["total"], 1000);
    // A search matching every bulk row, sorted: early pages walk the price
    // index on SQLite, deep ones sort the matches; both must agree with
    // the same list without a search (the two other products are cheaper
    // than every page compared here).
    for page in [1, 2, 440] {
        let sorted = |search: &str| {
            format!("/?{search}status=active&sort_by=price&order=desc&page={page}&page_size=20")
        };
        let searched = catalogue.get(&sorted("search=masse&")).await;
        let plain = catalogue.get(&sorted("")).await;
        assert_eq!(searched["total"], 9000, "{searched}");
        assert_eq!(skus(&searched).len(), 20);
        assert_eq!(skus(&searched), skus(&plain), "page {page}");
    }
    let one = catalogue.get("/?search=numéro%209999").await;
    assert_eq!(skus(&one), vec!["BULK-09999"]);
    assert_eq!(one["items"][0]["price"], json!(499.99));
    // No event per row: the next event on the bus is not a products.created.
    assert!(matches!(
        events.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}
