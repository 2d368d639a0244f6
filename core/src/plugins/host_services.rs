//! The services the host gives a plugin instance (`HostServices`): SQL on
//! the plugin's own confined pool ([`PluginDatabase`], checked first by the
//! lexical [`SqlScope`] for early messages), events on the bus, calls to
//! other plugins' routes, runs of its own jobs now (see
//! [`super::on_demand`]), outbound HTTP within its allow list (see
//! [`super::outbound_http`]), and logs.
//!
//! Failures go back as a typed `HostError` (JSON) to plugins built with
//! SDK 0.3 or later, and as its text to older ones; neither carries SQL
//! text or a driver's message, which stay in the host's log.
//!
//! Plugins call in synchronously from their handler's thread. SQL is async
//! here, so the call parks that thread with `block_in_place` (on a runtime
//! worker, letting the runtime move other tasks away) and drives the query
//! with the runtime's handle; a bare `block_on` on a worker would panic.
//! Every callback catches panics itself: unwinding back into the plugin
//! through the FFI boundary would abort the process.
//!
//! Parameters bind from JSON (see [`super::confinement`]); a JSON null
//! binds as a NULL text value, so PostgreSQL needs a cast such as
//! `$1::bigint` where a NULL goes into a non-text column.

use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Weak,
};

use abi_stable::std_types::{RResult, RStr, RString};
use serde_json::Value;
use xcore_plugin_sdk::{ffi::HostServices, host::HostOp, HostError, Statement};

use super::{
    confinement::PluginDatabase,
    dispatcher,
    manager::PluginManager,
    outbound_http::{AllowList, OutboundHttp},
    sql_guard::{Purpose, SqlScope},
    subscriptions,
};
use crate::{db::Dialect, events::EventBus};

/// One instance's view of the host.
pub struct PluginHost {
    plugin_id: String,
    scope: SqlScope,
    sql: PluginDatabase,
    dialect: Dialect,
    events: EventBus,
    manager: Weak<PluginManager>,
    outbound: OutboundHttp,
    http_allow: AllowList,
    runtime: tokio::runtime::Handle,
}

/// What a plugin's instance is given besides its SQL.
pub struct HostParts {
    /// The bus its events go to.
    pub events: EventBus,
    /// The manager, for calls to other plugins and jobs.
    pub manager: Weak<PluginManager>,
    /// The host's outbound HTTP client.
    pub outbound: OutboundHttp,
    /// What this plugin may reach with it.
    pub http_allow: AllowList,
}

impl PluginHost {
    /// Services for `plugin_id`, driving async work on the current runtime.
    pub fn new(
        plugin_id: &str,
        scope: SqlScope,
        sql: PluginDatabase,
        dialect: Dialect,
        parts: HostParts,
    ) -> Self {
        Self {
            plugin_id: plugin_id.to_string(),
            scope,
            sql,
            dialect,
            events: parts.events,
            manager: parts.manager,
            outbound: parts.outbound,
            http_allow: parts.http_allow,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn checked<'s>(&self, statement: &'s Statement) -> Result<&'s Statement, HostError> {
        self.scope
            .check(&statement.sql, Purpose::Runtime)
            .map_err(|reason| HostError::Refused { reason })?;
        Ok(statement)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| self.runtime.block_on(future))
        } else {
            self.runtime.block_on(future)
        }
    }

    fn run(&self, operation: &str) -> Result<Value, HostError> {
        let other = |message: String| HostError::Other { message };
        let operation: HostOp = serde_json::from_str(operation)
            .map_err(|error| other(format!("unreadable host operation: {error}")))?;
        match operation {
            HostOp::Query(statement) => self.block_on(self.sql.query(self.checked(&statement)?)),
            HostOp::Execute(statement) => self
                .block_on(self.sql.execute(self.checked(&statement)?))
                .map(|done| Value::from(done.rows_affected)),
            HostOp::Write(statement) => {
                let done = self.block_on(self.sql.execute(self.checked(&statement)?))?;
                serde_json::to_value(done).map_err(|error| other(error.to_string()))
            }
            HostOp::Transaction { statements } => {
                // All checked before anything runs.
                for statement in &statements {
                    self.checked(statement)?;
                }
                self.block_on(self.sql.transaction(&statements))
            }
            HostOp::Publish {
                topic,
                data,
                to_user,
            } => {
                self.events
                    .publish_for(to_user, &format!("{}.{topic}", self.plugin_id), data);
                Ok(Value::Null)
            }
            HostOp::Call { method, path, body } => {
                let manager = self.manager.upgrade().ok_or_else(shutting_down)?;
                let answer = dispatcher::call_from_plugin(
                    &manager,
                    &self.plugin_id,
                    &method,
                    &path,
                    body.as_ref(),
                )
                .map_err(|message| HostError::NotFound { message })?;
                serde_json::to_value(answer).map_err(|error| other(error.to_string()))
            }
            HostOp::Dialect => Ok(Value::from(match self.dialect {
                Dialect::Sqlite => "sqlite",
                Dialect::Postgres => "postgres",
            })),
            HostOp::RunJob { job } => {
                // Only the caller's own jobs: the plugin id is the host's,
                // not something the plugin sends.
                let manager = self.manager.upgrade().ok_or_else(shutting_down)?;
                manager
                    .run_job_soon(&self.plugin_id, &job)
                    .map_err(|reason| HostError::Refused { reason })?;
                Ok(Value::Null)
            }
            HostOp::Http(request) => {
                let answer = self.block_on(self.outbound.fetch(
                    &self.plugin_id,
                    &self.http_allow,
                    request,
                ))?;
                serde_json::to_value(answer).map_err(|error| other(error.to_string()))
            }
            HostOp::HandlerFailed {
                kind,
                topic,
                message,
                panicked,
            } => {
                subscriptions::report_failure(&self.plugin_id, &kind, &topic, &message, panicked);
                Ok(Value::Null)
            }
        }
    }

    /// A failure as the plugin's SDK reads it: a JSON `HostError`.
    fn encode(&self, error: &HostError) -> String {
        serde_json::to_string(error).unwrap_or_else(|_| error.to_string())
    }
}

fn shutting_down() -> HostError {
    HostError::Other {
        message: "the host is shutting down".into(),
    }
}

impl HostServices for PluginHost {
    fn call(&self, operation: RStr<'_>) -> RResult<RString, RString> {
        match catch_unwind(AssertUnwindSafe(|| self.run(operation.as_str()))) {
            Ok(Ok(value)) => RResult::ROk(value.to_string().into()),
            Ok(Err(error)) => RResult::RErr(self.encode(&error).into()),
            Err(_) => RResult::RErr(
                self.encode(&HostError::Other {
                    message: "the host failed while serving this call".into(),
                })
                .into(),
            ),
        }
    }

    fn log(&self, level: u8, message: RStr<'_>, fields: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let (plugin, message, fields) =
                (self.plugin_id.as_str(), message.as_str(), fields.as_str());
            match level {
                1 => tracing::error!(plugin, fields, "{message}"),
                2 => tracing::warn!(plugin, fields, "{message}"),
                3 => tracing::info!(plugin, fields, "{message}"),
                _ => tracing::debug!(plugin, fields, "{message}"),
            }
        }));
    }
}
