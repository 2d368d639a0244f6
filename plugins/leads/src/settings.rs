//! Settings (seed 004, "Paramètres"): four JSON documents with a schema,
//! `GET`/`PUT /settings/{general,integrations,notifications,scheduling}`
//! (`leads:admin`).
//!
//! A `PUT` replaces the document (absent fields take their defaults);
//! unknown fields and bad values are a 422 naming the field. Secrets in
//! `integrations` (`webhook_secret`, `enrichment_token`) are never
//! answered in clear: a `GET` shows `"********"` and `*_set: true`, and a
//! `PUT` that leaves a secret out (or sends the mask back) keeps it.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{Leads, Problems, ADMIN};

/// What a set secret is shown as.
pub const MASK: &str = "********";

/// `general`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct General {
    /// The company using the product (up to 200 characters).
    pub company_name: String,
    /// IANA time zone name shown to users (up to 64 characters).
    pub timezone: String,
    /// The host user new leads are given to, if any.
    pub default_owner_id: Option<i64>,
    /// How long leads are kept, in days (1 to 3650).
    pub lead_retention_days: i64,
}

impl Default for General {
    fn default() -> Self {
        Self {
            company_name: String::new(),
            timezone: "UTC".into(),
            default_owner_id: None,
            lead_retention_days: 365,
        }
    }
}

/// `integrations`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Integrations {
    /// Key of the HMAC-SHA256 signatures of webhooks, both ways (16 to 256
    /// characters). Secret.
    pub webhook_secret: Option<String>,
    /// URLs `leads.created`/`leads.converted` are posted to (signed); each
    /// must also be in the operator's `http_allow`.
    pub outbound_urls: Vec<String>,
    /// Which of `created`, `converted` are posted.
    pub outbound_events: Vec<String>,
    /// Bearer token the enricher agent sends. Secret.
    pub enrichment_token: Option<String>,
}

/// `notifications`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Notifications {
    /// Whether email notifications are on.
    pub email_enabled: bool,
    /// Who gets them (at most 20 addresses).
    pub recipients: Vec<String>,
    /// Of `lead_created`, `lead_converted`, `agent_failed`, `delivery_failed`.
    pub notify_on: Vec<String>,
}

/// `scheduling`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Scheduling {
    /// Tries per campaign delivery (1 to 10).
    pub delivery_max_attempts: i64,
    /// Wait before the first retry, doubled each time (0 to 60000 ms).
    pub delivery_backoff_ms: i64,
    /// Open leads untouched this many days need a follow-up (1 to 365).
    pub follow_up_days: i64,
    /// Leads a campaign run reads at a time (1 to 1000).
    pub send_batch_size: i64,
}

impl Default for Scheduling {
    fn default() -> Self {
        Self {
            delivery_max_attempts: 3,
            delivery_backoff_ms: 200,
            follow_up_days: 14,
            send_batch_size: 200,
        }
    }
}

fn range(problems: &mut Problems, field: &str, value: i64, low: i64, high: i64) {
    if !(low..=high).contains(&value) {
        problems.add(field, format!("must be between {low} and {high}"));
    }
}

fn url_ok(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.len() <= 2000
}

/// A settings document: its name, checks and public form.
pub trait Document: Default + Serialize + DeserializeOwned + ToSchema + 'static {
    /// Its name in `/settings/{name}` and in storage.
    const NAME: &'static str;
    /// Gathers the problems with its values.
    fn check(&self, problems: &mut Problems);
    /// Keeps the stored secrets a `PUT` left out.
    fn keep_secrets(&mut self, _stored: &Self) {}
    /// What a `GET` shows.
    fn public(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Document for General {
    const NAME: &'static str = "general";
    fn check(&self, problems: &mut Problems) {
        if self.company_name.chars().count() > 200 {
            problems.add("company_name", "at most 200 characters");
        }
        if self.timezone.is_empty() || self.timezone.chars().count() > 64 {
            problems.add("timezone", "1 to 64 characters");
        }
        range(
            problems,
            "lead_retention_days",
            self.lead_retention_days,
            1,
            3650,
        );
    }
}

impl Document for Integrations {
    const NAME: &'static str = "integrations";
    fn check(&self, problems: &mut Problems) {
        if let Some(secret) = &self.webhook_secret {
            if !(16..=256).contains(&secret.chars().count()) {
                problems.add("webhook_secret", "16 to 256 characters");
            }
        }
        for (index, url) in self.outbound_urls.iter().enumerate() {
            if !url_ok(url) {
                problems.add(&format!("outbound_urls[{index}]"), "must be an http(s) URL");
            }
        }
        for (index, event) in self.outbound_events.iter().enumerate() {
            if !["created", "converted"].contains(&event.as_str()) {
                problems.add(
                    &format!("outbound_events[{index}]"),
                    "must be created or converted",
                );
            }
        }
        if self
            .enrichment_token
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 512)
        {
            problems.add("enrichment_token", "1 to 512 characters");
        }
    }
    fn keep_secrets(&mut self, stored: &Self) {
        for (new, old) in [
            (&mut self.webhook_secret, &stored.webhook_secret),
            (&mut self.enrichment_token, &stored.enrichment_token),
        ] {
            if new.is_none() || new.as_deref() == Some(MASK) {
                *new = old.clone();
            }
        }
    }
    fn public(&self) -> Value {
        let mask = |secret: &Option<String>| secret.as_ref().map(|_| MASK);
        json!({
            "webhook_secret": mask(&self.webhook_secret),
            "webhook_secret_set": self.webhook_secret.is_some(),
            "outbound_urls": self.outbound_urls,
            "outbound_events": self.outbound_events,
            "enrichment_token": mask(&self.enrichment_token),
            "enrichment_token_set": self.enrichment_token.is_some(),
        })
    }
}

impl Document for Notifications {
    const NAME: &'static str = "notifications";
    fn check(&self, problems: &mut Problems) {
        if self.recipients.len() > 20 {
            problems.add("recipients", "at most 20 addresses");
        }
        for (index, email) in self.recipients.iter().enumerate() {
            if !email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
            {
                problems.add(&format!("recipients[{index}]"), "not an email address");
            }
        }
        let known = [
            "lead_created",
            "lead_converted",
            "agent_failed",
            "delivery_failed",
        ];
        for (index, event) in self.notify_on.iter().enumerate() {
            if !known.contains(&event.as_str()) {
                problems.add(
                    &format!("notify_on[{index}]"),
                    format!("must be one of {}", known.join(", ")),
                );
            }
        }
    }
}

impl Document for Scheduling {
    const NAME: &'static str = "scheduling";
    fn check(&self, problems: &mut Problems) {
        range(
            problems,
            "delivery_max_attempts",
            self.delivery_max_attempts,
            1,
            10,
        );
        range(
            problems,
            "delivery_backoff_ms",
            self.delivery_backoff_ms,
            0,
            60_000,
        );
        range(problems, "follow_up_days", self.follow_up_days, 1, 365);
        range(problems, "send_batch_size", self.send_batch_size, 1, 1000);
    }
}

#[derive(Deserialize)]
struct Stored {
    document: String,
}

impl Leads {
    /// A settings document as stored (its defaults when never saved or
    /// unreadable).
    pub fn settings<D: Document>(&self) -> D {
        let stored: Option<Stored> = self
            .host
            .query_one_as(
                "SELECT document FROM leads_settings WHERE name = $1",
                params![D::NAME],
            )
            .ok()
            .flatten();
        stored
            .and_then(|s| serde_json::from_str(&s.document).ok())
            .unwrap_or_default()
    }

    fn read_settings<D: Document>(&self) -> Json<Value> {
        Json(self.settings::<D>().public())
    }

    fn write_settings<D: Document>(
        &self,
        Json(mut document): Json<D>,
    ) -> Result<Json<Value>, Response> {
        document.keep_secrets(&self.settings::<D>());
        let mut problems = Problems::default();
        document.check(&mut problems);
        problems.finish()?;
        let text = serde_json::to_string(&document).unwrap_or_default();
        self.host.execute(
            "INSERT INTO leads_settings (name, document, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
            params![D::NAME, text, now()],
        )?;
        crate::activity::record(
            &self.host,
            "info",
            "settings",
            &format!("settings {} changed", D::NAME),
            None,
            json!({}),
        );
        Ok(Json(document.public()))
    }
}

fn document_routes<D: Document>(router: Router<Leads>) -> Router<Leads> {
    let path = format!("/settings/{}", D::NAME);
    router
        .get(&path, Access::Requires(ADMIN), |l: &Leads| {
            l.read_settings::<D>()
        })
        .summary(&format!("The {} settings (secrets masked)", D::NAME))
        .put(
            &path,
            Access::Requires(ADMIN),
            |l: &Leads, body: Json<D>| l.write_settings(body),
        )
        .summary(&format!(
            "Replace the {} settings; 422 names a bad field",
            D::NAME
        ))
}

/// The settings routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    let router = document_routes::<General>(router);
    let router = document_routes::<Integrations>(router);
    let router = document_routes::<Notifications>(router);
    document_routes::<Scheduling>(router)
}
