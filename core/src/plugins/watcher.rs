//! Hot reload from the plugins directory: a new `libxcore_plugin_<id>.so`
//! installs, a changed one reloads, a removed one uninstalls (data kept).
//!
//! File events are only hints. The watcher acts on a path once it has been
//! quiet for the settle time and its size and modification time are the
//! same at two looks, so a copy in progress is never loaded (operators
//! should still deploy with write-then-rename). Files whose content matches
//! what was last handled (loaded, or refused) are left alone, which makes
//! the manager's own writes (an install writing its file) no-ops and
//! reports a refused file once, until it changes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{
    library::checksum,
    manager::{id_of_file, PluginManager},
};
use crate::audit::{self, Actor, Entry};

/// How often pending paths are looked at.
const TICK: Duration = Duration::from_millis(100);

/// Keeps the OS watch alive; dropping it stops watching.
pub struct DirectoryWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirectoryWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for DirectoryWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectoryWatcher")
    }
}

/// Size and modification time: the "has it stopped changing" fingerprint.
fn fingerprint(path: &Path) -> Option<(u64, SystemTime)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

/// Starts watching `dir` (created if missing) on behalf of `manager`.
pub fn watch(
    dir: &Path,
    manager: &Arc<PluginManager>,
    settle: Duration,
) -> anyhow::Result<DirectoryWatcher> {
    std::fs::create_dir_all(dir)?;
    let (sender, mut events) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                // The receiver only goes away when the watcher is dropped.
                let _ = sender.send(path);
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let manager = Arc::downgrade(manager);
    let task = tokio::spawn(async move {
        // path -> (last event, fingerprint at the last look)
        let mut pending: BTreeMap<PathBuf, (Instant, Option<(u64, SystemTime)>)> = BTreeMap::new();
        let mut ticker = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(path) => {
                        let is_plugin = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| id_of_file(n).is_some());
                        if is_plugin {
                            pending.insert(path.clone(), (Instant::now(), fingerprint(&path)));
                        }
                    }
                    None => return,
                },
                _ = ticker.tick() => {
                    let Some(manager) = manager.upgrade() else { return };
                    let settled: Vec<PathBuf> = pending
                        .iter_mut()
                        .filter_map(|(path, (last_event, seen))| {
                            if last_event.elapsed() < settle {
                                return None;
                            }
                            let now = fingerprint(path);
                            if now == *seen {
                                Some(path.clone())
                            } else {
                                // Still changing: look again after another settle time.
                                *seen = now;
                                *last_event = Instant::now();
                                None
                            }
                        })
                        .collect();
                    for path in settled {
                        pending.remove(&path);
                        apply(&manager, &path).await;
                    }
                }
            }
        }
    });
    Ok(DirectoryWatcher {
        _watcher: watcher,
        task,
    })
}

/// Brings the manager in line with one settled file.
async fn apply(manager: &PluginManager, path: &Path) {
    let Some(id) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(id_of_file)
    else {
        return;
    };
    let handled = manager.handled_checksum(id).await;
    let outcome = match std::fs::read(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => match handled {
            Some(_) => manager.uninstall(id, false).await.map(|()| "uninstalled"),
            None => return,
        },
        Err(error) => {
            tracing::warn!(plugin = id, %error, "cannot read a changed plugin file");
            return;
        }
        Ok(bytes) => match handled {
            // Loaded or refused already: only a change is acted on, so a
            // refused file is reported once, not at every event.
            Some(Some(seen)) if seen == checksum(&bytes) => return,
            Some(_) => manager.reload(id).await.map(|_| "reloaded"),
            None => manager.adopt(id, path, &bytes).await.map(|_| "installed"),
        },
    };
    match outcome {
        Ok(action) => {
            tracing::info!(plugin = id, action, "plugin directory change applied");
            let action = match action {
                "uninstalled" => audit::PLUGIN_UNINSTALLED,
                "reloaded" => audit::PLUGIN_RELOADED,
                _ => audit::PLUGIN_INSTALLED,
            };
            audit::record(
                manager.database(),
                &Entry::new(Actor::System, action)
                    .target("plugin", id)
                    .details(serde_json::json!({"source": "watcher"})),
            )
            .await;
        }
        // The manager already recorded and published the failure.
        Err(error) => tracing::warn!(
            plugin = id,
            error = error.message(),
            "plugin directory change refused"
        ),
    }
}
