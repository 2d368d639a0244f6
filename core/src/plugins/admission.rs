//! Admission: the one function every library passes before the host runs
//! any of its code beyond loading it, whatever way it arrived (start-up
//! scan, watcher, upload, install by path, reload).
//!
//! In order: the crash check in a child process ([`super::probe`]), the
//! load itself (ELF, version handshake, layout, manifest), the file or
//! request it came with, the manifest's rules, and its migrations'
//! lexical check. What depends on the other plugins (dependencies, prefix
//! and table namespace) is [`check_neighbours`], run against the manager's
//! state by every entrance too. Refusals are a [`Refusal`], mapped to 409
//! (a conflict with what is installed) or 422 (the library itself).

use std::path::Path;

use axum::http::StatusCode;
use xcore_plugin_sdk::Manifest;

use super::{
    library::{self, LoadedLibrary},
    prefix, probe,
    sql_guard::{Purpose, SqlScope},
};
use crate::{
    auth::roles::USER_ROLE,
    error::{ApiError, ErrorCode},
};

/// How a library arrived: what it must then match.
#[derive(Clone, Copy, Debug)]
pub enum Entrance<'a> {
    /// A file in the plugins directory, named for plugin `id`.
    File {
        /// The id the file name stands for.
        id: &'a str,
    },
    /// An upload or install by path, which may name the plugin and version
    /// it expects.
    Install {
        /// `name` of a JSON install.
        expected_id: Option<&'a str>,
        /// `version` of a JSON install.
        expected_version: Option<&'a str>,
    },
}

/// Why a library was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It crashed or hung the child process that loaded it first.
    #[error("{0}")]
    Crashed(String),
    /// Not a loadable xcore plugin (ELF, symbols, version, layout).
    #[error("{0}")]
    Unloadable(String),
    /// The file name or the install request names another plugin or
    /// version than the manifest.
    #[error("{message}")]
    Mismatch {
        /// The request field that disagrees (`name`, `version`, `file`).
        field: &'static str,
        /// What disagrees.
        message: String,
    },
    /// The manifest breaks a rule (id, prefix, version, dependency syntax).
    #[error("{0}")]
    Manifest(String),
    /// A migration's SQL reaches outside the plugin's tables.
    #[error("{0}")]
    Migration(String),
    /// A dependency is missing, disabled or of the wrong version.
    #[error("{0}")]
    Dependency(String),
    /// The id is installed already.
    #[error("{0}")]
    AlreadyInstalled(String),
    /// The prefix or the table namespace belongs to another plugin.
    #[error("{0}")]
    Taken(String),
    /// Admitted, but its migrations, confinement or instance failed.
    #[error("{0}")]
    Activation(String),
}

impl Refusal {
    /// The HTTP status of an install or reload refused for this.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::AlreadyInstalled(_) | Self::Taken(_) => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Mismatch { field, message } => ApiError::invalid_field(field, message),
            Refusal::AlreadyInstalled(message) | Refusal::Taken(message) => {
                ApiError::conflict(message)
            }
            other => ApiError::new(other.status(), ErrorCode::PluginError, other.to_string()),
        }
    }
}

/// The tables a plugin's SQL may use, for the lexical check.
pub fn sql_scope(manifest: &Manifest) -> SqlScope {
    SqlScope::new(
        &manifest.id,
        manifest.dependencies.iter().map(|d| d.id.clone()).collect(),
    )
}

/// Checks `bytes` and loads them as generation `generation` (through a
/// shadow copy in `shadow_dir`); `checker` is the program that loads the
/// bytes first in a child process (see [`super::probe`]).
///
/// `proven` is the checksum of bytes this host (or another on the same
/// database) already loaded without incident: the same bytes again (a
/// restart, a reload of an unchanged file) skip the child process, which
/// exists to catch a library that crashes while loading and would load
/// exactly as it did. Any other bytes are checked first.
pub async fn admit(
    bytes: &[u8],
    entrance: Entrance<'_>,
    shadow_dir: &Path,
    checker: &probe::Checker,
    generation: u64,
    proven: Option<&str>,
) -> Result<LoadedLibrary, Refusal> {
    let checksum = library::checksum(bytes);
    if proven != Some(checksum.as_str()) {
        checker
            .check(bytes, shadow_dir)
            .await
            .map_err(Refusal::Crashed)?;
    }
    let stem = match entrance {
        Entrance::File { id } => format!("libxcore_plugin_{id}"),
        Entrance::Install { .. } => "install".to_string(),
    };
    let library = library::load(bytes, Some(checksum), shadow_dir, &stem, generation)
        .map_err(|error| Refusal::Unloadable(error.to_string()))?;
    let manifest = &library.manifest;
    match entrance {
        Entrance::File { id } if manifest.id != id => {
            return Err(Refusal::Mismatch {
                field: "file",
                message: format!(
                    "the file is named for plugin {id} but its manifest says {:?}",
                    manifest.id
                ),
            })
        }
        Entrance::Install {
            expected_id: Some(expected),
            ..
        } if expected != manifest.id => {
            return Err(Refusal::Mismatch {
                field: "name",
                message: format!("the library is plugin {}, not {expected}", manifest.id),
            })
        }
        Entrance::Install {
            expected_version: Some(expected),
            ..
        } if expected != manifest.version => {
            return Err(Refusal::Mismatch {
                field: "version",
                message: format!(
                    "the library is version {}, not {expected}",
                    manifest.version
                ),
            })
        }
        _ => {}
    }
    check_manifest(manifest)?;
    let scope = sql_scope(manifest);
    for migration in &manifest.migrations {
        for (dialect, sql) in [
            ("sqlite", &migration.sqlite),
            ("postgres", &migration.postgres),
        ] {
            scope.check(sql, Purpose::Migration).map_err(|error| {
                Refusal::Migration(format!(
                    "migration {} ({}, {dialect}) is refused: {error}",
                    migration.version, migration.name
                ))
            })?;
        }
    }
    Ok(library)
}

/// The rules every manifest must meet.
fn check_manifest(manifest: &Manifest) -> Result<(), Refusal> {
    prefix::check_id(&manifest.id).map_err(Refusal::Manifest)?;
    prefix::check_prefix(&manifest.api_prefix).map_err(Refusal::Manifest)?;
    semver::Version::parse(&manifest.version).map_err(|error| {
        Refusal::Manifest(format!(
            "version {:?} is not semver: {error}",
            manifest.version
        ))
    })?;
    for dependency in &manifest.dependencies {
        semver::VersionReq::parse(&dependency.version).map_err(|error| {
            Refusal::Manifest(format!(
                "dependency {} {:?}: {error}",
                dependency.id, dependency.version
            ))
        })?;
    }
    // A plugin knows the built-in `user` role only: the roles admins create
    // mean what they decide, and `admin` holds every permission anyway.
    for permission in &manifest.permissions {
        if let Some(role) = permission
            .default_roles
            .iter()
            .find(|role| role.as_str() != USER_ROLE)
        {
            return Err(Refusal::Manifest(format!(
                "permission {}: default role {role:?} is not allowed; a plugin may only \
                 grant its permissions to the built-in {USER_ROLE:?} role",
                permission.name
            )));
        }
    }
    Ok(())
}

/// What another installed plugin holds, for [`check_neighbours`].
#[derive(Clone, Debug)]
pub struct Neighbour {
    /// Its id.
    pub id: String,
    /// Where it is mounted.
    pub prefix: String,
    /// Its version, when it is loaded and enabled (dependencies need that).
    pub serving_version: Option<String>,
}

/// The checks against the other installed plugins: dependencies serving
/// at a matching version, a free prefix, a table namespace that overlaps
/// no one's (`shop` and `shop_admin` would share `shop_admin_*`).
pub fn check_neighbours(
    manifest: &Manifest,
    prefix: &str,
    neighbours: &[Neighbour],
) -> Result<(), Refusal> {
    let id = &manifest.id;
    let others = || neighbours.iter().filter(|n| &n.id != id);
    for dependency in &manifest.dependencies {
        let requirement = semver::VersionReq::parse(&dependency.version)
            .map_err(|error| Refusal::Manifest(format!("dependency {}: {error}", dependency.id)))?;
        let satisfied = others()
            .find(|n| n.id == dependency.id)
            .and_then(|n| n.serving_version.as_deref())
            .and_then(|version| semver::Version::parse(version).ok())
            .is_some_and(|version| requirement.matches(&version));
        if !satisfied {
            return Err(Refusal::Dependency(format!(
                "plugin {id} requires {} {}, which is not installed and enabled",
                dependency.id, dependency.version
            )));
        }
    }
    if let Some(other) = others().find(|n| n.prefix == prefix) {
        return Err(Refusal::Taken(format!(
            "api_prefix {prefix} is already used by plugin {}",
            other.id
        )));
    }
    if let Some(other) = others()
        .find(|n| n.id.starts_with(&format!("{id}_")) || id.starts_with(&format!("{}_", n.id)))
    {
        return Err(Refusal::Taken(format!(
            "plugin id {id} shares the table namespace of installed plugin {} \
             (tables are named <id>_*); rename one of them",
            other.id
        )));
    }
    Ok(())
}
