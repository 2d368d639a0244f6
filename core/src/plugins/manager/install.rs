//! Install (upload, path, a file the watcher found) and uninstall, with
//! or without purging the plugin's data.

use std::{collections::BTreeMap, path::Path};

use axum::http::StatusCode;

use serde_json::json;

use crate::plugins::{
    admission::{self, Entrance, Refusal},
    library::{self},
};
use crate::{auth::changes::Change, db::timestamp, error::ApiError};

use super::{
    activation::neighbours, storage::drop_plugin_tables, PluginInfo, PluginManager, Record,
    FILE_PREFIX, FILE_SUFFIX,
};

impl PluginManager {
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

    pub(super) async fn install_locked(
        &self,
        records: &mut BTreeMap<String, Record>,
        bytes: &[u8],
        entrance: Entrance<'_>,
    ) -> Result<PluginInfo, ApiError> {
        let library =
            admission::admit(bytes, entrance, &self.shadow_dir, &self.checker, 1, None).await?;
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
    /// permissions (with the record of their default grants, so a
    /// reinstall grants them again). Without it, a reinstall finds its
    /// permissions and an admin's changes to them as they were.
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
            // The permissions are gone, so are the records of their
            // default grants: a reinstall is a first install again.
            sqlx::query("DELETE FROM permission_defaults WHERE plugin = $1")
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
}
