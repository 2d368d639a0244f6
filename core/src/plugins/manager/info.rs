//! What `/system/plugins` shows of a plugin, and the watcher's view of
//! what it last handled.

use serde::Serialize;

use crate::error::ApiError;

use super::{PluginManager, Record, FILE_PREFIX};

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
    /// Full paths it serves (`/prefix/path`, `{name}` for a parameter),
    /// each once, in declaration order: the seed's shape. Methods and
    /// permissions are in `endpoints`.
    pub routes: Vec<String>,
    /// Every route: method, full path and the permission it needs.
    pub endpoints: Vec<Endpoint>,
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

/// One route of a plugin, as `/system/plugins/{id}` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// HTTP method, upper case.
    pub method: String,
    /// Full path, `/prefix/path`.
    pub path: String,
    /// The permission the caller needs; `null` for a public route.
    pub permission: Option<String>,
}

impl PluginManager {
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

    pub(super) fn info(&self, id: &str, record: &Record) -> PluginInfo {
        let generation = record.live.as_deref();
        let manifest = generation.map(|g| &g.manifest);
        let active = record.enabled && generation.is_some();
        let endpoints: Vec<Endpoint> = generation
            .map(|g| {
                // The full paths are the metric labels the generation
                // built once at load.
                g.manifest
                    .routes
                    .iter()
                    .zip(g.labels())
                    .map(|(route, full_path)| Endpoint {
                        method: route.method.clone(),
                        path: (*full_path).to_string(),
                        permission: route.permission.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
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
            routes: distinct_paths(&endpoints),
            endpoints,
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

    /// The directory this manager writes the copies it loads in. Each copy
    /// is removed once mapped (or once the crash check's child is gone),
    /// so it stays empty between loads.
    pub fn scratch_dir(&self) -> &std::path::Path {
        &self.shadow_dir
    }

    /// Distinct shadow copies of `id` still mapped into this process.
    pub(super) fn mapped_generations(&self, id: &str) -> usize {
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
}

/// Each endpoint's path once, first seen first (several methods share one).
fn distinct_paths(endpoints: &[Endpoint]) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(endpoints.len());
    endpoints
        .iter()
        .filter(|endpoint| seen.insert(endpoint.path.as_str()))
        .map(|endpoint| endpoint.path.clone())
        .collect()
}
