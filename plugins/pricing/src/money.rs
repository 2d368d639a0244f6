//! Exact money: integer cents in, exact JSON numbers out, never a float in
//! between (the products plugin's rules; its crate cannot be linked into
//! this library, both export the plugin entry symbol).

use serde_json::Value;
pub use xcore_plugin_sdk::money::{format_cents, to_json};
use xcore_plugin_sdk::money::{parse_hundredths, DecimalError};

/// Largest price accepted, in cents (the products plugin's bound).
pub const MAX_CENTS: i64 = 99_999_999_999;

/// A price from JSON: a number or decimal text (`12.5`, `"12,50"`), at
/// most two decimals, not negative.
pub fn parse(value: &Value) -> Result<i64, String> {
    match value {
        // The shortest decimal printing of the double is what the client
        // wrote for any price with two decimals.
        Value::Number(number) => parse_decimal(&number.to_string()),
        Value::String(text) => parse_decimal(text.trim()),
        _ => Err("must be a number".into()),
    }
}

/// A price from decimal text (the SDK's rules), "too large" naming the
/// bound.
pub fn parse_decimal(text: &str) -> Result<i64, String> {
    parse_hundredths(text, MAX_CENTS).map_err(|error| match error {
        DecimalError::TooLarge => too_large(),
        other => other.to_string(),
    })
}

fn too_large() -> String {
    format!("must be at most {}", format_cents(MAX_CENTS))
}

/// Optional cents as a JSON number or `null`.
pub fn to_json_opt(cents: Option<i64>) -> Value {
    cents.map_or(Value::Null, to_json)
}

/// `percent_hundredths` (1250 = 12.5 %) of `cents`, rounded half up to
/// the cent.
pub fn percent_of(cents: i64, percent_hundredths: i64) -> i64 {
    let scaled = i128::from(cents) * i128::from(percent_hundredths);
    i64::try_from((scaled + 5_000) / 10_000).unwrap_or(i64::MAX)
}

/// Serde helpers for cents fields shown as prices.
pub mod serde_price {
    use serde::{Serialize, Serializer};

    /// Serializes cents as an exact price.
    pub fn serialize<S: Serializer>(cents: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        super::to_json(*cents).serialize(serializer)
    }

    /// Optional cents as an exact price or `null`.
    pub mod option {
        use serde::{Serialize, Serializer};

        /// Serializes optional cents.
        pub fn serialize<S: Serializer>(
            cents: &Option<i64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            super::super::to_json_opt(*cents).serialize(serializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prices_are_exact_cents() {
        assert_eq!(parse(&json!(12.5)), Ok(1250));
        assert_eq!(parse(&json!("12,50")), Ok(1250));
        assert_eq!(parse(&json!(0.1)), Ok(10));
        assert_eq!(parse(&json!(2799)), Ok(279_900));
        assert!(parse(&json!(-1)).is_err());
        assert!(parse(&json!(1.234)).is_err());
        assert!(parse(&json!("abc")).is_err());
        assert_eq!(to_json(1999), json!(19.99));
        assert_eq!(percent_of(1999, 1000), 200);
        assert_eq!(format_cents(5), "0.05");
    }
}
