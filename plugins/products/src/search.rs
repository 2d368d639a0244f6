//! Full-text search over a product's SKU, name and description, with the
//! database's own index: FTS5 on SQLite (migration 1), a `tsvector` with a
//! GIN index on PostgreSQL (migration 2, [`postgres_migration`]).
//!
//! User text is never query syntax. It is cut into words (runs of letters
//! and digits, so `PROD-001` is `prod` and `001`), each word is quoted, all
//! words must match, and the last one matches as a prefix, so a search box
//! finds "Clavier" while "clav" is still being typed. `"`, `*`, `AND`,
//! `NEAR(`, `:*`, `!` and friends are just characters or words to look for.
//!
//! # The same words on both databases
//!
//! A search must find the same rows on either database, so both indexes
//! must cut a product's text into the same words. SQLite's `unicode61`
//! tokenizer does what [`terms`] does: letters and digits, everything else
//! separates, diacritics folded. PostgreSQL's parser does not: it keeps
//! `KEY-001` as `key` and `-001` (a signed integer), `a.b` and `12.50` as
//! one word, `a/b` as a path, so `search=KEY-001` found nothing there. Its
//! document is therefore built from text already cut the SQLite way:
//! ASCII punctuation and spaces become spaces, the diacritics of Latin
//! letters are dropped ([`fold`]), and only then does
//! `to_tsvector('simple', ...)` split on the spaces. It stays a generated
//! column, so every write (create, update, bulk, import) is searchable at
//! once, whoever makes it.
//!
//! Cost: reads are unchanged (the same GIN lookups). Each written row's
//! document costs more to build on PostgreSQL: on 100,000 rows of ~120
//! characters, 26 µs per row before, 75 µs after (a loaded 2-core test
//! machine), so a 10,000-row bulk or import spends about half a second
//! more. (`translate()` over a table of the 488 letters SQLite folds was
//! tried first: 400 µs per row.)

use unicode_normalization::UnicodeNormalization;
use xcore_plugin_sdk::{
    search::{fts5_query, tsquery},
    Dialect,
};

/// Longest search text accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// The words of a search as the SDK cuts them
/// ([`xcore_plugin_sdk::search::terms`]: lower-cased letters and digits),
/// diacritics then folded like the indexes fold them (see [`fold`]).
pub fn terms(input: &str) -> Vec<String> {
    xcore_plugin_sdk::search::terms(input)
        .iter()
        .map(|word| fold(word))
        .collect()
}

/// `text` with the diacritics of Latin letters removed: decomposed
/// (NFD), the combining marks (U+0300 to U+036F) after an ASCII letter
/// dropped, recomposed (NFC). PostgreSQL's document does exactly this
/// ([`postgres_document`]); it is what SQLite's `remove_diacritics 2`
/// does, bar a few letters (`ſ`, Greek letter variants such as `ς`) that
/// SQLite also folds. Letters without a decomposition (`ø`, `ł`, `đ`, `œ`,
/// `ß`) are kept, as SQLite keeps them.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let mut folded = String::with_capacity(text.len());
    let mut after_ascii_letter = false;
    for c in text.nfd() {
        if after_ascii_letter && ('\u{300}'..='\u{36F}').contains(&c) {
            continue;
        }
        after_ascii_letter = c.is_ascii_alphabetic();
        folded.push(c);
    }
    folded.nfc().collect()
}

/// PostgreSQL's search document of the product row: its SKU, name and
/// description cut into words the way SQLite's index cuts them and folded
/// like [`fold`] (see the module docs). ASCII and code points only in the
/// patterns, so the database's locale does not decide what a letter is.
/// `normalize()` needs PostgreSQL 13 and a UTF-8 database.
pub fn postgres_document() -> String {
    "to_tsvector('simple', normalize(regexp_replace(normalize(regexp_replace(\
     lower(sku || ' ' || name || ' ' || coalesce(description, '')), \
     '[\\x01-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7F]+', ' ', 'g'), NFD), \
     '([a-z])[\\u0300-\\u036F]+', '\\1', 'g'), NFC))"
        .to_string()
}

/// Migration 2 (PostgreSQL): the search document rebuilt as
/// [`postgres_document`] (migration 1's split `KEY-001` into `key` and
/// `-001`). Dropping the column drops its index, recreated after; every
/// stored row is recomputed once.
pub fn postgres_migration() -> String {
    format!(
        "ALTER TABLE products DROP COLUMN search_vector;
         ALTER TABLE products ADD COLUMN search_vector tsvector
             GENERATED ALWAYS AS ({}) STORED;
         CREATE INDEX products_search_idx ON products USING GIN (search_vector)",
        postgres_document()
    )
}

/// Migration 2 (SQLite): nothing to change, FTS5 already cuts words this
/// way; the version exists so both databases share one history.
pub const SQLITE_MIGRATION: &str =
    "-- FTS5 (migration 1) already cuts words as search::terms does.\nSELECT 1";

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
    fn latin_diacritics_fold_and_the_migration_builds_the_same_document() {
        assert_eq!(fold("écran çà ŝ ǖ ḕ"), "ecran ca s u e");
        assert_eq!(fold("łódź ø œ ß"), "łodz ø œ ß");
        // Marks after other scripts' letters stay, recomposed.
        assert_eq!(fold("йод άλφα"), "йод άλφα");
        let migration = postgres_migration();
        assert!(migration.contains("GENERATED ALWAYS AS (to_tsvector('simple', normalize("));
        assert!(migration.contains(r"'([a-z])[\u0300-\u036F]+', '\1', 'g'), NFC)"));
    }

    // Quoting and prefixes are the SDK's (tested there); what is this
    // plugin's is the folding on top of the SDK's cut.
    #[test]
    fn user_text_becomes_folded_words() {
        assert!(terms("--- !!").is_empty());
        assert_eq!(terms("Café CRÈME Ŝkoda"), vec!["cafe", "creme", "skoda"]);
        // Letters SQLite does not fold stay as they are.
        assert_eq!(terms("Smørrebrød Łódź"), vec!["smørrebrød", "łodz"]);
        assert_eq!(terms("KEY-001"), vec!["key", "001"]);
        let most = xcore_plugin_sdk::search::MAX_TERMS;
        assert_eq!(terms(&"a ".repeat(50)).len(), most);
    }
}
