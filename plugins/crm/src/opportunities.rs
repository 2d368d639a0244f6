//! Opportunities (`/opportunities`): deals in a pipeline, with lines
//! priced from the products plugin's catalogue.
//!
//! - `GET /opportunities`: filters `status`, `pipeline_id`, `stage_id`,
//!   `customer_id`, `owner_id`, `mine=true`, `search` (in the title);
//!   `sort_by` `created_at`, `updated_at`, `amount`, `expected_close`,
//!   `title`; the SDK's paging;
//! - `POST /opportunities`, `GET/PUT/DELETE /opportunities/{id}`: an open
//!   deal can change (absent fields are kept; `lines` replaces the lines);
//!   a closed one is read-only (409);
//! - `POST /opportunities/{id}/stage` (`{"stage_id"}`, an open stage of its
//!   pipeline), `/won`, `/lost` (`{"reason"}`): won and lost are terminal;
//!   every move is recorded with who and when (`GET /{id}/history`).
//!
//! A line's unit price is the catalogue's at the time the line is written,
//! read with `GET <products>/{product_id}` through [`Host::call`] with the
//! caller's rights (so a caller without `products:read` cannot price a
//! line: 403); a client's `unit_price` is ignored. A product that no longer
//! exists is a 422 naming the line. With lines, `amount` is their total;
//! without, it is what the client says (exact money). `probability` is the
//! stage's unless set.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize, Serializer};
use xcore_plugin_sdk::{prelude::*, Dialect, Statement};

use crate::{
    dates, invalid, missing, money, nullable_id, totals::Totals, Clause, Crm, Id, DELETE, READ,
    WRITE,
};

/// Cents as the exact decimal JSON number.
fn cents<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    money::to_json(*value).serialize(serializer)
}

/// An opportunity line.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Line {
    /// Id.
    pub id: i64,
    /// The catalogue product.
    pub product_id: i64,
    /// Its name when the line was priced.
    pub product_name: String,
    /// Units.
    pub quantity: i64,
    /// The catalogue price when the line was priced.
    #[serde(serialize_with = "cents")]
    #[schema(value_type = f64)]
    pub unit_price: i64,
    /// Percent off.
    #[serde(serialize_with = "cents")]
    #[schema(value_type = f64)]
    pub discount: i64,
    /// `quantity × unit_price − discount`, to the cent.
    #[serde(serialize_with = "cents")]
    #[schema(value_type = f64)]
    pub total: i64,
}

/// An opportunity.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Opportunity {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// The customer.
    pub customer_id: i64,
    /// Its pipeline.
    pub pipeline_id: i64,
    /// Its stage.
    pub stage_id: i64,
    /// The stage's name.
    pub stage_name: String,
    /// Exact amount.
    #[serde(serialize_with = "cents")]
    #[schema(value_type = f64)]
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Win probability in percent: its own, or its stage's.
    pub probability: i64,
    /// Expected close date, `YYYY-MM-DD`.
    pub expected_close: Option<String>,
    /// The host user who owns it.
    pub owner_id: Option<i64>,
    /// `open`, `won` or `lost`.
    pub status: String,
    /// Why it was lost.
    pub lost_reason: Option<String>,
    /// When it was won or lost.
    pub closed_at: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Its lines (on the routes that answer one opportunity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<Line>>,
}

/// A line as a client sends it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct LineInput {
    /// A catalogue product's id.
    pub product_id: i64,
    /// Units (at least 1; default 1).
    pub quantity: Option<i64>,
    /// Percent off, up to 2 decimals (default 0).
    #[schema(value_type = Option<f64>)]
    pub discount: Option<Value>,
    /// Ignored: the catalogue's price applies.
    #[schema(value_type = Option<f64>)]
    pub unit_price: Option<Value>,
}

/// What a client sends to create an opportunity (and, partially, to
/// change one).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct OpportunityInput {
    /// Required.
    pub title: Option<String>,
    /// Required: a customer.
    pub customer_id: Option<i64>,
    /// The default pipeline when absent.
    pub pipeline_id: Option<i64>,
    /// The pipeline's first stage when absent.
    pub stage_id: Option<i64>,
    /// Exact amount (ignored when there are lines).
    #[schema(value_type = Option<f64>)]
    pub amount: Option<Value>,
    /// Default `EUR`.
    pub currency: Option<String>,
    /// 0 to 100; the stage's when absent or null.
    pub probability: Option<i64>,
    /// `YYYY-MM-DD`.
    pub expected_close: Option<String>,
    /// A host user id; the caller when absent on create.
    pub owner_id: Option<i64>,
    /// Products from the catalogue.
    pub lines: Option<Vec<LineInput>>,
}

/// `POST /{id}/stage`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct StageMove {
    /// An open stage of the opportunity's pipeline.
    pub stage_id: i64,
}

/// `POST /{id}/lost`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct LostInput {
    /// Why (required).
    pub reason: String,
}

/// One stage change.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// Id.
    pub id: i64,
    /// The stage before (none for the creation).
    pub from_stage_id: Option<i64>,
    /// Its name.
    pub from_stage: Option<String>,
    /// The stage after.
    pub to_stage_id: i64,
    /// Its name.
    pub to_stage: Option<String>,
    /// The opportunity's status after the change.
    pub status: String,
    /// The host user who made it.
    pub changed_by: Option<i64>,
    /// When.
    pub changed_at: String,
}

/// The list's filters.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct OpportunityFilters {
    /// `open`, `won` or `lost`.
    pub status: Option<String>,
    /// In this pipeline.
    pub pipeline_id: Option<i64>,
    /// In this stage.
    pub stage_id: Option<i64>,
    /// Of this customer.
    pub customer_id: Option<i64>,
    /// Owned by this user.
    pub owner_id: Option<i64>,
    /// Only the caller's.
    pub mine: Option<bool>,
    /// Words in the title (case ignored).
    pub search: Option<String>,
}

/// The columns the list sorts by.
pub struct OpportunitySort;

impl SortColumns for OpportunitySort {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("created_at", "o.created_at"),
        ("updated_at", "o.updated_at"),
        ("amount", "o.amount_cents"),
        ("expected_close", "o.expected_close"),
        ("title", "o.title"),
    ];
    const DEFAULT: (&'static str, &'static str) = ("created_at", "DESC");
    const TIEBREAK: &'static str = "o.id";
}

/// The `SELECT` of [`Opportunity`] (without lines).
const SELECT: &str = "SELECT o.id, o.title, o.customer_id, o.pipeline_id, o.stage_id, \
    s.name AS stage_name, o.amount_cents AS amount, o.currency, \
    COALESCE(o.probability, s.probability) AS probability, o.expected_close, o.owner_id, \
    o.status, o.lost_reason, o.closed_at, o.created_at, o.updated_at \
    FROM crm_opportunities o JOIN crm_stages s ON s.id = o.stage_id";

/// The opportunities' routes.
pub fn routes(router: Router<Crm>) -> Router<Crm> {
    router
        .get(
            "/opportunities",
            Access::Requires(READ),
            Crm::list_opportunities,
        )
        .summary("List opportunities: filters, sorting, pages")
        .post(
            "/opportunities",
            Access::Requires(WRITE),
            Crm::create_opportunity,
        )
        .summary("Create an opportunity; lines are priced from the catalogue")
        .doc(|op| op.error_response(422, "A line's product does not exist"))
        .get(
            "/opportunities/{id}",
            Access::Requires(READ),
            Crm::show_opportunity,
        )
        .summary("An opportunity with its lines")
        .put(
            "/opportunities/{id}",
            Access::Requires(WRITE),
            Crm::update_opportunity,
        )
        .summary("Change an open opportunity (absent fields are kept)")
        .doc(|op| op.error_response(409, "The opportunity is closed"))
        .delete(
            "/opportunities/{id}",
            Access::Requires(DELETE),
            Crm::delete_opportunity,
        )
        .summary("Delete an opportunity")
        .post(
            "/opportunities/{id}/stage",
            Access::Requires(WRITE),
            Crm::move_opportunity,
        )
        .summary("Move an open opportunity to another open stage")
        .doc(|op| op.error_response(409, "The opportunity is closed"))
        .post(
            "/opportunities/{id}/won",
            Access::Requires(WRITE),
            Crm::win_opportunity,
        )
        .summary("Mark an open opportunity won (terminal)")
        .doc(|op| op.error_response(409, "The opportunity is closed"))
        .post(
            "/opportunities/{id}/lost",
            Access::Requires(WRITE),
            Crm::lose_opportunity,
        )
        .summary("Mark an open opportunity lost, with a reason (terminal)")
        .doc(|op| op.error_response(409, "The opportunity is closed"))
        .get(
            "/opportunities/{id}/history",
            Access::Requires(READ),
            Crm::opportunity_history,
        )
        .summary("Every stage change of an opportunity, oldest first")
}

/// A line priced from the catalogue.
struct PricedLine {
    product_id: i64,
    product_name: String,
    quantity: i64,
    unit_price: i64,
    discount: i64,
    total: i64,
}

/// A key no other opportunity has (see migration 1's `create_key`).
fn create_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "{nanos:x}-{:x}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Crm {
    /// Opportunities matching `tail` (`<condition> ORDER BY ... LIMIT ...`).
    pub fn opportunities_where(
        &self,
        tail: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Opportunity>, HostError> {
        self.host
            .query_as(&format!("{SELECT} WHERE {tail}"), params)
    }

    /// The opportunity `id` with its lines, or a 404.
    pub fn opportunity(&self, id: i64) -> Result<Opportunity, Response> {
        let mut opportunity = self
            .opportunities_where("o.id = $1", params![id])?
            .pop()
            .ok_or_else(|| missing("opportunity"))?;
        opportunity.lines = Some(self.host.query_as(
            "SELECT id, product_id, product_name, quantity, unit_price_cents AS unit_price, \
             discount_bp AS discount, total_cents AS total FROM crm_opportunity_lines \
             WHERE opportunity_id = $1 ORDER BY position, id",
            params![id],
        )?);
        Ok(opportunity)
    }

    /// Prices `lines` from the catalogue, with the caller's rights.
    fn price_lines(&self, lines: &[LineInput]) -> Result<Vec<PricedLine>, Response> {
        let mut priced = Vec::new();
        let mut problems: Vec<(String, String)> = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let field = |name: &str| format!("lines[{index}].{name}");
            let quantity = line.quantity.unwrap_or(1);
            if quantity < 1 {
                problems.push((field("quantity"), "must be at least 1".into()));
                continue;
            }
            let discount =
                match money::parse_discount(line.discount.as_ref().unwrap_or(&Value::Null)) {
                    Ok(discount) => discount,
                    Err(message) => {
                        problems.push((field("discount"), message));
                        continue;
                    }
                };
            if line.product_id < 1 {
                problems.push((
                    field("product_id"),
                    format!("product {} does not exist", line.product_id),
                ));
                continue;
            }
            let answer = self.host.call(
                "GET",
                &format!("{}/{}", self.products_prefix, line.product_id),
                None,
            )?;
            match answer.status {
                200 => {}
                404 => {
                    problems.push((
                        field("product_id"),
                        format!("product {} does not exist", line.product_id),
                    ));
                    continue;
                }
                401 | 403 => {
                    return Err(Response::error(
                        403,
                        "AUTHORIZATION_ERROR",
                        "pricing a line reads the catalogue, which needs products:read",
                    ))
                }
                status => {
                    return Err(Response::plugin_error(&format!(
                        "the catalogue answered {status} for product {}",
                        line.product_id
                    )))
                }
            }
            let unit_price = money::parse(&answer.body["price"]).map_err(|message| {
                Response::plugin_error(&format!("the catalogue's price is unreadable: {message}"))
            })?;
            let total = money::line_total(quantity, unit_price, discount)
                .filter(|total| *total <= money::MAX_CENTS);
            let Some(total) = total else {
                problems.push((field("quantity"), "makes the line's total too large".into()));
                continue;
            };
            priced.push(PricedLine {
                product_id: line.product_id,
                product_name: answer.body["name"].as_str().unwrap_or_default().to_string(),
                quantity,
                unit_price,
                discount,
                total,
            });
        }
        if problems.is_empty() {
            Ok(priced)
        } else {
            Err(invalid(&problems))
        }
    }

    /// Statements writing `lines` for the opportunity `target` (an SQL
    /// expression for its id).
    fn line_statements(target: &str, target_param: Value, lines: &[PricedLine]) -> Vec<Statement> {
        lines
            .iter()
            .enumerate()
            .map(|(position, line)| {
                Statement::new(
                    &format!(
                        "INSERT INTO crm_opportunity_lines (opportunity_id, position, product_id, \
                         product_name, quantity, unit_price_cents, discount_bp, total_cents) \
                         VALUES ({target}, $2, $3, $4, $5, $6, $7, $8)"
                    ),
                    params![
                        target_param,
                        position as i64 + 1,
                        line.product_id,
                        line.product_name,
                        line.quantity,
                        line.unit_price,
                        line.discount,
                        line.total
                    ],
                )
            })
            .collect()
    }

    fn list_opportunities(
        &self,
        caller: Caller,
        Query(filters): Query<OpportunityFilters>,
        window: Window,
        sort: Sort<OpportunitySort>,
    ) -> Result<ListBody<Opportunity>, Response> {
        let mut clause = Clause::default();
        if let Some(status) = filters.status.as_deref() {
            if !matches!(status, "open" | "won" | "lost") {
                return Err(Response::invalid("status", "must be open, won or lost"));
            }
            // See the customers' type filter: on SQLite the status (three
            // values) is kept off its indexes when an id filter can lead.
            let narrowed = filters.owner_id.is_some()
                || filters.customer_id.is_some()
                || filters.stage_id.is_some()
                || filters.mine == Some(true);
            // An owner's deals have their own (owner, status, amount) index.
            let column = match self.host.dialect()? {
                Dialect::Sqlite
                    if narrowed && filters.owner_id.is_none() && filters.mine != Some(true) =>
                {
                    "+o.status"
                }
                _ => "o.status",
            };
            clause.push(&format!("{column} = {{}}"), json!(status));
        }
        clause.ids([
            ("o.pipeline_id", filters.pipeline_id),
            ("o.stage_id", filters.stage_id),
            ("o.customer_id", filters.customer_id),
            ("o.owner_id", filters.owner_id),
        ]);
        if filters.mine == Some(true) {
            clause.push("o.owner_id = {}", json!(caller.user_id));
        }
        for word in xcore_plugin_sdk::search::terms(filters.search.as_deref().unwrap_or("")) {
            clause.push("LOWER(o.title) LIKE {}", json!(format!("%{word}%")));
        }
        let (clause, params) = clause.finish();
        let sql = format!("{SELECT} {clause} ORDER BY {}", sort.order_by);
        // Counted without the stage join: every deal has exactly one stage
        // (`stage_id` is NOT NULL and a foreign key), and the filters read
        // only the deal, so this counts the page query's rows from the
        // deals' indexes alone.
        let count = format!("SELECT COUNT(*) FROM crm_opportunities o {clause}");
        Ok(self.host.query_page_counted(&sql, &count, params, window)?)
    }

    fn show_opportunity(&self, Id(id): Id) -> Result<Json<Opportunity>, Response> {
        self.opportunity(id).map(Json)
    }

    /// Checks the fields shared by create and update; returns the amount,
    /// currency and expected close date.
    fn check_opportunity(
        &self,
        input: &OpportunityInput,
        lines: Option<&[PricedLine]>,
    ) -> Result<(i64, String, Option<String>), Response> {
        let mut problems: Vec<(String, String)> = Vec::new();
        if input
            .title
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .is_empty()
        {
            problems.push(("title".into(), "is required".into()));
        }
        let amount = match lines {
            Some(lines) if !lines.is_empty() => lines.iter().map(|line| line.total).sum::<i64>(),
            _ => match &input.amount {
                None | Some(Value::Null) => 0,
                Some(value) => money::parse(value).unwrap_or_else(|message| {
                    problems.push(("amount".into(), message));
                    0
                }),
            },
        };
        if amount > money::MAX_CENTS {
            problems.push(("amount".into(), "is too large".into()));
        }
        let currency =
            money::currency(input.currency.as_deref().unwrap_or("EUR")).unwrap_or_else(|message| {
                problems.push(("currency".into(), message));
                String::new()
            });
        if input.probability.is_some_and(|p| !(0..=100).contains(&p)) {
            problems.push(("probability".into(), "must be between 0 and 100".into()));
        }
        let expected_close = match input.expected_close.as_deref() {
            None | Some("") => None,
            Some(raw) => dates::date(raw).map_or_else(
                |message| {
                    problems.push(("expected_close".into(), message));
                    None
                },
                Some,
            ),
        };
        match input.customer_id {
            None => problems.push(("customer_id".into(), "is required".into())),
            Some(id) if !self.customer_exists(id)? => {
                problems.push(("customer_id".into(), "no such customer".into()))
            }
            Some(_) => {}
        }
        if problems.is_empty() {
            Ok((amount, currency, expected_close))
        } else {
            Err(invalid(&problems))
        }
    }

    fn create_opportunity(
        &self,
        caller: Caller,
        Json(input): Json<OpportunityInput>,
    ) -> Result<Created<Opportunity>, Response> {
        let pipeline = match input.pipeline_id {
            Some(id) => self
                .pipeline(id)
                .map_err(|_| Response::invalid("pipeline_id", "no such pipeline"))?,
            None => self.default_pipeline()?,
        };
        let stage = match input.stage_id {
            Some(id) => pipeline
                .stages
                .iter()
                .find(|stage| stage.id == id)
                .ok_or_else(|| Response::invalid("stage_id", "is not a stage of the pipeline"))?,
            None => pipeline
                .stages
                .iter()
                .find(|stage| stage.kind == "open")
                .ok_or_else(|| Response::invalid("pipeline_id", "has no open stage"))?,
        };
        if stage.kind != "open" {
            return Err(Response::invalid(
                "stage_id",
                "a new opportunity starts in an open stage (won and lost have their routes)",
            ));
        }
        let lines = self.price_lines(input.lines.as_deref().unwrap_or(&[]))?;
        let (amount, currency, expected_close) = self.check_opportunity(&input, Some(&lines))?;
        let key = create_key();
        let now = now();
        let owner = input.owner_id.unwrap_or(caller.user_id);
        let target = "(SELECT id FROM crm_opportunities WHERE create_key = $1)";
        let mut statements = vec![Statement::new(
            "INSERT INTO crm_opportunities (title, customer_id, pipeline_id, stage_id, amount_cents, \
             currency, probability, expected_close, owner_id, status, create_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS BIGINT), $8, CAST($9 AS BIGINT), 'open', $10, $11, $11) RETURNING id",
            params![
                input.title.as_deref().unwrap_or("").trim(),
                input.customer_id,
                pipeline.id,
                stage.id,
                amount,
                currency,
                nullable_id(input.probability),
                expected_close,
                nullable_id(Some(owner)),
                key,
                now
            ],
        )];
        statements.extend(Self::line_statements(target, json!(key), &lines));
        statements.push(Statement::new(
            &format!(
                "INSERT INTO crm_stage_history (opportunity_id, from_stage_id, to_stage_id, status, \
                 changed_by, changed_at) VALUES ({target}, NULL, $2, 'open', $3, $4)"
            ),
            params![key, stage.id, caller.user_id, now],
        ));
        let results = self.host.transaction(Totals::after_creating(
            "o.create_key = $1",
            &params![key],
            statements,
        ))?;
        // After the totals lock: the insert's `RETURNING id`.
        let id = results
            .get(1)
            .and_then(|rows| rows.first())
            .and_then(|row| row.get("id").and_then(Value::as_i64))
            .ok_or_else(|| Response::plugin_error("the opportunity was not created"))?;
        let opportunity = self.opportunity(id)?;
        self.announce("opportunity.created", &opportunity);
        Ok(Created(opportunity))
    }

    /// The opportunity `id`, refused with a 409 unless it is open.
    fn open_opportunity(&self, id: i64) -> Result<Opportunity, Response> {
        let opportunity = self.opportunity(id)?;
        if opportunity.status != "open" {
            return Err(Response::conflict(&format!(
                "the opportunity is {}: won and lost are terminal",
                opportunity.status
            )));
        }
        Ok(opportunity)
    }

    fn update_opportunity(
        &self,
        Id(id): Id,
        Json(patch): Json<Value>,
    ) -> Result<Json<Opportunity>, Response> {
        let current = self.open_opportunity(id)?;
        let Value::Object(patch) = patch else {
            return Err(Response::invalid("body", "must be a JSON object"));
        };
        for field in ["pipeline_id", "stage_id", "status"] {
            if patch.contains_key(field) {
                return Err(Response::invalid(
                    field,
                    "changes through POST /opportunities/{id}/stage, /won or /lost",
                ));
            }
        }
        let mut merged = json!({
            "title": current.title,
            "customer_id": current.customer_id,
            "amount": money::to_json(current.amount),
            "currency": current.currency,
            "expected_close": current.expected_close,
            "owner_id": current.owner_id,
        });
        // The stored probability (not the stage's) is what "kept" means.
        let own: Option<i64> = self
            .host
            .query_one(
                "SELECT probability FROM crm_opportunities WHERE id = $1",
                params![id],
            )?
            .and_then(|row| row.get("probability").and_then(Value::as_i64));
        merged["probability"] = json!(own);
        let lines_given = patch.contains_key("lines");
        for (field, value) in patch {
            merged[field] = value;
        }
        let input: OpportunityInput = serde_json::from_value(merged)
            .map_err(|error| Response::invalid("body", &error.to_string()))?;
        let lines = if lines_given {
            Some(self.price_lines(input.lines.as_deref().unwrap_or(&[]))?)
        } else {
            None
        };
        // Without new lines, existing lines keep deciding the amount.
        let kept_lines = current
            .lines
            .as_ref()
            .is_some_and(|lines| !lines.is_empty());
        let (mut amount, currency, expected_close) =
            self.check_opportunity(&input, lines.as_deref())?;
        if lines.is_none() && kept_lines {
            amount = current.amount;
        }
        let mut statements = vec![Statement::new(
            "UPDATE crm_opportunities SET title = $1, customer_id = $2, amount_cents = $3, currency = $4, \
             probability = CAST($5 AS BIGINT), expected_close = $6, owner_id = CAST($7 AS BIGINT), updated_at = $8 WHERE id = $9",
            params![
                input.title.as_deref().unwrap_or("").trim(),
                input.customer_id,
                amount,
                currency,
                nullable_id(input.probability),
                expected_close,
                nullable_id(input.owner_id),
                now(),
                id
            ],
        )];
        if let Some(lines) = &lines {
            statements.push(Statement::new(
                "DELETE FROM crm_opportunity_lines WHERE opportunity_id = $1",
                params![id],
            ));
            statements.extend(Self::line_statements("$1", json!(id), lines));
        }
        self.host
            .transaction(Totals::around("o.id = $1", &params![id], statements))?;
        self.opportunity(id).map(Json)
    }

    fn delete_opportunity(&self, Id(id): Id) -> Result<NoContent, Response> {
        self.opportunity(id)?;
        let deleting = vec![
            Statement::new(
                "DELETE FROM crm_activities WHERE opportunity_id = $1",
                params![id],
            ),
            Statement::new(
                "DELETE FROM crm_opportunity_lines WHERE opportunity_id = $1",
                params![id],
            ),
            Statement::new(
                "DELETE FROM crm_stage_history WHERE opportunity_id = $1",
                params![id],
            ),
            Statement::new("DELETE FROM crm_opportunities WHERE id = $1", params![id]),
        ];
        self.host
            .transaction(Totals::before_deleting("o.id = $1", &params![id], deleting))?;
        Ok(NoContent)
    }

    /// Moves `opportunity` to `stage_id` with `status`, recording who and
    /// when; `lost_reason` for a lost deal.
    fn change_stage(
        &self,
        opportunity: &Opportunity,
        stage_id: i64,
        status: &str,
        lost_reason: Option<&str>,
        caller: &Caller,
    ) -> Result<Opportunity, Response> {
        let now = now();
        let closed_at = (status != "open").then(|| now.clone());
        let cycle_seconds = closed_at.as_ref().and_then(|_| {
            let created = chrono::DateTime::parse_from_rfc3339(&opportunity.created_at).ok()?;
            Some((chrono::Utc::now() - created.with_timezone(&chrono::Utc)).num_seconds())
        });
        // The status guard makes a concurrent close lose cleanly: a deal
        // closed meanwhile is not moved again.
        let moving = vec![
            Statement::new(
                "UPDATE crm_opportunities SET stage_id = $1, status = $2, lost_reason = $3, \
                 closed_at = $4, updated_at = $5, cycle_seconds = CAST($7 AS BIGINT) \
                 WHERE id = $6 AND status = 'open' RETURNING id",
                params![
                    stage_id,
                    status,
                    lost_reason,
                    closed_at,
                    now,
                    opportunity.id,
                    cycle_seconds.map(|seconds| seconds.to_string())
                ],
            ),
            Statement::new(
                "INSERT INTO crm_stage_history (opportunity_id, from_stage_id, to_stage_id, status, \
                 changed_by, changed_at) SELECT id, CAST($2 AS BIGINT), $3, $4, $5, $6 FROM crm_opportunities \
                 WHERE id = $1 AND stage_id = $3 AND updated_at = $6",
                params![opportunity.id, opportunity.stage_id, stage_id, status, caller.user_id, now],
            ),
        ];
        let results = self.host.transaction(Totals::around(
            "o.id = $1",
            &params![opportunity.id],
            moving,
        ))?;
        // After the lock and the subtraction: the update's `RETURNING id`.
        if results.get(3).is_none_or(Vec::is_empty) {
            return Err(Response::conflict("the opportunity was closed meanwhile"));
        }
        let moved = self.opportunity(opportunity.id)?;
        let event = json!({
            "id": moved.id,
            "title": moved.title,
            "customer_id": moved.customer_id,
            "from_stage_id": opportunity.stage_id,
            "to_stage_id": stage_id,
            "status": status,
            "amount": money::to_json(moved.amount),
            "currency": moved.currency,
            "owner_id": moved.owner_id,
            "changed_by": caller.user_id,
            "lost_reason": lost_reason,
        });
        self.announce("opportunity.stage_changed", &event);
        match status {
            "won" => self.announce("opportunity.won", &event),
            "lost" => self.announce("opportunity.lost", &event),
            _ => {}
        }
        Ok(moved)
    }

    fn move_opportunity(
        &self,
        caller: Caller,
        Id(id): Id,
        Json(body): Json<StageMove>,
    ) -> Result<Json<Opportunity>, Response> {
        let opportunity = self.open_opportunity(id)?;
        let pipeline = self.pipeline(opportunity.pipeline_id)?;
        let stage = pipeline
            .stages
            .iter()
            .find(|stage| stage.id == body.stage_id)
            .ok_or_else(|| {
                Response::invalid("stage_id", "is not a stage of the opportunity's pipeline")
            })?;
        if stage.kind != "open" {
            return Err(Response::invalid(
                "stage_id",
                "is a terminal stage: use POST /opportunities/{id}/won or /lost",
            ));
        }
        if stage.id == opportunity.stage_id {
            return Ok(Json(opportunity));
        }
        self.change_stage(&opportunity, stage.id, "open", None, &caller)
            .map(Json)
    }

    /// The pipeline's stage of `kind` (`won` or `lost`).
    fn terminal_stage(&self, pipeline_id: i64, kind: &str) -> Result<i64, Response> {
        self.pipeline(pipeline_id)?
            .stages
            .iter()
            .find(|stage| stage.kind == kind)
            .map(|stage| stage.id)
            .ok_or_else(|| Response::conflict(&format!("the pipeline has no {kind} stage")))
    }

    fn win_opportunity(&self, caller: Caller, Id(id): Id) -> Result<Json<Opportunity>, Response> {
        let opportunity = self.open_opportunity(id)?;
        let stage = self.terminal_stage(opportunity.pipeline_id, "won")?;
        self.change_stage(&opportunity, stage, "won", None, &caller)
            .map(Json)
    }

    fn lose_opportunity(
        &self,
        caller: Caller,
        Id(id): Id,
        Json(body): Json<LostInput>,
    ) -> Result<Json<Opportunity>, Response> {
        let reason = body.reason.trim();
        if reason.is_empty() {
            return Err(Response::invalid("reason", "is required"));
        }
        let opportunity = self.open_opportunity(id)?;
        let stage = self.terminal_stage(opportunity.pipeline_id, "lost")?;
        self.change_stage(&opportunity, stage, "lost", Some(reason), &caller)
            .map(Json)
    }

    fn opportunity_history(
        &self,
        Id(id): Id,
        window: Window,
    ) -> Result<ListBody<HistoryEntry>, Response> {
        self.opportunity(id)?;
        let sql = "SELECT h.id, h.from_stage_id, f.name AS from_stage, h.to_stage_id, t.name AS to_stage, \
                   h.status, h.changed_by, h.changed_at FROM crm_stage_history h \
                   LEFT JOIN crm_stages f ON f.id = h.from_stage_id \
                   LEFT JOIN crm_stages t ON t.id = h.to_stage_id \
                   WHERE h.opportunity_id = $1 ORDER BY h.id";
        Ok(self.host.query_page(sql, params![id], window)?)
    }
}
