//! Offers: what each store sells, at what price. They come in by
//! `POST /stores/{store_id}/offers` (`{"offers": [...]}`, up to
//! [`MAX_OFFERS`], all or nothing), by a feed file (see
//! [`crate::feeds`]) or by a feed fetched from the store's `feed_url`.
//!
//! An offer is keyed by (store, reference): sending a reference again
//! updates it. Every price an offer takes is kept
//! (`pricing_offer_prices`); a lower price than before publishes
//! `pricing.price_dropped`. An offer is linked to a catalogue product by
//! reference = SKU (see the public detail, [`crate::public`]).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Map;
use xcore_plugin_sdk::{prelude::*, Dialect, Statement};

use crate::{money, stores, text, Pricing, StoreId, READ, WRITE};

/// Most offers in one request.
pub const MAX_OFFERS: usize = 10_000;

/// Body limit of `POST /stores/{store_id}/offers`.
pub const MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// Rows per INSERT on PostgreSQL (23 parameters each). SQLite gets the
/// whole batch as one JSON parameter instead (see [`upsert_json`]).
const ROWS_PER_STATEMENT: usize = 500;

/// More drops than this in one batch publish one summary event.
const MAX_DROP_EVENTS: usize = 100;

/// A validated offer, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferDraft {
    /// The store's reference (SKU), trimmed.
    pub reference: String,
    /// Title.
    pub title: String,
    /// Brand.
    pub brand: Option<String>,
    /// Category path, parent first.
    pub category_path: Vec<String>,
    /// Price in cents.
    pub price_cents: i64,
    /// Price before a reduction, in cents.
    pub old_price_cents: Option<i64>,
    /// In stock.
    pub in_stock: bool,
    /// Product page.
    pub url: Option<String>,
    /// Image URL.
    pub image: Option<String>,
    /// Technical sheet.
    pub description: Option<String>,
}

/// One offer as `POST /stores/{store_id}/offers` takes it.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documentation of what `validate` reads.
pub struct OfferInput {
    /// The store's reference (SKU).
    reference: String,
    /// Title.
    title: String,
    /// Brand.
    brand: Option<String>,
    /// Category path, parent first (`["Téléphonie", "Smartphone & Mobile"]`).
    category_path: Option<Vec<String>>,
    /// Price (at most 2 decimals).
    #[schema(value_type = f64)]
    price: Value,
    /// Price before the reduction.
    #[schema(value_type = Option<f64>)]
    old_price: Option<Value>,
    /// In stock (default true).
    in_stock: Option<bool>,
    /// Product page.
    url: Option<String>,
    /// Image URL.
    image: Option<String>,
    /// Technical sheet.
    description: Option<String>,
}

/// `POST /stores/{store_id}/offers`'s body.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Documentation of what `send_offers` reads.
pub struct OffersBody {
    /// 1 to 10,000 offers.
    #[schema(min_items = 1, max_items = 10_000)]
    offers: Vec<OfferInput>,
}

/// What an upsert did.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct UpsertSummary {
    /// Offers received.
    pub received: usize,
    /// New offers.
    pub created: usize,
    /// Existing offers updated.
    pub updated: usize,
    /// Offers whose price changed.
    pub price_changes: usize,
    /// Offers whose price dropped.
    pub price_drops: usize,
}

/// An offer as the admin list shows it.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct Offer {
    /// Its id.
    id: i64,
    /// Store.
    store_id: String,
    /// Reference.
    reference: String,
    /// Title.
    title: String,
    /// Brand.
    brand: Option<String>,
    /// Category path, parent first.
    #[serde(deserialize_with = "stored_list")]
    category_path: Vec<String>,
    /// Price.
    #[serde(
        rename(serialize = "price"),
        serialize_with = "money::serde_price::serialize"
    )]
    #[schema(value_type = f64)]
    price_cents: i64,
    /// Price before the reduction.
    #[serde(
        rename(serialize = "old_price"),
        serialize_with = "money::serde_price::option::serialize"
    )]
    #[schema(value_type = Option<f64>)]
    old_price_cents: Option<i64>,
    /// In stock (0 or 1 in the database).
    #[serde(deserialize_with = "flag")]
    in_stock: bool,
    /// Product page.
    url: Option<String>,
    /// Image.
    image: Option<String>,
    /// Technical sheet.
    description: Option<String>,
    /// Last change.
    updated_at: String,
}

/// A JSON list stored as text.
pub fn stored_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let text = String::deserialize(d)?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

/// A 0/1 column (or a boolean) as a flag.
pub fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(flag) => flag,
        Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        _ => false,
    })
}

/// The routes.
pub fn routes(router: Router<Pricing>) -> Router<Pricing> {
    router
        .post(
            "/stores/{store_id}/offers",
            Access::Requires(WRITE),
            Pricing::send_offers,
        )
        .summary("Create or update up to 10,000 offers of a store, all or nothing")
        .doc(|op| {
            op.error_response(404, "No such store");
            op.error_response(413, "More than 10,000 offers");
        })
        .blocking()
        .max_body(MAX_BODY_BYTES)
        .get(
            "/stores/{store_id}/offers",
            Access::Requires(READ),
            Pricing::list_offers,
        )
        .summary("List a store's offers")
        .doc(|op| op.error_response(404, "No such store"))
}

/// A problem with one field of one offer.
pub type Problem = (String, String);

fn optional_text(
    object: &Map<String, Value>,
    field: &str,
    max: usize,
    at: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.chars().count() > max {
                problems.push((format!("{at}.{field}"), format!("at most {max} characters")));
            }
            (!text.is_empty()).then(|| text.to_string())
        }
        Some(Value::Number(number)) => Some(number.to_string()),
        Some(_) => {
            problems.push((format!("{at}.{field}"), "must be text".into()));
            None
        }
    }
}

/// Reads one offer; `strict` refuses unknown fields (the JSON API), feeds
/// may carry more columns than pricing uses.
pub fn validate(
    object: &Map<String, Value>,
    at: &str,
    strict: bool,
    problems: &mut Vec<Problem>,
) -> Option<OfferDraft> {
    let before = problems.len();
    if strict {
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "reference"
                    | "title"
                    | "brand"
                    | "category_path"
                    | "price"
                    | "old_price"
                    | "in_stock"
                    | "url"
                    | "image"
                    | "description"
            ) {
                problems.push((format!("{at}.{key}"), "unknown field".into()));
            }
        }
    }
    let reference = optional_text(object, "reference", 100, at, problems);
    if reference.is_none() {
        problems.push((format!("{at}.reference"), "required".into()));
    }
    let title = optional_text(object, "title", 500, at, problems);
    if title.is_none() {
        problems.push((format!("{at}.title"), "required".into()));
    }
    let brand = optional_text(object, "brand", 200, at, problems);
    let category_path = match object.get("category_path") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut path = Vec::new();
            for item in items {
                match item.as_str().map(str::trim) {
                    Some(segment) if !segment.is_empty() && segment.chars().count() <= 200 => {
                        path.push(segment.to_string());
                    }
                    _ => problems.push((
                        format!("{at}.category_path"),
                        "must be a list of non-empty names".into(),
                    )),
                }
            }
            path
        }
        // Feeds write the path as "Parent > Child".
        Some(Value::String(text)) => text
            .split('>')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(_) => {
            problems.push((format!("{at}.category_path"), "must be a list".into()));
            Vec::new()
        }
    };
    let price = match object.get("price") {
        None | Some(Value::Null) => {
            problems.push((format!("{at}.price"), "required".into()));
            None
        }
        Some(value) => money::parse(value)
            .map_err(|m| problems.push((format!("{at}.price"), m)))
            .ok(),
    };
    let old_price = match object.get("old_price") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(value) => money::parse(value)
            .map_err(|m| problems.push((format!("{at}.old_price"), m)))
            .ok(),
    };
    let in_stock = match object.get("in_stock") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(Value::String(text)) => match text::fold(text.trim()).as_str() {
            "1" | "true" | "yes" | "oui" | "en stock" | "" => true,
            "0" | "false" | "no" | "non" | "rupture" | "hors stock" => false,
            _ => {
                problems.push((format!("{at}.in_stock"), "must be true or false".into()));
                true
            }
        },
        Some(_) => {
            problems.push((format!("{at}.in_stock"), "must be true or false".into()));
            true
        }
    };
    let url = optional_text(object, "url", 2000, at, problems);
    let image = optional_text(object, "image", 2000, at, problems);
    for (field, value) in [("url", &url), ("image", &image)] {
        if let Some(Err(message)) = value.as_deref().map(stores::check_url) {
            problems.push((format!("{at}.{field}"), message));
        }
    }
    let description = optional_text(object, "description", 20_000, at, problems);
    if problems.len() > before {
        return None;
    }
    Some(OfferDraft {
        reference: reference?,
        title: title?,
        brand,
        category_path,
        price_cents: price?,
        old_price_cents: old_price,
        in_stock,
        url,
        image,
        description,
    })
}

/// The standard 422 for offer problems, in input order.
pub fn problems_response(problems: &[Problem]) -> Response {
    let details: Vec<(&str, &str)> = problems
        .iter()
        .map(|(field, message)| (field.as_str(), message.as_str()))
        .collect();
    let message = format!(
        "{} problems in the offers; nothing was written",
        problems.len()
    );
    Response::error_with_details(422, "VALIDATION_ERROR", &message, &details)
}

/// A reference sent twice in one batch is ambiguous.
pub fn duplicate_problems(drafts: &[(usize, OfferDraft)], key: &str) -> Vec<Problem> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (index, draft) in drafts {
        let reference = text::reference_key(&draft.reference);
        if let Some(earlier) = first.get(&reference) {
            problems.push((
                format!("{key}[{index}].reference"),
                format!("duplicate of {key}[{earlier}].reference"),
            ));
        } else {
            first.insert(reference, *index);
        }
    }
    problems
}

/// The rows a JSON array of strings yields, in `dialect`.
pub fn json_strings(dialect: Dialect, param: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("SELECT value FROM json_each(${param})"),
        Dialect::Postgres => format!("SELECT value FROM json_array_elements_text(${param}::json)"),
    }
}

/// The columns an offer's row gets, computed from the draft.
struct Derived {
    reference_key: String,
    reference_slug: String,
    title_key: String,
    search_text: String,
    brand_key: Option<String>,
    brand_slug: Option<String>,
    category: Option<String>,
    category_slug: Option<String>,
    subcategory: Option<String>,
    subcategory_slug: Option<String>,
    discount_cents: i64,
}

fn derive(draft: &OfferDraft) -> Derived {
    let title_words = text::words(&draft.title);
    let mut search = title_words.clone();
    if let Some(brand) = &draft.brand {
        search.extend(text::words(brand));
    }
    search.extend(text::words(&draft.reference));
    let category = draft.category_path.first().cloned();
    let subcategory = draft.category_path.get(1).cloned();
    Derived {
        reference_key: text::reference_key(&draft.reference),
        reference_slug: text::slugify(&draft.reference),
        title_key: title_words.join(" "),
        search_text: search.join(" "),
        brand_key: draft.brand.as_deref().map(|b| b.trim().to_lowercase()),
        brand_slug: draft.brand.as_deref().map(text::slugify),
        category_slug: category.as_deref().map(text::slugify),
        subcategory_slug: subcategory.as_deref().map(text::slugify),
        category,
        subcategory,
        discount_cents: draft
            .old_price_cents
            .map_or(0, |old| (old - draft.price_cents).max(0)),
    }
}

const OFFER_COLUMNS: &str =
    "store_id, reference, reference_key, reference_slug, title, title_key, \
     search_text, brand, brand_key, brand_slug, category, category_slug, subcategory, \
     subcategory_slug, category_path, price_cents, old_price_cents, discount_cents, in_stock, url, \
     image, description, updated_at";

/// Binds `value`, or writes `NULL` for a missing number (PostgreSQL reads
/// a bound null as text, which a BIGINT column refuses).
fn bind_number(value: Option<i64>, params: &mut Vec<Value>) -> String {
    match value {
        Some(value) => {
            params.push(json!(value));
            format!("${}", params.len())
        }
        None => "NULL".into(),
    }
}

fn bind(value: Value, params: &mut Vec<Value>) -> String {
    params.push(value);
    format!("${}", params.len())
}

/// The SQL that reads column `index` of each row of the JSON array of
/// arrays bound as `$1` (`value` is the row).
fn json_rows(dialect: Dialect, columns: &[(&str, bool)]) -> String {
    let (source, read): (&str, fn(usize, bool) -> String) = match dialect {
        // `->>` gives SQL's own integer, text or null.
        Dialect::Sqlite => ("json_each($1) WHERE true", |i, _| format!("value ->> {i}")),
        Dialect::Postgres => ("json_array_elements($1::json) AS r(value)", |i, number| {
            if number {
                format!("CAST(value ->> {i} AS BIGINT)")
            } else {
                format!("value ->> {i}")
            }
        }),
    };
    let read: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, number))| read(i, *number))
        .collect();
    // `WHERE true`: SQLite's parser needs it between `FROM json_each(..)`
    // and `ON CONFLICT`.
    format!("SELECT {} FROM {source}", read.join(", "))
}

/// The whole batch as one statement with one parameter, a JSON array of
/// rows (SQLite). Multi-row `VALUES` with thousands of `$n` parameters
/// cost SQLite (and sqlx's binding) time quadratic in the parameters of a
/// statement: each `$n` is looked up by a linear scan of the statement's
/// parameter names, when it is compiled and again when it is bound. That
/// was most of a 10,000-offer batch's 6 s; this statement's text is also
/// the same for every batch, so it is compiled once per connection.
fn upsert_json(store: &str, drafts: &[OfferDraft], now: &str) -> Statement {
    let rows: Vec<Value> = drafts
        .iter()
        .map(|draft| {
            let d = derive(draft);
            json!([
                store,
                draft.reference,
                d.reference_key,
                d.reference_slug,
                draft.title,
                d.title_key,
                d.search_text,
                draft.brand,
                d.brand_key,
                d.brand_slug,
                d.category,
                d.category_slug,
                d.subcategory,
                d.subcategory_slug,
                Value::from(draft.category_path.clone()).to_string(),
                draft.price_cents,
                draft.old_price_cents,
                d.discount_cents,
                i64::from(draft.in_stock),
                draft.url,
                draft.image,
                draft.description,
                now,
            ])
        })
        .collect();
    let columns: Vec<(&str, bool)> = OFFER_COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| {
            (
                c,
                matches!(
                    c,
                    "price_cents" | "old_price_cents" | "discount_cents" | "in_stock"
                ),
            )
        })
        .collect();
    Statement::new(
        &format!(
            "INSERT INTO pricing_offers ({OFFER_COLUMNS}) {} \
             ON CONFLICT (store_id, reference) DO UPDATE SET {}",
            json_rows(Dialect::Sqlite, &columns),
            updates().join(", ")
        ),
        vec![Value::String(Value::from(rows).to_string())],
    )
}

/// `column = excluded.column` for every column but the key.
fn updates() -> Vec<String> {
    OFFER_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| !matches!(*c, "store_id" | "reference"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect()
}

fn upsert_statement(store: &str, drafts: &[&OfferDraft], now: &str) -> Statement {
    let mut params = Vec::with_capacity(drafts.len() * 23);
    let mut tuples = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let d = derive(draft);
        let p = &mut params;
        let values = [
            bind(json!(store), p),
            bind(json!(draft.reference), p),
            bind(json!(d.reference_key), p),
            bind(json!(d.reference_slug), p),
            bind(json!(draft.title), p),
            bind(json!(d.title_key), p),
            bind(json!(d.search_text), p),
            bind(json!(draft.brand), p),
            bind(json!(d.brand_key), p),
            bind(json!(d.brand_slug), p),
            bind(json!(d.category), p),
            bind(json!(d.category_slug), p),
            bind(json!(d.subcategory), p),
            bind(json!(d.subcategory_slug), p),
            bind(
                json!(Value::from(draft.category_path.clone()).to_string()),
                p,
            ),
            bind(json!(draft.price_cents), p),
            bind_number(draft.old_price_cents, p),
            bind(json!(d.discount_cents), p),
            bind(json!(i64::from(draft.in_stock)), p),
            bind(json!(draft.url), p),
            bind(json!(draft.image), p),
            bind(json!(draft.description), p),
            bind(json!(now), p),
        ];
        tuples.push(format!("({})", values.join(", ")));
    }
    let updates = updates();
    Statement::new(
        &format!(
            "INSERT INTO pricing_offers ({OFFER_COLUMNS}) VALUES {} \
             ON CONFLICT (store_id, reference) DO UPDATE SET {}",
            tuples.join(", "),
            updates.join(", ")
        ),
        params,
    )
}

/// Adds `sign` (`+` or `-`) times the offers `offers` selects (a `WHERE`
/// on `pricing_offers`) to the category counts: run before offers are
/// replaced or deleted with `-`, after they are written with `+`, in the
/// same transaction.
pub fn count_categories(sign: char, offers: &str, params: Vec<Value>) -> Statement {
    Statement::new(
        &format!(
            "INSERT INTO pricing_category_counts \
             (category_slug, subcategory_slug, category, subcategory, n) \
             SELECT category_slug, COALESCE(subcategory_slug, ''), MIN(category), \
             MIN(subcategory), {sign}COUNT(*) FROM pricing_offers \
             WHERE {offers} AND category_slug IS NOT NULL AND category_slug <> '' \
             GROUP BY category_slug, COALESCE(subcategory_slug, '') \
             ON CONFLICT (category_slug, subcategory_slug) \
             DO UPDATE SET n = pricing_category_counts.n + excluded.n"
        ),
        params,
    )
}

/// One store's existing price for a reference.
#[derive(Deserialize)]
struct Existing {
    reference: String,
    price_cents: i64,
}

impl Pricing {
    /// Stores `drafts` for `store` in one transaction, all or nothing:
    /// the offers, their price records and the search vocabulary; then
    /// publishes the drops.
    pub fn upsert_offers(
        &self,
        store: &str,
        drafts: &[OfferDraft],
    ) -> Result<UpsertSummary, HostError> {
        let now = now();
        let dialect = self.host.dialect()?;
        let references: Vec<&str> = drafts.iter().map(|d| d.reference.as_str()).collect();
        let sql = format!(
            "SELECT reference, price_cents FROM pricing_offers WHERE store_id = $1 \
             AND reference IN ({})",
            json_strings(dialect, 2)
        );
        let list = serde_json::to_string(&references).unwrap_or_default();
        let existing: HashMap<String, i64> = self
            .host
            .query_as::<Existing>(&sql, params![store, list.clone()])?
            .into_iter()
            .map(|row| (row.reference, row.price_cents))
            .collect();
        let mut statements = Vec::new();
        if dialect == Dialect::Postgres {
            // One batch of a store at a time (SQLite's write transactions
            // already are): the category counts below read the offers
            // before and after, which a concurrent batch must not change.
            statements.push(Statement::new(
                "SELECT id FROM pricing_stores WHERE id = $1 FOR UPDATE",
                params![store],
            ));
        }
        let batch = format!(
            "store_id = $1 AND reference IN ({})",
            json_strings(dialect, 2)
        );
        statements.push(count_categories('-', &batch, params![store, list.clone()]));
        match dialect {
            Dialect::Sqlite => statements.push(upsert_json(store, drafts, &now)),
            Dialect::Postgres => statements.extend(
                drafts
                    .iter()
                    .collect::<Vec<_>>()
                    .chunks(ROWS_PER_STATEMENT)
                    .map(|chunk| upsert_statement(store, chunk, &now)),
            ),
        }
        statements.push(count_categories('+', &batch, params![store, list]));
        let mut summary = UpsertSummary {
            received: drafts.len(),
            ..UpsertSummary::default()
        };
        let mut drops = Vec::new();
        let mut changes: Vec<(&str, Option<i64>, i64)> = Vec::new();
        for draft in drafts {
            match existing.get(&draft.reference) {
                Some(old) => {
                    summary.updated += 1;
                    if *old != draft.price_cents {
                        summary.price_changes += 1;
                        changes.push((&draft.reference, Some(*old), draft.price_cents));
                        if draft.price_cents < *old {
                            drops.push((draft, *old));
                        }
                    }
                }
                None => {
                    summary.created += 1;
                    changes.push((&draft.reference, None, draft.price_cents));
                }
            }
        }
        summary.price_drops = drops.len();
        if !changes.is_empty() {
            // The price records and the vocabulary as JSON too: the same
            // statement text for every batch, one parameter.
            let rows: Vec<Value> = changes
                .iter()
                .map(|(reference, old, new)| json!([store, reference, old, new, now]))
                .collect();
            statements.push(Statement::new(
                &format!(
                    "INSERT INTO pricing_offer_prices (store_id, reference, old_price_cents, \
                     new_price_cents, changed_at) {}",
                    json_rows(
                        dialect,
                        &[
                            ("store_id", false),
                            ("reference", false),
                            ("old_price_cents", true),
                            ("new_price_cents", true),
                            ("changed_at", false),
                        ]
                    )
                ),
                vec![Value::String(Value::from(rows).to_string())],
            ));
        }
        let mut terms: HashSet<String> = HashSet::new();
        for draft in drafts {
            terms.extend(derive(draft).search_text.split(' ').map(str::to_string));
        }
        let terms: Vec<String> = terms.into_iter().filter(|t| !t.is_empty()).collect();
        if !terms.is_empty() {
            statements.push(Statement::new(
                &format!(
                    "INSERT INTO pricing_terms (term) {} WHERE true \
                     ON CONFLICT (term) DO NOTHING",
                    json_strings(dialect, 1)
                ),
                vec![Value::String(Value::from(terms).to_string())],
            ));
        }
        self.host.transaction(statements)?;
        let mut keys: Vec<String> = drafts
            .iter()
            .map(|d| text::reference_key(&d.reference))
            .collect();
        keys.sort();
        keys.dedup();
        if let Err(error) = self.check_alerts(&keys) {
            // The offers are stored; a failed check is retried by the
            // next batch for these references.
            self.host.warn(
                "cannot check price alerts",
                json!({"store_id": store, "error": error.to_string()}),
            );
        }
        if drops.len() > MAX_DROP_EVENTS {
            self.announce(
                "price_dropped",
                &json!({"store_id": store, "drops": drops.len(), "changed_at": now}),
            );
        } else {
            for (draft, old) in drops {
                self.announce(
                    "price_dropped",
                    &json!({
                        "store_id": store,
                        "reference": draft.reference,
                        "title": draft.title,
                        "old_price": money::to_json(old),
                        "new_price": money::to_json(draft.price_cents),
                        "changed_at": now,
                    }),
                );
            }
        }
        Ok(summary)
    }

    fn send_offers(
        &self,
        StoreId(store): StoreId,
        Json(body): Json<Value>,
    ) -> Result<Json<UpsertSummary>, Response> {
        self.store(&store)?;
        let Some(items) = body.get("offers").and_then(Value::as_array) else {
            return Err(Response::invalid("offers", "required: a list of offers"));
        };
        if let Some(key) = body
            .as_object()
            .and_then(|o| o.keys().find(|k| k.as_str() != "offers"))
        {
            return Err(Response::invalid(key, "unknown field; expected offers"));
        }
        if items.len() > MAX_OFFERS {
            return Err(Response::error_with_details(
                413,
                "VALIDATION_ERROR",
                &format!(
                    "at most {MAX_OFFERS} offers per request, got {}; split the batch",
                    items.len()
                ),
                &[("offers", "at most 10000 offers")],
            ));
        }
        if items.is_empty() {
            return Err(Response::invalid("offers", "must hold at least one offer"));
        }
        let mut problems = Vec::new();
        let mut drafts = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let at = format!("offers[{index}]");
            match item.as_object() {
                Some(object) => {
                    if let Some(draft) = validate(object, &at, true, &mut problems) {
                        drafts.push((index, draft));
                    }
                }
                None => problems.push((at, "must be a JSON object".into())),
            }
        }
        problems.extend(duplicate_problems(&drafts, "offers"));
        if !problems.is_empty() {
            return Err(problems_response(&problems));
        }
        let drafts: Vec<OfferDraft> = drafts.into_iter().map(|(_, d)| d).collect();
        Ok(Json(self.upsert_offers(&store, &drafts)?))
    }

    fn list_offers(
        &self,
        StoreId(store): StoreId,
        window: Window,
    ) -> Result<ListBody<Offer>, Response> {
        self.store(&store)?;
        let sql = "SELECT id, store_id, reference, title, brand, category_path, price_cents, \
                   old_price_cents, in_stock, url, image, description, updated_at \
                   FROM pricing_offers WHERE store_id = $1 ORDER BY reference, id";
        Ok(self.host.query_page(sql, params![store], window)?)
    }
}
