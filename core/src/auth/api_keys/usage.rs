//! `last_used_at`, off the request path.
//!
//! A keyed request only notes "key N used at T" in memory (one short lock,
//! no database work); a background task writes what was noted every
//! `auth.api_keys.last_used_flush_secs` (default 60), one UPDATE per key
//! used since the last flush, so a key used a thousand times a minute
//! costs one write a minute. The owner's list shows this instance's
//! unflushed times at once; other instances see them after the flush. A
//! crash loses at most one interval of times; a clean stop flushes.
//!
//! Each flush also writes one `api_key.used` row per key flushed to the
//! audit log (the owner, the latest use): the log shows a key's use once a
//! flush interval, not once a request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use crate::{
    audit,
    db::{timestamp, Database},
};

/// Key id -> its latest use, not yet written.
#[derive(Debug, Default)]
pub struct Usage {
    pending: Mutex<HashMap<i64, Use>>,
}

/// The latest use of a key: when, and whose key it is (for the audit row).
#[derive(Clone, Debug)]
struct Use {
    /// Unix seconds.
    at: i64,
    owner: i64,
    owner_email: Arc<str>,
}

impl Usage {
    /// Notes that key `id`, owned by `owner`, was used now.
    pub fn record(&self, id: i64, owner: i64, owner_email: &str) {
        let now = chrono::Utc::now().timestamp();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(&id) {
            Some(noted) => noted.at = now,
            None => {
                pending.insert(
                    id,
                    Use {
                        at: now,
                        owner,
                        // Copied once a flush interval, not per request.
                        owner_email: owner_email.into(),
                    },
                );
            }
        }
    }

    /// The unflushed latest use of key `id`, formatted.
    pub fn pending(&self, id: i64) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .map(|noted| timestamp::from_unix(noted.at))
    }

    /// Writes what was noted; on failure the times go back to be tried at
    /// the next flush (unless a newer use replaced them meanwhile).
    pub async fn flush(&self, db: &Database) -> Result<(), sqlx::Error> {
        let taken: Vec<(i64, Use)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        let formatted: Vec<(i64, String)> = taken
            .iter()
            .map(|(id, noted)| (*id, timestamp::from_unix(noted.at)))
            .collect();
        let written = super::store::write_last_used(db, &formatted).await;
        if written.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, noted) in taken {
                pending.entry(id).or_insert(noted);
            }
            return written;
        }
        for ((id, noted), (_, at)) in taken.iter().zip(&formatted) {
            let entry = audit::Entry::new(
                audit::Actor::User {
                    id: noted.owner,
                    email: &noted.owner_email,
                },
                audit::API_KEY_USED,
            )
            .target("api_key", id)
            .details(serde_json::json!({ "last_used_at": at }));
            audit::record(db, &entry).await;
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
