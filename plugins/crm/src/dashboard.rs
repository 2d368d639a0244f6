//! `GET /dashboard`: what a sales manager opens first.
//!
//! Money figures are for one currency (`?currency=`, default `EUR`):
//! adding amounts in different currencies would be meaningless without
//! rates, which the CRM does not have. `?owner=<user id>` narrows every
//! figure to one salesperson's deals and activities.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{dates::Calendar, money, nullable_id, Crm, READ};

/// The dashboard's parameters.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct DashboardQuery {
    /// Only this user's deals and activities.
    pub owner: Option<i64>,
    /// The currency of the money figures (default `EUR`).
    pub currency: Option<String>,
}

/// Open deals in one stage.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StageValue {
    /// The stage.
    pub stage_id: i64,
    /// Its name.
    pub stage: String,
    /// Its pipeline.
    pub pipeline_id: i64,
    /// Open deals in it.
    pub count: i64,
    /// Their total amount.
    #[schema(value_type = f64)]
    pub value: Value,
    /// Their amounts weighted by probability.
    #[schema(value_type = f64)]
    pub weighted_value: Value,
}

/// Deals closed in a period.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Period {
    /// Deals won.
    pub won: i64,
    /// Deals lost.
    pub lost: i64,
    /// Amount of the deals won.
    #[schema(value_type = f64)]
    pub revenue: Value,
}

/// Open deals expected to close in one month.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ForecastMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// Deals.
    pub count: i64,
    /// Their total amount.
    #[schema(value_type = f64)]
    pub value: Value,
    /// Weighted by probability.
    #[schema(value_type = f64)]
    pub weighted_value: Value,
}

/// A customer by revenue won.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TopCustomer {
    /// The customer.
    pub customer_id: i64,
    /// Its name.
    pub name: String,
    /// Deals won.
    pub deals: i64,
    /// Their amount.
    #[schema(value_type = f64)]
    pub revenue: Value,
}

/// The dashboard.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Dashboard {
    /// The currency of the money figures.
    pub currency: String,
    /// The owner it is narrowed to.
    pub owner: Option<i64>,
    /// Open deals per stage.
    pub pipeline: Vec<StageValue>,
    /// Total of open deals.
    #[schema(value_type = f64)]
    pub pipeline_value: Value,
    /// Total weighted by probability.
    #[schema(value_type = f64)]
    pub pipeline_weighted_value: Value,
    /// This calendar month (UTC).
    pub this_month: Period,
    /// This calendar quarter (UTC).
    pub this_quarter: Period,
    /// Won / (won + lost), over every closed deal, in percent (2 decimals).
    pub conversion_rate: Option<f64>,
    /// Mean amount of won deals.
    #[schema(value_type = Option<f64>)]
    pub average_deal_size: Value,
    /// Mean days from creation to winning.
    pub average_sales_cycle_days: Option<f64>,
    /// Open deals by expected close month.
    pub forecast: Vec<ForecastMonth>,
    /// Activities not done, due today.
    pub activities_due_today: i64,
    /// Activities not done, due before now.
    pub activities_overdue: i64,
    /// The 10 customers with the most revenue won.
    pub top_customers: Vec<TopCustomer>,
}

/// The dashboard's route.
pub fn routes(router: Router<Crm>) -> Router<Crm> {
    router
        .get("/dashboard", Access::Requires(READ), Crm::dashboard)
        .summary("Pipeline value, won/lost, conversion, forecast, activities, top customers")
}

/// An integer from a row (SQLite and PostgreSQL type sums differently:
/// numbers, or numeric text).
fn integer(row: &Row, column: &str) -> i64 {
    match row.get(column) {
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f.round() as i64))
            .unwrap_or(0),
        Some(Value::String(text)) => text
            .parse::<i64>()
            .ok()
            .or_else(|| text.parse::<f64>().ok().map(|f| f.round() as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

/// A float from a row (an average), if any.
fn float(row: &Row, column: &str) -> Option<f64> {
    match row.get(column) {
        Some(Value::Number(number)) => number.as_f64(),
        Some(Value::String(text)) => text.parse().ok(),
        _ => None,
    }
}

fn text(row: &Row, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

use xcore_plugin_sdk::Row;

impl Crm {
    fn dashboard(&self, Query(query): Query<DashboardQuery>) -> Result<Json<Dashboard>, Response> {
        let currency = money::currency(query.currency.as_deref().unwrap_or("EUR"))
            .map_err(|message| Response::invalid("currency", &message))?;
        let calendar = Calendar::at(chrono::Utc::now());
        // $1 currency, $2 owner (NULL = everyone).
        // Without an owner the condition is always true; the two SQL texts
        // let each case use its own plan (the owner's index, or the
        // covering scans).
        let owner_filter = if query.owner.is_some() {
            "o.owner_id = CAST($2 AS BIGINT)"
        } else {
            "CAST($2 AS BIGINT) IS NULL"
        };
        let owner = nullable_id(query.owner);
        let base = params![currency, owner];
        // One scan of the open deals (index-only, see migration 1), grouped
        // by stage and expected close month; both views are summed here.
        // Weighted values are in cents × percent until rounded once.
        let open = self.host.query(
            &format!(
                "SELECT o.stage_id, o.expected_close, COUNT(*) AS count, \
                 CAST(SUM(o.amount_cents) AS BIGINT) AS value, \
                 CAST(SUM(CASE WHEN o.probability IS NULL THEN o.amount_cents ELSE 0 END) AS BIGINT) AS unset, \
                 CAST(SUM(o.amount_cents * COALESCE(o.probability, 0)) AS BIGINT) AS weighted \
                 FROM crm_opportunities o \
                 WHERE o.status = 'open' AND o.currency = $1 AND {owner_filter} \
                 GROUP BY o.stage_id, o.expected_close"
            ),
            base.clone(),
        )?;
        let stages = self.host.query(
            "SELECT s.id, s.name, s.pipeline_id, s.probability FROM crm_stages s \
             ORDER BY s.pipeline_id, s.position, s.id",
            params![],
        )?;
        let stage_probability: BTreeMap<i64, i64> = stages
            .iter()
            .map(|stage| (integer(stage, "id"), integer(stage, "probability")))
            .collect();
        let mut per_stage: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
        let mut per_month: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
        for row in &open {
            let stage = integer(row, "stage_id");
            // A deal without its own probability takes its stage's.
            let weighted = integer(row, "weighted")
                + integer(row, "unset") * stage_probability.get(&stage).copied().unwrap_or(0);
            let (count, value) = (integer(row, "count"), integer(row, "value"));
            let add = |sums: &mut (i64, i64, i64)| {
                sums.0 += count;
                sums.1 += value;
                sums.2 += weighted;
            };
            add(per_stage.entry(stage).or_default());
            if let Some(date) = row.get("expected_close").and_then(Value::as_str) {
                add(per_month.entry(date.chars().take(7).collect()).or_default());
            }
        }
        let rounded = |weighted: i64| (weighted + 50) / 100;
        let mut pipeline = Vec::new();
        let (mut total, mut weighted_total) = (0_i64, 0_i64);
        for stage in &stages {
            let id = integer(stage, "id");
            let Some((count, value, weighted)) = per_stage.get(&id) else {
                continue;
            };
            total += value;
            weighted_total += rounded(*weighted);
            pipeline.push(StageValue {
                stage_id: id,
                stage: text(stage, "name"),
                pipeline_id: integer(stage, "pipeline_id"),
                count: *count,
                value: money::to_json(*value),
                weighted_value: money::to_json(rounded(*weighted)),
            });
        }
        let forecast = per_month
            .into_iter()
            .map(|(month, (count, value, weighted))| ForecastMonth {
                month,
                count,
                value: money::to_json(value),
                weighted_value: money::to_json(rounded(weighted)),
            })
            .collect();
        // Seconds to close, stored when the deal closed, in days.
        let cycle = "o.cycle_seconds / 86400.0";
        // One scan of the closed deals for every closed figure.
        let sum = |condition: &str, what: &str| {
            format!(
                "COALESCE(CAST(SUM(CASE WHEN {condition} THEN {what} ELSE 0 END) AS BIGINT), 0)"
            )
        };
        let closed = self
            .host
            .query_one(
                &format!(
                    "SELECT {} AS won, {} AS lost, {} AS revenue, \
                     {} AS month_won, {} AS month_lost, {} AS month_revenue, \
                     {} AS quarter_won, {} AS quarter_lost, {} AS quarter_revenue, \
                     CAST(AVG(CASE WHEN o.status = 'won' THEN {cycle} END) AS DOUBLE PRECISION) AS cycle \
                     FROM crm_opportunities o WHERE o.status IN ('won', 'lost') \
                     AND o.currency = $1 AND {owner_filter}",
                    sum("o.status = 'won'", "1"),
                    sum("o.status = 'lost'", "1"),
                    sum("o.status = 'won'", "o.amount_cents"),
                    sum("o.status = 'won' AND o.closed_at >= $3", "1"),
                    sum("o.status = 'lost' AND o.closed_at >= $3", "1"),
                    sum("o.status = 'won' AND o.closed_at >= $3", "o.amount_cents"),
                    sum("o.status = 'won' AND o.closed_at >= $4", "1"),
                    sum("o.status = 'lost' AND o.closed_at >= $4", "1"),
                    sum("o.status = 'won' AND o.closed_at >= $4", "o.amount_cents"),
                ),
                params![currency, owner, calendar.month, calendar.quarter],
            )?
            .unwrap_or_default();
        let period = |prefix: &str| Period {
            won: integer(&closed, &format!("{prefix}won")),
            lost: integer(&closed, &format!("{prefix}lost")),
            revenue: money::to_json(integer(&closed, &format!("{prefix}revenue"))),
        };
        let this_month = period("month_");
        let this_quarter = period("quarter_");
        let (won, lost) = (integer(&closed, "won"), integer(&closed, "lost"));
        let conversion_rate =
            (won + lost > 0).then(|| (won as f64 * 10_000.0 / (won + lost) as f64).round() / 100.0);
        let average_deal_size = if won > 0 {
            money::to_json((integer(&closed, "revenue") + won / 2) / won)
        } else {
            Value::Null
        };
        let average_sales_cycle_days =
            float(&closed, "cycle").map(|days| (days * 100.0).round() / 100.0);
        let assignee_filter = if query.owner.is_some() {
            "a.assignee_id = CAST($5 AS BIGINT)"
        } else {
            "CAST($5 AS BIGINT) IS NULL"
        };
        let activities = self
            .host
            .query_one(
                &format!("SELECT COALESCE(CAST(SUM(CASE WHEN a.due_at >= $1 AND a.due_at < $2 THEN 1 ELSE 0 END) AS BIGINT), 0) AS today, \
                 COALESCE(CAST(SUM(CASE WHEN a.due_at < $3 THEN 1 ELSE 0 END) AS BIGINT), 0) AS overdue \
                 FROM crm_activities a WHERE a.done = $4 AND a.due_at IS NOT NULL AND a.due_at < $2 \
                 AND {assignee_filter}"),
                params![calendar.today, calendar.tomorrow, calendar.now, false, owner],
            )?
            .unwrap_or_default();
        let top_customers = self
            .host
            .query(
                &format!(
                    "SELECT t.customer_id, c.name, t.deals, t.revenue FROM \
                     (SELECT o.customer_id, COUNT(*) AS deals, CAST(SUM(o.amount_cents) AS BIGINT) AS revenue \
                      FROM crm_opportunities o WHERE o.status = 'won' AND o.currency = $1 AND {owner_filter} \
                      GROUP BY o.customer_id ORDER BY revenue DESC, o.customer_id LIMIT 10) t \
                     JOIN crm_customers c ON c.id = t.customer_id ORDER BY t.revenue DESC, t.customer_id"
                ),
                base,
            )?
            .iter()
            .map(|row| TopCustomer {
                customer_id: integer(row, "customer_id"),
                name: text(row, "name"),
                deals: integer(row, "deals"),
                revenue: money::to_json(integer(row, "revenue")),
            })
            .collect();
        Ok(Json(Dashboard {
            currency,
            owner: query.owner,
            pipeline,
            pipeline_value: money::to_json(total),
            pipeline_weighted_value: money::to_json(weighted_total),
            this_month,
            this_quarter,
            conversion_rate,
            average_deal_size,
            average_sales_cycle_days,
            forecast,
            activities_due_today: integer(&activities, "today"),
            activities_overdue: integer(&activities, "overdue"),
            top_customers,
        }))
    }
}
