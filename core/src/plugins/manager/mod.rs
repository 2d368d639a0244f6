//! The plugin manager: what is installed, loaded and enabled, and every
//! lifecycle change (load at start, enable, disable, reload), with the state
//! kept in the `plugins` table so a restart keeps it.
//!
//! Changes are serialised by one async mutex (they are rare and do I/O);
//! requests never take it: they read the route table, an `ArcSwap` replaced
//! whole after each change.
//!
//! - `startup`: the directory loaded at start, dependencies first.
//! - `activation`: the admission spine every entrance goes through
//!   (admission, activation, going live).
//! - `lifecycle`: enable, disable, quarantine, reload.
//! - `install`: install and uninstall.
//! - `storage`: purging a plugin's tables.
//! - `info`: what `/system/plugins` shows.

mod activation;
mod info;
mod install;
mod lifecycle;
mod startup;
mod storage;

pub use info::{Endpoint, PluginInfo};

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Weak},
};

use axum::http::StatusCode;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use super::{
    admission::Refusal,
    generation::{Generation, RouteTable, Serving},
    on_demand::OnDemandJobs,
    outbound_http::OutboundHttp,
    prefix, probe,
    subscriptions::DeliveryMetrics,
};
use crate::{
    auth::cache::AuthCache, config::PluginSettings, db::Database, error::ApiError,
    events::EventBus, observability::metrics::Metrics,
};

/// File names the manager picks up: `libxcore_plugin_<id>.so`.
const FILE_PREFIX: &str = "libxcore_plugin_";
const FILE_SUFFIX: &str = ".so";

/// What is known about one installed plugin.
#[derive(Debug)]
struct Record {
    file: PathBuf,
    enabled: bool,
    live: Option<Arc<Generation>>,
    generation: u64,
    /// SHA-256 of the file content last handled, admitted or refused: the
    /// watcher acts on a file again only when its content differs.
    checksum: Option<String>,
    /// The last library seen for it was refused by admission (as opposed
    /// to failing once admitted).
    refused: bool,
    installed_at: String,
    loaded_at: Option<String>,
    last_reload: Option<String>,
    last_error: Option<String>,
}

impl Record {
    /// Records why its library was not started.
    fn refuse(&mut self, refusal: &Refusal) {
        self.refused = !matches!(refusal, Refusal::Activation(_));
        self.last_error = Some(refusal.to_string());
    }
}

/// The directory a manager writes shadow copies (and the crash check's
/// copies) in, removed with the manager. A copy is unlinked as soon as
/// dlopen has mapped it, so nothing loaded needs the directory; without
/// this, every start left an empty directory in the temporary directory.
struct ShadowDir(PathBuf);

impl std::ops::Deref for ShadowDir {
    type Target = std::path::Path;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for ShadowDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The manager.
pub struct PluginManager {
    dir: PathBuf,
    shadow_dir: ShadowDir,
    db: Database,
    events: EventBus,
    runtime: tokio::runtime::Handle,
    /// `[plugins.<id>]` sections from the configuration.
    settings: BTreeMap<String, PluginSettings>,
    table: ArcSwap<RouteTable>,
    records: Mutex<BTreeMap<String, Record>>,
    /// The host's request metrics (plugin-to-plugin calls are recorded
    /// there too).
    metrics: Arc<Metrics>,
    /// Panics in a row that take a plugin out of service.
    quarantine_after_panics: u32,
    /// Handed to each instance's host services, for calls between plugins
    /// (weak: the manager owns the instances).
    me: Weak<PluginManager>,
    /// Jobs plugins asked to run now (`HostOp::RunJob`).
    on_demand: Arc<OnDemandJobs>,
    /// Loads every new library first in a child process.
    checker: probe::Checker,
    /// Derives the PostgreSQL plugin roles' passwords.
    sql_role_secret: String,
    /// `Host::http`'s client and bounds.
    outbound: OutboundHttp,
    /// Counts events handed to subscribing plugins.
    deliveries: DeliveryMetrics,
    /// `plugins.event_queue`.
    event_queue: usize,
    /// Told when plugin permissions are registered or removed, so requests
    /// are decided on them from the next one on.
    auth: Arc<AuthCache>,
}

/// What the manager needs besides the database and the bus.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// The plugins directory.
    pub dir: PathBuf,
    /// `[plugins.<id>]` sections from the configuration.
    pub settings: BTreeMap<String, PluginSettings>,
    /// Panics in a row that take a plugin out of service.
    pub quarantine_after_panics: u32,
    /// The host's request metrics.
    pub metrics: Arc<Metrics>,
    /// `tasks.job_timeout_secs`: bounds a job a plugin runs on demand as it
    /// bounds a scheduled one.
    pub job_timeout: std::time::Duration,
    /// Loads every new library first in a child process.
    pub checker: probe::Checker,
    /// Derives the PostgreSQL plugin roles' passwords (the JWT secret: all
    /// instances of one deployment share it).
    pub sql_role_secret: String,
    /// `plugins.http_timeout_ms`.
    pub http_timeout: std::time::Duration,
    /// `plugins.http_max_response_bytes`.
    pub http_max_response_bytes: u64,
    /// `plugins.event_queue`.
    pub event_queue: usize,
    /// The authentication cache, which permission changes update.
    pub auth: Arc<AuthCache>,
}

impl std::fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginManager")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn plugin_error(status: StatusCode, message: String) -> ApiError {
    ApiError::new(status, crate::error::ErrorCode::PluginError, message)
}

/// The plugin id a file name stands for, if it is a plugin file.
pub fn id_of_file(name: &str) -> Option<&str> {
    name.strip_prefix(FILE_PREFIX)?
        .strip_suffix(FILE_SUFFIX)
        .filter(|id| prefix::check_id(id).is_ok())
}

impl PluginManager {
    /// The host's database (the watcher writes its audit rows there).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The host's request metrics.
    pub fn request_metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every serving route's metrics label and its plugin.
    pub fn route_labels(&self) -> BTreeMap<&'static str, String> {
        self.table
            .load()
            .generations()
            .iter()
            .flat_map(|generation| {
                generation
                    .labels()
                    .iter()
                    .map(|label| (*label, generation.id.clone()))
            })
            .collect()
    }

    /// Starts `plugin`'s own `job` now in the background (see
    /// [`super::on_demand`]); refused if no serving generation declares it.
    pub fn run_job_soon(&self, plugin: &str, job: &str) -> Result<(), String> {
        let me = self.me.upgrade().ok_or("the host is shutting down")?;
        let serving: Arc<dyn Serving> = me;
        self.on_demand.request(&serving, plugin, job)
    }

    /// The enabled generations, for the dispatcher.
    pub fn table(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Panics in a row that take a plugin out of service.
    pub fn quarantine_after_panics(&self) -> u32 {
        self.quarantine_after_panics
    }

    /// Quarantines `id` on the runtime, for callers on a request path or a
    /// plugin's thread that must not wait for it.
    pub fn quarantine_later(&self, id: &str, streak: u32) {
        let (Some(manager), id) = (self.me.upgrade(), id.to_string()) else {
            return;
        };
        self.runtime.spawn(async move {
            let reason = format!("quarantined after {streak} consecutive panics");
            if let Err(error) = manager.quarantine(&id, reason).await {
                tracing::error!(
                    plugin = id.as_str(),
                    error = error.message(),
                    "quarantine failed"
                );
            }
        });
    }
}

impl Serving for PluginManager {
    fn table(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        PluginManager::table(self)
    }

    fn quarantine_after_panics(&self) -> u32 {
        PluginManager::quarantine_after_panics(self)
    }

    fn quarantine_later(&self, id: &str, streak: u32) {
        PluginManager::quarantine_later(self, id, streak);
    }
}

#[cfg(test)]
mod tests {
    use super::id_of_file;

    #[test]
    fn plugin_files_are_recognised_by_name() {
        assert_eq!(id_of_file("libxcore_plugin_hello.so"), Some("hello"));
        assert_eq!(id_of_file("libxcore_plugin_erp_crm.so"), Some("erp_crm"));
        assert_eq!(id_of_file("libxcore_plugin_.so"), None);
        assert_eq!(id_of_file("libxcore_plugin_Bad.so"), None);
        assert_eq!(id_of_file("libother.so"), None);
        assert_eq!(id_of_file("libxcore_plugin_hello.so.tmp"), None);
    }
}
