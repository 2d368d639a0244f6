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
//!
//! Layout: `model` (what a task is), `store` (its tables), `runs` (one run,
//! start to finish), [`jobs`] (built-in jobs), [`spec`] (schedules as the
//! API takes them), [`routes`] (`/system/tasks`); this module keeps the
//! scheduler in line with the tasks.

pub mod jobs;
pub mod routes;
pub mod spec;

mod model;
mod runs;
mod store;

pub use model::{NewTask, RunView, TaskRecord, TaskView};

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use chrono::Utc;
use serde_json::Value;
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use self::spec::Schedule;
use crate::{
    config::{AuditConfig, TasksConfig},
    db::{timestamp, Database},
    error::ApiError,
    events::EventBus,
    plugins::manager::PluginManager,
};

/// Runs listed with a task's details.
const RECENT_RUNS: i64 = 20;

/// The scheduler.
pub struct Scheduler {
    cron: JobScheduler,
    db: Database,
    events: EventBus,
    plugins: Arc<PluginManager>,
    config: TasksConfig,
    /// What the audit-log retention job keeps.
    audit: AuditConfig,
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
        audit: AuditConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let cron = JobScheduler::new().await?;
        let scheduler = Arc::new_cyclic(|me| Self {
            cron,
            db,
            events,
            plugins,
            config,
            audit,
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

    /// Every job a task can run now: the built-in ones, then those of the
    /// active plugins (`<plugin>.<job>`), sorted.
    pub fn available_jobs(&self) -> Vec<String> {
        let mut jobs: Vec<String> = jobs::BUILTIN_JOBS
            .iter()
            .map(|(name, _)| (*name).to_string())
            .collect();
        let mut plugin_jobs: Vec<String> = self
            .plugins
            .table()
            .generations()
            .iter()
            .flat_map(|generation| {
                generation
                    .manifest
                    .jobs
                    .iter()
                    .map(|job| format!("{}.{}", generation.id, job.name))
                    .collect::<Vec<_>>()
            })
            .collect();
        plugin_jobs.sort();
        jobs.extend(plugin_jobs);
        jobs
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
}
