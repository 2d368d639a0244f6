//! The list filters shared by `GET /`, `/status/{status}`, `/export` and
//! a campaign's `target`: one `WHERE` clause builder, so a filter means the
//! same thing everywhere.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use xcore_plugin_sdk::{prelude::*, Clause, Dialect};

use crate::{search, Problems, STATUSES};

/// The filters of a lead list (query parameters) or of a campaign's
/// `target` (a JSON object with the same fields).
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct LeadFilter {
    /// Full-text search over company, contact name, email and notes: every
    /// word must match, the last one as a prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only leads in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only leads of this niche.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub niche_id: Option<i64>,
    /// Only leads of this campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<i64>,
    /// Only leads from this source (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Only leads owned by this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<i64>,
    /// Lowest score (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_min: Option<i64>,
    /// Highest score (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_max: Option<i64>,
    /// Only leads carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Created at or after this instant (RFC 3339 or a date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_from: Option<String>,
    /// Created before this instant (RFC 3339), or on or before this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_to: Option<String>,
}

/// A date (`2026-11-30`) or an RFC 3339 instant as the host's timestamp
/// text; a bare date ends the day when `end_of_day`.
fn instant(raw: &str, end_of_day: bool) -> Option<String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let date = if end_of_day { date.succ_opt()? } else { date };
        return Some(format!("{date}T00:00:00.000000Z"));
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(raw).ok()?;
    Some(
        parsed
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
    )
}

impl LeadFilter {
    /// Checks the values (422 naming each bad one, under `prefix`).
    pub fn check(&self, prefix: &str, problems: &mut Problems) {
        let field = |name: &str| format!("{prefix}{name}");
        if let Some(status) = &self.status {
            if !STATUSES.contains(&status.as_str()) {
                problems.add(
                    &field("status"),
                    format!("must be one of {}", STATUSES.join(", ")),
                );
            }
        }
        for (name, value) in [("score_min", self.score_min), ("score_max", self.score_max)] {
            if value.is_some_and(|v| !(0..=100).contains(&v)) {
                problems.add(&field(name), "must be between 0 and 100");
            }
        }
        if self
            .search
            .as_ref()
            .is_some_and(|s| s.chars().count() > 200)
        {
            problems.add(&field("search"), "at most 200 characters");
        }
        for (name, value, end) in [
            ("created_from", &self.created_from, false),
            ("created_to", &self.created_to, true),
        ] {
            if value
                .as_deref()
                .is_some_and(|raw| instant(raw, end).is_none())
            {
                problems.add(
                    &field(name),
                    "must be a date (YYYY-MM-DD) or an RFC 3339 instant",
                );
            }
        }
    }

    /// The clause selecting the leads this filter keeps.
    pub fn clause(&self, dialect: Dialect) -> Clause {
        let mut clause = Clause::default();
        if let Some(text) = &self.search {
            if let Some((_, query)) = search::condition(dialect, text, 0) {
                let position = clause.params.len() + 1;
                let (condition, _) = search::condition(dialect, text, position).unwrap_or_default();
                clause.params.push(Value::from(query));
                clause.conditions.push(condition);
            }
        }
        if let Some(status) = &self.status {
            clause.push("l.status = {}", json!(status));
        }
        if let Some(id) = self.niche_id {
            clause.push("l.niche_id = {}", json!(id));
        }
        if let Some(id) = self.campaign_id {
            clause.push("l.campaign_id = {}", json!(id));
        }
        if let Some(source) = &self.source {
            clause.push("l.source = {}", json!(source));
        }
        if let Some(id) = self.owner_id {
            clause.push("l.owner_id = {}", json!(id));
        }
        if let Some(min) = self.score_min {
            clause.push("l.score >= {}", json!(min));
        }
        if let Some(max) = self.score_max {
            clause.push("l.score <= {}", json!(max));
        }
        if let Some(tag) = &self.tag {
            // Tags are a JSON array of strings: the quoted tag is a whole
            // element (escaping of `%`/`_` keeps them literal).
            let quoted = serde_json::to_string(tag).unwrap_or_default();
            let pattern = format!(
                "%{}%",
                quoted
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            clause.push("l.tags LIKE {} ESCAPE '\\'", json!(pattern));
        }
        if let Some(from) = self.created_from.as_deref().and_then(|r| instant(r, false)) {
            clause.push("l.created_at >= {}", json!(from));
        }
        if let Some(to) = self.created_to.as_deref().and_then(|r| instant(r, true)) {
            clause.push("l.created_at < {}", json!(to));
        }
        clause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_parameters() {
        let filter = LeadFilter {
            search: Some("acme".into()),
            status: Some("new".into()),
            score_min: Some(10),
            ..LeadFilter::default()
        };
        let clause = filter.clause(Dialect::Postgres);
        assert_eq!(clause.params.len(), 3);
        assert!(clause.sql().contains("to_tsquery('simple', $1)"));
        assert!(clause.sql().contains("l.status = $2"));
        assert!(clause.sql().contains("l.score >= $3"));
    }

    #[test]
    fn dates_become_timestamps() {
        assert_eq!(
            instant("2026-11-30", true).as_deref(),
            Some("2026-12-01T00:00:00.000000Z")
        );
        assert!(instant("yesterday", false).is_none());
    }
}
