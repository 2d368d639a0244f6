//! Full-text search over a lead's company, contact, email and notes with
//! the database's own index: FTS5 on SQLite, a `tsvector` with a GIN index
//! on PostgreSQL (migration 1).
//!
//! User text is never query syntax: the SDK's [`xcore_plugin_sdk::search`]
//! cuts it into words, each quoted, all must match, the last as a prefix.

use xcore_plugin_sdk::{
    search::{fts5_query, terms, tsquery},
    Dialect,
};

/// The condition on leads aliased `l` and the bound query text, for the
/// search text at placeholder `param`; `None` when the text has no word.
pub fn condition(dialect: Dialect, input: &str, param: usize) -> Option<(String, String)> {
    let terms = terms(input);
    if terms.is_empty() {
        return None;
    }
    Some(match dialect {
        Dialect::Sqlite => (
            format!("l.id IN (SELECT rowid FROM leads_fts WHERE leads_fts MATCH ${param})"),
            fts5_query(&terms),
        ),
        Dialect::Postgres => (
            format!("l.search_vector @@ to_tsquery('simple', ${param})"),
            tsquery(&terms),
        ),
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
