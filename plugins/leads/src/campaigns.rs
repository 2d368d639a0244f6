//! Campaigns (seed 004, "Campagnes").
//!
//! - CRUD at `/campaigns` (`name` unique, `niche_id`, `channel` one of
//!   `email`, `sms`, `phone`, `linkedin`, `template` whose
//!   `{{placeholders}}` are checked on save, `target` (the lead filters of
//!   `GET /`, as an object), `schedule` (an RFC 3339 instant before which
//!   nothing is sent, or none), `webhook_url` (where messages are
//!   delivered)). Deleting an active campaign is a 409.
//! - `PUT /campaigns/{id}/status` `{"status"}`: `draft` → `active`,
//!   `active` ⇄ `paused`, `active`/`paused` → `completed`; anything else is
//!   a 409 naming the allowed moves. Activating needs a `webhook_url` and
//!   asks the `send_campaigns` job to run now.
//! - `GET /campaigns/{id}/stats`: targeted, contacted, responded,
//!   converted, failed and the rates.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{
    filters::LeadFilter, json_text, niches::rate, nullable, Id, Leads, Problems, DELETE, READ,
    WRITE,
};

/// Channels.
pub const CHANNELS: [&str; 4] = ["email", "sms", "phone", "linkedin"];

/// What a template may use.
pub const PLACEHOLDERS: [&str; 9] = [
    "company",
    "contact_name",
    "email",
    "phone",
    "website",
    "source",
    "score",
    "niche",
    "campaign",
];

/// The statuses a campaign in `from` may move to.
pub fn allowed_moves(from: &str) -> &'static [&'static str] {
    match from {
        "draft" => &["active"],
        "active" => &["paused", "completed"],
        "paused" => &["active", "completed"],
        _ => &[],
    }
}

/// The placeholders of a template, or the problem with it.
pub fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "a {{ is never closed".to_string())?;
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}}; known: {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        found.push(name.to_string());
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err("a }} has no {{".into());
    }
    Ok(found)
}

/// A template with its placeholders replaced by `values` (name → text).
pub fn render(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push_str(&value(after[..end].trim()));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A campaign.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Its niche.
    pub niche_id: Option<i64>,
    /// `email`, `sms`, `phone` or `linkedin`.
    pub channel: String,
    /// The message, with `{{placeholders}}`.
    pub template: String,
    /// Which leads it targets.
    #[serde(deserialize_with = "json_text::read")]
    pub target: LeadFilter,
    /// Nothing is sent before this instant.
    pub schedule: Option<String>,
    /// Where messages are delivered.
    pub webhook_url: Option<String>,
    /// `draft`, `active`, `paused` or `completed`.
    pub status: String,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// A new campaign, or the changes to one (only the fields given).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// 1 to 200 characters, unique (required on create).
    name: Option<String>,
    /// An existing niche.
    niche_id: Option<i64>,
    /// Required on create.
    channel: Option<String>,
    /// Required on create; placeholders among [`PLACEHOLDERS`].
    template: Option<String>,
    /// Lead filters (the fields of `GET /`'s query).
    #[schema(value_type = Option<Object>)]
    target: Option<Value>,
    /// RFC 3339 instant.
    schedule: Option<String>,
    /// http(s) URL; must also be in the operator's `http_allow`.
    webhook_url: Option<String>,
}

/// `PUT /campaigns/{id}/status`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// The new status.
    pub status: String,
}

/// A campaign's numbers.
#[derive(Serialize, ToSchema)]
pub struct CampaignStats {
    /// The campaign.
    pub campaign_id: i64,
    /// Leads its target selects now.
    pub targeted: i64,
    /// Leads a message reached.
    pub contacted: i64,
    /// Leads that answered (reported by `/webhooks/campaigns`).
    pub responded: i64,
    /// Leads reached that are now converted.
    pub converted: i64,
    /// Deliveries that failed every try.
    pub failed: i64,
    /// contacted / targeted.
    pub contact_rate: f64,
    /// responded / contacted.
    pub response_rate: f64,
    /// converted / contacted.
    pub conversion_rate: f64,
}

/// A campaign's checked fields, ready to write.
struct CampaignFields {
    name: String,
    niche_id: Option<i64>,
    channel: String,
    template: String,
    target: LeadFilter,
    schedule: Option<String>,
    webhook_url: Option<String>,
}

impl CampaignFields {
    /// The parameters of a campaign write, `$1` to `$8` (the fields, then
    /// the time), and `$9` the campaign's `id` for an update: one order for
    /// the insert and the update.
    fn params(&self, id: Option<i64>) -> Vec<Value> {
        let mut params = params![
            self.name,
            nullable(self.niche_id),
            self.channel,
            self.template,
            json_text::text(&self.target),
            self.schedule,
            self.webhook_url,
            now()
        ];
        params.extend(id.map(Value::from));
        params
    }
}

/// The columns of [`Campaign`].
pub const CAMPAIGN_COLUMNS: &str = "id, name, niche_id, channel, template, target, schedule, \
     webhook_url, status, created_at, updated_at";

#[derive(Deserialize)]
struct DeliveryCounts {
    contacted: i64,
    responded: i64,
    failed: i64,
    converted: i64,
}

impl Leads {
    /// The campaign `id` or a 404.
    pub fn campaign(&self, id: i64) -> Result<Campaign, Response> {
        self.host
            .query_one_as(
                &format!("SELECT {CAMPAIGN_COLUMNS} FROM leads_campaigns WHERE id = $1"),
                params![id],
            )?
            .ok_or_else(|| Response::not_found(&format!("no campaign {id}")))
    }

    /// The lead filter a campaign sends to: its target, within its niche.
    pub fn campaign_filter(campaign: &Campaign) -> LeadFilter {
        let mut filter = campaign.target.clone();
        if filter.niche_id.is_none() {
            filter.niche_id = campaign.niche_id;
        }
        filter
    }

    fn checked(
        &self,
        input: CampaignInput,
        current: Option<&Campaign>,
    ) -> Result<CampaignFields, Response> {
        let mut problems = Problems::default();
        let name = input
            .name
            .map(|n| n.trim().to_string())
            .or_else(|| current.map(|c| c.name.clone()))
            .unwrap_or_default();
        if name.is_empty() || name.chars().count() > 200 {
            problems.add("name", "required, 1 to 200 characters");
        }
        let channel = input
            .channel
            .or_else(|| current.map(|c| c.channel.clone()))
            .unwrap_or_default();
        if !CHANNELS.contains(&channel.as_str()) {
            problems.add("channel", format!("must be one of {}", CHANNELS.join(", ")));
        }
        let template = input
            .template
            .or_else(|| current.map(|c| c.template.clone()))
            .unwrap_or_default();
        if template.trim().is_empty() || template.len() > 10_000 {
            problems.add("template", "required, up to 10000 bytes");
        } else if let Err(problem) = placeholders(&template) {
            problems.add("template", problem);
        }
        let target = match input.target {
            None => current.map(|c| c.target.clone()).unwrap_or_default(),
            Some(value) => {
                let known: Value = serde_json::to_value(LeadFilter {
                    search: Some(String::new()),
                    status: Some(String::new()),
                    niche_id: Some(0),
                    campaign_id: Some(0),
                    source: Some(String::new()),
                    owner_id: Some(0),
                    score_min: Some(0),
                    score_max: Some(0),
                    tag: Some(String::new()),
                    created_from: Some(String::new()),
                    created_to: Some(String::new()),
                })
                .unwrap_or_default();
                match value.as_object() {
                    None => {
                        problems.add("target", "must be an object of lead filters");
                        LeadFilter::default()
                    }
                    Some(fields) => {
                        for key in fields.keys() {
                            if known.get(key).is_none() {
                                problems.add(&format!("target.{key}"), "not a lead filter");
                            }
                        }
                        match serde_json::from_value::<LeadFilter>(value.clone()) {
                            Ok(filter) => {
                                filter.check("target.", &mut problems);
                                filter
                            }
                            Err(error) => {
                                problems.add("target", error.to_string());
                                LeadFilter::default()
                            }
                        }
                    }
                }
            }
        };
        let niche_id = input.niche_id.or(current.and_then(|c| c.niche_id));
        self.check_references(niche_id, None, &mut problems)?;
        let schedule = input.schedule.or(current.and_then(|c| c.schedule.clone()));
        let schedule = match schedule.filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => match chrono::DateTime::parse_from_rfc3339(&raw) {
                Ok(at) => Some(
                    at.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                        .to_string(),
                ),
                Err(_) => {
                    problems.add("schedule", "must be an RFC 3339 instant");
                    None
                }
            },
        };
        let webhook_url = input
            .webhook_url
            .or(current.and_then(|c| c.webhook_url.clone()))
            .filter(|u| !u.is_empty());
        if webhook_url
            .as_ref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            problems.add("webhook_url", "must be an http(s) URL");
        }
        problems.finish()?;
        Ok(CampaignFields {
            name,
            niche_id,
            channel,
            template,
            target,
            schedule,
            webhook_url,
        })
    }

    fn create_campaign(
        &self,
        Json(input): Json<CampaignInput>,
    ) -> Result<Created<Campaign>, Response> {
        let fields = self.checked(input, None)?;
        let campaign = self
            .host
            .query_row_as(
                &format!(
                    "INSERT INTO leads_campaigns (name, niche_id, channel, template, target, schedule, \
                     webhook_url, status, created_at, updated_at) \
                     VALUES ($1, CAST($2 AS BIGINT), $3, $4, $5, $6, $7, 'draft', $8, $8) RETURNING {CAMPAIGN_COLUMNS}"
                ),
                fields.params(None),
            )
            .map_err(crate::name_taken("a campaign"))?;
        Ok(Created(campaign))
    }

    fn update_campaign(
        &self,
        Id(id): Id,
        Json(input): Json<CampaignInput>,
    ) -> Result<Json<Campaign>, Response> {
        let current = self.campaign(id)?;
        let fields = self.checked(input, Some(&current))?;
        self.host
            .execute(
                "UPDATE leads_campaigns SET name = $1, niche_id = CAST($2 AS BIGINT), channel = $3, template = $4, \
                 target = $5, schedule = $6, webhook_url = $7, updated_at = $8 WHERE id = $9",
                fields.params(Some(id)),
            )
            .map_err(crate::name_taken("a campaign"))?;
        Ok(Json(self.campaign(id)?))
    }

    fn delete_campaign(&self, Id(id): Id) -> Result<NoContent, Response> {
        let campaign = self.campaign(id)?;
        if campaign.status == "active" {
            return Err(Response::conflict(
                "pause or complete the campaign before deleting it",
            ));
        }
        let used: i64 = self.host.query_scalar(
            "SELECT COUNT(*) FROM leads WHERE campaign_id = $1",
            params![id],
        )?;
        if used > 0 {
            return Err(Response::conflict(&format!(
                "{used} leads belong to campaign {id}"
            )));
        }
        self.host
            .execute("DELETE FROM leads_campaigns WHERE id = $1", params![id])?;
        Ok(NoContent)
    }

    fn campaign_status(
        &self,
        Id(id): Id,
        Json(change): Json<StatusChange>,
    ) -> Result<Json<Campaign>, Response> {
        let campaign = self.campaign(id)?;
        let to = change.status;
        if !["draft", "active", "paused", "completed"].contains(&to.as_str()) {
            return Err(Response::invalid(
                "status",
                "must be one of draft, active, paused, completed",
            ));
        }
        if !allowed_moves(&campaign.status).contains(&to.as_str()) {
            let allowed = allowed_moves(&campaign.status);
            let allowed = if allowed.is_empty() {
                format!("none, {} is final", campaign.status)
            } else {
                allowed.join(", ")
            };
            return Err(Response::error_with_details(
                409,
                "CONFLICT",
                &format!(
                    "a campaign cannot move from {} to {to}; allowed from {}: {allowed}",
                    campaign.status, campaign.status
                ),
                &[("status", &format!("allowed: {allowed}"))],
            ));
        }
        if to == "active" && campaign.webhook_url.is_none() {
            return Err(Response::invalid(
                "webhook_url",
                "an active campaign needs a webhook_url to deliver to",
            ));
        }
        let done = self.host.execute(
            "UPDATE leads_campaigns SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            params![to, now(), id, campaign.status],
        )?;
        if done.rows_affected == 0 {
            return Err(Response::conflict(
                "the campaign's status changed meanwhile; read it again",
            ));
        }
        self.announce(
            "campaign.status_changed",
            &json!({"id": id, "from": campaign.status, "to": to}),
        );
        crate::activity::record(
            &self.host,
            "info",
            "campaign",
            &format!("campaign {id} {} -> {to}", campaign.status),
            Some(id),
            json!({}),
        );
        if to == "active" {
            if let Err(error) = self.host.run_job("send_campaigns") {
                self.host.warn(
                    "cannot start the sending job",
                    json!({"error": error.to_string()}),
                );
            }
        }
        Ok(Json(self.campaign(id)?))
    }

    /// A campaign's numbers (also used by `/stats/campaigns`).
    pub fn campaign_stats(&self, campaign: &Campaign) -> Result<CampaignStats, HostError> {
        let filter = Self::campaign_filter(campaign);
        let clause = filter.clause(self.host.dialect()?);
        let targeted: i64 = self.host.query_scalar(
            &format!("SELECT COUNT(*) FROM leads l {}", clause.sql()),
            clause.params,
        )?;
        let counts: DeliveryCounts = self.host.query_row_as(
            "SELECT COUNT(CASE WHEN d.status IN ('delivered', 'opened', 'responded') THEN 1 END) AS contacted, \
             COUNT(CASE WHEN d.status = 'responded' THEN 1 END) AS responded, \
             COUNT(CASE WHEN d.status IN ('failed', 'bounced') THEN 1 END) AS failed, \
             COUNT(CASE WHEN d.status IN ('delivered', 'opened', 'responded') AND l.status = 'converted' THEN 1 END) AS converted \
             FROM leads_deliveries d LEFT JOIN leads l ON l.id = d.lead_id WHERE d.campaign_id = $1",
            params![campaign.id],
        )?;
        Ok(CampaignStats {
            campaign_id: campaign.id,
            targeted,
            contacted: counts.contacted,
            responded: counts.responded,
            converted: counts.converted,
            failed: counts.failed,
            contact_rate: rate(counts.contacted, targeted.max(counts.contacted)),
            response_rate: rate(counts.responded, counts.contacted),
            conversion_rate: rate(counts.converted, counts.contacted),
        })
    }
}

/// The campaign routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get(
            "/campaigns",
            Access::Requires(READ),
            |l: &Leads, w: Window| {
                l.host.query_page::<Campaign>(
                    &format!("SELECT {CAMPAIGN_COLUMNS} FROM leads_campaigns ORDER BY id DESC"),
                    params![],
                    w,
                )
            },
        )
        .summary("List campaigns, newest first")
        .post(
            "/campaigns",
            Access::Requires(WRITE),
            Leads::create_campaign,
        )
        .summary("Create a campaign (draft); placeholders are checked")
        .get(
            "/campaigns/{id}",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id| l.campaign(id).map(Json),
        )
        .summary("Get a campaign")
        .put(
            "/campaigns/{id}",
            Access::Requires(WRITE),
            Leads::update_campaign,
        )
        .summary("Update a campaign (only the fields given)")
        .delete(
            "/campaigns/{id}",
            Access::Requires(DELETE),
            Leads::delete_campaign,
        )
        .summary("Delete a campaign that is not active and owns no lead")
        .put(
            "/campaigns/{id}/status",
            Access::Requires(WRITE),
            Leads::campaign_status,
        )
        .summary("Move a campaign: draft→active, active⇄paused, active/paused→completed")
        .doc(|op| op.error_response(409, "A forbidden move; the message names the allowed ones"))
        .get(
            "/campaigns/{id}/stats",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id| {
                let campaign = l.campaign(id)?;
                Ok::<_, Response>(Json(l.campaign_stats(&campaign)?))
            },
        )
        .summary("A campaign's targeted, contacted, responded, converted and rates")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_only_known_placeholders() {
        assert_eq!(
            placeholders("Hi {{ contact_name }} at {{company}}").expect("fine"),
            ["contact_name", "company"]
        );
        assert!(placeholders("Hi {{name}}")
            .expect_err("unknown")
            .contains("{{name}}"));
        assert!(placeholders("Hi {{company").is_err());
        assert!(placeholders("Hi company}}").is_err());
        assert_eq!(
            render("Hi {{ company }}!", |n| n.to_uppercase()),
            "Hi COMPANY!"
        );
    }
}
