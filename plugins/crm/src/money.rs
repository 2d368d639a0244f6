//! Exact money: amounts are integer cents, never binary floating point
//! (the same rules as the products plugin's prices, so a catalogue price
//! reads back exactly). Discounts are percentages with up to two decimals,
//! kept in hundredths of a percent ("basis points").

use serde_json::Value;
use xcore_plugin_sdk::money::parse_hundredths;
pub use xcore_plugin_sdk::money::to_json;

/// Largest amount, in cents: 999,999,999,999.99. Small enough that
/// `cents / 100` as an `f64` prints back as the exact decimal.
pub const MAX_CENTS: i64 = 99_999_999_999_999;

/// Reads an amount (a JSON number or a decimal string) as cents.
pub fn parse(value: &Value) -> Result<i64, String> {
    let text = match value {
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                integer.to_string()
            } else {
                // serde_json read the literal as the nearest f64; Rust
                // prints it as the shortest decimal reading back the same,
                // which for up to 15 significant digits is the literal.
                let float = number.as_f64().ok_or("must be a number")?;
                if !float.is_finite() {
                    return Err("must be a finite number".into());
                }
                format!("{float}")
            }
        }
        Value::String(text) => text.trim().to_string(),
        _ => return Err("must be a number".into()),
    };
    parse_hundredths(&text, MAX_CENTS).map_err(|error| error.to_string())
}

/// Reads a discount percentage (`12.5` = 12.50 %) in hundredths of a
/// percent, 0 to 10,000.
pub fn parse_discount(value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Ok(0),
        other => parse(other).and_then(|bp| {
            (bp <= 10_000)
                .then_some(bp)
                .ok_or_else(|| "must be between 0 and 100".to_string())
        }),
    }
}

/// `quantity × unit price − discount`, rounded half up to the cent.
pub fn line_total(quantity: i64, unit_price_cents: i64, discount_bp: i64) -> Option<i64> {
    let gross = i128::from(quantity) * i128::from(unit_price_cents);
    let net = gross * i128::from(10_000 - discount_bp);
    i64::try_from((net + 5_000) / 10_000).ok()
}

/// A currency code: three upper-case ASCII letters (ISO 4217's shape).
pub fn currency(value: &str) -> Result<String, String> {
    let code = value.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err("must be a three-letter currency code such as EUR".into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_are_exact_cents() {
        assert_eq!(parse(&json!(0.1)), Ok(10));
        assert_eq!(parse(&json!(19.99)), Ok(1999));
        assert_eq!(parse(&json!("12,50")), Ok(1250));
        assert_eq!(parse(&json!(7)), Ok(700));
        assert!(parse(&json!(1.005)).is_err());
        assert!(parse(&json!(-1)).is_err());
        assert!(parse(&json!("abc")).is_err());
        assert_eq!(to_json(1999), json!(19.99));
    }

    #[test]
    fn discounts_and_line_totals() {
        assert_eq!(parse_discount(&json!(12.5)), Ok(1250));
        assert!(parse_discount(&json!(101)).is_err());
        // 3 × 19.99 − 10 % = 53.973 → 53.97
        assert_eq!(line_total(3, 1999, 1000), Some(5397));
        // 1 × 0.05 − 50 % = 0.025 → 0.03 (half up)
        assert_eq!(line_total(1, 5, 5000), Some(3));
        assert_eq!(currency("eur"), Ok("EUR".into()));
        assert!(currency("EURO").is_err());
    }
}
