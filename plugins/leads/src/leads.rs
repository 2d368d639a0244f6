//! Leads (seed 004, "Leads") at the prefix's root.
//!
//! - `GET /`: paged (`skip`/`limit` or `page`/`page_size`), filtered (see
//!   [`LeadFilter`]: `search`, `status`, `niche_id`, `campaign_id`,
//!   `source`, `owner_id`, `score_min`, `score_max`, `tag`,
//!   `created_from`, `created_to`) and sorted (`sort_by` created_at,
//!   updated_at, score, company, status; `sort_order` asc/desc).
//! - `GET /status/{status}`: the same list for one status.
//! - `GET /{id}` (with its history), `POST /` (201), `PUT /{id}` (partial;
//!   an empty string clears a text field), `DELETE /{id}` (204).
//!
//! Status moves: `new` → `contacted` → `qualified` → `converted`, and any
//! non-final status → `lost`; `converted` and `lost` are final. Any other
//! move is a 409 naming the allowed ones. A lead whose email (ignoring
//! case) or phone (digits only) another lead has is a 409 naming it.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{prelude::*, Statement};

use crate::{
    filters::LeadFilter, json_text, nullable, Id, Leads, Problems, DELETE, READ, STATUSES, WRITE,
};

/// The columns of [`Lead`] (unqualified: every query reads one `leads l`).
pub const LEAD_COLUMNS: &str = "id, company, contact_name, email, phone, website, source, \
     niche_id, campaign_id, status, score, tags, notes, owner_id, converted_at, created_at, updated_at";

/// The statuses a lead in `from` may move to.
pub fn allowed_moves(from: &str) -> &'static [&'static str] {
    match from {
        "new" => &["contacted", "lost"],
        "contacted" => &["qualified", "lost"],
        "qualified" => &["converted", "lost"],
        _ => &[],
    }
}

/// The 409 for a move the funnel does not allow, naming the allowed ones.
pub fn forbidden_move(from: &str, to: &str) -> Response {
    let allowed = allowed_moves(from);
    let allowed = if allowed.is_empty() {
        format!("none, {from} is final")
    } else {
        allowed.join(", ")
    };
    Response::error_with_details(
        409,
        "CONFLICT",
        &format!("a lead cannot move from {from} to {to}; allowed from {from}: {allowed}"),
        &[("status", &format!("allowed: {allowed}"))],
    )
}

/// A lead.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Lead {
    /// Id.
    pub id: i64,
    /// Company name.
    pub company: String,
    /// The person to reach.
    pub contact_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone, as entered.
    pub phone: Option<String>,
    /// Website.
    pub website: Option<String>,
    /// Where the lead came from (`webhook`, `import`, `linkedin`, ...).
    pub source: Option<String>,
    /// Its niche.
    pub niche_id: Option<i64>,
    /// The campaign it came from or belongs to.
    pub campaign_id: Option<i64>,
    /// `new`, `contacted`, `qualified`, `converted` or `lost`.
    pub status: String,
    /// 0 to 100.
    pub score: i64,
    /// Labels.
    #[serde(deserialize_with = "json_text::read")]
    pub tags: Vec<String>,
    /// Free text.
    pub notes: Option<String>,
    /// The host user who owns it.
    pub owner_id: Option<i64>,
    /// When it was converted.
    pub converted_at: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// A new lead, or (every field optional) the changes to one.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    /// Company name (required on create, 1 to 200 characters).
    pub company: Option<String>,
    /// The person to reach.
    pub contact_name: Option<String>,
    /// Email; unique among leads, ignoring case.
    pub email: Option<String>,
    /// Phone; unique among leads, comparing digits only.
    pub phone: Option<String>,
    /// Website.
    pub website: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// An existing niche.
    pub niche_id: Option<i64>,
    /// An existing campaign.
    pub campaign_id: Option<i64>,
    /// Status (default `new`); a change must be an allowed move.
    pub status: Option<String>,
    /// 0 to 100.
    pub score: Option<i64>,
    /// Labels (at most 20, each 1 to 50 characters).
    pub tags: Option<Vec<String>>,
    /// Free text.
    pub notes: Option<String>,
    /// The host user who owns it.
    pub owner_id: Option<i64>,
}

/// A history entry.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// Id.
    pub id: i64,
    /// `created`, `status`, `merged`, `enriched`, `flagged`, ...
    pub action: String,
    /// Status before (status moves).
    pub from_status: Option<String>,
    /// Status after.
    pub to_status: Option<String>,
    /// What else happened (a merged lead's fields, enriched values).
    #[serde(deserialize_with = "json_text::read")]
    #[schema(value_type = Object)]
    pub data: Value,
    /// When.
    pub created_at: String,
}

/// `GET /{id}`: the lead and its history.
#[derive(Serialize, ToSchema)]
pub struct LeadDetails {
    #[serde(flatten)]
    lead: Lead,
    /// Oldest first.
    history: Vec<HistoryEntry>,
}

/// `sort_by` columns.
pub struct LeadSort;

impl SortColumns for LeadSort {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("created_at", "l.created_at"),
        ("updated_at", "l.updated_at"),
        ("score", "l.score"),
        ("company", "l.company"),
        ("status", "l.status"),
    ];
    const DEFAULT: (&'static str, &'static str) = ("created_at", "DESC");
    const TIEBREAK: &'static str = "l.id";
}

/// An email's duplicate key: trimmed, lower-cased.
pub fn email_key(email: &str) -> Option<String> {
    let key = email.trim().to_lowercase();
    (!key.is_empty()).then_some(key)
}

/// A phone's duplicate key: its digits.
pub fn phone_key(phone: &str) -> Option<String> {
    let key: String = phone.chars().filter(char::is_ascii_digit).collect();
    (!key.is_empty()).then_some(key)
}

/// Text fields: trimmed, an empty one is `None` (cleared).
fn clean(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// The validated values of a lead to write.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // The fields of [`Lead`], documented there.
pub struct LeadValues {
    pub company: String,
    pub contact_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub source: Option<String>,
    pub niche_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub status: String,
    pub score: i64,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub owner_id: Option<i64>,
}

impl LeadValues {
    /// A lead's current values, to apply changes onto.
    fn of(lead: &Lead) -> Self {
        Self {
            company: lead.company.clone(),
            contact_name: lead.contact_name.clone(),
            email: lead.email.clone(),
            phone: lead.phone.clone(),
            website: lead.website.clone(),
            source: lead.source.clone(),
            niche_id: lead.niche_id,
            campaign_id: lead.campaign_id,
            status: lead.status.clone(),
            score: lead.score,
            tags: lead.tags.clone(),
            notes: lead.notes.clone(),
            owner_id: lead.owner_id,
        }
    }

    /// Applies `input` onto `self` and checks every field, gathering the
    /// problems under `prefix` (a line of an import, say).
    pub fn apply(&mut self, input: &LeadInput, prefix: &str, problems: &mut Problems) {
        let field = |name: &str| format!("{prefix}{name}");
        if let Some(company) = &input.company {
            self.company = company.trim().to_string();
        }
        if self.company.is_empty() || self.company.chars().count() > 200 {
            problems.add(&field("company"), "required, 1 to 200 characters");
        }
        for (value, target) in [
            (&input.contact_name, &mut self.contact_name),
            (&input.email, &mut self.email),
            (&input.phone, &mut self.phone),
            (&input.website, &mut self.website),
            (&input.source, &mut self.source),
            (&input.notes, &mut self.notes),
        ] {
            if value.is_some() {
                *target = clean(value);
            }
        }
        for (name, value, limit) in [
            ("contact_name", &self.contact_name, 200),
            ("email", &self.email, 254),
            ("phone", &self.phone, 40),
            ("website", &self.website, 500),
            ("source", &self.source, 100),
            ("notes", &self.notes, 10_000),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > limit) {
                problems.add(&field(name), format!("at most {limit} characters"));
            }
        }
        if let Some(email) = &self.email {
            let valid = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)
            });
            if !valid {
                problems.add(&field("email"), "not an email address");
            }
        }
        if let Some(phone) = &self.phone {
            let digits = phone_key(phone).map_or(0, |d| d.len());
            let allowed = phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-.()".contains(c));
            if !allowed || !(6..=20).contains(&digits) {
                problems.add(
                    &field("phone"),
                    "6 to 20 digits (spaces, + - . ( ) allowed)",
                );
            }
        }
        if input.niche_id.is_some() {
            self.niche_id = input.niche_id;
        }
        if input.campaign_id.is_some() {
            self.campaign_id = input.campaign_id;
        }
        if input.owner_id.is_some() {
            self.owner_id = input.owner_id;
        }
        if let Some(score) = input.score {
            self.score = score;
            if !(0..=100).contains(&score) {
                problems.add(&field("score"), "must be between 0 and 100");
            }
        }
        if let Some(tags) = &input.tags {
            let mut cleaned: Vec<String> = Vec::new();
            for tag in tags {
                let tag = tag.trim().to_string();
                if tag.is_empty() || tag.chars().count() > 50 {
                    problems.add(&field("tags"), "each tag 1 to 50 characters");
                } else if !cleaned.contains(&tag) {
                    cleaned.push(tag);
                }
            }
            if cleaned.len() > 20 {
                problems.add(&field("tags"), "at most 20 tags");
            }
            self.tags = cleaned;
        }
        if let Some(status) = &input.status {
            if !STATUSES.contains(&status.as_str()) {
                problems.add(
                    &field("status"),
                    format!("must be one of {}", STATUSES.join(", ")),
                );
            }
        }
    }

    /// A blank lead (`new`, score 0) to apply a creation onto.
    pub fn blank() -> Self {
        Self {
            company: String::new(),
            contact_name: None,
            email: None,
            phone: None,
            website: None,
            source: None,
            niche_id: None,
            campaign_id: None,
            status: "new".into(),
            score: 0,
            tags: Vec::new(),
            notes: None,
            owner_id: None,
        }
    }

    /// The email's duplicate key.
    pub fn email_key(&self) -> Option<String> {
        self.email.as_deref().and_then(email_key)
    }

    /// The phone's duplicate key.
    pub fn phone_key(&self) -> Option<String> {
        self.phone.as_deref().and_then(phone_key)
    }

    /// The `INSERT` of this lead (created now), returning it.
    pub fn insert(&self, status: &str) -> Statement {
        let now = now();
        let converted_at = (status == "converted").then(|| now.clone());
        Statement::new(
            &format!(
                "INSERT INTO leads (company, contact_name, email, phone, website, source, \
                 niche_id, campaign_id, status, score, tags, notes, owner_id, email_key, phone_key, \
                 converted_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
                 CAST($7 AS BIGINT), CAST($8 AS BIGINT), $9, $10, $11, $12, CAST($13 AS BIGINT), $14, $15, \
                 $16, $17, $17) RETURNING {LEAD_COLUMNS}"
            ),
            params![
                self.company,
                self.contact_name,
                self.email,
                self.phone,
                self.website,
                self.source,
                nullable(self.niche_id),
                nullable(self.campaign_id),
                status,
                self.score,
                json_text::text(&self.tags),
                self.notes,
                nullable(self.owner_id),
                self.email_key(),
                self.phone_key(),
                converted_at,
                now
            ],
        )
    }
}

/// What another lead already holds.
#[derive(Deserialize)]
struct Holder {
    id: i64,
    company: String,
    email_key: Option<String>,
}

impl Leads {
    /// The lead `id`.
    pub fn lead(&self, id: i64) -> Result<Option<Lead>, HostError> {
        self.host.query_one_as(
            &format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id = $1"),
            params![id],
        )
    }

    /// The lead `id` or a 404.
    pub fn existing_lead(&self, id: i64) -> Result<Lead, Response> {
        self.lead(id)?
            .ok_or_else(|| Response::not_found(&format!("no lead {id}")))
    }

    /// The 409 naming the lead (other than `except`) that holds this
    /// email or phone, if any.
    pub fn duplicate_of(
        &self,
        values: &LeadValues,
        except: Option<i64>,
    ) -> Result<Option<Response>, HostError> {
        let (email, phone) = (values.email_key(), values.phone_key());
        if email.is_none() && phone.is_none() {
            return Ok(None);
        }
        let holder: Option<Holder> = self.host.query_one_as(
            "SELECT id, company, email_key FROM leads \
             WHERE (email_key = $1 OR phone_key = $2) AND id <> $3 ORDER BY id LIMIT 1",
            params![email, phone, except.unwrap_or(0)],
        )?;
        Ok(holder.map(|holder| {
            let field = if holder.email_key.is_some() && holder.email_key == email {
                "email"
            } else {
                "phone"
            };
            Response::error_with_details(
                409,
                "CONFLICT",
                &format!(
                    "a lead with this {field} already exists: lead {} ({})",
                    holder.id, holder.company
                ),
                &[(field, &format!("already used by lead {}", holder.id))],
            )
        }))
    }

    /// A 422 for a niche or campaign that does not exist.
    pub fn check_references(
        &self,
        niche_id: Option<i64>,
        campaign_id: Option<i64>,
        problems: &mut Problems,
    ) -> Result<(), HostError> {
        for (field, table, id) in [
            ("niche_id", "leads_niches", niche_id),
            ("campaign_id", "leads_campaigns", campaign_id),
        ] {
            if let Some(id) = id {
                let found: i64 = self.host.query_scalar(
                    &format!("SELECT COUNT(*) FROM {table} WHERE id = $1"),
                    params![id],
                )?;
                if found == 0 {
                    problems.add(field, format!("no {} {id}", &field[..field.len() - 3]));
                }
            }
        }
        Ok(())
    }

    /// A write that lost a race on a duplicate key: the 409 naming the
    /// lead that won, like the check before it.
    fn raced(&self, error: HostError, values: &LeadValues, except: Option<i64>) -> Response {
        if let HostError::UniqueViolation { .. } = error {
            if let Ok(Some(conflict)) = self.duplicate_of(values, except) {
                return conflict;
            }
        }
        error.into()
    }

    /// Creates a lead from checked values (webhooks, imports and `POST /`
    /// share it): duplicate check, insert with its history, event.
    pub fn create_lead(&self, values: &LeadValues, via: &str) -> Result<Lead, Response> {
        if let Some(conflict) = self.duplicate_of(values, None)? {
            return Err(conflict);
        }
        let insert = values.insert(&values.status);
        let lead: Lead = self
            .host
            .query_row_as(&insert.sql, insert.params)
            .map_err(|error| self.raced(error, values, None))?;
        // Not in the insert's transaction: a statement cannot use the id
        // the one before it generated on both databases; a lost history
        // line is logged, the lead stands.
        if let Err(error) = self.host.execute(
            "INSERT INTO leads_history (lead_id, action, to_status, data, created_at) \
             VALUES ($1, 'created', $2, $3, $4)",
            params![lead.id, lead.status, json!({"via": via}).to_string(), now()],
        ) {
            self.host.warn(
                "cannot record a lead's creation",
                json!({"error": error.to_string()}),
            );
        }
        self.announce("created", &lead);
        crate::activity::record(
            &self.host,
            "info",
            "lead",
            &format!("lead {} created via {via}", lead.id),
            Some(lead.id),
            json!({"company": lead.company}),
        );
        if lead.status == "converted" {
            self.announce("converted", &lead);
        }
        Ok(lead)
    }

    /// Moves a lead from `from` to `to` if the funnel allows it and nobody
    /// moved it meanwhile: `Ok(true)` when moved, `Ok(false)` when its
    /// status was no longer `from`. Records history, publishes events.
    pub fn move_status(&self, id: i64, from: &str, to: &str, via: &str) -> Result<bool, Response> {
        if !allowed_moves(from).contains(&to) {
            return Err(forbidden_move(from, to));
        }
        let now = now();
        let converted_at = (to == "converted").then(|| now.clone());
        let rows = self.host.transaction(vec![
            Statement::new(
                "UPDATE leads SET status = $1, converted_at = COALESCE($2, converted_at), \
                 updated_at = $3 WHERE id = $4 AND status = $5 RETURNING id",
                params![to, converted_at, now, id, from],
            ),
            Statement::new(
                "INSERT INTO leads_history (lead_id, action, from_status, to_status, data, created_at) \
                 SELECT id, 'status', $1, $2, $3, $4 FROM leads WHERE id = $5 AND updated_at = $4 AND status = $2",
                params![from, to, json!({"via": via}).to_string(), now, id],
            ),
        ])?;
        let moved = rows.first().is_some_and(|rows| !rows.is_empty());
        if moved {
            let event = json!({"id": id, "from": from, "to": to, "via": via});
            self.announce("status_changed", &event);
            if to == "converted" {
                if let Ok(Some(lead)) = self.lead(id) {
                    self.announce("converted", &lead);
                }
            }
        }
        Ok(moved)
    }

    fn list(
        &self,
        window: Window,
        sort: Sort<LeadSort>,
        Query(filter): Query<LeadFilter>,
    ) -> Result<ListBody<Lead>, Response> {
        self.list_filtered(window, sort, filter)
    }

    fn list_by_status(
        &self,
        window: Window,
        sort: Sort<LeadSort>,
        Path(status): Path<String>,
        Query(filter): Query<LeadFilter>,
    ) -> Result<ListBody<Lead>, Response> {
        if !STATUSES.contains(&status.as_str()) {
            return Err(Response::not_found(&format!(
                "no status {status}; statuses: {}",
                STATUSES.join(", ")
            )));
        }
        self.list_filtered(
            window,
            sort,
            LeadFilter {
                status: Some(status),
                ..filter
            },
        )
    }

    fn list_filtered(
        &self,
        window: Window,
        sort: Sort<LeadSort>,
        filter: LeadFilter,
    ) -> Result<ListBody<Lead>, Response> {
        let mut problems = Problems::default();
        filter.check("", &mut problems);
        problems.finish()?;
        // `order_by` is `<column> <direction>, l.id <direction>`, the
        // column one of `LeadSort`'s.
        let first = sort.order_by.split(", ").next().unwrap_or_default();
        let (column, direction) = first.rsplit_once(' ').unwrap_or((first, "ASC"));
        Ok(crate::page::page(
            &self.host,
            filter,
            (column, direction),
            window,
        )?)
    }

    fn get(&self, Id(id): Id) -> Result<Json<LeadDetails>, Response> {
        let lead = self.existing_lead(id)?;
        let history = self.host.query_as(
            "SELECT id, action, from_status, to_status, data, created_at FROM leads_history \
             WHERE lead_id = $1 ORDER BY id",
            params![id],
        )?;
        Ok(Json(LeadDetails { lead, history }))
    }

    fn create(&self, Json(input): Json<LeadInput>) -> Result<Created<Lead>, Response> {
        let mut values = LeadValues::blank();
        let mut problems = Problems::default();
        values.apply(&input, "", &mut problems);
        if let Some(status) = &input.status {
            values.status = status.clone();
        }
        self.check_references(values.niche_id, values.campaign_id, &mut problems)?;
        problems.finish()?;
        self.create_lead(&values, "api").map(Created)
    }

    fn update(&self, Id(id): Id, Json(input): Json<LeadInput>) -> Result<Json<Lead>, Response> {
        let lead = self.existing_lead(id)?;
        let mut values = LeadValues::of(&lead);
        let mut problems = Problems::default();
        values.apply(&input, "", &mut problems);
        self.check_references(input.niche_id, input.campaign_id, &mut problems)?;
        problems.finish()?;
        let target = input.status.clone().filter(|status| *status != lead.status);
        if let Some(to) = &target {
            if !allowed_moves(&lead.status).contains(&to.as_str()) {
                return Err(forbidden_move(&lead.status, to));
            }
        }
        if let Some(conflict) = self.duplicate_of(&values, Some(id))? {
            return Err(conflict);
        }
        self.host
            .execute(
                "UPDATE leads SET company = $1, contact_name = $2, email = $3, phone = $4, \
                 website = $5, source = $6, niche_id = CAST($7 AS BIGINT), campaign_id = CAST($8 AS BIGINT), score = $9, tags = $10, \
                 notes = $11, owner_id = CAST($12 AS BIGINT), email_key = $13, phone_key = $14, updated_at = $15 \
                 WHERE id = $16",
                params![
                    values.company,
                    values.contact_name,
                    values.email,
                    values.phone,
                    values.website,
                    values.source,
                    nullable(values.niche_id),
                    nullable(values.campaign_id),
                    values.score,
                    json_text::text(&values.tags),
                    values.notes,
                    nullable(values.owner_id),
                    values.email_key(),
                    values.phone_key(),
                    now(),
                    id
                ],
            )
            .map_err(|error| self.raced(error, &values, Some(id)))?;
        if let Some(to) = target {
            if !self.move_status(id, &lead.status, &to, "api")? {
                return Err(Response::conflict(
                    "the lead's status changed meanwhile; read it again",
                ));
            }
        }
        Ok(Json(self.existing_lead(id)?))
    }

    fn delete(&self, Id(id): Id) -> Result<NoContent, Response> {
        let done = self
            .host
            .execute("DELETE FROM leads WHERE id = $1", params![id])?;
        if done.rows_affected == 0 {
            return Err(Response::not_found(&format!("no lead {id}")));
        }
        crate::activity::record(
            &self.host,
            "info",
            "lead",
            &format!("lead {id} deleted"),
            Some(id),
            json!({}),
        );
        Ok(NoContent)
    }
}

/// The leads' routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get("/", Access::Requires(READ), Leads::list)
        .summary("List leads: search, filters, sorting, pages")
        .post("/", Access::Requires(WRITE), Leads::create)
        .summary("Create a lead")
        .doc(|op| op.error_response(409, "Another lead has this email or phone"))
        .get(
            "/status/{status}",
            Access::Requires(READ),
            Leads::list_by_status,
        )
        .summary("List the leads in one status")
        .doc(|op| {
            op.add_parameter(json!({"name": "status", "in": "path", "required": true,
                "schema": {"type": "string", "enum": STATUSES}}))
        })
        .get("/{id}", Access::Requires(READ), Leads::get)
        .summary("Get a lead with its history")
        .put("/{id}", Access::Requires(WRITE), Leads::update)
        .summary("Update a lead (only the fields given); a status change must be an allowed move")
        .doc(|op| op.error_response(409, "A forbidden status move, or a duplicate email/phone"))
        .delete("/{id}", Access::Requires(DELETE), Leads::delete)
        .summary("Delete a lead")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_funnel_moves_forward_or_to_lost() {
        assert_eq!(allowed_moves("new"), ["contacted", "lost"]);
        assert_eq!(allowed_moves("qualified"), ["converted", "lost"]);
        assert!(allowed_moves("converted").is_empty());
        assert!(allowed_moves("lost").is_empty());
    }

    #[test]
    fn duplicate_keys_ignore_case_and_punctuation() {
        assert_eq!(email_key(" A@B.fr ").as_deref(), Some("a@b.fr"));
        assert_eq!(phone_key("+33 (0)6-12").as_deref(), Some("330612"));
        assert_eq!(phone_key("--"), None);
    }
}
