//! JSON documents stored as TEXT (tags, criteria, targets, configs): rows
//! carry them as strings, the API as JSON values.

use serde::{de::DeserializeOwned, Deserialize, Deserializer};
use serde_json::Value;

/// Reads a column holding JSON text (or, from a JSON-aware driver, the
/// value itself) into `T`.
pub fn read<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let value = match value {
        Value::String(text) => serde_json::from_str(&text).map_err(serde::de::Error::custom)?,
        other => other,
    };
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}

/// A value as the JSON text stored in a column.
pub fn text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}
