//! The services the host gives a plugin instance (`HostServices`): SQL on
//! the host's pool (limited by the plugin's [`SqlScope`]), events on the
//! bus, calls to other plugins' routes, runs of its own jobs now (see
//! [`super::on_demand`]), and logs.
//!
//! Plugins call in synchronously from their handler's thread. SQL is async
//! here, so the call parks that thread with `block_in_place` (on a runtime
//! worker, letting the runtime move other tasks away) and drives the query
//! with the runtime's handle; a bare `block_on` on a worker would panic.
//! Every callback catches panics itself: unwinding back into the plugin
//! through the FFI boundary would abort the process.
//!
//! Parameters bind from JSON: null, bool, integer, float, string; arrays and
//! objects bind as their JSON text. Rows come back as JSON objects. (A JSON
//! null binds as a NULL text value, so PostgreSQL needs a cast such as
//! `$1::bigint` where a NULL goes into a non-text column.)

use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Weak,
};

use abi_stable::std_types::{RResult, RStr, RString};
use serde_json::{Map, Number, Value};
use sqlx::{any::AnyRow, Any, Column, Row};
use xcore_plugin_api::{ffi::HostServices, host::HostOp, Statement};

use super::{
    dispatcher,
    manager::PluginManager,
    sql_guard::{Purpose, SqlScope},
};
use crate::{db::Database, events::EventBus};

/// One instance's view of the host.
pub struct PluginHost {
    plugin_id: String,
    scope: SqlScope,
    db: Database,
    events: EventBus,
    manager: Weak<PluginManager>,
    runtime: tokio::runtime::Handle,
}

impl PluginHost {
    /// Services for `plugin_id`, driving async work on the current runtime.
    pub fn new(
        plugin_id: &str,
        scope: SqlScope,
        db: Database,
        events: EventBus,
        manager: Weak<PluginManager>,
    ) -> Self {
        Self {
            plugin_id: plugin_id.to_string(),
            scope,
            db,
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
            HostOp::Query(statement) => self.block_on(async {
                let rows = bind(self.checked(&statement)?)?
                    .fetch_all(self.db.pool())
                    .await
                    .map_err(sql_error)?;
                rows_to_json(&rows)
            }),
            HostOp::Execute(statement) => self.block_on(async {
                let done = bind(self.checked(&statement)?)?
                    .execute(self.db.pool())
                    .await
                    .map_err(sql_error)?;
                Ok(Value::from(done.rows_affected()))
            }),
            HostOp::Transaction { statements } => self.block_on(async {
                // All checked before anything runs.
                for statement in &statements {
                    self.checked(statement)?;
                }
                let mut tx = self.db.begin_write().await.map_err(sql_error)?;
                let mut results = Vec::with_capacity(statements.len());
                for statement in &statements {
                    let rows = bind(statement)?
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(sql_error)?;
                    results.push(rows_to_json(&rows)?);
                }
                tx.commit().await.map_err(sql_error)?;
                Ok(Value::Array(results))
            }),
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
            HostOp::Dialect => Ok(Value::from(match self.db.dialect() {
                crate::db::Dialect::Sqlite => "sqlite",
                crate::db::Dialect::Postgres => "postgres",
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

fn sql_error(error: sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

fn bind(
    statement: &Statement,
) -> Result<sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>>, String> {
    let mut query = sqlx::query(&statement.sql);
    for param in &statement.params {
        query = match param {
            Value::Null => query.bind(None::<String>),
            Value::Bool(flag) => query.bind(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => query.bind(integer),
                None => query.bind(number.as_f64().ok_or("unsupported number")?),
            },
            Value::String(text) => query.bind(text.clone()),
            other => query.bind(other.to_string()),
        };
    }
    Ok(query)
}

fn rows_to_json(rows: &[AnyRow]) -> Result<Value, String> {
    rows.iter()
        .map(|row| {
            let mut object = Map::with_capacity(row.columns().len());
            for (index, column) in row.columns().iter().enumerate() {
                object.insert(column.name().to_string(), cell(row, index)?);
            }
            Ok(Value::Object(object))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Value::Array)
}

/// Decodes one cell by trying the types the Any driver can produce.
fn cell(row: &AnyRow, index: usize) -> Result<Value, String> {
    if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::from));
    }
    if let Ok(value) = row.try_get::<Option<i32>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::from));
    }
    if let Ok(value) = row.try_get::<Option<f64>, _>(index) {
        return Ok(value
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number));
    }
    if let Ok(value) = row.try_get::<Option<String>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::String));
    }
    if let Ok(value) = row.try_get::<Option<bool>, _>(index) {
        return Ok(value.map_or(Value::Null, Value::Bool));
    }
    Err(format!(
        "column {} has a type plugins cannot read; cast it to BIGINT, DOUBLE PRECISION or TEXT",
        row.columns()[index].name()
    ))
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
