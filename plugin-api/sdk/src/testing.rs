//! Unit-testing plugin handlers in-process, through the same glue the FFI
//! uses (so `catch_unwind` and the request conversion are exercised), against a
//! [`FakeHost`].
//!
//! The fake records published events and log lines; SQL is answered by a
//! closure the test provides. Real SQL against SQLite and PostgreSQL is
//! exercised by the host's integration tests with the real `.so`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RStr, RString},
};
use serde_json::Value;

use crate::{
    ffi::{FfiCaller, FfiChunk, FfiPair, FfiRequest, HostServices, HostServices_TO, InstanceBox},
    host::{Dialect, HostOp},
    http::{Caller, ErrorDetail, Response, StandardError},
    manifest::Manifest,
    router::{full_manifest, instantiate, Plugin},
};

type SqlHandler = dyn Fn(&HostOp) -> Result<Value, String> + Send + Sync;

/// What the fake host saw.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// `(topic, data)` of each publish, topic without the plugin prefix.
    pub published: Vec<(String, Value)>,
    /// `(level, message)` of each log line.
    pub logs: Vec<(u8, String)>,
    /// Every other operation (SQL, calls, HTTP), in order.
    pub sql: Vec<HostOp>,
    /// `(topic, message, panicked)` of each failed event or start handler.
    pub failures: Vec<(String, String, bool)>,
}

/// A host for tests.
#[derive(Clone)]
pub struct FakeHost {
    recorded: Arc<Mutex<Recorded>>,
    sql: Arc<SqlHandler>,
    /// What `Host::dialect` answers (SQLite unless set).
    dialect: Dialect,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::with_sql(|_| Ok(Value::Array(Vec::new())))
    }
}

impl FakeHost {
    /// A host whose SQL answers come from `answer` (a JSON array of rows
    /// for queries, an [`Executed`](crate::Executed) object for writes; an
    /// `Err` is sent as the host sends it: a [`crate::HostError`] as JSON).
    pub fn with_sql(
        answer: impl Fn(&HostOp) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            recorded: Arc::new(Mutex::new(Recorded::default())),
            sql: Arc::new(answer),
            dialect: Dialect::Sqlite,
        }
    }

    /// Answers `dialect` to `Host::dialect`, so dialect-specific SQL can be
    /// unit-tested too.
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// What was recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl HostServices for FakeHost {
    fn call(&self, operation: RStr<'_>) -> RResult<RString, RString> {
        let op: HostOp = match serde_json::from_str(operation.as_str()) {
            Ok(op) => op,
            Err(error) => return RResult::RErr(format!("bad operation: {error}").into()),
        };
        let answer = match &op {
            HostOp::Publish { topic, data, .. } => {
                if let Ok(mut recorded) = self.recorded.lock() {
                    recorded.published.push((topic.clone(), data.clone()));
                }
                Ok(Value::Null)
            }
            HostOp::Dialect => serde_json::to_value(self.dialect).map_err(|e| e.to_string()),
            HostOp::HandlerFailed {
                topic,
                message,
                panicked,
                ..
            } => {
                if let Ok(mut recorded) = self.recorded.lock() {
                    recorded
                        .failures
                        .push((topic.clone(), message.clone(), *panicked));
                }
                Ok(Value::Null)
            }
            _ => {
                if let Ok(mut recorded) = self.recorded.lock() {
                    recorded.sql.push(op.clone());
                }
                (self.sql)(&op)
            }
        };
        match answer {
            Ok(value) => RResult::ROk(value.to_string().into()),
            Err(message) => RResult::RErr(message.into()),
        }
    }

    fn log(&self, level: u8, message: RStr<'_>, _fields: RStr<'_>) {
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.logs.push((level, message.to_string()));
        }
    }
}

/// A plugin instance driven like the host drives it.
pub struct TestPlugin {
    instance: InstanceBox,
    manifest: Manifest,
}

impl TestPlugin {
    /// Instantiates `P` against `host` with `config`.
    pub fn start<P: Plugin>(host: &FakeHost, config: Value) -> Result<Self, String> {
        let services = HostServices_TO::from_value(host.clone(), TD_Opaque);
        match instantiate::<P>(services, config.to_string().into()) {
            RResult::ROk(instance) => Ok(Self {
                instance,
                manifest: full_manifest::<P>(),
            }),
            RResult::RErr(message) => Err(message.into_string()),
        }
    }

    /// Sends a request to a path relative to the prefix; routes are matched
    /// as the host does (404 when none matches). Permissions are not
    /// checked here: that is the host's job.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        caller: Option<Caller>,
    ) -> Response {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let matched = self
            .manifest
            .routes
            .iter()
            .enumerate()
            .find_map(|(index, route)| {
                (route.method.eq_ignore_ascii_case(method))
                    .then(|| match_route(&route.path, path))
                    .flatten()
                    .map(|params| (index, route.path.as_str(), params))
            });
        let Some((route_index, route, params)) = matched else {
            return Response::not_found("no route");
        };
        let method = method.to_ascii_uppercase();
        let params: Vec<FfiPair<'_>> = params
            .iter()
            .map(|(name, value)| FfiPair::new(name, value))
            .collect();
        let query: Vec<FfiPair<'_>> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|raw| {
                let (name, value) = raw.split_once('=').unwrap_or((raw, ""));
                FfiPair::new(name, value)
            })
            .collect();
        let permissions: Vec<RStr<'_>> = caller
            .iter()
            .flat_map(|caller| caller.permissions.iter().map(|p| RStr::from_str(p)))
            .collect();
        let body = body
            .map(|value| value.to_string().into_bytes())
            .unwrap_or_default();
        let headers = [FfiPair::new("content-type", "application/json")];
        let response = self.instance.handle(FfiRequest {
            method: RStr::from_str(&method),
            path: RStr::from_str(path),
            route: RStr::from_str(route),
            route_index,
            params: RSlice::from_slice(&params),
            query: RSlice::from_slice(&query),
            headers: RSlice::from_slice(if body.is_empty() { &[] } else { &headers }),
            caller: caller
                .as_ref()
                .map(|caller| FfiCaller {
                    user_id: caller.user_id,
                    email: RStr::from_str(&caller.email),
                    permissions: RSlice::from_slice(&permissions),
                })
                .into(),
            request_id: RStr::from_str("test"),
            body: RSlice::from_slice(&body),
        });
        let headers: BTreeMap<String, String> =
            serde_json::from_str(response.headers.as_str()).unwrap_or_default();
        let mut body = response.body.into_vec();
        // A stream is pulled to its end here, as the host would for a
        // client that reads it all; a failure shows as a 500 error.
        if let Some(stream) = response.stream.into_option() {
            loop {
                match self.instance.next_chunk(stream) {
                    FfiChunk::Data(data) => body.extend_from_slice(&data),
                    FfiChunk::End => break,
                    FfiChunk::Failed(message) => {
                        return Response::plugin_error(&format!("the stream failed: {message}"))
                    }
                }
            }
        }
        Response {
            status: response.status,
            headers: headers.into_iter().collect(),
            body,
            error: response.error.into_option().map(|error| {
                Box::new(StandardError {
                    code: error.code.into_string(),
                    message: error.message.into_string(),
                    details: error
                        .details
                        .into_iter()
                        .map(|detail| ErrorDetail {
                            field: detail.field.into_string(),
                            message: detail.message.into_string(),
                        })
                        .collect(),
                })
            }),
            stream: None,
        }
    }

    /// Delivers an event as the host does (to the listeners whose pattern
    /// matches `topic`).
    pub fn deliver(&self, topic: &str, data: Value) {
        let event = crate::router::Event {
            id: "test".into(),
            topic: topic.into(),
            data,
            timestamp: crate::time::now(),
        };
        let text = serde_json::to_string(&event).unwrap_or_default();
        self.instance.on_event(RStr::from_str(&text));
    }

    /// Sends the start signal, as the host does once the instance serves.
    pub fn signal_start(&self) {
        self.deliver(crate::router::START_SIGNAL, Value::Null);
    }

    /// The manifest as the host sees it.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Runs a job.
    pub fn run_job(&self, name: &str) -> Result<(), String> {
        self.instance
            .run_job(RStr::from_str(name))
            .into_result()
            .map_err(RString::into_string)
    }
}

/// Asserts that `P`'s generated OpenAPI document matches its route table,
/// and returns the manifest for the plugin's own further checks.
///
/// Every served route has an operation with a summary, a success (2xx)
/// response and each `{name}` of its path as a path parameter; nothing is
/// documented that is not served. Panics naming the first route that
/// fails, so a plugin's test is one call.
pub fn assert_routes_documented<P: Plugin>() -> Manifest {
    let manifest = full_manifest::<P>();
    let paths = manifest.openapi.clone().unwrap_or(Value::Null);
    let paths = paths.as_object().expect("the manifest has OpenAPI paths");
    for route in &manifest.routes {
        let (method, path) = (&route.method, &route.path);
        let operation = paths
            .get(path)
            .and_then(|item| item.get(method.to_ascii_lowercase()))
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let summary = operation["summary"].as_str();
        assert!(
            summary.is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        let responses = operation["responses"].as_object();
        assert!(
            // A redirect (`GET /logs/auth` answers 307) is the route's answer too.
            responses.is_some_and(|r| r
                .keys()
                .any(|status| status.starts_with('2') || status.starts_with('3'))),
            "{method} {path} documents no success or redirect"
        );
        let documented: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    documented.contains(&name),
                    "{method} {path}: path parameter {name} is not documented"
                );
            }
        }
    }
    for (path, item) in paths {
        for method in item.as_object().into_iter().flat_map(|item| item.keys()) {
            let served = manifest
                .routes
                .iter()
                .any(|r| r.path == *path && r.method.eq_ignore_ascii_case(method));
            assert!(served, "{method} {path} is documented but not served");
        }
    }
    manifest
}

/// Matches `/items/{id}` style patterns segment by segment.
pub fn match_route(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut pattern_segments = pattern.trim_matches('/').split('/');
    let mut path_segments = path.trim_matches('/').split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(actual)) => {
                if let Some(name) = expected
                    .strip_prefix('{')
                    .and_then(|rest| rest.strip_suffix('}'))
                {
                    if actual.is_empty() {
                        return None;
                    }
                    params.insert(name.to_string(), actual.to_string());
                } else if expected != actual {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{extract::Id, host::Host, router::Router, Access, Json, Path};

    /// A plugin whose `{id}` route is documented only when `DOCUMENTED`.
    struct Shop<const DOCUMENTED: bool>;

    impl<const DOCUMENTED: bool> Shop<DOCUMENTED> {
        fn show(&self, Id(id): Id) -> Json<i64> {
            Json(id)
        }

        fn show_bare(&self, Path(id): Path<i64>) -> Json<i64> {
            Json(id)
        }
    }

    impl<const DOCUMENTED: bool> Plugin for Shop<DOCUMENTED> {
        fn manifest() -> Manifest {
            Manifest::new("shop", "Shop", "0.1.0", "/api/v1/shop")
        }

        fn router() -> Router<Self> {
            let router = Router::new();
            let router = if DOCUMENTED {
                router.get("/items/{id}", Access::Public, Self::show)
            } else {
                router.get("/items/{id}", Access::Public, Self::show_bare)
            };
            router.summary("One item")
        }

        fn new(_host: Host, _config: Value) -> Result<Self, String> {
            Ok(Shop)
        }
    }

    #[test]
    fn a_documented_route_table_passes_and_returns_the_manifest() {
        let manifest = assert_routes_documented::<Shop<true>>();
        assert_eq!(manifest.routes.len(), 1);
    }

    #[test]
    #[should_panic(expected = "GET /items/{id}: path parameter id is not documented")]
    fn an_undocumented_path_parameter_fails() {
        assert_routes_documented::<Shop<false>>();
    }
}
