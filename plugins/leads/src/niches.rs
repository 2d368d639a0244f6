//! Niches (seed 004, "Niches"): markets leads belong to.
//!
//! - CRUD at `/niches` (`name` unique, `description`, `criteria`: the
//!   target criteria, a JSON object); deleting a niche that leads or
//!   campaigns use is a 409.
//! - `GET /niches/{id}/stats`: leads, converted, conversion rate, per status.
//! - `GET /niches/{id}/recommendations`: rules computed from the data, each
//!   with its reason: the best-converting source and campaign of the niche,
//!   and the open leads nobody touched for `follow_up_days` (settings
//!   `scheduling`, default 14).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{json_text, Id, Leads, Problems, DELETE, READ, STATUSES, WRITE};

/// A niche.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Niche {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// Target criteria (industries, regions, sizes...).
    #[serde(deserialize_with = "json_text::read")]
    #[schema(value_type = Object)]
    pub criteria: Value,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// A new niche, or the changes to one (only the fields given).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicheInput {
    /// 1 to 200 characters, unique.
    name: Option<String>,
    /// Up to 2,000 characters.
    description: Option<String>,
    /// A JSON object.
    #[schema(value_type = Option<Object>)]
    criteria: Option<Value>,
}

const NICHE_COLUMNS: &str = "id, name, description, criteria, created_at, updated_at";

/// A niche's numbers.
#[derive(Serialize, ToSchema)]
pub struct NicheStats {
    /// The niche.
    pub niche_id: i64,
    /// Its leads.
    pub leads: i64,
    /// Converted leads.
    pub converted: i64,
    /// converted / leads (0 without leads).
    pub conversion_rate: f64,
    /// Leads per status.
    pub per_status: BTreeMap<String, i64>,
}

/// One recommendation.
#[derive(Serialize, ToSchema)]
pub struct Recommendation {
    /// `best_source`, `best_campaign` or `follow_up`.
    pub kind: String,
    /// What to do.
    pub action: String,
    /// Why, from the data.
    pub reason: String,
    /// The numbers behind it.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Deserialize)]
struct StatusCount {
    status: String,
    n: i64,
}

#[derive(Deserialize)]
struct GroupRate {
    key: Option<Value>,
    total: i64,
    converted: i64,
}

/// A ratio rounded to 4 decimals (rates are reports, not money).
pub fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
    }
}

impl Leads {
    fn niche(&self, id: i64) -> Result<Niche, Response> {
        self.host
            .query_one_as(
                &format!("SELECT {NICHE_COLUMNS} FROM leads_niches WHERE id = $1"),
                params![id],
            )?
            .ok_or_else(|| Response::not_found(&format!("no niche {id}")))
    }

    fn check_niche(input: &NicheInput, creating: bool) -> Result<(), Response> {
        let mut problems = Problems::default();
        match input.name.as_deref().map(str::trim) {
            None if creating => problems.add("name", "required"),
            Some(name) if name.is_empty() || name.chars().count() > 200 => {
                problems.add("name", "1 to 200 characters")
            }
            _ => {}
        }
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2000)
        {
            problems.add("description", "at most 2000 characters");
        }
        if input.criteria.as_ref().is_some_and(|c| !c.is_object()) {
            problems.add("criteria", "must be a JSON object");
        }
        problems.finish()
    }

    fn create_niche(&self, Json(input): Json<NicheInput>) -> Result<Created<Niche>, Response> {
        Self::check_niche(&input, true)?;
        let now = now();
        let niche = self
            .host
            .query_row_as(
                &format!(
                    "INSERT INTO leads_niches (name, description, criteria, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) RETURNING {NICHE_COLUMNS}"
                ),
                params![
                    input.name.as_deref().map(str::trim),
                    input.description,
                    input.criteria.unwrap_or_else(|| json!({})).to_string(),
                    now
                ],
            )
            .map_err(crate::name_taken("a niche"))?;
        Ok(Created(niche))
    }

    fn update_niche(
        &self,
        Id(id): Id,
        Json(input): Json<NicheInput>,
    ) -> Result<Json<Niche>, Response> {
        Self::check_niche(&input, false)?;
        let niche = self.niche(id)?;
        self.host
            .execute(
                "UPDATE leads_niches SET name = $1, description = $2, criteria = $3, updated_at = $4 \
                 WHERE id = $5",
                params![
                    input.name.as_deref().map(str::trim).unwrap_or(&niche.name),
                    input.description.or(niche.description),
                    input.criteria.unwrap_or(niche.criteria).to_string(),
                    now(),
                    id
                ],
            )
            .map_err(crate::name_taken("a niche"))?;
        Ok(Json(self.niche(id)?))
    }

    fn delete_niche(&self, Id(id): Id) -> Result<NoContent, Response> {
        self.niche(id)?;
        let used: i64 = self.host.query_scalar(
            "SELECT (SELECT COUNT(*) FROM leads WHERE niche_id = $1) \
             + (SELECT COUNT(*) FROM leads_campaigns WHERE niche_id = $1)",
            params![id],
        )?;
        if used > 0 {
            return Err(Response::conflict(&format!(
                "niche {id} is used by {used} leads or campaigns"
            )));
        }
        self.host
            .execute("DELETE FROM leads_niches WHERE id = $1", params![id])?;
        Ok(NoContent)
    }

    /// A niche's numbers (also used by `/stats/niches`).
    pub fn niche_stats(&self, id: i64) -> Result<NicheStats, HostError> {
        let counts: Vec<StatusCount> = self.host.query_as(
            "SELECT status, COUNT(*) AS n FROM leads WHERE niche_id = $1 GROUP BY status",
            params![id],
        )?;
        let mut per_status: BTreeMap<String, i64> =
            STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
        for count in counts {
            per_status.insert(count.status, count.n);
        }
        let leads = per_status.values().sum();
        let converted = per_status.get("converted").copied().unwrap_or(0);
        Ok(NicheStats {
            niche_id: id,
            leads,
            converted,
            conversion_rate: rate(converted, leads),
            per_status,
        })
    }

    fn recommendations(&self, Id(id): Id) -> Result<Json<Vec<Recommendation>>, Response> {
        self.niche(id)?;
        let stats = self.niche_stats(id)?;
        let mut found = Vec::new();
        for (kind, column, label) in [
            ("best_source", "source", "source"),
            ("best_campaign", "campaign_id", "campaign"),
        ] {
            let groups: Vec<GroupRate> = self.host.query_as(
                &format!(
                    "SELECT {column} AS key, COUNT(*) AS total, \
                     COUNT(CASE WHEN status = 'converted' THEN 1 END) AS converted \
                     FROM leads WHERE niche_id = $1 AND {column} IS NOT NULL GROUP BY {column}"
                ),
                params![id],
            )?;
            let best = groups
                .into_iter()
                .filter(|g| g.converted > 0)
                .max_by(|a, b| {
                    rate(a.converted, a.total)
                        .total_cmp(&rate(b.converted, b.total))
                        .then(a.total.cmp(&b.total))
                });
            if let Some(best) = best {
                let key = best.key.unwrap_or(Value::Null);
                let shown = key.as_str().map_or_else(|| key.to_string(), str::to_string);
                found.push(Recommendation {
                    kind: kind.into(),
                    action: format!("put more effort on {label} {shown}"),
                    reason: format!(
                        "{label} {shown} converts {} of {} leads ({:.1}%), the niche {:.1}%",
                        best.converted,
                        best.total,
                        rate(best.converted, best.total) * 100.0,
                        stats.conversion_rate * 100.0
                    ),
                    data: json!({label: key, "leads": best.total, "converted": best.converted,
                        "conversion_rate": rate(best.converted, best.total),
                        "niche_conversion_rate": stats.conversion_rate}),
                });
            }
        }
        let days = self
            .settings::<crate::settings::Scheduling>()
            .follow_up_days;
        let cutoff = days_ago(days);
        let stale: Vec<i64> = self
            .host
            .query_as::<IdOnly>(
                "SELECT id FROM leads WHERE niche_id = $1 AND status IN ('new', 'contacted', 'qualified') \
                 AND updated_at < $2 ORDER BY updated_at",
                params![id, cutoff],
            )?
            .into_iter()
            .map(|row| row.id)
            .collect();
        if !stale.is_empty() {
            found.push(Recommendation {
                kind: "follow_up".into(),
                action: format!("follow up {} leads", stale.len()),
                reason: format!(
                    "{} open leads of this niche have not changed for {days} days or more",
                    stale.len()
                ),
                data: json!({"days": days, "lead_ids": stale.iter().take(50).collect::<Vec<_>>()}),
            });
        }
        Ok(Json(found))
    }
}

/// A row with just an id.
#[derive(Deserialize)]
pub struct IdOnly {
    /// The id.
    pub id: i64,
}

/// The host's timestamp text for `days` days ago.
pub fn days_ago(days: i64) -> String {
    let then = chrono::Utc::now() - chrono::Duration::days(days);
    then.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The niche routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get("/niches", Access::Requires(READ), |l: &Leads, w: Window| {
            l.host.query_page::<Niche>(
                &format!("SELECT {NICHE_COLUMNS} FROM leads_niches ORDER BY name, id"),
                params![],
                w,
            )
        })
        .summary("List niches")
        .post("/niches", Access::Requires(WRITE), Leads::create_niche)
        .summary("Create a niche")
        .doc(|op| op.error_response(409, "A niche has this name"))
        .get(
            "/niches/{id}",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id| l.niche(id).map(Json),
        )
        .summary("Get a niche")
        .put("/niches/{id}", Access::Requires(WRITE), Leads::update_niche)
        .summary("Update a niche (only the fields given)")
        .delete(
            "/niches/{id}",
            Access::Requires(DELETE),
            Leads::delete_niche,
        )
        .summary("Delete a niche no lead or campaign uses")
        .doc(|op| op.error_response(409, "Leads or campaigns use it"))
        .get(
            "/niches/{id}/stats",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id| {
                l.niche(id)?;
                Ok::<_, Response>(Json(l.niche_stats(id)?))
            },
        )
        .summary("A niche's leads, conversion and statuses")
        .get(
            "/niches/{id}/recommendations",
            Access::Requires(READ),
            Leads::recommendations,
        )
        .summary("Recommendations computed from the niche's data, each with its reason")
}
