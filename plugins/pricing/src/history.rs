//! The price history of catalogue products, fed by the products plugin's
//! events so every change is recorded whichever way it was made:
//! `products.created` (the first price), `products.updated` with a
//! `price_change` (a `PUT`, including the one pricing's own route makes),
//! `products.bulk` and `products.prices_imported` (their `price_changes`).
//!
//! A change is keyed by (product, instant, new price): when pricing's
//! `PUT /products/{id}/price` records its change with the reason, the
//! event that reports the same change later (or earlier: delivery is
//! asynchronous) lands on the same row, so nothing is recorded twice and
//! the reason is kept.

use serde::Deserialize;
use xcore_plugin_sdk::{prelude::*, Statement};

use crate::{money, Pricing};

/// One recorded change, as written.
pub struct Change<'a> {
    /// `products.id`.
    pub product_id: i64,
    /// The product's SKU.
    pub sku: Option<&'a str>,
    /// The price before (`None`: the product's first price).
    pub old_cents: Option<i64>,
    /// The price after.
    pub new_cents: i64,
    /// Why, when the caller said.
    pub reason: Option<&'a str>,
    /// What made it: `pricing`, `products.update`, `products.create`,
    /// `products.bulk`, `products.import`.
    pub source: &'a str,
    /// The user who made it, when known.
    pub changed_by: Option<i64>,
    /// When (the product's `updated_at`).
    pub changed_at: &'a str,
}

impl Change<'_> {
    /// The statements that record it: an event's INSERT keeps what is
    /// there; pricing's own route (`authoritative`) then sets its reason,
    /// source and author on the row, whoever inserted it first.
    pub fn statements(&self, authoritative: bool) -> Vec<Statement> {
        let mut statements = vec![insert_many(std::slice::from_ref(self))];
        if authoritative {
            statements.push(Statement::new(
                "UPDATE pricing_history SET reason = $1, source = $2, changed_by = $3 \
                 WHERE product_id = $4 AND changed_at = $5 AND new_price_cents = $6",
                params![
                    self.reason,
                    self.source,
                    self.changed_by,
                    self.product_id,
                    self.changed_at,
                    self.new_cents
                ],
            ));
        }
        statements
    }
}

/// The price fields of products' events.
#[derive(Deserialize)]
struct EventChange {
    id: i64,
    sku: Option<String>,
    old_price: Option<Value>,
    new_price: Value,
}

/// `products.created`: a product with its first price.
#[derive(Deserialize)]
struct CreatedProduct {
    id: i64,
    sku: Option<String>,
    price: Value,
    updated_at: String,
}

/// `products.updated`: the product, with `price_change` when it changed.
#[derive(Deserialize)]
struct UpdatedProduct {
    updated_at: String,
    price_change: Option<EventChange>,
    changed_by: Option<i64>,
}

/// `products.bulk` and `products.prices_imported`.
#[derive(Deserialize)]
struct ManyChanges {
    changed_at: String,
    #[serde(default)]
    price_changes: Vec<EventChange>,
}

/// `products.deleted`.
#[derive(Deserialize)]
struct Deleted {
    id: i64,
}

/// Subscribes to every products event.
pub fn listeners(router: Router<Pricing>) -> Router<Pricing> {
    router.on("products.*", |pricing: &Pricing, event: &Event| {
        pricing.on_products_event(event)
    })
}

/// A bulk or import batch changing more prices than this publishes one
/// summary `price_changed` (`changes`: how many) instead of one per product.
const MAX_EVENTS_PER_BATCH: usize = 100;

/// Rows per history INSERT of a bulk (8 parameters each).
const ROWS_PER_STATEMENT: usize = 500;

impl Pricing {
    fn on_products_event(&self, event: &Event) -> Result<(), String> {
        let changes: Vec<(EventChange, Option<i64>)>;
        let (source, changed_at) = match event.topic.as_str() {
            "products.created" => {
                let product: CreatedProduct = event.data_as()?;
                changes = vec![(
                    EventChange {
                        id: product.id,
                        sku: product.sku,
                        old_price: None,
                        new_price: product.price,
                    },
                    None,
                )];
                ("products.create", product.updated_at)
            }
            "products.updated" => {
                let product: UpdatedProduct = event.data_as()?;
                let Some(change) = product.price_change else {
                    return Ok(());
                };
                changes = vec![(change, product.changed_by)];
                ("products.update", product.updated_at)
            }
            "products.bulk" | "products.prices_imported" => {
                let many: ManyChanges = event.data_as()?;
                changes = many.price_changes.into_iter().map(|c| (c, None)).collect();
                let source = if event.topic == "products.bulk" {
                    "products.bulk"
                } else {
                    "products.import"
                };
                (source, many.changed_at)
            }
            "products.deleted" => {
                // A deleted product's discounts mean nothing; its history
                // stays, for the record.
                let deleted: Deleted = event.data_as()?;
                self.host
                    .execute(
                        "DELETE FROM pricing_discounts WHERE product_id = $1",
                        params![deleted.id],
                    )
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let mut rows = Vec::with_capacity(changes.len());
        for (change, changed_by) in &changes {
            let new_cents = money::parse(&change.new_price)?;
            let old_cents = match &change.old_price {
                None | Some(Value::Null) => None,
                Some(old) => Some(money::parse(old)?),
            };
            rows.push(Change {
                product_id: change.id,
                sku: change.sku.as_deref(),
                old_cents,
                new_cents,
                reason: None,
                source,
                changed_by: *changed_by,
                changed_at: &changed_at,
            });
        }
        if rows.is_empty() {
            return Ok(());
        }
        let statements: Vec<Statement> = rows.chunks(ROWS_PER_STATEMENT).map(insert_many).collect();
        self.host
            .transaction(statements)
            .map_err(|e| e.to_string())?;
        if rows.len() > MAX_EVENTS_PER_BATCH {
            self.announce(
                "price_changed",
                &json!({"source": source, "changed_at": changed_at, "changes": rows.len()}),
            );
            return Ok(());
        }
        for row in &rows {
            self.announce(
                "price_changed",
                &json!({
                    "product_id": row.product_id,
                    "sku": row.sku,
                    "old_price": money::to_json_opt(row.old_cents),
                    "new_price": money::to_json(row.new_cents),
                    "source": row.source,
                    "changed_at": row.changed_at,
                }),
            );
        }
        Ok(())
    }
}

/// One multi-row INSERT of changes (existing rows kept). A missing
/// number is written as `NULL` rather than bound: PostgreSQL reads a bound
/// null as text, which a BIGINT column refuses.
fn insert_many(rows: &[Change<'_>]) -> Statement {
    let mut params: Vec<Value> = Vec::with_capacity(rows.len() * 7);
    let mut tuples = Vec::with_capacity(rows.len());
    for row in rows {
        let mut bind = |value: Value| {
            params.push(value);
            format!("${}", params.len())
        };
        let product = bind(json!(row.product_id));
        let sku = match row.sku {
            Some(sku) => bind(json!(sku)),
            None => "NULL".into(),
        };
        let old = match row.old_cents {
            Some(old) => bind(json!(old)),
            None => "NULL".into(),
        };
        let new = bind(json!(row.new_cents));
        // Placeholders are numbered in the order they appear.
        let reason = match row.reason {
            Some(reason) => bind(json!(reason)),
            None => "NULL".into(),
        };
        let source = bind(json!(row.source));
        let by = match row.changed_by {
            Some(by) => bind(json!(by)),
            None => "NULL".into(),
        };
        let at = bind(json!(row.changed_at));
        tuples.push(format!(
            "({product}, {sku}, {old}, {new}, {reason}, {source}, {by}, {at})"
        ));
    }
    Statement::new(
        &format!(
            "INSERT INTO pricing_history (product_id, sku, old_price_cents, new_price_cents, \
             reason, source, changed_by, changed_at) VALUES {} \
             ON CONFLICT (product_id, changed_at, new_price_cents) DO NOTHING",
            tuples.join(", ")
        ),
        params,
    )
}
