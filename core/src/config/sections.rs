//! The configuration's sections, one type per `[table]`, each with a
//! `Default` equal to `config/default.toml`.

use std::{fmt, net::SocketAddr};

use serde::Deserialize;

use super::{layers::deserialize_switch, redact_url, DEVELOPMENT_JWT_SECRET};

/// `[web]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Directory served at `/static` (relative paths start from the working
    /// directory: the repository root in the README's command).
    pub static_dir: String,
    /// `Cache-Control: max-age` for `/static` files. Files under
    /// `/static/vendor/` carry their version in their path and get a year.
    pub static_max_age_secs: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            static_dir: "static".into(),
            static_max_age_secs: 3600,
        }
    }
}

/// `[websocket]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Open sockets at most; more are refused with 503.
    pub max_connections: usize,
    /// Messages queued for one client's writer.
    pub queue_capacity: usize,
    /// A client whose queue stays full this long is disconnected (close
    /// code 4008).
    pub stall_timeout_ms: u64,
    /// Seconds a new socket has to authenticate (close code 4408).
    pub auth_timeout_secs: u64,
    /// Seconds between server pings; a client silent for two intervals is
    /// disconnected.
    pub ping_interval_secs: u64,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            queue_capacity: 256,
            stall_timeout_ms: 5000,
            auth_timeout_secs: 5,
            ping_interval_secs: 30,
        }
    }
}

/// `[tasks]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Seconds a job may run before its run is recorded as failed.
    pub job_timeout_secs: u64,
    /// Runs kept per task in the history (older ones are pruned by the
    /// `core.prune_task_runs` job).
    pub history_per_task: u32,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            job_timeout_secs: 300,
            history_per_task: 100,
        }
    }
}

/// Deployment profile.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Secure defaults enforced.
    #[default]
    Production,
    /// Local work: the built-in JWT secret is accepted.
    Development,
}

/// `[audit]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Days an audit-log row is kept; older rows are deleted by the
    /// built-in `core.prune_audit_log` job. At least 1.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// `[server]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Bound on draining in-flight requests at shutdown; requests that
    /// arrive after it are answered 503.
    pub shutdown_timeout_secs: u64,
    /// How long idle keep-alive connections stay open after shutdown starts,
    /// so a request a client already sent on one is read and answered
    /// (with `Connection: close`) instead of meeting a closed socket.
    pub shutdown_linger_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_body_bytes: 1024 * 1024,
            shutdown_timeout_secs: 30,
            shutdown_linger_ms: 1000,
        }
    }
}

/// `[database]`
#[derive(Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// Pool acquire timeout.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/xcore.db".into(),
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

// Hand-written so a PostgreSQL password in the URL never reaches a log line.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .finish()
    }
}

/// `[auth]`
#[derive(Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 signing key.
    pub jwt_secret: String,
    /// Access token lifetime.
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime.
    pub refresh_token_ttl_secs: u64,
    /// Password reset token lifetime.
    pub password_reset_ttl_secs: u64,
    /// Whether `POST /auth/register` is open.
    pub allow_registration: bool,
    /// Password policy: minimum length.
    pub min_password_length: usize,
    /// argon2id cost.
    pub argon2: Argon2Config,
    /// The in-process authentication cache.
    pub cache: AuthCacheConfig,
    /// API keys for machines.
    pub api_keys: ApiKeysConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: DEVELOPMENT_JWT_SECRET.into(),
            access_token_ttl_secs: 1800,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            password_reset_ttl_secs: 3600,
            allow_registration: true,
            min_password_length: 8,
            argon2: Argon2Config::default(),
            cache: AuthCacheConfig::default(),
            api_keys: ApiKeysConfig::default(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("password_reset_ttl_secs", &self.password_reset_ttl_secs)
            .field("allow_registration", &self.allow_registration)
            .field("min_password_length", &self.min_password_length)
            .field("argon2", &self.argon2)
            .field("cache", &self.cache)
            .field("api_keys", &self.api_keys)
            .finish()
    }
}

/// `[auth.argon2]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Config {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Time cost (passes).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// `[auth.cache]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthCacheConfig {
    /// How often this instance reads the database's change counter to pick
    /// up changes other instances (or operators) made: the bound on how
    /// long another instance may still accept a revoked token. The instance
    /// that makes a change applies it before answering, whatever this is.
    pub poll_interval_ms: u64,
}

impl Default for AuthCacheConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 500,
        }
    }
}

/// `[auth.api_keys]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// How often the keys' `last_used_at` is written: a keyed request only
    /// notes its use in memory, and each key used since the last write
    /// costs one UPDATE per interval.
    pub last_used_flush_secs: u64,
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        Self {
            last_used_flush_secs: 60,
        }
    }
}

/// `[admin]`
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bootstrap admin email; empty means none.
    pub email: String,
    /// Bootstrap admin password; empty means none.
    pub password: String,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `[rate_limits]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Master switch.
    #[serde(deserialize_with = "deserialize_switch")]
    pub enabled: bool,
    /// Anonymous clients, per IP.
    pub anonymous_per_hour: u32,
    /// Authenticated users, per user.
    pub user_per_hour: u32,
    /// Admin role holders, per user.
    pub admin_per_hour: u32,
    /// Requests made with an API key, per key (whoever owns it).
    pub api_key_per_hour: u32,
    /// Login and register, per IP.
    pub auth_per_minute: u32,
    /// Never-limited path prefixes.
    pub exempt_paths: Vec<String>,
    /// Trust `X-Forwarded-For` for the client IP.
    pub trust_forwarded_for: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            anonymous_per_hour: 100,
            user_per_hour: 1000,
            admin_per_hour: 10000,
            api_key_per_hour: 3600,
            auth_per_minute: 5,
            exempt_paths: vec!["/health".into(), "/metrics".into(), "/static/".into()],
            trust_forwarded_for: false,
        }
    }
}

/// `[plugins]`, plus one `[plugins.<id>]` section per plugin that needs
/// settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginsConfig {
    /// Directory scanned for plugin libraries.
    pub dir: String,
    /// Directories an install by `source` path may read from.
    pub install_from: Vec<String>,
    /// Consecutive panics that quarantine a plugin.
    pub quarantine_after_panics: u32,
    /// Watch the directory for changes.
    pub watch: bool,
    /// How long a file must be unchanged before the watcher acts.
    pub watch_settle_ms: u64,
    /// The largest body a plugin route may ask to accept (see the route's
    /// `max_body_bytes`); routes that ask nothing get `server.max_body_bytes`.
    pub max_route_body_bytes: u64,
    /// The program that loads every new library first, in a child process
    /// (`<checker> plugin check FILE`); empty: this `xcore` executable.
    pub checker: String,
    /// How long that child may take before the library is refused.
    pub check_timeout_secs: u64,
    /// The longest a plugin's outbound HTTP request may take (`Host::http`;
    /// a plugin may ask for less).
    pub http_timeout_ms: u64,
    /// The largest outbound HTTP response body a plugin may receive.
    pub http_max_response_bytes: u64,
    /// Events kept for a plugin that subscribes to topics, while it works
    /// through earlier ones; past that, the oldest are dropped and counted.
    pub event_queue: usize,
    /// `[plugins.<id>]` sections, by plugin id.
    pub settings: std::collections::BTreeMap<String, PluginSettings>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: "plugins-enabled".into(),
            install_from: Vec::new(),
            quarantine_after_panics: 5,
            watch: true,
            watch_settle_ms: 500,
            max_route_body_bytes: 64 * 1024 * 1024,
            checker: String::new(),
            check_timeout_secs: 10,
            http_timeout_ms: 10_000,
            http_max_response_bytes: 16 * 1024 * 1024,
            event_queue: 1024,
            settings: std::collections::BTreeMap::new(),
        }
    }
}

/// `[plugins.<id>]`: what an operator may set for one plugin.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Mount the plugin here instead of its manifest's prefix.
    pub api_prefix: Option<String>,
    /// Whether it serves on first install (later, the saved state rules).
    pub enabled: Option<bool>,
    /// Free-form settings handed to the plugin as JSON.
    pub config: toml::Table,
    /// URL prefixes the plugin may reach with `Host::http`
    /// (`https://feeds.example.com/v1/`): scheme, host and port must match,
    /// and the path must start with the entry's. Empty: no outbound HTTP.
    pub http_allow: Vec<String>,
}

impl PluginSettings {
    /// The plugin's `config` table as JSON.
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null)
    }
}

// By hand: `[plugins]` mixes the manager's own keys with one table per
// plugin id, which serde's derive cannot express together with
// `deny_unknown_fields`. Known keys are typed; any other key must be a
// valid plugin id holding a settings table, so typos still fail.
impl<'de> Deserialize<'de> for PluginsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let table = toml::Table::deserialize(deserializer)?;
        let mut config = PluginsConfig::default();
        fn field<T: serde::de::DeserializeOwned, E: serde::de::Error>(
            key: &str,
            value: toml::Value,
        ) -> Result<T, E> {
            value.try_into().map_err(|error: toml::de::Error| {
                E::custom(format!("plugins.{key}: {}", error.message()))
            })
        }
        for (key, value) in table {
            match key.as_str() {
                "dir" => config.dir = field(&key, value)?,
                "install_from" => config.install_from = field(&key, value)?,
                "quarantine_after_panics" => config.quarantine_after_panics = field(&key, value)?,
                "watch" => config.watch = field(&key, value)?,
                "watch_settle_ms" => config.watch_settle_ms = field(&key, value)?,
                "max_route_body_bytes" => config.max_route_body_bytes = field(&key, value)?,
                "checker" => config.checker = field(&key, value)?,
                "check_timeout_secs" => config.check_timeout_secs = field(&key, value)?,
                "http_timeout_ms" => config.http_timeout_ms = field(&key, value)?,
                "http_max_response_bytes" => {
                    config.http_max_response_bytes = field(&key, value)?
                }
                "event_queue" => config.event_queue = field(&key, value)?,
                id if value.is_table() && crate::plugins::prefix::check_id(id).is_ok() => {
                    config.settings.insert(id.to_string(), field(id, value)?);
                }
                other => {
                    return Err(D::Error::custom(format!(
                        "unknown key plugins.{other}: expected dir, install_from, quarantine_after_panics, \
                         watch, watch_settle_ms, max_route_body_bytes, checker, check_timeout_secs, \
                         http_timeout_ms, http_max_response_bytes, event_queue, or a [plugins.<id>] section"
                    )))
                }
            }
        }
        Ok(config)
    }
}

/// `[health]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Free space below which the disk check fails.
    pub min_free_disk_mb: u64,
    /// How long a database probe's result answers later health requests
    /// (concurrent ones always share one probe), so a busy prober cannot
    /// load the database.
    pub probe_reuse_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            min_free_disk_mb: 100,
            probe_reuse_ms: 1000,
        }
    }
}

/// `[log]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// tracing `EnvFilter` directives.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info,sqlx=warn".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
