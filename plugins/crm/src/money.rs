//! Exact money: amounts are integer cents, never binary floating point
//! (the same rules as the products plugin's prices, so a catalogue price
//! reads back exactly). Discounts are percentages with up to two decimals,
//! kept in hundredths of a percent ("basis points").

use serde_json::{Number, Value};

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
    parse_hundredths(&text, MAX_CENTS)
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

/// `123`, `123.4`, `123.45`, `.5`, `12,50` as hundredths, at most `max`.
fn parse_hundredths(text: &str, max: i64) -> Result<i64, String> {
    if text.starts_with('-') {
        return Err("must be >= 0".into());
    }
    let separator = if text.contains('.') { '.' } else { ',' };
    let (whole, fraction) = text.split_once(separator).unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(format!(
            "must be a decimal number such as 12.50, got {text:?}"
        ));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 2 {
        return Err("must have at most 2 decimals".into());
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 15 {
        return Err("is too large".into());
    }
    let units: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "is too large")?
    };
    let cents: i64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| "is not a number")?;
    units
        .checked_mul(100)
        .and_then(|value| value.checked_add(cents))
        .filter(|value| *value <= max)
        .ok_or_else(|| "is too large".into())
}

/// `quantity × unit price − discount`, rounded half up to the cent.
pub fn line_total(quantity: i64, unit_price_cents: i64, discount_bp: i64) -> Option<i64> {
    let gross = i128::from(quantity) * i128::from(unit_price_cents);
    let net = gross * i128::from(10_000 - discount_bp);
    i64::try_from((net + 5_000) / 10_000).ok()
}

/// Cents (or hundredths of a percent) as a JSON number that prints as the
/// exact decimal.
pub fn to_json(cents: i64) -> Value {
    Number::from_f64(cents as f64 / 100.0).map_or(Value::Null, Value::Number)
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
