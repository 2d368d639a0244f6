//! The `tasks` and `task_runs` tables: reads, views, create, update,
//! pause/resume and delete, each followed by a reconcile.

use sqlx::Row;

use super::spec::{IntervalInput, Schedule};
use crate::{
    db::timestamp,
    error::{ApiError, ApiResult},
};

use super::model::{bind_definition, NewTask, RunView, TaskRecord, TaskView};
use super::{Scheduler, RECENT_RUNS};

impl Scheduler {
    /// Every task, by id.
    pub async fn records(&self) -> Result<Vec<TaskRecord>, ApiError> {
        let rows = sqlx::query("SELECT * FROM tasks ORDER BY id")
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows
            .iter()
            .map(TaskRecord::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// One task.
    pub async fn record(&self, id: &str) -> Result<TaskRecord, ApiError> {
        let row = sqlx::query("SELECT * FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
        Ok(TaskRecord::from_row(&row)?)
    }

    /// The API view of a task.
    pub async fn view(&self, task: TaskRecord) -> TaskView {
        let status = if self.is_running(&task.id) {
            "running"
        } else if !task.enabled {
            "paused"
        } else if task.is_spent() {
            "completed"
        } else if !self.job_available(&task.job) {
            "inactive"
        } else {
            "scheduled"
        };
        // Only a task that will fire has a next run (the scheduler may not
        // have caught up with a plugin event yet).
        let next_run = match status {
            "scheduled" | "running" => self.next_run(&task.id).await,
            _ => None,
        };
        let (schedule, interval, run_at) = match &task.schedule {
            Schedule::Cron(expression) => (expression.clone(), None, None),
            Schedule::Interval(seconds) => (
                format!("every {seconds}s"),
                Some(IntervalInput::from_seconds(*seconds)),
                None,
            ),
            Schedule::Once(at) => (timestamp::format(*at), None, Some(timestamp::format(*at))),
        };
        TaskView {
            kind: task.schedule.kind(),
            status,
            schedule,
            interval,
            run_at,
            next_run,
            id: task.id,
            name: task.name,
            job: task.job,
            enabled: task.enabled,
            builtin: task.builtin,
            last_run: task.last_run,
            success_count: task.success_count,
            failure_count: task.failure_count,
            last_error: task.last_error,
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }

    /// The most recent runs of `id`, newest first.
    pub async fn runs(&self, id: &str) -> ApiResult<Vec<RunView>> {
        let rows = sqlx::query(
            "SELECT id, started_by, started_at, finished_at, outcome, error FROM task_runs
             WHERE task_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(RECENT_RUNS)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RunView {
                    id: row.try_get("id")?,
                    started_by: row.try_get("started_by")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    outcome: row.try_get("outcome")?,
                    error: row.try_get("error")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(ApiError::from)
    }

    /// Creates a task; it fires at once if enabled.
    pub async fn create(&self, task: NewTask) -> ApiResult<TaskView> {
        let now = timestamp::now();
        let inserted = bind_definition(
            sqlx::query(
                "INSERT INTO tasks (name, kind, schedule, interval_secs, run_at, job, enabled, id, builtin, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            ),
            &task.name,
            &task.schedule,
            &task.job,
            task.enabled,
        )
        .bind(&task.id)
        .bind(false)
        .bind(&now)
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(ApiError::conflict(format!(
                    "a task with id {} already exists",
                    task.id
                )))
            }
            Err(error) => return Err(error.into()),
        }
        self.reconcile(&task.id).await?;
        Ok(self.view(self.record(&task.id).await?).await)
    }

    /// Saves a changed task and reschedules it.
    pub async fn update(&self, task: &TaskRecord) -> ApiResult<TaskView> {
        bind_definition(
            sqlx::query(
                "UPDATE tasks SET name = $1, kind = $2, schedule = $3, interval_secs = $4, run_at = $5,
                    job = $6, enabled = $7, updated_at = $8 WHERE id = $9",
            ),
            &task.name,
            &task.schedule,
            &task.job,
            task.enabled,
        )
        .bind(timestamp::now())
        .bind(&task.id)
        .execute(self.db.pool())
        .await?;
        self.reconcile(&task.id).await?;
        Ok(self.view(self.record(&task.id).await?).await)
    }

    /// Pauses or resumes.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> ApiResult<TaskView> {
        let mut task = self.record(id).await?;
        task.enabled = enabled;
        self.update(&task).await
    }

    /// Deletes a task and its history (built-in tasks can only be paused).
    pub async fn delete(&self, id: &str) -> ApiResult<()> {
        let task = self.record(id).await?;
        if task.builtin {
            return Err(ApiError::conflict(format!(
                "task {id} is built in; pause it instead"
            )));
        }
        self.unregister(id).await;
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM task_runs WHERE task_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tasks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
