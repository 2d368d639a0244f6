//! The current time in the host's timestamp format: RFC 3339, UTC,
//! microseconds, `Z`. One fixed width, so text order is time order in both
//! SQL dialects (`ORDER BY created_at` on a TEXT column).

use chrono::{SecondsFormat, Utc};

/// Now, formatted like the host's timestamps (`2026-11-23T16:50:00.123456Z`).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixed_width_utc_micros() {
        let now = super::now();
        assert_eq!(now.len(), "1970-01-01T00:00:00.000000Z".len(), "{now}");
        assert!(now.ends_with('Z'));
    }
}
