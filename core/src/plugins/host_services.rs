//! The services the host gives a plugin instance (`HostServices`): SQL on
//! the plugin's own confined pool ([`PluginDatabase`], checked first by the
//! lexical [`SqlScope`] for early messages), events on the bus, calls to other plugins' routes, runs of its own jobs now (see
//! [`super::on_demand`]), and logs.
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
use xcore_plugin_api::{ffi::HostServices, host::HostOp, Statement};

use super::{
    confinement::PluginDatabase,
    dispatcher,
    manager::PluginManager,
    sql_guard::{Purpose, SqlScope},
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
    runtime: tokio::runtime::Handle,
}

impl PluginHost {
    /// Services for `plugin_id`, driving async work on the current runtime.
    pub fn new(
        plugin_id: &str,
        scope: SqlScope,
        sql: PluginDatabase,
        dialect: Dialect,
        events: EventBus,
        manager: Weak<PluginManager>,
    ) -> Self {
        Self {
            plugin_id: plugin_id.to_string(),
            scope,
            sql,
            dialect,
            events,
            manager,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn checked<'s>(&self, statement: &'s Statement) -> Result<&'s Statement, String> {
        self.scope.check(&statement.sql, Purpose::Runtime)?;
        Ok(statement)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| self.runtime.block_on(future))
        } else {
            self.runtime.block_on(future)
        }
    }

    fn run(&self, operation: &str) -> Result<Value, String> {
        let operation: HostOp = serde_json::from_str(operation)
            .map_err(|error| format!("unreadable host operation: {error}"))?;
        match operation {
            HostOp::Query(statement) => self.block_on(self.sql.query(self.checked(&statement)?)),
            HostOp::Execute(statement) => self
                .block_on(self.sql.execute(self.checked(&statement)?))
                .map(Value::from),
            HostOp::Transaction { statements } => {
                // All checked before anything runs.
                for statement in &statements {
                    self.checked(statement)?;
                }
                self.block_on(self.sql.transaction(&statements))
            }
            HostOp::Publish { topic, data } => {
                self.events
                    .publish(&format!("{}.{topic}", self.plugin_id), data);
                Ok(Value::Null)
            }
            HostOp::Call { method, path, body } => {
                let manager = self.manager.upgrade().ok_or("the host is shutting down")?;
                let answer = dispatcher::call_from_plugin(
                    &manager,
                    &self.plugin_id,
                    &method,
                    &path,
                    body.as_ref(),
                )?;
                serde_json::to_value(answer).map_err(|error| error.to_string())
            }
            HostOp::Dialect => Ok(Value::from(match self.dialect {
                Dialect::Sqlite => "sqlite",
                Dialect::Postgres => "postgres",
            })),
            HostOp::RunJob { job } => {
                // Only the caller's own jobs: the plugin id is the host's,
                // not something the plugin sends.
                let manager = self.manager.upgrade().ok_or("the host is shutting down")?;
                manager.run_job_soon(&self.plugin_id, &job)?;
                Ok(Value::Null)
            }
        }
    }
}

impl HostServices for PluginHost {
    fn call(&self, operation: RStr<'_>) -> RResult<RString, RString> {
        match catch_unwind(AssertUnwindSafe(|| self.run(operation.as_str()))) {
            Ok(Ok(value)) => RResult::ROk(value.to_string().into()),
            Ok(Err(message)) => RResult::RErr(message.into()),
            Err(_) => RResult::RErr("the host failed while serving this call".into()),
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
