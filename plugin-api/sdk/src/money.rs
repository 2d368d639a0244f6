//! Exact money: amounts are integer hundredths (cents, or hundredths of a
//! percent), read from decimal text without arithmetic on `f64`, so `0.1`
//! is 10 cents and sums and comparisons in SQL are integer ones.
//!
//! Each plugin keeps its own bound and how it reads a JSON value (a number
//! may already be cents, or be refused as too large); this module holds
//! the decimal text rules they share.

use std::fmt;

use serde_json::{Number, Value};

/// Why decimal text is not an amount. Its `Display` is the message for a
/// 422 detail; a plugin may word [`DecimalError::TooLarge`] its own way
/// (naming its bound).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecimalError {
    /// Starts with `-`.
    Negative,
    /// Not digits with at most one decimal separator (the text, quoted in
    /// the message).
    NotDecimal(String),
    /// A third non-zero decimal: refused, not rounded, since rounding
    /// money silently is how totals drift.
    TooManyDecimals,
    /// Above the caller's bound.
    TooLarge,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecimalError::Negative => f.write_str("must be >= 0"),
            DecimalError::NotDecimal(text) => {
                write!(f, "must be a decimal number such as 12.50, got {text:?}")
            }
            DecimalError::TooManyDecimals => f.write_str("must have at most 2 decimals"),
            DecimalError::TooLarge => f.write_str("is too large"),
        }
    }
}

/// Reads `123`, `123.4`, `123.45`, `.5`, `12.5000` or the decimal comma
/// `12,50` as hundredths, at most `max`. No sign, no exponent, no
/// thousands separator (so `1,250` is 1.25, never 1250).
pub fn parse_hundredths(text: &str, max: i64) -> Result<i64, DecimalError> {
    if text.starts_with('-') {
        return Err(DecimalError::Negative);
    }
    let separator = if text.contains('.') { '.' } else { ',' };
    let (whole, fraction) = text.split_once(separator).unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(DecimalError::NotDecimal(text.to_string()));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 2 {
        return Err(DecimalError::TooManyDecimals);
    }
    let whole = whole.trim_start_matches('0');
    // 18 digits still parse as an i64; more cannot fit any bound, and are
    // refused before parsing so an absurdly long string cannot overflow.
    if whole.len() > 18 {
        return Err(DecimalError::TooLarge);
    }
    let units: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| DecimalError::TooLarge)?
    };
    // At most two digits, padded: "5" is 50 hundredths.
    let hundredths: i64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| DecimalError::NotDecimal(text.to_string()))?;
    units
        .checked_mul(100)
        .and_then(|value| value.checked_add(hundredths))
        .filter(|value| *value <= max)
        .ok_or(DecimalError::TooLarge)
}

/// Hundredths as a JSON number: `cents / 100` rounds to the nearest
/// double, and below 10^15 hundredths the shortest decimal printing back
/// to it is the exact amount (`10` -> `0.1`).
pub fn to_json(hundredths: i64) -> Value {
    Number::from_f64(hundredths as f64 / 100.0).map_or(Value::Null, Value::Number)
}

/// Hundredths as exact decimal text (`1234.50`), for messages.
pub fn format_cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decimal_text_becomes_exact_hundredths() {
        assert_eq!(parse_hundredths("0.1", 1_000), Ok(10));
        assert_eq!(parse_hundredths("12,50", 10_000), Ok(1250));
        assert_eq!(parse_hundredths(".5", 100), Ok(50));
        assert_eq!(parse_hundredths("12.5000", 10_000), Ok(1250));
        assert_eq!(parse_hundredths("007", 10_000), Ok(700));
        assert_eq!(parse_hundredths("1,250", 10_000), Ok(125));
    }

    #[test]
    fn what_is_not_an_amount_says_why() {
        assert_eq!(parse_hundredths("-1", 100), Err(DecimalError::Negative));
        assert_eq!(
            parse_hundredths("1.005", 1_000),
            Err(DecimalError::TooManyDecimals)
        );
        let not = parse_hundredths("1e5", 100).expect_err("exponent");
        assert_eq!(
            not.to_string(),
            "must be a decimal number such as 12.50, got \"1e5\""
        );
        for text in ["", ".", "1.2.3", "abc", " 1"] {
            assert!(
                matches!(
                    parse_hundredths(text, 100),
                    Err(DecimalError::NotDecimal(_))
                ),
                "{text:?}"
            );
        }
        assert_eq!(parse_hundredths("1.01", 100), Err(DecimalError::TooLarge));
        assert_eq!(parse_hundredths("1.00", 100), Ok(100));
        let huge = "9".repeat(40);
        assert_eq!(
            parse_hundredths(&huge, i64::MAX),
            Err(DecimalError::TooLarge)
        );
        let eighteen = "9".repeat(18);
        assert_eq!(
            parse_hundredths(&eighteen, i64::MAX),
            Err(DecimalError::TooLarge)
        );
    }

    #[test]
    fn amounts_print_back_exactly() {
        assert_eq!(to_json(1999), json!(19.99));
        assert_eq!(to_json(10), json!(0.1));
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(123_450), "1234.50");
    }
}
