//! The admission spine. Every library goes through
//! [`crate::plugins::admission::admit`] exactly once per entrance: here
//! (`PluginManager::read_library`: start-up and reload) or in
//! `install::install_locked` (upload, install by path, a file the watcher
//! found). What follows is the same for all: activation into a generation
//! (migrations, permissions, host services), the generation going live in
//! the route table, and the record saved.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use xcore_plugin_sdk::{ffi::HostServices_TO, Manifest};

use crate::plugins::{
    admission::{self, Entrance, Neighbour, Refusal},
    confinement::{Namespace, PluginDatabase},
    generation::{Generation, RouteTable, Serving},
    host_services::{HostParts, PluginHost},
    library::{self, LoadedLibrary},
    outbound_http::AllowList,
    prefix,
    subscriptions::{self},
};
use crate::{config::PluginSettings, db::migrate, error::ApiError, rbac::store};

use super::{PluginManager, Record};

/// The other plugins as admission sees them: loaded ones (with their
/// version, as dependencies; enabled ones only when `enabled_only`).
pub(super) fn neighbours(records: &BTreeMap<String, Record>, enabled_only: bool) -> Vec<Neighbour> {
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

impl PluginManager {
    /// Reads a library file and passes it through admission; also the
    /// checksum of what was read, when it could be. `proven`: the checksum
    /// of bytes of this plugin already loaded without incident.
    pub(super) async fn read_library(
        &self,
        id: &str,
        file: &Path,
        generation: u64,
        proven: Option<&str>,
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
            proven,
        )
        .await;
        // A loaded library carries the checksum `library::load` computed:
        // hashing the file a second time cost as much as loading it (a
        // release plugin with line tables is 20 to 30 MB).
        let checksum = match &admitted {
            Ok(library) => library.checksum.clone(),
            Err(_) => library::checksum(&bytes),
        };
        (Some(checksum), admitted)
    }

    /// Checks it against the other plugins, confines its SQL, migrates,
    /// registers its permissions, instantiates: a ready generation.
    pub(super) async fn activate(
        &self,
        library: LoadedLibrary,
        number: u64,
        neighbours: &[Neighbour],
    ) -> Result<Generation, Refusal> {
        // Borrowed: the manifest carries the plugin's OpenAPI document.
        let manifest: &Manifest = &library.manifest;
        let settings = self.settings.get(&manifest.id);
        // An operator's [plugins.<id>] api_prefix wins over the manifest's.
        let prefix = settings
            .and_then(|s| s.api_prefix.clone())
            .unwrap_or_else(|| manifest.api_prefix.clone());
        prefix::check_prefix(&prefix).map_err(Refusal::Manifest)?;
        admission::check_neighbours(manifest, &prefix, neighbours)?;
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
        let registered = store::permission_names_of(&self.db, &manifest.id)
            .await
            .map_err(|error| Refusal::Activation(format!("permissions: {}", error.message())))?;
        let missing = manifest
            .permissions
            .iter()
            .filter(|permission| !registered.contains(&permission.name));
        for permission in missing {
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
        let defaults: Vec<(&str, &str)> = manifest
            .permissions
            .iter()
            .flat_map(|permission| {
                permission
                    .default_roles
                    .iter()
                    .map(|role| (permission.name.as_str(), role.as_str()))
            })
            .collect();
        store::apply_default_grants(&self.db, &self.auth, &manifest.id, &defaults)
            .await
            .map_err(|error| Refusal::Activation(format!("default grants: {}", error.message())))?;
        let http_allow =
            AllowList::parse(settings.map_or(&[][..], |settings| settings.http_allow.as_slice()))
                .map_err(Refusal::Activation)?;
        let host = PluginHost::new(
            &manifest.id,
            admission::sql_scope(manifest),
            sql,
            self.db.dialect(),
            HostParts {
                events: self.events.clone(),
                manager: self.me.clone(),
                outbound: self.outbound.clone(),
                http_allow,
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

    pub(super) async fn persist(&self, id: &str, record: &Record) -> Result<(), ApiError> {
        Self::persist_on(self.db.pool(), id, record).await
    }

    /// [`Self::persist`] on `executor`: start-up saves every record in one
    /// transaction instead of a commit each.
    pub(super) async fn persist_on<'e>(
        executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
        id: &str,
        record: &Record,
    ) -> Result<(), ApiError> {
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
        .execute(executor)
        .await?;
        Ok(())
    }

    /// A ready generation, shared, with its events flowing if it listens.
    pub(super) fn go_live(&self, generation: Generation) -> Arc<Generation> {
        let generation = Arc::new(generation);
        if let Some(me) = self.me.upgrade() {
            let serving: Arc<dyn Serving> = me;
            subscriptions::start(
                &serving,
                &self.events,
                &self.deliveries,
                &generation,
                self.event_queue,
            );
        }
        generation
    }

    pub(super) fn publish_table(&self, records: &BTreeMap<String, Record>) {
        let generations = records
            .values()
            .filter(|record| record.enabled)
            .filter_map(|record| record.live.clone())
            .collect();
        self.table.store(Arc::new(RouteTable::new(generations)));
    }
}
