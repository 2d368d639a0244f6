//! Exact money: prices are integer cents, never binary floating point.
//!
//! A price arrives as a JSON number (`19.99`) or a string (`"19.99"`, from a
//! CSV cell). Both are read as decimal text and converted to cents without
//! going through arithmetic on `f64`, so `0.1` is 10 cents, not
//! 0.1000000000000000055…, and sums and comparisons in SQL are integer ones.
//!
//! At most [`MAX_DECIMALS`] decimals: a third non-zero decimal is refused
//! rather than rounded (rounding money silently is how totals drift);
//! trailing zeros (`"12.5000"`) are fine. Prices are capped at
//! [`MAX_CENTS`] so that every price prints back as the exact decimal it
//! was given (see [`to_json`]).

use serde_json::Value;
pub use xcore_plugin_sdk::money::{format_cents, to_json};

/// Decimals a price may have.
pub const MAX_DECIMALS: usize = 2;

/// Largest price, in cents: 999,999,999.99. Far beyond any product price,
/// and small enough that `cents / 100` as an `f64` is always the nearest
/// double to the exact decimal, so JSON output is exact.
pub const MAX_CENTS: i64 = 99_999_999_999;

/// Cents per unit.
const SCALE: i64 = 100;

/// Reads a price (a JSON number or a decimal string) as cents; the error
/// says why it is not a valid price.
pub fn parse(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                return whole_units(integer);
            }
            if number.as_u64().is_some() {
                return Err(too_large());
            }
            // serde_json has already read the literal as the nearest f64;
            // Rust prints an f64 as the shortest decimal that reads back as
            // the same value, which for any literal of up to 15 significant
            // digits is the literal itself (`0.1` -> "0.1").
            let float = number.as_f64().ok_or("must be a number")?;
            if !float.is_finite() {
                return Err("must be a finite number".into());
            }
            parse_decimal(&format!("{float}"))
        }
        Value::String(text) => parse_decimal(text.trim()),
        _ => Err("must be a number".into()),
    }
}

fn whole_units(units: i64) -> Result<i64, String> {
    if units < 0 {
        return Err(negative());
    }
    units
        .checked_mul(SCALE)
        .filter(|cents| *cents <= MAX_CENTS)
        .ok_or_else(too_large)
}

fn negative() -> String {
    "must be >= 0".into()
}

fn too_large() -> String {
    format!("must be at most {}", format_cents(MAX_CENTS))
}

/// Parses `123`, `123.4`, `123.45`, `0.50`, `.5`, `12.5000`, and the
/// French decimal comma `12,50` (CSV files from French suppliers). No sign
/// but a leading `-`, which is reported as negative; no exponent, no
/// thousands separator (so `1,250` is 1.25, never 1250).
pub fn parse_decimal(text: &str) -> Result<i64, String> {
    let (negative_sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let separator = if digits.contains('.') { '.' } else { ',' };
    let (whole, fraction) = digits.split_once(separator).unwrap_or((digits, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(format!(
            "must be a decimal number such as 12.50, got {text:?}"
        ));
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > MAX_DECIMALS {
        return Err(format!("must have at most {MAX_DECIMALS} decimals"));
    }
    let whole = whole.trim_start_matches('0');
    if negative_sign && (!whole.is_empty() || !significant.is_empty()) {
        return Err(negative());
    }
    // More digits than MAX_CENTS has cannot fit: refuse before parsing so
    // an absurdly long string cannot overflow.
    if whole.len() > 12 {
        return Err(too_large());
    }
    let units: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut cents_text = significant.to_string();
    while cents_text.len() < MAX_DECIMALS {
        cents_text.push('0');
    }
    let cents: i64 = cents_text.parse().map_err(|_| too_large())?;
    units
        .checked_mul(SCALE)
        .and_then(|value| value.checked_add(cents))
        .filter(|value| *value <= MAX_CENTS)
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_and_strings_become_exact_cents() {
        for (input, cents) in [
            (json!(0.1), 10),
            (json!(0.2), 20),
            (json!(0.3), 30),
            (json!(19.99), 1999),
            (json!(29), 2900),
            (json!(0), 0),
            (json!(1.1), 110),
            (json!(999999999.99), MAX_CENTS),
            (json!("12.50"), 1250),
            (json!("12,50"), 1250),
            (json!("0,1"), 10),
            (json!(" 12.5 "), 1250),
            (json!("12.5000"), 1250),
            (json!(".5"), 50),
            (json!("7."), 700),
            (json!("0007.07"), 707),
            (json!("-0"), 0),
        ] {
            assert_eq!(parse(&input), Ok(cents), "{input}");
        }
    }

    #[test]
    fn bad_prices_are_refused_with_a_reason() {
        for (input, reason) in [
            (json!(-10), ">= 0"),
            (json!(-0.01), ">= 0"),
            (json!("-3.5"), ">= 0"),
            (json!(19.999), "at most 2 decimals"),
            (json!("0.001"), "at most 2 decimals"),
            (json!(1_000_000_000), "at most 999999999.99"),
            (json!(u64::MAX), "at most"),
            (json!(1e300), "at most"),
            (json!("99999999999999999999999"), "at most"),
            (json!("1.250,00"), "decimal number"),
            (json!("12,5,0"), "decimal number"),
            (json!("12,505"), "at most 2 decimals"),
            (json!("1e5"), "decimal number"),
            (json!("abc"), "decimal number"),
            (json!(""), "decimal number"),
            (json!("."), "decimal number"),
            (json!("1.2.3"), "decimal number"),
            (json!(true), "must be a number"),
            (json!(null), "must be a number"),
        ] {
            let error = parse(&input).expect_err(&input.to_string());
            assert!(error.contains(reason), "{input}: {error}");
        }
    }

    #[test]
    fn every_cent_value_prints_back_exactly() {
        // Small values, values around each power of ten, and the top of the
        // range: the JSON text is the exact decimal, and reading it back
        // gives the same cents.
        let mut samples: Vec<i64> = (0..20_000).collect();
        let mut power = 100;
        while power <= MAX_CENTS {
            samples.extend((power - 300)..(power + 300));
            power *= 10;
        }
        samples.extend((MAX_CENTS - 20_000)..=MAX_CENTS);
        for cents in samples.into_iter().filter(|c| (0..=MAX_CENTS).contains(c)) {
            let value = to_json(cents);
            let text = value.to_string();
            let expected = format_cents(cents);
            let expected = expected.trim_end_matches('0').trim_end_matches('.');
            assert_eq!(
                text.trim_end_matches(".0"),
                expected,
                "{cents} cents printed as {text}"
            );
            let back: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(parse(&back), Ok(cents), "{text}");
        }
    }
}
