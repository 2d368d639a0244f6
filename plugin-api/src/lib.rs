//! `xcore-plugin-api`: the FFI contract between the xcore host and its
//! plugins: the root module every plugin library exports and the objects
//! that cross the boundary ([`ffi`]), and the rule for which plugins a host
//! loads ([`check_compatible`]).
//!
//! Plugin authors do not write against this crate directly: the SDK
//! (`xcore-plugin-sdk`, in `plugin-api/sdk/`) wraps it in typed handlers,
//! typed rows and host errors, and re-exports it.
//!
//! # Why the contract is a crate of its own
//!
//! abi_stable records, in the layout of every type that crosses the
//! boundary, the name and version of the crate that declares it, and
//! refuses a library whose types come from another 0.y minor. Keeping the
//! FFI types here, in a crate whose version moves only when one of them
//! changes, is what lets the SDK grow (helpers, host operations: all JSON,
//! no layout change) without refusing plugins built against an older SDK.
//!
//! # Versions
//!
//! - This crate's version is the FFI contract: 0.2 since requests cross as
//!   borrowed fields, 0.3 since errors cross structured and bodies may
//!   stream. A change to a type in [`ffi`] is a new minor, and
//!   abi_stable then refuses libraries of the other minors by layout.
//! - The SDK's version is what [`ffi::PluginModule::api_version`] reports.
//!   A host loads plugins built with any SDK from
//!   [`OLDEST_COMPATIBLE_SDK`] up to its own ([`check_compatible`]); a newer
//!   SDK may ask for host operations this host lacks, so it is refused
//!   with a message naming both versions.

pub mod ffi;

/// The FFI contract version: this crate's.
pub const FFI_CONTRACT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The oldest SDK whose plugins speak this contract: SDK 0.4, the first
/// built on contract 0.3 (libraries of older SDKs carry contract 0.2 types
/// and are refused by layout before their SDK version is read).
pub const OLDEST_COMPATIBLE_SDK: &str = "0.4.0";

/// Whether a library whose FFI types come from contract version `plugin`
/// can be loaded: abi_stable's rule (0.y: the same minor), checked first so
/// the refusal is one short line rather than a layout report.
pub fn check_contract(plugin: &str) -> Result<(), String> {
    let parts = |version: &str| -> Option<(u64, u64)> {
        let mut numbers = version.split('.').map(|part| part.parse::<u64>().ok());
        Some((numbers.next()??, numbers.next()??))
    };
    match (parts(plugin), parts(FFI_CONTRACT_VERSION)) {
        (Some((0, plugin_minor)), Some((0, host_minor))) if plugin_minor == host_minor => Ok(()),
        (Some((plugin_major, _)), Some((host_major, _)))
            if plugin_major == host_major && host_major > 0 =>
        {
            Ok(())
        }
        _ => Err(format!(
            "built for plugin-api {plugin}, host speaks {FFI_CONTRACT_VERSION}"
        )),
    }
}

/// Whether a plugin built with SDK `plugin` can be loaded by a host built
/// with SDK `host`: from [`OLDEST_COMPATIBLE_SDK`] up to the host's own
/// version, comparing major and minor (patches never matter).
pub fn check_compatible(plugin: &str, host: &str) -> Result<(), String> {
    let parts = |version: &str| -> Option<(u64, u64)> {
        let mut numbers = version.split('.').map(|part| part.parse::<u64>().ok());
        Some((numbers.next()??, numbers.next()??))
    };
    match (parts(plugin), parts(host), parts(OLDEST_COMPATIBLE_SDK)) {
        (Some(plugin), Some(host), Some(oldest)) if oldest <= plugin && plugin <= host => Ok(()),
        _ => Err(format!(
            "built for plugin-api {plugin}, host speaks {host} (it loads plugins built with {OLDEST_COMPATIBLE_SDK} to {host})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check_compatible;

    #[test]
    fn contracts_follow_abi_stable_rules() {
        use super::check_contract;
        assert!(check_contract("0.3.0").is_ok());
        assert!(check_contract("0.3.9").is_ok());
        assert_eq!(
            check_contract("0.2.0"),
            Err("built for plugin-api 0.2.0, host speaks 0.3.0".to_string())
        );
        assert!(check_contract("0.4.0").is_err());
    }

    #[test]
    fn a_host_loads_sdks_from_the_oldest_compatible_up_to_its_own() {
        assert!(check_compatible("0.4.0", "0.4.0").is_ok());
        assert!(check_compatible("0.4.0", "0.5.4").is_ok());
        assert!(check_compatible("0.4.7", "0.4.0").is_ok());
        assert_eq!(
            check_compatible("0.3.0", "0.4.0"),
            Err("built for plugin-api 0.3.0, host speaks 0.4.0 (it loads plugins built with 0.4.0 to 0.4.0)".to_string())
        );
        assert!(check_compatible("0.5.0", "0.4.0").is_err());
        assert!(check_compatible("1.0.0", "0.4.0").is_err());
        assert!(check_compatible("garbage", "0.4.0").is_err());
    }
}
