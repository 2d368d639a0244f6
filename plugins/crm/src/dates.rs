//! The dates the API accepts and the instants it compares: RFC 3339
//! instants (any offset) or plain `YYYY-MM-DD` dates, normalised to the
//! host's UTC format (`2026-11-30T20:15:04.123456Z`), so stored times
//! compare as text in both databases.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc};

/// An instant in the host's format.
pub fn format(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An RFC 3339 instant or a date (its midnight, UTC) in the host's format.
pub fn instant(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(raw) {
        return Ok(format(instant.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|midnight| format(Utc.from_utc_datetime(&midnight)))
        .ok_or_else(|| "must be an RFC 3339 date-time or a YYYY-MM-DD date".into())
}

/// The end of a range given as a date means the whole day: the next
/// midnight (exclusive); an instant stays as given.
pub fn range_end(raw: &str) -> Result<String, String> {
    match NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        Ok(date) => date
            .succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|midnight| format(Utc.from_utc_datetime(&midnight)))
            .ok_or_else(|| "is out of range".into()),
        Err(_) => instant(raw),
    }
}

/// A calendar date, `YYYY-MM-DD`.
pub fn date(raw: &str) -> Result<String, String> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map(|date| date.format("%Y-%m-%d").to_string())
        .map_err(|_| "must be a YYYY-MM-DD date".into())
}

/// Now, today's midnight, tomorrow's, the first of this month and of this
/// quarter, all UTC in the host's format.
pub struct Calendar {
    /// This instant.
    pub now: String,
    /// 00:00 today.
    pub today: String,
    /// 00:00 tomorrow.
    pub tomorrow: String,
    /// 00:00 on the first of this month.
    pub month: String,
    /// 00:00 on the first of this quarter.
    pub quarter: String,
}

impl Calendar {
    /// The calendar at `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        let today = now.date_naive();
        let midnight = |date: NaiveDate| {
            format(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default()))
        };
        let first = |month: u32| NaiveDate::from_ymd_opt(today.year(), month, 1).unwrap_or(today);
        Self {
            now: format(now),
            today: midnight(today),
            tomorrow: midnight(today.succ_opt().unwrap_or(today)),
            month: midnight(first(today.month())),
            quarter: midnight(first((today.month() - 1) / 3 * 3 + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants_become_the_host_format() {
        assert_eq!(
            instant("2026-03-01"),
            Ok("2026-03-01T00:00:00.000000Z".into())
        );
        assert_eq!(
            instant("2026-03-01T10:00:00+02:00"),
            Ok("2026-03-01T08:00:00.000000Z".into())
        );
        assert_eq!(
            range_end("2026-03-01"),
            Ok("2026-03-02T00:00:00.000000Z".into())
        );
        assert!(instant("yesterday").is_err());
        assert!(date("2026-02-30").is_err());
        let calendar = Calendar::at(Utc.with_ymd_and_hms(2026, 8, 17, 9, 30, 0).unwrap());
        assert_eq!(calendar.month, "2026-08-01T00:00:00.000000Z");
        assert_eq!(calendar.quarter, "2026-07-01T00:00:00.000000Z");
        assert_eq!(calendar.tomorrow, "2026-08-18T00:00:00.000000Z");
    }
}
