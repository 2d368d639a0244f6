//! `last_used_at`, off the request path.
//!
//! A keyed request only notes "key N used at T" in memory (one short lock,
//! no database work); a background task writes what was noted every
//! `auth.api_keys.last_used_flush_secs` (default 60), one UPDATE per key
//! used since the last flush, so a key used a thousand times a minute
//! costs one write a minute. The owner's list shows this instance's
//! unflushed times at once; other instances see them after the flush. A
//! crash loses at most one interval of times; a clean stop flushes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use crate::db::{timestamp, Database};

/// Key id -> unix seconds of its latest use, not yet written.
#[derive(Debug, Default)]
pub struct Usage {
    pending: Mutex<HashMap<i64, i64>>,
}

impl Usage {
    /// Notes that key `id` was used now.
    pub fn record(&self, id: i64) {
        let now = chrono::Utc::now().timestamp();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, now);
    }

    /// The unflushed latest use of key `id`, formatted.
    pub fn pending(&self, id: i64) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .map(|at| timestamp::from_unix(*at))
    }

    /// Writes what was noted; on failure the times go back to be tried at
    /// the next flush (unless a newer use replaced them meanwhile).
    pub async fn flush(&self, db: &Database) -> Result<(), sqlx::Error> {
        let taken: Vec<(i64, i64)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        let formatted: Vec<(i64, String)> = taken
            .iter()
            .map(|(id, at)| (*id, timestamp::from_unix(*at)))
            .collect();
        let written = super::store::write_last_used(db, &formatted).await;
        if written.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, at) in taken {
                pending.entry(id).or_insert(at);
            }
        }
        written
    }

    /// Flushes every `interval` until `usage` is dropped or the pool closed.
    pub fn spawn_flusher(usage: &Arc<Self>, db: Database, interval: Duration) {
        let usage: Weak<Self> = Arc::downgrade(usage);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate and there is nothing to write yet.
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(usage) = usage.upgrade() else { return };
                match usage.flush(&db).await {
                    Ok(()) => {}
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(%error, "API keys: cannot write last_used_at")
                    }
                }
            }
        });
    }
}
