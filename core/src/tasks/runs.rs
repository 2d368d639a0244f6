//! Running a task: a tick or a manual run, never two at once; the run
//! recorded in `task_runs`, `task.*` published, built-in jobs and plugin
//! jobs (through [`crate::plugins::job_runs`]) bounded by the timeout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{
    db::timestamp,
    error::{ApiError, ApiResult},
    plugins::job_runs::{self, JobRun},
};

use super::model::RunningGuard;
use super::{jobs, Scheduler};

impl Scheduler {
    /// A scheduled tick: runs the task unless it is already running.
    pub(super) async fn fire(&self, id: &str) {
        match self.begin_run(id, "schedule").await {
            Ok((run_id, started_at, guard)) => self.finish_run(id, run_id, started_at, guard).await,
            Err(error) if error.status().as_u16() == 409 => {
                tracing::info!(task = id, reason = error.message(), "tick skipped");
            }
            Err(error) => tracing::warn!(task = id, error = %error, "cannot start the task"),
        }
    }

    /// Starts a manual run in the background; the instant it started.
    pub async fn run_now(&self, id: &str) -> ApiResult<String> {
        let (run_id, started_at, guard) = self.begin_run(id, "manual").await?;
        let Some(me) = self.me.upgrade() else {
            return Err(ApiError::internal(anyhow::anyhow!("scheduler stopped")));
        };
        let (id, started) = (id.to_string(), started_at.clone());
        tokio::spawn(async move { me.finish_run(&id, run_id, started, guard).await });
        Ok(started_at)
    }

    /// Claims the task and records the start of a run.
    pub(super) async fn begin_run(
        &self,
        id: &str,
        started_by: &str,
    ) -> ApiResult<(i64, String, RunningGuard)> {
        let task = self.record(id).await?;
        if !self.job_available(&task.job) {
            return Err(ApiError::conflict(format!(
                "job {} is not available (its plugin is not serving)",
                task.job
            )));
        }
        let claimed = self
            .running
            .lock()
            .map(|mut running| running.insert(id.to_string()))
            .unwrap_or(false);
        if !claimed {
            return Err(ApiError::conflict(format!("task {id} is already running")));
        }
        let guard = RunningGuard {
            scheduler: self.me.clone(),
            id: id.to_string(),
        };
        let started_at = timestamp::now();
        let run_id: i64 = sqlx::query_scalar(
            "INSERT INTO task_runs (task_id, started_by, started_at, outcome)
             VALUES ($1, $2, $3, 'running') RETURNING id",
        )
        .bind(id)
        .bind(started_by)
        .bind(&started_at)
        .fetch_one(self.db.pool())
        .await?;
        self.events.publish(
            "task.started",
            json!({"id": id, "job": task.job, "run_id": run_id, "started_by": started_by}),
        );
        Ok((run_id, started_at, guard))
    }

    /// Runs the job, records the outcome, publishes it.
    pub(super) async fn finish_run(
        &self,
        id: &str,
        run_id: i64,
        started_at: String,
        guard: RunningGuard,
    ) {
        let job = match self.record(id).await {
            Ok(task) => task.job,
            Err(error) => {
                tracing::warn!(task = id, error = %error, "task vanished before its run");
                return;
            }
        };
        let clock = Instant::now();
        let outcome = self.run_job(&job, guard).await;
        let finished_at = timestamp::now();
        let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let recorded = match &outcome {
            Ok(detail) => {
                self.record_outcome(id, run_id, &started_at, &finished_at, None)
                    .await
                    .map(|()| {
                        self.events.publish(
                            "task.completed",
                            json!({"id": id, "job": job, "run_id": run_id, "duration_ms": duration_ms, "result": detail}),
                        )
                    })
            }
            Err(error) => {
                tracing::warn!(task = id, job = job.as_str(), error = error.as_str(), "task failed");
                self.record_outcome(id, run_id, &started_at, &finished_at, Some(error))
                    .await
                    .map(|()| {
                        self.events.publish(
                            "task.failed",
                            json!({"id": id, "job": job, "run_id": run_id, "duration_ms": duration_ms, "error": error}),
                        )
                    })
            }
        };
        if let Err(error) = recorded {
            tracing::error!(task = id, error = %error, "cannot record the task's run");
        }
        // A spent `once` task leaves the scheduler. (Not through
        // `reconcile`: its future would contain this one.)
        if matches!(self.record(id).await.map(|task| task.is_spent()), Ok(true)) {
            self.unregister(id).await;
        }
    }

    pub(super) async fn record_outcome(
        &self,
        id: &str,
        run_id: i64,
        started_at: &str,
        finished_at: &str,
        error: Option<&String>,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "UPDATE task_runs SET finished_at = $1, outcome = $2, error = $3 WHERE id = $4",
        )
        .bind(finished_at)
        .bind(if error.is_some() {
            "failure"
        } else {
            "success"
        })
        .bind(error.map(String::as_str))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        let counters = if error.is_some() {
            "failure_count = failure_count + 1, last_error = $2"
        } else {
            "success_count = success_count + 1, last_error = $2"
        };
        sqlx::query(&format!(
            "UPDATE tasks SET last_run = $1, {counters} WHERE id = $3"
        ))
        .bind(started_at)
        .bind(error.map(String::as_str))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs a job with the configured timeout; `Ok` holds a short result.
    pub(super) async fn run_job(&self, job: &str, guard: RunningGuard) -> Result<Value, String> {
        let timeout = Duration::from_secs(self.config.job_timeout_secs.max(1));
        if let Some(builtin) = jobs::BUILTIN_JOBS.iter().find(|(name, _)| *name == job) {
            let ran = tokio::time::timeout(
                timeout,
                jobs::run_builtin(builtin.0, &self.db, &self.config, &self.audit),
            )
            .await;
            drop(guard);
            return ran.map_err(|_| format!("timed out after {} s", timeout.as_secs()))?;
        }
        let (plugin, name) = job
            .split_once('.')
            .ok_or_else(|| format!("unknown job {job}"))?;
        let generation = job_runs::serving(&self.plugins.table(), plugin, name)
            .ok_or_else(|| format!("job {job} is not available"))?;
        match job_runs::run(generation, name, timeout).await {
            JobRun::Finished(outcome) => {
                drop(guard);
                outcome.map(|()| Value::Null)
            }
            JobRun::Overran(handle) => {
                // The task stays running until the thread returns, so it
                // never runs twice at once.
                tokio::spawn(async move {
                    let _ = job_runs::finish(handle).await;
                    drop(guard);
                });
                Err(format!(
                    "timed out after {} s (the job is still running)",
                    timeout.as_secs()
                ))
            }
        }
    }
}
