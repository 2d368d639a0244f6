//! A generation: one loaded copy of a plugin library with its live
//! instance and route table, and the atomically swapped table of enabled
//! generations the dispatcher reads.
//!
//! Requests hold an `Arc<Generation>` for their whole duration, so a reload
//! or a disable never cuts one short: the old generation is dropped after
//! its last request, its instance is shut down, and only then is its
//! library closed.

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc,
};

use abi_stable::std_types::RStr;
use xcore_plugin_sdk::{
    ffi::{FfiChunk, FfiRequest, InstanceBox},
    manifest::RouteSpec,
    Manifest,
};

use crate::{error::FieldError, observability::metrics::intern_label};

use super::{library::LoadedLibrary, openapi_text::OpenApiText, prefix::is_within};

/// A plugin response copied into host memory (nothing in it points into
/// the library, which may be closed once the request's generation drops).
#[derive(Debug)]
pub struct PluginResponse {
    /// HTTP status.
    pub status: u16,
    /// The body is JSON (`content-type: application/json`, what the SDK's
    /// JSON answers carry; kept apart so it costs no allocation).
    pub json: bool,
    /// Other headers.
    pub headers: Vec<(String, String)>,
    /// Body (with `stream`, its first bytes).
    pub body: Vec<u8>,
    /// The handler panicked.
    pub panicked: bool,
    /// A standard error to render: the body is then empty.
    pub error: Option<PluginError>,
    /// The rest of the body is pulled with [`Generation::next_chunk`].
    pub stream: Option<u64>,
}

impl PluginResponse {
    /// An answer with no body and nothing else.
    pub fn bare(status: u16) -> Self {
        Self {
            status,
            json: false,
            headers: Vec::new(),
            body: Vec::new(),
            panicked: false,
            error: None,
            stream: None,
        }
    }
}

/// The standard error a plugin answered with, in host memory.
#[derive(Debug)]
pub struct PluginError {
    /// Its code, as the plugin chose it.
    pub code: String,
    /// Its message.
    pub message: String,
    /// Offending fields.
    pub details: Vec<FieldError>,
}

/// One loaded, instantiated copy of a plugin.
pub struct Generation {
    /// Plugin id.
    pub id: String,
    /// Mount point.
    pub prefix: String,
    /// The manifest, in host memory, without its OpenAPI parts.
    pub manifest: Manifest,
    /// The manifest's OpenAPI `paths` and schemas, as JSON text.
    pub openapi: OpenApiText,
    /// Generation number, counting loads of this plugin.
    pub number: u64,
    routes: matchit::Router<Vec<usize>>,
    /// `prefix + route pattern` per route, the metrics label, interned.
    labels: Vec<&'static str>,
    /// Panics in a row, reset by any answer that did not panic.
    panic_streak: AtomicU32,
    // Declared before `library`: the instance must go first (see Drop).
    instance: Option<InstanceBox>,
    library: LoadedLibrary,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

/// What matching a path inside a plugin found.
pub enum RouteMatch<'g, 'p> {
    /// A route (its index in the manifest) and its path parameters.
    Found(usize, Vec<(&'g str, &'p str)>),
    /// The path exists with other methods.
    WrongMethod(Vec<String>),
    /// No such path.
    Missing,
}

impl Generation {
    /// Builds a generation from a loaded library and its instance.
    pub fn new(
        mut library: LoadedLibrary,
        instance: InstanceBox,
        prefix: String,
        number: u64,
    ) -> Result<Self, String> {
        // Moved, not copied (the library's are not read again): the
        // OpenAPI text is the largest thing a plugin leaves in host memory.
        let manifest = std::mem::take(&mut library.manifest);
        let openapi = std::mem::take(&mut library.openapi);
        let mut routes: matchit::Router<Vec<usize>> = matchit::Router::new();
        let mut by_path: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, route) in manifest.routes.iter().enumerate() {
            match by_path.iter_mut().find(|(path, _)| *path == route.path) {
                Some((_, indices)) => indices.push(index),
                None => by_path.push((route.path.clone(), vec![index])),
            }
        }
        for (path, indices) in by_path {
            routes
                .insert(path.clone(), indices)
                .map_err(|error| format!("route {path} is invalid: {error}"))?;
        }
        let labels: Vec<&'static str> = manifest
            .routes
            .iter()
            .map(|route| intern_label(&format!("{prefix}{}", route.path)))
            .collect();
        Ok(Self {
            id: manifest.id.clone(),
            labels,
            panic_streak: AtomicU32::new(0),
            prefix,
            manifest,
            openapi,
            number,
            routes,
            instance: Some(instance),
            library,
        })
    }

    /// The loaded library's identity.
    pub fn library(&self) -> &LoadedLibrary {
        &self.library
    }

    /// Matches a path relative to the prefix.
    pub fn route<'g, 'p>(&'g self, method: &str, path: &'p str) -> RouteMatch<'g, 'p> {
        let Ok(matched) = self.routes.at(path) else {
            return RouteMatch::Missing;
        };
        let routes = &self.manifest.routes;
        match matched
            .value
            .iter()
            .find(|index| routes[**index].method == method)
        {
            Some(index) => RouteMatch::Found(*index, matched.params.iter().collect()),
            None => RouteMatch::WrongMethod(
                matched
                    .value
                    .iter()
                    .map(|index| routes[*index].method.clone())
                    .collect(),
            ),
        }
    }

    /// The route at `index` of the manifest.
    pub fn spec(&self, index: usize) -> &RouteSpec {
        &self.manifest.routes[index]
    }

    /// Every route's metrics label.
    pub fn labels(&self) -> &[&'static str] {
        &self.labels
    }

    /// The metrics label (`prefix + pattern`) of route `index`.
    pub fn label(&self, index: usize) -> &'static str {
        self.labels[index]
    }

    /// Calls the plugin's handler and copies the answer into host memory.
    pub fn handle(&self, request: FfiRequest<'_>) -> PluginResponse {
        let Some(instance) = &self.instance else {
            return PluginResponse::bare(503);
        };
        let response = instance.handle(request);
        let (json, headers) = match response.headers.as_str() {
            "" | "{}" => (false, Vec::new()),
            // What the SDK's JSON responses carry: skip the parse.
            r#"{"content-type":"application/json"}"# => (true, Vec::new()),
            json => (
                false,
                serde_json::from_str::<std::collections::BTreeMap<String, String>>(json)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            ),
        };
        PluginResponse {
            status: response.status,
            json,
            headers,
            body: response.body.as_slice().to_vec(),
            panicked: response.panicked,
            error: response
                .error
                .as_ref()
                .into_option()
                .map(|error| PluginError {
                    code: error.code.to_string(),
                    message: error.message.to_string(),
                    details: error
                        .details
                        .iter()
                        .map(|detail| {
                            FieldError::new(detail.field.as_str(), detail.message.as_str())
                        })
                        .collect(),
                }),
            stream: response.stream.into_option(),
        }
    }

    /// The next chunk of streamed body `stream`, copied into host memory:
    /// `Ok(None)` at the end, `Err` when the plugin could not go on.
    pub fn next_chunk(&self, stream: u64) -> Result<Option<Vec<u8>>, String> {
        let Some(instance) = &self.instance else {
            return Err("the plugin instance is gone".into());
        };
        match instance.next_chunk(stream) {
            FfiChunk::Data(data) => Ok(Some(data.into_vec())),
            FfiChunk::End => Ok(None),
            FfiChunk::Failed(message) => Err(message.into_string()),
        }
    }

    /// Tells the plugin that `stream` will not be read further.
    pub fn close_stream(&self, stream: u64) {
        if let Some(instance) = &self.instance {
            instance.close_stream(stream);
        }
    }
}

impl Generation {
    /// Runs one of the plugin's jobs on this thread; the error says why it
    /// failed (a panic included).
    pub fn run_job(&self, name: &str) -> Result<(), String> {
        let Some(instance) = &self.instance else {
            return Err("the plugin instance is gone".into());
        };
        instance
            .run_job(RStr::from_str(name))
            .into_result()
            .map_err(|error| error.into_string())
    }

    /// Hands one event (JSON) to the instance, on this thread. The SDK
    /// catches what its listeners do and reports failures through the
    /// host's services.
    pub fn on_event(&self, event: &str) {
        if let Some(instance) = &self.instance {
            instance.on_event(RStr::from_str(event));
        }
    }

    /// Whether the manifest declares job `name`.
    pub fn has_job(&self, name: &str) -> bool {
        self.manifest.jobs.iter().any(|job| job.name == name)
    }

    /// Records whether a call panicked; the current streak of panics.
    pub fn record_outcome(&self, panicked: bool) -> u32 {
        if panicked {
            self.panic_streak.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            // Read first: an unconditional store would bounce this cache
            // line between cores on every request.
            if self.panic_streak.load(Ordering::Relaxed) != 0 {
                self.panic_streak.store(0, Ordering::Relaxed);
            }
            0
        }
    }

    /// Forgets past panics (an administrator re-enabled the plugin).
    pub fn clear_panics(&self) {
        self.panic_streak.store(0, Ordering::Relaxed);
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.shutdown();
            drop(instance);
        }
        tracing::debug!(
            plugin = self.id.as_str(),
            generation = self.number,
            "generation closed"
        );
    }
}

/// What runs beside the dispatcher (on-demand jobs, event deliveries)
/// needs from whoever owns the table of serving generations: the table,
/// and the quarantine rule. The plugin manager implements it; taking this
/// instead of the manager keeps those modules below it.
pub trait Serving: Send + Sync {
    /// The serving generations now.
    fn table(&self) -> arc_swap::Guard<Arc<RouteTable>>;

    /// Panics in a row that take a plugin out of service.
    fn quarantine_after_panics(&self) -> u32;

    /// Quarantines `id` in the background (the caller must not wait).
    fn quarantine_later(&self, id: &str, streak: u32);
}

/// The enabled generations, longest prefix first.
#[derive(Debug, Default)]
pub struct RouteTable {
    generations: Vec<Arc<Generation>>,
}

impl RouteTable {
    /// A table of these generations.
    pub fn new(mut generations: Vec<Arc<Generation>>) -> Self {
        generations.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        Self { generations }
    }

    /// The generation whose prefix is the longest one `path` lies under.
    pub fn find(&self, path: &str) -> Option<&Arc<Generation>> {
        self.generations
            .iter()
            .find(|generation| is_within(path, &generation.prefix))
    }

    /// All enabled generations.
    pub fn generations(&self) -> &[Arc<Generation>] {
        &self.generations
    }
}
