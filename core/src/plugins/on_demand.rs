//! Plugin jobs run on demand (`HostOp::RunJob`): a plugin asks for one of
//! its own jobs to run now, off the request that asked (an import started
//! over HTTP, say), instead of waiting for a scheduled tick.
//!
//! A run follows the scheduler's policy, [`super::job_runs`]: the serving
//! generation, the blocking pool, `tasks.job_timeout_secs`, panics as errors,
//! and an overrun that counts as running until its thread returns.
//!
//! One run per `(plugin, job)` at a time: a request while the job runs sets
//! a flag, and the job runs once more when the current run ends. Any number
//! of requests during a run fold into that one extra run, so a burst of
//! requests costs at most two runs and none is lost (a job that picks its
//! work from the database, as imports do, sees everything asked for before
//! the extra run started).
//!
//! These runs are not tasks: there is no `tasks` row to attach them to, so
//! they are not recorded in `task_runs` and publish no `task.*` events. The
//! plugin records what the run did in its own tables (an import job's
//! status and log); the host logs each failure or overrun.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use super::{
    generation::Serving,
    job_runs::{self, JobRun},
};

/// What is running: `(plugin, job)` to "run again when done".
type Running = HashMap<(String, String), bool>;

/// The on-demand runs of every plugin.
#[derive(Debug)]
pub struct OnDemandJobs {
    /// The scheduler's timeout for one run.
    timeout: Duration,
    running: Mutex<Running>,
    runtime: tokio::runtime::Handle,
}

impl OnDemandJobs {
    /// Runs bounded by `timeout`, spawned on the current runtime.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout: timeout.max(Duration::from_secs(1)),
            running: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Queues a run of `plugin`'s `job`: refused at once if no serving
    /// generation declares it; otherwise started now, or after the current
    /// run of the same job. Never waits for the run.
    pub fn request(
        self: &Arc<Self>,
        manager: &Arc<dyn Serving>,
        plugin: &str,
        job: &str,
    ) -> Result<(), String> {
        let declared = manager
            .table()
            .generations()
            .iter()
            .find(|generation| generation.id == plugin)
            .map(|generation| generation.has_job(job));
        match declared {
            None => return Err(format!("plugin {plugin} is not serving")),
            Some(false) => return Err(format!("plugin {plugin} declares no job named {job:?}")),
            Some(true) => {}
        }
        let key = (plugin.to_string(), job.to_string());
        {
            let mut running = self
                .running
                .lock()
                .map_err(|_| "the job registry is unavailable".to_string())?;
            if let Some(again) = running.get_mut(&key) {
                *again = true;
                return Ok(());
            }
            running.insert(key.clone(), false);
        }
        let (me, manager) = (self.clone(), Arc::downgrade(manager));
        self.runtime
            .spawn(async move { me.drive(manager, key).await });
        Ok(())
    }

    /// Runs the job until no further run was asked for.
    async fn drive(&self, manager: Weak<dyn Serving>, key: (String, String)) {
        let (plugin, job) = (key.0.as_str(), key.1.as_str());
        loop {
            // The serving generation at the time of each run: a reload in
            // between runs the new code.
            let generation = manager
                .upgrade()
                .and_then(|manager| job_runs::serving(&manager.table(), plugin, job));
            match generation {
                Some(generation) => {
                    let outcome = match job_runs::run(generation, job, self.timeout).await {
                        JobRun::Finished(outcome) => outcome,
                        JobRun::Overran(handle) => {
                            tracing::warn!(
                                plugin,
                                job,
                                timeout_secs = self.timeout.as_secs(),
                                "on-demand job timed out; it keeps running until it returns"
                            );
                            // Still one run at a time: wait for the thread.
                            job_runs::finish(handle).await
                        }
                    };
                    match outcome {
                        Ok(()) => tracing::debug!(plugin, job, "on-demand job finished"),
                        Err(error) => {
                            tracing::warn!(
                                plugin,
                                job,
                                error = error.as_str(),
                                "on-demand job failed"
                            )
                        }
                    }
                }
                None => tracing::warn!(
                    plugin,
                    job,
                    "on-demand job skipped: the plugin stopped serving"
                ),
            }
            let Ok(mut running) = self.running.lock() else {
                return;
            };
            match running.get_mut(&key) {
                Some(again) if *again => *again = false,
                _ => {
                    running.remove(&key);
                    return;
                }
            }
        }
    }
}
