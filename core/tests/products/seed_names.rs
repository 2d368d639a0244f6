//! Seed 003's names (`name`, `minPrice`, `maxPrice`, `categoryId`,
//! `isActive`, `pageSize` in the list's query; `categoryId`, `isActive`,
//! `clearCategory` in bodies) next to the API's snake_case ones: the same
//! rows either way, conflicting spellings and unknown parameters refused
//! with a 422 naming what the client sent, and nothing written on a
//! refused body.

use crate::{detail_fields, skus, start, Catalogue};
use reqwest::Method;
use serde_json::{json, Value};

/// The list's SKUs, sorted (for filters without a sort).
async fn sorted(catalogue: &Catalogue, query: &str) -> Vec<String> {
    let mut found = skus(&catalogue.get(&format!("/?{query}")).await);
    found.sort();
    found
}

async fn refused_query(catalogue: &Catalogue, query: &str) -> Value {
    catalogue
        .invalid(Method::GET, &format!("/?{query}"), None)
        .await
}

async fn category(catalogue: &Catalogue, name: &str) -> i64 {
    catalogue.post("/categories", json!({"name": name})).await["id"]
        .as_i64()
        .expect("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_query_names_filter_like_the_api_names() {
    let catalogue = start().await;
    let keyboards = category(&catalogue, "Claviers").await;
    let mice = category(&catalogue, "Souris").await;
    let rows = json!([
        {"sku": "KEYBOARD-001", "name": "Keyboard", "price": "99.99", "stock": 25, "categoryId": keyboards},
        {"sku": "KEYBOARD-002", "name": "Keyboard compact", "price": 49.5, "categoryId": keyboards, "isActive": false},
        {"sku": "MOUSE-001", "name": "Mouse", "price": 19, "category_id": mice, "status": "draft"},
        {"sku": "MOUSE-002", "name": "Mouse pad", "price": 5, "categoryId": mice, "isActive": true},
        {"sku": "CABLE-001", "name": "Cable", "price": "0.50"}
    ]);
    let created = catalogue.action("/bulk", json!({"products": rows})).await;
    assert_eq!(created["created"], 5, "{created}");

    // Each seed name finds what its API name finds, and something specific.
    let by_keyboards = (
        format!("categoryId={keyboards}"),
        format!("category_id={keyboards}"),
    );
    let combined = (
        format!("name=mouse&minPrice=1&maxPrice=100&categoryId={mice}&isActive=false"),
        format!("search=mouse&price_min=1&price_max=100&category_id={mice}&is_active=false"),
    );
    let cases: Vec<(String, String, Vec<&str>)> = [
        (
            "name=keyboard",
            "search=keyboard",
            vec!["KEYBOARD-001", "KEYBOARD-002"],
        ),
        (
            "minPrice=19",
            "price_min=19",
            vec!["KEYBOARD-001", "KEYBOARD-002", "MOUSE-001"],
        ),
        ("maxPrice=5", "price_max=5", vec!["CABLE-001", "MOUSE-002"]),
        (
            by_keyboards.0.as_str(),
            by_keyboards.1.as_str(),
            vec!["KEYBOARD-001", "KEYBOARD-002"],
        ),
        (
            "isActive=true",
            "is_active=true",
            vec!["CABLE-001", "KEYBOARD-001", "MOUSE-002"],
        ),
        // Not active: inactive and draft alike.
        (
            "isActive=false",
            "is_active=false",
            vec!["KEYBOARD-002", "MOUSE-001"],
        ),
        (combined.0.as_str(), combined.1.as_str(), vec!["MOUSE-001"]),
    ]
    .into_iter()
    .map(|(seed, api, expected)| (seed.to_string(), api.to_string(), expected))
    .collect();
    for (seed, api, expected) in cases {
        let by_seed = sorted(&catalogue, &seed).await;
        assert_eq!(by_seed, expected, "{seed}");
        assert_eq!(sorted(&catalogue, &api).await, expected, "{api}");
    }
    // The seed's paging: page + pageSize, answered with the page fields.
    let page = catalogue
        .get("/?page=2&pageSize=2&sort_by=price&order=asc")
        .await;
    assert_eq!(skus(&page), vec!["MOUSE-001", "KEYBOARD-002"]);
    assert_eq!(
        (
            page["page"].as_i64(),
            page["page_size"].as_i64(),
            page["total_pages"].as_i64()
        ),
        (Some(2), Some(2), Some(3))
    );
    // Both spellings with the same value are one parameter.
    assert_eq!(
        sorted(&catalogue, "minPrice=19&price_min=19").await,
        vec!["KEYBOARD-001", "KEYBOARD-002", "MOUSE-001"]
    );
    assert_eq!(
        skus(&catalogue.get("/?pageSize=1&page_size=1").await).len(),
        1
    );
    // isActive and status together must agree.
    assert_eq!(
        sorted(&catalogue, "isActive=false&status=draft").await,
        vec!["MOUSE-001"]
    );

    // Refusals name the parameter as the client sent it.
    let two_categories = format!("categoryId={keyboards}&category_id={mice}");
    for (query, field, says) in [
        (
            "minPrice=1&price_min=2",
            "minPrice",
            "conflicts with price_min=2",
        ),
        (
            "name=mouse&search=keyboard",
            "name",
            "conflicts with search",
        ),
        (
            two_categories.as_str(),
            "categoryId",
            "conflicts with category_id",
        ),
        (
            "pageSize=2&page_size=3",
            "pageSize",
            "conflicts with page_size",
        ),
        (
            "isActive=true&is_active=false",
            "isActive",
            "conflicts with is_active",
        ),
        (
            "isActive=true&status=inactive",
            "isActive",
            "conflicts with status=inactive",
        ),
        ("isActive=maybe", "isActive", "true or false"),
        ("minPrice=cheap", "minPrice", "decimal"),
        ("minPrice=9&maxPrice=1", "minPrice", "<="),
        ("categoryId=x", "categoryId", "positive integer"),
        ("pageSize=0", "pageSize", "between 1 and 100"),
        ("pageSize=101", "pageSize", "between 1 and 100"),
        ("colour=red", "colour", "unknown parameter"),
        ("MinPrice=1", "MinPrice", "unknown parameter"),
    ] {
        let body = refused_query(&catalogue, query).await;
        assert_eq!(
            detail_fields(&body),
            vec![field.to_string()],
            "{query}: {body}"
        );
        let message = body["error"]["details"][0]["message"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains(says), "{query}: {body}");
    }
    // Every problem at once.
    let body = refused_query(&catalogue, "colour=red&minPrice=1&price_min=2").await;
    assert_eq!(detail_fields(&body), vec!["colour", "minPrice"], "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_body_names_write_like_the_api_names_and_conflicts_write_nothing() {
    let catalogue = start().await;
    let keyboards = category(&catalogue, "Claviers").await;
    let mice = category(&catalogue, "Souris").await;

    // Seed 003's creation DTO: name, sku, price, stock, description,
    // categoryId; isActive false is an inactive product.
    let product = catalogue
        .create(json!({
            "name": "Keyboard", "sku": "KEYBOARD-001", "price": 99.99, "stock": 25,
            "description": "Mechanical", "categoryId": keyboards, "isActive": false
        }))
        .await;
    assert_eq!(product["category_id"], keyboards, "{product}");
    assert_eq!(product["status"], "inactive", "{product}");
    let id = product["id"].as_i64().expect("id");
    let path = format!("/{id}");

    // Updates: categoryId moves it, isActive flips it, clearCategory
    // removes the category.
    let moved = catalogue
        .put(&path, json!({"categoryId": mice, "isActive": true}))
        .await;
    assert_eq!(
        (moved["category_id"].as_i64(), moved["status"].as_str()),
        (Some(mice), Some("active"))
    );
    let cleared = catalogue.put(&path, json!({"clearCategory": true})).await;
    assert_eq!(cleared["category_id"], Value::Null, "{cleared}");
    // clearCategory false changes nothing (and alone is an empty update).
    let kept = catalogue
        .put(
            &path,
            json!({"clearCategory": false, "categoryId": keyboards}),
        )
        .await;
    assert_eq!(kept["category_id"], keyboards);
    catalogue
        .invalid(Method::PUT, &path, json!({"clearCategory": false}))
        .await;
    // An unknown category is refused under the API name it maps to.
    let body = catalogue
        .invalid(Method::PUT, &path, json!({"categoryId": 999_999}))
        .await;
    assert_eq!(detail_fields(&body), vec!["category_id"], "{body}");

    // Conflicting spellings: 422 naming them, and the product unchanged.
    let before = catalogue.get(&path).await;
    for (body, fields) in [
        (
            json!({"categoryId": keyboards, "category_id": mice, "name": "Renamed"}),
            vec!["categoryId"],
        ),
        (
            json!({"isActive": false, "status": "active", "name": "Renamed"}),
            vec!["isActive"],
        ),
        (
            json!({"clearCategory": true, "categoryId": mice, "name": "Renamed"}),
            vec!["clearCategory"],
        ),
        (json!({"clearCategory": "yes"}), vec!["clearCategory"]),
        (
            json!({"isActive": 1, "price": -1}),
            vec!["isActive", "price"],
        ),
    ] {
        let refused = catalogue.invalid(Method::PUT, &path, body.clone()).await;
        assert_eq!(detail_fields(&refused), fields, "{body}: {refused}");
    }
    assert_eq!(catalogue.get(&path).await, before, "nothing was written");

    // Creates: clearCategory is for updates; conflicts write nothing.
    let rows_before = catalogue.count_rows().await;
    for (body, fields) in [
        (
            json!({"sku": "X-1", "name": "x", "price": 1, "clearCategory": true}),
            vec!["clearCategory"],
        ),
        (
            json!({"sku": "X-1", "name": "x", "price": 1, "categoryId": keyboards, "category_id": mice}),
            vec!["categoryId"],
        ),
        (
            json!({"sku": "X-1", "name": "x", "price": 1, "isActive": true, "status": "draft"}),
            vec!["isActive"],
        ),
    ] {
        let refused = catalogue.invalid(Method::POST, "/", body.clone()).await;
        assert_eq!(detail_fields(&refused), fields, "{body}: {refused}");
    }
    // A bulk with one conflicting row: its path in the details, no row
    // written.
    let bulk = catalogue
        .invalid(Method::POST, "/bulk", json!({"products": [
                {"sku": "B-1", "name": "ok", "price": 1, "categoryId": keyboards},
                {"sku": "B-2", "name": "bad", "price": 1, "categoryId": keyboards, "category_id": mice}
            ]}))
        .await;
    assert_eq!(
        detail_fields(&bulk),
        vec!["products[1].categoryId"],
        "{bulk}"
    );
    assert_eq!(catalogue.count_rows().await, rows_before);
    // Same values in both spellings are one field.
    let same = catalogue
        .create(json!({
            "sku": "SAME-1", "name": "Same", "price": 1,
            "categoryId": mice, "category_id": mice, "isActive": true, "status": "active"
        }))
        .await;
    assert_eq!(
        (same["category_id"].as_i64(), same["status"].as_str()),
        (Some(mice), Some("active"))
    );
}
