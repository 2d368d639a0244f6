//! Changes that affect authentication or authorization decisions, as the
//! database records them for every instance's cache (see [`super::cache`]).
//!
//! A transaction that changes a decision calls [`record`] as its last step
//! (through [`super::cache::AuthCache::commit`], which also applies the
//! change to this instance's cache once committed). `record` bumps the one
//! counter row `auth_state.version` and logs each change under the new
//! version in `auth_changes`. The counter is taken last on purpose: its row
//! lock is held until the commit, so versions commit in order (an instance
//! polling `version > last seen` never skips a change that commits late),
//! and ending every lock order with the same row cannot deadlock.

use sqlx::{Any, Row, Transaction};

use crate::db::timestamp;

/// One change to what a request may be decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A user's state changed: existence, active flag, token version,
    /// roles, or profile fields `/auth/me` shows (last login).
    User(i64),
    /// Roles, permissions or grants changed (a grant or revoke, a role
    /// renamed or deleted, a permission registered or removed).
    Grants,
    /// An access token id was revoked; it matters until `expires_at`
    /// (unix seconds), when the token would have expired anyway.
    AccessToken {
        /// The token's `jti`.
        jti: String,
        /// Unix seconds.
        expires_at: i64,
    },
    /// A session (refresh family) was revoked; its access tokens matter
    /// until `expires_at` (unix seconds).
    Session {
        /// The family id, the access tokens' `sid`.
        id: String,
        /// Unix seconds.
        expires_at: i64,
    },
    /// An API key changed (created, revoked): the cache forgets the entry
    /// of this key prefix and reads it again on next use.
    ApiKey(String),
}

impl Change {
    fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Grants => "grants",
            Self::AccessToken { .. } => "jti",
            Self::Session { .. } => "session",
            Self::ApiKey(_) => "api_key",
        }
    }

    fn subject(&self) -> String {
        match self {
            Self::User(id) => id.to_string(),
            Self::Grants => String::new(),
            Self::AccessToken { jti, .. } => jti.clone(),
            Self::Session { id, .. } => id.clone(),
            Self::ApiKey(prefix) => prefix.clone(),
        }
    }

    fn expires_at(&self) -> Option<i64> {
        match self {
            Self::AccessToken { expires_at, .. } | Self::Session { expires_at, .. } => {
                Some(*expires_at)
            }
            Self::User(_) | Self::Grants | Self::ApiKey(_) => None,
        }
    }

    /// Reads a logged change back; `None` for a kind this build does not
    /// know (a newer instance wrote it), which makes the reader reload
    /// everything rather than guess.
    fn from_parts(kind: &str, subject: String, expires_at: Option<i64>) -> Option<Self> {
        Some(match kind {
            "user" => Self::User(subject.parse().ok()?),
            "grants" => Self::Grants,
            "jti" => Self::AccessToken {
                jti: subject,
                expires_at: expires_at?,
            },
            "session" => Self::Session {
                id: subject,
                expires_at: expires_at?,
            },
            "api_key" => Self::ApiKey(subject),
            _ => return None,
        })
    }
}

/// Bumps the change counter and logs `changes` under the new version,
/// inside `tx`. Must be the transaction's last statements (see the module
/// docs); returns the new version.
pub async fn record(tx: &mut Transaction<'_, Any>, changes: &[Change]) -> Result<i64, sqlx::Error> {
    let version: i64 =
        sqlx::query("UPDATE auth_state SET version = version + 1 WHERE id = 1 RETURNING version")
            .fetch_one(&mut **tx)
            .await?
            .try_get("version")?;
    let now = timestamp::now();
    for change in changes {
        sqlx::query(
            "INSERT INTO auth_changes (version, kind, subject, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version)
        .bind(change.kind())
        .bind(change.subject())
        .bind(change.expires_at())
        .bind(&now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(version)
}

/// The database's change counter.
pub async fn current_version(pool: &sqlx::AnyPool) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT version FROM auth_state WHERE id = 1")
        .fetch_one(pool)
        .await?
        .try_get("version")
}

/// What a poll found after `seen`.
#[derive(Debug)]
pub enum Since {
    /// Every change of versions `seen + 1 ..= version`, in order.
    Changes {
        /// The newest version covered.
        version: i64,
        /// The changes, oldest first.
        changes: Vec<Change>,
    },
    /// Some version in between left no (readable) log: pruned, bumped by
    /// hand, or written by a newer build. Reload everything.
    Gap,
}

/// The changes logged after version `seen`, up to at least `current`.
pub async fn since(pool: &sqlx::AnyPool, seen: i64, current: i64) -> Result<Since, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT version, kind, subject, expires_at FROM auth_changes
         WHERE version > $1 ORDER BY version, id",
    )
    .bind(seen)
    .fetch_all(pool)
    .await?;
    // Versions commit in order (module docs), so what is visible is a
    // prefix; any hole means rows are missing, not late.
    let mut last = seen;
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let version: i64 = row.try_get("version")?;
        if version != last && version != last + 1 {
            return Ok(Since::Gap);
        }
        last = version;
        let kind: String = row.try_get("kind")?;
        match Change::from_parts(&kind, row.try_get("subject")?, row.try_get("expires_at")?) {
            Some(change) => changes.push(change),
            None => return Ok(Since::Gap),
        }
    }
    if last < current {
        return Ok(Since::Gap);
    }
    Ok(Since::Changes {
        version: last,
        changes,
    })
}

/// Forgets log rows older than `before` (a timestamp). An instance that
/// had not read them yet finds a gap and reloads everything.
pub async fn prune(tx: &mut Transaction<'_, Any>, before: &str) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM auth_changes WHERE created_at < $1")
            .bind(before)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_as_written() {
        for change in [
            Change::User(42),
            Change::Grants,
            Change::AccessToken {
                jti: "j".into(),
                expires_at: 7,
            },
            Change::Session {
                id: "s".into(),
                expires_at: 9,
            },
            Change::ApiKey("0123abcd".into()),
        ] {
            assert_eq!(
                Change::from_parts(change.kind(), change.subject(), change.expires_at()),
                Some(change)
            );
        }
        assert_eq!(Change::from_parts("webhook", "1".into(), None), None);
        assert_eq!(Change::from_parts("user", "x".into(), None), None);
    }
}
