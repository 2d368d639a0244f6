//! Full-text search over a customer's name, email, phone and notes, with
//! the database's own index: FTS5 on SQLite, a `tsvector` with a GIN index
//! on PostgreSQL (see migration 1). The same rules as the products
//! plugin's search, so both search boxes behave alike.
//!
//! User text is never query syntax. It is cut into words (runs of letters
//! and digits, so `PROD-001` is `prod` and `001`, the way both indexes
//! tokenise it), each word is quoted, all words must match, and the last
//! one matches as a prefix, so a search box finds "Clavier" while "clav" is
//! still being typed. `"`, `*`, `AND`, `NEAR(`, `:*`, `!` and friends are
//! just characters or words to look for.

use xcore_plugin_sdk::Dialect;

/// Most words a search uses; the rest are ignored.
pub const MAX_TERMS: usize = 16;
/// Longest search text accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// The words of a search, lower-cased.
pub fn terms(input: &str) -> Vec<String> {
    input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(MAX_TERMS)
        .map(str::to_lowercase)
        .collect()
}

/// An FTS5 query: `"word" "word"*` (juxtaposed phrases are ANDed). Words
/// hold only letters and digits, but are quoted anyway so that words like
/// `and` or `near` stay words.
pub fn fts5_query(terms: &[String]) -> String {
    let last = terms.len().saturating_sub(1);
    terms
        .iter()
        .enumerate()
        .map(|(index, term)| {
            let quoted = format!("\"{}\"", term.replace('"', "\"\""));
            if index == last {
                quoted + "*"
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A PostgreSQL `to_tsquery` text: `'word' & 'word':*`.
pub fn tsquery(terms: &[String]) -> String {
    let last = terms.len().saturating_sub(1);
    terms
        .iter()
        .enumerate()
        .map(|(index, term)| {
            let quoted = format!("'{}'", term.replace('\'', "''").replace('\\', "\\\\"));
            if index == last {
                quoted + ":*"
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// A `WHERE` condition on customers aliased `c` matching `terms`, with
/// the query text to bind at placeholder `param`.
pub fn condition(dialect: Dialect, terms: &[String], param: usize) -> (String, String) {
    match dialect {
        Dialect::Sqlite => (
            format!("c.id IN (SELECT rowid FROM crm_customers_fts WHERE crm_customers_fts MATCH ${param})"),
            fts5_query(terms),
        ),
        Dialect::Postgres => (
            format!("c.search_vector @@ to_tsquery('simple', ${param})"),
            tsquery(terms),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_quoted_words() {
        let words = terms("  Clavier  PROD-001 \"AND\" near( *x:*! ");
        assert_eq!(words, vec!["clavier", "prod", "001", "and", "near", "x"]);
        assert_eq!(
            fts5_query(&words),
            "\"clavier\" \"prod\" \"001\" \"and\" \"near\" \"x\"*"
        );
        assert_eq!(
            tsquery(&words),
            "'clavier' & 'prod' & '001' & 'and' & 'near' & 'x':*"
        );
        assert!(terms("--- !!").is_empty());
        assert_eq!(terms("Café crème"), vec!["café", "crème"]);
        assert_eq!(terms(&"a ".repeat(50)).len(), MAX_TERMS);
    }
}
