//! The FFI surface: the root module every plugin exports, and the two
//! objects that cross the boundary (the host's services, the plugin's
//! instance).
//!
//! It is deliberately small. Everything with structure (the manifest, the
//! request head, host operations and their results) crosses as JSON text,
//! so new fields never change a layout; only the entry points below are
//! ABI. They evolve append-only: new root-module fields and new trait
//! methods are only ever added below the `#[sabi(last_prefix_field)]`
//! markers, and an old plugin missing them loads as before.
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
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The root module: what `export_plugin!` exports and the host reads.
///
/// Its layout is checked by abi_stable when the host loads the library;
/// its version (that of `xcore-plugin-api`) is checked with semver rules
/// (0.x: same minor).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The `xcore-plugin-api` version the plugin was built with.
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
    /// Body bytes.
    pub body: RVec<u8>,
    /// The handler panicked (the body is then a `PLUGIN_ERROR`); the host
    /// counts these to quarantine a plugin that keeps panicking.
    pub panicked: bool,
    /// Present only with the `abi-break-test` feature: a field the host does
    /// not know, so the layout check must refuse the library.
    #[cfg(feature = "abi-break-test")]
    pub layout_break: u64,
}

/// Services the host gives each instance.
///
/// `call` carries every host operation as JSON (see [`crate::host::HostOp`]),
/// so adding an operation never changes this trait. The host's
/// implementation catches panics itself.
#[sabi_trait]
pub trait HostServices: Send + Sync {
    /// Runs one host operation; `Ok` holds its JSON result, `Err` a message.
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
    /// Handles one request. `head` is the JSON request head (see
    /// [`crate::Request`]), `body` the raw body.
    fn handle(&self, head: RStr<'_>, body: RSlice<'_, u8>) -> FfiResponse;

    /// Runs a job the manifest declares.
    fn run_job(&self, name: RStr<'_>) -> RResult<(), RString>;

    /// Receives an event the plugin subscribed to (JSON).
    fn on_event(&self, event: RStr<'_>);

    /// Called once before the host drops the instance.
    #[sabi(last_prefix_field)]
    fn shutdown(&self);
}

/// A plugin instance as a boxed FFI object.
pub type InstanceBox = PluginInstance_TO<'static, RBox<()>>;
