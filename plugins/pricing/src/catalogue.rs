//! Catalogue prices (seed 003) for the products plugin's products:
//!
//! - `PUT /products/{id}/price` (`price`, optional `reason`): changes the
//!   price through products' own `PUT` with the caller's rights (products
//!   owns the price), then records the change with its reason; 204.
//! - `POST /products/{id}/discount` (`percent` or `amount`, optional
//!   `starts_at`/`ends_at`): 422 when it would make the price negative or
//!   its period overlaps another discount's; answers the price view.
//! - `DELETE /products/{id}/discount`: removes the discounts not yet over
//!   (current and scheduled); 404 when there is none.
//! - `GET /products/{id}/price`: `price`, `discount` (the one in effect),
//!   `effective_price`.
//! - `GET /products/{id}/price-history`: the standard list body, newest
//!   first.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{
    history::Change,
    money::{self, serde_price},
    Pricing, ProductId, READ, WRITE,
};

/// Longest `reason`, in characters.
const MAX_REASON_CHARS: usize = 500;

/// `PUT /products/{id}/price`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrice {
    /// The new price (a number or decimal text, at most 2 decimals).
    #[schema(value_type = f64, minimum = 0)]
    price: Value,
    /// Why it changes, kept in the history.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// `POST /products/{id}/discount`'s body: `percent` or `amount`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDiscount {
    /// A percentage of the price (0 < percent <= 100, 2 decimals).
    #[schema(value_type = Option<f64>)]
    percent: Option<Value>,
    /// An amount off the price (at most the price).
    #[schema(value_type = Option<f64>)]
    amount: Option<Value>,
    /// When it starts (RFC 3339); now when absent.
    starts_at: Option<String>,
    /// When it ends (RFC 3339, after `starts_at`); never when absent.
    ends_at: Option<String>,
}

/// A discount as stored and shown.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct Discount {
    /// Its id.
    pub id: i64,
    /// The percentage, in hundredths (not shown: see `percent`).
    #[serde(skip_serializing)]
    pub percent_hundredths: Option<i64>,
    /// The amount off, in cents (not shown: see `amount`).
    #[serde(skip_serializing)]
    pub amount_cents: Option<i64>,
    /// When it starts (`null`: already).
    pub starts_at: Option<String>,
    /// When it ends (`null`: never).
    pub ends_at: Option<String>,
}

/// `GET /products/{id}/price`'s answer.
#[derive(Serialize, ToSchema)]
pub struct PriceView {
    /// The product.
    product_id: i64,
    /// Its SKU.
    sku: String,
    /// The catalogue price.
    #[serde(serialize_with = "serde_price::serialize")]
    #[schema(value_type = f64)]
    price: i64,
    /// The discount in effect now, if any.
    #[schema(value_type = Option<Object>)]
    discount: Option<Value>,
    /// The price after the discount (never below 0).
    #[serde(serialize_with = "serde_price::serialize")]
    #[schema(value_type = f64)]
    effective_price: i64,
}

/// One entry of the history.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// Its id.
    id: i64,
    /// The product.
    product_id: i64,
    /// The product's SKU at the time.
    sku: Option<String>,
    /// The price before (`null`: the product's first price).
    #[serde(
        rename(serialize = "old_price"),
        serialize_with = "serde_price::option::serialize"
    )]
    #[schema(value_type = Option<f64>)]
    old_price_cents: Option<i64>,
    /// The price after.
    #[serde(
        rename(serialize = "new_price"),
        serialize_with = "serde_price::serialize"
    )]
    #[schema(value_type = f64)]
    new_price_cents: i64,
    /// Why, when the change was made here with a reason.
    reason: Option<String>,
    /// `pricing`, `products.update`, `products.create`, `products.bulk` or
    /// `products.import`.
    source: String,
    /// The user who made it, when known.
    changed_by: Option<i64>,
    /// When.
    changed_at: String,
}

/// A catalogue product's price, read from the products plugin's table
/// (a dependency's tables are readable).
#[derive(Deserialize)]
struct Catalogued {
    id: i64,
    sku: String,
    price_cents: i64,
}

/// What products' `PUT` answers, as far as pricing reads it.
#[derive(Deserialize)]
struct UpdatedProduct {
    sku: String,
    price: Value,
    updated_at: String,
}

/// The routes.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    router
        .put(
            "/products/{id}/price",
            Access::Requires(WRITE),
            Pricing::set_price,
        )
        .summary("Change a product's price (through the products plugin), with a reason")
        .doc(|op| {
            op.error_response(404, "No such product");
            op.error_response(422, "Invalid price");
        })
        .post(
            "/products/{id}/discount",
            Access::Requires(WRITE),
            Pricing::add_discount,
        )
        .summary("Discount a product by a percentage or an amount, over an optional period")
        .doc(|op| {
            op.error_response(404, "No such product");
            op.error_response(422, "Negative price or overlapping periods");
        })
        .delete(
            "/products/{id}/discount",
            Access::Requires(WRITE),
            Pricing::remove_discount,
        )
        .summary("Remove a product's current and scheduled discounts")
        .doc(|op| op.error_response(404, "No such product, or no discount"))
        .get(
            "/products/{id}/price",
            Access::Requires(READ),
            Pricing::price,
        )
        .summary("A product's price, discount in effect and effective price")
        .doc(|op| op.error_response(404, "No such product"))
        .get(
            "/products/{id}/price-history",
            Access::Requires(READ),
            Pricing::price_history,
        )
        .summary("A product's price changes, newest first, however they were made")
        .doc(|op| op.error_response(404, "No such product"))
}

fn no_product(id: i64) -> Response {
    Response::not_found(&format!("no product {id}"))
}

/// An RFC 3339 instant in the host's UTC format (so instants compare as
/// text), or a 422 naming `field`.
fn instant(raw: &str, field: &str) -> Result<String, Response> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|at| {
            at.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        })
        .map_err(|_| Response::invalid(field, "must be an RFC 3339 instant (2026-12-01T00:00:00Z)"))
}

/// The discount's value on `price` (never more than the price).
fn discount_cents(discount: &Discount, price: i64) -> i64 {
    let off = match (discount.percent_hundredths, discount.amount_cents) {
        (Some(percent), _) => money::percent_of(price, percent),
        (None, Some(amount)) => amount,
        (None, None) => 0,
    };
    off.min(price)
}

const DISCOUNT_COLUMNS: &str = "id, percent_hundredths, amount_cents, starts_at, ends_at";

impl Pricing {
    fn catalogued(&self, id: i64) -> Result<Option<Catalogued>, HostError> {
        self.host.query_one_as(
            "SELECT id, sku, price_cents FROM products WHERE id = $1",
            params![id],
        )
    }

    fn set_price(
        &self,
        ProductId(id): ProductId,
        caller: Caller,
        Json(body): Json<NewPrice>,
    ) -> Result<NoContent, Response> {
        let cents = money::parse(&body.price).map_err(|m| Response::invalid("price", &m))?;
        let reason = body
            .reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return Err(Response::invalid("reason", "at most 500 characters"));
        }
        let before = self.catalogued(id)?.ok_or_else(|| no_product(id))?;
        // Products owns the price: its route checks the caller's rights,
        // stores it and publishes the change (which the history listener
        // also sees).
        let path = format!("{}/{id}", self.products_prefix);
        let answer = self.host.call(
            "PUT",
            &path,
            Some(json!({"price": money::format_cents(cents)})),
        )?;
        if answer.status != 200 {
            return Err(Response::from_json(answer.status, &answer.body));
        }
        let product: UpdatedProduct = serde_json::from_value(answer.body).map_err(|_| {
            Response::plugin_error("the products plugin answered an unexpected body")
        })?;
        let stored = money::parse(&product.price).map_err(|m| Response::plugin_error(&m))?;
        if stored != before.price_cents {
            let change = Change {
                product_id: id,
                sku: Some(&product.sku),
                old_cents: Some(before.price_cents),
                new_cents: stored,
                reason: reason.as_deref(),
                source: "pricing",
                changed_by: Some(caller.user_id),
                changed_at: &product.updated_at,
            };
            self.host.transaction(change.statements(true))?;
        }
        Ok(NoContent)
    }

    /// The discounts of a product that are not over at `now`.
    fn open_discounts(&self, id: i64, now: &str) -> Result<Vec<Discount>, HostError> {
        self.host.query_as(
            &format!(
                "SELECT {DISCOUNT_COLUMNS} FROM pricing_discounts \
                 WHERE product_id = $1 AND (ends_at IS NULL OR ends_at > $2) ORDER BY id"
            ),
            params![id, now],
        )
    }

    fn view(&self, product: &Catalogued) -> Result<PriceView, HostError> {
        let now = now();
        let current = self
            .open_discounts(product.id, &now)?
            .into_iter()
            .find(|d| {
                d.starts_at
                    .as_deref()
                    .is_none_or(|start| start <= now.as_str())
            });
        let off = current
            .as_ref()
            .map_or(0, |d| discount_cents(d, product.price_cents));
        let discount = current.map(|d| {
            let mut shown = serde_json::to_value(&d).unwrap_or(Value::Null);
            shown["percent"] = d.percent_hundredths.map_or(Value::Null, money::to_json);
            shown["amount"] = money::to_json_opt(d.amount_cents);
            shown["value"] = money::to_json(off);
            shown
        });
        Ok(PriceView {
            product_id: product.id,
            sku: product.sku.clone(),
            price: product.price_cents,
            discount,
            effective_price: product.price_cents - off,
        })
    }

    fn price(&self, ProductId(id): ProductId) -> Result<Json<PriceView>, Response> {
        let product = self.catalogued(id)?.ok_or_else(|| no_product(id))?;
        Ok(Json(self.view(&product)?))
    }

    fn add_discount(
        &self,
        ProductId(id): ProductId,
        caller: Caller,
        Json(body): Json<NewDiscount>,
    ) -> Result<Json<PriceView>, Response> {
        let product = self.catalogued(id)?.ok_or_else(|| no_product(id))?;
        let (percent, amount) = match (&body.percent, &body.amount) {
            (Some(percent), None) => {
                // Percentages have the same two decimals as money.
                let hundredths =
                    money::parse(percent).map_err(|m| Response::invalid("percent", &m))?;
                if hundredths == 0 || hundredths > 10_000 {
                    return Err(Response::invalid(
                        "percent",
                        "must be above 0 and at most 100",
                    ));
                }
                (Some(hundredths), None)
            }
            (None, Some(amount)) => {
                let cents = money::parse(amount).map_err(|m| Response::invalid("amount", &m))?;
                if cents == 0 {
                    return Err(Response::invalid("amount", "must be above 0"));
                }
                if cents > product.price_cents {
                    return Err(Response::invalid(
                        "amount",
                        &format!(
                            "would make the price negative (the price is {})",
                            money::format_cents(product.price_cents)
                        ),
                    ));
                }
                (None, Some(cents))
            }
            (Some(_), Some(_)) => {
                return Err(Response::invalid(
                    "percent",
                    "give percent or amount, not both",
                ))
            }
            (None, None) => return Err(Response::invalid("percent", "give percent or amount")),
        };
        let starts_at = body
            .starts_at
            .as_deref()
            .map(|s| instant(s, "starts_at"))
            .transpose()?;
        let ends_at = body
            .ends_at
            .as_deref()
            .map(|s| instant(s, "ends_at"))
            .transpose()?;
        if let (Some(start), Some(end)) = (&starts_at, &ends_at) {
            if end <= start {
                return Err(Response::invalid("ends_at", "must be after starts_at"));
            }
        }
        let now = now();
        if ends_at.as_deref().is_some_and(|end| end <= now.as_str()) {
            return Err(Response::invalid("ends_at", "must be in the future"));
        }
        // Periods [start, end) overlap when each starts before the other
        // ends; a missing bound is open.
        let overlapping = self.open_discounts(id, &now)?.into_iter().find(|other| {
            let starts_before_other_ends = match (&starts_at, &other.ends_at) {
                (Some(start), Some(end)) => start < end,
                _ => true,
            };
            let other_starts_before_end = match (&other.starts_at, &ends_at) {
                (Some(start), Some(end)) => start < end,
                _ => true,
            };
            starts_before_other_ends && other_starts_before_end
        });
        if let Some(other) = overlapping {
            return Err(Response::invalid(
                "starts_at",
                &format!("the period overlaps discount {}", other.id),
            ));
        }
        // A missing number is written as NULL, not bound: PostgreSQL
        // types a bound null as text, and the prepared statement keeps
        // that type for the next call.
        let mut values = params![id];
        let mut number = |value: Option<i64>| match value {
            Some(value) => {
                values.push(json!(value));
                format!("${}", values.len())
            }
            None => "NULL".to_string(),
        };
        let (percent, amount) = (number(percent), number(amount));
        let sql = format!(
            "INSERT INTO pricing_discounts (product_id, percent_hundredths, amount_cents, \
             starts_at, ends_at, created_by, created_at) \
             VALUES ($1, {percent}, {amount}, ${}, ${}, ${}, ${})",
            values.len() + 1,
            values.len() + 2,
            values.len() + 3,
            values.len() + 4
        );
        values.extend(params![starts_at, ends_at, caller.user_id, now]);
        self.host.execute(&sql, values)?;
        Ok(Json(self.view(&product)?))
    }

    fn remove_discount(&self, ProductId(id): ProductId) -> Result<Json<PriceView>, Response> {
        let product = self.catalogued(id)?.ok_or_else(|| no_product(id))?;
        let removed = self.host.execute(
            "DELETE FROM pricing_discounts WHERE product_id = $1 \
             AND (ends_at IS NULL OR ends_at > $2)",
            params![id, now()],
        )?;
        if removed.rows_affected == 0 {
            return Err(Response::not_found(&format!(
                "product {id} has no discount"
            )));
        }
        Ok(Json(self.view(&product)?))
    }

    fn price_history(
        &self,
        ProductId(id): ProductId,
        window: Window,
    ) -> Result<ListBody<HistoryEntry>, Response> {
        let sql = "SELECT id, product_id, sku, old_price_cents, new_price_cents, reason, source, \
                   changed_by, changed_at FROM pricing_history WHERE product_id = $1 \
                   ORDER BY changed_at DESC, id DESC";
        let page: ListBody<HistoryEntry> = self.host.query_page(sql, params![id], window)?;
        // A deleted product keeps its history; a product that never was
        // has none.
        if page.total == 0 && self.catalogued(id)?.is_none() {
            return Err(no_product(id));
        }
        Ok(page)
    }
}
