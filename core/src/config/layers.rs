//! Layered loading: TOML files read with located errors, tables merged,
//! `XCORE_*` and `XCORE__*` environment overrides applied as dotted keys.

use std::path::Path;

use serde::Deserialize;

use super::{Config, ConfigError};

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

/// Reads one TOML layer, reporting syntax, type and unknown-key errors with
/// the file, line and column.
pub(super) fn read_layer(path: &Path) -> Result<toml::Table, ConfigError> {
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

pub(super) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Deep-merges `overlay` into `base`; tables merge, everything else replaces.
pub(super) fn merge(base: &mut toml::Table, overlay: toml::Table) {
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
pub(super) fn env_override(
    name: &str,
    value: &str,
) -> Result<Option<(String, toml::Value)>, ConfigError> {
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
pub(super) fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

pub(super) fn set_dotted(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> Result<(), String> {
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

pub(super) fn parse_switch(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Some(true),
        "off" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Accepts a boolean or the strings on/off, so `XCORE__RATE_LIMITS__ENABLED=off`
/// and `enabled = "off"` mean what they say.
pub(super) fn deserialize_switch<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<bool, D::Error> {
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
