//! Typed configuration: `config/default.toml` < `--config`/`XCORE_CONFIG`
//! file < `XCORE_*` environment variables.
//!
//! Every struct here has a `Default` equal to the documented values in
//! `config/default.toml` (a test keeps the two in sync), and is deserialized
//! with `deny_unknown_fields`. Each file is also parsed on its own before the
//! layers are merged, so a type error or a misspelt key is reported with the
//! file, line and column it came from rather than as a merged-table error.

use std::{fmt, net::SocketAddr, path::Path};

use serde::Deserialize;

/// The secret shipped in `config/default.toml`: accepted in development only.
pub const DEVELOPMENT_JWT_SECRET: &str = "xcore-development-only-secret-do-not-use";

/// Shortest JWT secret accepted outside development (HS256 wants >= 256 bits).
const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

/// Where the built-in defaults live when started from the repository root.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

/// Environment variables with fixed names (the contract other tools rely on),
/// mapped to the dotted key they set.
const NAMED_ENV_VARS: &[(&str, &str)] = &[
    ("XCORE_PROFILE", "profile"),
    ("XCORE_BIND", "server.bind"),
    ("XCORE_DATABASE_URL", "database.url"),
    ("XCORE_PLUGINS_DIR", "plugins.dir"),
    ("XCORE_JWT_SECRET", "auth.jwt_secret"),
    ("XCORE_ADMIN_EMAIL", "admin.email"),
    ("XCORE_ADMIN_PASSWORD", "admin.password"),
    ("XCORE_LOG", "log.filter"),
    ("XCORE_RATE_LIMITS", "rate_limits.enabled"),
    ("XCORE_AUTH_CACHE_POLL_MS", "auth.cache.poll_interval_ms"),
];

/// Prefix of the generic `XCORE__SECTION__KEY=value` override form.
const GENERIC_ENV_PREFIX: &str = "XCORE__";

/// The whole host configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Development relaxes the secret checks; everything else is production.
    pub profile: Profile,
    /// Listener and request limits.
    pub server: ServerConfig,
    /// Database connection.
    pub database: DatabaseConfig,
    /// Tokens and password hashing.
    pub auth: AuthConfig,
    /// Bootstrap administrator.
    pub admin: AdminConfig,
    /// Request rate limits.
    pub rate_limits: RateLimitConfig,
    /// Plugin directory.
    pub plugins: PluginsConfig,
    /// Health check thresholds.
    pub health: HealthConfig,
    /// Logging.
    pub log: LogConfig,
    /// `/ws` event subscriptions.
    pub websocket: WebSocketConfig,
    /// The task scheduler.
    pub tasks: TasksConfig,
    /// The pages and `/static`.
    pub web: WebConfig,
}

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

/// Why the configuration could not be loaded; the message names the source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads the layered configuration from the real environment.
    pub fn load(explicit_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(Path::new(DEFAULT_CONFIG_PATH), explicit_file, &env)
    }

    /// Loads from a defaults file (skipped when absent), an optional explicit
    /// file (must exist) and the given environment; then validates.
    pub fn load_from(
        defaults_file: &Path,
        explicit_file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut merged = toml::Table::new();
        if defaults_file.exists() {
            merge(&mut merged, read_layer(defaults_file)?);
        }
        let explicit = explicit_file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(key, value)| key == "XCORE_CONFIG" && !value.is_empty())
                .map(|(_, value)| value.into())
        });
        if let Some(path) = explicit {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "{}: config file not found",
                    path.display()
                )));
            }
            merge(&mut merged, read_layer(&path)?);
        }
        for (name, value) in env {
            if let Some((key, value)) = env_override(name, value)? {
                set_dotted(&mut merged, &key, value).map_err(|reason| {
                    ConfigError(format!("environment variable {name}: {reason}"))
                })?;
            }
        }
        let config = Config::deserialize(merged).map_err(|error| {
            // Each file was checked alone already, so what fails here came
            // from the environment.
            ConfigError(format!("environment override: {}", error.message().trim()))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses secrets that must not be used to serve: the built-in
    /// development secret or a short one outside development. Checked by
    /// `xcore serve` only, so `migrate` and `admin` work without a secret.
    pub fn check_secrets(&self) -> Result<(), ConfigError> {
        let secret = &self.auth.jwt_secret;
        if self.profile == Profile::Development {
            return Ok(());
        }
        if secret == DEVELOPMENT_JWT_SECRET {
            return Err(ConfigError(
                "auth.jwt_secret is the built-in development secret, which is refused \
                 outside the development profile: set XCORE_JWT_SECRET to a random value \
                 of at least 32 bytes (or XCORE_PROFILE=development for local work)"
                    .into(),
            ));
        }
        if secret.len() < MIN_PRODUCTION_SECRET_BYTES {
            return Err(ConfigError(format!(
                "auth.jwt_secret is {} bytes long; at least {MIN_PRODUCTION_SECRET_BYTES} \
                 are required outside the development profile",
                secret.len()
            )));
        }
        Ok(())
    }

    /// Checks the rules that types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.jwt_secret.is_empty() {
            return Err(ConfigError("auth.jwt_secret must not be empty".into()));
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError(format!(
                "database.url must start with sqlite:, postgres:// or postgresql://, got {}",
                redact_url(db)
            )));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError("database.max_connections must be >= 1".into()));
        }
        let argon = &self.auth.argon2;
        if argon.memory_kib < 8 * argon.parallelism
            || argon.iterations == 0
            || argon.parallelism == 0
        {
            return Err(ConfigError(
                "auth.argon2: memory_kib must be >= 8 * parallelism, iterations and parallelism >= 1"
                    .into(),
            ));
        }
        if self.auth.cache.poll_interval_ms == 0 {
            return Err(ConfigError(
                "auth.cache.poll_interval_ms (XCORE_AUTH_CACHE_POLL_MS) must be >= 1".into(),
            ));
        }
        let limits = &self.rate_limits;
        if limits.enabled
            && [
                limits.anonymous_per_hour,
                limits.user_per_hour,
                limits.admin_per_hour,
                limits.auth_per_minute,
            ]
            .contains(&0)
        {
            return Err(ConfigError(
                "rate_limits: every limit must be >= 1 (set enabled = false to turn limiting off)"
                    .into(),
            ));
        }
        if self.admin.email.is_empty() != self.admin.password.is_empty() {
            return Err(ConfigError(
                "admin.email and admin.password (XCORE_ADMIN_EMAIL, XCORE_ADMIN_PASSWORD) \
                 must be set together"
                    .into(),
            ));
        }
        if self
            .log
            .filter
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(ConfigError(format!(
                "log.filter {:?} is not a valid tracing filter",
                self.log.filter
            )));
        }
        Ok(())
    }
}

/// Reads one TOML layer, reporting syntax, type and unknown-key errors with
/// the file, line and column.
fn read_layer(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError(format!("{}: cannot read: {error}", path.display())))?;
    let located = |error: toml::de::Error| {
        let position = error
            .span()
            .map(|span| {
                let (line, column) = line_and_column(&text, span.start);
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        ConfigError(format!(
            "{}: {position}{}",
            path.display(),
            error.message().trim()
        ))
    };
    let table: toml::Table = toml::from_str(&text).map_err(located)?;
    // Every field has a default, so a partial file deserializes on its own;
    // doing it here is what gives type errors a line number.
    toml::from_str::<Config>(&text).map_err(located)?;
    Ok(table)
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Deep-merges `overlay` into `base`; tables merge, everything else replaces.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                merge(existing, incoming)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Maps one environment variable to a dotted key and a TOML value.
fn env_override(name: &str, value: &str) -> Result<Option<(String, toml::Value)>, ConfigError> {
    if let Some((_, key)) = NAMED_ENV_VARS.iter().find(|(env, _)| *env == name) {
        let value = if *key == "rate_limits.enabled" {
            toml::Value::Boolean(parse_switch(value).ok_or_else(|| {
                ConfigError(format!(
                    "{name}={value:?}: expected on/off, true/false or 1/0"
                ))
            })?)
        } else {
            toml::Value::String(value.to_string())
        };
        return Ok(Some((key.to_string(), value)));
    }
    if let Some(rest) = name.strip_prefix(GENERIC_ENV_PREFIX) {
        let key = rest.to_ascii_lowercase().replace("__", ".");
        return Ok(Some((key, parse_env_value(value))));
    }
    Ok(None)
}

/// Interprets a generic override as a TOML scalar or array when it parses as
/// one (`2048`, `true`, `["a"]`), else as a plain string.
fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("{part} is not a section")),
        };
    }
    Err("empty key".into())
}

fn parse_switch(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Some(true),
        "off" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Accepts a boolean or the strings on/off, so `XCORE__RATE_LIMITS__ENABLED=off`
/// and `enabled = "off"` mean what they say.
fn deserialize_switch<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Switch {
        Bool(bool),
        Text(String),
    }
    match Switch::deserialize(deserializer)? {
        Switch::Bool(value) => Ok(value),
        Switch::Text(text) => parse_switch(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("expected on/off, got {text:?}"))),
    }
}

/// Hides the password part of a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn repo_defaults() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/default.toml")
    }

    #[test]
    fn default_toml_documents_exactly_the_built_in_defaults() {
        let text = std::fs::read_to_string(repo_defaults()).expect("config/default.toml");
        let parsed: Config = toml::from_str(&text).expect("default.toml parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn production_refuses_the_development_secret() {
        let load = |pairs: &[(&str, &str)]| {
            Config::load_from(&repo_defaults(), None, &env(pairs)).expect("loads")
        };
        let error = load(&[]).check_secrets().unwrap_err();
        assert!(error.to_string().contains("development secret"), "{error}");
        assert!(load(&[("XCORE_PROFILE", "development")])
            .check_secrets()
            .is_ok());
        assert!(load(&[("XCORE_JWT_SECRET", &"k".repeat(32))])
            .check_secrets()
            .is_ok());
        let short = load(&[("XCORE_JWT_SECRET", "too-short")])
            .check_secrets()
            .unwrap_err();
        assert!(short.to_string().contains("at least 32"), "{short}");
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(
            file,
            "profile = \"development\"\n[server]\nbind = \"127.0.0.1:9000\"\nmax_body_bytes = 10"
        )
        .expect("write");
        let config = Config::load_from(
            &repo_defaults(),
            Some(file.path()),
            &env(&[
                ("XCORE_BIND", "127.0.0.1:9100"),
                ("XCORE_RATE_LIMITS", "off"),
                ("XCORE__SERVER__SHUTDOWN_TIMEOUT_SECS", "3"),
                ("XCORE__RATE_LIMITS__EXEMPT_PATHS", "[\"/x\"]"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.server.bind.port(), 9100);
        assert_eq!(config.server.max_body_bytes, 10);
        assert_eq!(config.server.shutdown_timeout_secs, 3);
        assert!(!config.rate_limits.enabled);
        assert_eq!(config.rate_limits.exempt_paths, vec!["/x".to_string()]);
    }

    #[test]
    fn malformed_file_reports_file_line_and_reason() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "profile = \"development\"\n\n[server]\nbind = 5").expect("write");
        let error = Config::load_from(&repo_defaults(), Some(file.path()), &[]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&file.path().display().to_string()), "{text}");
        assert!(text.contains("line 4"), "{text}");

        let mut typo = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(typo, "[server]\nbnid = \"x\"").expect("write");
        let text = Config::load_from(&repo_defaults(), Some(typo.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(text.contains("line 2") && text.contains("bnid"), "{text}");

        let mut syntax = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(syntax, "[server\nbind = 1").expect("write");
        let text = Config::load_from(&repo_defaults(), Some(syntax.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn plugin_sections_are_read_and_typos_refused() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(
            file,
            "[plugins]\nwatch = false\n[plugins.products]\napi_prefix = \"/catalog\"\nenabled = false\n[plugins.products.config]\npage_size = 50"
        )
        .expect("write");
        let config = Config::load_from(&repo_defaults(), Some(file.path()), &[]).expect("loads");
        assert!(!config.plugins.watch);
        let products = &config.plugins.settings["products"];
        assert_eq!(products.api_prefix.as_deref(), Some("/catalog"));
        assert_eq!(products.enabled, Some(false));
        assert_eq!(products.config_json()["page_size"], 50);

        let mut typo = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(typo, "[plugins]\nwacth = true").expect("write");
        let text = Config::load_from(&repo_defaults(), Some(typo.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(text.contains("wacth"), "{text}");
        let mut bad_section = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(bad_section, "[plugins.products]\nprefix = \"/x\"").expect("write");
        let text = Config::load_from(&repo_defaults(), Some(bad_section.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(text.contains("prefix"), "{text}");
    }

    #[test]
    fn bad_environment_value_names_the_variable() {
        let error = Config::load_from(
            &repo_defaults(),
            None,
            &env(&[
                ("XCORE_PROFILE", "development"),
                ("XCORE_RATE_LIMITS", "maybe"),
            ]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("XCORE_RATE_LIMITS"), "{error}");
    }

    #[test]
    fn database_password_is_redacted() {
        assert_eq!(
            redact_url("postgres://xcore:s3cret@db:5432/xcore"),
            "postgres://xcore:***@db:5432/xcore"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
