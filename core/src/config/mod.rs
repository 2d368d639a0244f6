//! Typed configuration: `config/default.toml` < `--config`/`XCORE_CONFIG`
//! file < `XCORE_*` environment variables.
//!
//! Every struct here has a `Default` equal to the documented values in
//! `config/default.toml` (a test keeps the two in sync), and is deserialized
//! with `deny_unknown_fields`. Each file is also parsed on its own before the
//! layers are merged, so a type error or a misspelt key is reported with the
//! file, line and column it came from rather than as a merged-table error.
//!
//! `sections` holds one type per `[table]`; `layers` reads and merges the
//! files and the environment; this module validates the result.

use std::path::Path;

use serde::Deserialize;

mod layers;
mod sections;

use layers::{env_override, merge, read_layer, set_dotted};
pub use sections::{
    AdminConfig, Argon2Config, AuditConfig, AuthCacheConfig, AuthConfig, DatabaseConfig,
    HealthConfig, LogConfig, LogFormat, PluginSettings, PluginsConfig, Profile, RateLimitConfig,
    ServerConfig, TasksConfig, WebConfig, WebSocketConfig,
};

/// The secret shipped in `config/default.toml`: accepted in development only.
pub const DEVELOPMENT_JWT_SECRET: &str = "xcore-development-only-secret-do-not-use";

/// Shortest JWT secret accepted outside development (HS256 wants >= 256 bits).
const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

/// Where the built-in defaults live when started from the repository root.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

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
    /// The audit log.
    pub audit: AuditConfig,
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
        if self.audit.retention_days == 0 {
            return Err(ConfigError(
                "audit.retention_days must be >= 1 (the audit log is pruned daily)".into(),
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
    fn audit_retention_is_set_by_env_and_never_zero() {
        let load = |pairs: &[(&str, &str)]| Config::load_from(&repo_defaults(), None, &env(pairs));
        assert_eq!(load(&[]).expect("loads").audit.retention_days, 90);
        let set = load(&[("XCORE__AUDIT__RETENTION_DAYS", "7")]).expect("loads");
        assert_eq!(set.audit.retention_days, 7);
        let zero = load(&[("XCORE__AUDIT__RETENTION_DAYS", "0")]).unwrap_err();
        assert!(zero.to_string().contains("audit.retention_days"), "{zero}");
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
