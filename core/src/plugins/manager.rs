//! The plugin manager: what is installed, loaded and enabled, and every
//! lifecycle change (load at start, enable, disable, reload), with the state
//! kept in the `plugins` table so a restart keeps it.
//!
//! Changes are serialised by one async mutex (they are rare and do I/O);
//! requests never take it: they read the route table, an `ArcSwap` replaced
//! whole after each change.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Weak},
};

use axum::http::StatusCode;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use tokio::sync::Mutex;
use xcore_plugin_sdk::{ffi::HostServices_TO, Manifest};

use super::{
    admission::{self, Entrance, Neighbour, Refusal},
    confinement::{Namespace, PluginDatabase},
    dependencies::{self, DependencyError, Node},
    generation::{Generation, RouteTable},
    host_services::{HostParts, PluginHost},
    library::{self, LoadedLibrary},
    on_demand::OnDemandJobs,
    outbound_http::{AllowList, OutboundHttp},
    prefix, probe,
    subscriptions::{self, DeliveryMetrics},
};
use crate::{
    auth::{cache::AuthCache, changes::Change},
    config::PluginSettings,
    db::{flag, migrate, timestamp, Database},
    error::ApiError,
    events::EventBus,
    observability::metrics::Metrics,
    rbac::store,
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

/// A plugin as `/system/plugins` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    /// Id.
    pub id: String,
    /// Name (the id when the library could not be read).
    pub name: String,
    /// Version.
    pub version: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Serving requests now.
    pub active: bool,
    /// `active`, `disabled`, `refused` (the library was refused by
    /// admission: `last_error` says why) or `failed` (admitted, but it
    /// could not start).
    pub state: &'static str,
    /// The library's file name in the plugins directory.
    pub file: Option<String>,
    /// Mount point.
    pub api_prefix: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Full route paths, `METHOD /prefix/path`.
    pub routes: Vec<String>,
    /// Ids of the plugins it depends on.
    pub dependencies: Vec<String>,
    /// Permissions it defines.
    pub permissions: Vec<String>,
    /// When the serving generation was loaded.
    pub loaded_at: Option<String>,
    /// When it was last reloaded.
    pub last_reload: Option<String>,
    /// Why the last load or reload failed.
    pub last_error: Option<String>,
    /// Number of the serving generation.
    pub generation: u64,
    /// SHA-256 of the serving library.
    pub checksum: Option<String>,
    /// plugin-api version the library was built with.
    pub plugin_api_version: Option<String>,
    /// Earlier generations still mapped in memory: draining requests, or a
    /// library the C runtime would not unload (thread-local destructors).
    pub leaked_generations: usize,
}

/// The manager.
pub struct PluginManager {
    dir: PathBuf,
    shadow_dir: PathBuf,
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

fn dependency_nodes(
    libraries: &BTreeMap<String, LoadedLibrary>,
) -> (Vec<Node>, Vec<(String, String)>) {
    let mut nodes = Vec::new();
    let mut bad = Vec::new();
    for (id, library) in libraries {
        let manifest = &library.manifest;
        let version = match semver::Version::parse(&manifest.version) {
            Ok(version) => version,
            Err(error) => {
                bad.push((
                    id.clone(),
                    format!("version {:?} is not semver: {error}", manifest.version),
                ));
                continue;
            }
        };
        let mut requires = Vec::new();
        for dependency in &manifest.dependencies {
            match semver::VersionReq::parse(&dependency.version) {
                Ok(requirement) => requires.push((dependency.id.clone(), requirement)),
                Err(error) => bad.push((
                    id.clone(),
                    format!(
                        "dependency {} {:?}: {error}",
                        dependency.id, dependency.version
                    ),
                )),
            }
        }
        nodes.push(Node {
            id: id.clone(),
            version,
            requires,
        });
    }
    (nodes, bad)
}

impl PluginManager {
    /// Loads every plugin file in `dir` (dependencies first) and serves the
    /// enabled ones. A plugin that fails is recorded with its error; it
    /// never stops the others or the host.
    pub async fn start(
        options: ManagerOptions,
        db: Database,
        events: EventBus,
    ) -> anyhow::Result<Arc<Self>> {
        let outbound = OutboundHttp::new(options.http_timeout, options.http_max_response_bytes)
            .map_err(anyhow::Error::msg)?;
        let deliveries = DeliveryMetrics::new(options.metrics.registry())?;
        let manager = Arc::new_cyclic(|me| Self {
            dir: options.dir,
            // One directory per manager, so counting this manager's mapped
            // shadow copies never counts another's.
            shadow_dir: std::env::temp_dir().join(format!(
                "xcore-plugins-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            )),
            db,
            events,
            runtime: tokio::runtime::Handle::current(),
            settings: options.settings,
            table: ArcSwap::from_pointee(RouteTable::default()),
            records: Mutex::new(BTreeMap::new()),
            metrics: options.metrics,
            quarantine_after_panics: options.quarantine_after_panics,
            me: me.clone(),
            on_demand: Arc::new(OnDemandJobs::new(options.job_timeout)),
            checker: options.checker,
            sql_role_secret: options.sql_role_secret,
            outbound,
            deliveries,
            event_queue: options.event_queue,
            auth: options.auth,
        });
        let mut records = manager.records.lock().await;
        let saved = manager.saved_state().await?;
        let mut libraries = BTreeMap::new();
        let found = manager.scan();
        // Admission runs each file in a child process first: in parallel.
        let admitted = futures_util::future::join_all(
            found
                .iter()
                .map(|(id, file)| manager.read_library(id, file, 1)),
        )
        .await;
        for ((id, file), (seen, admitted)) in found.into_iter().zip(admitted) {
            // A plugin seen for the first time starts as its settings say;
            // after that the saved state rules, so an operator's disable
            // survives restarts.
            let first_enabled = manager
                .settings
                .get(&id)
                .and_then(|s| s.enabled)
                .unwrap_or(true);
            let (installed_at, enabled) = saved
                .get(&id)
                .cloned()
                .unwrap_or_else(|| (timestamp::now(), first_enabled));
            let mut record = Record {
                file,
                enabled,
                live: None,
                generation: 0,
                checksum: seen,
                refused: false,
                installed_at,
                loaded_at: None,
                last_reload: None,
                last_error: None,
            };
            match admitted {
                Ok(library) => {
                    libraries.insert(id.clone(), library);
                }
                Err(refusal) => record.refuse(&refusal),
            }
            records.insert(id, record);
        }
        // Drop what cannot be ordered, one culprit at a time, until the
        // rest can be.
        let order = loop {
            let (nodes, bad) = dependency_nodes(&libraries);
            for (id, error) in bad {
                libraries.remove(&id);
                if let Some(record) = records.get_mut(&id) {
                    record.refuse(&Refusal::Manifest(error));
                }
            }
            match dependencies::load_order(&nodes) {
                Ok(order) => break order,
                Err(error) => {
                    let culprits = match &error {
                        DependencyError::Missing { plugin, .. }
                        | DependencyError::Version { plugin, .. } => vec![plugin.clone()],
                        DependencyError::Cycle(members) => members.clone(),
                    };
                    for id in culprits {
                        libraries.remove(&id);
                        if let Some(record) = records.get_mut(&id) {
                            record.refuse(&Refusal::Dependency(error.to_string()));
                        }
                    }
                }
            }
        };
        for id in order {
            let Some(library) = libraries.remove(&id) else {
                continue;
            };
            let neighbours = neighbours(&records, false);
            let outcome = manager.activate(library, 1, &neighbours).await;
            let Some(record) = records.get_mut(&id) else {
                continue;
            };
            match outcome {
                Ok(generation) => {
                    record.generation = 1;
                    record.loaded_at = Some(timestamp::now());
                    record.live = Some(manager.go_live(generation));
                }
                Err(refusal) => record.refuse(&refusal),
            }
        }
        for (id, record) in records.iter() {
            manager
                .persist(id, record)
                .await
                .map_err(|error| anyhow::anyhow!("cannot save plugin state: {error}"))?;
            match (&record.live, &record.last_error) {
                (Some(generation), _) => {
                    tracing::info!(
                        plugin = id.as_str(),
                        prefix = generation.prefix.as_str(),
                        enabled = record.enabled,
                        "plugin loaded"
                    );
                    manager.events.publish(
                        "plugin.loaded",
                        json!({"id": id, "version": generation.manifest.version, "generation": 1}),
                    );
                }
                (None, error) => {
                    tracing::warn!(
                        plugin = id.as_str(),
                        error = error.as_deref().unwrap_or("-"),
                        "plugin failed to load"
                    );
                    manager
                        .events
                        .publish("plugin.failed", json!({"id": id, "error": error}));
                }
            }
        }
        manager.publish_table(&records);
        drop(records);
        Ok(manager)
    }

    /// The enabled generations, for the dispatcher.
    pub fn table(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.table.load()
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
        self.on_demand.request(&me, plugin, job)
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

    fn scan(&self) -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            tracing::info!(dir = %self.dir.display(), "no plugins directory; no plugins loaded");
            return Vec::new();
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                id_of_file(&name).map(|id| (id.to_string(), entry.path()))
            })
            .collect();
        found.sort();
        found
    }

    async fn saved_state(&self) -> anyhow::Result<BTreeMap<String, (String, bool)>> {
        let rows = sqlx::query("SELECT id, installed_at, enabled FROM plugins")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    (row.try_get("installed_at")?, flag(row, "enabled")?),
                ))
            })
            .collect()
    }

    /// Reads a library file and passes it through admission; also the
    /// checksum of what was read, when it could be.
    async fn read_library(
        &self,
        id: &str,
        file: &Path,
        generation: u64,
    ) -> (Option<String>, Result<LoadedLibrary, Refusal>) {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(error) => {
                let refusal =
                    Refusal::Unloadable(format!("cannot read {}: {error}", file.display()));
                return (None, Err(refusal));
            }
        };
        let admitted = admission::admit(
            &bytes,
            Entrance::File { id },
            &self.shadow_dir,
            &self.checker,
            generation,
        )
        .await;
        (Some(library::checksum(&bytes)), admitted)
    }

    /// Checks it against the other plugins, confines its SQL, migrates,
    /// registers its permissions, instantiates: a ready generation.
    async fn activate(
        &self,
        library: LoadedLibrary,
        number: u64,
        neighbours: &[Neighbour],
    ) -> Result<Generation, Refusal> {
        let manifest: Manifest = library.manifest.clone();
        let settings = self.settings.get(&manifest.id);
        // An operator's [plugins.<id>] api_prefix wins over the manifest's.
        let prefix = settings
            .and_then(|s| s.api_prefix.clone())
            .unwrap_or_else(|| manifest.api_prefix.clone());
        prefix::check_prefix(&prefix).map_err(Refusal::Manifest)?;
        admission::check_neighbours(&manifest, &prefix, neighbours)?;
        let migrations: Vec<migrate::Migration<'_>> = manifest
            .migrations
            .iter()
            .map(|m| migrate::Migration {
                version: m.version,
                name: &m.name,
                sqlite: &m.sqlite,
                postgres: &m.postgres,
            })
            .collect();
        let namespace = Namespace::new(
            &manifest.id,
            manifest.dependencies.iter().map(|d| d.id.clone()).collect(),
        );
        let sql = PluginDatabase::open(&self.db, namespace, &self.sql_role_secret)
            .await
            .map_err(Refusal::Activation)?;
        sql.migrate(&self.db, &migrations)
            .await
            .map_err(Refusal::Migration)?;
        for permission in &manifest.permissions {
            match store::create_permission(
                &self.db,
                &self.auth,
                &permission.name,
                Some(&permission.description),
                &manifest.id,
            )
            .await
            {
                Ok(_) => {}
                Err(error) if error.message().contains("already exists") => {}
                Err(error) => {
                    return Err(Refusal::Activation(format!(
                        "permission {}: {}",
                        permission.name,
                        error.message()
                    )))
                }
            }
        }
        let http_allow =
            AllowList::parse(settings.map_or(&[][..], |settings| settings.http_allow.as_slice()))
                .map_err(Refusal::Activation)?;
        let host = PluginHost::new(
            &manifest.id,
            admission::sql_scope(&manifest),
            sql,
            self.db.dialect(),
            HostParts {
                events: self.events.clone(),
                manager: self.me.clone(),
                outbound: self.outbound.clone(),
                http_allow,
                sdk_version: library.api_version.clone(),
            },
        );
        let instance = library
            .instantiate(
                HostServices_TO::from_value(host, abi_stable::sabi_trait::TD_Opaque),
                &settings.map_or(serde_json::Value::Null, PluginSettings::config_json),
            )
            .map_err(|error| Refusal::Activation(format!("instantiation failed: {error}")))?;
        Generation::new(library, instance, prefix, number).map_err(Refusal::Activation)
    }

    async fn persist(&self, id: &str, record: &Record) -> Result<(), ApiError> {
        let manifest = record.live.as_ref().map(|g| &g.manifest);
        sqlx::query(
            "INSERT INTO plugins (id, version, api_prefix, enabled, checksum, generation, installed_at, loaded_at, last_reload, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, api_prefix = excluded.api_prefix,
                enabled = excluded.enabled, checksum = excluded.checksum, generation = excluded.generation,
                loaded_at = excluded.loaded_at, last_reload = excluded.last_reload, last_error = excluded.last_error",
        )
        .bind(id)
        .bind(manifest.map_or("", |m| m.version.as_str()))
        .bind(manifest.map_or("", |m| m.api_prefix.as_str()))
        .bind(record.enabled)
        .bind(record.checksum.as_deref().unwrap_or(""))
        .bind(i64::try_from(record.generation).unwrap_or(i64::MAX))
        .bind(&record.installed_at)
        .bind(&record.loaded_at)
        .bind(&record.last_reload)
        .bind(&record.last_error)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// A ready generation, shared, with its events flowing if it listens.
    fn go_live(&self, generation: Generation) -> Arc<Generation> {
        let generation = Arc::new(generation);
        if let Some(me) = self.me.upgrade() {
            subscriptions::start(
                &me,
                &self.events,
                &self.deliveries,
                &generation,
                self.event_queue,
            );
        }
        generation
    }

    fn publish_table(&self, records: &BTreeMap<String, Record>) {
        let generations = records
            .values()
            .filter(|record| record.enabled)
            .filter_map(|record| record.live.clone())
            .collect();
        self.table.store(Arc::new(RouteTable::new(generations)));
    }

    /// For the watcher: `None` when `id` is not installed, else the checksum
    /// of the file content last handled for it, admitted or refused (`None`
    /// inside when the file could not be read).
    pub async fn handled_checksum(&self, id: &str) -> Option<Option<String>> {
        let records = self.records.lock().await;
        records.get(id).map(|record| record.checksum.clone())
    }

    /// Every plugin, by id.
    pub async fn list(&self) -> Vec<PluginInfo> {
        let records = self.records.lock().await;
        records
            .iter()
            .map(|(id, record)| self.info(id, record))
            .collect()
    }

    /// One plugin.
    pub async fn get(&self, id: &str) -> Result<PluginInfo, ApiError> {
        let records = self.records.lock().await;
        records
            .get(id)
            .map(|record| self.info(id, record))
            .ok_or_else(|| ApiError::not_found(format!("plugin {id} not found")))
    }

    fn info(&self, id: &str, record: &Record) -> PluginInfo {
        let generation = record.live.as_deref();
        let manifest = generation.map(|g| &g.manifest);
        let active = record.enabled && generation.is_some();
        PluginInfo {
            id: id.to_string(),
            name: manifest.map_or_else(|| id.to_string(), |m| m.name.clone()),
            version: manifest.map(|m| m.version.clone()),
            author: manifest.map(|m| m.author.clone()),
            description: manifest.map(|m| m.description.clone()),
            active,
            state: match (generation, record.enabled) {
                (None, _) if record.refused => "refused",
                (None, _) => "failed",
                (Some(_), true) => "active",
                (Some(_), false) => "disabled",
            },
            file: record
                .file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
            api_prefix: generation.map(|g| g.prefix.clone()),
            tags: manifest.map(|m| m.tags.clone()).unwrap_or_default(),
            routes: generation
                .map(|g| {
                    g.manifest
                        .routes
                        .iter()
                        .map(|r| format!("{} {}{}", r.method, g.prefix, r.path))
                        .collect()
                })
                .unwrap_or_default(),
            dependencies: manifest
                .map(|m| m.dependencies.iter().map(|d| d.id.clone()).collect())
                .unwrap_or_default(),
            permissions: manifest
                .map(|m| m.permissions.iter().map(|p| p.name.clone()).collect())
                .unwrap_or_default(),
            loaded_at: record.loaded_at.clone(),
            last_reload: record.last_reload.clone(),
            last_error: record.last_error.clone(),
            generation: record.generation,
            checksum: generation.map(|g| g.library().checksum.clone()),
            plugin_api_version: generation.map(|g| g.library().api_version.clone()),
            leaked_generations: self
                .mapped_generations(id)
                .saturating_sub(usize::from(generation.is_some())),
        }
    }

    /// Distinct shadow copies of `id` still mapped into this process.
    fn mapped_generations(&self, id: &str) -> usize {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return 0;
        };
        let needle = format!("{}/{FILE_PREFIX}{id}.", self.shadow_dir.display());
        let mut paths: Vec<&str> = maps
            .lines()
            .filter_map(|line| line.find(&needle).map(|at| &line[at..]))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths.len()
    }

    fn ids_depending_on(
        records: &BTreeMap<String, Record>,
        id: &str,
        enabled_only: bool,
    ) -> Vec<String> {
        let nodes: Vec<Node> = records
            .iter()
            .filter(|(_, record)| !enabled_only || record.enabled)
            .filter_map(|(other, record)| {
                record.live.as_ref().map(|g| Node {
                    id: other.clone(),
                    version: semver::Version::new(0, 0, 0),
                    requires: g
                        .manifest
                        .dependencies
                        .iter()
                        .map(|d| (d.id.clone(), semver::VersionReq::STAR))
                        .collect(),
                })
            })
            .collect();
        dependencies::dependents_of(id, &nodes)
            .into_iter()
            .collect()
    }

    /// Serves the plugin again; refused while one of its dependencies is
    /// not active.
    pub async fn enable(&self, id: &str) -> Result<PluginInfo, ApiError> {
        let mut records = self.records.lock().await;
        let record = records
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("plugin {id} not found")))?;
        let generation = record.live.clone().ok_or_else(|| {
            ApiError::conflict(format!(
                "plugin {id} is not loaded: {}",
                record.last_error.as_deref().unwrap_or("unknown error")
            ))
        })?;
        let inactive: Vec<String> = generation
            .manifest
            .dependencies
            .iter()
            .filter(|d| {
                !records
                    .get(&d.id)
                    .is_some_and(|r| r.enabled && r.live.is_some())
            })
            .map(|d| d.id.clone())
            .collect();
        if !inactive.is_empty() {
            return Err(ApiError::conflict(format!(
                "plugin {id} needs {} enabled first",
                inactive.join(", ")
            )));
        }
        self.set_enabled(&mut records, &[id.to_string()], true)
            .await?;
        Ok(self.info(id, &records[id]))
    }

    /// Stops serving the plugin (its routes answer 404); refused while
    /// enabled plugins depend on it unless `cascade` disables them too.
    pub async fn disable(&self, id: &str, cascade: bool) -> Result<PluginInfo, ApiError> {
        let mut records = self.records.lock().await;
        if !records.contains_key(id) {
            return Err(ApiError::not_found(format!("plugin {id} not found")));
        }
        let dependents = Self::ids_depending_on(&records, id, true);
        if !dependents.is_empty() && !cascade {
            return Err(ApiError::conflict(format!(
                "enabled plugins depend on {id}: {}; disable them first or pass ?cascade=true",
                dependents.join(", ")
            )));
        }
        let mut ids = dependents;
        ids.push(id.to_string());
        self.set_enabled(&mut records, &ids, false).await?;
        Ok(self.info(id, &records[id]))
    }

    async fn set_enabled(
        &self,
        records: &mut BTreeMap<String, Record>,
        ids: &[String],
        enabled: bool,
    ) -> Result<(), ApiError> {
        for id in ids {
            if let Some(record) = records.get_mut(id) {
                if record.enabled != enabled {
                    record.enabled = enabled;
                    self.persist(id, record).await?;
                    let topic = if enabled {
                        "plugin.enabled"
                    } else {
                        "plugin.disabled"
                    };
                    self.events.publish(topic, json!({"id": id}));
                }
            }
        }
        self.publish_table(records);
        Ok(())
    }

    /// Takes a plugin that keeps panicking out of service until an
    /// administrator enables it again.
    pub async fn quarantine(&self, id: &str, reason: String) -> Result<(), ApiError> {
        let mut records = self.records.lock().await;
        let Some(record) = records.get_mut(id).filter(|record| record.enabled) else {
            return Ok(());
        };
        record.enabled = false;
        record.last_error = Some(reason.clone());
        self.persist(id, record).await?;
        self.publish_table(&records);
        self.events.publish(
            "plugin.failed",
            json!({"id": id, "error": reason, "quarantined": true}),
        );
        tracing::error!(plugin = id, reason = reason.as_str(), "plugin quarantined");
        Ok(())
    }

    /// Installs a plugin from the bytes of its library: admitted and
    /// started before its file is written into the plugins directory, so a
    /// refused library never lands there. `expected_id` and
    /// `expected_version` (the `name` and `version` of a JSON install, or
    /// the id a watched file is named for) must match the manifest.
    pub async fn install(
        &self,
        bytes: &[u8],
        expected_id: Option<&str>,
        expected_version: Option<&str>,
    ) -> Result<PluginInfo, ApiError> {
        let entrance = Entrance::Install {
            expected_id,
            expected_version,
        };
        let mut records = self.records.lock().await;
        self.install_locked(&mut records, bytes, entrance).await
    }

    /// A new file in the plugins directory (the watcher): installed like an
    /// upload or, when it cannot be, listed as refused with the reason
    /// until the file changes or goes.
    pub async fn adopt(&self, id: &str, file: &Path, bytes: &[u8]) -> Result<PluginInfo, ApiError> {
        let mut records = self.records.lock().await;
        let error = match self
            .install_locked(&mut records, bytes, Entrance::File { id })
            .await
        {
            Ok(info) => return Ok(info),
            Err(error) => error,
        };
        if !records.contains_key(id) {
            let record = Record {
                file: file.to_path_buf(),
                enabled: self
                    .settings
                    .get(id)
                    .and_then(|s| s.enabled)
                    .unwrap_or(true),
                live: None,
                generation: 0,
                checksum: Some(library::checksum(bytes)),
                refused: error.status() != StatusCode::INTERNAL_SERVER_ERROR,
                installed_at: timestamp::now(),
                loaded_at: None,
                last_reload: None,
                last_error: Some(error.message().to_string()),
            };
            self.persist(id, &record).await?;
            records.insert(id.to_string(), record);
            self.events
                .publish("plugin.failed", json!({"id": id, "error": error.message()}));
        }
        Err(error)
    }

    async fn install_locked(
        &self,
        records: &mut BTreeMap<String, Record>,
        bytes: &[u8],
        entrance: Entrance<'_>,
    ) -> Result<PluginInfo, ApiError> {
        let library = admission::admit(bytes, entrance, &self.shadow_dir, &self.checker, 1).await?;
        let id = library.manifest.id.clone();
        if records.contains_key(&id) {
            return Err(Refusal::AlreadyInstalled(format!(
                "plugin {id} is already installed; reload it to update"
            ))
            .into());
        }
        let generation = self
            .activate(library, 1, &neighbours(records, true))
            .await?;
        let file = self.dir.join(format!("{FILE_PREFIX}{id}{FILE_SUFFIX}"));
        if let Entrance::Install { .. } = entrance {
            std::fs::create_dir_all(&self.dir).map_err(ApiError::internal)?;
            let temporary = self
                .dir
                .join(format!(".{FILE_PREFIX}{id}{FILE_SUFFIX}.installing"));
            std::fs::write(&temporary, bytes)
                .and_then(|()| std::fs::rename(&temporary, &file))
                .map_err(ApiError::internal)?;
        }
        let now = timestamp::now();
        let record = Record {
            file,
            enabled: true,
            checksum: Some(generation.library().checksum.clone()),
            refused: false,
            live: Some(self.go_live(generation)),
            generation: 1,
            installed_at: now.clone(),
            loaded_at: Some(now),
            last_reload: None,
            last_error: None,
        };
        self.persist(&id, &record).await?;
        records.insert(id.clone(), record);
        self.publish_table(records);
        self.events.publish(
            "plugin.loaded",
            json!({"id": id, "generation": 1, "installed": true}),
        );
        tracing::info!(plugin = id.as_str(), "plugin installed");
        Ok(self.info(&id, &records[&id]))
    }

    /// Uninstalls: stops serving, forgets the state, deletes the file.
    /// With `purge`, also drops the plugin's tables and views (`<id>` and
    /// `<id>_*`, the names its SQL may use), its migration history and its
    /// permissions.
    pub async fn uninstall(&self, id: &str, purge: bool) -> Result<(), ApiError> {
        let mut records = self.records.lock().await;
        if !records.contains_key(id) {
            return Err(ApiError::not_found(format!("plugin {id} not found")));
        }
        let dependents = Self::ids_depending_on(&records, id, true);
        if !dependents.is_empty() {
            return Err(ApiError::conflict(format!(
                "enabled plugins depend on {id}: {}; uninstall or disable them first",
                dependents.join(", ")
            )));
        }
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM plugins WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if purge {
            drop_plugin_tables(&mut tx, self.db.dialect(), id).await?;
            sqlx::query("DELETE FROM xcore_migrations WHERE owner = $1")
                .bind(format!("plugin:{id}"))
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM permissions WHERE owner = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // The database is done first, so a failure there changes nothing;
        // only then does the plugin stop serving and its file go. In-flight
        // requests finish on the generation they hold.
        if purge {
            // Its permissions went with it: grants change.
            self.auth.commit(tx, &[Change::Grants]).await?;
        } else {
            tx.commit().await?;
        }
        if let Some(record) = records.remove(id) {
            self.publish_table(&records);
            match std::fs::remove_file(&record.file) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(plugin = id, %error, "cannot delete the plugin file"),
            }
        }
        drop(records);
        self.events
            .publish("plugin.uninstalled", json!({"id": id, "purged": purge}));
        tracing::info!(plugin = id, purge, "plugin uninstalled");
        Ok(())
    }

    /// Loads the plugin's file again as a new generation and swaps it in;
    /// in-flight requests finish on the old one. On failure the old
    /// generation keeps serving and the error is kept and published.
    pub async fn reload(&self, id: &str) -> Result<PluginInfo, ApiError> {
        let mut records = self.records.lock().await;
        let record = records
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("plugin {id} not found")))?;
        let (file, number) = (record.file.clone(), record.generation + 1);
        let neighbours = neighbours(&records, false);
        let (seen, admitted) = self.read_library(id, &file, number).await;
        let outcome = match admitted {
            Ok(library) => self.activate(library, number, &neighbours).await,
            Err(refusal) => Err(refusal),
        };
        let Some(record) = records.get_mut(id) else {
            return Err(ApiError::not_found(format!("plugin {id} not found")));
        };
        match outcome {
            Ok(generation) => {
                let now = timestamp::now();
                record.checksum = Some(generation.library().checksum.clone());
                record.live = Some(self.go_live(generation));
                record.generation = number;
                record.loaded_at.get_or_insert_with(|| now.clone());
                record.last_reload = Some(now);
                record.last_error = None;
                record.refused = false;
                self.persist(id, record).await?;
                self.publish_table(&records);
                self.events
                    .publish("plugin.reloaded", json!({"id": id, "generation": number}));
                tracing::info!(plugin = id, generation = number, "plugin reloaded");
                Ok(self.info(id, &records[id]))
            }
            Err(refusal) => {
                let error = refusal.to_string();
                // Remembered as handled: the watcher tries these bytes no
                // more; a serving generation keeps serving.
                record.checksum = seen.or(record.checksum.take());
                if record.live.is_none() {
                    record.refuse(&refusal);
                } else {
                    record.last_error = Some(error.clone());
                }
                self.persist(id, record).await?;
                self.events
                    .publish("plugin.failed", json!({"id": id, "error": error}));
                tracing::warn!(
                    plugin = id,
                    error = error.as_str(),
                    "plugin reload failed; the previous generation keeps serving"
                );
                Err(plugin_error(
                    refusal.status(),
                    format!("reload of {id} failed: {error}"),
                ))
            }
        }
    }
}

/// The other plugins as admission sees them: loaded ones (with their
/// version, as dependencies; enabled ones only when `enabled_only`).
fn neighbours(records: &BTreeMap<String, Record>, enabled_only: bool) -> Vec<Neighbour> {
    records
        .iter()
        .filter_map(|(id, record)| {
            record.live.as_ref().map(|generation| Neighbour {
                id: id.clone(),
                prefix: generation.prefix.clone(),
                serving_version: (record.enabled || !enabled_only)
                    .then(|| generation.manifest.version.clone()),
            })
        })
        .collect()
}

/// Drops the tables and views a plugin's SQL may own: `<id>` and `<id>_*`
/// (see [`super::sql_guard`]), whatever order their dependencies need.
async fn drop_plugin_tables(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    dialect: crate::db::Dialect,
    id: &str,
) -> Result<(), ApiError> {
    let pattern = format!("{}\\_%", id.replace('_', "\\_"));
    // Names come from the catalogue but are spliced into DDL: only plain
    // identifiers are ever dropped.
    let plain = |name: &String| {
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    match dialect {
        crate::db::Dialect::Sqlite => {
            // Views first, then virtual tables (dropping an FTS index drops
            // its shadow tables, which the IF EXISTS below then skips), then
            // the rest; foreign keys between the plugin's own tables are
            // checked at commit, when all of them are gone.
            let objects: Vec<(String, String)> = sqlx::query(
                "SELECT name, type FROM sqlite_master \
                 WHERE type IN ('table', 'view') AND (name = $1 OR name LIKE $2 ESCAPE '\\') \
                 ORDER BY CASE WHEN type = 'view' THEN 0 \
                 WHEN sql LIKE 'CREATE VIRTUAL TABLE%' THEN 1 ELSE 2 END, name",
            )
            .bind(id)
            .bind(&pattern)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("type")?)))
            .collect::<Result<_, sqlx::Error>>()?;
            sqlx::query("PRAGMA defer_foreign_keys = ON")
                .execute(&mut **tx)
                .await?;
            for (name, kind) in objects.iter().filter(|(name, _)| plain(name)) {
                let kind = if kind == "view" { "VIEW" } else { "TABLE" };
                sqlx::query(&format!("DROP {kind} IF EXISTS {name}"))
                    .execute(&mut **tx)
                    .await?;
            }
        }
        crate::db::Dialect::Postgres => {
            for (kind, catalogue, column) in [
                ("VIEW", "pg_views", "viewname"),
                ("TABLE", "pg_tables", "tablename"),
            ] {
                let names: Vec<String> = sqlx::query(&format!(
                    "SELECT {column}::text AS name FROM {catalogue} \
                     WHERE schemaname = current_schema() \
                     AND ({column} = $1 OR {column} LIKE $2 ESCAPE '\\')"
                ))
                .bind(id)
                .bind(&pattern)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|row| row.try_get("name"))
                .collect::<Result<_, _>>()?;
                let names: Vec<&str> = names
                    .iter()
                    .filter(|n| plain(n))
                    .map(String::as_str)
                    .collect();
                if !names.is_empty() {
                    // One statement, CASCADE: foreign keys and sequences
                    // between the plugin's own tables never block the drop.
                    sqlx::query(&format!(
                        "DROP {kind} IF EXISTS {} CASCADE",
                        names.join(", ")
                    ))
                    .execute(&mut **tx)
                    .await?;
                }
            }
            super::confinement::postgres_roles::forget(tx, id)
                .await
                .map_err(|error| {
                    ApiError::internal(anyhow::anyhow!(
                        "cannot drop plugin {id}'s database role: {error}"
                    ))
                })?;
        }
    }
    Ok(())
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
