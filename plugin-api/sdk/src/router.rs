//! The safe side of writing a plugin: the [`Plugin`] trait, the [`Router`]
//! that declares routes, jobs and event listeners with their handlers, and
//! the glue [`export_plugin!`](crate::export_plugin) generates, which is
//! where every FFI entry point is wrapped in `catch_unwind`.

use std::{
    cell::RefCell,
    collections::HashMap,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, Once, PoisonError,
    },
};

use abi_stable::{
    prefix_type::{PrefixTypeTrait, WithMetadata},
    sabi_trait::TD_Opaque,
    std_types::{RNone, RResult, RSome, RStr, RString, RVec},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    extract::FromRequest,
    ffi::{
        FfiChunk, FfiDetail, FfiError, FfiRequest, FfiResponse, HostBox, InstanceBox,
        PluginInstance, PluginInstance_TO, PluginModule, PluginModuleRef,
    },
    host::{Host, HostOp},
    http::{Chunks, Reads, Request, Response},
    manifest::{JobSpec, Manifest, RouteSpec},
    openapi::Operation,
    respond::IntoResponse,
    SDK_VERSION,
};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, authenticated or not.
    Public,
    /// Holders of this permission.
    Requires(&'static str),
}

/// A function the router can call for a route: `fn(&P, A, B, ...) -> R`
/// with up to eight [`FromRequest`] arguments and an [`IntoResponse`]
/// result. Implemented for every such function and closure; `Args` only
/// tells the implementations apart.
pub trait Handler<P, Args>: Send + Sync + 'static {
    /// Reads the arguments, runs the function, converts its result.
    fn call(&self, plugin: &P, request: Request) -> Response;

    /// What the arguments and the result add to the OpenAPI operation.
    fn document(operation: &mut Operation);

    /// The parts of the request its arguments read (see
    /// [`FromRequest::READS`]).
    fn reads() -> Reads {
        Reads::EVERYTHING
    }
}

macro_rules! handler_for {
    ($($arg:ident),*) => {
        #[allow(non_snake_case, unused_mut, unused_variables)]
        impl<P, F, R, $($arg,)*> Handler<P, ($($arg,)*)> for F
        where
            F: Fn(&P, $($arg),*) -> R + Send + Sync + 'static,
            R: IntoResponse,
            $($arg: FromRequest,)*
        {
            fn call(&self, plugin: &P, mut request: Request) -> Response {
                $(
                    let $arg = match $arg::from_request(&mut request) {
                        Ok(value) => value,
                        Err(rejection) => return rejection,
                    };
                )*
                self(plugin, $($arg),*).into_response()
            }

            fn document(operation: &mut Operation) {
                $($arg::document(operation);)*
                R::document(operation);
            }

            fn reads() -> Reads {
                Reads::NOTHING$(.and($arg::READS))*
            }
        }
    };
}

handler_for!();
handler_for!(A1);
handler_for!(A1, A2);
handler_for!(A1, A2, A3);
handler_for!(A1, A2, A3, A4);
handler_for!(A1, A2, A3, A4, A5);
handler_for!(A1, A2, A3, A4, A5, A6);
handler_for!(A1, A2, A3, A4, A5, A6, A7);
handler_for!(A1, A2, A3, A4, A5, A6, A7, A8);

/// Tells apart handlers that take the whole request by reference,
/// `fn(&P, &Request) -> R`: for the rare route that reads everything
/// itself (a raw upload, an unusual content type).
pub struct WholeRequest;

impl<P, F, R> Handler<P, (WholeRequest,)> for F
where
    F: Fn(&P, &Request) -> R + Send + Sync + 'static,
    R: IntoResponse,
{
    fn call(&self, plugin: &P, request: Request) -> Response {
        self(plugin, &request).into_response()
    }

    fn document(operation: &mut Operation) {
        R::document(operation);
    }
}

type BoxedHandler<P> = Box<dyn Fn(&P, Request) -> Response + Send + Sync>;
type BoxedTask<P> = Box<dyn Fn(&P) -> Result<(), String> + Send + Sync>;
type BoxedListener<P> = Box<dyn Fn(&P, &Event) -> Result<(), String> + Send + Sync>;

/// An event delivered to a plugin that subscribed to its topic.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Unique id.
    #[serde(default)]
    pub id: String,
    /// Full topic, e.g. `products.updated`.
    pub topic: String,
    /// Payload.
    #[serde(default)]
    pub data: Value,
    /// When it was published (RFC 3339).
    #[serde(default)]
    pub timestamp: String,
}

impl Event {
    /// The payload read into `T`.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.data.clone())
            .map_err(|error| format!("event {} has an unexpected payload: {error}", self.topic))
    }
}

/// The topic of the signal the host sends once an instance serves (after
/// a load or a reload), through `on_event`: not a valid bus topic, so no
/// published event can be mistaken for it.
pub const START_SIGNAL: &str = "!start";

struct Route<P> {
    spec: RouteSpec,
    handler: BoxedHandler<P>,
    operation: Operation,
    /// For a list route (one that takes the [`Window`](crate::listing::Window)
    /// extractor, which documents `skip`): every
    /// query parameter its extractors document. Any other is a 422 naming
    /// it, so a misspelt filter is never silently ignored.
    known_query: Option<Vec<String>>,
    /// The parts of a request its handler reads, and the query when it is
    /// checked against `known_query`: the only parts copied per call.
    reads: Reads,
}

/// The query parameters a list route accepts (see `Route::known_query`);
/// `None` for other routes.
fn known_query_of(operation: &Operation) -> Option<Vec<String>> {
    if operation.has_own_query_check() {
        return None;
    }
    let documented = operation.query_parameter_names();
    documented
        .iter()
        .any(|name| name == "skip")
        .then_some(documented)
}

/// The 422 for the query parameters of `request` that a list route does
/// not know, if any.
fn unknown_query(known: &[String], request: &Request) -> Option<Response> {
    let unknown: Vec<(&str, String)> = request
        .head
        .query
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !known.iter().any(|known| known == name))
        .map(|name| {
            (
                name,
                format!("unknown query parameter; known: {}", known.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        return None;
    }
    let details: Vec<(&str, &str)> = unknown
        .iter()
        .map(|(name, message)| (*name, message.as_str()))
        .collect();
    Some(Response::validation(&details))
}

/// Routes, jobs and event subscriptions, each declared once with its
/// handler. The same table produces the manifest's routes, jobs,
/// subscriptions and OpenAPI document, so nothing is served undeclared or
/// declared without being served.
pub struct Router<P> {
    routes: Vec<Route<P>>,
    jobs: Vec<(JobSpec, BoxedTask<P>)>,
    listeners: Vec<(String, BoxedListener<P>)>,
    start: Option<BoxedTask<P>>,
}

impl<P> Default for Router<P> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            jobs: Vec::new(),
            listeners: Vec::new(),
            start: None,
        }
    }
}

impl<P: 'static> Router<P> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route; `path` is relative to the prefix (`/items/{id}`).
    pub fn route<H, Args>(mut self, method: &str, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<P, Args>,
    {
        let spec = RouteSpec {
            method: method.to_ascii_uppercase(),
            path: path.into(),
            permission: match access {
                Access::Public => None,
                Access::Requires(permission) => Some(permission.into()),
            },
            blocking: false,
            max_body_bytes: None,
        };
        let mut operation = Operation::default();
        H::document(&mut operation);
        let known_query = known_query_of(&operation);
        let reads = if known_query.is_some() {
            H::reads().and(Reads::QUERY)
        } else {
            H::reads()
        };
        // A later declaration of the same method and path replaces the
        // earlier one.
        self.routes.retain(|existing| {
            !(existing.spec.method == spec.method && existing.spec.path == spec.path)
        });
        self.routes.push(Route {
            spec,
            handler: Box::new(move |plugin, request| handler.call(plugin, request)),
            operation,
            known_query,
            reads,
        });
        self
    }

    /// `GET`.
    pub fn get<H: Handler<P, Args>, Args>(self, path: &str, access: Access, handler: H) -> Self {
        self.route("GET", path, access, handler)
    }

    /// `POST`.
    pub fn post<H: Handler<P, Args>, Args>(self, path: &str, access: Access, handler: H) -> Self {
        self.route("POST", path, access, handler)
    }

    /// `PUT`.
    pub fn put<H: Handler<P, Args>, Args>(self, path: &str, access: Access, handler: H) -> Self {
        self.route("PUT", path, access, handler)
    }

    /// `PATCH`.
    pub fn patch<H: Handler<P, Args>, Args>(self, path: &str, access: Access, handler: H) -> Self {
        self.route("PATCH", path, access, handler)
    }

    /// `DELETE`.
    pub fn delete<H: Handler<P, Args>, Args>(self, path: &str, access: Access, handler: H) -> Self {
        self.route("DELETE", path, access, handler)
    }

    /// The router without its routes' OpenAPI documentation: what an
    /// instance keeps to serve. The documentation reached the host with the
    /// manifest, built from a router of its own; kept here it was a copy of
    /// every schema each route refers to, for as long as the instance
    /// lives.
    fn serving_only(mut self) -> Self {
        for route in &mut self.routes {
            route.operation = Operation::default();
        }
        self
    }

    /// Changes the OpenAPI operation of the last added route: a summary,
    /// a response the types do not tell (an error status, a CSV body).
    pub fn doc(mut self, describe: impl FnOnce(&mut Operation)) -> Self {
        if let Some(route) = self.routes.last_mut() {
            describe(&mut route.operation);
            // A parameter documented here is one the route reads.
            route.known_query = known_query_of(&route.operation);
        }
        self
    }

    /// Sets the summary of the last added route.
    pub fn summary(self, summary: &str) -> Self {
        self.doc(|operation| operation.summary(summary))
    }

    /// Marks the last added route as blocking (run on the host's blocking
    /// pool).
    pub fn blocking(mut self) -> Self {
        if let Some(route) = self.routes.last_mut() {
            route.spec.blocking = true;
        }
        self
    }

    /// Lets the last added route accept bodies up to `bytes` instead of the
    /// host's default (uploads, batches). The host caps it with its own
    /// `plugins.max_route_body_bytes`.
    pub fn max_body(mut self, bytes: u64) -> Self {
        if let Some(route) = self.routes.last_mut() {
            route.spec.max_body_bytes = Some(bytes);
        }
        self
    }

    /// Declares a job and its handler: the scheduler runs it as
    /// `<plugin id>.<name>`, and [`Host::run_job`] starts it now.
    pub fn job<E: std::fmt::Display>(
        mut self,
        name: &str,
        description: &str,
        task: impl Fn(&P) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.jobs.retain(|(spec, _)| spec.name != name);
        self.jobs.push((
            JobSpec {
                name: name.into(),
                description: description.into(),
            },
            Box::new(move |plugin| task(plugin).map_err(|error| error.to_string())),
        ));
        self
    }

    /// Subscribes to events: an exact topic (`products.updated`), or every
    /// topic under a prefix (`products.*`). The host delivers them off the
    /// request path, in publication order, one at a time per plugin.
    pub fn on<E: std::fmt::Display>(
        mut self,
        topic: &str,
        listener: impl Fn(&P, &Event) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.listeners.push((
            topic.into(),
            Box::new(move |plugin, event| listener(plugin, event).map_err(|e| e.to_string())),
        ));
        self
    }

    /// Runs `task` once the instance serves, after every load and reload
    /// (off the request path): to resume work a restart interrupted.
    pub fn on_start<E: std::fmt::Display>(
        mut self,
        task: impl Fn(&P) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.start = Some(Box::new(move |plugin| {
            task(plugin).map_err(|error| error.to_string())
        }));
        self
    }

    /// The declared routes.
    pub fn specs(&self) -> Vec<RouteSpec> {
        self.routes.iter().map(|route| route.spec.clone()).collect()
    }

    /// Fills what the router knows into `manifest`: routes (unless written
    /// by hand), jobs, subscriptions, the start hook and the OpenAPI
    /// document (unless written by hand).
    pub fn describe(&self, manifest: &mut Manifest) {
        if manifest.routes.is_empty() {
            manifest.routes = self.specs();
        }
        for (spec, _) in &self.jobs {
            if !manifest.jobs.iter().any(|known| known.name == spec.name) {
                manifest.jobs.push(spec.clone());
            }
        }
        manifest.subscriptions = self
            .listeners
            .iter()
            .map(|(topic, _)| topic.clone())
            .collect();
        manifest.on_start = self.start.is_some();
        if manifest.openapi.is_none() {
            let (paths, schemas) = crate::openapi::document(
                &manifest.id,
                self.routes.iter().map(|route| {
                    (
                        route.spec.method.clone(),
                        route.spec.path.clone(),
                        route.operation.clone(),
                    )
                }),
            );
            manifest.openapi = Some(paths);
            manifest.openapi_schemas = Some(schemas);
        }
    }

    /// Runs the handler of the route the host matched, given the whole
    /// request (the host's calls go through the instance, which copies
    /// only what the handler reads).
    pub fn dispatch(&self, plugin: &P, request: Request) -> Response {
        let head = &request.head;
        match self.find(None, &head.method, &head.route) {
            Some(route) => Self::serve(route, plugin, request),
            None => Response::not_found(&format!("no route {} {}", head.method, head.route)),
        }
    }

    /// The route for `method` and `pattern`, trying the host's index first:
    /// it is the manifest's, which is this table's unless the plugin wrote
    /// its routes by hand, so it is checked before it is trusted.
    fn find(&self, index: Option<usize>, method: &str, pattern: &str) -> Option<&Route<P>> {
        let matches = |route: &&Route<P>| route.spec.method == method && route.spec.path == pattern;
        let hinted = index
            .and_then(|index| self.routes.get(index))
            .filter(matches);
        // Otherwise a scan: a plugin has a handful of routes, and a scan
        // beats hashing or building an owned key.
        hinted.or_else(|| self.routes.iter().find(matches))
    }

    /// Checks a list route's query, then runs the handler.
    fn serve(route: &Route<P>, plugin: &P, request: Request) -> Response {
        let refused = route
            .known_query
            .as_deref()
            .and_then(|known| unknown_query(known, &request));
        refused.unwrap_or_else(|| (route.handler)(plugin, request))
    }

    /// Runs a declared job.
    fn run_job(&self, plugin: &P, name: &str) -> Result<(), String> {
        match self.jobs.iter().find(|(spec, _)| spec.name == name) {
            Some((_, task)) => task(plugin),
            None => Err(format!("no job named {name}")),
        }
    }

    /// The listeners whose pattern matches `topic`.
    fn listeners_of<'r>(&'r self, topic: &'r str) -> impl Iterator<Item = &'r BoxedListener<P>> {
        self.listeners
            .iter()
            .filter(move |(pattern, _)| topic_matches(pattern, topic))
            .map(|(_, listener)| listener)
    }
}

/// `products.*` matches `products.created` and `products.import.done`;
/// any other pattern matches itself only.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix) && (prefix.is_empty() || prefix.ends_with('.')),
        None => pattern == topic,
    }
}

/// A plugin. Only `manifest`, `router` and `new` are required.
pub trait Plugin: Sized + Send + Sync + 'static {
    /// The plugin's identity; its routes, jobs and subscriptions come from
    /// [`Plugin::router`].
    fn manifest() -> Manifest;

    /// The routes, jobs and event listeners, with their handlers.
    fn router() -> Router<Self>;

    /// Builds an instance from the host's services and the plugin's
    /// `[plugins.<id>]` configuration.
    fn new(host: Host, config: serde_json::Value) -> Result<Self, String>;

    /// Releases resources before the host drops the instance.
    fn shutdown(&self) {}
}

thread_local! {
    /// The message of the last panic on this thread, recorded by the quiet
    /// hook for the error the host will see.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Replaces the default panic hook of this plugin's copy of std: the default
/// one prints to stderr and, with `RUST_BACKTRACE` set, resolves a backtrace,
/// which costs tens of MB per loaded copy. This one only records the message.
fn install_quiet_panic_hook() {
    QUIET_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{message}{location}")));
        }));
    });
}

fn take_panic_message() -> String {
    LAST_PANIC
        .with(|last| last.borrow_mut().take())
        .unwrap_or_else(|| "the plugin panicked".to_string())
}

/// A response as it crosses: an error structured, a stream registered in
/// `streams` under a fresh id.
fn to_ffi(response: Response, panicked: bool, streams: &Streams) -> FfiResponse {
    let error = match response.error {
        Some(error) => RSome(FfiError {
            code: error.code.into(),
            message: error.message.into(),
            details: error
                .details
                .into_iter()
                .map(|detail| FfiDetail {
                    field: detail.field.into(),
                    message: detail.message.into(),
                })
                .collect(),
        }),
        None => RNone,
    };
    let stream = match response.stream.and_then(|stream| stream.take()) {
        Some(chunks) => RSome(streams.open(chunks)),
        None => RNone,
    };
    FfiResponse {
        status: response.status,
        headers: headers_json(&response.headers).into(),
        body: response.body.into(),
        panicked,
        error,
        stream,
        #[cfg(feature = "abi-break-test")]
        layout_break: 0,
    }
}

/// The streamed bodies the host is still pulling, by id.
#[derive(Default)]
struct Streams {
    next_id: AtomicU64,
    state: Mutex<StreamTable>,
}

#[derive(Default)]
struct StreamTable {
    /// Streams between two pulls.
    idle: HashMap<u64, Chunks>,
    /// Streams whose iterator is running now (it is out of `idle`).
    pulling: std::collections::HashSet<u64>,
    /// Streams of `pulling` the host closed meanwhile: the pull drops
    /// them instead of putting them back.
    closed_while_pulled: std::collections::HashSet<u64>,
}

impl Streams {
    fn open(&self, chunks: Chunks) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().idle.insert(id, chunks);
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamTable> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next chunk of `id`. The iterator leaves the table while it
    /// runs, so slow chunks of one stream never hold up the others.
    fn next(&self, id: u64) -> FfiChunk {
        let mut chunks = {
            let mut table = self.lock();
            let Some(chunks) = table.idle.remove(&id) else {
                return FfiChunk::Failed(format!("no open stream {id}").into());
            };
            table.pulling.insert(id);
            chunks
        };
        let pulled = catch_unwind(AssertUnwindSafe(|| chunks.next()));
        let mut table = self.lock();
        table.pulling.remove(&id);
        let closed = table.closed_while_pulled.remove(&id);
        match pulled {
            Ok(Some(Ok(data))) if !closed => {
                table.idle.insert(id, chunks);
                FfiChunk::Data(RVec::from(data))
            }
            Ok(Some(Ok(_))) => {
                drop(table);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(chunks)));
                FfiChunk::End
            }
            Ok(None) => FfiChunk::End,
            Ok(Some(Err(message))) => FfiChunk::Failed(message.into()),
            Err(_) => {
                FfiChunk::Failed(format!("the stream panicked: {}", take_panic_message()).into())
            }
        }
    }

    /// Drops stream `id` now, or, if a pull of it is running (the host
    /// gave up waiting for it), as soon as that pull ends. A stream that
    /// already ended leaves nothing behind.
    fn close(&self, id: u64) {
        let mut table = self.lock();
        let chunks = table.idle.remove(&id);
        if table.pulling.contains(&id) {
            table.closed_while_pulled.insert(id);
        }
        drop(table);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(chunks)));
    }

    fn close_all(&self) {
        let mut table = self.lock();
        let all = std::mem::take(&mut table.idle);
        let running: Vec<u64> = table.pulling.iter().copied().collect();
        table.closed_while_pulled.extend(running);
        drop(table);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(all)));
    }
}

/// Response headers as the JSON object the host reads. The common case,
/// a JSON body, is a constant.
fn headers_json(headers: &[(String, String)]) -> String {
    match headers {
        [] => "{}".to_string(),
        [(name, value)] if name == "content-type" && value == "application/json" => {
            r#"{"content-type":"application/json"}"#.to_string()
        }
        _ => {
            let map: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
                .collect();
            serde_json::Value::Object(map).to_string()
        }
    }
}

/// Runs a handler with panics caught: a panic becomes a `PLUGIN_ERROR`
/// answer flagged for the host's quarantine count.
fn guarded(streams: &Streams, handler: impl FnOnce() -> Response) -> FfiResponse {
    match catch_unwind(AssertUnwindSafe(handler)) {
        Ok(response) => to_ffi(response, false, streams),
        Err(_) => to_ffi(
            Response::plugin_error(&format!("the plugin panicked: {}", take_panic_message())),
            true,
            streams,
        ),
    }
}

/// The manifest with what the router declares.
pub fn full_manifest<P: Plugin>() -> Manifest {
    let mut manifest = P::manifest();
    P::router().describe(&mut manifest);
    manifest
}

struct Instance<P: Plugin> {
    plugin: P,
    router: Router<P>,
    host: Host,
    streams: Streams,
}

impl<P: Plugin> Instance<P> {
    /// Runs an event or start handler with panics caught, and tells the
    /// host when it failed (the host logs and counts it like a failing
    /// route; there is nobody else to answer).
    fn notify(&self, kind: &str, topic: &str, work: impl FnOnce() -> Result<(), String>) {
        let (message, panicked) = match catch_unwind(AssertUnwindSafe(work)) {
            Ok(Ok(())) => return,
            Ok(Err(message)) => (message, false),
            Err(_) => (take_panic_message(), true),
        };
        let _ = self.host.run::<Value>(&HostOp::HandlerFailed {
            kind: kind.into(),
            topic: topic.into(),
            message,
            panicked,
        });
    }
}

impl<P: Plugin> PluginInstance for Instance<P> {
    fn handle(&self, request: FfiRequest<'_>) -> FfiResponse {
        guarded(&self.streams, || {
            let (method, pattern) = (request.method.as_str(), request.route.as_str());
            match self.router.find(Some(request.route_index), method, pattern) {
                // Only what the handler reads is copied out of the host's
                // request.
                Some(route) => Router::serve(
                    route,
                    &self.plugin,
                    Request::from_ffi_reading(&request, route.reads),
                ),
                None => Response::not_found(&format!("no route {method} {pattern}")),
            }
        })
    }

    fn run_job(&self, name: RStr<'_>) -> RResult<(), RString> {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.router.run_job(&self.plugin, name.as_str())
        }));
        match outcome {
            Ok(Ok(())) => RResult::ROk(()),
            Ok(Err(message)) => RResult::RErr(message.into()),
            Err(_) => RResult::RErr(format!("the job panicked: {}", take_panic_message()).into()),
        }
    }

    fn on_event(&self, event: RStr<'_>) {
        let event: Event = match serde_json::from_str(event.as_str()) {
            Ok(event) => event,
            Err(error) => {
                return self.notify("event", "", || Err(format!("unreadable event: {error}")))
            }
        };
        if event.topic == START_SIGNAL {
            if let Some(start) = &self.router.start {
                self.notify("start", "", || start(&self.plugin));
            }
            return;
        }
        for listener in self.router.listeners_of(&event.topic) {
            self.notify("event", &event.topic, || listener(&self.plugin, &event));
        }
    }

    fn shutdown(&self) {
        self.streams.close_all();
        let _ = catch_unwind(AssertUnwindSafe(|| self.plugin.shutdown()));
    }

    fn next_chunk(&self, stream: u64) -> FfiChunk {
        self.streams.next(stream)
    }

    fn close_stream(&self, stream: u64) {
        self.streams.close(stream);
    }
}

/// `PluginModule::api_version`.
pub extern "C" fn api_version() -> RString {
    SDK_VERSION.into()
}

/// `PluginModule::manifest` for `P`.
pub extern "C" fn manifest<P: Plugin>() -> RResult<RString, RString> {
    install_quiet_panic_hook();
    match catch_unwind(|| serde_json::to_string(&full_manifest::<P>())) {
        Ok(Ok(json)) => RResult::ROk(json.into()),
        Ok(Err(error)) => RResult::RErr(format!("cannot encode the manifest: {error}").into()),
        Err(_) => RResult::RErr(format!("manifest() panicked: {}", take_panic_message()).into()),
    }
}

/// `PluginModule::instantiate` for `P`.
pub extern "C" fn instantiate<P: Plugin>(
    host: HostBox,
    config: RString,
) -> RResult<InstanceBox, RString> {
    install_quiet_panic_hook();
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let config = serde_json::from_str(config.as_str()).unwrap_or(serde_json::Value::Null);
        let host = Host::new(host);
        P::new(host.clone(), config).map(|plugin| Instance {
            plugin,
            router: P::router().serving_only(),
            host,
            streams: Streams::default(),
        })
    }));
    match outcome {
        Ok(Ok(instance)) => RResult::ROk(PluginInstance_TO::from_value(instance, TD_Opaque)),
        Ok(Err(message)) => RResult::RErr(message.into()),
        Err(_) => RResult::RErr(format!("new() panicked: {}", take_panic_message()).into()),
    }
}

/// The root module for `P`; what `export_plugin!` exports.
pub fn root_module<P: Plugin>() -> PluginModuleRef {
    PluginModule {
        api_version,
        manifest: manifest::<P>,
        instantiate: instantiate::<P>,
    }
    .leak_into_prefix()
}

/// Keeps `WithMetadata` reachable for the prefix-type machinery in docs.
#[doc(hidden)]
pub type _ModuleWithMetadata = WithMetadata<PluginModule>;

/// The symbol abi_stable's loader looks up in a plugin library (what
/// `#[export_root_module]` would name it); checked against abi_stable's
/// own constant by a test, so an abi_stable upgrade that renames it fails
/// the build's tests instead of every plugin at load time.
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Exports `$plugin` as this library's xcore plugin. Everything it expands
/// to goes through `xcore_plugin_sdk`, so a plugin crate needs no
/// `abi_stable` dependency of its own.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // A module of its own keeps the allowances local: what follows is
        // what abi_stable's `#[export_root_module]` generates (an exported
        // static header whose constructor is unsafe to call), written with
        // paths through this crate.
        #[allow(missing_docs, unsafe_code, non_upper_case_globals)]
        mod xcore_plugin_export {
            use super::*;

            pub fn xcore_plugin_root_module() -> $crate::ffi::PluginModuleRef {
                $crate::router::root_module::<$plugin>()
            }

            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static XCORE_PLUGIN_HEADER: $crate::abi_stable::library::LibHeader = {
                extern "C" fn erased_module() -> $crate::abi_stable::library::RootModuleResult {
                    $crate::abi_stable::library::__call_root_module_loader(xcore_plugin_root_module)
                }
                unsafe {
                    $crate::abi_stable::library::LibHeader::from_constructor::<
                        $crate::ffi::PluginModuleRef,
                    >(
                        erased_module,
                        $crate::abi_stable::library::CheckTypeLayout::Yes,
                    )
                }
            };
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_loads() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    #[test]
    fn a_stream_closed_mid_pull_is_dropped_and_nothing_is_left_behind() {
        use std::sync::{mpsc, Arc};

        let streams = Arc::new(Streams::default());
        // A stream whose second chunk waits for the test's signal.
        let (go, wait) = mpsc::channel::<()>();
        let mut sent = 0;
        let chunks: Chunks = Box::new(std::iter::from_fn(move || {
            sent += 1;
            if sent == 2 {
                wait.recv().ok()?;
            }
            Some(Ok(vec![b'x']))
        }));
        let id = streams.open(chunks);
        assert_eq!(streams.next(id), FfiChunk::Data(RVec::from(vec![b'x'])));
        let pulling = {
            let streams = streams.clone();
            std::thread::spawn(move || streams.next(id))
        };
        while !streams.lock().pulling.contains(&id) {
            std::thread::yield_now();
        }
        streams.close(id);
        go.send(()).expect("signal");
        assert_eq!(pulling.join().expect("pull"), FfiChunk::End);
        let table = streams.lock();
        assert!(table.idle.is_empty() && table.pulling.is_empty());
        assert!(table.closed_while_pulled.is_empty());
        drop(table);

        // Closing a stream that already ended, or never existed, keeps
        // nothing.
        let ended = streams.open(Box::new(std::iter::empty()));
        assert_eq!(streams.next(ended), FfiChunk::End);
        streams.close(ended);
        streams.close(9_999);
        assert!(streams.lock().closed_while_pulled.is_empty());
    }

    #[test]
    fn topic_patterns_match_whole_segments() {
        assert!(topic_matches("products.updated", "products.updated"));
        assert!(topic_matches("products.*", "products.import.done"));
        assert!(!topic_matches("products.*", "productsx.updated"));
        assert!(!topic_matches("products.updated", "products.updated.more"));
        assert!(topic_matches("*", "anything"));
    }
}

#[cfg(test)]
mod handler_forms {
    use super::*;
    use crate::{extract::Json, listing::Window, respond::Created};

    struct Shop;

    fn whole(_: &Shop, request: &Request) -> Result<Response, Response> {
        Ok(Response::json(200, &request.head.route))
    }

    fn typed(_: &Shop, window: Window, Json(body): Json<Value>) -> Created<Value> {
        Created(json_window(window, body))
    }

    fn json_window(window: Window, body: Value) -> Value {
        serde_json::json!({"limit": window.limit, "body": body})
    }

    #[test]
    fn a_list_route_refuses_query_parameters_it_does_not_document() {
        let router = Router::<Shop>::new()
            .get("/list", Access::Public, |_: &Shop, window: Window| {
                Json(json_window(window, Value::Null))
            })
            .get("/whole", Access::Public, whole);
        let get = |route: &str, query: &[(&str, &str)]| {
            let mut request = Request::default();
            request.head.method = "GET".into();
            request.head.route = route.into();
            request.head.query = query
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
            router.dispatch(&Shop, request)
        };
        assert_eq!(get("/list", &[("limit", "5"), ("page", "2")]).status, 200);
        let refused = get("/list", &[("limit", "5"), ("colour", "red"), ("sort", "x")]);
        assert_eq!(refused.status, 422);
        let fields: Vec<&str> = refused
            .error
            .as_ref()
            .expect("structured")
            .details
            .iter()
            .map(|detail| detail.field.as_str())
            .collect();
        assert_eq!(fields, ["colour", "sort"]);
        // A route that does not page reads what it wants.
        assert_eq!(get("/whole", &[("anything", "1")]).status, 200);
    }

    #[test]
    fn both_forms_register_and_run() {
        let router = Router::<Shop>::new()
            .get("/whole", Access::Public, whole)
            .post("/typed", Access::Public, typed);
        let mut request = Request::default();
        request.head.method = "POST".into();
        request.head.route = "/typed".into();
        request.body = br#"{"a": 1}"#.to_vec();
        let answer = router.dispatch(&Shop, request);
        assert_eq!(answer.status, 201);
        let mut broken = Request::default();
        broken.head.method = "POST".into();
        broken.head.route = "/typed".into();
        broken.body = b"{".to_vec();
        assert_eq!(router.dispatch(&Shop, broken).status, 400);
        let mut get = Request::default();
        get.head.method = "GET".into();
        get.head.route = "/whole".into();
        assert_eq!(router.dispatch(&Shop, get).status, 200);
    }
}
