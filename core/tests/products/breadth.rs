//! Searches of every breadth give the same pages and totals whichever
//! plan answers them: a word in most products (the sort column's index is
//! walked for early pages), a word in a few (the matches are sorted), deep
//! pages, with and without a status filter, in every order, against the
//! expected pages computed here from the rows written. Also: a bulk stores
//! every field as given (SQLite binds the whole batch as one JSON value).

use crate::{skus, start};
use serde_json::{json, Value};

/// The seeded products: (sku, name, price in cents, status, words).
struct Row {
    sku: String,
    name: String,
    cents: i64,
    active: bool,
    id: i64,
}

const PRODUCTS: usize = 3000;

/// Whether a filter keeps a row.
type Keeps = fn(&Row) -> bool;

/// Product `n`: "commun" in 3 of 5, "rare" in 1 of 50, prices and names
/// with many ties so the `id` tie-breaker decides often.
fn product(n: usize) -> Value {
    let mut words = Vec::new();
    if n % 5 < 3 {
        words.push("commun");
    }
    if n % 50 == 7 {
        words.push("rare");
    }
    json!({
        "sku": format!("BR-{n:05}"),
        "name": format!("article {}", n % 37),
        "description": words.join(" "),
        "price": format!("{}.{:02}", (n * 7919) % 61, n % 3),
        "status": if n % 3 == 2 { "inactive" } else { "active" },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_of_every_breadth_page_and_count_like_the_rows_say() {
    let catalogue = start().await;
    let products: Vec<Value> = (0..PRODUCTS).map(product).collect();
    let done = catalogue
        .action("/bulk", json!({ "products": products }))
        .await;
    let ids = done["ids"].as_array().expect("ids");
    let rows: Vec<(Row, Vec<&str>)> = (0..PRODUCTS)
        .map(|n| {
            let p = &products[n];
            let cents = {
                let (units, cents) = p["price"]
                    .as_str()
                    .and_then(|t| t.split_once('.'))
                    .expect("price");
                units.parse::<i64>().expect("units") * 100 + cents.parse::<i64>().expect("cents")
            };
            let words: Vec<&str> = p["description"]
                .as_str()
                .unwrap_or("")
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect();
            (
                Row {
                    sku: p["sku"].as_str().expect("sku").to_string(),
                    name: p["name"].as_str().expect("name").to_string(),
                    cents,
                    active: p["status"] == "active",
                    id: ids[n].as_i64().expect("id"),
                },
                words,
            )
        })
        .collect();

    for word in ["commun", "rare"] {
        // No filter, each status (SQLite counts these from the full-text
        // indexes alone), and a filter that is not a status.
        let filters: [(&str, Keeps); 5] = [
            ("", |_| true),
            ("&status=active", |row| row.active),
            ("&status=inactive", |row| !row.active),
            ("&is_active=false", |row| !row.active),
            ("&status=active&price_min=0.01", |row| {
                row.active && row.cents >= 1
            }),
        ];
        for (filter, keep) in filters {
            let mut matches: Vec<&Row> = rows
                .iter()
                .filter(|(row, words)| words.contains(&word) && keep(row))
                .map(|(row, _)| row)
                .collect();
            for (sort, order) in [
                ("price", "asc"),
                ("price", "desc"),
                ("name", "asc"),
                ("created_at", "desc"),
            ] {
                matches.sort_by(|a, b| {
                    let key = match sort {
                        "price" => a.cents.cmp(&b.cents),
                        "name" => a.name.cmp(&b.name),
                        // One bulk: every row has the same created_at.
                        _ => std::cmp::Ordering::Equal,
                    }
                    .then(a.id.cmp(&b.id));
                    if order == "desc" {
                        key.reverse()
                    } else {
                        key
                    }
                });
                let last_page = matches.len().div_ceil(20).max(1);
                for page in [1, 2, 10, 40, last_page, last_page + 1] {
                    let body = catalogue
                        .get(&format!(
                            "/?search={word}{filter}&sort_by={sort}&order={order}\
                             &page={page}&page_size=20"
                        ))
                        .await;
                    let expected: Vec<String> = matches
                        .iter()
                        .skip((page - 1) * 20)
                        .take(20)
                        .map(|row| row.sku.clone())
                        .collect();
                    let what = format!("{word}{filter} by {sort} {order}, page {page}");
                    assert_eq!(skus(&body), expected, "{what}");
                    assert_eq!(body["total"], matches.len(), "{what}");
                }
            }
            // By relevance: every match once across the pages, in the order
            // of one large page, and the same total.
            let whole = catalogue
                .get(&format!("/?search={word}{filter}&page_size=100"))
                .await;
            assert_eq!(whole["total"], matches.len(), "{word}{filter} ranked");
            let first_hundred = skus(&whole);
            let mut paged = Vec::new();
            for page in 1..=5 {
                let body = catalogue
                    .get(&format!("/?search={word}{filter}&page={page}&page_size=20"))
                    .await;
                assert_eq!(body["total"], matches.len(), "{word}{filter} ranked");
                paged.extend(skus(&body));
            }
            assert_eq!(paged, first_hundred, "{word}{filter}: pages agree");
            let mut all_ranked = Vec::new();
            for page in 1.. {
                let body = catalogue
                    .get(&format!(
                        "/?search={word}{filter}&page={page}&page_size=100"
                    ))
                    .await;
                let found = skus(&body);
                if found.is_empty() {
                    break;
                }
                all_ranked.extend(found);
            }
            let mut expected: Vec<String> = matches.iter().map(|row| row.sku.clone()).collect();
            expected.sort();
            all_ranked.sort();
            assert_eq!(all_ranked, expected, "{word}{filter}: every match, once");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stores_every_field_as_given_and_upserts_only_the_fields_given() {
    let catalogue = start().await;
    let category = catalogue
        .post("/categories", json!({"name": "Lampes"}))
        .await["id"]
        .as_i64()
        .expect("id");
    let supplier = catalogue.supplier("Fournisseur B").await;
    let full = json!({
        "sku": "FULL-1", "name": "Lampe « été »", "description": "Ligne 1\nLigne \"2\" \\ fin",
        "price": "999999999.99", "stock": 1_000_000, "supplier_id": supplier,
        "category_id": category, "status": "draft",
        "images": ["https://example.com/a.png", "https://example.com/b.png"],
        "attributes": {"couleur": "bleu", "n": 3, "nested": {"a": [1, null]}}
    });
    let bare = json!({"sku": "BARE-1", "name": "Nu", "price": 0});
    let done = catalogue
        .action("/bulk", json!({"products": [full, bare]}))
        .await;
    let full_id = done["ids"][0].as_i64().expect("id");
    let bare_id = done["ids"][1].as_i64().expect("id");
    let stored = catalogue.get(&format!("/{full_id}")).await;
    for field in [
        "sku",
        "name",
        "description",
        "stock",
        "supplier_id",
        "category_id",
        "status",
        "images",
        "attributes",
    ] {
        assert_eq!(stored[field], full[field], "{field}");
    }
    assert_eq!(stored["price"], json!(999999999.99));
    let stored = catalogue.get(&format!("/{bare_id}")).await;
    assert_eq!(
        (
            &stored["description"],
            &stored["supplier_id"],
            &stored["category_id"],
            &stored["stock"],
            &stored["status"],
            &stored["images"],
            &stored["attributes"],
        ),
        (
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &json!(0),
            &json!("active"),
            &json!([]),
            &json!({})
        )
    );
    // Upserts in two field sets in one request: each row changes only
    // what it gives (a null counts as not given, as before).
    let upsert = catalogue
        .action(
            "/bulk",
            json!({"update_existing": true, "products": [
                {"sku": "FULL-1", "name": "Lampe", "price": 1, "supplier_id": null},
                {"sku": "BARE-1", "name": "Nu", "price": 0, "stock": 7, "category_id": category},
                {"sku": "NEW-1", "name": "Neuf", "price": 2}
            ]}),
        )
        .await;
    assert_eq!(
        (upsert["created"].as_i64(), upsert["updated"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(upsert["ids"][0], full_id);
    assert_eq!(upsert["ids"][1], bare_id);
    let full_after = catalogue.get(&format!("/{full_id}")).await;
    assert_eq!(full_after["name"], "Lampe");
    assert_eq!(full_after["price"], json!(1.0));
    assert_eq!(full_after["supplier_id"], supplier);
    assert_eq!(full_after["category_id"], category);
    assert_eq!(full_after["stock"], 1_000_000);
    assert_eq!(full_after["attributes"], full["attributes"]);
    let bare_after = catalogue.get(&format!("/{bare_id}")).await;
    assert_eq!(bare_after["stock"], 7);
    assert_eq!(bare_after["category_id"], category);
    assert_eq!(bare_after["status"], "active");
}

/// The status-filtered searches SQLite counts from a second full-text
/// index (with the status) follow every write: create, bulk, status
/// changes, text updates, deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_search_counts_follow_every_write() {
    let catalogue = start().await;
    let counts = |body: Value| (body["total"].as_i64(), skus(&body));
    let active = || catalogue.get("/?search=lanterne&status=active&sort_by=name");
    let inactive = || catalogue.get("/?search=lanterne&is_active=false&sort_by=name");
    let one = catalogue
        .create(json!({"sku": "L-1", "name": "Lanterne A", "price": 1}))
        .await;
    catalogue
        .action(
            "/bulk",
            json!({"products": [
                {"sku": "L-2", "name": "Lanterne B", "price": 1, "status": "draft"},
                {"sku": "L-3", "name": "Bougie", "description": "pour lanterne", "price": 1}
            ]}),
        )
        .await;
    assert_eq!(
        counts(active().await),
        (Some(2), vec!["L-3".into(), "L-1".into()])
    );
    assert_eq!(counts(inactive().await), (Some(1), vec!["L-2".into()]));
    let id = one["id"].as_i64().expect("id");
    catalogue.action(&format!("/{id}/deactivate"), None).await;
    assert_eq!(counts(active().await), (Some(1), vec!["L-3".into()]));
    assert_eq!(
        counts(inactive().await),
        (Some(2), vec!["L-1".into(), "L-2".into()])
    );
    catalogue
        .put(
            &format!("/{id}"),
            json!({"name": "Lampe", "status": "active"}),
        )
        .await;
    assert_eq!(counts(active().await), (Some(1), vec!["L-3".into()]));
    assert_eq!(counts(inactive().await), (Some(1), vec!["L-2".into()]));
    catalogue
        .action(
            "/bulk",
            json!({"update_existing": true, "products": [
                {"sku": "L-2", "name": "Lanterne B", "price": 1, "status": "active"}
            ]}),
        )
        .await;
    assert_eq!(
        counts(active().await),
        (Some(2), vec!["L-3".into(), "L-2".into()])
    );
    let l3 = catalogue.get("/?search=bougie").await["items"][0]["id"]
        .as_i64()
        .expect("id");
    catalogue.delete(&format!("/{l3}")).await;
    assert_eq!(counts(active().await), (Some(1), vec!["L-2".into()]));
    // By relevance too (SQLite takes that status's matches from the index).
    let ranked = catalogue.get("/?search=lanterne&status=active").await;
    assert_eq!(counts(ranked), (Some(1), vec!["L-2".into()]));
    assert_eq!(counts(inactive().await), (Some(0), vec![]));
}
