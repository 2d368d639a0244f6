//! The host's services as a plugin uses them: SQL against the host's
//! database, events, logs, outbound HTTP, and calls to other plugins.
//!
//! Each call is one JSON [`HostOp`] through [`crate::ffi::HostServices`],
//! so a new operation never changes the FFI layout. SQL uses `$1, $2, ...`
//! placeholders (SQLite and PostgreSQL both accept them) with parameters
//! built by [`params!`](crate::params); rows come back as JSON objects and
//! are read into the plugin's own types with [`Host::query_as`]. The host
//! limits a plugin to its own tables and those of its dependencies.
//!
//! Failures are a [`HostError`] the host fills from the database's error
//! (a unique violation names its column, a refusal its reason); it turns
//! into the right response with `?` in a handler, without SQL text or
//! driver messages reaching clients.

use std::sync::{Arc, OnceLock};

use abi_stable::std_types::{RResult, RStr};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    ffi::HostBox,
    http::{ListBody, Response},
    listing::{self, Window},
};

/// One SQL statement with its parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Statement {
    /// SQL with `$n` placeholders.
    pub sql: String,
    /// Parameters, in placeholder order.
    #[serde(default)]
    pub params: Vec<Value>,
}

impl Statement {
    /// Builds a statement; `params` usually comes from [`params!`](crate::params).
    pub fn new(sql: &str, params: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// Builds the parameter list of a statement from any serializable values:
/// `params![name, price, category_id]`. A value that cannot be encoded as
/// JSON (a map with non-string keys) becomes `null`.
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::serde_json::Value>::new() };
    ($($value:expr),+ $(,)?) => {
        ::std::vec![$($crate::serde_json::to_value(&$value).unwrap_or($crate::serde_json::Value::Null)),+]
    };
}

/// A host operation, as sent across the boundary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HostOp {
    /// Runs a statement and returns its rows.
    Query(Statement),
    /// Runs a statement and returns the number of rows it changed (kept for
    /// plugins built against plugin-api 0.2).
    Execute(Statement),
    /// Runs a statement and returns what it did (an [`Executed`]).
    Write(Statement),
    /// Runs statements in one transaction, all or nothing; returns each
    /// statement's rows.
    Transaction {
        /// The statements, in order.
        statements: Vec<Statement>,
    },
    /// Publishes an event as `<plugin id>.<topic>`.
    Publish {
        /// Topic without the plugin prefix.
        topic: String,
        /// Payload.
        data: Value,
        /// The one user the event is for, if any: WebSocket clients get it
        /// only on that user's own connections. Absent from what SDKs
        /// before 0.5 send, which makes their events public as before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_user: Option<i64>,
    },
    /// Calls another plugin's route with the current caller's rights.
    Call {
        /// HTTP method.
        method: String,
        /// Full path, including the other plugin's prefix.
        path: String,
        /// JSON body, if any.
        #[serde(default)]
        body: Option<Value>,
    },
    /// Starts one of the calling plugin's own declared jobs now, in the
    /// background (the host's blocking pool, with the scheduler's job
    /// timeout); answers as soon as the run is queued. A run asked for
    /// while the same job is running is folded into one more run after it,
    /// so a job never runs twice at once this way and no request is lost.
    RunJob {
        /// The job's name as the manifest declares it (without the
        /// `<plugin id>.` prefix).
        job: String,
    },
    /// The SQL dialect of the host's database (answers a [`Dialect`]).
    Dialect,
    /// An outbound HTTP request, allowed only to the URLs the operator
    /// listed in `[plugins.<id>] http_allow` (answers an [`HttpResponse`]).
    Http(HttpRequest),
    /// Tells the host an event or start handler failed or panicked, so it
    /// is logged and counted like a failing route.
    HandlerFailed {
        /// `event` or `start`.
        kind: String,
        /// The event's topic (empty for `start`).
        topic: String,
        /// What went wrong.
        message: String,
        /// Whether the handler panicked.
        panicked: bool,
    },
}

/// The SQL dialect of the host's database: migrations come in one script
/// per dialect, and the few runtime statements that differ (full-text
/// search, JSON functions) pick theirs with [`Host::dialect`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// The embedded SQLite database.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A row: column name to JSON value. Read it into a type of your own with
/// [`Host::query_as`] instead of picking fields by hand.
pub type Row = Map<String, Value>;

/// What a statement run with [`Host::execute`] did.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Executed {
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// The rowid of the last row inserted, on SQLite. PostgreSQL has no
    /// such thing: write `INSERT ... RETURNING id` with
    /// [`Host::query_scalar`] when the id is needed on both.
    #[serde(default)]
    pub last_insert_id: Option<i64>,
}

/// What another plugin answered.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`null` when empty or not JSON).
    pub body: Value,
}

/// An outbound HTTP request ([`Host::http`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Extra headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body bytes, base64 (standard alphabet) so any body crosses as JSON.
    #[serde(default)]
    pub body_base64: String,
    /// Gives up after this many milliseconds (the host caps it with its
    /// own `plugins.http_timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl HttpRequest {
    /// A `GET` of `url`.
    pub fn get(url: &str) -> Self {
        Self {
            method: "GET".into(),
            url: url.into(),
            ..Self::default()
        }
    }

    /// A `POST` of a JSON body to `url`.
    pub fn post_json(url: &str, body: &Value) -> Self {
        Self {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body_base64: BASE64.encode(body.to_string().as_bytes()),
            timeout_ms: None,
        }
    }
}

/// What a server answered to [`Host::http`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers, names lower-case.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body bytes, base64.
    #[serde(default)]
    pub body_base64: String,
}

impl HttpResponse {
    /// The body's bytes.
    pub fn body(&self) -> Result<Vec<u8>, HostError> {
        BASE64
            .decode(&self.body_base64)
            .map_err(|_| HostError::Other {
                message: "the host sent an unreadable HTTP body".into(),
            })
    }

    /// The body as JSON `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HostError> {
        serde_json::from_slice(&self.body()?).map_err(|error| HostError::Other {
            message: format!("the response is not the JSON expected: {error}"),
        })
    }
}

/// Log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Level {
    /// Errors.
    Error = 1,
    /// Warnings.
    Warn = 2,
    /// Information.
    Info = 3,
    /// Debugging.
    Debug = 4,
}

/// A failed host call, as the host classified it. The messages are the
/// host's own words (no SQL text, no driver message: those go to the host's
/// log with the request id), so [`HostError::into_response`] may show them
/// to clients.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HostError {
    /// A unique constraint refused the write: the value is taken.
    UniqueViolation {
        /// The column (the first one, for a multi-column constraint), when
        /// the database says.
        #[serde(default)]
        column: Option<String>,
        /// The constraint or index name, when the database says.
        #[serde(default)]
        constraint: Option<String>,
    },
    /// A foreign key refused the write: a referenced row is missing, or a
    /// row is still referenced.
    ForeignKeyViolation {
        /// The constraint name, when the database says.
        #[serde(default)]
        constraint: Option<String>,
    },
    /// A `CHECK` or `NOT NULL` constraint refused the write.
    CheckViolation {
        /// The column or constraint, when the database says.
        #[serde(default)]
        column: Option<String>,
    },
    /// The host refused the operation: the SQL guard or the database's
    /// confinement (the reason names the table or statement), an outbound
    /// URL outside the allow list, a job the manifest does not declare.
    Refused {
        /// Why, for the plugin's logs and its author.
        reason: String,
    },
    /// What the call addressed does not exist (another plugin's route, a
    /// plugin that is not serving).
    NotFound {
        /// What was not found.
        message: String,
    },
    /// The call ran out of time (a busy database, a slow server).
    Timeout {
        /// What timed out.
        message: String,
    },
    /// Anything else: the host logged the details.
    Other {
        /// A short description.
        message: String,
    },
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UniqueViolation { column, constraint } => {
                match column.as_deref().or(constraint.as_deref()) {
                    Some(name) => write!(f, "{name} is already used"),
                    None => f.write_str("a unique value is already used"),
                }
            }
            Self::ForeignKeyViolation { .. } => {
                f.write_str("the write breaks a reference between rows")
            }
            Self::CheckViolation { column } => match column {
                Some(name) => write!(f, "{name} has a value the database refuses"),
                None => f.write_str("a value is refused by the database"),
            },
            Self::Refused { reason } => write!(f, "refused: {reason}"),
            Self::NotFound { message } | Self::Timeout { message } | Self::Other { message } => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for HostError {}

impl HostError {
    /// Reads what the host sent back. Hosts older than plugin-api 0.3 send
    /// plain text, which becomes [`HostError::Other`].
    pub fn from_host(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_else(|_| Self::Other {
            message: text.to_string(),
        })
    }

    /// The standard error response: 409 for a taken value or a broken
    /// reference, 422 for a refused value, 403 for a refusal, 404, 503 for
    /// a timeout, 500 otherwise.
    pub fn into_response(&self) -> Response {
        match self {
            Self::UniqueViolation { column, .. } => {
                let field = column.as_deref().unwrap_or("body");
                Response::error_with_details(
                    409,
                    "CONFLICT",
                    &self.to_string(),
                    &[(field, "already used")],
                )
            }
            Self::ForeignKeyViolation { .. } => Response::conflict(&self.to_string()),
            Self::CheckViolation { column } => Response::invalid(
                column.as_deref().unwrap_or("body"),
                "refused by a constraint",
            ),
            Self::Refused { .. } => Response::error(
                403,
                "AUTHORIZATION_ERROR",
                "the plugin attempted an operation the host does not allow",
            ),
            Self::NotFound { message } => Response::not_found(message),
            Self::Timeout { .. } => Response::error(503, "PLUGIN_ERROR", "the host timed out"),
            Self::Other { .. } => Response::plugin_error("the plugin's request to the host failed"),
        }
    }
}

impl From<HostError> for Response {
    fn from(error: HostError) -> Self {
        error.into_response()
    }
}

/// The host's services. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    services: Arc<HostBox>,
    /// Asked once: the database does not change under a running instance.
    dialect: Arc<OnceLock<Dialect>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl Host {
    /// Wraps the FFI object the host passed in.
    pub fn new(services: HostBox) -> Self {
        Self {
            services: Arc::new(services),
            dialect: Arc::new(OnceLock::new()),
        }
    }

    /// Runs one operation.
    pub fn run<T: DeserializeOwned>(&self, op: &HostOp) -> Result<T, HostError> {
        let text = serde_json::to_string(op).map_err(|error| HostError::Other {
            message: format!("cannot encode the operation: {error}"),
        })?;
        match self.services.call(RStr::from_str(&text)) {
            RResult::ROk(reply) => {
                serde_json::from_str(reply.as_str()).map_err(|error| HostError::Other {
                    message: format!("unreadable host reply: {error}"),
                })
            }
            RResult::RErr(message) => Err(HostError::from_host(message.as_str())),
        }
    }

    /// Rows of a query, as JSON objects.
    pub fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, HostError> {
        self.run(&HostOp::Query(Statement::new(sql, params)))
    }

    /// Rows of a query, each read into `T` (by column name, with serde).
    pub fn query_as<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<T>, HostError> {
        self.query(sql, params)?
            .into_iter()
            .map(|row| read_row(Value::Object(row)))
            .collect()
    }

    /// The first row of a query, if any.
    pub fn query_one(&self, sql: &str, params: Vec<Value>) -> Result<Option<Row>, HostError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query read into `T`, if any.
    pub fn query_one_as<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Option<T>, HostError> {
        self.query_one(sql, params)?
            .map(|row| read_row(Value::Object(row)))
            .transpose()
    }

    /// The one row a statement returns (`INSERT ... RETURNING *`) read into
    /// `T`; [`HostError::NotFound`] when there is none.
    pub fn query_row_as<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<T, HostError> {
        self.query_one_as(sql, params)?
            .ok_or_else(|| HostError::NotFound {
                message: "the statement returned no row".into(),
            })
    }

    /// A window of a query's rows in the standard list body: `sql` is a
    /// whole `SELECT` with its `ORDER BY` (which needs a unique column last
    /// for pages to be stable) and no `LIMIT`; the SDK counts its rows and
    /// appends the window's `LIMIT`/`OFFSET` as two more parameters.
    pub fn query_page<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<Value>,
        window: Window,
    ) -> Result<ListBody<T>, HostError> {
        let count = format!("SELECT COUNT(*) AS total FROM ({sql}) AS counted");
        self.query_page_counted(sql, &count, params, window)
    }

    /// [`Host::query_page`] with the total from `count_sql`, a `COUNT(*)`
    /// over the same parameters that must count exactly the rows `sql`
    /// returns. Worth it when the page's select list, joins or sort are
    /// what a count would pay for: counting `sql` wrapped carries every
    /// match's columns through the sort on SQLite (7.7 ms for 6,700 CRM
    /// deals with their stage joined, against 0.16 ms counting the deals).
    pub fn query_page_counted<T: DeserializeOwned>(
        &self,
        sql: &str,
        count_sql: &str,
        params: Vec<Value>,
        window: Window,
    ) -> Result<ListBody<T>, HostError> {
        let total: i64 = self.query_scalar(count_sql, params.clone())?;
        let next = params.len();
        let paged = format!("{sql} LIMIT ${} OFFSET ${}", next + 1, next + 2);
        let mut params = params;
        params.extend([Value::from(window.limit), Value::from(window.skip)]);
        Ok(listing::body(self.query_as(&paged, params)?, total, window))
    }

    /// The first column of the first row (`COUNT(*)`, `RETURNING id`);
    /// [`HostError::NotFound`] when there is no row.
    pub fn query_scalar<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<T, HostError> {
        let row = self
            .query_one(sql, params)?
            .ok_or_else(|| HostError::NotFound {
                message: "the query returned no row".into(),
            })?;
        let value = row.into_iter().next().map(|(_, value)| value);
        read_row(value.unwrap_or(Value::Null))
    }

    /// Runs a statement; what it changed.
    pub fn execute(&self, sql: &str, params: Vec<Value>) -> Result<Executed, HostError> {
        self.run(&HostOp::Write(Statement::new(sql, params)))
    }

    /// Runs statements atomically, all or nothing; each statement's rows.
    pub fn transaction(&self, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>, HostError> {
        self.run(&HostOp::Transaction { statements })
    }

    /// Publishes `<plugin id>.<topic>`; `data` is any serializable value.
    /// Every WebSocket client allowed to read the topic receives it.
    pub fn publish<T: Serialize>(&self, topic: &str, data: &T) -> Result<(), HostError> {
        self.publish_for(None, topic, data)
    }

    /// Publishes `<plugin id>.<topic>` for one user: WebSocket clients
    /// receive it only on `user_id`'s own connections (which still need the
    /// topic's permission), so a private notice (a price alert, a task
    /// assigned to someone) never reaches the rest of the team. Plugins
    /// subscribed to the topic receive it like any other event.
    pub fn publish_to<T: Serialize>(
        &self,
        user_id: i64,
        topic: &str,
        data: &T,
    ) -> Result<(), HostError> {
        self.publish_for(Some(user_id), topic, data)
    }

    /// Publishes like [`Host::publish`] (or [`Host::publish_to`] when
    /// `to_user` is set), but a failure is logged as the warning `warning`
    /// (with the topic and the error), not returned: for an event
    /// reporting a write that has already happened, which a lost event
    /// must not turn into an error answer.
    pub fn publish_or_warn<T: Serialize>(&self, topic: &str, data: &T, warning: &str) {
        self.publish_for_or_warn(None, topic, data, warning);
    }

    /// [`Host::publish_or_warn`] for one user, or for everyone allowed when
    /// `to_user` is `None`.
    pub fn publish_for_or_warn<T: Serialize>(
        &self,
        to_user: Option<i64>,
        topic: &str,
        data: &T,
        warning: &str,
    ) {
        if let Err(error) = self.publish_for(to_user, topic, data) {
            self.warn(
                warning,
                serde_json::json!({"topic": topic, "error": error.to_string()}),
            );
        }
    }

    fn publish_for<T: Serialize>(
        &self,
        to_user: Option<i64>,
        topic: &str,
        data: &T,
    ) -> Result<(), HostError> {
        let data = serde_json::to_value(data).map_err(|error| HostError::Other {
            message: format!("cannot encode the event: {error}"),
        })?;
        self.run::<Value>(&HostOp::Publish {
            topic: topic.into(),
            data,
            to_user,
        })
        .map(|_| ())
    }

    /// Calls another plugin's route with the current caller's rights.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<CallResponse, HostError> {
        self.run(&HostOp::Call {
            method: method.into(),
            path: path.into(),
            body,
        })
    }

    /// Starts one of this plugin's declared jobs now, off the caller's
    /// thread; returns once it is queued, not when it has run. For work a
    /// request starts but must not wait for (a large import, say). Fails
    /// when the manifest declares no such job or the plugin is not serving.
    pub fn run_job(&self, job: &str) -> Result<(), HostError> {
        self.run::<Value>(&HostOp::RunJob { job: job.into() })
            .map(|_| ())
    }

    /// An outbound HTTP request, to a URL the operator allowed this plugin
    /// (`[plugins.<id>] http_allow`); redirects are followed only inside
    /// the list, and the host caps the time and the response size.
    pub fn http(&self, request: &HttpRequest) -> Result<HttpResponse, HostError> {
        self.run(&HostOp::Http(request.clone()))
    }

    /// The SQL dialect of the host's database.
    pub fn dialect(&self) -> Result<Dialect, HostError> {
        if let Some(dialect) = self.dialect.get() {
            return Ok(*dialect);
        }
        let dialect = self.run(&HostOp::Dialect)?;
        Ok(*self.dialect.get_or_init(|| dialect))
    }

    /// An information line with structured fields.
    pub fn info(&self, message: &str, fields: Value) {
        self.log(Level::Info, message, fields);
    }

    /// A warning with structured fields.
    pub fn warn(&self, message: &str, fields: Value) {
        self.log(Level::Warn, message, fields);
    }

    /// Writes a log line with structured fields.
    pub fn log(&self, level: Level, message: &str, fields: Value) {
        let fields = fields.to_string();
        self.services.log(
            level as u8,
            RStr::from_str(message),
            RStr::from_str(&fields),
        );
    }
}

/// The rows one statement of a [`Host::transaction`] returned, read into
/// `T` like [`Host::query_as`] reads a query's (a transaction's statements
/// return rows of different shapes, so each is read on its own).
pub fn rows_as<T: DeserializeOwned>(rows: &[Row]) -> Result<Vec<T>, HostError> {
    rows.iter()
        .map(|row| read_row(Value::Object(row.clone())))
        .collect()
}

/// A row (or a scalar) read into `T`; a mismatch is the plugin's bug, so
/// it says which type did not fit.
fn read_row<T: DeserializeOwned>(value: Value) -> Result<T, HostError> {
    serde_json::from_value(value).map_err(|error| HostError::Other {
        message: format!("a row does not fit {}: {error}", std::any::type_name::<T>()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use abi_stable::sabi_trait::TD_Opaque;

    use super::*;
    use crate::{ffi::HostServices_TO, testing::FakeHost};

    #[test]
    fn a_failed_publish_is_a_warning_not_an_error() {
        let fake = FakeHost::default();
        let host = Host::new(HostServices_TO::from_value(fake.clone(), TD_Opaque));
        host.publish_or_warn("created", &serde_json::json!({"id": 1}), "cannot publish");
        // Keys that are not strings cannot be JSON: the publish fails.
        let unencodable = BTreeMap::from([((1, 2), 3)]);
        host.publish_or_warn("broken", &unencodable, "cannot publish a test event");
        let recorded = fake.recorded();
        assert_eq!(recorded.published.len(), 1);
        assert_eq!(recorded.published[0].0, "created");
        assert_eq!(
            recorded.logs,
            vec![(Level::Warn as u8, "cannot publish a test event".to_string())]
        );
    }
}
