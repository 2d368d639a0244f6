//! The plugin's activity log (seed 004, "Logs"): what the plugin did,
//! written by every part into `leads_activity`.
//!
//! - `GET /logs`: everything, newest first (`level`, `kind` filters).
//! - `GET /logs/agents`: the agents' lines; `GET /logs/errors`: errors.
//!
//! - `GET /logs/auth`: the seed's authentication log is the host's audit
//!   log (logins, failed logins, logouts, password changes, API keys). The
//!   host does not hand its records to plugins, and this plugin does not
//!   copy them: the route answers `307` to `/admin/audit?action=auth.`
//!   with the caller's other filters (`from`, `to`, `actor`, paging,
//!   sorting), where the host checks `audit:read`. Clients that follow
//!   redirects on the same origin (browsers, curl `-L`, most HTTP
//!   libraries) keep their credentials and get the host's list body.

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
        .get("/logs/auth", Access::Requires(READ), auth_log)
        .summary("The host's authentication log: a redirect to /admin/audit?action=auth.")
        .doc(|op| {
            op.empty_response(307, "Location: /admin/audit?action=auth. and the caller's other filters (the host checks audit:read)");
        })
}

/// `GET /logs/auth`: `307` to the host's audit log, narrowed to
/// authentication actions; the caller's own `action` is replaced, the rest
/// of the query is carried over.
fn auth_log(_: &Leads, request: Request) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("action", "auth.");
    for (name, value) in &request.head.query {
        if name != "action" {
            query.append_pair(name, value);
        }
    }
    let mut redirect = Response::empty(307);
    redirect.headers.push((
        "location".into(),
        format!("/admin/audit?{}", query.finish()),
    ));
    redirect
}
