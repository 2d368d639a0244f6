//! `xcore plugin new <id>`: a plugin crate outside this workspace, as
//! another team starts one. It builds on its own (its own `[workspace]`,
//! no settings to copy from ours), depends on the SDK only (by path, or by
//! git with `--sdk-git`), and starts as a small working CRUD plugin: a
//! table, list/show/create/delete with permissions, an event and a job.

use std::path::{Path, PathBuf};

use super::prefix;

/// Where the generated crate finds the SDK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdkSource {
    /// A local checkout: the `plugin-api/sdk` directory.
    Path(PathBuf),
    /// A git repository holding this workspace (and an optional branch,
    /// tag or revision, as cargo spells them: `branch = "main"`).
    Git(String),
}

impl SdkSource {
    /// The SDK this `xcore` was built from, when its source tree is still
    /// where it was built.
    pub fn built_from() -> Option<Self> {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api/sdk");
        sdk.join("Cargo.toml")
            .is_file()
            .then(|| Self::Path(sdk.canonicalize().unwrap_or(sdk)))
    }

    fn dependency(&self) -> String {
        match self {
            Self::Path(path) => format!("{{ path = {:?} }}", path.display().to_string()),
            Self::Git(url) => format!("{{ git = {url:?} }}"),
        }
    }
}

/// Writes the crate for plugin `id` into `dir` (which must not exist yet
/// or be empty); the files written.
pub fn create(id: &str, dir: &Path, sdk: &SdkSource) -> Result<Vec<PathBuf>, String> {
    prefix::check_id(id)?;
    if dir.exists()
        && dir
            .read_dir()
            .map_err(|error| format!("cannot read {}: {error}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let files = [
        (dir.join("Cargo.toml"), cargo_toml(id, sdk)),
        (dir.join("src/lib.rs"), lib_rs(id)),
        (dir.join(".gitignore"), "/target\nCargo.lock\n".to_string()),
    ];
    for (path, text) in &files {
        std::fs::write(path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

fn cargo_toml(id: &str, sdk: &SdkSource) -> String {
    let package = id.replace('_', "-");
    format!(
        r#"[package]
name = "xcore-plugin-{package}"
version = "0.1.0"
edition = "2021"
description = "The {id} plugin for xcore"

# A workspace of its own: the plugin builds wherever it is checked out.
[workspace]

[lib]
# The host loads lib<name>.so from its plugins directory; the file name
# must be libxcore_plugin_<id>.so.
name = "xcore_plugin_{id}"
crate-type = ["cdylib"]

[dependencies]
serde = {{ version = "1", features = ["derive"] }}
xcore-plugin-sdk = {dependency}

[profile.release]
debug = "line-tables-only"
"#,
        dependency = sdk.dependency()
    )
}

fn lib_rs(id: &str) -> String {
    LIB_TEMPLATE
        .replace("{{id}}", id)
        .replace("{{Type}}", &type_name(id))
}

/// `price_alerts` → `PriceAlerts`: the plugin's struct.
fn type_name(id: &str) -> String {
    id.split('_')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The generated plugin, `{{id}}` standing for the plugin id.
const LIB_TEMPLATE: &str = r#"//! The `{{id}}` plugin: items with a name, listed, shown, created and
//! deleted under `/api/v1/{{id}}`, an event on every creation and a job
//! the scheduler can run as `{{id}}.count`. Build it with
//! `cargo build --release` and copy `target/release/libxcore_plugin_{{id}}.so`
//! into the host's plugins directory (write, then rename).

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::prelude::*;

/// The instance: the host's services.
pub struct {{Type}} {
    host: Host,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Item {
    id: i64,
    name: String,
    created_at: String,
}

#[derive(Deserialize, ToSchema)]
struct NewItem {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
}

impl Plugin for {{Type}} {
    fn manifest() -> Manifest {
        manifest!("{{id}}", "{{Type}}", "/api/v1/{{id}}")
            .permission("{{id}}:read", "Read items")
            .permission("{{id}}:write", "Write items")
            .event("created")
            .migration(1, "items",
                "CREATE TABLE {{id}}_items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)",
                "CREATE TABLE {{id}}_items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)")
    }

    fn router() -> Router<Self> {
        Router::new()
            .get("/items", Access::Requires("{{id}}:read"), Self::list)
            .get("/items/{id}", Access::Requires("{{id}}:read"), Self::show)
            .post("/items", Access::Requires("{{id}}:write"), Self::create)
            .delete("/items/{id}", Access::Requires("{{id}}:write"), Self::delete)
            .job("count", "Logs how many items exist", Self::count)
    }

    fn new(host: Host, _config: Value) -> Result<Self, String> {
        Ok(Self { host })
    }
}

impl {{Type}} {
    fn list(&self, window: Window) -> Result<ListBody<Item>, HostError> {
        let sql = "SELECT id, name, created_at FROM {{id}}_items ORDER BY id DESC";
        self.host.query_page(sql, params![], window)
    }

    fn show(&self, Path(id): Path<i64>) -> Result<Json<Item>, Response> {
        let sql = "SELECT id, name, created_at FROM {{id}}_items WHERE id = $1";
        let item = self.host.query_one_as(sql, params![id])?;
        item.map(Json).ok_or_else(|| Response::not_found("no such item"))
    }

    /// A name already used is a 409 naming `name` (the unique index says so).
    fn create(&self, Json(new): Json<NewItem>) -> Result<Created<Item>, Response> {
        let name = new.name.trim();
        if name.is_empty() || name.contains('\0') {
            return Err(Response::invalid("name", "must not be blank"));
        }
        let sql = "INSERT INTO {{id}}_items (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at";
        let item: Item = self.host.query_row_as(sql, params![name, now()])?;
        self.host.publish("created", &item)?;
        Ok(Created(item))
    }

    fn delete(&self, Path(id): Path<i64>) -> Result<NoContent, Response> {
        let done = self.host.execute("DELETE FROM {{id}}_items WHERE id = $1", params![id])?;
        if done.rows_affected == 0 {
            return Err(Response::not_found("no such item"));
        }
        Ok(NoContent)
    }

    fn count(&self) -> Result<(), HostError> {
        let count: i64 = self.host.query_scalar("SELECT COUNT(*) FROM {{id}}_items", params![])?;
        self.host.info("count", json!({ "items": count }));
        Ok(())
    }
}

xcore_plugin_sdk::export_plugin!({{Type}});
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_ids_and_non_empty_directories() {
        let dir = tempfile::tempdir().expect("dir");
        let sdk = SdkSource::Path(dir.path().to_path_buf());
        assert!(create("Bad-Id", &dir.path().join("x"), &sdk).is_err());
        std::fs::write(dir.path().join("file"), "x").expect("write");
        assert!(create("notes", dir.path(), &sdk).is_err());
        let files = create("notes", &dir.path().join("notes"), &sdk).expect("created");
        assert_eq!(files.len(), 3);
        let lib = std::fs::read_to_string(dir.path().join("notes/src/lib.rs")).expect("lib");
        assert!(lib.contains("CREATE TABLE notes_items") && !lib.contains("{{"));
        assert!(lib.contains("impl Plugin for Notes"));
        assert_eq!(type_name("price_alerts"), "PriceAlerts");
        let manifest = std::fs::read_to_string(dir.path().join("notes/Cargo.toml")).expect("toml");
        assert!(
            manifest.contains("name = \"xcore_plugin_notes\"") && manifest.contains("[workspace]")
        );
    }
}
