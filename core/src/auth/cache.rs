//! The authentication cache: everything an authenticated request is
//! decided on, held in memory so the request path does no database work.
//!
//! What it holds:
//! - per user (filled on first use, one query): exists, active, token
//!   version, roles, and the permissions those roles grant, resolved
//!   through the role table below; plus the profile fields `/auth/me`
//!   shows. A missing user is remembered as missing (ids are never reused);
//! - the role table: role id -> name and granted permission names (loaded
//!   on first use, one query);
//! - revoked access-token ids and revoked sessions, each with the time
//!   after which it no longer matters (the token would have expired
//!   anyway); loaded at start from `revoked_access_tokens` and
//!   `revoked_sessions`, and dropped from memory once past.
//!
//! How it stays right:
//! - every change that affects a decision is recorded in its own
//!   transaction (see [`super::changes`]: a counter bump and a log row) and
//!   applied here by [`AuthCache::commit`] before the changing request
//!   answers, so this instance decides the very next request on the new
//!   state;
//! - a background task reads the counter every `auth.cache.poll_interval_ms`
//!   and applies what other instances logged since (or reloads everything
//!   when the log has a hole: pruned rows, or an operator's hand-made
//!   bump). Another instance therefore sees a change within one poll
//!   interval (plus the poll's own query time);
//! - if polls keep failing, a request whose cache is older than
//!   [`STALE_AFTER_POLLS`] intervals polls inline first and fails if the
//!   database cannot answer: a partitioned instance never decides on state
//!   older than that;
//! - a fill that read the database before an invalidation is not stored
//!   (see `epoch`), so a slow fill cannot bring back what a change removed.
//!
//! - API keys (see [`super::api_keys`]): key prefix -> (id, owner, secret
//!   hash, scopes, expiry, revoked), filled on first use (one query) and
//!   evicted by `Change::ApiKey`; the owner's own state is their entry in
//!   `users`. A prefix with no key is not remembered (memory would grow
//!   with every made-up prefix); the rate limiter keeps such requests in
//!   the anonymous tier.
//!
//! Direct SQL changes to these tables (by an operator) are seen once the
//! counter is bumped: `UPDATE auth_state SET version = version + 1` makes
//! every instance reload everything at its next poll.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, PoisonError, RwLock, Weak,
    },
    time::{Duration, Instant},
};

use sqlx::{Any, Row, Transaction};
use xcore_plugin_sdk::Caller;

use super::{
    api_keys::store::{self as key_store, CachedKey},
    changes::{self, Change, Since},
};
use crate::{db::Database, error::ApiError};

/// How many poll intervals a request tolerates without a successful poll
/// before it polls inline (and fails if the database cannot answer).
pub const STALE_AFTER_POLLS: u32 = 4;

/// How often expired revocations are dropped from memory.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// What the cache knows about one user.
#[derive(Debug)]
pub struct CachedUser {
    /// Email (lower-case).
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Whether the account may be used.
    pub is_active: bool,
    /// Tokens must carry this version.
    pub token_version: i64,
    /// Last successful login.
    pub last_login: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Permission names through the roles.
    pub permissions: BTreeSet<String>,
    /// The caller as plugins see it, built once: the dispatcher hands it
    /// to every plugin call of this user without copying.
    pub caller: Arc<Caller>,
}

/// One role: its name and what it grants.
#[derive(Debug)]
struct Role {
    name: String,
    permissions: Vec<String>,
}

/// In-memory answers to "who is this token's user, and may they?".
#[derive(Debug)]
pub struct AuthCache {
    db: Database,
    /// User id -> state; `None`: no such user.
    users: RwLock<HashMap<i64, Option<Arc<CachedUser>>>>,
    /// Role id -> role; `None`: to be loaded on next use.
    roles: RwLock<Option<Arc<HashMap<i64, Role>>>>,
    /// API key prefix -> key (existing keys only).
    api_keys: RwLock<HashMap<String, Arc<CachedKey>>>,
    /// Revoked `jti` -> unix seconds after which it no longer matters.
    revoked_tokens: RwLock<HashMap<String, i64>>,
    /// Revoked session id -> unix seconds after which it no longer matters.
    revoked_sessions: RwLock<HashMap<String, i64>>,
    /// Bumped (under the `users` write lock) by every invalidation. A fill
    /// notes it before reading the database and stores what it read only if
    /// it has not moved: otherwise the read may predate the change.
    epoch: AtomicU64,
    /// The database change counter applied up to.
    version: AtomicI64,
    /// Milliseconds after `started` of the last successful poll.
    synced_at_ms: AtomicU64,
    /// Milliseconds after `started` of the last sweep of revocations.
    swept_at_ms: AtomicU64,
    started: Instant,
    poll_interval: Duration,
    /// One poll at a time (the background one and inline ones).
    poll_lock: tokio::sync::Mutex<()>,
}

/// Reads through a poisoned lock: every writer leaves the maps consistent
/// at each step, so a panic elsewhere leaves nothing half-done here.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl AuthCache {
    /// An empty cache over `db`; [`Self::load`] fills what must be known
    /// from the start.
    pub fn new(db: Database, poll_interval: Duration) -> Self {
        Self {
            db,
            users: RwLock::default(),
            roles: RwLock::default(),
            api_keys: RwLock::default(),
            revoked_tokens: RwLock::default(),
            revoked_sessions: RwLock::default(),
            epoch: AtomicU64::new(0),
            version: AtomicI64::new(0),
            synced_at_ms: AtomicU64::new(0),
            swept_at_ms: AtomicU64::new(0),
            started: Instant::now(),
            poll_interval,
            poll_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads the counter and the live revocations: after this, a token
    /// revoked before a restart is refused again.
    pub async fn load(&self) -> Result<(), sqlx::Error> {
        let _poll = self.poll_lock.lock().await;
        let current = changes::current_version(self.db.pool()).await?;
        self.reload().await?;
        self.version.fetch_max(current, Ordering::AcqRel);
        self.mark_synced();
        Ok(())
    }

    /// Polls every `poll_interval` until the cache is dropped or the pool
    /// closed.
    pub fn spawn_poller(self: &Arc<Self>) {
        let cache: Weak<Self> = Arc::downgrade(self);
        let interval = self.poll_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(cache) = cache.upgrade() else { return };
                match cache.poll().await {
                    Ok(()) => {}
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(%error, "authentication cache: cannot read the change counter")
                    }
                }
                cache.sweep_if_due();
            }
        });
    }

    /// Applies what was logged since the last poll (everything is reloaded
    /// when the log has a hole).
    pub async fn poll(&self) -> Result<(), sqlx::Error> {
        let _poll = self.poll_lock.lock().await;
        let seen = self.version.load(Ordering::Acquire);
        let current = changes::current_version(self.db.pool()).await?;
        if current > seen {
            match changes::since(self.db.pool(), seen, current).await? {
                Since::Changes { version, changes } => {
                    self.apply(&changes);
                    self.version.fetch_max(version, Ordering::AcqRel);
                }
                Since::Gap => {
                    tracing::info!(
                        seen,
                        current,
                        "authentication cache: change log incomplete; reloading"
                    );
                    self.reload().await?;
                    self.version.fetch_max(current, Ordering::AcqRel);
                }
            }
        }
        self.mark_synced();
        Ok(())
    }

    /// Records `changes` at the end of `tx`, commits, and applies them
    /// here before returning: the one way a decision-changing transaction
    /// ends.
    pub async fn commit(
        &self,
        mut tx: Transaction<'static, Any>,
        changes: &[Change],
    ) -> Result<(), sqlx::Error> {
        changes::record(&mut tx, changes).await?;
        tx.commit().await?;
        self.apply(changes);
        Ok(())
    }

    /// Applies changes to this instance's cache (idempotent: a change
    /// applied after its commit is applied again when the poll reads it).
    pub fn apply(&self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::User(id) => {
                    let mut users = write(&self.users);
                    self.epoch.fetch_add(1, Ordering::AcqRel);
                    users.remove(id);
                }
                Change::Grants => self.forget_grants(),
                Change::ApiKey(prefix) => {
                    let mut keys = write(&self.api_keys);
                    self.epoch.fetch_add(1, Ordering::AcqRel);
                    keys.remove(prefix);
                }
                Change::AccessToken { jti, expires_at } => {
                    write(&self.revoked_tokens).insert(jti.clone(), *expires_at);
                }
                Change::Session { id, expires_at } => {
                    let mut sessions = write(&self.revoked_sessions);
                    let until = sessions.entry(id.clone()).or_insert(*expires_at);
                    *until = (*until).max(*expires_at);
                }
            }
        }
    }

    /// Forgets every user and the role table (both load again on use).
    fn forget_grants(&self) {
        let mut users = write(&self.users);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        users.clear();
        *write(&self.roles) = None;
    }

    /// Reloads everything: revocations are merged (a revocation is never
    /// undone, and one applied while this ran must survive it), users and
    /// roles are dropped to be loaded again.
    async fn reload(&self) -> Result<(), sqlx::Error> {
        let now = crate::db::timestamp::now();
        for (sql, set) in [
            (
                "SELECT jti AS id, expires_at FROM revoked_access_tokens WHERE expires_at > $1",
                &self.revoked_tokens,
            ),
            (
                "SELECT session_id AS id, expires_at FROM revoked_sessions WHERE expires_at > $1",
                &self.revoked_sessions,
            ),
        ] {
            let rows = sqlx::query(sql)
                .bind(&now)
                .fetch_all(self.db.pool())
                .await?;
            let mut loaded = Vec::with_capacity(rows.len());
            for row in &rows {
                let expires_at: String = row.try_get("expires_at")?;
                let until = chrono::DateTime::parse_from_rfc3339(&expires_at)
                    .map(|at| at.timestamp())
                    // An unreadable expiry: keep it for the longest any
                    // token could live.
                    .unwrap_or(i64::MAX);
                loaded.push((row.try_get::<String, _>("id")?, until));
            }
            let mut set = write(set);
            for (id, until) in loaded {
                let entry = set.entry(id).or_insert(until);
                *entry = (*entry).max(until);
            }
        }
        self.forget_grants();
        let mut keys = write(&self.api_keys);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        keys.clear();
        Ok(())
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_synced(&self) {
        self.synced_at_ms
            .fetch_max(self.elapsed_ms(), Ordering::AcqRel);
    }

    /// Polls inline when the background poll has not succeeded for
    /// [`STALE_AFTER_POLLS`] intervals; the bound on how old the state a
    /// request is decided on can be.
    pub async fn ensure_fresh(&self) -> Result<(), ApiError> {
        let limit = self.poll_interval.as_millis() * u128::from(STALE_AFTER_POLLS);
        let age = self
            .elapsed_ms()
            .saturating_sub(self.synced_at_ms.load(Ordering::Acquire));
        if u128::from(age) > limit {
            self.poll().await?;
        }
        Ok(())
    }

    /// Drops revocations whose tokens have expired anyway.
    fn sweep_if_due(&self) {
        let now_ms = self.elapsed_ms();
        let last = self.swept_at_ms.load(Ordering::Acquire);
        if u128::from(now_ms.saturating_sub(last)) < SWEEP_INTERVAL.as_millis() {
            return;
        }
        self.swept_at_ms.store(now_ms, Ordering::Release);
        let now = unix_now();
        write(&self.revoked_tokens).retain(|_, until| *until >= now);
        write(&self.revoked_sessions).retain(|_, until| *until >= now);
    }

    /// Whether the access token `jti` was revoked.
    pub fn is_token_revoked(&self, jti: &str) -> bool {
        read(&self.revoked_tokens).contains_key(jti)
    }

    /// Whether the session `sid` was revoked.
    pub fn is_session_revoked(&self, sid: &str) -> bool {
        read(&self.revoked_sessions).contains_key(sid)
    }

    /// The user `id`, from memory or (first use) the database; `None` if
    /// there is no such user.
    pub async fn user(&self, id: i64) -> Result<Option<Arc<CachedUser>>, sqlx::Error> {
        if let Some(known) = read(&self.users).get(&id) {
            return Ok(known.clone());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let epoch = self.epoch.load(Ordering::Acquire);
            let roles = self.roles(epoch).await?;
            let rows = sqlx::query(
                "SELECT u.email, u.full_name, u.is_active, u.token_version, u.last_login,
                        u.created_at, ur.role_id
                 FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id
                 WHERE u.id = $1",
            )
            .bind(id)
            .fetch_all(self.db.pool())
            .await?;
            // Past a few attempts (roles created that fast), a role the
            // table lacks grants nothing rather than loop on.
            let Some(user) = resolve(id, &rows, &roles, attempt < 3)? else {
                // The user holds a role the table does not know: it was
                // created after the table was read (its change may not
                // have been polled yet). Read both again.
                self.forget_grants();
                continue;
            };
            let mut users = write(&self.users);
            if self.epoch.load(Ordering::Acquire) == epoch {
                users.insert(id, user.clone());
            }
            return Ok(user);
        }
    }

    /// The API key with `prefix`, from memory or (first use) the database;
    /// `None` if there is none.
    pub async fn api_key(&self, prefix: &str) -> Result<Option<Arc<CachedKey>>, sqlx::Error> {
        if let Some(key) = self.cached_api_key(prefix) {
            return Ok(Some(key));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(key) = key_store::load(&self.db, prefix).await?.map(Arc::new) else {
            return Ok(None);
        };
        // Stored only if nothing was invalidated since the read began: a
        // revocation committed meanwhile must not be undone by this fill.
        let mut keys = write(&self.api_keys);
        if self.epoch.load(Ordering::Acquire) == epoch {
            keys.insert(prefix.to_string(), key.clone());
        }
        Ok(Some(key))
    }

    /// The API key with `prefix` if it is in memory; never reads the
    /// database.
    pub fn cached_api_key(&self, prefix: &str) -> Option<Arc<CachedKey>> {
        read(&self.api_keys).get(prefix).cloned()
    }

    /// The role table, loaded when missing. Stored only if no invalidation
    /// happened since `epoch` was read.
    async fn roles(&self, epoch: u64) -> Result<Arc<HashMap<i64, Role>>, sqlx::Error> {
        if let Some(roles) = read(&self.roles).as_ref() {
            return Ok(roles.clone());
        }
        let rows = sqlx::query(
            "SELECT r.id, r.name, p.name AS permission FROM roles r
             LEFT JOIN role_permissions rp ON rp.role_id = r.id
             LEFT JOIN permissions p ON p.id = rp.permission_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut roles: HashMap<i64, Role> = HashMap::new();
        for row in &rows {
            let role = roles.entry(row.try_get("id")?).or_insert_with(|| Role {
                name: String::new(),
                permissions: Vec::new(),
            });
            role.name = row.try_get("name")?;
            if let Some(permission) = row.try_get::<Option<String>, _>("permission")? {
                role.permissions.push(permission);
            }
        }
        let roles = Arc::new(roles);
        // Same lock order as every invalidation: users, then roles.
        let users = write(&self.users);
        if self.epoch.load(Ordering::Acquire) == epoch {
            *write(&self.roles) = Some(roles.clone());
        }
        drop(users);
        Ok(roles)
    }
}

/// Builds a user from its rows (one per role) and the role table: `None`
/// when a role is missing from the table, `Some(None)` when there is no
/// such user.
#[allow(clippy::option_option)]
fn resolve(
    id: i64,
    rows: &[sqlx::any::AnyRow],
    roles: &HashMap<i64, Role>,
    strict: bool,
) -> Result<Option<Option<Arc<CachedUser>>>, sqlx::Error> {
    let Some(first) = rows.first() else {
        return Ok(Some(None));
    };
    let (mut role_names, mut permissions) = (BTreeSet::new(), BTreeSet::new());
    for row in rows {
        let Some(role_id) = row.try_get::<Option<i64>, _>("role_id")? else {
            continue;
        };
        let Some(role) = roles.get(&role_id) else {
            if strict {
                return Ok(None);
            }
            continue;
        };
        role_names.insert(role.name.clone());
        permissions.extend(role.permissions.iter().cloned());
    }
    let email: String = first.try_get("email")?;
    Ok(Some(Some(Arc::new(CachedUser {
        caller: Arc::new(Caller {
            user_id: id,
            email: email.clone(),
            permissions: permissions.iter().cloned().collect(),
        }),
        email,
        full_name: first.try_get("full_name")?,
        is_active: crate::db::flag(first, "is_active")?,
        token_version: first.try_get("token_version")?,
        last_login: first.try_get("last_login")?,
        created_at: first.try_get("created_at")?,
        roles: role_names,
        permissions,
    }))))
}
