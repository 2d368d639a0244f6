//! Activities (`/activities`): calls, meetings, tasks, emails and notes,
//! linked to a customer and/or an opportunity, with a due date and an
//! assignee.
//!
//! - `GET /activities`: `mine=true` (assigned to the caller),
//!   `overdue=true` (not done and due before now), `type`, `done`,
//!   `customer_id`, `opportunity_id`, `assignee_id`; `sort_by` `due_at`,
//!   `created_at`; the SDK's paging;
//! - `POST /activities`, `GET/PUT/DELETE /activities/{id}` (`PUT` is
//!   partial; `done: true` stamps `done_at`);
//! - the `due_activities` job (schedule it with `/system/tasks`, e.g.
//!   every minute) publishes `crm.activity.due` once per due date for
//!   every activity not done whose due time has come, to its assignee
//!   alone (`Host::publish_to`: only the assignee's WebSocket connections
//!   receive it). An activity nobody is assigned to is the team's: every
//!   `crm:read` holder receives it.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{
    dates, flag, invalid, missing, nullable_id, patched, Clause, Crm, Id, DELETE, READ, WRITE,
};

/// The kinds of activity.
const KINDS: [&str; 5] = ["call", "meeting", "task", "email", "note"];

/// Most due activities announced per query of the job.
const DUE_BATCH: i64 = 500;

/// An activity.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    /// Id.
    pub id: i64,
    /// `call`, `meeting`, `task`, `email` or `note`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One line.
    pub subject: String,
    /// Free notes.
    pub notes: Option<String>,
    /// The customer.
    pub customer_id: Option<i64>,
    /// The opportunity.
    pub opportunity_id: Option<i64>,
    /// When it is due.
    pub due_at: Option<String>,
    /// The host user who has to do it.
    pub assignee_id: Option<i64>,
    /// Whether it is done.
    #[serde(deserialize_with = "flag")]
    pub done: bool,
    /// When it was done.
    pub done_at: Option<String>,
    /// Who created it.
    pub created_by: Option<i64>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// What a client sends to create an activity (and, partially, to change
/// one).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct ActivityInput {
    /// `call`, `meeting`, `task`, `email` or `note`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Required.
    pub subject: Option<String>,
    /// Free notes.
    pub notes: Option<String>,
    /// A customer (the opportunity's when only that is given).
    pub customer_id: Option<i64>,
    /// An opportunity.
    pub opportunity_id: Option<i64>,
    /// RFC 3339 instant or `YYYY-MM-DD` (midnight UTC).
    pub due_at: Option<String>,
    /// A host user id; the caller when absent on create.
    pub assignee_id: Option<i64>,
    /// Done.
    pub done: Option<bool>,
}

/// The list's filters.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct ActivityFilters {
    /// Only those assigned to the caller.
    pub mine: Option<bool>,
    /// Only those not done and due before now.
    pub overdue: Option<bool>,
    /// Of this kind.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Done or not.
    pub done: Option<bool>,
    /// Of this customer.
    pub customer_id: Option<i64>,
    /// Of this opportunity.
    pub opportunity_id: Option<i64>,
    /// Assigned to this user.
    pub assignee_id: Option<i64>,
}

/// The columns the list sorts by.
pub struct ActivitySort;

impl SortColumns for ActivitySort {
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("due_at", "a.due_at"), ("created_at", "a.created_at")];
    const DEFAULT: (&'static str, &'static str) = ("created_at", "DESC");
    const TIEBREAK: &'static str = "a.id";
}

const COLUMNS: &str = "a.id, a.kind AS type, a.subject, a.notes, a.customer_id, a.opportunity_id, \
    a.due_at, a.assignee_id, a.done, a.done_at, a.created_by, a.created_at, a.updated_at";

/// The activities' routes and the due-activities job.
pub fn routes(router: Router<Crm>) -> Router<Crm> {
    router
        .get("/activities", Access::Requires(READ), Crm::list_activities)
        .summary("List activities: mine, overdue, filters, sorting, pages")
        .post("/activities", Access::Requires(WRITE), Crm::create_activity)
        .summary("Create an activity on a customer and/or an opportunity")
        .get(
            "/activities/{id}",
            Access::Requires(READ),
            Crm::show_activity,
        )
        .summary("An activity")
        .put(
            "/activities/{id}",
            Access::Requires(WRITE),
            Crm::update_activity,
        )
        .summary("Change an activity (absent fields are kept)")
        .delete(
            "/activities/{id}",
            Access::Requires(DELETE),
            Crm::delete_activity,
        )
        .summary("Delete an activity")
        .job(
            "due_activities",
            "Publishes crm.activity.due for activities whose due time has come",
            Crm::announce_due_activities,
        )
}

/// An input as [`Crm::check_activity`] accepted it.
struct CheckedActivity {
    kind: String,
    subject: String,
    /// Given, or the opportunity's.
    customer_id: Option<i64>,
    /// Normalized.
    due_at: Option<String>,
}

impl CheckedActivity {
    /// `$1` to `$9` of both the insert and the update: kind, subject,
    /// notes, customer, opportunity, due time, assignee, done, done time
    /// (the assignee and the done time are where the two differ).
    fn params(
        &self,
        input: &ActivityInput,
        assignee_id: Option<i64>,
        done_at: Option<String>,
    ) -> Vec<Value> {
        params![
            self.kind,
            self.subject,
            input.notes,
            nullable_id(self.customer_id),
            nullable_id(input.opportunity_id),
            self.due_at,
            nullable_id(assignee_id),
            input.done.unwrap_or(false),
            done_at
        ]
    }
}

impl Crm {
    /// Activities matching `tail` (`<condition> ORDER BY ... LIMIT ...`).
    pub fn activities_where(
        &self,
        tail: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Activity>, HostError> {
        self.host.query_as(
            &format!("SELECT {COLUMNS} FROM crm_activities a WHERE {tail}"),
            params,
        )
    }

    fn activity(&self, id: i64) -> Result<Activity, Response> {
        self.activities_where("a.id = $1", params![id])?
            .pop()
            .ok_or_else(|| missing("activity"))
    }

    fn list_activities(
        &self,
        caller: Caller,
        Query(filters): Query<ActivityFilters>,
        window: Window,
        sort: Sort<ActivitySort>,
    ) -> Result<ListBody<Activity>, Response> {
        let mut clause = Clause::default();
        if filters.mine == Some(true) {
            clause.push("a.assignee_id = {}", json!(caller.user_id));
        }
        if filters.overdue == Some(true) {
            clause.push("a.done = {} AND a.due_at IS NOT NULL", json!(false));
            clause.push("a.due_at < {}", json!(now()));
        }
        if let Some(kind) = filters.kind.as_deref() {
            if !KINDS.contains(&kind) {
                return Err(Response::invalid(
                    "type",
                    "must be call, meeting, task, email or note",
                ));
            }
            clause.push("a.kind = {}", json!(kind));
        }
        if let Some(done) = filters.done {
            clause.push("a.done = {}", json!(done));
        }
        clause.ids([
            ("a.customer_id", filters.customer_id),
            ("a.opportunity_id", filters.opportunity_id),
            ("a.assignee_id", filters.assignee_id),
        ]);
        let (clause, params) = clause.finish();
        let sql = format!(
            "SELECT {COLUMNS} FROM crm_activities a {clause} ORDER BY {}",
            sort.order_by
        );
        Ok(self.host.query_page(&sql, params, window)?)
    }

    fn show_activity(&self, Id(id): Id) -> Result<Json<Activity>, Response> {
        self.activity(id).map(Json)
    }

    /// Checks an input; returns the kind, subject, customer and due time.
    fn check_activity(&self, input: &ActivityInput) -> Result<CheckedActivity, Response> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let kind = input.kind.clone().unwrap_or_else(|| "task".into());
        if !KINDS.contains(&kind.as_str()) {
            problems.push((
                "type".into(),
                "must be call, meeting, task, email or note".into(),
            ));
        }
        let subject = input.subject.as_deref().unwrap_or("").trim().to_string();
        if subject.is_empty() {
            problems.push(("subject".into(), "is required".into()));
        }
        let due_at = match input.due_at.as_deref() {
            None | Some("") => None,
            Some(raw) => dates::instant(raw).map_or_else(
                |message| {
                    problems.push(("due_at".into(), message));
                    None
                },
                Some,
            ),
        };
        let mut customer_id = input.customer_id;
        if let Some(id) = input.opportunity_id {
            let owner: Option<i64> = self
                .host
                .query_one(
                    "SELECT customer_id FROM crm_opportunities WHERE id = $1",
                    params![id],
                )?
                .and_then(|row| row.get("customer_id").and_then(Value::as_i64));
            match owner {
                None => problems.push(("opportunity_id".into(), "no such opportunity".into())),
                Some(owner) => {
                    customer_id = customer_id.or(Some(owner));
                }
            }
        }
        match customer_id {
            None if input.opportunity_id.is_none() => problems.push((
                "customer_id".into(),
                "an activity concerns a customer or an opportunity".into(),
            )),
            Some(id) if !self.customer_exists(id)? => {
                problems.push(("customer_id".into(), "no such customer".into()))
            }
            _ => {}
        }
        if problems.is_empty() {
            Ok(CheckedActivity {
                kind,
                subject,
                customer_id,
                due_at,
            })
        } else {
            Err(invalid(&problems))
        }
    }

    fn create_activity(
        &self,
        caller: Caller,
        Json(input): Json<ActivityInput>,
    ) -> Result<Created<Activity>, Response> {
        let checked = self.check_activity(&input)?;
        let now = now();
        let assignee_id = input.assignee_id.unwrap_or(caller.user_id);
        let done_at = input.done.unwrap_or(false).then(|| now.clone());
        let sql = format!(
            "INSERT INTO crm_activities (kind, subject, notes, customer_id, opportunity_id, due_at, \
             assignee_id, done, done_at, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, CAST($4 AS BIGINT), CAST($5 AS BIGINT), $6, CAST($7 AS BIGINT), $8, $9, $10, $11, $11) RETURNING {}",
            COLUMNS.replace("a.", "")
        );
        let mut values = checked.params(&input, Some(assignee_id), done_at);
        values.extend(params![caller.user_id, now]);
        let activity: Activity = self.host.query_row_as(&sql, values)?;
        Ok(Created(activity))
    }

    fn update_activity(
        &self,
        Id(id): Id,
        Json(patch): Json<Value>,
    ) -> Result<Json<Activity>, Response> {
        let current = self.activity(id)?;
        let input: ActivityInput = patched(&current, patch)?;
        let checked = self.check_activity(&input)?;
        let now = now();
        let done_at = match (input.done.unwrap_or(false), current.done) {
            (true, true) => current.done_at.clone(),
            (true, false) => Some(now.clone()),
            (false, _) => None,
        };
        // A new due time is announced again when it comes.
        let renotify = checked.due_at != current.due_at;
        let sql = format!(
            "UPDATE crm_activities SET kind = $1, subject = $2, notes = $3, customer_id = CAST($4 AS BIGINT), \
             opportunity_id = CAST($5 AS BIGINT), due_at = $6, assignee_id = CAST($7 AS BIGINT), done = $8, done_at = $9, \
             notified_at = CASE WHEN $10 THEN NULL ELSE notified_at END, updated_at = $11 \
             WHERE id = $12 RETURNING {}",
            COLUMNS.replace("a.", "")
        );
        let mut values = checked.params(&input, input.assignee_id, done_at);
        values.extend(params![renotify, now, id]);
        let activity: Activity = self.host.query_row_as(&sql, values)?;
        Ok(Json(activity))
    }

    fn delete_activity(&self, Id(id): Id) -> Result<NoContent, Response> {
        let done = self
            .host
            .execute("DELETE FROM crm_activities WHERE id = $1", params![id])?;
        if done.rows_affected == 0 {
            return Err(missing("activity"));
        }
        Ok(NoContent)
    }

    /// The `due_activities` job: every activity not done whose due time has
    /// passed and that was not announced since is published as
    /// `crm.activity.due`, then marked announced.
    pub fn announce_due_activities(&self) -> Result<(), HostError> {
        let now = now();
        loop {
            let due = self.activities_where(
                &format!(
                    "a.done = $1 AND a.due_at IS NOT NULL AND a.due_at <= $2 AND a.notified_at IS NULL \
                     ORDER BY a.due_at, a.id LIMIT {DUE_BATCH}"
                ),
                params![false, now],
            )?;
            for activity in &due {
                self.host.publish_for_or_warn(
                    activity.assignee_id,
                    "activity.due",
                    activity,
                    "cannot publish a crm event",
                );
                self.host.execute(
                    "UPDATE crm_activities SET notified_at = $1 WHERE id = $2",
                    params![now, activity.id],
                )?;
            }
            if (due.len() as i64) < DUE_BATCH {
                return Ok(());
            }
        }
    }
}
