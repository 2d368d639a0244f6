//! Agents (seed 004, "Agents IA"): automated workers without a model, each
//! a rule set over the leads, run on the host's scheduler.
//!
//! `{"name", "type", "config", "schedule"}`; `config` is checked on save
//! against the type:
//! - `scorer`: `{"base", "rules": [{"field", "op", "value", "points"}]}`,
//!   `op` one of `present`, `equals`, `contains` (case-insensitive); a
//!   lead's score is `base` plus the points of the rules it meets, within
//!   0..=100.
//! - `qualifier`: `{"qualify_at", "lose_below"}`: `contacted` leads
//!   scoring at least `qualify_at` become `qualified`; open leads scoring
//!   below `lose_below` (optional) become `lost`.
//! - `deduplicator`: `{"match_on": "company_domain" | "company"}`: leads
//!   with the same company name (ignoring case, spaces and punctuation)
//!   and, for `company_domain`, the same domain (email's or website's) are
//!   merged into the oldest: its empty fields filled, tags joined, notes
//!   appended, the best score kept, and the merged lead's whole row kept in
//!   the survivor's history (`merged`).
//! - `follow_up`: `{"days", "tag", "statuses"}`: leads in `statuses`
//!   (default the open ones) untouched for `days` get `tag` (default
//!   `follow_up`); flagging is not a touch.
//! - `enricher`: `{"url", "fields", "batch"}`: leads missing one of
//!   `fields` (of contact_name, phone, website, source) and never enriched
//!   are POSTed to `url` through `Host::http` (bearer
//!   `enrichment_token` when set); the JSON object answered fills the
//!   empty fields only. A failing URL fails the run.
//!
//! `schedule` is `manual` or an interval `<n>m`, `<n>h`, `<n>d`. The
//! plugin's `run_agents` job runs every active agent that is due; an
//! operator binds it to a task of the host's scheduler (`POST
//! /system/tasks` with `"job": "leads.run_agents"`), whose tick bounds how
//! often agents can run. A plugin cannot create host tasks itself.
//!
//! Status `active`, `inactive` or `error`: a failed run sets `error` (and
//! publishes `leads.agent.failed`); `PUT /{id}/status` switches active and
//! inactive; `POST /{id}/restart` clears the error and runs the agent now,
//! answering the run. `GET /{id}/logs` lists the runs with their counts
//! and errors.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{prelude::*, HttpRequest, Statement};

use crate::{
    json_text,
    leads::{Lead, LEAD_COLUMNS},
    settings::Integrations,
    Id, Leads, Problems, ADMIN, DELETE, READ,
};

/// Agent types.
pub const TYPES: [&str; 5] = [
    "scorer",
    "qualifier",
    "deduplicator",
    "follow_up",
    "enricher",
];

/// Lead fields a scorer rule may test.
const RULE_FIELDS: [&str; 10] = [
    "company",
    "contact_name",
    "email",
    "phone",
    "website",
    "source",
    "tags",
    "notes",
    "niche_id",
    "campaign_id",
];

/// Fields an enricher may fill.
const ENRICHABLE: [&str; 4] = ["contact_name", "phone", "website", "source"];

/// Leads read at a time by an agent.
const BATCH: i64 = 500;

/// An agent.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// One of [`TYPES`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Its rules (see the module docs).
    #[serde(deserialize_with = "json_text::read")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// `manual`, `<n>m`, `<n>h` or `<n>d`.
    pub schedule: String,
    /// `active`, `inactive` or `error`.
    pub status: String,
    /// Why the last run failed.
    pub last_error: Option<String>,
    /// Last run.
    pub last_run_at: Option<String>,
    /// When it is due next (none when manual or not active).
    pub next_run_at: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

const AGENT_COLUMNS: &str = "id, name, type, config, schedule, status, last_error, last_run_at, \
     next_run_at, created_at, updated_at";

/// A new agent, or the changes to one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// 1 to 200 characters, unique.
    name: Option<String>,
    /// One of the types (required on create; fixed afterwards).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Checked against the type.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    /// `manual`, `<n>m`, `<n>h` or `<n>d` (default `manual`).
    schedule: Option<String>,
}

/// One run of an agent.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentRun {
    /// Id.
    pub id: i64,
    /// The agent.
    pub agent_id: i64,
    /// Start.
    pub started_at: String,
    /// End.
    pub finished_at: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Leads looked at.
    pub examined: i64,
    /// Leads changed (scored, moved, merged away, flagged, enriched).
    pub changed: i64,
    /// What went wrong.
    #[serde(deserialize_with = "json_text::read")]
    pub errors: Vec<String>,
}

/// What a run counts.
#[derive(Default)]
struct Tally {
    examined: i64,
    changed: i64,
    errors: Vec<String>,
}

/// `schedule` as seconds between runs; `None` for manual; `Err` if bad.
pub fn interval_seconds(schedule: &str) -> Result<Option<i64>, String> {
    if schedule == "manual" {
        return Ok(None);
    }
    let (number, unit) = schedule.split_at(schedule.len().saturating_sub(1));
    let number: i64 = number
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| "manual, or <n>m, <n>h, <n>d with n from 1 to 10000".to_string())?;
    match unit {
        "m" => Ok(Some(number * 60)),
        "h" => Ok(Some(number * 3600)),
        "d" => Ok(Some(number * 86_400)),
        _ => Err("manual, or <n>m, <n>h, <n>d with n from 1 to 10000".into()),
    }
}

fn later(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn int(config: &Value, key: &str) -> Option<i64> {
    config.get(key).and_then(Value::as_i64)
}

/// Checks `config` for an agent of type `kind`, naming each bad field.
pub fn check_config(kind: &str, config: &Value, problems: &mut Problems) {
    let Some(fields) = config.as_object() else {
        problems.add("config", "must be an object");
        return;
    };
    let allowed: &[&str] = match kind {
        "scorer" => &["base", "rules"],
        "qualifier" => &["qualify_at", "lose_below"],
        "deduplicator" => &["match_on"],
        "follow_up" => &["days", "tag", "statuses"],
        "enricher" => &["url", "fields", "batch"],
        _ => return,
    };
    for key in fields.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.add(
                &format!("config.{key}"),
                format!("unknown for a {kind}; known: {}", allowed.join(", ")),
            );
        }
    }
    let in_range =
        |problems: &mut Problems, key: &str, low: i64, high: i64, required: bool| match config
            .get(key)
        {
            None if required => problems.add(&format!("config.{key}"), "required"),
            Some(value) if !value.as_i64().is_some_and(|v| (low..=high).contains(&v)) => problems
                .add(
                    &format!("config.{key}"),
                    format!("an integer from {low} to {high}"),
                ),
            _ => {}
        };
    match kind {
        "scorer" => {
            in_range(problems, "base", 0, 100, false);
            match config.get("rules").and_then(Value::as_array) {
                Some(rules) if !rules.is_empty() && rules.len() <= 50 => {
                    for (index, rule) in rules.iter().enumerate() {
                        let at = |name: &str| format!("config.rules[{index}].{name}");
                        let field = rule
                            .get("field")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !RULE_FIELDS.contains(&field) {
                            problems
                                .add(&at("field"), format!("one of {}", RULE_FIELDS.join(", ")));
                        }
                        match rule.get("op").and_then(Value::as_str) {
                            Some("present") => {}
                            Some("equals" | "contains") => {
                                if !rule
                                    .get("value")
                                    .is_some_and(|v| v.is_string() || v.is_number())
                                {
                                    problems.add(&at("value"), "a string or a number");
                                }
                            }
                            _ => problems.add(&at("op"), "one of present, equals, contains"),
                        }
                        if !rule
                            .get("points")
                            .and_then(Value::as_i64)
                            .is_some_and(|p| (-100..=100).contains(&p))
                        {
                            problems.add(&at("points"), "an integer from -100 to 100");
                        }
                    }
                }
                _ => problems.add("config.rules", "1 to 50 rules"),
            }
        }
        "qualifier" => {
            in_range(problems, "qualify_at", 0, 100, true);
            in_range(problems, "lose_below", 0, 100, false);
            if let (Some(qualify), Some(lose)) =
                (int(config, "qualify_at"), int(config, "lose_below"))
            {
                if lose >= qualify {
                    problems.add("config.lose_below", "must be below qualify_at");
                }
            }
        }
        "deduplicator" => {
            if let Some(mode) = config.get("match_on") {
                if !matches!(mode.as_str(), Some("company_domain" | "company")) {
                    problems.add("config.match_on", "company_domain or company");
                }
            }
        }
        "follow_up" => {
            in_range(problems, "days", 1, 365, true);
            if let Some(tag) = config.get("tag") {
                if !tag.as_str().is_some_and(|t| !t.is_empty() && t.len() <= 50) {
                    problems.add("config.tag", "1 to 50 characters");
                }
            }
            if let Some(statuses) = config.get("statuses") {
                let open = ["new", "contacted", "qualified"];
                if !statuses.as_array().is_some_and(|s| {
                    !s.is_empty()
                        && s.iter()
                            .all(|v| v.as_str().is_some_and(|v| open.contains(&v)))
                }) {
                    problems.add(
                        "config.statuses",
                        "a non-empty list of new, contacted, qualified",
                    );
                }
            }
        }
        "enricher" => {
            match config.get("url").and_then(Value::as_str) {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
                _ => problems.add("config.url", "required, an http(s) URL"),
            }
            if let Some(fields) = config.get("fields") {
                if !fields.as_array().is_some_and(|f| {
                    !f.is_empty()
                        && f.iter()
                            .all(|v| v.as_str().is_some_and(|v| ENRICHABLE.contains(&v)))
                }) {
                    problems.add(
                        "config.fields",
                        format!("a non-empty list of {}", ENRICHABLE.join(", ")),
                    );
                }
            }
            in_range(problems, "batch", 1, 500, false);
        }
        _ => {}
    }
}

/// A lead field as text, for the scorer's rules.
fn field_text(lead: &Lead, field: &str) -> Option<String> {
    match field {
        "company" => Some(lead.company.clone()),
        "contact_name" => lead.contact_name.clone(),
        "email" => lead.email.clone(),
        "phone" => lead.phone.clone(),
        "website" => lead.website.clone(),
        "source" => lead.source.clone(),
        "notes" => lead.notes.clone(),
        "niche_id" => lead.niche_id.map(|v| v.to_string()),
        "campaign_id" => lead.campaign_id.map(|v| v.to_string()),
        "tags" => (!lead.tags.is_empty()).then(|| lead.tags.join("\n")),
        _ => None,
    }
}

/// The score the scorer's `config` gives `lead`.
pub fn score(config: &Value, lead: &Lead) -> i64 {
    let mut total = int(config, "base").unwrap_or(0);
    for rule in config
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = rule
            .get("field")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = field_text(lead, field);
        let wanted = match rule.get("value") {
            Some(Value::String(text)) => text.to_lowercase(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let meets = match (rule.get("op").and_then(Value::as_str), text) {
            (Some("present"), Some(_)) => true,
            (Some("equals"), Some(_)) if field == "tags" => {
                lead.tags.iter().any(|tag| tag.to_lowercase() == wanted)
            }
            (Some("equals"), Some(text)) => text.to_lowercase() == wanted,
            (Some("contains"), Some(text)) => text.to_lowercase().contains(&wanted),
            _ => false,
        };
        if meets {
            total += rule.get("points").and_then(Value::as_i64).unwrap_or(0);
        }
    }
    total.clamp(0, 100)
}

/// A company name reduced to lower-case letters and digits.
fn company_key(company: &str) -> String {
    company
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A lead's domain: its email's, else its website's host.
fn domain(lead: &Lead) -> Option<String> {
    if let Some((_, domain)) = lead.email.as_deref().and_then(|e| e.rsplit_once('@')) {
        return Some(domain.to_lowercase());
    }
    let website = lead.website.as_deref()?;
    let host = website
        .split("://")
        .last()?
        .split(['/', ':', '?'])
        .next()?
        .trim_start_matches("www.");
    (!host.is_empty()).then(|| host.to_lowercase())
}

impl Leads {
    fn agent(&self, id: i64) -> Result<Agent, Response> {
        self.host
            .query_one_as(
                &format!("SELECT {AGENT_COLUMNS} FROM leads_agents WHERE id = $1"),
                params![id],
            )?
            .ok_or_else(|| Response::not_found(&format!("no agent {id}")))
    }

    /// Every lead, `BATCH` at a time in id order, each batch to `visit`.
    fn each_batch(
        &self,
        condition: &str,
        values: Vec<Value>,
        mut visit: impl FnMut(Vec<Lead>) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let mut after = 0_i64;
        loop {
            let mut params = values.clone();
            params.push(json!(after));
            params.push(json!(BATCH));
            let sql = format!(
                "SELECT {LEAD_COLUMNS} FROM leads l WHERE {condition} AND id > ${} ORDER BY id LIMIT ${}",
                params.len() - 1,
                params.len()
            );
            let batch: Vec<Lead> = self.host.query_as(&sql, params)?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = last.id;
            let done = (batch.len() as i64) < BATCH;
            visit(batch)?;
            if done {
                return Ok(());
            }
        }
    }

    fn run_scorer(&self, config: &Value, tally: &mut Tally) -> Result<(), HostError> {
        self.each_batch("1 = 1", vec![], |batch| {
            let mut updates = Vec::new();
            for lead in &batch {
                tally.examined += 1;
                let new = score(config, lead);
                if new != lead.score {
                    updates.push(Statement::new(
                        "UPDATE leads SET score = $1, updated_at = $2 WHERE id = $3",
                        params![new, now(), lead.id],
                    ));
                }
            }
            tally.changed += updates.len() as i64;
            if !updates.is_empty() {
                self.host.transaction(updates)?;
            }
            Ok(())
        })
    }

    fn run_qualifier(&self, config: &Value, tally: &mut Tally) -> Result<(), HostError> {
        let qualify_at = int(config, "qualify_at").unwrap_or(101);
        let mut moves: Vec<(i64, String, &str)> = Vec::new();
        self.each_batch(
            "status IN ('new', 'contacted', 'qualified')",
            vec![],
            |batch| {
                for lead in batch {
                    tally.examined += 1;
                    if int(config, "lose_below").is_some_and(|low| lead.score < low) {
                        moves.push((lead.id, lead.status, "lost"));
                    } else if lead.status == "contacted" && lead.score >= qualify_at {
                        moves.push((lead.id, lead.status, "qualified"));
                    }
                }
                Ok(())
            },
        )?;
        for (id, from, to) in moves {
            match self.move_status(id, &from, to, "agent") {
                Ok(true) => tally.changed += 1,
                Ok(false) => {}
                Err(_) => tally
                    .errors
                    .push(format!("lead {id}: cannot move from {from} to {to}")),
            }
        }
        Ok(())
    }

    fn run_deduplicator(&self, config: &Value, tally: &mut Tally) -> Result<(), HostError> {
        let by_domain = config.get("match_on").and_then(Value::as_str) != Some("company");
        let mut groups: HashMap<(String, Option<String>), Vec<Lead>> = HashMap::new();
        self.each_batch("1 = 1", vec![], |batch| {
            for lead in batch {
                tally.examined += 1;
                let key = (
                    company_key(&lead.company),
                    if by_domain { domain(&lead) } else { None },
                );
                if by_domain && key.1.is_none() {
                    continue;
                }
                groups.entry(key).or_default().push(lead);
            }
            Ok(())
        })?;
        for (_, mut group) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
            group.sort_by_key(|lead| lead.id);
            let mut keeper = group.remove(0);
            let mut statements = Vec::new();
            for duplicate in &group {
                statements.push(Statement::new(
                    "DELETE FROM leads WHERE id = $1",
                    params![duplicate.id],
                ));
                statements.push(Statement::new(
                    "INSERT INTO leads_history (lead_id, action, data, created_at) VALUES ($1, 'merged', $2, $3)",
                    params![keeper.id, json!({"merged": duplicate}).to_string(), now()],
                ));
                for (mine, theirs) in [
                    (&mut keeper.contact_name, &duplicate.contact_name),
                    (&mut keeper.email, &duplicate.email),
                    (&mut keeper.phone, &duplicate.phone),
                    (&mut keeper.website, &duplicate.website),
                    (&mut keeper.source, &duplicate.source),
                ] {
                    if mine.is_none() {
                        mine.clone_from(theirs);
                    }
                }
                keeper.niche_id = keeper.niche_id.or(duplicate.niche_id);
                keeper.campaign_id = keeper.campaign_id.or(duplicate.campaign_id);
                keeper.score = keeper.score.max(duplicate.score);
                for tag in &duplicate.tags {
                    if !keeper.tags.contains(tag) && keeper.tags.len() < 20 {
                        keeper.tags.push(tag.clone());
                    }
                }
                if let Some(notes) = &duplicate.notes {
                    keeper.notes = Some(match keeper.notes.take() {
                        Some(mine) => format!("{mine}\n{notes}"),
                        None => notes.clone(),
                    });
                }
            }
            // After the deletes, so the survivor may take a merged lead's
            // email or phone without meeting its unique key.
            statements.push(Statement::new(
                "UPDATE leads SET contact_name = $1, email = $2, phone = $3, website = $4, source = $5, \
                 niche_id = CAST($6 AS BIGINT), campaign_id = CAST($7 AS BIGINT), score = $8, tags = $9, \
                 notes = $10, email_key = $11, phone_key = $12, updated_at = $13 WHERE id = $14",
                params![
                    keeper.contact_name,
                    keeper.email,
                    keeper.phone,
                    keeper.website,
                    keeper.source,
                    crate::nullable(keeper.niche_id),
                    crate::nullable(keeper.campaign_id),
                    keeper.score,
                    json_text::text(&keeper.tags),
                    keeper.notes,
                    keeper.email.as_deref().and_then(crate::leads::email_key),
                    keeper.phone.as_deref().and_then(crate::leads::phone_key),
                    now(),
                    keeper.id
                ],
            ));
            match self.host.transaction(statements) {
                Ok(_) => tally.changed += group.len() as i64,
                Err(error) => tally.errors.push(format!("lead {}: {error}", keeper.id)),
            }
        }
        Ok(())
    }

    fn run_follow_up(&self, config: &Value, tally: &mut Tally) -> Result<(), HostError> {
        let days = int(config, "days").unwrap_or(14);
        let tag = config
            .get("tag")
            .and_then(Value::as_str)
            .unwrap_or("follow_up")
            .to_string();
        let statuses: Vec<String> = config
            .get("statuses")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_else(|| vec!["new".into(), "contacted".into(), "qualified".into()]);
        let cutoff = crate::niches::days_ago(days);
        let list = json_text::text(&statuses);
        let statuses_sql = match self.host.dialect()? {
            xcore_plugin_sdk::Dialect::Sqlite => "SELECT value FROM json_each($2)",
            xcore_plugin_sdk::Dialect::Postgres => "SELECT json_array_elements_text($2::json)",
        };
        self.each_batch(
            &format!("updated_at < $1 AND status IN ({statuses_sql})"),
            vec![json!(cutoff), json!(list)],
            |batch| {
                let mut statements = Vec::new();
                for mut lead in batch {
                    tally.examined += 1;
                    if lead.tags.contains(&tag) || lead.tags.len() >= 20 {
                        continue;
                    }
                    lead.tags.push(tag.clone());
                    statements.push(Statement::new(
                        "UPDATE leads SET tags = $1 WHERE id = $2",
                        params![json_text::text(&lead.tags), lead.id],
                    ));
                    statements.push(Statement::new(
                        "INSERT INTO leads_history (lead_id, action, data, created_at) VALUES ($1, 'flagged', $2, $3)",
                        params![lead.id, json!({"tag": tag, "untouched_days": days}).to_string(), now()],
                    ));
                }
                tally.changed += statements.len() as i64 / 2;
                if !statements.is_empty() {
                    self.host.transaction(statements)?;
                }
                Ok(())
            },
        )
    }

    fn run_enricher(&self, config: &Value, tally: &mut Tally) -> Result<(), String> {
        let url = config
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let fields: Vec<String> = config
            .get("fields")
            .and_then(|f| serde_json::from_value(f.clone()).ok())
            .unwrap_or_else(|| ENRICHABLE.iter().map(|f| f.to_string()).collect());
        let limit = int(config, "batch").unwrap_or(50);
        let missing = fields
            .iter()
            .map(|f| format!("{f} IS NULL"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let leads: Vec<Lead> = self
            .host
            .query_as(
                &format!(
                    "SELECT {LEAD_COLUMNS} FROM leads l WHERE ({missing}) AND NOT EXISTS \
                     (SELECT 1 FROM leads_history h WHERE h.lead_id = l.id AND h.action = 'enriched') \
                     ORDER BY id LIMIT $1"
                ),
                params![limit],
            )
            .map_err(|e| e.to_string())?;
        let token = self.settings::<Integrations>().enrichment_token;
        for lead in leads {
            tally.examined += 1;
            let mut request = HttpRequest::post_json(url, &json!({"lead": lead}));
            if let Some(token) = &token {
                request
                    .headers
                    .push(("authorization".into(), format!("Bearer {token}")));
            }
            let response = self
                .host
                .http(&request)
                .map_err(|e| format!("{url}: {e}"))?;
            if !(200..300).contains(&response.status) {
                return Err(format!("{url} answered {}", response.status));
            }
            let found: Value = response.json().map_err(|e| format!("{url}: {e}"))?;
            let mut filled = serde_json::Map::new();
            for field in &fields {
                let empty = field_text(&lead, field).is_none();
                if let Some(value) = found
                    .get(field)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty() && v.len() <= 500)
                {
                    if empty {
                        filled.insert(field.clone(), json!(value));
                    }
                }
            }
            let mut statements = Vec::new();
            for (field, value) in &filled {
                // `field` is one of ENRICHABLE (checked on save), never client text.
                let key = if field == "phone" {
                    ", phone_key = $3"
                } else {
                    ""
                };
                statements.push(Statement::new(
                    &format!("UPDATE leads SET {field} = $1, updated_at = $2{key} WHERE id = $4"),
                    params![
                        value,
                        now(),
                        value.as_str().and_then(crate::leads::phone_key),
                        lead.id
                    ],
                ));
            }
            statements.push(Statement::new(
                "INSERT INTO leads_history (lead_id, action, data, created_at) VALUES ($1, 'enriched', $2, $3)",
                params![lead.id, Value::Object(filled.clone()).to_string(), now()],
            ));
            match self.host.transaction(statements) {
                Ok(_) if !filled.is_empty() => tally.changed += 1,
                Ok(_) => {}
                Err(error) => tally.errors.push(format!("lead {}: {error}", lead.id)),
            }
        }
        Ok(())
    }

    /// Runs one agent now and records the run; a failure puts the agent
    /// in `error`.
    pub fn run_agent(&self, agent: &Agent) -> Result<AgentRun, HostError> {
        let started_at = now();
        let mut tally = Tally::default();
        let result: Result<(), String> = match agent.kind.as_str() {
            "scorer" => self
                .run_scorer(&agent.config, &mut tally)
                .map_err(|e| e.to_string()),
            "qualifier" => self
                .run_qualifier(&agent.config, &mut tally)
                .map_err(|e| e.to_string()),
            "deduplicator" => self
                .run_deduplicator(&agent.config, &mut tally)
                .map_err(|e| e.to_string()),
            "follow_up" => self
                .run_follow_up(&agent.config, &mut tally)
                .map_err(|e| e.to_string()),
            "enricher" => self.run_enricher(&agent.config, &mut tally),
            other => Err(format!("unknown agent type {other}")),
        };
        if let Err(error) = &result {
            tally.errors.push(error.clone());
        }
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        let finished_at = now();
        let run: AgentRun = self.host.query_row_as(
            "INSERT INTO leads_agent_runs (agent_id, started_at, finished_at, outcome, examined, changed, errors) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, agent_id, started_at, finished_at, outcome, \
             examined, changed, errors",
            params![agent.id, started_at, finished_at, outcome, tally.examined, tally.changed, json_text::text(&tally.errors)],
        )?;
        let next = interval_seconds(&agent.schedule).ok().flatten().map(later);
        match &result {
            Ok(()) => {
                self.host.execute(
                    "UPDATE leads_agents SET last_run_at = $1, next_run_at = $2 WHERE id = $3",
                    params![finished_at, next, agent.id],
                )?;
                crate::activity::record(
                    &self.host,
                    "info",
                    "agent",
                    &format!(
                        "agent {} ({}) examined {} leads, changed {}",
                        agent.name, agent.kind, tally.examined, tally.changed
                    ),
                    Some(agent.id),
                    json!({"run_id": run.id, "errors": tally.errors}),
                );
            }
            Err(error) => {
                self.host.execute(
                    "UPDATE leads_agents SET status = 'error', last_error = $1, last_run_at = $2, next_run_at = NULL \
                     WHERE id = $3",
                    params![error, finished_at, agent.id],
                )?;
                crate::activity::record(
                    &self.host,
                    "error",
                    "agent",
                    &format!("agent {} ({}) failed: {error}", agent.name, agent.kind),
                    Some(agent.id),
                    json!({"run_id": run.id}),
                );
                self.announce("agent.failed", &json!({"id": agent.id, "name": agent.name, "type": agent.kind, "error": error}));
            }
        }
        Ok(run)
    }

    /// The `run_agents` job: every active agent that is due.
    pub fn run_agents(&self) -> Result<(), HostError> {
        let due: Vec<Agent> = self.host.query_as(
            &format!(
                "SELECT {AGENT_COLUMNS} FROM leads_agents WHERE status = 'active' \
                 AND next_run_at IS NOT NULL AND next_run_at <= $1 ORDER BY id"
            ),
            params![now()],
        )?;
        for agent in &due {
            self.run_agent(agent)?;
        }
        Ok(())
    }

    fn checked_agent(
        &self,
        input: AgentInput,
        current: Option<&Agent>,
    ) -> Result<(String, String, Value, String), Response> {
        let mut problems = Problems::default();
        let name = input
            .name
            .map(|n| n.trim().to_string())
            .or(current.map(|c| c.name.clone()))
            .unwrap_or_default();
        if name.is_empty() || name.chars().count() > 200 {
            problems.add("name", "required, 1 to 200 characters");
        }
        let kind = match (input.kind, current) {
            (Some(kind), Some(current)) if kind != current.kind => {
                problems.add("type", "cannot change; create another agent");
                kind
            }
            (Some(kind), _) => kind,
            (None, Some(current)) => current.kind.clone(),
            (None, None) => String::new(),
        };
        if !TYPES.contains(&kind.as_str()) {
            problems.add("type", format!("one of {}", TYPES.join(", ")));
        }
        let config = input
            .config
            .or(current.map(|c| c.config.clone()))
            .unwrap_or_else(|| json!({}));
        check_config(&kind, &config, &mut problems);
        let schedule = input
            .schedule
            .or(current.map(|c| c.schedule.clone()))
            .unwrap_or_else(|| "manual".into());
        if let Err(problem) = interval_seconds(&schedule) {
            problems.add("schedule", problem);
        }
        problems.finish()?;
        Ok((name, kind, config, schedule))
    }

    fn create_agent(&self, Json(input): Json<AgentInput>) -> Result<Created<Agent>, Response> {
        let (name, kind, config, schedule) = self.checked_agent(input, None)?;
        // A scheduled agent is due at once: the next tick of the job runs it.
        let next = interval_seconds(&schedule).ok().flatten().map(|_| now());
        let agent = self
            .host
            .query_row_as(
                &format!(
                    "INSERT INTO leads_agents (name, type, config, schedule, status, next_run_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'active', $5, $6, $6) RETURNING {AGENT_COLUMNS}"
                ),
                params![name, kind, config.to_string(), schedule, next, now()],
            )
            .map_err(crate::name_taken("an agent"))?;
        Ok(Created(agent))
    }

    fn update_agent(
        &self,
        Id(id): Id,
        Json(input): Json<AgentInput>,
    ) -> Result<Json<Agent>, Response> {
        let current = self.agent(id)?;
        let (name, _, config, schedule) = self.checked_agent(input, Some(&current))?;
        let next = interval_seconds(&schedule).ok().flatten().map(later);
        self.host
            .execute(
                "UPDATE leads_agents SET name = $1, config = $2, schedule = $3, \
                 next_run_at = CASE WHEN status = 'active' THEN $4 ELSE NULL END, updated_at = $5 WHERE id = $6",
                params![name, config.to_string(), schedule, next, now(), id],
            )
            .map_err(crate::name_taken("an agent"))?;
        Ok(Json(self.agent(id)?))
    }

    fn agent_status(
        &self,
        Id(id): Id,
        Json(change): Json<crate::campaigns::StatusChange>,
    ) -> Result<Json<Agent>, Response> {
        let agent = self.agent(id)?;
        if !["active", "inactive"].contains(&change.status.as_str()) {
            return Err(Response::invalid(
                "status",
                "active or inactive (an error is cleared by POST /restart)",
            ));
        }
        if agent.status == "error" && change.status == "active" {
            return Err(Response::conflict(
                "the agent is in error: POST /agents/{id}/restart clears it and runs it",
            ));
        }
        let next = (change.status == "active")
            .then(|| {
                interval_seconds(&agent.schedule)
                    .ok()
                    .flatten()
                    .map(|_| now())
            })
            .flatten();
        self.host.execute(
            "UPDATE leads_agents SET status = $1, next_run_at = $2, updated_at = $3 WHERE id = $4",
            params![change.status, next, now(), id],
        )?;
        Ok(Json(self.agent(id)?))
    }

    fn restart_agent(&self, Id(id): Id) -> Result<Json<AgentRun>, Response> {
        self.agent(id)?;
        self.host.execute(
            "UPDATE leads_agents SET status = 'active', last_error = NULL, updated_at = $1 WHERE id = $2",
            params![now(), id],
        )?;
        let agent = self.agent(id)?;
        Ok(Json(self.run_agent(&agent)?))
    }
}

/// The agent routes and the `run_agents` job.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get("/agents", Access::Requires(READ), |l: &Leads, w: Window| {
            l.host.query_page::<Agent>(
                &format!("SELECT {AGENT_COLUMNS} FROM leads_agents ORDER BY id"),
                params![],
                w,
            )
        })
        .summary("List agents")
        .post("/agents", Access::Requires(ADMIN), Leads::create_agent)
        .summary("Create an agent; its config is checked against its type")
        .get(
            "/agents/{id}",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id| l.agent(id).map(Json),
        )
        .summary("Get an agent")
        .put("/agents/{id}", Access::Requires(ADMIN), Leads::update_agent)
        .summary("Update an agent (only the fields given)")
        .delete(
            "/agents/{id}",
            Access::Requires(DELETE),
            |l: &Leads, Id(id): Id| {
                let done = l
                    .host
                    .execute("DELETE FROM leads_agents WHERE id = $1", params![id])?;
                if done.rows_affected == 0 {
                    return Err(Response::not_found(&format!("no agent {id}")));
                }
                Ok(NoContent)
            },
        )
        .summary("Delete an agent and its runs")
        .put(
            "/agents/{id}/status",
            Access::Requires(ADMIN),
            Leads::agent_status,
        )
        .summary("Activate or deactivate an agent")
        .post(
            "/agents/{id}/restart",
            Access::Requires(ADMIN),
            Leads::restart_agent,
        )
        .summary("Clear an agent's error and run it now; answers the run")
        .blocking()
        .get(
            "/agents/{id}/logs",
            Access::Requires(READ),
            |l: &Leads, Id(id): Id, w: Window| {
                l.agent(id)?;
                Ok::<_, Response>(l.host.query_page::<AgentRun>(
                "SELECT id, agent_id, started_at, finished_at, outcome, examined, changed, errors \
                 FROM leads_agent_runs WHERE agent_id = $1 ORDER BY id DESC",
                params![id],
                w,
            )?)
            },
        )
        .summary("An agent's runs, newest first, with counts and errors")
        .job(
            "run_agents",
            "Runs the active agents that are due",
            Leads::run_agents,
        )
}
