//! What a writer sends to `POST /blog` and `PUT /blog/{id}`, checked
//! field by field: every problem is named in one 422, and `contenu` is
//! sanitised here, so nothing unchecked reaches the handlers.

use std::collections::BTreeMap;

use chrono::Datelike;
use serde_json::Map;
use xcore_plugin_sdk::prelude::*;

use super::{
    html::sanitise, FIELDS, MAX_CONTENT_BYTES, MAX_POINTS, MAX_POINT_CHARS, MAX_SLUG_CHARS,
    MAX_SPECIFICATIONS, MAX_SPECIFICATION_NAME_CHARS, MAX_TITLE_CHARS,
};
use crate::{stores::check_url, text};

/// A slug of at most [`MAX_SLUG_CHARS`] (a long title's is cut, with no
/// dash left at the end).
pub(super) fn capped_slug(slug: String) -> String {
    if slug.chars().count() <= MAX_SLUG_CHARS {
        return slug;
    }
    let cut: String = slug.chars().take(MAX_SLUG_CHARS).collect();
    cut.trim_end_matches('-').to_string()
}

/// An RFC 3339 instant in the host's UTC format (so it compares with
/// `now()` as text).
pub(super) fn instant(raw: &str) -> Result<String, String> {
    let at = chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| "must be an RFC 3339 instant (2026-01-15T10:00:00+01:00)".to_string())?
        .with_timezone(&chrono::Utc);
    if !(1..=9999).contains(&at.year()) {
        return Err("must be between the years 1 and 9999".into());
    }
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// What a writer sent, checked. `None`: not sent (kept by `PUT`).
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub(super) titre: Option<String>,
    /// Sanitised.
    pub(super) contenu: Option<String>,
    /// A slug already.
    pub(super) slug: Option<String>,
    /// `Some(None)` clears it.
    pub(super) image: Option<Option<String>>,
    pub(super) date_publication: Option<String>,
    pub(super) avantages: Option<Vec<String>>,
    pub(super) inconvenients: Option<Vec<String>>,
    pub(super) specifications: Option<BTreeMap<String, Option<String>>>,
    pub(super) draft: Option<bool>,
}

/// Field problems, each named.
#[derive(Default)]
pub(super) struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    fn into_result(self) -> Result<(), Response> {
        if self.0.is_empty() {
            return Ok(());
        }
        let details: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(field, message)| (field.as_str(), message.as_str()))
            .collect();
        Err(Response::validation(&details))
    }
}

/// Text of at most `max` characters, trimmed; `None` (and a problem) when
/// it is not text, empty or too long.
pub(super) fn bounded_text(
    value: &Value,
    field: &str,
    max: usize,
    problems: &mut Problems,
) -> Option<String> {
    let Value::String(raw) = value else {
        problems.add(field, "must be text");
        return None;
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        problems.add(field, "must not be empty");
        return None;
    }
    if trimmed.chars().count() > max {
        problems.add(field, format!("at most {max} characters"));
        return None;
    }
    Some(trimmed.to_string())
}

/// `avantages` or `inconvenients`: up to [`MAX_POINTS`] texts; `null` is
/// none.
pub(super) fn points(value: &Value, field: &str, problems: &mut Problems) -> Option<Vec<String>> {
    let items = match value {
        Value::Null => return Some(Vec::new()),
        Value::Array(items) => items,
        _ => {
            problems.add(field, "must be a list of texts");
            return None;
        }
    };
    if items.len() > MAX_POINTS {
        problems.add(field, format!("at most {MAX_POINTS} entries"));
        return None;
    }
    let before = problems.0.len();
    let points: Vec<String> = items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            bounded_text(
                item,
                &format!("{field}[{index}]"),
                MAX_POINT_CHARS,
                problems,
            )
        })
        .collect();
    (problems.0.len() == before).then_some(points)
}

/// `specifications`: up to [`MAX_SPECIFICATIONS`] names, each to a text
/// or `null`; `null` is none.
pub(super) fn specifications(
    value: &Value,
    problems: &mut Problems,
) -> Option<BTreeMap<String, Option<String>>> {
    let entries = match value {
        Value::Null => return Some(BTreeMap::new()),
        Value::Object(entries) => entries,
        _ => {
            problems.add("specifications", "must be an object of texts or nulls");
            return None;
        }
    };
    if entries.len() > MAX_SPECIFICATIONS {
        problems.add(
            "specifications",
            format!("at most {MAX_SPECIFICATIONS} entries"),
        );
        return None;
    }
    let before = problems.0.len();
    let mut specifications = BTreeMap::new();
    for (name, value) in entries {
        let field = format!("specifications.{name}");
        let trimmed = name.trim();
        if trimmed.is_empty() || trimmed.chars().count() > MAX_SPECIFICATION_NAME_CHARS {
            problems.add(
                &field,
                format!("a name of 1 to {MAX_SPECIFICATION_NAME_CHARS} characters"),
            );
            continue;
        }
        let value = match value {
            Value::Null => None,
            Value::String(text) if text.trim().is_empty() => None,
            value => bounded_text(value, &field, MAX_POINT_CHARS, problems),
        };
        specifications.insert(trimmed.to_string(), value);
    }
    (problems.0.len() == before).then_some(specifications)
}

/// Reads a writer's body; `creating` makes `titre` and `contenu` required.
pub(super) fn read_changes(body: &Value, creating: bool) -> Result<Changes, Response> {
    let Value::Object(body) = body else {
        return Err(Response::invalid("body", "must be a JSON object"));
    };
    let mut problems = Problems::default();
    for name in body.keys() {
        if !FIELDS.contains(&name.as_str()) {
            problems.add(name, format!("unknown field; known: {}", FIELDS.join(", ")));
        }
    }
    let changes = read_fields(body, &mut problems);
    if creating {
        for (field, missing) in [
            ("titre", changes.titre.is_none()),
            ("contenu", changes.contenu.is_none()),
        ] {
            if missing && !problems.0.iter().any(|(f, _)| f == field) {
                problems.add(field, "required");
            }
        }
    }
    problems.into_result()?;
    Ok(changes)
}

/// The known fields of `body`, each checked.
pub(super) fn read_fields(body: &Map<String, Value>, problems: &mut Problems) -> Changes {
    let mut changes = Changes::default();
    let present = |field: &str| body.get(field).filter(|value| !value.is_null());
    if let Some(titre) = body.get("titre") {
        changes.titre = bounded_text(titre, "titre", MAX_TITLE_CHARS, problems);
    }
    if let Some(contenu) = body.get("contenu") {
        match contenu {
            Value::String(html) if html.len() > MAX_CONTENT_BYTES => problems.add(
                "contenu",
                format!("at most {MAX_CONTENT_BYTES} bytes (200 KB)"),
            ),
            Value::String(html) if html.trim().is_empty() => {
                problems.add("contenu", "must not be empty");
            }
            Value::String(html) => changes.contenu = Some(sanitise(html)),
            _ => problems.add("contenu", "must be HTML text"),
        }
    }
    if let Some(slug) = present("slug") {
        match slug.as_str().map(text::slugify) {
            None => problems.add("slug", "must be text"),
            Some(slug) if slug.is_empty() => {
                problems.add("slug", "must hold a letter or a digit");
            }
            Some(slug) if slug.chars().count() > MAX_SLUG_CHARS => {
                problems.add("slug", format!("at most {MAX_SLUG_CHARS} characters"));
            }
            Some(slug) => changes.slug = Some(slug),
        }
    }
    if let Some(image) = body.get("image") {
        match image {
            Value::Null => changes.image = Some(None),
            Value::String(url) if url.trim().is_empty() => changes.image = Some(None),
            Value::String(url) => match check_url(url.trim()) {
                Ok(()) => changes.image = Some(Some(url.trim().to_string())),
                Err(message) => problems.add("image", message),
            },
            _ => problems.add("image", "must be an http or https URL"),
        }
    }
    if let Some(at) = present("date_publication") {
        match at.as_str().map(instant) {
            Some(Ok(at)) => changes.date_publication = Some(at),
            Some(Err(message)) => problems.add("date_publication", message),
            None => problems.add("date_publication", "must be an RFC 3339 instant"),
        }
    }
    if let Some(value) = body.get("avantages") {
        changes.avantages = points(value, "avantages", problems);
    }
    if let Some(value) = body.get("inconvenients") {
        changes.inconvenients = points(value, "inconvenients", problems);
    }
    if let Some(value) = body.get("specifications") {
        changes.specifications = specifications(value, problems);
    }
    if let Some(draft) = present("draft") {
        match draft.as_bool() {
            Some(draft) => changes.draft = Some(draft),
            None => problems.add("draft", "must be true or false"),
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_normalised_to_utc() {
        assert_eq!(
            instant("2026-01-15T10:00:00+01:00").as_deref(),
            Ok("2026-01-15T09:00:00.000000Z")
        );
        assert!(instant("15/01/2026").is_err());
        assert!(instant("9999-12-31T23:00:00-05:00").is_err());
    }

    #[test]
    fn every_problem_is_named() {
        let refused = read_changes(
            &json!({"titre": "", "image": "ftp://x", "avantages": ["ok", 3],
                    "specifications": {"ram": 12}, "draft": "yes", "couleur": "bleu"}),
            true,
        )
        .expect_err("refused");
        let body = String::from_utf8_lossy(&refused.body_bytes()).to_string();
        for field in [
            "titre",
            "contenu",
            "image",
            "avantages[1]",
            "specifications.ram",
            "draft",
            "couleur",
        ] {
            assert!(
                body.contains(&format!("\"field\":\"{field}\"")),
                "{field}: {body}"
            );
        }
    }
}
