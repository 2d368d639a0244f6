//! What a plugin declares about itself. Crosses the boundary as JSON, so
//! fields can be added here (with serde defaults) without breaking plugins
//! built against an older version.

use serde::{Deserialize, Serialize};

/// Everything the host needs to know before instantiating a plugin.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Identifier: lower-case letters, digits and `_`, starting with a letter.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Who maintains it.
    #[serde(default)]
    pub author: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Where its routes are mounted, e.g. `/api/v1/hello` (operators may
    /// override it in the host configuration).
    pub api_prefix: String,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Plugins that must be loaded first, with semver requirements.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Permissions the plugin defines (`resource:action`); the host
    /// registers them and grants them to `admin`.
    #[serde(default)]
    pub permissions: Vec<PermissionSpec>,
    /// Routes, relative to `api_prefix`.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Jobs the scheduler may run.
    #[serde(default)]
    pub jobs: Vec<JobSpec>,
    /// Event topics it publishes (without the `<id>.` prefix the host adds).
    #[serde(default)]
    pub events: Vec<String>,
    /// Schema migrations, applied in order, each once.
    #[serde(default)]
    pub migrations: Vec<MigrationSpec>,
    /// OpenAPI `paths` for its routes, relative to `api_prefix` (generated
    /// by the router from the handlers' types).
    #[serde(default)]
    pub openapi: Option<serde_json::Value>,
    /// Component schemas the `paths` refer to, named `<id>.<Type>`.
    #[serde(default)]
    pub openapi_schemas: Option<serde_json::Value>,
    /// Event topics it listens to (exact, or `prefix.*`): the host delivers
    /// matching events to its `on_event`.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// It has a start hook: the host signals it once the instance serves.
    #[serde(default)]
    pub on_start: bool,
}

/// A dependency on another plugin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dependency {
    /// The other plugin's id.
    pub id: String,
    /// A semver requirement, e.g. `^1.2`.
    pub version: String,
}

/// The built-in role self-registered accounts get.
pub const USER_ROLE: &str = "user";

/// A permission a plugin defines.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PermissionSpec {
    /// `resource:action`.
    pub name: String,
    /// What it allows.
    #[serde(default)]
    pub description: String,
    /// Built-in roles (only `user` so far; `admin` holds everything) the
    /// host grants it to the first time it sees it. Admins may revoke it
    /// afterwards: the host never grants a default twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_roles: Vec<String>,
}

/// A route.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method, upper case.
    pub method: String,
    /// Path pattern relative to the prefix, `{name}` for a parameter.
    pub path: String,
    /// Required permission; `None` makes the route public.
    #[serde(default)]
    pub permission: Option<String>,
    /// The handler may block for long (large imports, heavy queries): the
    /// host runs it on its blocking pool instead of inline.
    #[serde(default)]
    pub blocking: bool,
    /// Largest request body the route accepts, in bytes; `None` keeps the
    /// host's `server.max_body_bytes`. For routes that take uploads or
    /// batches; the host caps it at `plugins.max_route_body_bytes`.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
}

/// A job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobSpec {
    /// Name, unique within the plugin (the host calls it `<id>.<name>`).
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
}

/// One migration, with a script per SQL dialect.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MigrationSpec {
    /// Strictly increasing.
    pub version: i64,
    /// Short description.
    pub name: String,
    /// SQLite script.
    pub sqlite: String,
    /// PostgreSQL script.
    pub postgres: String,
}

/// Starts a [`Manifest`] with the plugin crate's own version, description
/// and authors (from its `Cargo.toml`), so they are written once:
/// `manifest!("hello", "Hello", "/api/v1/hello")`.
#[macro_export]
macro_rules! manifest {
    ($id:expr, $name:expr, $api_prefix:expr $(,)?) => {
        $crate::Manifest::new($id, $name, env!("CARGO_PKG_VERSION"), $api_prefix)
            .description(env!("CARGO_PKG_DESCRIPTION"))
            .author(env!("CARGO_PKG_AUTHORS"))
    };
}

impl Manifest {
    /// Starts a manifest with the required fields.
    pub fn new(id: &str, name: &str, version: &str, api_prefix: &str) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            version: version.into(),
            api_prefix: api_prefix.into(),
            ..Self::default()
        }
    }

    /// Sets the author.
    pub fn author(mut self, author: &str) -> Self {
        self.author = author.into();
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.into();
        self
    }

    /// Adds tags.
    pub fn tags(mut self, tags: &[&str]) -> Self {
        self.tags.extend(tags.iter().map(|tag| tag.to_string()));
        self
    }

    /// Adds a dependency.
    pub fn depends_on(mut self, id: &str, version: &str) -> Self {
        self.dependencies.push(Dependency {
            id: id.into(),
            version: version.into(),
        });
        self
    }

    /// Defines a permission.
    pub fn permission(mut self, name: &str, description: &str) -> Self {
        self.permissions.push(PermissionSpec {
            name: name.into(),
            description: description.into(),
            default_roles: Vec::new(),
        });
        self
    }

    /// Defines a permission the built-in `user` role gets when the plugin
    /// is first installed (reads a plain user expects); admins may revoke
    /// it, and the revocation sticks.
    pub fn user_permission(mut self, name: &str, description: &str) -> Self {
        self.permissions.push(PermissionSpec {
            name: name.into(),
            description: description.into(),
            default_roles: vec![USER_ROLE.into()],
        });
        self
    }

    /// Declares a job.
    pub fn job(mut self, name: &str, description: &str) -> Self {
        self.jobs.push(JobSpec {
            name: name.into(),
            description: description.into(),
        });
        self
    }

    /// Declares an event topic.
    pub fn event(mut self, topic: &str) -> Self {
        self.events.push(topic.into());
        self
    }

    /// Adds a migration.
    pub fn migration(mut self, version: i64, name: &str, sqlite: &str, postgres: &str) -> Self {
        self.migrations.push(MigrationSpec {
            version,
            name: name.into(),
            sqlite: sqlite.into(),
            postgres: postgres.into(),
        });
        self
    }

    /// Sets the OpenAPI `paths` fragment.
    pub fn openapi(mut self, paths: serde_json::Value) -> Self {
        self.openapi = Some(paths);
        self
    }
}
