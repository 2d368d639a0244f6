//! The FFI surface: the root module every plugin exports, and the two
//! objects that cross the boundary (the host's services, the plugin's
//! instance).
//!
//! It is deliberately small. Everything with structure (the manifest, host
//! operations and their results) crosses as JSON text, so new fields never
//! change a layout; only the entry points below are ABI. The one exception
//! is the request itself, on the hot path: [`FfiRequest`] hands the plugin
//! borrowed strings and slices, because encoding and parsing a JSON head
//! was most of what a plugin route cost over a native one.
//!
//! Evolution: new root-module fields and trait methods are only ever
//! appended below the `#[sabi(last_prefix_field)]` markers. abi_stable then
//! loads a plugin built against a newer plugin-api (more entries) in an
//! older host, but refuses one that lacks entries the host has ("too many
//! fields"), so a release that appends entries or changes a type here is
//! a new minor version of this crate (the contract), which abi_stable
//! refuses across by layout, with the short message the host reports.
//!
//! Every entry point is wrapped in `catch_unwind` on the side that
//! implements it: a panic that crosses the boundary aborts the process.

// abi_stable's derives and `#[sabi_trait]` expand to unsafe code (vtables,
// transmutes it has proven sound) and to impls inside generated constants;
// this module is the only place in the crate that needs either, and it
// contains no hand-written unsafe.
#![allow(unsafe_code, non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The root module: what `export_plugin!` exports and the host reads.
///
/// Its layout is checked by abi_stable when the host loads the library,
/// with this crate's version (the contract's: 0.x, same minor); the SDK
/// version it reports is checked by [`crate::check_compatible`].
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The SDK version the plugin was built with (`xcore-plugin-sdk`;
    /// `xcore-plugin-api` for plugins built before the two were split).
    pub api_version: extern "C" fn() -> RString,
    /// The plugin's manifest as JSON (see [`crate::Manifest`]).
    pub manifest: extern "C" fn() -> RResult<RString, RString>,
    /// Creates an instance from the host's services and the plugin's
    /// configuration section (JSON).
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn(host: HostBox, config: RString) -> RResult<InstanceBox, RString>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "xcore_plugin";
    const NAME: &'static str = "xcore_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The response to a request, owned by whoever receives it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FfiResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers as a JSON object of strings (`{}` when none).
    pub headers: RString,
    /// Body bytes: the whole body, or with `stream` its first chunk.
    pub body: RVec<u8>,
    /// The handler panicked (the error is then a `PLUGIN_ERROR`); the host
    /// counts these to quarantine a plugin that keeps panicking.
    pub panicked: bool,
    /// A refusal or failure: the host renders the standard error body from
    /// it (adding `timestamp` and `request_id`), once, and `body` is empty.
    pub error: ROption<FfiError>,
    /// The body goes on past `body`: the host pulls the rest with
    /// [`PluginInstance::next_chunk`] under this id, and says
    /// [`PluginInstance::close_stream`] when it stops early.
    pub stream: ROption<u64>,
    /// Present only with the `abi-break-test` feature: a field the host does
    /// not know, so the layout check must refuse the library.
    #[cfg(feature = "abi-break-test")]
    pub layout_break: u64,
}

/// The parts of the standard error body a plugin chooses.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FfiError {
    /// Machine-readable code (`NOT_FOUND`, `VALIDATION_ERROR`, ...).
    pub code: RString,
    /// Message for people.
    pub message: RString,
    /// One entry per offending field.
    pub details: RVec<FfiDetail>,
}

/// One offending field of an [`FfiError`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FfiDetail {
    /// The field, as the client named it.
    pub field: RString,
    /// What is wrong with it.
    pub message: RString,
}

/// One pull of a streamed body.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum FfiChunk {
    /// More bytes.
    Data(RVec<u8>),
    /// The body is complete; the stream is gone.
    End,
    /// The body cannot be completed (the reason is logged, the client sees
    /// the transfer cut short); the stream is gone.
    Failed(RString),
}

/// A name and a value: a path parameter, a query parameter or a header.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FfiPair<'a> {
    /// Name (header names are lower case).
    pub name: RStr<'a>,
    /// Value (query parameters already percent-decoded).
    pub value: RStr<'a>,
}

impl<'a> FfiPair<'a> {
    /// A pair borrowing `name` and `value`.
    pub fn new(name: &'a str, value: &'a str) -> Self {
        Self {
            name: RStr::from_str(name),
            value: RStr::from_str(value),
        }
    }
}

/// The caller the host authenticated.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FfiCaller<'a> {
    /// User id.
    pub user_id: i64,
    /// Email.
    pub email: RStr<'a>,
    /// Permission names.
    pub permissions: RSlice<'a, RStr<'a>>,
}

/// A request as the host hands it to [`PluginInstance::handle`]: everything
/// borrowed from the host for the duration of the call. Its layout is part
/// of the ABI (a new field is a breaking change), which is why the
/// structured parts that grow (the manifest, host operations) stay JSON.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FfiRequest<'a> {
    /// HTTP method, upper case.
    pub method: RStr<'a>,
    /// Path relative to the plugin's prefix.
    pub path: RStr<'a>,
    /// The route pattern that matched.
    pub route: RStr<'a>,
    /// The matched route's index in the manifest's routes.
    pub route_index: usize,
    /// Path parameters.
    pub params: RSlice<'a, FfiPair<'a>>,
    /// Query parameters in order, decoded (a name may repeat).
    pub query: RSlice<'a, FfiPair<'a>>,
    /// Request headers, credentials (`authorization`, `cookie`) left out.
    pub headers: RSlice<'a, FfiPair<'a>>,
    /// The authenticated caller, if any.
    pub caller: ROption<FfiCaller<'a>>,
    /// The host's request id.
    pub request_id: RStr<'a>,
    /// Raw body.
    pub body: RSlice<'a, u8>,
}

/// Services the host gives each instance.
///
/// `call` carries every host operation as JSON (see [`crate::host::HostOp`]),
/// so adding an operation never changes this trait. The host's
/// implementation catches panics itself.
#[sabi_trait]
pub trait HostServices: Send + Sync {
    /// Runs one host operation; `Ok` holds its JSON result, `Err` the
    /// failure (a JSON `HostError` for SDK 0.3 and later, text before).
    fn call(&self, operation: RStr<'_>) -> RResult<RString, RString>;

    /// Writes a structured log line attributed to the plugin.
    #[sabi(last_prefix_field)]
    fn log(&self, level: u8, message: RStr<'_>, fields: RStr<'_>);
}

/// The host's services as a boxed FFI object.
pub type HostBox = HostServices_TO<'static, RBox<()>>;

/// A live plugin instance.
#[sabi_trait]
pub trait PluginInstance: Send + Sync {
    /// Handles one request, given as borrowed fields with the index of the
    /// matched route (see [`FfiRequest`]).
    fn handle(&self, request: FfiRequest<'_>) -> FfiResponse;

    /// Runs a job the manifest declares.
    fn run_job(&self, name: RStr<'_>) -> RResult<(), RString>;

    /// Receives an event the plugin subscribed to (JSON).
    fn on_event(&self, event: RStr<'_>);

    /// Called once before the host drops the instance.
    fn shutdown(&self);

    /// The next piece of streamed body `stream` (see [`FfiResponse::stream`]).
    fn next_chunk(&self, stream: u64) -> FfiChunk;

    /// The host will pull no more of `stream` (the client went away): the
    /// plugin drops what produced it.
    #[sabi(last_prefix_field)]
    fn close_stream(&self, stream: u64);
}

/// A plugin instance as a boxed FFI object.
pub type InstanceBox = PluginInstance_TO<'static, RBox<()>>;
