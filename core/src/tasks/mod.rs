//! The task scheduler: tasks bind a schedule (cron, interval, once) to a
//! job; tokio-cron-scheduler fires them; their state and run history live
//! in the `tasks` and `task_runs` tables so a restart keeps them.
//!
//! Jobs are the built-in ones ([`jobs`]) and those plugins declare, named
//! `<plugin>.<job>` and run on the blocking pool (a plugin job is
//! synchronous code) with `tasks.job_timeout_secs`.
//!
//! Rules:
//! - A task never runs twice at once: a tick or a manual run that finds it
//!   running is skipped (a manual one answers 409). A job that overruns its
//!   timeout is recorded as failed, and the task stays "running" until the
//!   job's thread really returns.
//! - The scheduler holds a job for a task only while the task should fire:
//!   enabled, its job available (its plugin active), and for a `once` task
//!   not yet run. [`Scheduler::reconcile`] brings it in line after every
//!   change, including the plugin events (a disabled plugin's tasks stop
//!   and come back with it; an uninstalled plugin's tasks are deleted).
//! - `next_run` is read from the scheduler, so it is right after a pause,
//!   resume or edit.
//! - `task.started`, `task.completed` and `task.failed` go on the bus.
//!
//! Several instances on one database each fire their own schedule: the
//! per-task lock is in-process (see the README's known limits).

pub mod jobs;
pub mod routes;
pub mod spec;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{any::AnyRow, Row};
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use self::spec::{IntervalInput, Schedule};
use crate::{
    config::TasksConfig,
    db::{flag, timestamp, Database},
    error::{ApiError, ApiResult},
    events::EventBus,
    plugins::manager::PluginManager,
};

/// Runs listed with a task's details.
const RECENT_RUNS: i64 = 20;

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
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
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
    fn is_spent(&self) -> bool {
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
struct RunningGuard {
    scheduler: Weak<Scheduler>,
    id: String,
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

/// The scheduler.
pub struct Scheduler {
    cron: JobScheduler,
    db: Database,
    events: EventBus,
    plugins: Arc<PluginManager>,
    config: TasksConfig,
    /// Scheduler job ids of the tasks that fire now.
    registered: tokio::sync::Mutex<HashMap<String, Uuid>>,
    /// Tasks running now.
    running: Mutex<HashSet<String>>,
    me: Weak<Scheduler>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Creates the built-in tasks if missing, schedules every task that
    /// should fire, and follows plugin events.
    pub async fn start(
        db: Database,
        events: EventBus,
        plugins: Arc<PluginManager>,
        config: TasksConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let cron = JobScheduler::new().await?;
        let scheduler = Arc::new_cyclic(|me| Self {
            cron,
            db,
            events,
            plugins,
            config,
            registered: tokio::sync::Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            me: me.clone(),
        });
        jobs::ensure_builtin_tasks(&scheduler.db).await?;
        let tasks = scheduler
            .records()
            .await
            .map_err(|error| anyhow::anyhow!("cannot read the tasks: {error}"))?;
        for task in tasks {
            scheduler
                .reconcile(&task.id)
                .await
                .map_err(|error| anyhow::anyhow!("cannot schedule task {}: {error}", task.id))?;
        }
        scheduler.cron.start().await?;
        scheduler.follow_plugins();
        Ok(scheduler)
    }

    /// Stops firing (on shutdown).
    pub async fn stop(&self) {
        let mut cron = self.cron.clone();
        let _ = cron.shutdown().await;
    }

    fn follow_plugins(&self) {
        let mut bus = self.events.subscribe();
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                let event = match bus.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if !event.topic.starts_with("plugin.") {
                    continue;
                }
                let Some(scheduler) = me.upgrade() else {
                    return;
                };
                let Some(plugin) = event.data.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if let Err(error) = scheduler.plugin_changed(plugin, &event.topic).await {
                    tracing::warn!(plugin, error = %error, "cannot update the plugin's tasks");
                }
            }
        });
    }

    async fn plugin_changed(&self, plugin: &str, topic: &str) -> Result<(), ApiError> {
        let prefix = format!("{plugin}.");
        let tasks: Vec<TaskRecord> = self
            .records()
            .await?
            .into_iter()
            .filter(|task| task.job.starts_with(&prefix))
            .collect();
        for task in tasks {
            if topic == "plugin.uninstalled" {
                self.unregister(&task.id).await;
                sqlx::query("DELETE FROM tasks WHERE id = $1")
                    .bind(&task.id)
                    .execute(self.db.pool())
                    .await?;
                tracing::info!(
                    task = task.id.as_str(),
                    plugin,
                    "task deleted with its plugin"
                );
            } else {
                self.reconcile(&task.id).await?;
            }
        }
        Ok(())
    }

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

    /// Whether `job` can run now: a built-in job, or a job an active
    /// plugin declares.
    pub fn job_available(&self, job: &str) -> bool {
        if jobs::BUILTIN_JOBS.iter().any(|(name, _)| *name == job) {
            return true;
        }
        let Some((plugin, name)) = job.split_once('.') else {
            return false;
        };
        self.plugins
            .table()
            .generations()
            .iter()
            .any(|generation| generation.id == plugin && generation.has_job(name))
    }

    /// Checks a cron expression with the scheduler's own parser.
    pub fn cron_is_valid(expression: &str) -> bool {
        Job::new_async(expression, |_, _| Box::pin(async {})).is_ok()
    }

    /// Schedules or unschedules `id` as its state says.
    pub async fn reconcile(&self, id: &str) -> Result<(), ApiError> {
        // Held throughout, so two reconciles of one task (an edit racing a
        // plugin event) cannot both add a scheduler job.
        let mut registered = self.registered.lock().await;
        if let Some(uuid) = registered.remove(id) {
            let _ = self.cron.remove(&uuid).await;
        }
        let task = match self.record(id).await {
            Ok(task) => task,
            Err(error) if error.status().as_u16() == 404 => return Ok(()),
            Err(error) => return Err(error),
        };
        if !task.enabled || task.is_spent() || !self.job_available(&task.job) {
            return Ok(());
        }
        let me = self.me.clone();
        let task_id = task.id.clone();
        let fire = move |_: Uuid, _: JobScheduler| {
            let (me, task_id) = (me.clone(), task_id.clone());
            Box::pin(async move {
                if let Some(scheduler) = me.upgrade() {
                    scheduler.fire(&task_id).await;
                }
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        };
        let job = match &task.schedule {
            Schedule::Cron(expression) => Job::new_async(spec::six_field_cron(expression), fire),
            Schedule::Interval(seconds) => {
                Job::new_repeated_async(Duration::from_secs(*seconds), fire)
            }
            Schedule::Once(at) => {
                // Past due (the host was down at the time): run now.
                let wait = (*at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                Job::new_one_shot_at_instant_async(Instant::now() + wait, fire)
            }
        }
        .map_err(|error| ApiError::internal(anyhow::anyhow!("cannot schedule {id}: {error}")))?;
        let uuid = self.cron.add(job).await.map_err(|error| {
            ApiError::internal(anyhow::anyhow!("cannot schedule {id}: {error}"))
        })?;
        registered.insert(task.id, uuid);
        Ok(())
    }

    async fn unregister(&self, id: &str) {
        if let Some(uuid) = self.registered.lock().await.remove(id) {
            let _ = self.cron.remove(&uuid).await;
        }
    }

    /// When `id` fires next, if it is scheduled.
    async fn next_run(&self, id: &str) -> Option<String> {
        let uuid = *self.registered.lock().await.get(id)?;
        let mut cron = self.cron.clone();
        cron.next_tick_for_job(uuid)
            .await
            .ok()
            .flatten()
            .map(timestamp::format)
    }

    fn is_running(&self, id: &str) -> bool {
        self.running
            .lock()
            .map(|running| running.contains(id))
            .unwrap_or(false)
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

    /// A scheduled tick: runs the task unless it is already running.
    async fn fire(&self, id: &str) {
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
    async fn begin_run(
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
    async fn finish_run(&self, id: &str, run_id: i64, started_at: String, guard: RunningGuard) {
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

    async fn record_outcome(
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
    async fn run_job(&self, job: &str, guard: RunningGuard) -> Result<Value, String> {
        let timeout = Duration::from_secs(self.config.job_timeout_secs.max(1));
        if let Some(builtin) = jobs::BUILTIN_JOBS.iter().find(|(name, _)| *name == job) {
            let ran = tokio::time::timeout(
                timeout,
                jobs::run_builtin(builtin.0, &self.db, &self.config),
            )
            .await;
            drop(guard);
            return ran.map_err(|_| format!("timed out after {} s", timeout.as_secs()))?;
        }
        let (plugin, name) = job
            .split_once('.')
            .ok_or_else(|| format!("unknown job {job}"))?;
        let generation = self
            .plugins
            .table()
            .generations()
            .iter()
            .find(|generation| generation.id == plugin && generation.has_job(name))
            .cloned()
            .ok_or_else(|| format!("job {job} is not available"))?;
        let name = name.to_string();
        let mut handle = tokio::task::spawn_blocking(move || generation.run_job(&name));
        match tokio::time::timeout(timeout, &mut handle).await {
            Ok(joined) => {
                drop(guard);
                joined
                    .map_err(|error| format!("the job's thread failed: {error}"))?
                    .map(|()| Value::Null)
            }
            Err(_) => {
                // The thread cannot be stopped: the task stays running
                // until it returns, so it never runs twice at once.
                tokio::spawn(async move {
                    let _ = handle.await;
                    drop(guard);
                });
                Err(format!(
                    "timed out after {} s (the job is still running)",
                    timeout.as_secs()
                ))
            }
        }
    }

    /// Creates a task; it fires at once if enabled.
    pub async fn create(&self, task: NewTask) -> ApiResult<TaskView> {
        let now = timestamp::now();
        let (kind, schedule, interval, run_at) = columns(&task.schedule);
        let inserted = sqlx::query(
            "INSERT INTO tasks (id, name, kind, schedule, interval_secs, run_at, job, enabled, builtin, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&task.id)
        .bind(&task.name)
        .bind(kind)
        .bind(schedule)
        .bind(interval)
        .bind(run_at)
        .bind(&task.job)
        .bind(task.enabled)
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
        let (kind, schedule, interval, run_at) = columns(&task.schedule);
        sqlx::query(
            "UPDATE tasks SET name = $1, kind = $2, schedule = $3, interval_secs = $4, run_at = $5,
                job = $6, enabled = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(&task.name)
        .bind(kind)
        .bind(schedule)
        .bind(interval)
        .bind(run_at)
        .bind(&task.job)
        .bind(task.enabled)
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
