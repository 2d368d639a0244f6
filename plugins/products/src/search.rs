//! Full-text search over a product's SKU, name and description, with the
//! database's own index: FTS5 on SQLite, a `tsvector` with a GIN index on
//! PostgreSQL (see migration 1).
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

/// How a search filters (and maybe ranks) products aliased `p`, with the
/// query text bound at placeholder `param`.
pub struct SearchSql {
    /// Joined after `FROM products p` (empty when not needed).
    pub join: String,
    /// A condition for the `WHERE` clause (none when the join filters).
    pub condition: Option<String>,
    /// The relevance order, best first, when asked for.
    pub rank_order: Option<String>,
    /// The bound query text.
    pub query: String,
}

/// The SQL for searching `terms` in `dialect`; `ranked` when the results
/// are to be ordered by relevance (computing a rank for every match costs
/// time a sorted or counted query does not need).
pub fn sql(dialect: Dialect, terms: &[String], param: usize, ranked: bool) -> SearchSql {
    match (dialect, ranked) {
        // The FTS table's columns share names with products' own; a
        // derived table exposes only the rowid and the rank, so nothing
        // else in the query becomes ambiguous.
        (Dialect::Sqlite, true) => SearchSql {
            join: format!(
                "JOIN (SELECT rowid AS fts_id, bm25(products_fts) AS fts_rank FROM products_fts \
                 WHERE products_fts MATCH ${param}) fts ON fts.fts_id = p.id"
            ),
            condition: None,
            rank_order: Some("fts.fts_rank ASC".into()),
            query: fts5_query(terms),
        },
        (Dialect::Sqlite, false) => SearchSql {
            join: String::new(),
            condition: Some(format!(
                "p.id IN (SELECT rowid FROM products_fts WHERE products_fts MATCH ${param})"
            )),
            rank_order: None,
            query: fts5_query(terms),
        },
        (Dialect::Postgres, _) => SearchSql {
            join: String::new(),
            condition: Some(format!("p.search_vector @@ to_tsquery('simple', ${param})")),
            rank_order: ranked
                .then(|| format!("ts_rank(p.search_vector, to_tsquery('simple', ${param})) DESC")),
            query: tsquery(terms),
        },
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
