//! The host's services as a plugin uses them: SQL against the host's
//! database, events, logs, and calls to other plugins.
//!
//! Each call is one JSON [`HostOp`] through [`crate::ffi::HostServices`].
//! SQL uses `$1, $2, ...` placeholders (both SQLite and PostgreSQL accept
//! them) with JSON parameters; rows come back as JSON objects. The host
//! limits a plugin to its own tables and those of its dependencies.

use std::sync::{Arc, OnceLock};

use abi_stable::std_types::{RResult, RStr};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ffi::HostBox;

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
    /// Builds a statement.
    pub fn new(sql: &str, params: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// A host operation, as sent across the boundary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HostOp {
    /// Runs a statement and returns its rows.
    Query(Statement),
    /// Runs a statement and returns the number of rows it changed.
    Execute(Statement),
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

/// A row: column name to JSON value.
pub type Row = Map<String, Value>;

/// What another plugin answered.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`null` when empty or not JSON).
    pub body: Value,
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

/// A failed host call: the message says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError(pub String);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostError {}

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

    fn run<T: serde::de::DeserializeOwned>(&self, op: &HostOp) -> Result<T, HostError> {
        let text = serde_json::to_string(op).map_err(|error| HostError(error.to_string()))?;
        match self.services.call(RStr::from_str(&text)) {
            RResult::ROk(reply) => serde_json::from_str(reply.as_str())
                .map_err(|error| HostError(format!("unreadable host reply: {error}"))),
            RResult::RErr(message) => Err(HostError(message.into_string())),
        }
    }

    /// Rows of a query.
    pub fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, HostError> {
        self.run(&HostOp::Query(Statement::new(sql, params)))
    }

    /// The first row of a query, if any.
    pub fn query_one(&self, sql: &str, params: Vec<Value>) -> Result<Option<Row>, HostError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Rows changed by a statement.
    pub fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, HostError> {
        self.run(&HostOp::Execute(Statement::new(sql, params)))
    }

    /// Runs statements atomically; each statement's rows.
    pub fn transaction(&self, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>, HostError> {
        self.run(&HostOp::Transaction { statements })
    }

    /// Publishes `<plugin id>.<topic>`.
    pub fn publish(&self, topic: &str, data: Value) -> Result<(), HostError> {
        self.run::<Value>(&HostOp::Publish {
            topic: topic.into(),
            data,
        })
        .map(|_| ())
    }

    /// Calls another plugin's route.
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

    /// The SQL dialect of the host's database.
    pub fn dialect(&self) -> Result<Dialect, HostError> {
        if let Some(dialect) = self.dialect.get() {
            return Ok(*dialect);
        }
        let dialect = self.run(&HostOp::Dialect)?;
        Ok(*self.dialect.get_or_init(|| dialect))
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
