//! Full-text search over a lead's company, contact, email and notes with
//! the database's own index: FTS5 on SQLite, a `tsvector` with a GIN index
//! on PostgreSQL (migration 1).
//!
//! User text is never query syntax: it is cut into words (runs of letters
//! and digits), each word quoted, all must match, the last as a prefix.

use xcore_plugin_sdk::Dialect;

/// Most words a search uses; the rest are ignored.
pub const MAX_TERMS: usize = 16;

/// The words of a search, lower-cased.
pub fn terms(input: &str) -> Vec<String> {
    input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(MAX_TERMS)
        .map(str::to_lowercase)
        .collect()
}

/// The condition on leads aliased `l` and the bound query text, for the
/// search text at placeholder `param`; `None` when the text has no word.
pub fn condition(dialect: Dialect, input: &str, param: usize) -> Option<(String, String)> {
    let terms = terms(input);
    if terms.is_empty() {
        return None;
    }
    let last = terms.len() - 1;
    Some(match dialect {
        Dialect::Sqlite => {
            let query = terms
                .iter()
                .enumerate()
                .map(|(i, t)| format!("\"{t}\"{}", if i == last { "*" } else { "" }))
                .collect::<Vec<_>>()
                .join(" ");
            (
                format!("l.id IN (SELECT rowid FROM leads_fts WHERE leads_fts MATCH ${param})"),
                query,
            )
        }
        Dialect::Postgres => {
            let query = terms
                .iter()
                .enumerate()
                .map(|(i, t)| format!("'{t}'{}", if i == last { ":*" } else { "" }))
                .collect::<Vec<_>>()
                .join(" & ");
            (
                format!("l.search_vector @@ to_tsquery('simple', ${param})"),
                query,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_quoted_words() {
        let (_, query) = condition(Dialect::Sqlite, "Acme \"AND\" near(", 1).expect("words");
        assert_eq!(query, "\"acme\" \"and\" \"near\"*");
        let (_, query) = condition(Dialect::Postgres, "o'brien x:*", 1).expect("words");
        assert_eq!(query, "'o' & 'brien' & 'x':*");
        assert!(condition(Dialect::Sqlite, "--- !!", 1).is_none());
    }
}
