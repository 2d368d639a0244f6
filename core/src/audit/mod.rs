//! The audit log: who did what, to what, from where and when, for operators
//! to query at `GET /admin/audit` (permission `audit:read`, see [`routes`]).
//!
//! What is recorded (the `action` names below): logins, failed logins (with
//! the email tried and the client address), logouts, password changes and
//! resets, user, role and permission changes, plugin lifecycle changes
//! (by a user through the API, or by `system`: the directory watcher),
//! accounts made with `xcore admin create-user` (by `system`),
//! task changes, and API keys (see [`api_key`]).
//!
//! How a row is written:
//! - Where the change runs in a transaction of its own (authentication and
//!   RBAC changes), [`record_in`] writes the row in that transaction: the row
//!   exists exactly when the change committed, and a failure to write it
//!   fails the change, which the client sees as a 500 with nothing changed.
//! - Where it does not (failed logins, which change nothing; plugin and task
//!   changes, whose state lives behind the plugin manager and the
//!   scheduler), [`record`] inserts the row after the change succeeded. A
//!   failure is logged (the action and the database error, nothing of the
//!   entry's details) and does not turn a done change into an error: the
//!   client would retry a change that already happened.
//!
//! Secrets are never written: callers pass no passwords, tokens or keys, and
//! [`Entry::details`] is scrubbed of any key that names one anyway.
//!
//! Growth: failed logins are the one thing an anonymous client can make the
//! log record at will. `POST /auth/login` is limited per client address
//! (`rate_limits.auth_per_minute`, 5 by default: at most 7,200 rows a day
//! per address), and the built-in task `prune_audit_log` deletes rows older
//! than `audit.retention_days` every day.

mod caller;
pub mod routes;

pub use caller::Audited;

use std::net::IpAddr;

use serde_json::{Map, Value};
use sqlx::{any::AnyArguments, query::Query, Any, Transaction};

use crate::db::{timestamp, Database};

/// Successful login.
pub const LOGIN: &str = "auth.login";
/// Refused login: unknown email, wrong password or deactivated account
/// (`details.reason`).
pub const LOGIN_FAILED: &str = "auth.login_failed";
/// Logout.
pub const LOGOUT: &str = "auth.logout";
/// A user changed their own password.
pub const PASSWORD_CHANGED: &str = "auth.password_changed";
/// A password reset was asked for (whether or not the account exists).
pub const PASSWORD_RESET_REQUESTED: &str = "auth.password_reset_requested";
/// A password was set with a reset token.
pub const PASSWORD_RESET_COMPLETED: &str = "auth.password_reset_completed";
/// Self-registration.
pub const USER_REGISTERED: &str = "user.registered";
/// An administrator created an account.
pub const USER_CREATED: &str = "user.created";
/// An account was activated.
pub const USER_ACTIVATED: &str = "user.activated";
/// An account was deactivated.
pub const USER_DEACTIVATED: &str = "user.deactivated";
/// A role was given to a user.
pub const USER_ROLE_ASSIGNED: &str = "user.role_assigned";
/// A role was taken from a user.
pub const USER_ROLE_REMOVED: &str = "user.role_removed";
/// A role was created.
pub const ROLE_CREATED: &str = "role.created";
/// A role was renamed or re-described.
pub const ROLE_UPDATED: &str = "role.updated";
/// A role was deleted.
pub const ROLE_DELETED: &str = "role.deleted";
/// A permission was granted to a role.
pub const ROLE_PERMISSION_GRANTED: &str = "role.permission_granted";
/// A permission was revoked from a role.
pub const ROLE_PERMISSION_REVOKED: &str = "role.permission_revoked";
/// A permission was created through the API.
pub const PERMISSION_CREATED: &str = "permission.created";
/// An API key was created.
pub const API_KEY_CREATED: &str = "api_key.created";
/// An API key was revoked.
pub const API_KEY_REVOKED: &str = "api_key.revoked";
/// An API key authenticated a request.
pub const API_KEY_USED: &str = "api_key.used";
/// A plugin was installed.
pub const PLUGIN_INSTALLED: &str = "plugin.installed";
/// A plugin was enabled.
pub const PLUGIN_ENABLED: &str = "plugin.enabled";
/// A plugin was disabled.
pub const PLUGIN_DISABLED: &str = "plugin.disabled";
/// A plugin's library was loaded again.
pub const PLUGIN_RELOADED: &str = "plugin.reloaded";
/// A plugin was uninstalled.
pub const PLUGIN_UNINSTALLED: &str = "plugin.uninstalled";
/// A task was created.
pub const TASK_CREATED: &str = "task.created";
/// A task was changed.
pub const TASK_UPDATED: &str = "task.updated";
/// A task was deleted.
pub const TASK_DELETED: &str = "task.deleted";
/// A task was run by hand.
pub const TASK_RUN: &str = "task.run";
/// A task was paused.
pub const TASK_PAUSED: &str = "task.paused";
/// A task was resumed.
pub const TASK_RESUMED: &str = "task.resumed";

/// The `actor` of rows the host writes on its own (the plugin watcher,
/// `xcore admin create-user`).
pub const SYSTEM_ACTOR: &str = "system";

/// Longest `actor` text kept: an email's maximum length. A failed login's
/// email is whatever the client sent, so it is cut to this.
const MAX_ACTOR_CHARS: usize = 254;

/// Keys of [`Entry::details`] that would hold a secret: scrubbed.
const SECRET_WORDS: &[&str] = &["password", "token", "secret", "hash"];

/// Who acted.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// An authenticated user.
    User {
        /// User id.
        id: i64,
        /// Their email.
        email: &'a str,
    },
    /// Someone not authenticated naming an account: the email a failed
    /// login or a reset request gave (an account may or may not have it).
    Claimed(&'a str),
    /// The host itself: the plugin watcher, the command line.
    System,
}

impl<'a> From<&'a crate::auth::AuthUser> for Actor<'a> {
    fn from(user: &'a crate::auth::AuthUser) -> Self {
        Self::User {
            id: user.id,
            email: &user.email,
        }
    }
}

impl Actor<'_> {
    fn id(&self) -> Option<i64> {
        match self {
            Self::User { id, .. } => Some(*id),
            Self::Claimed(_) | Self::System => None,
        }
    }

    fn name(&self) -> String {
        match self {
            Self::User { email, .. } | Self::Claimed(email) => {
                email.trim().chars().take(MAX_ACTOR_CHARS).collect()
            }
            Self::System => SYSTEM_ACTOR.to_string(),
        }
    }
}

/// One audit row to write.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// Who acted.
    pub actor: Actor<'a>,
    /// One of the action constants of this module.
    pub action: &'static str,
    /// What was acted on, as `kind:id` (`user:7`, `plugin:hello`).
    pub target: Option<String>,
    /// The client address, for acts that came through HTTP.
    pub ip: Option<IpAddr>,
    /// Non-secret particulars (a JSON object, or `null` for none).
    pub details: Value,
}

impl<'a> Entry<'a> {
    /// An entry with no target, address or details.
    pub fn new(actor: Actor<'a>, action: &'static str) -> Self {
        Self {
            actor,
            action,
            target: None,
            ip: None,
            details: Value::Null,
        }
    }

    /// Sets the target (`kind:id`).
    pub fn target(mut self, kind: &str, id: impl std::fmt::Display) -> Self {
        self.target = Some(format!("{kind}:{id}"));
        self
    }

    /// Sets the client address.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Sets the particulars.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// The entry for an API-key act: `action` is [`API_KEY_CREATED`],
/// [`API_KEY_REVOKED`] or [`API_KEY_USED`]; the key is named by its id only,
/// never by its secret. `api_key.used` is meant for the first use of a key
/// in a while (say when its `last_used_at` moves by a minute or more), not
/// every request: one row per request would drown the rest of the log.
pub fn api_key<'a>(actor: Actor<'a>, action: &'static str, key_id: i64, ip: IpAddr) -> Entry<'a> {
    debug_assert!(
        [API_KEY_CREATED, API_KEY_REVOKED, API_KEY_USED].contains(&action),
        "{action} is not an API-key action"
    );
    Entry::new(actor, action).target("api_key", key_id).ip(ip)
}

/// `details` with every key naming a secret (at any depth) replaced.
fn scrub(details: &Value) -> Value {
    match details {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let lower = key.to_ascii_lowercase();
                    if SECRET_WORDS.iter().any(|word| lower.contains(word)) {
                        (key.clone(), Value::String("[redacted]".into()))
                    } else {
                        (key.clone(), scrub(value))
                    }
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(scrub).collect()),
        other => other.clone(),
    }
}

const INSERT: &str =
    "INSERT INTO audit_log (created_at, actor_id, actor, action, target, ip, details)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

fn details_text(entry: &Entry<'_>) -> String {
    match &entry.details {
        Value::Null => "{}".to_string(),
        details => scrub(details).to_string(),
    }
}

/// The insert of `entry`, stamped now.
fn insert<'q>(entry: &'q Entry<'_>) -> Query<'q, Any, AnyArguments<'q>> {
    sqlx::query(INSERT)
        .bind(timestamp::now())
        .bind(entry.actor.id())
        .bind(entry.actor.name())
        .bind(entry.action)
        .bind(entry.target.as_deref())
        .bind(entry.ip.map(|ip| ip.to_string()))
        .bind(details_text(entry))
}

/// Writes `entry` inside `tx`, the transaction of the change it records.
pub async fn record_in(
    tx: &mut Transaction<'_, Any>,
    entry: &Entry<'_>,
) -> Result<(), sqlx::Error> {
    insert(entry).execute(&mut **tx).await?;
    Ok(())
}

/// Writes `entry` on its own, after the act succeeded; a failure is logged
/// and swallowed (see the module docs for why).
pub async fn record(db: &Database, entry: &Entry<'_>) {
    let written = insert(entry).execute(db.pool()).await;
    if let Err(error) = written {
        // The action and target only: the details and the actor's email
        // are the log's business, not the server log's.
        tracing::error!(
            action = entry.action,
            target = entry.target.as_deref().unwrap_or("-"),
            %error,
            "cannot write an audit-log row"
        );
    }
}

/// Deletes the rows older than `days` days; how many went.
pub async fn prune(db: &Database, days: u32) -> Result<u64, sqlx::Error> {
    let horizon = timestamp::format(chrono::Utc::now() - chrono::Duration::days(i64::from(days)));
    Ok(sqlx::query("DELETE FROM audit_log WHERE created_at < $1")
        .bind(horizon)
        .execute(db.pool())
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_are_scrubbed_at_any_depth() {
        let scrubbed = scrub(&json!({
            "role": "manager",
            "new_password": "hunter2",
            "nested": {"refresh_token": "abc", "ok": 1},
            "list": [{"clientSecret": "x"}],
        }));
        assert_eq!(
            scrubbed,
            json!({
                "role": "manager",
                "new_password": "[redacted]",
                "nested": {"refresh_token": "[redacted]", "ok": 1},
                "list": [{"clientSecret": "[redacted]"}],
            })
        );
    }

    #[test]
    fn claimed_names_are_cut_to_an_email_length() {
        let long = "a".repeat(1000);
        assert_eq!(Actor::Claimed(&long).name().len(), MAX_ACTOR_CHARS);
        assert_eq!(Actor::System.name(), "system");
        assert_eq!(
            Actor::User {
                id: 3,
                email: "a@b.c"
            }
            .id(),
            Some(3)
        );
    }
}
