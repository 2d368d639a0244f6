//! Timestamps as stored and sent: RFC 3339, UTC, microseconds, `Z` suffix.
//!
//! One fixed width means lexical order is time order, so `expires_at < $1`
//! and `ORDER BY created_at` work on TEXT columns in both dialects.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats an instant.
pub fn format(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, formatted.
pub fn now() -> String {
    format(Utc::now())
}

/// Now plus `seconds`, formatted.
pub fn in_seconds(seconds: u64) -> String {
    let delta = chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000));
    format(Utc::now() + delta)
}

/// Formats a unix timestamp in seconds.
pub fn from_unix(seconds: i64) -> String {
    format(DateTime::from_timestamp(seconds, 0).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_so_text_order_is_time_order() {
        let early = from_unix(5);
        let late = from_unix(1_700_000_000);
        assert_eq!(early.len(), late.len());
        assert!(early < late);
        assert_eq!(early, "1970-01-01T00:00:05.000000Z");
    }
}
