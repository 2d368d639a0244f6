//! Lists: paging, filters, sorting and full-text search (words and
//! prefixes, never substrings, user text never query syntax), and money
//! kept exact through JSON, SQL, sorting and sums.

use crate::{detail_fields, skus, start, urlencode, API};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_filter_sort_and_search_with_the_full_text_index() {
    let catalogue = start().await;
    let keyboards = catalogue
        .post("/categories", json!({"name": "Claviers"}))
        .await["id"]
        .as_i64()
        .expect("id");
    let supplier = catalogue.supplier("Fournisseur A").await;
    let rows = json!([
        {"sku": "KB-001", "name": "Clavier mécanique", "description": "Switches rouges, rétroéclairage", "price": 89.9, "stock": 5, "category_id": keyboards, "supplier_id": supplier},
        {"sku": "KB-002", "name": "Clavier sans fil", "description": "Bluetooth, AZERTY", "price": "49.99", "stock": 50, "category_id": keyboards},
        {"sku": "MS-001", "name": "Souris optique", "description": "Compatible avec le clavier KB-002", "price": 19.5, "stock": 0, "status": "inactive", "supplier_id": supplier},
        {"sku": "MON-27", "name": "Écran 27 pouces", "description": "Dalle IPS", "price": 249, "stock": 12, "status": "draft"},
        {"sku": "CAB-USB", "name": "Câble USB-C", "description": "Un mètre", "price": 0.1, "stock": 300},
        {"sku": "CAB-HDMI", "name": "Câble HDMI", "description": "Deux mètres", "price": 0.2, "stock": 200},
        {"sku": "ADAPT-1", "name": "Adaptateur", "description": "USB vers HDMI", "price": 0.3, "stock": 100}
    ]);
    let bulk = catalogue.action("/bulk", json!({"products": rows})).await;
    assert_eq!(bulk["created"], 7);

    // Paging: page/page_size and skip/limit, with the page fields.
    let page = catalogue.get("/?page=2&page_size=3&sort_by=price").await;
    assert_eq!(page["total"], 7);
    assert_eq!(page["page"], 2);
    assert_eq!(page["page_size"], 3);
    assert_eq!(page["total_pages"], 3);
    assert_eq!(page["skip"], 3);
    assert_eq!(page["limit"], 3);
    assert_eq!(page["has_more"], true);
    assert_eq!(skus(&page), vec!["MS-001", "KB-002", "KB-001"]);
    let window = catalogue.get("/?skip=6&limit=3&sort_by=price").await;
    assert_eq!(skus(&window), vec!["MON-27"]);
    assert_eq!(
        (window["total"].as_i64(), window["has_more"].as_bool()),
        (Some(7), Some(false))
    );
    let past_the_end = catalogue.get("/?page=9&page_size=3").await;
    assert_eq!(past_the_end["total"], 7);
    assert!(skus(&past_the_end).is_empty());
    // The prefix alone is the list, as in the seed (`GET /products`).
    let newest = catalogue.server.get_as(&catalogue.admin, API).await;
    assert_eq!(newest["page_size"], 20);
    assert_eq!(newest["items"].as_array().map(Vec::len), Some(7));

    // Bad parameters are 422, each named.
    for (query, field) in [
        ("page_size=1000", "page_size"),
        ("limit=1000", "limit"),
        ("page=0", "page"),
        ("sort_by=password", "sort_by"),
        ("sort_by=price&order=sideways", "order"),
        ("status=sold", "status"),
        ("price_min=abc", "price_min"),
        ("price_max=0.001", "price_max"),
        ("price_min=5&price_max=1", "price_min"),
        ("supplier_id=x", "supplier_id"),
        ("category_id=-1", "category_id"),
    ] {
        let body = catalogue
            .invalid(Method::GET, &format!("/?{query}"), None)
            .await;
        assert_eq!(detail_fields(&body), vec![field.to_string()], "{query}");
    }

    // Filters, exact at the cent.
    let cheap = catalogue.get("/?price_max=0.3&sort_by=price").await;
    assert_eq!(skus(&cheap), vec!["CAB-USB", "CAB-HDMI", "ADAPT-1"]);
    let exactly = catalogue.get("/?price_min=0.3&price_max=0.30").await;
    assert_eq!(skus(&exactly), vec!["ADAPT-1"]);
    let above = catalogue.get("/?price_min=0.21&price_max=0.29").await;
    assert!(skus(&above).is_empty());
    let inactive = catalogue.get("/?status=inactive").await;
    assert_eq!(skus(&inactive), vec!["MS-001"]);
    let by_category = catalogue
        .get(&format!(
            "/?category_id={keyboards}&sort_by=name&order=desc"
        ))
        .await;
    assert_eq!(skus(&by_category), vec!["KB-002", "KB-001"]);
    let by_supplier = catalogue
        .get(&format!(
            "/?supplier_id={supplier}&sort_by=stock&sort_order=asc"
        ))
        .await;
    assert_eq!(skus(&by_supplier), vec!["MS-001", "KB-001"]);
    let by_stock = catalogue.get("/?sort_by=stock&order=desc&limit=2").await;
    assert_eq!(skus(&by_stock), vec!["CAB-USB", "CAB-HDMI"]);

    // Full-text search: words in name, description or SKU...
    let search = |query: &str| format!("/?search={}", urlencode(query));
    let found = catalogue.get(&search("clavier")).await;
    let mut found_skus = skus(&found);
    found_skus.sort();
    assert_eq!(
        found_skus,
        vec!["KB-001", "KB-002", "MS-001"],
        "name and description"
    );
    assert_eq!(
        skus(&catalogue.get(&search("bluetooth azerty")).await),
        vec!["KB-002"]
    );
    assert_eq!(
        skus(&catalogue.get(&search("MON-27")).await),
        vec!["MON-27"]
    );
    // ...the last word as a prefix (typing in a search box)...
    let mut prefixed = skus(&catalogue.get(&search("câble hd")).await);
    prefixed.sort();
    assert_eq!(prefixed, vec!["CAB-HDMI"]);
    assert_eq!(
        skus(&catalogue.get(&search("rétroécl")).await),
        vec!["KB-001"]
    );
    // ...but never a substring in the middle of a word (LIKE '%x%' would).
    assert!(skus(&catalogue.get(&search("lavier")).await).is_empty());
    assert!(skus(&catalogue.get(&search("canique")).await).is_empty());
    // Every word must match.
    assert!(skus(&catalogue.get(&search("clavier hdmi")).await).is_empty());
    // Relevance first without sort_by; combined with a filter and a sort.
    let relevant = catalogue.get(&search("clavier")).await;
    assert_eq!(relevant["total"], 3);
    let combined = catalogue
        .get(&format!(
            "{}&status=active&sort_by=price&order=desc",
            search("clavier")
        ))
        .await;
    assert_eq!(skus(&combined), vec!["KB-001", "KB-002"]);
    let paged = catalogue
        .get(&format!(
            "{}&sort_by=price&page=2&page_size=1",
            search("clavier")
        ))
        .await;
    assert_eq!(
        (paged["total"].as_i64(), paged["total_pages"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(skus(&paged), vec!["KB-002"]);
    // User text is never query syntax.
    for hostile in [
        "\"",
        "clavier\"",
        "*",
        "clavier OR souris",
        "NEAR(clavier souris)",
        "sku:KB",
        "-clavier",
        "clavier AND",
        "(",
        "'",
        "a & b | !c",
        ":*",
        "   ",
        "!!!",
    ] {
        let body = catalogue.get(&search(hostile)).await;
        assert!(body["items"].is_array(), "{hostile}: {body}");
    }
    // "OR" is a word to find, not an operator: no product holds it.
    assert!(skus(&catalogue.get(&search("clavier OR souris")).await).is_empty());
    // Both indexes fold diacritics.
    assert_eq!(skus(&catalogue.get(&search("ecran")).await), vec!["MON-27"]);
    // The index follows updates and deletes.
    let mouse = &catalogue.get(&search("souris")).await["items"][0];
    let mouse_id = mouse["id"].as_i64().expect("id");
    catalogue
        .put(
            &format!("/{mouse_id}"),
            json!({"name": "Trackball ergonomique", "description": "Sans fil"}),
        )
        .await;
    assert!(skus(&catalogue.get(&search("souris")).await).is_empty());
    assert_eq!(
        skus(&catalogue.get(&search("trackball")).await),
        vec!["MS-001"]
    );
    catalogue.delete(&format!("/{mouse_id}")).await;
    assert!(skus(&catalogue.get(&search("trackball")).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_exact_through_json_sql_sorting_and_sums() {
    let catalogue = start().await;
    for (sku, price) in [
        ("P1", json!(0.1)),
        ("P2", json!(0.2)),
        ("P3", json!("0.30")),
        ("P4", json!(19.99)),
        ("P5", json!("999999999.99")),
        ("P6", json!("12,50")),
        ("P7", json!(0)),
    ] {
        catalogue
            .create(json!({"sku": sku, "name": sku, "price": price}))
            .await;
    }
    // The JSON text is the exact decimal: no 0.30000000000000004.
    let text = catalogue
        .send(Method::GET, "/?sort_by=price&order=asc", None)
        .await
        .text()
        .await
        .expect("text");
    for exact in [
        "\"price\":0.1,",
        "\"price\":0.2,",
        "\"price\":0.3,",
        "\"price\":19.99,",
        "\"price\":999999999.99,",
        "\"price\":12.5,",
    ] {
        assert!(text.contains(exact), "{exact} in {text}");
    }
    assert!(!text.contains("0000000"), "{text}");
    let list: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(skus(&list), vec!["P7", "P1", "P2", "P3", "P6", "P4", "P5"]);
    // Stored as integer cents, so SQL sums are exact: 0.1 + 0.2 == 0.3.
    let pool = catalogue.server.state.db.pool();
    let sum: i64 = sqlx::query(
        "SELECT CAST(SUM(price_cents) AS BIGINT) AS s FROM products WHERE sku IN ('P1', 'P2')",
    )
    .fetch_one(pool)
    .await
    .expect("sum")
    .try_get("s")
    .expect("s");
    let p3: i64 = sqlx::query("SELECT price_cents FROM products WHERE sku = 'P3'")
        .fetch_one(pool)
        .await
        .expect("p3")
        .try_get("price_cents")
        .expect("cents");
    assert_eq!((sum, p3), (30, 30));
    // 0.1 + 0.2 filtered as 0.3 finds exactly the 0.3 product.
    assert_eq!(
        skus(&catalogue.get("/?price_min=0.3&price_max=0.3").await),
        vec!["P3"]
    );
    for (price, reason) in [
        (json!(0.001), "at most 2 decimals"),
        (json!("1000000000"), "at most"),
        (json!(-0.01), ">= 0"),
        (json!("dix"), "decimal number"),
    ] {
        let body = catalogue
            .invalid(
                Method::POST,
                "/",
                json!({"sku": "BAD", "name": "bad", "price": price}),
            )
            .await;
        let message = body["error"]["details"][0]["message"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains(reason), "{price}: {body}");
    }
}
