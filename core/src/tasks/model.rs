//! What a task is: as stored ([`TaskRecord`]), as the API shows it
//! ([`TaskView`], [`RunView`]), and as created ([`NewTask`]).

use std::sync::Weak;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{any::AnyRow, Row};

use super::spec::{IntervalInput, Schedule};
use crate::db::{flag, timestamp};

use super::Scheduler;

/// A task as stored.
#[derive(Clone, Debug)]
pub struct TaskRecord {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it fires.
    pub schedule: Schedule,
    /// The job it runs.
    pub job: String,
    /// `false` while paused.
    pub enabled: bool,
    /// Created by the host; cannot be deleted.
    pub builtin: bool,
    /// Start of the last run.
    pub last_run: Option<String>,
    /// Error of the last failed run, cleared by a success.
    pub last_error: Option<String>,
    /// Successful runs.
    pub success_count: i64,
    /// Failed runs.
    pub failure_count: i64,
    /// Created at.
    pub created_at: String,
    /// Last changed at.
    pub updated_at: String,
}

impl TaskRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let schedule = match kind.as_str() {
            "interval" => Schedule::Interval(
                u64::try_from(row.try_get::<i64, _>("interval_secs")?).unwrap_or(1),
            ),
            "once" => {
                let at: String = row.try_get("run_at")?;
                Schedule::Once(
                    DateTime::parse_from_rfc3339(&at)
                        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?
                        .with_timezone(&Utc),
                )
            }
            _ => Schedule::Cron(row.try_get("schedule")?),
        };
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            schedule,
            job: row.try_get("job")?,
            enabled: flag(row, "enabled")?,
            builtin: flag(row, "builtin")?,
            last_run: row.try_get("last_run")?,
            last_error: row.try_get("last_error")?,
            success_count: row.try_get("success_count")?,
            failure_count: row.try_get("failure_count")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// A `once` task that has run is done.
    pub(super) fn is_spent(&self) -> bool {
        matches!(self.schedule, Schedule::Once(_)) && self.last_run.is_some()
    }
}

/// A task as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `cron`, `interval` or `once`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `scheduled`, `running`, `paused`, `inactive` (its plugin is not
    /// serving) or `completed` (a `once` task that ran).
    pub status: &'static str,
    /// The cron expression, `every <n>s`, or the `once` instant.
    pub schedule: String,
    /// For `interval` tasks.
    pub interval: Option<IntervalInput>,
    /// For `once` tasks.
    pub run_at: Option<String>,
    /// The job it runs.
    pub job: String,
    /// `false` while paused.
    pub enabled: bool,
    /// Made by the host.
    pub builtin: bool,
    /// Start of the last run.
    pub last_run: Option<String>,
    /// When it fires next, if it will.
    pub next_run: Option<String>,
    /// Successful runs.
    pub success_count: i64,
    /// Failed runs.
    pub failure_count: i64,
    /// Error of the last failed run.
    pub last_error: Option<String>,
    /// Created at.
    pub created_at: String,
    /// Last changed at.
    pub updated_at: String,
}

/// One run, for a task's details.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    /// Run id.
    pub id: i64,
    /// `schedule` or `manual`.
    pub started_by: String,
    /// Start.
    pub started_at: String,
    /// End, once finished.
    pub finished_at: Option<String>,
    /// `running`, `success` or `failure`.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// Removes a task from the running set when the run (or its overrunning
/// job) is really over.
pub(super) struct RunningGuard {
    pub(super) scheduler: Weak<Scheduler>,
    pub(super) id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(scheduler) = self.scheduler.upgrade() {
            if let Ok(mut running) = scheduler.running.lock() {
                running.remove(&self.id);
            }
        }
    }
}

/// A validated new task.
#[derive(Clone, Debug)]
pub struct NewTask {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it fires.
    pub schedule: Schedule,
    /// The job.
    pub job: String,
    /// `false` creates it paused.
    pub enabled: bool,
}

/// Binds what a client defines of a task, in the column order `name, kind,
/// schedule, interval_secs, run_at, job, enabled` that both the insert and
/// the update use.
pub(super) fn bind_definition<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    name: &'q str,
    schedule: &Schedule,
    job: &'q str,
    enabled: bool,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let (kind, schedule, interval, run_at) = columns(schedule);
    query
        .bind(name)
        .bind(kind)
        .bind(schedule)
        .bind(interval)
        .bind(run_at)
        .bind(job)
        .bind(enabled)
}

/// `(kind, schedule, interval_secs, run_at)` columns of a schedule.
fn columns(schedule: &Schedule) -> (&'static str, Option<String>, Option<i64>, Option<String>) {
    match schedule {
        Schedule::Cron(expression) => ("cron", Some(expression.clone()), None, None),
        Schedule::Interval(seconds) => (
            "interval",
            None,
            Some(i64::try_from(*seconds).unwrap_or(i64::MAX)),
            None,
        ),
        Schedule::Once(at) => ("once", None, None, Some(timestamp::format(*at))),
    }
}
