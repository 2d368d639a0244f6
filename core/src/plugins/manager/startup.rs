//! Start-up: every plugin file in the directory loaded (dependencies first)
//! through admission, with the state saved in the `plugins` table applied.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use arc_swap::ArcSwap;
use serde_json::json;
use sqlx::Row;
use tokio::sync::Mutex;

use crate::plugins::{
    admission::Refusal,
    dependencies::{self, DependencyError, Node},
    generation::RouteTable,
    library::LoadedLibrary,
    on_demand::OnDemandJobs,
    outbound_http::OutboundHttp,
    subscriptions::DeliveryMetrics,
};
use crate::{
    db::{flag, timestamp, Database},
    error::ApiError,
    events::EventBus,
};

use super::{activation::neighbours, id_of_file, ManagerOptions, PluginManager, Record, ShadowDir};

pub(super) fn dependency_nodes(
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
            shadow_dir: ShadowDir(std::env::temp_dir().join(format!(
                "xcore-plugins-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ))),
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
        // Each file on a task of its own: reading, hashing and mapping a
        // library is CPU work done before its first await, so futures
        // joined on this one task would take turns; tasks share the cores.
        // New files wait for their child-process check in parallel too.
        let reads = found.iter().map(|(id, file)| {
            let (manager, id, file) = (manager.clone(), id.clone(), file.clone());
            let proven = saved.get(&id).and_then(|state| state.proven.clone());
            tokio::spawn(
                async move { manager.read_library(&id, &file, 1, proven.as_deref()).await },
            )
        });
        let admitted: Vec<_> = futures_util::future::join_all(reads)
            .await
            .into_iter()
            .map(|joined| {
                joined.unwrap_or_else(|error| {
                    (
                        None,
                        Err(Refusal::Unloadable(format!("loading failed: {error}"))),
                    )
                })
            })
            .collect();
        for ((id, file), (seen, admitted)) in found.into_iter().zip(admitted) {
            // A plugin seen for the first time starts as its settings say;
            // after that the saved state rules, so an operator's disable
            // survives restarts.
            let first_enabled = manager
                .settings
                .get(&id)
                .and_then(|s| s.enabled)
                .unwrap_or(true);
            let (installed_at, enabled) = saved.get(&id).map_or_else(
                || (timestamp::now(), first_enabled),
                |state| (state.installed_at.clone(), state.enabled),
            );
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
        let saving = |error: ApiError| anyhow::anyhow!("cannot save plugin state: {error}");
        let mut tx = manager.db.begin_write().await?;
        for (id, record) in records.iter() {
            Self::persist_on(&mut *tx, id, record)
                .await
                .map_err(saving)?;
        }
        tx.commit().await?;
        for (id, record) in records.iter() {
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

    pub(super) fn scan(&self) -> Vec<(String, PathBuf)> {
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

    pub(super) async fn saved_state(&self) -> anyhow::Result<BTreeMap<String, SavedState>> {
        let rows = sqlx::query(
            "SELECT id, installed_at, enabled, checksum, loaded_at, last_error FROM plugins",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let checksum: Option<String> = row.try_get("checksum")?;
                let loaded_at: Option<String> = row.try_get("loaded_at")?;
                let last_error: Option<String> = row.try_get("last_error")?;
                let proven = checksum
                    .filter(|checksum| !checksum.is_empty())
                    .filter(|_| loaded_at.is_some() && last_error.is_none());
                Ok((
                    row.try_get("id")?,
                    SavedState {
                        installed_at: row.try_get("installed_at")?,
                        enabled: flag(row, "enabled")?,
                        proven,
                    },
                ))
            })
            .collect()
    }
}

/// What the database remembers of a plugin across restarts.
pub(super) struct SavedState {
    /// When it was first installed.
    installed_at: String,
    /// An operator's enable or disable.
    enabled: bool,
    /// The checksum of the bytes last loaded without error, if the last
    /// attempt loaded: the same file need not be checked in a child
    /// process again.
    proven: Option<String>,
}
