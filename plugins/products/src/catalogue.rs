//! Products: the catalogue routes (seed 000).
//!
//! - `GET /` lists with paging (`page`/`page_size` or `skip`/`limit`),
//!   full-text `search` (see [`crate::search`]), filters (`supplier_id`,
//!   `category_id`, `status`, `is_active`, `price_min`, `price_max`; seed
//!   003's spellings too, see [`crate::seed_names`]; any other parameter
//!   is a 422) and sorting
//!   (`sort_by` one of name, price, stock, created_at, updated_at;
//!   `order`/`sort_order` asc or desc). Without `sort_by` a search is
//!   ranked by relevance, and a plain list is newest first.
//! - `GET /{id}`, `POST /` (201), `PUT /{id}` (partial), `DELETE /{id}`
//!   (204), `POST /{id}/activate`, `POST /{id}/deactivate`.
//! - `POST /bulk`: up to [`BULK_MAX_PRODUCTS`] products in one transaction,
//!   all or none; `update_existing` updates rows whose SKU exists (only the
//!   fields each row gives). Every bad row is reported by index and field.
//!
//! Writes publish `products.created`, `products.updated` and
//! `products.deleted` with the product; a bulk publishes one
//! `products.bulk` summary instead of one event per row. An update that
//! changes the price adds `price_change` (old and new price) and
//! `changed_by` (the caller's user id) to `products.updated`; a bulk's
//! summary lists its `price_changes` (see [`crate::price_changes`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Map;
use xcore_plugin_sdk::{host::rows_as, prelude::*, Dialect, Statement};

use crate::{
    fields::{
        self, FieldProblem, FieldSet, NewProduct, Product, ProductChanges, ProductDraft,
        ProductPatch, Status, PRODUCT_COLUMNS, PRODUCT_COLUMNS_P,
    },
    money,
    price_changes::PriceChange,
    search,
    seed_names::SeedQuery,
    Id, JsonObject, Products, DELETE, READ, WRITE,
};

/// Most products in one `POST /bulk`.
pub const BULK_MAX_PRODUCTS: usize = 10_000;

/// Body limit of `POST /bulk`: 10,000 products with long descriptions and
/// attributes need more than the host's 1 MiB default.
pub const BULK_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// `sort_by` names, the columns they sort, and each column's index
/// (migration 1).
const SORTS: [(&str, &str, &str); 5] = [
    ("name", "p.name", "products_name_idx"),
    ("price", "p.price_cents", "products_price_idx"),
    ("stock", "p.stock", "products_stock_idx"),
    ("created_at", "p.created_at", "products_created_idx"),
    ("updated_at", "p.updated_at", "products_updated_idx"),
];

/// A search walks the sort column's index (see `list`) from this many
/// matches...
const WALK_MIN_MATCHES: i64 = 400;
/// ...and only for pages ending before one row in this many matches.
const WALK_MATCHES_PER_ROW: i64 = 8;

/// SQLite: the FTS5 query `text` (the search words) restricted to the
/// products of `status`, for `products_fts_status` (migration 13): the
/// words in the text columns only, the status in its own column.
fn status_fts_query(text: &str, status: StatusFilter) -> String {
    let words = format!("{{sku name description}} : ({text})");
    match status {
        StatusFilter::Is(status) => format!("{words} AND status : \"{}\"", status.as_str()),
        StatusFilter::NotActive => format!("{words} NOT status : \"active\""),
    }
}

/// A sort key PostgreSQL cannot read from the column's index (same order).
fn unindexed(column: &str) -> String {
    match column {
        "p.price_cents" | "p.stock" => format!("({column} + 0)"),
        _ => format!("({column} || '')"),
    }
}

/// The index on a sort column.
fn sort_index(column: &str) -> Option<&'static str> {
    SORTS
        .iter()
        .find(|(_, sorted, _)| *sorted == column)
        .map(|(_, _, index)| *index)
}

/// Adds the schema (migration 1: categories, products, full-text index;
/// migration 2: PostgreSQL's search words cut like SQLite's, see
/// [`search`]; migration 13: SQLite's second full-text index, with the
/// status, which counts status-filtered searches) and the catalogue's
/// events.
pub fn declare(manifest: Manifest) -> Manifest {
    manifest
        .migration(
            1,
            "categories, products, full-text search",
            include_str!("../migrations/sqlite/0001_catalogue.sql"),
            include_str!("../migrations/postgres/0001_catalogue.sql"),
        )
        .migration(
            2,
            "search words cut the same way on both databases",
            search::SQLITE_MIGRATION,
            &search::postgres_migration(),
        )
        .migration(
            13,
            "a full-text index with the status, to count filtered searches (SQLite)",
            include_str!("../migrations/sqlite/0013_search_with_status.sql"),
            include_str!("../migrations/postgres/0013_search_with_status.sql"),
        )
        .event("created")
        .event("updated")
        .event("deleted")
        .event("bulk")
}

/// The catalogue's routes.
pub fn routes(router: Router<Products>) -> Router<Products> {
    router
        .get("/", Access::Requires(READ), Products::list)
        .summary("List products: search, filters, sorting, pages")
        .post("/", Access::Requires(WRITE), Products::create)
        .summary("Create a product")
        .doc(|op| op.error_response(409, "A product has this SKU"))
        .post("/bulk", Access::Requires(WRITE), Products::bulk)
        .summary("Create (or update) up to 10,000 products in one transaction, all or nothing")
        .doc(|op| {
            op.error_response(
                409,
                "Existing SKUs, without update_existing: nothing written",
            );
            op.error_response(413, "More than 10,000 products");
        })
        // Thousands of rows: off the host's async workers, with room for
        // the body.
        .blocking()
        .max_body(BULK_MAX_BODY_BYTES)
        .get("/{id}", Access::Requires(READ), Products::get)
        .summary("Get a product")
        .put("/{id}", Access::Requires(WRITE), Products::update)
        .summary("Update a product (only the fields given)")
        .doc(|op| op.error_response(409, "Another product has this SKU"))
        .delete("/{id}", Access::Requires(DELETE), Products::delete)
        .summary("Delete a product")
        .post(
            "/{id}/activate",
            Access::Requires(WRITE),
            |p: &Products, id: Id| p.set_status(id, Status::Active),
        )
        .summary("Set a product's status to active")
        .post(
            "/{id}/deactivate",
            Access::Requires(WRITE),
            |p: &Products, id: Id| p.set_status(id, Status::Inactive),
        )
        .summary("Set a product's status to inactive")
}

/// A write that lost a race on the SKU (checked first, so only a
/// concurrent writer gets here): 409 naming the field, like the checks.
fn taken_sku(error: HostError) -> Response {
    match error {
        HostError::UniqueViolation { .. } => Response::error_with_details(
            409,
            "CONFLICT",
            "a product with this SKU already exists",
            &[("sku", "already used")],
        ),
        other => other.into(),
    }
}

/// 422 listing every problem.
pub fn problems_response(problems: &[FieldProblem]) -> Response {
    let details: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect();
    Response::validation(&details)
}

fn no_product(id: i64) -> Response {
    Response::not_found(&format!("no product {id}"))
}

/// A subquery yielding the elements of the JSON array bound at placeholder
/// `param` as rows of one column `value` (text, or `BIGINT` with
/// `as_integer`): one parameter for any number of values, instead of
/// thousands of placeholders.
fn json_array_rows(dialect: Dialect, param: usize, as_integer: bool) -> String {
    match (dialect, as_integer) {
        (Dialect::Sqlite, _) => format!("SELECT value FROM json_each(${param})"),
        (Dialect::Postgres, false) => {
            format!("SELECT value FROM json_array_elements_text(${param}::json)")
        }
        (Dialect::Postgres, true) => format!(
            "SELECT CAST(value AS BIGINT) AS value FROM json_array_elements_text(${param}::json)"
        ),
    }
}

#[derive(Deserialize)]
struct IdRow {
    id: i64,
}

#[derive(Deserialize)]
struct SkuRow {
    id: i64,
    sku: String,
}

/// A product's id, SKU and price.
#[derive(Deserialize)]
struct PricedSku {
    id: i64,
    sku: String,
    price_cents: i64,
}

/// A product of a page that also counted the matches (PostgreSQL search).
#[derive(Deserialize)]
struct Counted {
    #[serde(flatten)]
    product: Product,
    total_count: i64,
}

/// `POST /bulk`'s answer: the summary (also published as `products.bulk`)
/// and the ids.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BulkSummary {
    /// Products in the request.
    pub total: usize,
    /// Rows created.
    pub created: usize,
    /// Existing rows updated (with `update_existing`).
    pub updated: usize,
    /// Whether existing SKUs were updated.
    pub update_existing: bool,
}

/// `products.bulk`'s payload: the summary, and every price the bulk set
/// or changed, at `changed_at` (the rows' `updated_at`).
#[derive(Serialize)]
struct BulkEvent<'a> {
    #[serde(flatten)]
    summary: &'a BulkSummary,
    changed_at: &'a str,
    price_changes: Vec<PriceChange>,
}

/// `products.updated`'s payload: the product, and the price change with
/// who made it when the update changed the price.
#[derive(Serialize)]
struct UpdatedEvent<'a> {
    #[serde(flatten)]
    product: &'a Product,
    #[serde(skip_serializing_if = "Option::is_none")]
    price_change: Option<PriceChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_by: Option<i64>,
}

/// What `POST /bulk` answers.
#[derive(Serialize, ToSchema)]
pub struct BulkResult {
    #[serde(flatten)]
    summary: BulkSummary,
    /// The products' ids, in request order.
    ids: Vec<Option<i64>>,
}

/// `POST /bulk`'s body, as documented; [`BulkRequest::parse`] reads it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation of the body `BulkRequest::parse` reads.
pub struct BulkBody {
    /// 1 to 10,000 products.
    #[schema(min_items = 1, max_items = 10_000)]
    products: Vec<NewProduct>,
    /// Alias of `products`.
    items: Option<Vec<NewProduct>>,
    /// Update the products whose SKU exists (only the fields given)
    /// instead of refusing them.
    update_existing: Option<bool>,
}

/// `GET /`'s query, as text: [`ListQuery::parse`] checks it whole, so
/// every bad parameter is reported at once.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ListParams {
    /// Full-text search over name, SKU and description: every word must
    /// match, the last one as a prefix; at most 200 characters.
    #[schema(max_length = 200)]
    search: Option<String>,
    /// Only this supplier's products.
    #[schema(value_type = Option<i64>, minimum = 1)]
    supplier_id: Option<String>,
    /// Only this category's products.
    #[schema(value_type = Option<i64>, minimum = 1)]
    category_id: Option<String>,
    /// Only products in this status.
    #[schema(value_type = Option<Status>)]
    status: Option<String>,
    /// `true`: only active products; `false`: only the others (inactive
    /// or draft). With `status`, both must agree.
    #[schema(value_type = Option<bool>)]
    is_active: Option<String>,
    /// Lowest price (inclusive, at most 2 decimals).
    #[schema(value_type = Option<f64>, minimum = 0)]
    price_min: Option<String>,
    /// Highest price (inclusive, at most 2 decimals).
    #[schema(value_type = Option<f64>, minimum = 0)]
    price_max: Option<String>,
    /// Sort field (default: relevance when searching, else newest first).
    #[schema(value_type = Option<SortField>)]
    sort_by: Option<String>,
    /// Sort direction.
    #[schema(value_type = Option<Direction>)]
    order: Option<String>,
    /// Sort direction (alias of order).
    #[schema(value_type = Option<Direction>)]
    sort_order: Option<String>,
}

/// `sort_by` values of `GET /`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documentation: `SORTS` holds what each one sorts.
pub enum SortField {
    /// By name.
    Name,
    /// By price.
    Price,
    /// By stock.
    Stock,
    /// By creation time.
    CreatedAt,
    /// By last change.
    UpdatedAt,
}

/// A sort direction.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documentation: `ListQuery::parse` reads it.
pub enum Direction {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl Products {
    fn fetch(&self, id: i64) -> Result<Option<Product>, HostError> {
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1");
        self.host.query_one_as(&sql, params![id])
    }

    /// The ids among `ids` that do not exist in `table` (one query, the
    /// ids bound as one JSON array).
    fn missing_ids(&self, table: &str, ids: &BTreeSet<i64>) -> Result<BTreeSet<i64>, HostError> {
        if ids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let sql = format!(
            "SELECT id FROM {table} WHERE id IN ({})",
            json_array_rows(self.host.dialect()?, 1, true)
        );
        let list = serde_json::to_string(ids).unwrap_or_default();
        let found: Vec<IdRow> = self.host.query_as(&sql, params![list])?;
        let found: BTreeSet<i64> = found.into_iter().map(|row| row.id).collect();
        Ok(ids.difference(&found).copied().collect())
    }

    /// Problems for references to categories and suppliers that do not
    /// exist: `(field prefix, category_id, supplier_id)` per product.
    fn reference_problems(
        &self,
        references: &[(String, Option<i64>, Option<i64>)],
    ) -> Result<Vec<FieldProblem>, HostError> {
        let categories: BTreeSet<i64> = references.iter().filter_map(|r| r.1).collect();
        let suppliers: BTreeSet<i64> = references.iter().filter_map(|r| r.2).collect();
        let missing_categories = self.missing_ids("products_categories", &categories)?;
        let missing_suppliers = self.missing_ids("products_suppliers", &suppliers)?;
        let mut problems = Vec::new();
        let path = |prefix: &str, field: &str| {
            if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            }
        };
        for (prefix, category, supplier) in references {
            if let Some(id) = category.filter(|id| missing_categories.contains(id)) {
                problems.push(FieldProblem::new(
                    &path(prefix, "category_id"),
                    format!("no category {id}"),
                ));
            }
            if let Some(id) = supplier.filter(|id| missing_suppliers.contains(id)) {
                problems.push(FieldProblem::new(
                    &path(prefix, "supplier_id"),
                    format!("no supplier {id}"),
                ));
            }
        }
        Ok(problems)
    }

    /// Existing products among `skus`: SKU to id.
    fn existing_skus(&self, skus: &[&str]) -> Result<HashMap<String, i64>, HostError> {
        Ok(self
            .existing_prices(skus)?
            .into_iter()
            .map(|(sku, (id, _))| (sku, id))
            .collect())
    }

    /// Existing products among `skus`: SKU to id and price (the old price
    /// of a bulk's price changes).
    fn existing_prices(&self, skus: &[&str]) -> Result<HashMap<String, (i64, i64)>, HostError> {
        if skus.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT id, sku, price_cents FROM products WHERE sku IN ({})",
            json_array_rows(self.host.dialect()?, 1, false)
        );
        let list = serde_json::to_string(skus).unwrap_or_default();
        let rows: Vec<PricedSku> = self.host.query_as(&sql, params![list])?;
        Ok(rows
            .into_iter()
            .map(|row| (row.sku, (row.id, row.price_cents)))
            .collect())
    }

    /// A 422 for the problems with a product's references, if any.
    fn check_references(
        &self,
        category: Option<i64>,
        supplier: Option<i64>,
    ) -> Result<(), Response> {
        let problems = self.reference_problems(&[(String::new(), category, supplier)])?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems_response(&problems))
        }
    }

    /// A 409 if another product (not `except`) has `sku`.
    fn check_sku_free(&self, sku: &str, except: Option<i64>) -> Result<(), Response> {
        match self.existing_skus(&[sku])?.get(sku) {
            Some(other) if Some(*other) != except => Err(Response::conflict(&format!(
                "a product with SKU {sku} already exists (id {other})"
            ))),
            _ => Ok(()),
        }
    }
    fn list(
        &self,
        names: SeedQuery,
        window: Window,
        Query(params): Query<ListParams>,
    ) -> Result<ListBody<Product>, Response> {
        // Products always answer with the page fields, however the client
        // paged.
        let window = Window {
            paged: true,
            ..window
        };
        let query = ListQuery::parse(&params).map_err(|p| problems_response(&names.respell(p)))?;
        let dialect = self.host.dialect()?;
        let mut params: Vec<Value> = Vec::new();
        // The page query ranks by relevance when no sort is asked for; the
        // count never needs the rank.
        let (mut page_join, mut count_join) = (String::new(), String::new());
        let (mut page_search, mut count_search) = (None, None);
        let mut rank_order = None;
        // SQLite: the full-text query (FTS5 syntax); with a status filter
        // alone, also the same restricted to that status, for
        // `products_fts_status` (migration 13).
        let mut fts_query: Option<String> = None;
        if let Some(terms) = &query.search {
            if terms.is_empty() {
                // Only punctuation: nothing can match.
                return Ok(listing::body(Vec::new(), 0, window));
            }
            let param = params.len() + 1;
            let ranked = search::sql(dialect, terms, param, query.sort.is_none());
            let plain = search::sql(dialect, terms, param, false);
            params.push(json!(plain.query));
            fts_query = Some(plain.query.clone());
            (page_join, count_join) = (ranked.join, plain.join);
            (page_search, count_search) = (ranked.condition, plain.condition);
            rank_order = ranked.rank_order;
        }
        // (page condition, count condition): they differ only for status.
        let mut conditions: Vec<(String, String)> = Vec::new();
        let mut filter = |page: &str, count: &str, value: Value| {
            params.push(value);
            let placeholder = format!("${}", params.len());
            conditions.push((
                page.replace('?', &placeholder),
                count.replace('?', &placeholder),
            ));
        };
        if let Some(id) = query.supplier_id {
            filter("p.supplier_id = ?", "p.supplier_id = ?", json!(id));
        }
        if let Some(id) = query.category_id {
            filter("p.category_id = ?", "p.category_id = ?", json!(id));
        }
        if let Some(status) = query.status {
            // Three values, so a third of the table each: reading the status
            // index and sorting tens of thousands of rows is far slower than
            // walking the sort column's index and skipping other statuses.
            // SQLite has no statistics to know that (plugins cannot run
            // ANALYZE); a unary `+` keeps it off the status index for the
            // page. The count still uses it (a covering index scan).
            let (operator, value) = match status {
                StatusFilter::Is(status) => ("=", status.as_str()),
                StatusFilter::NotActive => ("<>", Status::Active.as_str()),
            };
            let page = match dialect {
                Dialect::Sqlite => format!("+p.status {operator} ?"),
                Dialect::Postgres => format!("p.status {operator} ?"),
            };
            filter(&page, &format!("p.status {operator} ?"), json!(value));
        }
        if let Some(cents) = query.price_min {
            filter("p.price_cents >= ?", "p.price_cents >= ?", json!(cents));
        }
        if let Some(cents) = query.price_max {
            filter("p.price_cents <= ?", "p.price_cents <= ?", json!(cents));
        }
        let sqlite_ranked = dialect == Dialect::Sqlite && rank_order.is_some();
        let where_clause = |search: Option<String>, page: bool| {
            let all: Vec<String> = search
                .into_iter()
                .chain(conditions.iter().map(|(for_page, for_count)| {
                    if page {
                        for_page.clone()
                    } else {
                        for_count.clone()
                    }
                }))
                .collect();
            if all.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", all.join(" AND "))
            }
        };
        let page_where = where_clause(page_search, true);
        let count_where = where_clause(count_search, false);
        // SQLite, a search and no filter but the status: the full-text
        // indexes alone count (every product has its row in both, kept by
        // the triggers), without visiting a product per match. 100,000
        // products, a word in 60% of them: 1.3 to 3.4 ms instead of 16 ms;
        // with status=active, from `products_fts_status`, 3.1 to 4 ms
        // instead of 20 ms.
        let only_status = query.supplier_id.is_none()
            && query.category_id.is_none()
            && query.price_min.is_none()
            && query.price_max.is_none();
        let status_query = match (dialect, &fts_query, query.status) {
            (Dialect::Sqlite, Some(text), Some(status)) if only_status => {
                Some(status_fts_query(text, status))
            }
            _ => None,
        };
        let fts_count: Option<(&str, Vec<Value>)> = match (&status_query, &fts_query) {
            (Some(text), _) => Some((
                "SELECT COUNT(*) FROM products_fts_status WHERE products_fts_status MATCH $1",
                vec![json!(text)],
            )),
            (None, Some(text)) if dialect == Dialect::Sqlite && conditions.is_empty() => Some((
                "SELECT COUNT(*) FROM products_fts WHERE products_fts MATCH $1",
                vec![json!(text)],
            )),
            _ => None,
        };
        let count = || -> Result<i64, HostError> {
            match &fts_count {
                Some((sql, params)) => self.host.query_scalar(sql, params.clone()),
                None => {
                    let sql = format!("SELECT COUNT(*) FROM products p {count_join} {count_where}");
                    self.host.query_scalar(&sql, params.clone())
                }
            }
        };
        // SQLite, a search sorted by a column: SQLite either fetches and
        // sorts every match, or walks the column's index and skips the
        // non-matches until the page is full. Without statistics (plugins
        // cannot ANALYZE) it always does the first; with many matches and
        // an early page the second is several times faster (1,700 matches
        // of 100,000: 1.0 ms against 4.2 ms), with few matches or a deep
        // page the first wins. The count, needed anyway, decides.
        let counted = match (&query.search, query.sort, dialect) {
            (Some(_), Some(_), Dialect::Sqlite) => Some(count()?),
            _ => None,
        };
        // PostgreSQL, searching: the matches come from the GIN index, so the
        // page query counts them as well (one scan instead of two), and the
        // sort key is written so the planner sorts those matches rather
        // than walking the sort column's index and testing each row's text
        // (`price_cents + 0`, see `unindexed`). 100,000 products, 1,700
        // matches: 4.2 ms for page and count together, against 6.1 + 2.9
        // ms. Counting first and walking the index when the matches are
        // many was tried (BENCHMARKS.md, products, 2026-12-01): broad
        // searches went from 43-75 ms to 12-20 ms, but this 1,700-match
        // search from 3.9 to 10.6 ms, and the plugin cannot ask the
        // planner's estimate to choose (the host refuses `EXPLAIN`).
        let counted_in_page = dialect == Dialect::Postgres && query.search.is_some();
        let walk = counted.is_some_and(|hits| {
            hits >= WALK_MIN_MATCHES && (window.skip + window.limit) * WALK_MATCHES_PER_ROW <= hits
        });
        let from = match (dialect, walk, query.sort.and_then(|(c, _)| sort_index(c))) {
            (Dialect::Sqlite, true, Some(index)) => format!("products p INDEXED BY {index}"),
            _ => "products p".to_string(),
        };
        let order = match (query.sort, rank_order) {
            (Some((column, direction)), _) if counted_in_page => {
                format!("{} {direction}, p.id {direction}", unindexed(column))
            }
            (Some((column, direction)), _) => format!("{column} {direction}, p.id {direction}"),
            (None, Some(rank)) => format!("{rank}, p.id ASC"),
            (None, None) => "p.created_at DESC, p.id DESC".to_string(),
        };
        let mut page_params = params.clone();
        page_params.extend([json!(window.limit), json!(window.skip)]);
        let window_count = if counted_in_page {
            ", COUNT(*) OVER () AS total_count"
        } else {
            ""
        };
        let sql = if sqlite_ranked {
            // SQLite, by relevance: the page of (rank, id) pairs is chosen
            // from the full-text index alone (visiting a product only to
            // test the filters), and only its 20 products are read. Joining
            // first carried every match's whole row through the sort: 60,000
            // matches, 42 ms against 37 ms, the rest being bm25 itself.
            // Same order: rank, then id.
            let (join, filters) = match &status_query {
                // Only a status: the matching rowids of that status come
                // from `products_fts_status` (written `+f.rowid` so that FTS5
                // does not take the list as rowids to look up one by one,
                // rerunning the query for each: minutes).
                Some(text) => {
                    page_params = vec![params[0].clone(), json!(text)];
                    page_params.extend([json!(window.limit), json!(window.skip)]);
                    (
                        "",
                        " AND +f.rowid IN (SELECT rowid FROM products_fts_status \
                         WHERE products_fts_status MATCH $2)"
                            .to_string(),
                    )
                }
                // Other filters are tested on the row; the full-text matches
                // drive (a plain JOIN may start from products and rerun the
                // full-text query for every row).
                None if !conditions.is_empty() => (
                    "CROSS JOIN products p ON p.id = f.rowid",
                    conditions
                        .iter()
                        .map(|(for_page, _)| format!(" AND {for_page}"))
                        .collect(),
                ),
                None => ("", String::new()),
            };
            let (limit, offset) = (page_params.len() - 1, page_params.len());
            format!(
                "SELECT {PRODUCT_COLUMNS_P} FROM (SELECT f.rowid AS fts_id, \
                 bm25(products_fts) AS fts_rank FROM products_fts f {join} \
                 WHERE products_fts MATCH $1{filters} ORDER BY fts_rank ASC, f.rowid ASC \
                 LIMIT ${limit} OFFSET ${offset}) fts JOIN products p ON p.id = fts.fts_id \
                 ORDER BY fts.fts_rank ASC, p.id ASC"
            )
        } else {
            let (limit, offset) = (page_params.len() - 1, page_params.len());
            format!(
                "SELECT {PRODUCT_COLUMNS_P}{window_count} FROM {from} {page_join} {page_where} \
                 ORDER BY {order} LIMIT ${limit} OFFSET ${offset}"
            )
        };
        // (Counting with a window function in the page query was measured
        // on SQLite: it makes SQLite carry every matching row, not just the
        // ids, and cost more than a second query.)
        let (items, in_page) = if counted_in_page {
            let rows: Vec<Counted> = self.host.query_as(&sql, page_params)?;
            let total = rows.first().map(|row| row.total_count);
            (rows.into_iter().map(|row| row.product).collect(), total)
        } else {
            (self.host.query_as::<Product>(&sql, page_params)?, None)
        };
        // A short page tells the total without counting (unless it is past
        // the end, where it tells nothing).
        let short_page = (items.len() as i64) < window.limit;
        let total = match counted.or(in_page) {
            Some(total) => total,
            None if short_page && (!items.is_empty() || window.skip == 0) => {
                window.skip + items.len() as i64
            }
            None => count()?,
        };
        Ok(listing::body(items, total, window))
    }

    fn get(&self, Id(id): Id) -> Result<Json<Product>, Response> {
        self.fetch(id)?.map(Json).ok_or_else(|| no_product(id))
    }

    fn create(&self, body: JsonObject<NewProduct>) -> Result<Created<Product>, Response> {
        let draft = fields::validate_new(&body.fields).map_err(|p| problems_response(&p))?;
        self.check_references(draft.category_id, draft.supplier_id)?;
        self.check_sku_free(&draft.sku, None)?;
        let mut statement = fields::insert(&draft, &now());
        statement.sql = statement
            .sql
            .replace("RETURNING id, sku", &format!("RETURNING {PRODUCT_COLUMNS}"));
        let product: Product = self
            .host
            .query_row_as(&statement.sql, statement.params)
            .map_err(taken_sku)?;
        self.announce("created", &product);
        Ok(Created(product))
    }

    fn update(
        &self,
        Id(id): Id,
        caller: Option<Caller>,
        body: JsonObject<ProductChanges>,
    ) -> Result<Json<Product>, Response> {
        let patch = fields::validate_patch(&body.fields).map_err(|p| problems_response(&p))?;
        let existing = self.fetch(id)?.ok_or_else(|| no_product(id))?;
        self.check_references(patch.category_id.flatten(), patch.supplier_id.flatten())?;
        if let Some(sku) = patch.sku.as_deref().filter(|sku| *sku != existing.sku) {
            self.check_sku_free(sku, Some(id))?;
        }
        let statement = update_statement(id, &patch, &now());
        let product: Product = self
            .host
            .query_one_as(&statement.sql, statement.params)
            .map_err(taken_sku)?
            // Deleted between the read and the write.
            .ok_or_else(|| no_product(id))?;
        let price_change = PriceChange::between(
            id,
            &product.sku,
            Some(existing.price_cents),
            product.price_cents,
        );
        let changed_by = price_change
            .as_ref()
            .and(caller.map(|caller| caller.user_id));
        self.announce(
            "updated",
            &UpdatedEvent {
                product: &product,
                price_change,
                changed_by,
            },
        );
        Ok(Json(product))
    }

    fn delete(&self, Id(id): Id) -> Result<NoContent, Response> {
        let sql = "DELETE FROM products WHERE id = $1 RETURNING id, sku";
        let deleted: SkuRow = self
            .host
            .query_one_as(sql, params![id])?
            .ok_or_else(|| no_product(id))?;
        self.announce("deleted", &json!({"id": deleted.id, "sku": deleted.sku}));
        Ok(NoContent)
    }

    fn set_status(&self, Id(id): Id, status: Status) -> Result<Json<Product>, Response> {
        let sql = format!(
            "UPDATE products SET status = $1, updated_at = $2 WHERE id = $3 \
             RETURNING {PRODUCT_COLUMNS}"
        );
        let product: Product = self
            .host
            .query_one_as(&sql, params![status, now(), id])?
            .ok_or_else(|| no_product(id))?;
        self.announce("updated", &product);
        Ok(Json(product))
    }

    fn bulk(&self, body: JsonObject<BulkBody>) -> Result<Json<BulkResult>, Response> {
        let request = BulkRequest::parse(&body.fields)?;
        let key = request.key;
        let mut problems: Vec<FieldProblem> = Vec::new();
        let mut drafts: Vec<Option<ProductDraft>> = Vec::with_capacity(request.items.len());
        for (index, item) in request.items.iter().enumerate() {
            let prefix = format!("{key}[{index}]");
            let draft = match item {
                Value::Object(object) => fields::validate_new(object)
                    .map_err(|found| {
                        problems.extend(found.into_iter().map(|p| p.under(&prefix)));
                    })
                    .ok(),
                _ => {
                    problems.push(FieldProblem::new(&prefix, "must be a JSON object"));
                    None
                }
            };
            drafts.push(draft);
        }
        // The same SKU twice in one batch is ambiguous whatever
        // update_existing says.
        let mut first_index: HashMap<&str, usize> = HashMap::new();
        for (index, draft) in drafts.iter().enumerate() {
            if let Some(draft) = draft {
                if let Some(first) = first_index.insert(draft.sku.as_str(), index) {
                    first_index.insert(draft.sku.as_str(), first);
                    problems.push(FieldProblem::new(
                        &format!("{key}[{index}].sku"),
                        format!("duplicate of {key}[{first}].sku ({})", draft.sku),
                    ));
                }
            }
        }
        let references: Vec<(String, Option<i64>, Option<i64>)> = drafts
            .iter()
            .enumerate()
            .filter_map(|(index, draft)| {
                let draft = draft.as_ref()?;
                Some((
                    format!("{key}[{index}]"),
                    draft.category_id,
                    draft.supplier_id,
                ))
            })
            .collect();
        problems.extend(self.reference_problems(&references)?);
        let skus: Vec<&str> = drafts.iter().flatten().map(|d| d.sku.as_str()).collect();
        let existing = self.existing_prices(&skus)?;
        let mut conflicts: Vec<FieldProblem> = Vec::new();
        if !request.update_existing {
            for (index, draft) in drafts.iter().enumerate() {
                if let Some((id, _)) = draft.as_ref().and_then(|d| existing.get(&d.sku)) {
                    conflicts.push(FieldProblem::new(
                        &format!("{key}[{index}].sku"),
                        format!("a product with this SKU already exists (id {id})"),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            // Conflicts are listed too, so one round trip shows everything.
            problems.extend(conflicts);
            problems.sort_by_key(|p| problem_order(&p.field));
            return Err(problems_response(&problems));
        }
        if !conflicts.is_empty() {
            let details: Vec<(&str, &str)> = conflicts
                .iter()
                .map(|p| (p.field.as_str(), p.message.as_str()))
                .collect();
            return Err(Response::error_with_details(
                409,
                "CONFLICT",
                &format!(
                    "{} of the products have a SKU that already exists; nothing was written \
                     (send update_existing: true to update them)",
                    conflicts.len()
                ),
                &details,
            ));
        }
        let drafts: Vec<ProductDraft> = drafts.into_iter().flatten().collect();
        let changed_at = now();
        let statements = bulk_statements(
            self.host.dialect()?,
            &drafts,
            &changed_at,
            request.update_existing,
        );
        let results = self.host.transaction(statements).map_err(taken_sku)?;
        let mut ids_by_sku: HashMap<String, i64> = HashMap::new();
        for rows in &results {
            ids_by_sku.extend(
                rows_as::<SkuRow>(rows)?
                    .into_iter()
                    .map(|row| (row.sku, row.id)),
            );
        }
        let ids = drafts
            .iter()
            .map(|d| ids_by_sku.get(&d.sku).copied())
            .collect();
        let updated = drafts
            .iter()
            .filter(|d| existing.contains_key(&d.sku))
            .count();
        let summary = BulkSummary {
            total: drafts.len(),
            created: drafts.len() - updated,
            updated,
            update_existing: request.update_existing,
        };
        let price_changes = drafts
            .iter()
            .filter_map(|draft| {
                let id = *ids_by_sku.get(&draft.sku)?;
                match existing.get(&draft.sku) {
                    // An update that does not give the price keeps it.
                    Some(_) if !draft.provided.contains("price") => None,
                    Some((_, old)) => {
                        PriceChange::between(id, &draft.sku, Some(*old), draft.price_cents)
                    }
                    None => PriceChange::between(id, &draft.sku, None, draft.price_cents),
                }
            })
            .collect();
        self.announce(
            "bulk",
            &BulkEvent {
                summary: &summary,
                changed_at: &changed_at,
                price_changes,
            },
        );
        Ok(Json(BulkResult { summary, ids }))
    }
}
/// Sorts `products[12].price` by row number, then field, so a report of
/// thousands of rows reads in order.
fn problem_order(field: &str) -> (usize, String) {
    let index = field
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(number, _)| number.parse().ok())
        .unwrap_or(usize::MAX);
    (index, field.to_string())
}

/// The statements of a bulk: on PostgreSQL multi-row INSERTs of
/// [`fields::ROWS_PER_STATEMENT`] rows, on SQLite one statement with the
/// rows as one JSON parameter ([`fields::insert_json`]: 10,000 products in
/// 0.3 s instead of 1.1 s); with `update_existing`, rows are grouped by the
/// fields they give, so an update never overwrites a field the row did not
/// mention.
fn bulk_statements(
    dialect: Dialect,
    drafts: &[ProductDraft],
    now: &str,
    update_existing: bool,
) -> Vec<Statement> {
    let mut groups: BTreeMap<Option<FieldSet>, Vec<&ProductDraft>> = BTreeMap::new();
    for draft in drafts {
        let key = update_existing.then_some(draft.provided);
        groups.entry(key).or_default().push(draft);
    }
    groups
        .into_iter()
        .flat_map(|(update, group)| {
            if dialect == Dialect::Sqlite {
                return vec![fields::insert_json(&group, now, update)];
            }
            group
                .chunks(fields::ROWS_PER_STATEMENT)
                .map(|chunk| fields::insert_many(chunk, now, update))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `UPDATE products SET <given fields>, updated_at WHERE id RETURNING *`.
fn update_statement(id: i64, patch: &ProductPatch, now: &str) -> Statement {
    let mut assignments: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut set = |column: &str, value: Value, cast: bool| {
        params.push(value);
        let placeholder = format!("${}", params.len());
        // Nullable integers bind as text (see `fields::nullable_integer`):
        // PostgreSQL needs the cast into BIGINT.
        assignments.push(if cast {
            format!("{column} = CAST({placeholder} AS BIGINT)")
        } else {
            format!("{column} = {placeholder}")
        });
    };
    if let Some(sku) = &patch.sku {
        set("sku", json!(sku), false);
    }
    if let Some(name) = &patch.name {
        set("name", json!(name), false);
    }
    if let Some(description) = &patch.description {
        set("description", json!(description), false);
    }
    if let Some(cents) = patch.price_cents {
        set("price_cents", json!(cents), false);
    }
    if let Some(stock) = patch.stock {
        set("stock", json!(stock), false);
    }
    if let Some(supplier) = patch.supplier_id {
        set("supplier_id", fields::nullable_integer(supplier), true);
    }
    if let Some(category) = patch.category_id {
        set("category_id", fields::nullable_integer(category), true);
    }
    if let Some(status) = patch.status {
        set("status", json!(status.as_str()), false);
    }
    if let Some(images) = &patch.images {
        set(
            "images",
            json!(Value::from(images.clone()).to_string()),
            false,
        );
    }
    if let Some(attributes) = &patch.attributes {
        set(
            "attributes",
            json!(Value::Object(attributes.clone()).to_string()),
            false,
        );
    }
    set("updated_at", json!(now), false);
    params.push(json!(id));
    Statement {
        sql: format!(
            "UPDATE products SET {} WHERE id = ${} RETURNING {PRODUCT_COLUMNS}",
            assignments.join(", "),
            params.len()
        ),
        params,
    }
}

/// `POST /bulk`'s body: `{"products": [...], "update_existing": false}`
/// (`items` is accepted for `products`).
struct BulkRequest<'a> {
    /// The key the products came under, for the paths in error details.
    key: &'static str,
    items: &'a [Value],
    update_existing: bool,
}

impl<'a> BulkRequest<'a> {
    fn parse(body: &'a Map<String, Value>) -> Result<Self, Response> {
        let mut problems = Vec::new();
        for key in body.keys() {
            if !matches!(key.as_str(), "products" | "items" | "update_existing") {
                problems.push(FieldProblem::new(
                    key,
                    "unknown field; expected products (or items) and update_existing",
                ));
            }
        }
        let (key, items) = match (body.get("products"), body.get("items")) {
            (Some(items), None) => ("products", items),
            (None, Some(items)) => ("items", items),
            (Some(_), Some(_)) => {
                problems.push(FieldProblem::new(
                    "items",
                    "give products or items, not both",
                ));
                ("products", &Value::Null)
            }
            (None, None) => {
                problems.push(FieldProblem::new("products", "required"));
                ("products", &Value::Null)
            }
        };
        let update_existing = match body.get("update_existing") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => {
                problems.push(FieldProblem::new(
                    "update_existing",
                    "must be true or false",
                ));
                false
            }
        };
        let items = match items {
            Value::Array(items) => items.as_slice(),
            Value::Null => &[],
            _ => {
                problems.push(FieldProblem::new(key, "must be an array of products"));
                &[]
            }
        };
        if !problems.is_empty() {
            return Err(problems_response(&problems));
        }
        if items.len() > BULK_MAX_PRODUCTS {
            // 413, like a body over the byte limit: the request is too
            // large as a whole, whatever its rows hold; split it.
            return Err(Response::error_with_details(
                413,
                "VALIDATION_ERROR",
                &format!(
                    "at most {BULK_MAX_PRODUCTS} products per request, got {}; split the batch",
                    items.len()
                ),
                &[(key, &format!("at most {BULK_MAX_PRODUCTS} products"))],
            ));
        }
        if items.is_empty() {
            return Err(Response::invalid(key, "must hold at least one product"));
        }
        Ok(Self {
            key,
            items,
            update_existing,
        })
    }
}

/// Which statuses a list keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusFilter {
    /// `status=...` (or `is_active=true`: active).
    Is(Status),
    /// `is_active=false`: inactive or draft.
    NotActive,
}

/// `GET /`'s filters and order, validated.
#[derive(Debug)]
struct ListQuery {
    /// The search words; `Some(empty)` when the text had none.
    search: Option<Vec<String>>,
    supplier_id: Option<i64>,
    category_id: Option<i64>,
    status: Option<StatusFilter>,
    price_min: Option<i64>,
    price_max: Option<i64>,
    /// Column and direction.
    sort: Option<(&'static str, &'static str)>,
}

impl ListQuery {
    fn parse(params: &ListParams) -> Result<Self, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let id = |name: &str, raw: &Option<String>, problems: &mut Vec<FieldProblem>| {
            let raw = raw.as_deref()?;
            let parsed = raw.trim().parse::<i64>().ok().filter(|id| *id > 0);
            if parsed.is_none() {
                problems.push(FieldProblem::new(name, "must be a positive integer"));
            }
            parsed
        };
        let supplier_id = id("supplier_id", &params.supplier_id, &mut problems);
        let category_id = id("category_id", &params.category_id, &mut problems);
        let status = params.status.as_deref().and_then(|raw| {
            let status = Status::parse(raw);
            if status.is_none() {
                problems.push(FieldProblem::new(
                    "status",
                    "must be one of active, inactive, draft",
                ));
            }
            status
        });
        let is_active = params.is_active.as_deref().and_then(|raw| {
            let flag = match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            };
            if flag.is_none() {
                problems.push(FieldProblem::new("is_active", "must be true or false"));
            }
            flag
        });
        let status = match (status, is_active) {
            (status, None) => status.map(StatusFilter::Is),
            (None, Some(true)) => Some(StatusFilter::Is(Status::Active)),
            (None, Some(false)) => Some(StatusFilter::NotActive),
            (Some(status), Some(active)) if (status == Status::Active) == active => {
                Some(StatusFilter::Is(status))
            }
            (Some(status), Some(_)) => {
                problems.push(FieldProblem::new(
                    "is_active",
                    format!(
                        "conflicts with status={}: true is status active, false is inactive \
                         or draft",
                        status.as_str()
                    ),
                ));
                None
            }
        };
        let mut price = |name: &str, raw: &Option<String>| {
            let raw = raw.as_deref()?;
            money::parse_decimal(raw.trim())
                .map_err(|message| problems.push(FieldProblem::new(name, message)))
                .ok()
        };
        let price_min = price("price_min", &params.price_min);
        let price_max = price("price_max", &params.price_max);
        if let (Some(min), Some(max)) = (price_min, price_max) {
            if min > max {
                problems.push(FieldProblem::new("price_min", "must be <= price_max"));
            }
        }
        let search = match params.search.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) if text.chars().count() > search::MAX_SEARCH_CHARS => {
                problems.push(FieldProblem::new(
                    "search",
                    format!("must be at most {} characters", search::MAX_SEARCH_CHARS),
                ));
                None
            }
            Some(text) => Some(search::terms(text)),
        };
        let column = match params.sort_by.as_deref() {
            None => None,
            Some(wanted) => {
                let column = SORTS
                    .iter()
                    .find(|(name, _, _)| *name == wanted)
                    .map(|(_, column, _)| *column);
                if column.is_none() {
                    let names: Vec<&str> = SORTS.iter().map(|(name, _, _)| *name).collect();
                    problems.push(FieldProblem::new(
                        "sort_by",
                        format!("must be one of {}", names.join(", ")),
                    ));
                }
                column
            }
        };
        let (direction_name, direction) = match &params.sort_order {
            Some(order) => ("sort_order", Some(order)),
            None => ("order", params.order.as_ref()),
        };
        let direction = match direction.map(String::as_str) {
            None => None,
            Some(order) if order.eq_ignore_ascii_case("asc") => Some("ASC"),
            Some(order) if order.eq_ignore_ascii_case("desc") => Some("DESC"),
            Some(_) => {
                problems.push(FieldProblem::new(direction_name, "must be asc or desc"));
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        // An order without sort_by orders by creation time.
        let sort = match (column, direction) {
            (Some(column), direction) => Some((column, direction.unwrap_or("ASC"))),
            (None, Some(direction)) => Some(("p.created_at", direction)),
            (None, None) => None,
        };
        Ok(Self {
            search,
            supplier_id,
            category_id,
            status,
            price_min,
            price_max,
            sort,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use xcore_plugin_sdk::{
        host::HostOp,
        testing::{FakeHost, TestPlugin},
    };

    use super::*;

    fn request(query: &[(&str, &str)]) -> ListParams {
        let query: serde_json::Map<String, Value> = query
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        serde_json::from_value(Value::Object(query)).expect("list parameters")
    }

    #[test]
    fn list_queries_are_validated_together() {
        let problems = ListQuery::parse(&request(&[
            ("sort_by", "password"),
            ("order", "sideways"),
            ("status", "sold"),
            ("price_min", "-1"),
            ("supplier_id", "x"),
        ]))
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["supplier_id", "status", "price_min", "sort_by", "order"]
        );
        let query = ListQuery::parse(&request(&[
            ("sort_by", "price"),
            ("sort_order", "DESC"),
            ("price_min", "0.1"),
            ("price_max", "0.30"),
            ("search", "Clavier PROD-1"),
        ]))
        .expect("valid");
        assert_eq!(query.sort, Some(("p.price_cents", "DESC")));
        assert_eq!((query.price_min, query.price_max), (Some(10), Some(30)));
        assert_eq!(
            query.search,
            Some(vec!["clavier".into(), "prod".into(), "1".into()])
        );
    }

    #[test]
    fn bulk_groups_rows_by_the_fields_they_give() {
        let draft = |sku: &str, extra: Value| {
            let mut object = json!({"sku": sku, "name": "n", "price": 1});
            if let (Some(object), Value::Object(extra)) = (object.as_object_mut(), extra) {
                object.extend(extra);
            }
            fields::validate_new(object.as_object().expect("object")).expect("valid")
        };
        let mut drafts: Vec<ProductDraft> = (0..1001)
            .map(|i| draft(&format!("A{i}"), json!({})))
            .collect();
        drafts.push(draft("B", json!({"stock": 3})));
        let inserts = bulk_statements(Dialect::Postgres, &drafts, "now", false);
        assert_eq!(inserts.len(), 3, "1002 rows in chunks of 500");
        let upserts = bulk_statements(Dialect::Postgres, &drafts, "now", true);
        assert_eq!(upserts.len(), 4, "two field sets");
        assert!(upserts
            .iter()
            .any(|s| s.sql.contains("stock = excluded.stock")));
        assert!(upserts
            .iter()
            .all(|s| s.sql.contains("ON CONFLICT (sku) DO UPDATE")));
        // SQLite: one statement per field set, the rows as one JSON array.
        let inserts = bulk_statements(Dialect::Sqlite, &drafts, "now", false);
        assert_eq!(inserts.len(), 1);
        assert_eq!(inserts[0].params.len(), 2);
        let rows: Value =
            serde_json::from_str(inserts[0].params[0].as_str().expect("text")).expect("json");
        assert_eq!(rows.as_array().map(Vec::len), Some(1002));
        assert_eq!(rows[1001][0], "B");
        assert_eq!(rows[1001][4], 3);
        let upserts = bulk_statements(Dialect::Sqlite, &drafts, "now", true);
        assert_eq!(upserts.len(), 2, "two field sets");
        assert!(upserts
            .iter()
            .any(|s| s.sql.contains("stock = excluded.stock")));
        assert!(upserts
            .iter()
            .all(|s| s.sql.contains("WHERE true ON CONFLICT (sku) DO UPDATE")));
    }

    /// A writer that takes the SKU between the check and the insert: the
    /// host's unique violation is a 409 naming the field, and none of the
    /// database's wording (the constraint's name) reaches the client.
    #[test]
    fn a_sku_taken_by_a_concurrent_writer_is_a_409_naming_the_field() {
        let host = FakeHost::with_sql(|op| match op {
            HostOp::Query(s) if s.sql.starts_with("INSERT INTO products") => Err(json!({
                "kind": "unique_violation", "column": "sku", "constraint": "products_sku_key"
            })
            .to_string()),
            _ => Ok(json!([])),
        });
        let plugin = TestPlugin::start::<Products>(&host, Value::Null).expect("starts");
        let product = json!({"sku": "RACE", "name": "n", "price": 1});
        let response = plugin.request("POST", "/", Some(&product), None);
        assert_eq!(response.status, 409);
        let body: Value = serde_json::from_slice(&response.body_bytes()).expect("json");
        assert_eq!(body["error"]["code"], "CONFLICT");
        assert_eq!(body["error"]["details"][0]["field"], "sku");
        assert!(!body.to_string().contains("products_sku_key"), "{body}");
        assert!(host.recorded().published.is_empty());
    }

    /// A fake database with one category, no supplier,
    /// and SKU `TAKEN`.
    fn fake_host() -> FakeHost {
        FakeHost::with_sql(|op| {
            let HostOp::Query(statement) = op else {
                return Ok(json!([]));
            };
            let sql = statement.sql.as_str();
            Ok(if sql.contains("FROM products_categories") {
                json!([{"id": 1}])
            } else if sql.contains("SELECT id, sku, price_cents FROM products") {
                json!([{"id": 9, "sku": "TAKEN", "price_cents": 100}])
            } else {
                json!([])
            })
        })
    }

    #[test]
    fn bulk_reports_every_bad_row_by_index_and_writes_nothing() {
        let host = fake_host();
        let plugin = TestPlugin::start::<Products>(&host, Value::Null).expect("starts");
        let response = plugin.request(
            "POST",
            "/bulk",
            Some(&json!({"products": [
                {"sku": "A", "name": "ok", "price": 1, "category_id": 1},
                {"sku": "B", "name": "bad", "price": -1},
                {"sku": "A", "name": "dup", "price": 1},
                {"sku": "C", "name": "x", "price": 1, "category_id": 7, "supplier_id": 3},
                {"sku": "TAKEN", "name": "x", "price": 1},
                "nope"
            ]})),
            None,
        );
        assert_eq!(response.status, 422);
        let body: Value = serde_json::from_slice(&response.body_bytes()).expect("json");
        let fields: Vec<&str> = body["error"]["details"]
            .as_array()
            .expect("details")
            .iter()
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert_eq!(
            fields,
            vec![
                "products[1].price",
                "products[2].sku",
                "products[3].category_id",
                "products[3].supplier_id",
                "products[4].sku",
                "products[5]",
            ]
        );
        let recorded = host.recorded();
        assert!(recorded.published.is_empty());
        assert!(!recorded
            .sql
            .iter()
            .any(|op| matches!(op, HostOp::Transaction { .. })));
    }

    #[test]
    fn bulk_limits_are_enforced() {
        let host = fake_host();
        let plugin = TestPlugin::start::<Products>(&host, Value::Null).expect("starts");
        let many: Vec<Value> = (0..=BULK_MAX_PRODUCTS)
            .map(|i| json!({"sku": format!("S{i}"), "name": "n", "price": 1}))
            .collect();
        let response = plugin.request("POST", "/bulk", Some(&json!({ "items": many })), None);
        assert_eq!(response.status, 413);
        let response = plugin.request("POST", "/bulk", Some(&json!({"products": []})), None);
        assert_eq!(response.status, 422);
        let response = plugin.request(
            "POST",
            "/bulk",
            Some(&json!({"products": [{"sku": "TAKEN", "name": "n", "price": 1}]})),
            None,
        );
        assert_eq!(response.status, 409);
        let body: Value = serde_json::from_slice(&response.body_bytes()).expect("json");
        assert_eq!(body["error"]["details"][0]["field"], "products[0].sku");
    }

    #[test]
    fn a_bulk_is_one_transaction_and_one_event() {
        let host = FakeHost::with_sql(|op| match op {
            HostOp::Transaction { statements } => Ok(Value::Array(
                statements
                    .iter()
                    .map(|s| {
                        let rows = s.params.len() / 12;
                        Value::Array(
                            (0..rows)
                                .map(|r| json!({"id": r + 1, "sku": s.params[r * 12]}))
                                .collect(),
                        )
                    })
                    .collect(),
            )),
            _ => Ok(json!([])),
        })
        .with_dialect(Dialect::Postgres);
        let plugin = TestPlugin::start::<Products>(&host, Value::Null).expect("starts");
        let products: Vec<Value> = (0..1200)
            .map(|i| json!({"sku": format!("S{i}"), "name": "n", "price": "0.10"}))
            .collect();
        let response = plugin.request(
            "POST",
            "/bulk",
            Some(&json!({ "products": products })),
            None,
        );
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body_bytes())
        );
        let recorded = host.recorded();
        let transactions: Vec<&Vec<Statement>> = recorded
            .sql
            .iter()
            .filter_map(|op| match op {
                HostOp::Transaction { statements } => Some(statements),
                _ => None,
            })
            .collect();
        assert_eq!(transactions.len(), 1);
        assert_eq!(transactions[0].len(), 3);
        assert_eq!(recorded.published.len(), 1);
        assert_eq!(recorded.published[0].0, "bulk");
        assert_eq!(recorded.published[0].1["created"], 1200);
        // Every new product's first price, for the price history.
        let changes = recorded.published[0].1["price_changes"]
            .as_array()
            .expect("price_changes");
        assert_eq!(changes.len(), 1200);
        assert_eq!(changes[0]["old_price"], Value::Null);
        // The PostgreSQL form of the JSON-array lookups was used.
        assert!(recorded.sql.iter().any(|op| matches!(
            op,
            HostOp::Query(s) if s.sql.contains("json_array_elements_text($1::json)")
        )));
    }
}
