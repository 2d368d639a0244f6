//! Loading one generation of a plugin library, safely enough that a bad
//! file never takes the host down.
//!
//! The steps, each answering a failure the feasibility spike saw:
//! 1. The bytes are read once; the checksum, the ELF check and the shadow
//!    copy all use those same bytes, so what is checked is what is loaded.
//! 2. The ELF check refuses a truncated file before `dlopen` (which would
//!    otherwise die of SIGBUS) and names garbage and empty files.
//! 3. Each generation is written to a unique shadow file and opened from
//!    there (`dlopen` of an already-open path returns the cached handle, so
//!    a reload would silently serve the old code), then the shadow file is
//!    unlinked: the mapping outlives it.
//! 4. Our own contract check runs before abi_stable's, so a mismatch says
//!    "built for plugin-api X, host speaks Y"; then abi_stable checks the
//!    root module's layout, and of its very long report only the `Error:`
//!    lines are kept; then the SDK version the plugin reports is checked
//!    (from the oldest SDK on this contract up to the host's own).
//! 5. `RootModule::load_from*` is never used: it caches one library per
//!    root-module type in statics and never unloads. The header is read with
//!    libloading and checked by hand, and the library is closed when the
//!    last `Arc` of its generation drops.

// dlopen and reading the exported header are unsafe by nature; this is the
// one module of the host that does either.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};

use abi_stable::library::{AbiHeaderRef, LibraryError, ROOT_MODULE_LOADER_NAME_WITH_NUL};
use sha2::{Digest, Sha256};
use xcore_plugin_sdk::{
    contract::{check_compatible, check_contract},
    ffi::{HostBox, InstanceBox, PluginModuleRef},
    Manifest, SDK_VERSION,
};

use super::{elf, openapi_text::OpenApiText};

/// Most `Error:` lines of a layout report kept in a load error.
const MAX_LAYOUT_ERROR_LINES: usize = 6;

/// A loaded library: its root module, manifest and identity.
///
/// Field order matters: `module` points into the library, which is closed
/// when `_library` drops, so it is declared last (dropped last). It is held
/// only for that: dropping it is what unloads the code.
pub struct LoadedLibrary {
    module: PluginModuleRef,
    /// The plugin's manifest, copied into host memory, without its
    /// OpenAPI parts.
    pub manifest: Manifest,
    /// Those parts, as text.
    pub openapi: OpenApiText,
    /// SHA-256 of the file, hex.
    pub checksum: String,
    /// The plugin-api version the plugin was built with.
    pub api_version: String,
    _library: libloading::Library,
}

impl std::fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedLibrary")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("checksum", &self.checksum)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// Why a library could not be loaded; the message is meant for operators.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

fn load_error(context: &str, error: impl std::fmt::Display) -> LoadError {
    LoadError(format!("{context}: {error}"))
}

/// SHA-256 of `bytes`, hex.
pub fn checksum(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Loads `bytes` (the content of a plugin file) as generation `generation`,
/// through a shadow copy in `shadow_dir`; `known_checksum` is the bytes'
/// [`checksum`] when the caller has it already (hashing a release plugin
/// costs about as much as loading it), else it is computed.
pub fn load(
    bytes: &[u8],
    known_checksum: Option<String>,
    shadow_dir: &Path,
    stem: &str,
    generation: u64,
) -> Result<LoadedLibrary, LoadError> {
    elf::check(bytes).map_err(|error| LoadError(error.to_string()))?;
    std::fs::create_dir_all(shadow_dir)
        .map_err(|error| load_error("cannot create the shadow directory", error))?;
    // Unique per load, not just per generation: two managers in one process
    // (tests, or a reload racing a restart of the manager) must never hand
    // dlopen a path it already has open.
    let shadow: PathBuf = shadow_dir.join(format!(
        "{stem}.{generation}.{}.so",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&shadow, bytes)
        .map_err(|error| load_error("cannot write the shadow copy", error))?;
    // SAFETY: the file passed the structural ELF check above, and running
    // its initialisers is what loading a plugin means; xcore plugins are
    // operator-installed code.
    let opened = unsafe { libloading::Library::new(&shadow) };
    // The mapping keeps the code alive; the file is only needed for dlopen.
    let _ = std::fs::remove_file(&shadow);
    let library = opened.map_err(|error| {
        // libloading's useful text (dlerror) is in the source.
        let detail = std::error::Error::source(&error)
            .map_or_else(|| error.to_string(), ToString::to_string);
        LoadError(format!("dlopen failed: {detail}"))
    })?;
    // SAFETY: the symbol is abi_stable's header, a `#[repr(transparent)]`
    // reference with a 'static lifetime in the plugin's own terms; it is
    // only used while `library` is alive (it is stored next to it).
    let header =
        unsafe { library.get::<AbiHeaderRef>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) }
            .map(|symbol| *symbol)
            .map_err(|_| {
                LoadError(
                    "not an xcore plugin: the abi_stable root module symbol is missing".into(),
                )
            })?;
    let header = header
        .upgrade()
        .map_err(|error| LoadError(short_library_error(&error)))?;
    let contract = header.version_strings().version.as_str().to_string();
    check_contract(&contract).map_err(LoadError)?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|error| LoadError(short_library_error(&error)))?;
    // The SDK the plugin was built with: the contract is the same, but a
    // newer SDK may ask for host operations this host does not have.
    let api_version = module.api_version()().into_string();
    check_compatible(&api_version, SDK_VERSION).map_err(LoadError)?;
    let manifest_json = module.manifest()()
        .into_result()
        .map_err(|message| LoadError(format!("manifest() failed: {message}")))?;
    let (manifest, openapi) = OpenApiText::split(manifest_json.as_str())
        .map_err(|error| load_error("the manifest is not valid", error))?;
    Ok(LoadedLibrary {
        module,
        manifest,
        openapi,
        checksum: known_checksum.unwrap_or_else(|| checksum(bytes)),
        api_version,
        _library: library,
    })
}

impl LoadedLibrary {
    /// Creates an instance with the host's services and its config section.
    pub fn instantiate(
        &self,
        host: HostBox,
        config: &serde_json::Value,
    ) -> Result<InstanceBox, String> {
        self.module.instantiate()(host, config.to_string().into())
            .into_result()
            .map_err(|message| message.into_string())
    }
}

/// abi_stable's layout reports run to thousands of lines; operators need
/// the `Error:` lines.
fn short_library_error(error: &LibraryError) -> String {
    let text = error.to_string();
    let errors: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("Error:"))
        .take(MAX_LAYOUT_ERROR_LINES)
        .collect();
    match error {
        LibraryError::AbiInstability(_) if !errors.is_empty() => {
            format!("incompatible plugin-api layout: {}", errors.join(" | "))
        }
        _ => text
            .lines()
            .next()
            .unwrap_or("cannot load the library")
            .to_string(),
    }
}
