//! Product fields: validation shared by the API (`POST /`, `PUT /{id}`,
//! `POST /bulk`) and CSV imports, the statements that store a product, and
//! the [`Product`] every route answers with (read straight from its row).
//!
//! CONTRACT between the catalogue and the imports: imports map a CSV row to
//! a JSON object with the product field names (values may be strings, e.g.
//! `"price": "12.50"` or `"12,50"`), call [`validate_new`], and store the
//! draft with [`insert`] (or [`insert_many`] for a batch).
//!
//! Input rules, the same for JSON and CSV:
//! - a blank string counts as absent (an empty CSV cell), and so does
//!   `null`; required fields (`sku`, `name`, `price`) must be present;
//! - numbers may be JSON numbers or decimal strings; `price` is exact money
//!   (see [`crate::money`]); `stock`, `supplier_id`, `category_id` are whole
//!   numbers;
//! - `images` is an array of `http(s)` URLs, or one string of URLs
//!   separated by `|` or whitespace (a CSV cell);
//! - `attributes` is a JSON object, or a string holding one (a CSV cell);
//! - unknown fields are refused, so a typo (`"prce"`) is not silently
//!   dropped;
//! - seed 003's `categoryId`, `isActive` and (updates) `clearCategory` are
//!   read as the API's names first (see [`crate::seed_names`]).
//!
//! Whether `category_id` and `supplier_id` exist needs the database; the
//! catalogue checks that (see `catalogue`), not this module.

use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use xcore_plugin_sdk::{prelude::*, Statement};

use crate::{money, seed_names};

/// Longest SKU, in characters.
pub const MAX_SKU_CHARS: usize = 64;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Most images per product.
pub const MAX_IMAGES: usize = 20;
/// Longest image URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Largest `attributes` object, as JSON text, in bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// Largest stock count (fits every SQL BIGINT and every JSON reader).
pub const MAX_STOCK: i64 = 1_000_000_000_000;

/// The columns read for a product ([`Product`] reads them by name).
/// Never `SELECT *`: on PostgreSQL the table also has a `tsvector` column
/// the host cannot decode.
pub const PRODUCT_COLUMNS: &str = "id, sku, name, description, price_cents, stock, \
     supplier_id, category_id, status, images, attributes, created_at, updated_at";

/// The same columns qualified with the alias `p`, for joins.
pub const PRODUCT_COLUMNS_P: &str = "p.id, p.sku, p.name, p.description, p.price_cents, \
     p.stock, p.supplier_id, p.category_id, p.status, p.images, p.attributes, p.created_at, \
     p.updated_at";

/// The writable fields, as named in JSON.
pub const FIELDS: [&str; 10] = [
    "sku",
    "name",
    "description",
    "price",
    "stock",
    "supplier_id",
    "category_id",
    "status",
    "images",
    "attributes",
];

/// A product's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Sellable.
    Active,
    /// Withdrawn.
    Inactive,
    /// Being prepared.
    Draft,
}

impl Status {
    /// Every status, in the order the API documents them.
    pub const ALL: [Status; 3] = [Status::Active, Status::Inactive, Status::Draft];

    /// As stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Inactive => "inactive",
            Status::Draft => "draft",
        }
    }

    /// Reads a status, ignoring case and surrounding spaces (CSV cells say
    /// `Active`).
    pub fn parse(text: &str) -> Option<Status> {
        let text = text.trim();
        Status::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }
}

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// Field name (`price`, `sku`, ...), or a path (`products[12].price`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same problem under `prefix` (`products[3]` + `price` ->
    /// `products[3].price`).
    pub fn under(self, prefix: &str) -> Self {
        Self {
            field: format!("{prefix}.{}", self.field),
            message: self.message,
        }
    }
}

/// Which writable fields an input gave, as a bit set over [`FIELDS`]; a
/// bulk update with `update_existing` changes only those.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldSet(u16);

impl FieldSet {
    fn bit(field: &str) -> u16 {
        FIELDS
            .iter()
            .position(|known| *known == field)
            .map_or(0, |index| 1 << index)
    }

    /// Adds `field`.
    pub fn insert(&mut self, field: &str) {
        self.0 |= Self::bit(field);
    }

    /// Whether `field` is in the set.
    pub fn contains(self, field: &str) -> bool {
        self.0 & Self::bit(field) != 0
    }
}

/// A validated new product, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductDraft {
    /// Unique stock-keeping unit (trimmed).
    pub sku: String,
    /// Display name (trimmed).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Price in cents (see [`crate::money`]).
    pub price_cents: i64,
    /// Units in stock; 0 when not given.
    pub stock: i64,
    /// `products_suppliers.id`.
    pub supplier_id: Option<i64>,
    /// `products_categories.id`.
    pub category_id: Option<i64>,
    /// `active` when not given.
    pub status: Status,
    /// Image URLs.
    pub images: Vec<String>,
    /// Free-form attributes (`{"color": "blue"}`).
    pub attributes: Map<String, Value>,
    /// The fields the input gave.
    pub provided: FieldSet,
}

/// A validated partial update: `None` leaves a field as it is; for the
/// optional fields `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProductPatch {
    /// New SKU.
    pub sku: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New description, or cleared.
    pub description: Option<Option<String>>,
    /// New price in cents.
    pub price_cents: Option<i64>,
    /// New stock.
    pub stock: Option<i64>,
    /// New supplier, or cleared.
    pub supplier_id: Option<Option<i64>>,
    /// New category, or cleared.
    pub category_id: Option<Option<i64>>,
    /// New status.
    pub status: Option<Status>,
    /// New images (the whole list).
    pub images: Option<Vec<String>>,
    /// New attributes (the whole object).
    pub attributes: Option<Map<String, Value>>,
}

impl ProductPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ProductPatch::default()
    }
}

/// The value of `field`, treating `null` and blank strings as absent.
fn present<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(value) => Some(value),
    }
}

/// Collects problems while fields are read, so one response lists them all.
#[derive(Default)]
struct Reader {
    problems: Vec<FieldProblem>,
}

impl Reader {
    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(FieldProblem::new(field, message));
    }

    fn unknown_fields(&mut self, object: &Map<String, Value>) {
        for key in object.keys() {
            if !FIELDS.contains(&key.as_str()) {
                self.problem(
                    key,
                    format!(
                        "unknown field; known fields: {} (or seed 003's categoryId, isActive, \
                         clearCategory)",
                        FIELDS.join(", ")
                    ),
                );
            }
        }
    }

    fn text(&mut self, field: &str, value: &Value, max_chars: usize) -> Option<String> {
        let Value::String(text) = value else {
            self.problem(field, "must be a string");
            return None;
        };
        let text = text.trim();
        if text.chars().count() > max_chars {
            self.problem(field, format!("must be at most {max_chars} characters"));
            return None;
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            self.problem(field, "must not contain control characters");
            return None;
        }
        Some(text.to_string())
    }

    fn sku(&mut self, value: &Value) -> Option<String> {
        let sku = self.text("sku", value, MAX_SKU_CHARS)?;
        if sku.chars().any(char::is_whitespace) {
            self.problem("sku", "must not contain spaces");
            return None;
        }
        Some(sku)
    }

    fn price(&mut self, value: &Value) -> Option<i64> {
        money::parse(value)
            .map_err(|message| self.problem("price", message))
            .ok()
    }

    /// A whole number in `min..=max`, from a JSON number (`12`, `12.0`) or
    /// a string (`"12"`).
    fn whole(&mut self, field: &str, value: &Value, min: i64, max: i64) -> Option<i64> {
        let number = match value {
            Value::Number(number) => number.as_i64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            }),
            Value::String(text) => {
                let text = text.trim();
                text.parse::<i64>().ok().or_else(|| {
                    // "12.0" from a spreadsheet export.
                    text.strip_suffix(".0")
                        .or_else(|| text.strip_suffix(".00"))
                        .and_then(|whole| whole.parse().ok())
                })
            }
            _ => None,
        };
        match number {
            None => self.problem(field, "must be a whole number"),
            Some(n) if n < min => self.problem(field, format!("must be >= {min}")),
            Some(n) if n > max => self.problem(field, format!("must be at most {max}")),
            Some(n) => return Some(n),
        }
        None
    }

    fn status(&mut self, value: &Value) -> Option<Status> {
        let status = value.as_str().and_then(Status::parse);
        if status.is_none() {
            self.problem("status", "must be one of active, inactive, draft");
        }
        status
    }

    fn images(&mut self, value: &Value) -> Option<Vec<String>> {
        let urls: Vec<&str> = match value {
            Value::Array(items) => {
                let mut urls = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(url) => urls.push(url.trim()),
                        None => {
                            self.problem(&format!("images[{index}]"), "must be a URL string");
                            return None;
                        }
                    }
                }
                urls
            }
            Value::String(text) => text
                .split(|c: char| c == '|' || c.is_whitespace())
                .filter(|part| !part.is_empty())
                .collect(),
            _ => {
                self.problem("images", "must be an array of URLs");
                return None;
            }
        };
        if urls.len() > MAX_IMAGES {
            self.problem("images", format!("at most {MAX_IMAGES} images"));
            return None;
        }
        let mut valid = true;
        for (index, url) in urls.iter().enumerate() {
            if let Err(message) = check_url(url) {
                self.problem(&format!("images[{index}]"), message);
                valid = false;
            }
        }
        valid.then(|| urls.into_iter().map(str::to_string).collect())
    }

    fn attributes(&mut self, value: &Value) -> Option<Map<String, Value>> {
        let object = match value {
            Value::Object(object) => object.clone(),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => object,
                _ => {
                    self.problem("attributes", "must be a JSON object");
                    return None;
                }
            },
            _ => {
                self.problem("attributes", "must be a JSON object");
                return None;
            }
        };
        if Value::Object(object.clone()).to_string().len() > MAX_ATTRIBUTES_BYTES {
            self.problem(
                "attributes",
                format!("must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
            );
            return None;
        }
        Some(object)
    }

    fn id(&mut self, field: &str, value: &Value) -> Option<i64> {
        self.whole(field, value, 1, i64::MAX)
    }
}

/// An absolute `http` or `https` URL with a host, no spaces or control
/// characters, at most [`MAX_URL_BYTES`].
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("must be at most {MAX_URL_BYTES} bytes"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an http(s) URL")?;
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\\'))
    {
        return Err("must not contain spaces, quotes or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    if host.is_empty() || host.starts_with('.') || host.ends_with('.') {
        return Err("must name a host".into());
    }
    Ok(())
}

/// Validates a new product from a JSON object: every problem, or the draft.
pub fn validate_new(object: &Map<String, Value>) -> Result<ProductDraft, Vec<FieldProblem>> {
    let (object, seed_problems) = seed_names::product_fields(object, false);
    let object = object.as_ref();
    let mut reader = Reader {
        problems: seed_problems,
    };
    reader.unknown_fields(object);
    let mut provided = FieldSet::default();
    for field in FIELDS {
        if present(object, field).is_some() {
            provided.insert(field);
        }
    }
    let sku = match present(object, "sku") {
        Some(value) => reader.sku(value),
        None => {
            reader.problem("sku", "required");
            None
        }
    };
    let name = match present(object, "name") {
        Some(value) => reader.text("name", value, MAX_NAME_CHARS),
        None => {
            reader.problem("name", "required");
            None
        }
    };
    let price = match present(object, "price") {
        Some(value) => reader.price(value),
        None => {
            reader.problem("price", "required");
            None
        }
    };
    let description = present(object, "description")
        .map(|value| reader.text("description", value, MAX_DESCRIPTION_CHARS));
    let stock = present(object, "stock").map(|value| reader.whole("stock", value, 0, MAX_STOCK));
    let supplier_id = present(object, "supplier_id").map(|value| reader.id("supplier_id", value));
    let category_id = present(object, "category_id").map(|value| reader.id("category_id", value));
    let status = present(object, "status").map(|value| reader.status(value));
    let images = present(object, "images").map(|value| reader.images(value));
    let attributes = present(object, "attributes").map(|value| reader.attributes(value));
    if !reader.problems.is_empty() {
        return Err(reader.problems);
    }
    // No problems were recorded, so every field that was read is Some.
    let missing = || vec![FieldProblem::new("body", "invalid product")];
    Ok(ProductDraft {
        sku: sku.ok_or_else(missing)?,
        name: name.ok_or_else(missing)?,
        description: description.flatten(),
        price_cents: price.ok_or_else(missing)?,
        stock: stock.flatten().unwrap_or(0),
        supplier_id: supplier_id.flatten(),
        category_id: category_id.flatten(),
        status: status.flatten().unwrap_or(Status::Active),
        images: images.flatten().unwrap_or_default(),
        attributes: attributes.flatten().unwrap_or_default(),
        provided,
    })
}

/// Validates a partial update (`PUT /{id}`): only the fields given change;
/// `null` (or a blank string) clears `description`, `supplier_id` and
/// `category_id` and is refused for the required fields.
pub fn validate_patch(object: &Map<String, Value>) -> Result<ProductPatch, Vec<FieldProblem>> {
    let (object, seed_problems) = seed_names::product_fields(object, true);
    let object = object.as_ref();
    let mut reader = Reader {
        problems: seed_problems,
    };
    reader.unknown_fields(object);
    let mut patch = ProductPatch::default();
    for field in FIELDS {
        if !object.contains_key(field) {
            continue;
        }
        let value = present(object, field);
        match (field, value) {
            ("sku" | "name" | "price" | "stock" | "status" | "images" | "attributes", None) => {
                reader.problem(field, "cannot be null or empty");
            }
            ("sku", Some(value)) => patch.sku = reader.sku(value),
            ("name", Some(value)) => patch.name = reader.text("name", value, MAX_NAME_CHARS),
            ("price", Some(value)) => patch.price_cents = reader.price(value),
            ("stock", Some(value)) => patch.stock = reader.whole("stock", value, 0, MAX_STOCK),
            ("status", Some(value)) => patch.status = reader.status(value),
            ("images", Some(value)) => patch.images = reader.images(value),
            ("attributes", Some(value)) => patch.attributes = reader.attributes(value),
            ("description", value) => {
                patch.description = Some(match value {
                    None => None,
                    Some(value) => reader.text("description", value, MAX_DESCRIPTION_CHARS),
                });
            }
            ("supplier_id", value) => {
                patch.supplier_id = Some(value.and_then(|value| reader.id("supplier_id", value)));
            }
            ("category_id", value) => {
                patch.category_id = Some(value.and_then(|value| reader.id("category_id", value)));
            }
            _ => {}
        }
    }
    if !reader.problems.is_empty() {
        return Err(reader.problems);
    }
    if patch.is_empty() {
        return Err(vec![FieldProblem::new(
            "body",
            format!("give at least one of: {}", FIELDS.join(", ")),
        )]);
    }
    Ok(patch)
}

/// Placeholders per stored product.
const INSERT_PARAMS: usize = 12;

/// The stored columns, in [`draft_params`] order.
const INSERT_COLUMNS: &str = "sku, name, description, price_cents, stock, supplier_id, \
     category_id, status, images, attributes, created_at, updated_at";

/// `($1, ..., $12)` for the `row`-th product of a statement. The nullable
/// integers are cast: the host binds a JSON null as a NULL *text* value,
/// which PostgreSQL would refuse in a BIGINT column.
fn values_tuple(row: usize) -> String {
    let n = |column: usize| row * INSERT_PARAMS + column;
    format!(
        "(${}, ${}, ${}, ${}, ${}, CAST(${} AS BIGINT), CAST(${} AS BIGINT), ${}, ${}, ${}, ${}, ${})",
        n(1),
        n(2),
        n(3),
        n(4),
        n(5),
        n(6),
        n(7),
        n(8),
        n(9),
        n(10),
        n(11),
        n(12)
    )
}

/// A nullable integer parameter, read back with `CAST($n AS BIGINT)`: the
/// number is bound as text, like a NULL. The host binds a JSON null as NULL
/// *text*, and PostgreSQL keeps a statement's parameter types from its
/// first run on a connection: a statement first run with a NULL and then
/// with a number would send the number's binary form to a text parameter
/// ("invalid byte sequence"). Text either way keeps one type.
pub fn nullable_integer<T: Into<i64>>(value: Option<T>) -> Value {
    value.map_or(Value::Null, |value| Value::from(value.into().to_string()))
}

fn draft_params(draft: &ProductDraft, now: &str, params: &mut Vec<Value>) {
    params.extend([
        Value::from(draft.sku.as_str()),
        Value::from(draft.name.as_str()),
        draft
            .description
            .as_deref()
            .map_or(Value::Null, Value::from),
        Value::from(draft.price_cents),
        Value::from(draft.stock),
        nullable_integer(draft.supplier_id),
        nullable_integer(draft.category_id),
        Value::from(draft.status.as_str()),
        Value::from(Value::from(draft.images.clone()).to_string()),
        Value::from(Value::Object(draft.attributes.clone()).to_string()),
        Value::from(now),
        Value::from(now),
    ]);
}

/// The statement that stores `draft` and returns its `id` (a duplicate SKU
/// violates the unique constraint; callers that must not fail check first).
pub fn insert(draft: &ProductDraft, now: &str) -> Statement {
    let mut params = Vec::with_capacity(INSERT_PARAMS);
    draft_params(draft, now, &mut params);
    Statement {
        sql: format!(
            "INSERT INTO products ({INSERT_COLUMNS}) VALUES {} RETURNING id, sku",
            values_tuple(0)
        ),
        params,
    }
}

/// Most products per multi-row statement: 500 x 12 = 6,000 parameters,
/// well under SQLite's 32,766 and PostgreSQL's 65,535.
pub const ROWS_PER_STATEMENT: usize = 500;

/// One multi-row INSERT for `drafts` (at most [`ROWS_PER_STATEMENT`]),
/// returning `id, sku` of each row. With `update`, an existing SKU is
/// updated instead (`ON CONFLICT (sku) DO UPDATE`), changing only the
/// fields in `update` (and `updated_at`); `created_at` is kept.
pub fn insert_many(drafts: &[&ProductDraft], now: &str, update: Option<FieldSet>) -> Statement {
    let mut params = Vec::with_capacity(drafts.len() * INSERT_PARAMS);
    let mut tuples = Vec::with_capacity(drafts.len());
    for (row, draft) in drafts.iter().enumerate() {
        tuples.push(values_tuple(row));
        draft_params(draft, now, &mut params);
    }
    let mut sql = format!(
        "INSERT INTO products ({INSERT_COLUMNS}) VALUES {}",
        tuples.join(", ")
    );
    sql.push_str(&upsert_clause(update));
    sql.push_str(" RETURNING id, sku");
    Statement { sql, params }
}

/// ` ON CONFLICT (sku) DO UPDATE SET <the fields in update>, updated_at`,
/// or nothing without `update`.
fn upsert_clause(update: Option<FieldSet>) -> String {
    let Some(fields) = update else {
        return String::new();
    };
    let mut assignments: Vec<&str> = FIELDS
        .iter()
        .filter(|field| fields.contains(field) && **field != "sku")
        .map(|field| match *field {
            "name" => "name = excluded.name",
            "description" => "description = excluded.description",
            "price" => "price_cents = excluded.price_cents",
            "stock" => "stock = excluded.stock",
            "supplier_id" => "supplier_id = excluded.supplier_id",
            "category_id" => "category_id = excluded.category_id",
            "status" => "status = excluded.status",
            "images" => "images = excluded.images",
            _ => "attributes = excluded.attributes",
        })
        .collect();
    assignments.push("updated_at = excluded.updated_at");
    format!(
        " ON CONFLICT (sku) DO UPDATE SET {}",
        assignments.join(", ")
    )
}

/// SQLite: one statement for any number of `drafts`, the rows bound as ONE
/// parameter, a JSON array of rows (`[sku, name, ..., attributes]`) read
/// with `json_each`; like [`insert_many`] otherwise (`update`, `RETURNING
/// id, sku`). SQLite looks a `$n` parameter up by a linear scan of the
/// statement's parameter list, both when it compiles the statement and
/// when it binds each value, so a 500-row VALUES statement with 6,000
/// parameters costs time quadratic in them; one parameter does not, and
/// the statement's text is the same for every batch (compiled once per
/// connection). `WHERE true` lets the parser tell `ON CONFLICT` from a
/// join constraint.
pub fn insert_json(drafts: &[&ProductDraft], now: &str, update: Option<FieldSet>) -> Statement {
    let rows: Vec<Value> = drafts
        .iter()
        .map(|draft| {
            let mut row = Vec::with_capacity(INSERT_PARAMS - 2);
            draft_params(draft, now, &mut row);
            row.truncate(INSERT_PARAMS - 2);
            // The nullable integers as JSON numbers (text is for binding,
            // see `nullable_integer`).
            row[5] = draft.supplier_id.map_or(Value::Null, Value::from);
            row[6] = draft.category_id.map_or(Value::Null, Value::from);
            Value::Array(row)
        })
        .collect();
    let columns: Vec<String> = (0..INSERT_PARAMS - 2)
        .map(|i| format!("value ->> {i}"))
        .collect();
    let sql = format!(
        "INSERT INTO products ({INSERT_COLUMNS}) SELECT {}, $2, $2 FROM json_each($1) \
         WHERE true{} RETURNING id, sku",
        columns.join(", "),
        upsert_clause(update)
    );
    Statement {
        sql,
        params: vec![
            Value::from(Value::Array(rows).to_string()),
            Value::from(now),
        ],
    }
}

/// A stored product as the API answers it, read from its row: `price` an
/// exact JSON number from the integer cents, `images` and `attributes`
/// parsed from the JSON text they are stored as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Its id.
    pub id: i64,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Exact to the cent.
    #[serde(
        rename(serialize = "price", deserialize = "price_cents"),
        serialize_with = "cents_as_price"
    )]
    #[schema(rename = "price", value_type = f64)]
    pub price_cents: i64,
    /// Units in stock.
    pub stock: i64,
    /// `products_suppliers.id`.
    pub supplier_id: Option<i64>,
    /// `products_categories.id`.
    pub category_id: Option<i64>,
    /// Lifecycle state.
    pub status: Status,
    /// Image URLs.
    #[serde(deserialize_with = "stored_json")]
    pub images: Vec<String>,
    /// Free-form attributes.
    #[serde(deserialize_with = "stored_json")]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

fn cents_as_price<S: Serializer>(cents: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    money::to_json(*cents).serialize(serializer)
}

/// A JSON column stored as text (the default when unreadable: the API
/// wrote it, so only a hand edit can break it, and one bad row must not
/// break every list it is in).
pub fn stored_json<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// A price as a client sends it: a number, or decimal text (`"12,50"`).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Documentation: `money::parse` reads the value.
pub enum PriceInput {
    /// At least 0, at most 2 decimals.
    Number(f64),
    /// `12.50` or `12,50`.
    Text(String),
}

/// A new product, as `POST /` (and each row of `POST /bulk`) takes it;
/// [`validate_new`] reads it, reporting every problem at once.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation of the body `validate_new` reads.
pub struct NewProduct {
    /// Unique; no spaces.
    #[schema(min_length = 1, max_length = 64)]
    sku: String,
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    #[schema(max_length = 10_000)]
    description: Option<String>,
    /// Exact: at most 2 decimals, 999999999.99 at most.
    price: PriceInput,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    stock: Option<i64>,
    /// An existing supplier.
    #[schema(minimum = 1)]
    supplier_id: Option<i64>,
    /// An existing category.
    #[schema(minimum = 1)]
    category_id: Option<i64>,
    /// `active` when not given.
    status: Option<Status>,
    /// `http(s)` URLs.
    #[schema(max_items = 20)]
    images: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    attributes: Option<Map<String, Value>>,
    /// Seed 003's name for `category_id` (both only with the same value).
    #[serde(rename = "categoryId")]
    #[schema(minimum = 1)]
    category_id_seed: Option<i64>,
    /// Seed 003: `true` is status `active`, `false` is `inactive`.
    #[serde(rename = "isActive")]
    is_active_seed: Option<bool>,
}

/// A partial update, as `PUT /{id}` takes it: only the fields given
/// change; `null` clears `description`, `supplier_id` and `category_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation of the body `validate_patch` reads.
pub struct ProductChanges {
    /// Unique; no spaces.
    #[schema(min_length = 1, max_length = 64)]
    sku: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    #[schema(max_length = 10_000)]
    description: Option<String>,
    price: Option<PriceInput>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    stock: Option<i64>,
    #[schema(minimum = 1)]
    supplier_id: Option<i64>,
    #[schema(minimum = 1)]
    category_id: Option<i64>,
    status: Option<Status>,
    #[schema(max_items = 20)]
    images: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    attributes: Option<Map<String, Value>>,
    /// Seed 003's name for `category_id` (both only with the same value).
    #[serde(rename = "categoryId")]
    #[schema(minimum = 1)]
    category_id_seed: Option<i64>,
    /// Seed 003: `true` is status `active`, `false` is `inactive`.
    #[serde(rename = "isActive")]
    is_active_seed: Option<bool>,
    /// Seed 003: `true` removes the category (as `category_id: null`).
    #[serde(rename = "clearCategory")]
    clear_category: Option<bool>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            _ => Map::new(),
        }
    }

    fn fields_of(problems: &[FieldProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn a_full_product_from_json() {
        let draft = validate_new(&object(json!({
            "sku": " PROD-001 ", "name": "Clavier", "description": "AZERTY",
            "price": 49.99, "stock": 100, "supplier_id": 42, "category_id": 3,
            "status": "draft", "images": ["https://cdn.example.com/a.jpg"],
            "attributes": {"color": "blue"}
        })))
        .expect("valid");
        assert_eq!(draft.sku, "PROD-001");
        assert_eq!(draft.price_cents, 4999);
        assert_eq!(draft.stock, 100);
        assert_eq!(draft.supplier_id, Some(42));
        assert_eq!(draft.category_id, Some(3));
        assert_eq!(draft.status, Status::Draft);
        assert_eq!(draft.images, vec!["https://cdn.example.com/a.jpg"]);
        assert_eq!(draft.attributes["color"], "blue");
        assert!(draft.provided.contains("stock") && !draft.provided.contains("bogus"));
    }

    #[test]
    fn csv_strings_are_accepted_and_blanks_are_absent() {
        let draft = validate_new(&object(json!({
            "sku": "A1", "name": "Chaise", "price": "12,50", "stock": "7",
            "supplier_id": "42", "category_id": "", "status": "Active",
            "images": "https://a.example/1.jpg|https://a.example/2.jpg",
            "attributes": "{\"size\": \"M\"}", "description": "  "
        })))
        .expect("valid");
        assert_eq!(draft.price_cents, 1250);
        assert_eq!(draft.stock, 7);
        assert_eq!(draft.supplier_id, Some(42));
        assert_eq!(draft.category_id, None);
        assert_eq!(draft.description, None);
        assert_eq!(draft.status, Status::Active);
        assert_eq!(draft.images.len(), 2);
        assert_eq!(draft.attributes["size"], "M");
        assert!(!draft.provided.contains("category_id"));
    }

    #[test]
    fn defaults_for_optional_fields() {
        let draft =
            validate_new(&object(json!({"sku": "A", "name": "B", "price": 0}))).expect("valid");
        assert_eq!(draft.stock, 0);
        assert_eq!(draft.status, Status::Active);
        assert!(draft.images.is_empty() && draft.attributes.is_empty());
    }

    #[test]
    fn every_problem_is_reported_by_field() {
        let problems = validate_new(&object(json!({
            "name": "", "price": -10, "stock": -1, "status": "sold",
            "images": ["ftp://x", "https://ok.example/a.png", "https://"],
            "attributes": [1], "supplier_id": "x", "prce": 1
        })))
        .expect_err("invalid");
        let fields = fields_of(&problems);
        for expected in [
            "prce",
            "sku",
            "name",
            "price",
            "stock",
            "supplier_id",
            "status",
            "images[0]",
            "images[2]",
            "attributes",
        ] {
            assert!(fields.contains(&expected), "{expected} in {fields:?}");
        }
        assert!(!fields.contains(&"images[1]"));
        let price = problems.iter().find(|p| p.field == "price").expect("price");
        assert_eq!(price.message, "must be >= 0");
    }

    #[test]
    fn limits_are_enforced() {
        let long_sku = "S".repeat(MAX_SKU_CHARS + 1);
        let too_many: Vec<String> = (0..=MAX_IMAGES)
            .map(|i| format!("https://img.example/{i}.jpg"))
            .collect();
        let problems = validate_new(&object(json!({
            "sku": long_sku, "name": "n".repeat(MAX_NAME_CHARS + 1), "price": 19.999,
            "images": too_many, "stock": 1.5, "category_id": 0
        })))
        .expect_err("invalid");
        assert_eq!(
            fields_of(&problems),
            vec!["sku", "name", "price", "stock", "category_id", "images"]
        );
        assert!(validate_new(&object(json!({"sku": "a b", "name": "x", "price": 1}))).is_err());
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://cdn.example.com/img1.jpg").is_ok());
        assert!(check_url("http://localhost:8080/a?b=c#d").is_ok());
        for bad in [
            "cdn.example.com/x.jpg",
            "javascript:alert(1)",
            "https:///x",
            "https://a b/c",
            "https://.example/x",
            "https://example.com/\"x",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patches_change_only_what_is_given() {
        let patch =
            validate_patch(&object(json!({"price": "39.99", "stock": 200}))).expect("valid patch");
        assert_eq!(patch.price_cents, Some(3999));
        assert_eq!(patch.stock, Some(200));
        assert_eq!(patch.name, None);
        let patch = validate_patch(&object(json!({"category_id": null, "description": null})))
            .expect("clearing");
        assert_eq!(patch.category_id, Some(None));
        assert_eq!(patch.description, Some(None));
        let problems = validate_patch(&object(json!({"sku": null, "price": -1}))).expect_err("x");
        assert_eq!(fields_of(&problems), vec!["sku", "price"]);
        assert!(validate_patch(&Map::new()).is_err());
    }

    #[test]
    fn statements_bind_every_column() {
        let draft = validate_new(&object(json!({"sku": "A", "name": "B", "price": "0.10"})))
            .expect("valid");
        let statement = insert(&draft, "2026-01-01T00:00:00.000000Z");
        assert_eq!(statement.params.len(), INSERT_PARAMS);
        assert!(statement.sql.contains("$12)"));
        assert_eq!(statement.params[3], json!(10));
        assert_eq!(statement.params[5], Value::Null);
        let many = insert_many(&[&draft, &draft], "now", Some(draft.provided));
        assert_eq!(many.params.len(), 2 * INSERT_PARAMS);
        assert!(many.sql.contains("$24)"));
        assert!(many.sql.contains(
            "ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents, updated_at"
        ));
        assert!(!many.sql.contains("stock = excluded"));
    }

    #[test]
    fn rows_become_api_products() {
        let row = json!({
            "id": 1, "sku": "A", "name": "B", "description": null, "price_cents": 30,
            "stock": 2, "supplier_id": null, "category_id": 4, "status": "active",
            "images": "[\"https://a.example/x.jpg\"]", "attributes": "{\"k\":1}",
            "created_at": "t", "updated_at": "u"
        });
        let product: Product = serde_json::from_value(row).expect("a product row");
        let product = serde_json::to_value(product).expect("json");
        assert_eq!(product["price"].to_string(), "0.3");
        assert_eq!(product["images"][0], "https://a.example/x.jpg");
        assert_eq!(product["attributes"]["k"], 1);
        assert!(product.get("price_cents").is_none());
    }
}
