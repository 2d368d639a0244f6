//! Search means the same on both databases: every kind of search (a name
//! word, a prefix, a whole hyphenated SKU, a SKU's prefix, a description
//! word, diacritics either way, punctuation inside words) finds the same
//! rows on SQLite and PostgreSQL, and rows are searchable as soon as a
//! create, an update or a bulk (insert or update) has answered. This file
//! runs unchanged on both, so each expectation holds on each.

use crate::{skus, start, urlencode, Catalogue};
use serde_json::json;

/// The SKUs `text` finds, sorted; asked twice, ranked and sorted by a
/// column, which take different query shapes on both databases.
async fn found(catalogue: &Catalogue, text: &str) -> Vec<String> {
    let path = format!("/?search={}", urlencode(text));
    let mut ranked = skus(&catalogue.get(&format!("{path}&page_size=100")).await);
    ranked.sort();
    let sorted = skus(
        &catalogue
            .get(&format!("{path}&page_size=100&sort_by=name"))
            .await,
    );
    let mut by_name = sorted.clone();
    by_name.sort();
    assert_eq!(ranked, by_name, "{text}: ranked and sorted searches agree");
    let counted = catalogue.get(&format!("{path}&page_size=1")).await;
    assert_eq!(
        counted["total"].as_u64(),
        Some(ranked.len() as u64),
        "{text}: the count agrees"
    );
    ranked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_search_finds_the_same_rows_on_both_databases() {
    let catalogue = start().await;
    let rows = json!([
        {"sku": "KEY-001", "name": "Keyboard", "description": "Mechanical, 105 keys", "price": 99},
        {"sku": "KEY-002", "name": "Clavier compact", "description": "Sans pavé numérique", "price": 49},
        {"sku": "KEY-0150", "name": "Keycap set", "description": "PBT, 12.50 mm", "price": 19},
        {"sku": "PROD-NEW-001", "name": "Écran 27\"", "description": "Dalle IPS; câble USB-C/HDMI inclus", "price": 249},
        {"sku": "AB12-cd", "name": "Adaptateur", "description": "e-mail: support@example.com", "price": 9},
        {"sku": "SMØR-1", "name": "Smørrebrød", "description": "Łódź édition", "price": 5},
        {"sku": "MISC_7", "name": "Misc", "description": "x.y version 2.0.1", "price": 1}
    ]);
    let bulk = catalogue.action("/bulk", json!({"products": rows})).await;
    assert_eq!(bulk["created"], 7, "{bulk}");

    for (text, expected) in [
        // Whole SKUs, hyphenated, any case: the KEY-001.
        ("KEY-001", vec!["KEY-001"]),
        ("key-001", vec!["KEY-001"]),
        ("PROD-NEW-001", vec!["PROD-NEW-001"]),
        ("AB12-cd", vec!["AB12-cd"]),
        ("MISC_7", vec!["MISC_7"]),
        // A SKU's prefix, as typed.
        ("KEY-", vec!["KEY-0150", "KEY-001", "KEY-002"]),
        ("KEY-0", vec!["KEY-0150", "KEY-001", "KEY-002"]),
        ("KEY-01", vec!["KEY-0150"]),
        ("KEY-00", vec!["KEY-001", "KEY-002"]),
        ("PROD-NEW", vec!["PROD-NEW-001"]),
        // Name words and prefixes, never a substring.
        ("keyboard", vec!["KEY-001"]),
        ("key", vec!["KEY-0150", "KEY-001", "KEY-002"]),
        ("keyc", vec!["KEY-0150"]),
        ("clavier comp", vec!["KEY-002"]),
        ("eyboard", vec![]),
        // Description words, including around punctuation.
        ("mechanical", vec!["KEY-001"]),
        ("105", vec!["KEY-001"]),
        ("12.50", vec!["KEY-0150"]),
        ("50 mm", vec!["KEY-0150"]),
        ("USB-C", vec!["PROD-NEW-001"]),
        ("hdmi", vec!["PROD-NEW-001"]),
        ("support@example.com", vec!["AB12-cd"]),
        ("example", vec!["AB12-cd"]),
        ("x.y", vec!["MISC_7"]),
        ("2.0.1", vec!["MISC_7"]),
        // Diacritics folded both ways; letters without one kept.
        ("ecran", vec!["PROD-NEW-001"]),
        ("ÉCRAN", vec!["PROD-NEW-001"]),
        ("pave numerique", vec!["KEY-002"]),
        ("cable", vec!["PROD-NEW-001"]),
        ("edition", vec!["SMØR-1"]),
        ("łodz", vec!["SMØR-1"]),
        ("Łódź", vec!["SMØR-1"]),
        // SQLite's index keeps ł, ø: so does PostgreSQL's.
        ("lodz", vec![]),
        ("smørrebrød", vec!["SMØR-1"]),
        ("SMØR-1", vec!["SMØR-1"]),
        ("smorrebrod", vec![]),
        // Every word must match.
        ("keyboard 105", vec!["KEY-001"]),
        ("keyboard ecran", vec![]),
    ] {
        let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
        expected.sort();
        assert_eq!(found(&catalogue, text).await, expected, "search {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_searchable_at_once() {
    let catalogue = start().await;
    // Create.
    let created = catalogue
        .create(json!({"sku": "NEW-001", "name": "Lampe", "price": 10}))
        .await;
    assert_eq!(found(&catalogue, "NEW-001").await, vec!["NEW-001"]);
    // Update: the new SKU and words are found, the old ones no longer.
    let id = created["id"].as_i64().expect("id");
    catalogue
        .put(
            &format!("/{id}"),
            json!({"sku": "LAMP-042", "description": "Lumière LED"}),
        )
        .await;
    assert!(found(&catalogue, "NEW-001").await.is_empty());
    assert_eq!(found(&catalogue, "LAMP-042").await, vec!["LAMP-042"]);
    assert_eq!(found(&catalogue, "lumiere").await, vec!["LAMP-042"]);
    // Bulk insert.
    catalogue
        .action(
            "/bulk",
            json!({"products": [
                {"sku": "BULK-001", "name": "Chaise", "price": 30},
                {"sku": "BULK-002", "name": "Table", "price": 90}
            ]}),
        )
        .await;
    assert_eq!(found(&catalogue, "BULK-002").await, vec!["BULK-002"]);
    assert_eq!(
        found(&catalogue, "BULK-").await,
        vec!["BULK-001", "BULK-002"]
    );
    // Bulk update of existing SKUs: the index follows the new text.
    catalogue
        .action(
            "/bulk",
            json!({"products": [
                {"sku": "BULK-001", "name": "Fauteuil", "price": 30}
            ], "update_existing": true}),
        )
        .await;
    assert_eq!(found(&catalogue, "fauteuil").await, vec!["BULK-001"]);
    assert!(found(&catalogue, "chaise").await.is_empty());
    // Delete.
    catalogue.delete(&format!("/{id}")).await;
    assert!(found(&catalogue, "LAMP-042").await.is_empty());
}
