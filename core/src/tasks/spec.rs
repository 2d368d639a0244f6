//! What a client may write to define a task, and its validation: the
//! schedule (5- or 6-field cron, interval, or one run at a time), the id and
//! the job name.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A task's schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// A cron expression as the client wrote it (5 fields, or 6 with
    /// seconds first).
    Cron(String),
    /// Every this many seconds.
    Interval(u64),
    /// Once, at this instant.
    Once(DateTime<Utc>),
}

impl Schedule {
    /// `cron`, `interval` or `once`.
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::Cron(_) => "cron",
            Schedule::Interval(_) => "interval",
            Schedule::Once(_) => "once",
        }
    }
}

/// The 6-field form the scheduler reads (seconds first): a 5-field
/// expression runs at second 0.
pub fn six_field_cron(expression: &str) -> String {
    let expression = expression.trim();
    if expression.split_whitespace().count() == 5 {
        format!("0 {expression}")
    } else {
        expression.to_string()
    }
}

/// `{"days","hours","minutes","seconds"}`, summed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalInput {
    /// Days.
    #[serde(default, deserialize_with = "whole_number")]
    pub days: u64,
    /// Hours.
    #[serde(default, deserialize_with = "whole_number")]
    pub hours: u64,
    /// Minutes.
    #[serde(default, deserialize_with = "whole_number")]
    pub minutes: u64,
    /// Seconds.
    #[serde(default, deserialize_with = "whole_number")]
    pub seconds: u64,
}

/// A count of units: JSON Schema (and so the API document) counts `5.0` as
/// the integer 5, so the server does too.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    number
        .as_u64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|value| value.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(value))
                .map(|value| value as u64)
        })
        .ok_or_else(|| serde::de::Error::custom("must be a whole number >= 0"))
}

impl IntervalInput {
    /// Total seconds, if it does not overflow.
    pub fn total_seconds(&self) -> Option<u64> {
        self.days
            .checked_mul(86_400)?
            .checked_add(self.hours.checked_mul(3_600)?)?
            .checked_add(self.minutes.checked_mul(60)?)?
            .checked_add(self.seconds)
    }

    /// The same interval split into days, hours, minutes and seconds.
    pub fn from_seconds(total: u64) -> Self {
        Self {
            days: total / 86_400,
            hours: total % 86_400 / 3_600,
            minutes: total % 3_600 / 60,
            seconds: total % 60,
        }
    }
}

/// `POST /system/tasks` and `PUT /system/tasks/{id}` (where every field is
/// optional and the id cannot change).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    /// Unique id (create only).
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// `cron` (also `scheduled`), `interval` or `once`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Cron expression, for `cron`.
    pub schedule: Option<String>,
    /// For `interval`.
    pub interval: Option<IntervalInput>,
    /// RFC 3339 instant, for `once`.
    pub run_at: Option<String>,
    /// `core.<job>` or `<plugin>.<job>`.
    pub job: Option<String>,
    /// `false` creates the task paused.
    pub enabled: Option<bool>,
}

/// Longest task id.
const MAX_ID_LEN: usize = 64;

/// Checks a task id: 1-64 of `a-z0-9_.-`, starting with a letter or digit.
pub fn check_id(id: &str) -> Result<(), FieldError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            "id",
            "use 1-64 of a-z, 0-9, _, -, . starting with a letter or digit",
        ))
    }
}

/// Reads the schedule the input describes; `checks_cron` validates an
/// expression (the scheduler's own parser, so what passes here runs).
pub fn schedule_of(
    kind: &str,
    input: &TaskInput,
    checks_cron: impl Fn(&str) -> bool,
) -> Result<Schedule, FieldError> {
    match kind {
        "cron" | "scheduled" => {
            let expression = input
                .schedule
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| FieldError::new("schedule", "required for type cron"))?;
            let fields = expression.split_whitespace().count();
            if !(5..=6).contains(&fields) || !checks_cron(&six_field_cron(expression)) {
                return Err(FieldError::new(
                    "schedule",
                    format!(
                        "{expression:?} is not a valid cron expression \
                         (5 fields: minute hour day month weekday, or 6 with seconds first)"
                    ),
                ));
            }
            Ok(Schedule::Cron(expression.to_string()))
        }
        "interval" => {
            let interval = input
                .interval
                .as_ref()
                .ok_or_else(|| FieldError::new("interval", "required for type interval"))?;
            match interval.total_seconds() {
                Some(0) => Err(FieldError::new("interval", "must be at least 1 second")),
                Some(seconds) if seconds <= 366 * 86_400 => Ok(Schedule::Interval(seconds)),
                _ => Err(FieldError::new("interval", "must be at most 366 days")),
            }
        }
        "once" => {
            let raw = input
                .run_at
                .as_deref()
                .ok_or_else(|| FieldError::new("run_at", "required for type once"))?;
            let at = DateTime::parse_from_rfc3339(raw)
                .map_err(|_| {
                    FieldError::new(
                        "run_at",
                        "must be an RFC 3339 instant, e.g. 2026-01-15T10:30:00Z",
                    )
                })?
                .with_timezone(&Utc);
            Ok(Schedule::Once(at))
        }
        other => Err(FieldError::new(
            "type",
            format!("{other:?} is not a task type: use cron, interval or once"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_counts_are_whole_numbers_however_written() {
        let parsed: IntervalInput =
            serde_json::from_str(r#"{"minutes": 5.0, "seconds": 3}"#).expect("whole numbers");
        assert_eq!((parsed.minutes, parsed.seconds), (5, 3));
        for bad in [
            r#"{"minutes": 5.5}"#,
            r#"{"minutes": -1}"#,
            r#"{"minutes": "5"}"#,
        ] {
            assert!(serde_json::from_str::<IntervalInput>(bad).is_err(), "{bad}");
        }
    }

    fn input(kind: &str) -> TaskInput {
        TaskInput {
            kind: Some(kind.into()),
            ..TaskInput::default()
        }
    }

    #[test]
    fn cron_takes_five_or_six_fields() {
        assert_eq!(six_field_cron("*/5 * * * *"), "0 */5 * * * *");
        assert_eq!(six_field_cron("* * * * * *"), "* * * * * *");
        let mut task = input("cron");
        task.schedule = Some("0 3 * * *".into());
        assert_eq!(
            schedule_of("cron", &task, |_| true),
            Ok(Schedule::Cron("0 3 * * *".into()))
        );
        task.schedule = Some("0 3 * *".into());
        assert_eq!(
            schedule_of("cron", &task, |_| true).unwrap_err().field,
            "schedule"
        );
        task.schedule = Some("nonsense here x y z".into());
        assert!(schedule_of("cron", &task, |_| false).is_err());
    }

    #[test]
    fn intervals_sum_their_parts() {
        let mut task = input("interval");
        task.interval = Some(IntervalInput {
            hours: 1,
            minutes: 30,
            ..IntervalInput::default()
        });
        assert_eq!(
            schedule_of("interval", &task, |_| true),
            Ok(Schedule::Interval(5400))
        );
        assert_eq!(
            IntervalInput::from_seconds(90_061),
            IntervalInput {
                days: 1,
                hours: 1,
                minutes: 1,
                seconds: 1
            }
        );
        task.interval = Some(IntervalInput::default());
        assert!(schedule_of("interval", &task, |_| true).is_err());
        task.interval = Some(IntervalInput {
            days: u64::MAX,
            ..IntervalInput::default()
        });
        assert!(schedule_of("interval", &task, |_| true).is_err());
    }

    #[test]
    fn once_needs_an_rfc3339_instant() {
        let mut task = input("once");
        task.run_at = Some("2030-01-15T10:30:00Z".into());
        assert!(matches!(
            schedule_of("once", &task, |_| true),
            Ok(Schedule::Once(_))
        ));
        task.run_at = Some("tomorrow".into());
        assert_eq!(
            schedule_of("once", &task, |_| true).unwrap_err().field,
            "run_at"
        );
        assert_eq!(
            schedule_of("weekly", &task, |_| true).unwrap_err().field,
            "type"
        );
    }

    #[test]
    fn ids_are_conservative() {
        assert!(check_id("cleanup_logs").is_ok());
        assert!(check_id("hello.tick-2").is_ok());
        for bad in ["", "Upper", "_lead", "has space", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
