//! Enable, disable (cascading to dependents), quarantine and reload.

use std::collections::BTreeMap;

use serde_json::json;

use crate::plugins::dependencies::{self, Node};
use crate::{db::timestamp, error::ApiError};

use super::{activation::neighbours, plugin_error, PluginInfo, PluginManager, Record};

impl PluginManager {
    pub(super) fn ids_depending_on(
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

    pub(super) async fn set_enabled(
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

    /// Loads the plugin's file again as a new generation and swaps it in;
    /// in-flight requests finish on the old one. On failure the old
    /// generation keeps serving and the error is kept and published.
    pub async fn reload(&self, id: &str) -> Result<PluginInfo, ApiError> {
        let mut records = self.records.lock().await;
        let record = records
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("plugin {id} not found")))?;
        let (file, number) = (record.file.clone(), record.generation + 1);
        let proven = record
            .live
            .as_ref()
            .map(|live| live.library().checksum.clone());
        let neighbours = neighbours(&records, false);
        let (seen, admitted) = self
            .read_library(id, &file, number, proven.as_deref())
            .await;
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
