//! One policy for running a plugin job, whoever asks: the scheduler
//! ([`crate::tasks`]) or the plugin itself ([`super::on_demand`]).
//!
//! - The serving generation at the time of the run: a reload in between
//!   runs the new code.
//! - The blocking pool: plugin jobs are synchronous code, and a panic comes
//!   back from the plugin's `catch_unwind` as an error.
//! - `tasks.job_timeout_secs`: a run past it is reported as an overrun. A
//!   thread cannot be stopped, so the caller gets it back to wait on and the
//!   job counts as running until it really returns: one job never runs
//!   twice at once.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use super::generation::{Generation, RouteTable};

/// How a run ended within its timeout, or the thread still running it.
#[derive(Debug)]
pub enum JobRun {
    /// Finished: the job's own result, or why its thread failed.
    Finished(Result<(), String>),
    /// Past the timeout; the thread is still running the job.
    Overran(JoinHandle<Result<(), String>>),
}

/// The enabled generation of `plugin` that declares `job`, if it serves.
pub fn serving(table: &RouteTable, plugin: &str, job: &str) -> Option<Arc<Generation>> {
    table
        .generations()
        .iter()
        .find(|generation| generation.id == plugin && generation.has_job(job))
        .cloned()
}

/// Runs `job` of `generation` on the blocking pool, waiting at most
/// `timeout`.
pub async fn run(generation: Arc<Generation>, job: &str, timeout: Duration) -> JobRun {
    let job = job.to_string();
    let mut handle = tokio::task::spawn_blocking(move || generation.run_job(&job));
    match tokio::time::timeout(timeout, &mut handle).await {
        Ok(joined) => JobRun::Finished(thread_result(joined)),
        Err(_) => JobRun::Overran(handle),
    }
}

/// Waits for an overrunning job's thread to return.
pub async fn finish(handle: JoinHandle<Result<(), String>>) -> Result<(), String> {
    thread_result(handle.await)
}

fn thread_result(joined: Result<Result<(), String>, tokio::task::JoinError>) -> Result<(), String> {
    joined.map_err(|error| format!("the job's thread failed: {error}"))?
}
