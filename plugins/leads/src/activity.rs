//! The plugin's activity log (seed 004, "Logs"): what the plugin did,
//! written by every part into `leads_activity`.
//!
//! - `GET /logs`: everything, newest first (`level`, `kind` filters).
//! - `GET /logs/agents`: the agents' lines; `GET /logs/errors`: errors.
//!
//! The seed's `/logs/auth` is the host's: logins, refreshes and
//! revocations are the host's records, which it does not hand to plugins;
//! the README points there instead of this plugin copying them.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

use crate::{json_text, Leads, READ};

/// Writes one activity line; a failure is logged by the host, never
/// returned (the work it describes is done).
pub fn record(
    host: &Host,
    level: &str,
    kind: &str,
    message: &str,
    subject_id: Option<i64>,
    data: Value,
) {
    if let Err(error) = host.execute(
        "INSERT INTO leads_activity (level, kind, message, subject_id, data, created_at) \
         VALUES ($1, $2, $3, CAST($4 AS BIGINT), $5, $6)",
        params![
            level,
            kind,
            message,
            crate::nullable(subject_id),
            data.to_string(),
            now()
        ],
    ) {
        host.warn(
            "cannot record leads activity",
            json!({"message": message, "error": error.to_string()}),
        );
    }
}

/// One activity line.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ActivityLine {
    /// Id.
    pub id: i64,
    /// `info`, `warning` or `error`.
    pub level: String,
    /// `lead`, `campaign`, `delivery`, `agent`, `webhook`, `import`, `settings`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// The row it is about.
    pub subject_id: Option<i64>,
    /// Details.
    #[serde(deserialize_with = "json_text::read")]
    #[schema(value_type = Object)]
    pub data: Value,
    /// When.
    pub created_at: String,
}

/// `GET /logs` filters.
#[derive(Deserialize, ToSchema, Default)]
pub struct LogFilter {
    /// `info`, `warning` or `error`.
    level: Option<String>,
    /// The part that wrote it.
    kind: Option<String>,
}

impl Leads {
    fn lines(&self, window: Window, filter: LogFilter) -> Result<ListBody<ActivityLine>, Response> {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [("level", filter.level), ("kind", filter.kind)] {
            if let Some(value) = value {
                values.push(Value::from(value));
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, level, kind, message, subject_id, data, created_at FROM leads_activity \
             {clause} ORDER BY id DESC"
        );
        Ok(self.host.query_page(&sql, values, window)?)
    }
}

/// The log routes.
pub fn routes(router: Router<Leads>) -> Router<Leads> {
    router
        .get(
            "/logs",
            Access::Requires(READ),
            |l: &Leads, w: Window, Query(f): Query<LogFilter>| l.lines(w, f),
        )
        .summary("The plugin's activity, newest first")
        .get(
            "/logs/agents",
            Access::Requires(READ),
            |l: &Leads, w: Window| {
                l.lines(
                    w,
                    LogFilter {
                        kind: Some("agent".into()),
                        ..LogFilter::default()
                    },
                )
            },
        )
        .summary("The agents' activity")
        .get(
            "/logs/errors",
            Access::Requires(READ),
            |l: &Leads, w: Window| {
                l.lines(
                    w,
                    LogFilter {
                        level: Some("error".into()),
                        ..LogFilter::default()
                    },
                )
            },
        )
        .summary("Errors")
}
