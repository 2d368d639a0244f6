//! What products' events say about prices, so a subscriber (the pricing
//! plugin's price history) sees every change however it was made: a
//! `PUT /{id}` (`products.updated` carries `price_change`), a bulk
//! (`products.bulk` carries `price_changes`), a CSV import (one
//! `products.prices_imported` per committed batch). A new product's first
//! price is a change from nothing (`old_price: null`).
//!
//! Prices are exact JSON numbers (see [`crate::money::to_json`]); `changed_at`
//! is the product's `updated_at` as stored, so a subscriber can tell one
//! change from another (a product changes price at most once per instant).

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::money;

/// One product's price moving from `old_price` to `new_price`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceChange {
    /// `products.id`.
    pub id: i64,
    /// Its SKU.
    pub sku: String,
    /// The price before, `null` for a new product.
    #[serde(serialize_with = "optional_price")]
    pub old_price: Option<i64>,
    /// The price after.
    #[serde(serialize_with = "price")]
    pub new_price: i64,
}

impl PriceChange {
    /// The change, if `old` and `new` differ (a new product always has one).
    pub fn between(id: i64, sku: &str, old: Option<i64>, new: i64) -> Option<Self> {
        (old != Some(new)).then(|| Self {
            id,
            sku: sku.to_string(),
            old_price: old,
            new_price: new,
        })
    }
}

fn price<S: Serializer>(cents: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    money::to_json(*cents).serialize(serializer)
}

fn optional_price<S: Serializer>(cents: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    cents
        .map_or(Value::Null, money::to_json)
        .serialize(serializer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::PriceChange;

    #[test]
    fn only_a_different_price_is_a_change_and_prices_are_exact_numbers() {
        assert_eq!(PriceChange::between(1, "A", Some(1250), 1250), None);
        let change = PriceChange::between(1, "A", Some(1250), 999).expect("change");
        assert_eq!(
            serde_json::to_value(&change).expect("json"),
            json!({"id": 1, "sku": "A", "old_price": 12.5, "new_price": 9.99})
        );
        let first = PriceChange::between(2, "B", None, 100).expect("first price");
        assert_eq!(
            serde_json::to_value(&first).expect("json")["old_price"],
            json!(null)
        );
    }
}
