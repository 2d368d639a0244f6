//! Statistics (seed 004, "Statistiques et Analytics").
//!
//! - `/stats/overview`: leads per status, conversion, average score, new
//!   leads in the last 30 days, campaigns, niches, agents, deliveries.
//! - `/stats/leads`: per status, per source, score distribution.
//! - `/stats/campaigns`, `/stats/niches`: each one's numbers.
//! - `/stats/conversion`: the funnel (leads that reached each stage) and
//!   conversion by source and by niche.
//! - `/stats/period/{period}` (`day`, `week`, `month`, `quarter`, `year`):
//!   a time series of created and converted leads (the last 30 days, 12
//!   weeks, 12 months, 8 quarters or 5 years, UTC; weeks start on Monday).

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{
    campaigns::{Campaign, CAMPAIGN_COLUMNS},
    niches::{days_ago, rate},
    Leads, READ, STATUSES,
};

#[derive(Deserialize)]
struct StatusRow {
    status: String,
    n: i64,
    score_sum: Option<i64>,
}

#[derive(Deserialize)]
struct KeyCount {
    key: Option<Value>,
    n: i64,
    converted: i64,
}

#[derive(Deserialize)]
struct DayCount {
    day: String,
    n: i64,
}

/// One point of a series.
#[derive(Serialize, ToSchema)]
pub struct Point {
    /// First day of the bucket.
    pub start: String,
    /// Leads created in it.
    pub leads: i64,
    /// Leads converted in it.
    pub converted: i64,
}

impl Leads {
    /// Leads per status (every status present) and the sum of scores.
    fn per_status(&self) -> Result<(BTreeMap<String, i64>, i64), HostError> {
        let rows: Vec<StatusRow> = self.host.query_as(
            "SELECT status, COUNT(*) AS n, CAST(SUM(score) AS BIGINT) AS score_sum FROM leads GROUP BY status",
            params![],
        )?;
        let mut counts: BTreeMap<String, i64> =
            STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
        let mut scores = 0;
        for row in rows {
            scores += row.score_sum.unwrap_or(0);
            counts.insert(row.status, row.n);
        }
        Ok((counts, scores))
    }

    fn count(&self, sql: &str, values: Vec<Value>) -> Result<i64, HostError> {
        self.host.query_scalar(sql, values)
    }

    fn overview(&self) -> Result<Json<Value>, Response> {
        let (per_status, scores) = self.per_status()?;
        let total: i64 = per_status.values().sum();
        let converted = per_status["converted"];
        Ok(Json(json!({
            "leads": {
                "total": total,
                "per_status": per_status,
                "converted": converted,
                "conversion_rate": rate(converted, total),
                "average_score": if total == 0 { 0.0 } else { (scores as f64 / total as f64 * 100.0).round() / 100.0 },
                "new_last_30_days": self.count("SELECT COUNT(*) FROM leads WHERE created_at >= $1", params![days_ago(30)])?,
            },
            "campaigns": {
                "total": self.count("SELECT COUNT(*) FROM leads_campaigns", params![])?,
                "active": self.count("SELECT COUNT(*) FROM leads_campaigns WHERE status = 'active'", params![])?,
            },
            "niches": self.count("SELECT COUNT(*) FROM leads_niches", params![])?,
            "agents": {
                "total": self.count("SELECT COUNT(*) FROM leads_agents", params![])?,
                "in_error": self.count("SELECT COUNT(*) FROM leads_agents WHERE status = 'error'", params![])?,
            },
            "deliveries": {
                "delivered": self.count("SELECT COUNT(*) FROM leads_deliveries WHERE status IN ('delivered', 'opened', 'responded')", params![])?,
                "failed": self.count("SELECT COUNT(*) FROM leads_deliveries WHERE status IN ('failed', 'bounced')", params![])?,
            },
        })))
    }

    fn grouped(&self, column: &str) -> Result<Vec<Value>, HostError> {
        let rows: Vec<KeyCount> = self.host.query_as(
            &format!(
                "SELECT {column} AS key, COUNT(*) AS n, COUNT(CASE WHEN status = 'converted' THEN 1 END) AS converted \
                 FROM leads GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT 50"
            ),
            params![],
        )?;
        Ok(rows
            .into_iter()
            .map(|row| {
                json!({"key": row.key, "leads": row.n, "converted": row.converted,
                    "conversion_rate": rate(row.converted, row.n)})
            })
            .collect())
    }

    fn lead_stats(&self) -> Result<Json<Value>, Response> {
        let (per_status, scores) = self.per_status()?;
        let total: i64 = per_status.values().sum();
        let buckets: Vec<KeyCount> = self.host.query_as(
            "SELECT (score / 20) AS key, COUNT(*) AS n, 0 AS converted FROM leads GROUP BY score / 20",
            params![],
        )?;
        let mut distribution: BTreeMap<String, i64> = BTreeMap::new();
        for bucket in buckets {
            let low = bucket.key.and_then(|k| k.as_i64()).unwrap_or(0).min(4) * 20;
            let label = format!("{low}-{}", if low == 80 { 100 } else { low + 19 });
            *distribution.entry(label).or_default() += bucket.n;
        }
        Ok(Json(json!({
            "total": total,
            "per_status": per_status,
            "per_source": self.grouped("source")?,
            "average_score": if total == 0 { 0.0 } else { (scores as f64 / total as f64 * 100.0).round() / 100.0 },
            "score_distribution": distribution,
        })))
    }

    fn campaigns_stats(&self) -> Result<Json<Value>, Response> {
        let campaigns: Vec<Campaign> = self.host.query_as(
            &format!("SELECT {CAMPAIGN_COLUMNS} FROM leads_campaigns ORDER BY id"),
            params![],
        )?;
        let mut out = Vec::new();
        for campaign in &campaigns {
            let stats = self.campaign_stats(campaign)?;
            let mut value = serde_json::to_value(stats).unwrap_or_default();
            value["name"] = json!(campaign.name);
            value["status"] = json!(campaign.status);
            out.push(value);
        }
        Ok(Json(Value::Array(out)))
    }

    fn niches_stats(&self) -> Result<Json<Value>, Response> {
        let niches: Vec<crate::niches::IdOnly> = self
            .host
            .query_as("SELECT id FROM leads_niches ORDER BY id", params![])?;
        let mut out = Vec::new();
        for niche in niches {
            out.push(serde_json::to_value(self.niche_stats(niche.id)?).unwrap_or_default());
        }
        Ok(Json(Value::Array(out)))
    }

    fn conversion(&self) -> Result<Json<Value>, Response> {
        let (per_status, _) = self.per_status()?;
        let total: i64 = per_status.values().sum();
        let reached = |stages: &[&str]| stages.iter().map(|s| per_status[*s]).sum::<i64>();
        let contacted = reached(&["contacted", "qualified", "converted"]);
        let qualified = reached(&["qualified", "converted"]);
        let converted = per_status["converted"];
        Ok(Json(json!({
            "total": total,
            "conversion_rate": rate(converted, total),
            "funnel": [
                {"stage": "new", "leads": total, "rate": rate(total, total)},
                {"stage": "contacted", "leads": contacted, "rate": rate(contacted, total)},
                {"stage": "qualified", "leads": qualified, "rate": rate(qualified, total)},
                {"stage": "converted", "leads": converted, "rate": rate(converted, total)},
            ],
            "lost": per_status["lost"],
            "by_source": self.grouped("source")?,
            "by_niche": self.grouped("niche_id")?,
        })))
    }

    fn period(&self, Path(period): Path<String>) -> Result<Json<Value>, Response> {
        let today = Utc::now().date_naive();
        let start_of = |date: NaiveDate| -> NaiveDate {
            match period.as_str() {
                "week" => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
                "month" => date.with_day(1).unwrap_or(date),
                "quarter" => NaiveDate::from_ymd_opt(date.year(), (date.month0() / 3) * 3 + 1, 1)
                    .unwrap_or(date),
                "year" => NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date),
                _ => date,
            }
        };
        let buckets: i64 = match period.as_str() {
            "day" => 30,
            "week" | "month" => 12,
            "quarter" => 8,
            "year" => 5,
            _ => {
                return Err(Response::not_found(&format!(
                    "no period {period}; periods: day, week, month, quarter, year"
                )))
            }
        };
        // The first bucket's start: step back bucket by bucket.
        let mut starts = vec![start_of(today)];
        for _ in 1..buckets {
            let previous = starts[starts.len() - 1] - Duration::days(1);
            starts.push(start_of(previous));
        }
        starts.reverse();
        let from = format!("{}T00:00:00.000000Z", starts[0]);
        let mut series: Vec<Point> = starts
            .iter()
            .map(|start| Point {
                start: start.to_string(),
                leads: 0,
                converted: 0,
            })
            .collect();
        for (column, is_converted) in [("created_at", false), ("converted_at", true)] {
            let days: Vec<DayCount> = self.host.query_as(
                &format!(
                    "SELECT substr({column}, 1, 10) AS day, COUNT(*) AS n FROM leads \
                     WHERE {column} >= $1 GROUP BY substr({column}, 1, 10)"
                ),
                params![from],
            )?;
            for day in days {
                let Ok(date) = NaiveDate::parse_from_str(&day.day, "%Y-%m-%d") else {
                    continue;
                };
                let start = start_of(date).to_string();
                if let Some(point) = series.iter_mut().find(|p| p.start == start) {
                    if is_converted {
                        point.converted += day.n;
                    } else {
                        point.leads += day.n;
                    }
                }
            }
        }
        let leads: i64 = series.iter().map(|p| p.leads).sum();
        let converted: i64 = series.iter().map(|p| p.converted).sum();
        Ok(Json(json!({
            "period": period, "from": starts[0].to_string(), "to": today.to_string(),
            "leads": leads, "converted": converted, "series": series,
        })))
    }
}

/// The stats routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get("/stats/overview", Access::Requires(READ), Leads::overview)
        .summary("Overview: leads, conversion, campaigns, niches, agents, deliveries")
        .get("/stats/leads", Access::Requires(READ), Leads::lead_stats)
        .summary("Leads per status, per source and by score")
        .get(
            "/stats/campaigns",
            Access::Requires(READ),
            Leads::campaigns_stats,
        )
        .summary("Every campaign's numbers")
        .get("/stats/niches", Access::Requires(READ), Leads::niches_stats)
        .summary("Every niche's numbers")
        .get(
            "/stats/conversion",
            Access::Requires(READ),
            Leads::conversion,
        )
        .summary("The funnel and conversion by source and niche")
        .get(
            "/stats/period/{period}",
            Access::Requires(READ),
            Leads::period,
        )
        .summary("Created and converted leads over time: day, week, month, quarter or year")
        .doc(|op| {
            op.add_parameter(json!({"name": "period", "in": "path", "required": true,
                "schema": {"type": "string", "enum": ["day", "week", "month", "quarter", "year"]}}))
        })
}
