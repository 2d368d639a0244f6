//! Campaign sending: the `send_campaigns` job, and the outbound event
//! posts.
//!
//! The job (on the host's scheduler as `leads.send_campaigns`, and asked
//! to run now when a campaign is activated) goes through every `active`
//! campaign whose `schedule` has come, reads the leads its target selects
//! that it has not sent to yet, `send_batch_size` at a time, renders the
//! template per lead and POSTs it to the campaign's `webhook_url` through
//! `Host::http` (so only to URLs the operator allowed), signed with
//! `X-Signature` when a `webhook_secret` is set. A failed try (transport
//! error or non-2xx) is retried up to `delivery_max_attempts` times,
//! waiting `delivery_backoff_ms` doubled each time (settings
//! `scheduling`). Each lead gets one delivery row (`delivered` or
//! `failed`, tries, last status and error); a delivered `new` lead moves
//! to `contacted`. A campaign paused meanwhile stops after its batch.
//!
//! `GET /campaigns/{id}/deliveries` lists them.
//!
//! Outbound events: `leads.created` and `leads.converted` are posted to
//! the `outbound_urls` of `/settings/integrations` (those among
//! `outbound_events`), signed the same way, by an event listener off the
//! request path.

use std::time::Duration;

use serde_json::Map;
use xcore_plugin_sdk::{prelude::*, HttpRequest};

use crate::{
    campaigns::{render, Campaign, CAMPAIGN_COLUMNS},
    leads::{Lead, LEAD_COLUMNS},
    settings::{Integrations, Scheduling},
    signature,
    webhooks::Delivery,
    Id, Leads, READ,
};

/// What one delivery came to.
struct Outcome {
    delivered: bool,
    attempts: i64,
    response_status: Option<i64>,
    error: Option<String>,
}

impl Leads {
    /// POSTs `body` to `url` (signed when a secret is set), retrying with
    /// backoff.
    fn post_with_retries(
        &self,
        url: &str,
        body: &Value,
        policy: &Scheduling,
        secret: Option<&str>,
    ) -> Outcome {
        let mut request = HttpRequest::post_json(url, body);
        if let Some(secret) = secret {
            request.headers.push((
                "x-signature".into(),
                signature::sign(secret, body.to_string().as_bytes()),
            ));
        }
        let mut outcome = Outcome {
            delivered: false,
            attempts: 0,
            response_status: None,
            error: None,
        };
        let mut wait = policy.delivery_backoff_ms.max(0) as u64;
        while outcome.attempts < policy.delivery_max_attempts.max(1) {
            if outcome.attempts > 0 {
                std::thread::sleep(Duration::from_millis(wait));
                wait = wait.saturating_mul(2);
            }
            outcome.attempts += 1;
            match self.host.http(&request) {
                Ok(response) if (200..300).contains(&response.status) => {
                    outcome.delivered = true;
                    outcome.response_status = Some(i64::from(response.status));
                    outcome.error = None;
                    return outcome;
                }
                Ok(response) => {
                    outcome.response_status = Some(i64::from(response.status));
                    outcome.error = Some(format!("the webhook answered {}", response.status));
                }
                Err(error) => outcome.error = Some(error.to_string()),
            }
        }
        outcome
    }

    /// The message of `campaign` for `lead`.
    fn message(campaign: &Campaign, lead: &Lead, niche: &str) -> Value {
        let text = render(&campaign.template, |name| match name {
            "company" => lead.company.clone(),
            "contact_name" => lead.contact_name.clone().unwrap_or_default(),
            "email" => lead.email.clone().unwrap_or_default(),
            "phone" => lead.phone.clone().unwrap_or_default(),
            "website" => lead.website.clone().unwrap_or_default(),
            "source" => lead.source.clone().unwrap_or_default(),
            "score" => lead.score.to_string(),
            "niche" => niche.to_string(),
            "campaign" => campaign.name.clone(),
            _ => String::new(),
        });
        let to = match campaign.channel.as_str() {
            "email" => lead.email.clone(),
            "sms" | "phone" => lead.phone.clone(),
            _ => lead.website.clone().or(lead.email.clone()),
        };
        json!({
            "campaign_id": campaign.id, "lead_id": lead.id, "channel": campaign.channel,
            "to": to, "message": text,
        })
    }

    /// Sends what is due for one campaign; the number of deliveries made.
    fn send_campaign(
        &self,
        campaign: &Campaign,
        policy: &Scheduling,
        secret: Option<&str>,
    ) -> Result<i64, HostError> {
        let Some(url) = campaign.webhook_url.clone() else {
            return Ok(0);
        };
        let niche: String = match campaign.niche_id {
            Some(id) => self
                .host
                .query_one_as::<Map<String, Value>>(
                    "SELECT name FROM leads_niches WHERE id = $1",
                    params![id],
                )?
                .and_then(|row| row.get("name").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default(),
            None => String::new(),
        };
        let filter = Self::campaign_filter(campaign);
        let mut sent = 0;
        loop {
            let mut clause = filter.clause(self.host.dialect()?);
            clause.push(
                "NOT EXISTS (SELECT 1 FROM leads_deliveries d WHERE d.campaign_id = {} AND d.lead_id = l.id)",
                json!(campaign.id),
            );
            clause.params.push(json!(policy.send_batch_size));
            let sql = format!(
                "SELECT {LEAD_COLUMNS} FROM leads l {} ORDER BY id LIMIT ${}",
                clause.sql(),
                clause.params.len()
            );
            let batch: Vec<Lead> = self.host.query_as(&sql, clause.params)?;
            if batch.is_empty() {
                return Ok(sent);
            }
            for lead in &batch {
                let outcome = self.post_with_retries(
                    &url,
                    &Self::message(campaign, lead, &niche),
                    policy,
                    secret,
                );
                let status = if outcome.delivered {
                    "delivered"
                } else {
                    "failed"
                };
                let now = now();
                self.host.execute(
                    "INSERT INTO leads_deliveries (campaign_id, lead_id, status, attempts, response_status, \
                     last_error, created_at, updated_at) VALUES ($1, $2, $3, $4, CAST($5 AS BIGINT), $6, $7, $7) \
                     ON CONFLICT (campaign_id, lead_id) DO NOTHING",
                    params![campaign.id, lead.id, status, outcome.attempts, crate::nullable(outcome.response_status), outcome.error, now],
                )?;
                sent += 1;
                if outcome.delivered {
                    if lead.status == "new" {
                        // Someone may have moved it meanwhile: then it stays.
                        let _ = self.move_status(lead.id, "new", "contacted", "campaign");
                    }
                } else {
                    crate::activity::record(
                        &self.host,
                        "error",
                        "delivery",
                        &format!(
                            "campaign {} could not deliver to lead {}",
                            campaign.id, lead.id
                        ),
                        Some(lead.id),
                        json!({"campaign_id": campaign.id, "attempts": outcome.attempts,
                            "error": outcome.error}),
                    );
                }
            }
            let still: i64 = self.host.query_scalar(
                "SELECT COUNT(*) FROM leads_campaigns WHERE id = $1 AND status = 'active'",
                params![campaign.id],
            )?;
            if still == 0 {
                return Ok(sent);
            }
        }
    }

    /// The `send_campaigns` job.
    pub fn send_campaigns(&self) -> Result<(), HostError> {
        let campaigns: Vec<Campaign> = self.host.query_as(
            &format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM leads_campaigns WHERE status = 'active' \
                 AND (schedule IS NULL OR schedule <= $1) ORDER BY id"
            ),
            params![now()],
        )?;
        let policy: Scheduling = self.settings();
        let secret = self.settings::<Integrations>().webhook_secret;
        for campaign in &campaigns {
            let sent = self.send_campaign(campaign, &policy, secret.as_deref())?;
            if sent > 0 {
                crate::activity::record(
                    &self.host,
                    "info",
                    "campaign",
                    &format!("campaign {} sent {sent} messages", campaign.id),
                    Some(campaign.id),
                    json!({"deliveries": sent}),
                );
            }
        }
        Ok(())
    }

    /// Posts a lead event to the configured outbound URLs.
    fn post_event(&self, topic: &str, event: &Event) -> Result<(), HostError> {
        let settings: Integrations = self.settings();
        let name = topic.trim_start_matches("leads.");
        if settings.outbound_urls.is_empty() || !settings.outbound_events.iter().any(|e| e == name)
        {
            return Ok(());
        }
        let body = json!({"event": topic, "data": event.data});
        let policy: Scheduling = self.settings();
        for url in &settings.outbound_urls {
            let outcome =
                self.post_with_retries(url, &body, &policy, settings.webhook_secret.as_deref());
            if !outcome.delivered {
                crate::activity::record(
                    &self.host,
                    "error",
                    "webhook",
                    &format!("cannot post {topic} to {url}"),
                    None,
                    json!({"error": outcome.error, "attempts": outcome.attempts}),
                );
            }
        }
        Ok(())
    }
}

/// The sending job, the deliveries list and the outbound event posts.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get(
            "/campaigns/{id}/deliveries",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id, w: Window| {
                l.campaign(id)?;
                Ok::<_, Response>(l.host.query_page::<Delivery>(
                "SELECT id, campaign_id, lead_id, status, attempts, response_status, last_error, \
                 created_at, updated_at FROM leads_deliveries WHERE campaign_id = $1 ORDER BY id",
                params![id],
                w,
            )?)
            },
        )
        .summary("A campaign's deliveries")
        .job(
            "send_campaigns",
            "Delivers the active campaigns' messages to their webhooks",
            Leads::send_campaigns,
        )
        .on("leads.created", |l: &Leads, e: &Event| {
            l.post_event("leads.created", e)
        })
        .on("leads.converted", |l: &Leads, e: &Event| {
            l.post_event("leads.converted", e)
        })
}
