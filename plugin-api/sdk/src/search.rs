//! Search-box text made into full-text queries for the database's own
//! index: FTS5's `MATCH` text on SQLite, `to_tsquery` text on PostgreSQL.
//!
//! User text is never query syntax. It is cut into words ([`terms`]: runs
//! of letters and digits, so `PROD-001` is `prod` and `001`), each word is
//! quoted, all words must match, and the last one matches as a prefix, so
//! a search box finds "Clavier" while "clav" is still being typed. `"`,
//! `*`, `AND`, `NEAR(`, `:*`, `!` and friends are just characters or words
//! to look for.
//!
//! Which table and columns are searched, and whether words are folded
//! further (diacritics), is each plugin's business: this module only makes
//! the query text, which is bound as a parameter, never written into SQL.

/// Most words a search uses; the rest are ignored.
pub const MAX_TERMS: usize = 16;

/// The words of a search, lower-cased: runs of letters and digits,
/// everything else separates (as SQLite's `unicode61` tokenizer cuts),
/// at most [`MAX_TERMS`].
pub fn terms(input: &str) -> Vec<String> {
    input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(MAX_TERMS)
        .map(str::to_lowercase)
        .collect()
}

/// One word as an FTS5 phrase: `"word"`, inner quotes doubled. Quoted
/// even when it holds only letters and digits, so `and` or `near` stay
/// words rather than operators.
pub fn fts5_word(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

/// One word as a `to_tsquery` lexeme: `'word'`, quotes doubled and
/// backslashes escaped, so `:*`, `&` or `!` inside it are not operators.
pub fn tsquery_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', "''").replace('\\', "\\\\"))
}

/// An FTS5 query: `"word" "word"*` (juxtaposed phrases are ANDed, the last
/// word is a prefix). Empty for no words.
pub fn fts5_query(terms: &[String]) -> String {
    all_of(terms, fts5_word, "*", " ")
}

/// A PostgreSQL `to_tsquery` text: `'word' & 'word':*` (the last word is a
/// prefix). Empty for no words.
pub fn tsquery(terms: &[String]) -> String {
    all_of(terms, tsquery_word, ":*", " & ")
}

/// Every word quoted by `quote`, the last one followed by `prefix`, joined
/// by `and`.
fn all_of(terms: &[String], quote: fn(&str) -> String, prefix: &str, and: &str) -> String {
    let last = terms.len().saturating_sub(1);
    terms
        .iter()
        .enumerate()
        .map(|(index, term)| {
            let quoted = quote(term);
            if index == last {
                quoted + prefix
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(and)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_quoted_words_for_both_databases() {
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
        assert_eq!(terms("Café CRÈME"), vec!["café", "crème"]);
        assert_eq!(terms(&"a ".repeat(50)).len(), MAX_TERMS);
    }

    #[test]
    fn no_words_is_an_empty_query() {
        assert!(terms("--- !! :*").is_empty());
        assert_eq!(fts5_query(&[]), "");
        assert_eq!(tsquery(&[]), "");
    }

    #[test]
    fn quoting_escapes_what_would_end_the_word() {
        assert_eq!(fts5_word("a\"b"), "\"a\"\"b\"");
        assert_eq!(tsquery_word("o'b\\c"), "'o''b\\\\c'");
        assert_eq!(fts5_query(&["one".to_string()]), "\"one\"*");
        assert_eq!(tsquery(&["one".to_string()]), "'one':*");
    }
}
