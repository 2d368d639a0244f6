//! The product search of the public API (seed 002), on both databases'
//! own full-text indexes (FTS5 on SQLite, a GIN `tsvector` on PostgreSQL)
//! over each offer's folded title, brand and reference.
//!
//! - A query that looks like a reference (one token with a digit or a
//!   dash, see [`text::is_reference`]) matches the reference exactly,
//!   cheapest first; when no offer has that reference it is searched as
//!   text (`12000BTU` is a word of many titles).
//! - Free text: every word must match (the last one as a prefix). Ranked
//!   titles starting with the phrase first, then titles holding the
//!   phrase, then the other matches; a word found nowhere in the offers'
//!   vocabulary is replaced by the vocabulary's words within its typo
//!   distance (fuzzy matching), so `samsnug` finds Samsung.
//! - Filters: category (parent or sub-category slug), brand (name or
//!   slug, any case), price range, on sale.
//! - Results are de-duplicated by reference (the cheapest offer kept) and
//!   interleaved round-robin across stores (each store's best, then each
//!   store's second, ...), so no store fills a page.

use serde::{Deserialize, Serialize};
use xcore_plugin_sdk::{
    prelude::*,
    search::{fts5_word, tsquery_word},
    Dialect,
};

use crate::{money, offers::flag, text, Pricing};

/// Results per page (the seed's `PAGE_SIZE`).
pub const PAGE_SIZE: i64 = 20;
/// Highest page.
pub const MAX_PAGE: i64 = 100;
/// Most words a query uses.
const MAX_WORDS: usize = 8;
/// Most vocabulary words a misspelt word stands for.
const MAX_ALTERNATIVES: usize = 8;

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Search text.
    pub q: Option<String>,
    /// Category slug: a parent's or a sub-category's.
    pub categorie: Option<String>,
    /// A parent category's slug (only as the parent).
    pub parent_category: Option<String>,
    /// A parent category and one of its sub-categories, both slugs.
    pub sub_category: Option<(String, String)>,
    /// Brand name or slug.
    pub marque: Option<String>,
    /// Lowest price, cents.
    pub prix_min: Option<i64>,
    /// Highest price, cents.
    pub prix_max: Option<i64>,
    /// Only offers with a reduction.
    pub en_promo: bool,
    /// 1-based page.
    pub page: i64,
}

/// One result, in the seed's shape.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Card {
    /// The offer's id.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// Always null for per-store results (the seed's rule).
    #[serde(default)]
    pub slug: Option<String>,
    /// Title.
    pub nom: String,
    /// Brand.
    pub marque: Option<String>,
    /// Category slug.
    pub categorie: Option<String>,
    /// Category name.
    pub categorie_nom: Option<String>,
    /// Price.
    #[serde(serialize_with = "money::serde_price::serialize")]
    #[schema(value_type = f64)]
    pub prix_min: i64,
    /// Price before the reduction; null when there is none.
    #[serde(serialize_with = "money::serde_price::option::serialize")]
    #[schema(value_type = Option<f64>)]
    pub prix_max: Option<i64>,
    /// Image.
    pub image: Option<String>,
    /// In stock.
    #[serde(deserialize_with = "flag")]
    pub en_stock: bool,
    /// The reduction, in money.
    #[serde(serialize_with = "money::serde_price::serialize")]
    #[schema(value_type = f64)]
    pub discount: i64,
    /// Reference.
    pub reference: String,
    /// Store name.
    pub boutique: String,
    /// The offer's page at the store.
    pub url_boutique: Option<String>,
    /// How many results the whole query has (not shown).
    #[serde(default, skip_serializing)]
    pub total_count: i64,
}

fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(text) => text,
        other => other.to_string(),
    })
}

/// The columns of a [`Card`] from offers `o` and stores `s`.
pub const CARD_COLUMNS: &str = "o.id AS id, o.title AS nom, o.brand AS marque, \
     o.category_slug AS categorie, o.category AS categorie_nom, o.price_cents AS prix_min, \
     CASE WHEN o.old_price_cents > o.price_cents THEN o.old_price_cents END AS prix_max, \
     o.image AS image, o.in_stock AS en_stock, o.discount_cents AS discount, \
     o.reference AS reference, s.nom AS boutique, o.url AS url_boutique";

/// A page of results and the total.
pub struct Page {
    /// The results.
    pub cards: Vec<Card>,
    /// Results over all pages.
    pub total: i64,
}

/// The `WHERE` conditions and their parameters.
struct Conditions {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }
}

#[derive(Deserialize)]
struct Term {
    term: String,
}

impl Pricing {
    /// One page of results.
    pub fn search(&self, filters: &Filters) -> Result<Page, HostError> {
        let dialect = self.host.dialect()?;
        let q = filters
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty());
        if let Some(q) = q.filter(|q| text::is_reference(q)) {
            let page = self.run(dialect, filters, Mode::Reference(text::reference_key(q)))?;
            if page.total > 0 {
                return Ok(page);
            }
        }
        match q {
            Some(q) => {
                let words: Vec<String> = text::words(q).into_iter().take(MAX_WORDS).collect();
                if words.is_empty() {
                    return self.run(dialect, filters, Mode::Browse);
                }
                let alternatives = self.alternatives(&words)?;
                self.run(
                    dialect,
                    filters,
                    Mode::Text {
                        words,
                        alternatives,
                    },
                )
            }
            None => self.run(dialect, filters, Mode::Browse),
        }
    }

    /// For each word, the words to match instead: itself when the
    /// vocabulary has it (the last word: as a prefix), else the
    /// vocabulary's words within its typo distance.
    fn alternatives(&self, words: &[String]) -> Result<Vec<Vec<String>>, HostError> {
        let last = words.len() - 1;
        let mut all = Vec::with_capacity(words.len());
        for (index, word) in words.iter().enumerate() {
            let known: Option<Term> = if index == last {
                self.host.query_one_as(
                    "SELECT term FROM pricing_terms WHERE term LIKE $1 LIMIT 1",
                    params![format!("{word}%")],
                )?
            } else {
                self.host.query_one_as(
                    "SELECT term FROM pricing_terms WHERE term = $1",
                    params![word],
                )?
            };
            let typos = text::allowed_typos(word);
            if known.is_some() || typos == 0 {
                all.push(vec![word.clone()]);
                continue;
            }
            // A typo rarely hits the first letter; the candidates share
            // it and have about the same length.
            let first: String = word.chars().take(1).collect();
            let length = word.chars().count() as i64;
            let candidates: Vec<Term> = self.host.query_as(
                "SELECT term FROM pricing_terms WHERE term LIKE $1 \
                 AND LENGTH(term) BETWEEN $2 AND $3",
                params![
                    format!("{first}%"),
                    length - typos as i64,
                    length + typos as i64
                ],
            )?;
            let mut close: Vec<(usize, String)> = candidates
                .into_iter()
                .map(|c| (text::distance(word, &c.term, typos), c.term))
                .filter(|(distance, _)| *distance <= typos)
                .collect();
            close.sort();
            close.truncate(MAX_ALTERNATIVES);
            if close.is_empty() {
                all.push(vec![word.clone()]);
            } else {
                all.push(close.into_iter().map(|(_, term)| term).collect());
            }
        }
        Ok(all)
    }

    fn run(&self, dialect: Dialect, filters: &Filters, mode: Mode) -> Result<Page, HostError> {
        let mut c = Conditions {
            clauses: Vec::new(),
            params: Vec::new(),
        };
        if let Some(slug) = &filters.categorie {
            let slug = c.bind(json!(text::slugify(slug)));
            c.clauses.push(format!(
                "(o.category_slug = {slug} OR o.subcategory_slug = {slug})"
            ));
        }
        if let Some(parent) = &filters.parent_category {
            let parent = c.bind(json!(parent));
            c.clauses.push(format!("o.category_slug = {parent}"));
        }
        if let Some((parent, sub)) = &filters.sub_category {
            let parent = c.bind(json!(parent));
            let sub = c.bind(json!(sub));
            c.clauses.push(format!(
                "o.category_slug = {parent} AND o.subcategory_slug = {sub}"
            ));
        }
        if let Some(brand) = &filters.marque {
            let key = c.bind(json!(brand.trim().to_lowercase()));
            let slug = c.bind(json!(text::slugify(brand)));
            c.clauses
                .push(format!("(o.brand_key = {key} OR o.brand_slug = {slug})"));
        }
        if let Some(min) = filters.prix_min {
            let min = c.bind(json!(min));
            c.clauses.push(format!("o.price_cents >= {min}"));
        }
        if let Some(max) = filters.prix_max {
            let max = c.bind(json!(max));
            c.clauses.push(format!("o.price_cents <= {max}"));
        }
        if filters.en_promo {
            c.clauses.push("o.discount_cents > 0".into());
        }
        let mut tier = "0".to_string();
        let mut round_robin = true;
        match &mode {
            Mode::Browse => {}
            Mode::Reference(key) => {
                let key = c.bind(json!(key));
                c.clauses.push(format!("o.reference_key = {key}"));
                round_robin = false;
            }
            Mode::Text {
                words,
                alternatives,
            } => {
                let query = c.bind(json!(match dialect {
                    Dialect::Sqlite => fts5_query(alternatives),
                    Dialect::Postgres => tsquery(alternatives),
                }));
                c.clauses.push(match dialect {
                    Dialect::Sqlite => format!(
                        "o.id IN (SELECT rowid FROM pricing_offers_fts \
                         WHERE pricing_offers_fts MATCH {query})"
                    ),
                    Dialect::Postgres => format!(
                        "to_tsvector('simple', o.search_text) @@ to_tsquery('simple', {query})"
                    ),
                });
                let phrase = words.join(" ");
                let starts = c.bind(json!(format!("{phrase}%")));
                let holds = c.bind(json!(format!("%{phrase}%")));
                tier = format!(
                    "CASE WHEN o.title_key LIKE {starts} THEN 0 \
                     WHEN o.title_key LIKE {holds} THEN 1 ELSE 2 END"
                );
            }
        }
        let conditions = if c.clauses.is_empty() {
            "1 = 1".to_string()
        } else {
            c.clauses.join(" AND ")
        };
        let order = if round_robin {
            "k.turn, k.store_id, k.tier, k.price_cents, k.id"
        } else {
            "k.price_cents, k.id"
        };
        let page = filters.page.clamp(1, MAX_PAGE);
        let limit = c.bind(json!(PAGE_SIZE));
        let offset = c.bind(json!((page - 1) * PAGE_SIZE));
        // A reference shared by several offers is one result, its
        // cheapest offer; an offer without a reference is its own.
        let sql = format!(
            "WITH matched AS (
                SELECT o.id, o.store_id, o.price_cents, {tier} AS tier,
                       ROW_NUMBER() OVER (PARTITION BY CASE WHEN o.reference_key = '' \
                       THEN CAST(o.id AS TEXT) ELSE o.reference_key END \
                       ORDER BY o.price_cents, o.id) AS copy
                FROM pricing_offers o WHERE {conditions}
             ), kept AS (
                SELECT id, store_id, price_cents, tier,
                       ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY tier, price_cents, id) AS turn
                FROM matched WHERE copy = 1
             )
             SELECT {CARD_COLUMNS}, COUNT(*) OVER () AS total_count
             FROM kept k JOIN pricing_offers o ON o.id = k.id JOIN pricing_stores s ON s.id = o.store_id
             ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        );
        let cards: Vec<Card> = self.host.query_as(&sql, c.params.clone())?;
        let total = match cards.first() {
            Some(card) => card.total_count,
            None if page > 1 => {
                // Past the last page: count without a window.
                let count = format!(
                    "SELECT COUNT(*) AS total FROM (SELECT DISTINCT CASE WHEN o.reference_key = '' \
                     THEN CAST(o.id AS TEXT) ELSE o.reference_key END AS k \
                     FROM pricing_offers o WHERE {conditions}) AS counted"
                );
                let mut params = c.params;
                params.truncate(params.len() - 2);
                self.host.query_scalar(&count, params)?
            }
            None => 0,
        };
        Ok(Page { cards, total })
    }
}

/// How `q` is searched.
enum Mode {
    /// No text: filters only.
    Browse,
    /// An exact reference.
    Reference(String),
    /// Words, each with what it matches.
    Text {
        words: Vec<String>,
        alternatives: Vec<Vec<String>>,
    },
}

/// `"a" ("b" OR "c") "d"*`: all groups must match, the last word (when it
/// was not corrected) as a prefix.
pub fn fts5_query(groups: &[Vec<String>]) -> String {
    all_groups(groups, fts5_word, "*", " OR ", " ")
}

/// `'a' & ('b' | 'c') & 'd':*` for PostgreSQL's `to_tsquery`.
pub fn tsquery(groups: &[Vec<String>]) -> String {
    all_groups(groups, tsquery_word, ":*", " | ", " & ")
}

/// Every group's words quoted by `quote` and joined by `or` (in
/// parentheses when more than one), the groups joined by `and`; a last
/// group of one word (not corrected) gets `prefix`.
fn all_groups(
    groups: &[Vec<String>],
    quote: fn(&str) -> String,
    prefix: &str,
    or: &str,
    and: &str,
) -> String {
    let last = groups.len().saturating_sub(1);
    groups
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let quoted: Vec<String> = group
                .iter()
                .map(|w| {
                    let q = quote(w);
                    if index == last && group.len() == 1 {
                        q + prefix
                    } else {
                        q
                    }
                })
                .collect();
            if quoted.len() == 1 {
                quoted[0].clone()
            } else {
                format!("({})", quoted.join(or))
            }
        })
        .collect::<Vec<_>>()
        .join(and)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_every_word_and_group_alternatives() {
        let groups = vec![
            vec!["samsung".to_string(), "samsong".to_string()],
            vec!["gal".to_string()],
        ];
        assert_eq!(fts5_query(&groups), "(\"samsung\" OR \"samsong\") \"gal\"*");
        assert_eq!(tsquery(&groups), "('samsung' | 'samsong') & 'gal':*");
        // A corrected last word is no prefix; a word alone at the end is.
        let groups = vec![vec!["gal".to_string()], vec!["s2".into(), "s3".into()]];
        assert_eq!(fts5_query(&groups), "\"gal\" (\"s2\" OR \"s3\")");
        assert_eq!(tsquery(&groups), "'gal' & ('s2' | 's3')");
    }
}
