//! The safe side of writing a plugin: the [`Plugin`] trait, a [`Router`],
//! and the glue [`export_plugin!`](crate::export_plugin) generates, which
//! is where every FFI entry point is wrapped in `catch_unwind`.

use std::{
    cell::RefCell,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Once,
};

use abi_stable::{
    prefix_type::{PrefixTypeTrait, WithMetadata},
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString},
};

use crate::{
    ffi::{
        FfiRequest, FfiResponse, HostBox, InstanceBox, PluginInstance, PluginInstance_TO,
        PluginModule, PluginModuleRef,
    },
    host::Host,
    http::{Request, Response},
    manifest::{Manifest, RouteSpec},
    PLUGIN_API_VERSION,
};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, authenticated or not.
    Public,
    /// Holders of this permission.
    Requires(&'static str),
}

/// A route handler.
pub type Handler<P> = fn(&P, &Request) -> Result<Response, Response>;

/// Routes and their handlers. The same table produces the manifest's
/// routes, so a route cannot be served without being declared.
pub struct Router<P> {
    routes: Vec<(RouteSpec, Handler<P>)>,
}

impl<P> Default for Router<P> {
    fn default() -> Self {
        Self { routes: Vec::new() }
    }
}

impl<P> Router<P> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route; `path` is relative to the prefix (`/items/{id}`).
    pub fn route(mut self, method: &str, path: &str, access: Access, handler: Handler<P>) -> Self {
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
        // A later declaration of the same method and path replaces the
        // earlier one.
        self.routes.retain(|(existing, _)| {
            !(existing.method == spec.method && existing.path == spec.path)
        });
        self.routes.push((spec, handler));
        self
    }

    /// Marks the last added route as blocking (run on the host's blocking
    /// pool).
    pub fn blocking(mut self) -> Self {
        if let Some((spec, _)) = self.routes.last_mut() {
            spec.blocking = true;
        }
        self
    }

    /// Lets the last added route accept bodies up to `bytes` instead of the
    /// host's default (uploads, batches). The host caps it with its own
    /// `plugins.max_route_body_bytes`.
    pub fn max_body(mut self, bytes: u64) -> Self {
        if let Some((spec, _)) = self.routes.last_mut() {
            spec.max_body_bytes = Some(bytes);
        }
        self
    }

    /// `GET`.
    pub fn get(self, path: &str, access: Access, handler: Handler<P>) -> Self {
        self.route("GET", path, access, handler)
    }

    /// `POST`.
    pub fn post(self, path: &str, access: Access, handler: Handler<P>) -> Self {
        self.route("POST", path, access, handler)
    }

    /// `PUT`.
    pub fn put(self, path: &str, access: Access, handler: Handler<P>) -> Self {
        self.route("PUT", path, access, handler)
    }

    /// `DELETE`.
    pub fn delete(self, path: &str, access: Access, handler: Handler<P>) -> Self {
        self.route("DELETE", path, access, handler)
    }

    /// The declared routes.
    pub fn specs(&self) -> Vec<RouteSpec> {
        self.routes.iter().map(|(spec, _)| spec.clone()).collect()
    }

    /// Runs the handler of the route the host matched.
    pub fn dispatch(&self, plugin: &P, request: &Request) -> Response {
        self.dispatch_at(None, plugin, request)
    }

    /// Like [`Router::dispatch`], starting from the host's route index:
    /// it is the manifest's, which is this table's unless the plugin wrote
    /// its routes by hand, so it is checked before it is trusted.
    fn dispatch_at(&self, index: Option<usize>, plugin: &P, request: &Request) -> Response {
        let head = &request.head;
        let matches = |spec: &RouteSpec| spec.method == head.method && spec.path == head.route;
        let hinted = index
            .and_then(|index| self.routes.get(index))
            .filter(|(spec, _)| matches(spec));
        // Otherwise a scan: a plugin has a handful of routes, and a scan
        // beats hashing or building an owned key.
        match hinted.or_else(|| self.routes.iter().find(|(spec, _)| matches(spec))) {
            Some((_, handler)) => handler(plugin, request).unwrap_or_else(|error| error),
            None => Response::not_found(&format!("no route {} {}", head.method, head.route)),
        }
    }
}

/// A plugin. Only `manifest`, `router` and `new` are required.
pub trait Plugin: Sized + Send + Sync + 'static {
    /// The plugin's identity; its routes come from [`Plugin::router`].
    fn manifest() -> Manifest;

    /// The routes and their handlers.
    fn router() -> Router<Self>;

    /// Builds an instance from the host's services and the plugin's
    /// `[plugins.<id>]` configuration.
    fn new(host: Host, config: serde_json::Value) -> Result<Self, String>;

    /// Runs a declared job.
    fn run_job(&self, name: &str) -> Result<(), String> {
        Err(format!("no job named {name}"))
    }

    /// Receives an event.
    fn on_event(&self, _event: serde_json::Value) {}

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

fn to_ffi(response: Response, panicked: bool) -> FfiResponse {
    FfiResponse {
        status: response.status,
        headers: headers_json(&response.headers).into(),
        body: response.body.into(),
        panicked,
        #[cfg(feature = "abi-break-test")]
        layout_break: 0,
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
fn guarded(handler: impl FnOnce() -> Response) -> FfiResponse {
    match catch_unwind(AssertUnwindSafe(handler)) {
        Ok(response) => to_ffi(response, false),
        Err(_) => to_ffi(
            Response::plugin_error(&format!("the plugin panicked: {}", take_panic_message())),
            true,
        ),
    }
}

/// The manifest with the router's routes.
pub fn full_manifest<P: Plugin>() -> Manifest {
    let mut manifest = P::manifest();
    if manifest.routes.is_empty() {
        manifest.routes = P::router().specs();
    }
    manifest
}

struct Instance<P: Plugin> {
    plugin: P,
    router: Router<P>,
}

impl<P: Plugin> PluginInstance for Instance<P> {
    fn handle(&self, request: FfiRequest<'_>) -> FfiResponse {
        guarded(|| {
            let owned = Request {
                head: request.to_head(),
                body: request.body.as_slice().to_vec(),
            };
            self.router
                .dispatch_at(Some(request.route_index), &self.plugin, &owned)
        })
    }

    fn run_job(&self, name: RStr<'_>) -> RResult<(), RString> {
        match catch_unwind(AssertUnwindSafe(|| self.plugin.run_job(name.as_str()))) {
            Ok(Ok(())) => RResult::ROk(()),
            Ok(Err(message)) => RResult::RErr(message.into()),
            Err(_) => RResult::RErr(format!("the job panicked: {}", take_panic_message()).into()),
        }
    }

    fn on_event(&self, event: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(event) = serde_json::from_str(event.as_str()) {
                self.plugin.on_event(event);
            }
        }));
    }

    fn shutdown(&self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.plugin.shutdown()));
    }
}

/// `PluginModule::api_version`.
pub extern "C" fn api_version() -> RString {
    PLUGIN_API_VERSION.into()
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
        P::new(Host::new(host), config).map(|plugin| Instance {
            plugin,
            router: P::router(),
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

/// Exports `$plugin` as this library's xcore plugin. The crate needs a
/// direct `abi_stable` dependency: the attribute expands to `::abi_stable`
/// paths.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // A module of its own keeps the allowances local: the attribute
        // generates an undocumented exported static and unsafe code
        // (written by abi_stable).
        #[allow(missing_docs, unsafe_code)]
        mod xcore_plugin_export {
            use super::*;

            #[::abi_stable::export_root_module]
            pub fn xcore_plugin_root_module() -> $crate::ffi::PluginModuleRef {
                $crate::sdk::root_module::<$plugin>()
            }
        }
    };
}
