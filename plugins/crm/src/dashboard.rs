//! `GET /dashboard`: what a sales manager opens first.
//!
//! The deal figures come from the running totals ([`crate::totals`]), so
//! the dashboard costs the same with a thousand deals or a million; the
//! activity counts come from the `(done, due_at)` index, since "overdue"
//! moves with the clock.
//!
//! Money figures are for one currency (`?currency=`, default `EUR`):
//! adding amounts in different currencies would be meaningless without
//! rates, which the CRM does not have. `?owner=<user id>` narrows every
//! figure to one salesperson's deals and activities.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{
    dates::Calendar,
    money, nullable_id,
    totals::{self, Totals},
    Crm, READ,
};

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
        .job(
            "rebuild_totals",
            "Recomputes the dashboard's running totals from the opportunities (after rows were written by hand)",
            |crm: &Crm| crm.host.transaction(Totals::rebuild()).map(|_| ()),
        )
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

fn text(row: &Row, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

use xcore_plugin_sdk::Row;

/// Closed deals counted over one span.
#[derive(Default)]
struct ClosedSpan {
    won: i64,
    lost: i64,
    revenue: i64,
}

impl ClosedSpan {
    fn add(&mut self, won: bool, count: i64, amount: i64) {
        if won {
            self.won += count;
            self.revenue += amount;
        } else {
            self.lost += count;
        }
    }

    fn period(&self) -> Period {
        Period {
            won: self.won,
            lost: self.lost,
            revenue: money::to_json(self.revenue),
        }
    }
}

/// The closed deals' figures: ever, this quarter, this month, and the
/// won deals' sales cycles.
#[derive(Default)]
struct Closed {
    all: ClosedSpan,
    quarter: ClosedSpan,
    month: ClosedSpan,
    cycle_seconds: i64,
    cycle_deals: i64,
}

impl Crm {
    fn dashboard(&self, Query(query): Query<DashboardQuery>) -> Result<Json<Dashboard>, Response> {
        let currency = money::currency(query.currency.as_deref().unwrap_or("EUR"))
            .map_err(|message| Response::invalid("currency", &message))?;
        if query.owner.is_some_and(|owner| owner < 1) {
            return Err(Response::invalid("owner", "must be a user id"));
        }
        let calendar = Calendar::at(chrono::Utc::now());
        let owner_key = query.owner.unwrap_or(totals::EVERYONE);
        // The running totals (see `totals`): a few rows per stage and
        // month, whatever the number of deals.
        let groups = self.host.query(
            "SELECT status, stage_id, month, deals, amount_cents, weighted, unset_amount, \
             cycle_seconds, cycle_deals FROM crm_deal_totals \
             WHERE currency = $1 AND owner_key = $2 AND deals <> 0",
            params![currency, owner_key],
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
        // Weighted values are in cents × percent until rounded once.
        let mut per_stage: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
        let mut per_month: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
        // Months are `YYYY-MM`: a close month at or after the period's
        // first month is in the period.
        let (this_month_start, this_quarter_start) = (&calendar.month[..7], &calendar.quarter[..7]);
        let mut closed = Closed::default();
        for row in &groups {
            let (count, value) = (integer(row, "deals"), integer(row, "amount_cents"));
            let month = text(row, "month");
            match text(row, "status").as_str() {
                "open" => {
                    let stage = integer(row, "stage_id");
                    // A deal without its own probability takes its stage's.
                    let weighted = integer(row, "weighted")
                        + integer(row, "unset_amount")
                            * stage_probability.get(&stage).copied().unwrap_or(0);
                    let add = |sums: &mut (i64, i64, i64)| {
                        sums.0 += count;
                        sums.1 += value;
                        sums.2 += weighted;
                    };
                    add(per_stage.entry(stage).or_default());
                    if !month.is_empty() {
                        add(per_month.entry(month).or_default());
                    }
                }
                status => {
                    let won = status == "won";
                    closed.all.add(won, count, value);
                    if month.as_str() >= this_quarter_start {
                        closed.quarter.add(won, count, value);
                    }
                    if month.as_str() >= this_month_start {
                        closed.month.add(won, count, value);
                    }
                    if won {
                        closed.cycle_seconds += integer(row, "cycle_seconds");
                        closed.cycle_deals += integer(row, "cycle_deals");
                    }
                }
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
        let this_month = closed.month.period();
        let this_quarter = closed.quarter.period();
        let (won, lost) = (closed.all.won, closed.all.lost);
        let conversion_rate =
            (won + lost > 0).then(|| (won as f64 * 10_000.0 / (won + lost) as f64).round() / 100.0);
        let average_deal_size = if won > 0 {
            money::to_json((closed.all.revenue + won / 2) / won)
        } else {
            Value::Null
        };
        let average_sales_cycle_days = (closed.cycle_deals > 0).then(|| {
            let days = closed.cycle_seconds as f64 / closed.cycle_deals as f64 / 86_400.0;
            (days * 100.0).round() / 100.0
        });
        let owner = nullable_id(query.owner);
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
                "SELECT r.customer_id, c.name, r.deals, r.revenue FROM crm_customer_revenue r \
                 JOIN crm_customers c ON c.id = r.customer_id \
                 WHERE r.currency = $1 AND r.owner_key = $2 AND r.deals > 0 \
                 ORDER BY r.revenue DESC, r.customer_id LIMIT 10",
                params![currency, owner_key],
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
