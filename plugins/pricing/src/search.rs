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
//!
//! How a page is found, so that its cost follows the page rather than the
//! number of matches (a word in a fifth of 300,000 offers):
//! - each store's offers are read cheapest first from the index
//!   `(store_id, price_cents, id)`, tier by tier, each tested on the row
//!   (filters, text, and "no cheaper matching offer of the same
//!   reference" through the reference index), until the store has its
//!   share of the page; the stores' lists are interleaved here. Results
//!   are read [`TOTAL_AHEAD`] pages further for the total, which is exact
//!   when they end before and otherwise that horizon (a lower bound);
//! - when a store's first offers hold too few matches (a narrow query),
//!   or, on SQLite, the full-text index counts few matches (the same
//!   statement then returns them), or, on PostgreSQL, a sample of the
//!   first store's cheapest offers predicts too few, every match
//!   is ranked at once instead (the exact total): SQL reads each match's
//!   rank keys (id, store, price, reference, tier) through the full-text
//!   index, they are de-duplicated and interleaved here, and only the
//!   page's offers are read in full.
//!
//! SQLite tests the text on a row with `LIKE` on `search_text` (the
//! folded words joined by single spaces, the tokens FTS5 indexes), as a
//! correlated FTS5 lookup reruns the whole full-text query per row.

use std::{borrow::Cow, collections::HashSet};

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
/// Sorts after every character: `word` + this bounds the words starting
/// with `word`.
const PAST: char = '\u{10FFFF}';
/// A broad query's total is exact when its results end within this many
/// pages after the one asked for; beyond, `total_items` says that many
/// pages more (a lower bound): counting every match of a word in a fifth
/// of the offers costs more than the page.
pub const TOTAL_AHEAD: i64 = 5;
/// SQLite: fewer full-text matches than this are all ranked at once.
const EXACT_MAX: i64 = 500;
/// Most offers a store's scan reads (or 40 per result wanted, if more)
/// before the query counts as sparse and every match is ranked instead.
const SCAN_BUDGET: i64 = 2_000;
/// SQLite: at least this many, whatever the number of text matches.
const MIN_SCAN_BUDGET: i64 = 250;
/// SQLite: the full-text matches are counted up to this many; under it,
/// ranking them all reads them from the full-text index first.
const FTS_COUNT_CAP: i64 = 20_000;
/// PostgreSQL: offers of the first store read to predict a sparse query
/// ([`Pricing::sample_is_sparse`]).
const SAMPLE: i64 = 500;

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
                let (alternatives, completions) = self.alternatives(&words)?;
                self.run(
                    dialect,
                    filters,
                    Mode::Text {
                        words,
                        alternatives,
                        completions,
                    },
                )
            }
            None => self.run(dialect, filters, Mode::Browse),
        }
    }

    /// For each word, the words to match instead: itself when the
    /// vocabulary has it (the last word: as a prefix), else the
    /// vocabulary's words within its typo distance. And the vocabulary's
    /// words starting with the last word, when it is kept as a prefix and
    /// they are few ([`MAX_ALTERNATIVES`]).
    fn alternatives(&self, words: &[String]) -> Result<Alternatives, HostError> {
        let last = words.len() - 1;
        let mut all = Vec::with_capacity(words.len());
        let mut completions = None;
        for (index, word) in words.iter().enumerate() {
            let known: Option<Term> = if index == last {
                // A range of the primary key (LIKE would read the whole
                // vocabulary); words are letters and digits, compared as
                // bytes (SQLite, and PostgreSQL's C collation), so every
                // word starting with `word` sorts between the bounds.
                let starting: Vec<Term> = self.host.query_as(
                    "SELECT term FROM pricing_terms WHERE term >= $1 AND term < $2 \
                     AND term LIKE $3 ORDER BY term LIMIT $4",
                    params![
                        word,
                        format!("{word}{PAST}"),
                        format!("{word}%"),
                        MAX_ALTERNATIVES + 1
                    ],
                )?;
                if (1..=MAX_ALTERNATIVES).contains(&starting.len()) {
                    completions = Some(starting.iter().map(|t| t.term.clone()).collect());
                }
                starting.into_iter().next()
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
                "SELECT term FROM pricing_terms WHERE term >= $1 AND term < $4 \
                 AND term LIKE $1 || '%' AND LENGTH(term) BETWEEN $2 AND $3",
                params![
                    first.clone(),
                    length - typos as i64,
                    length + typos as i64,
                    format!("{first}{PAST}")
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
        Ok((all, completions))
    }

    fn run(&self, dialect: Dialect, filters: &Filters, mode: Mode) -> Result<Page, HostError> {
        let mut query = Query::new(dialect, filters, &mode);
        let page = filters.page.clamp(1, MAX_PAGE);
        if !query.round_robin {
            // A reference: a few offers at most.
            return self.exact(&query, page);
        }
        let mut stores: Vec<String> = self
            .host
            .query_as::<StoreRow>("SELECT id FROM pricing_stores", params![])?
            .into_iter()
            .map(|row| row.id)
            .collect();
        // The round-robin's order: store ids as bytes (as SQLite compares).
        stores.sort();
        let share = ((page + TOTAL_AHEAD) * PAGE_SIZE)
            .div_euclid(i64::try_from(stores.len()).unwrap_or(1).max(1))
            + 1;
        if let (Some(fts), Dialect::Sqlite) = (query.fts.clone(), dialect) {
            // The text's matches, counted from the full-text index alone
            // (cheap): when they are too rare for a store's scan to find
            // its share within budget, the same statement ranks them all.
            let offers: i64 = self.host.query_scalar(
                "SELECT COALESCE(MAX(id), 0) AS n FROM pricing_offers",
                params![],
            )?;
            let sparse_below = sparse_below(share, offers);
            // Counted far enough for the scan's budget to be the one the
            // whole count gives ([`scan_budget`] reads it up to 4 budgets).
            let counted = sparse_below
                .max(SCAN_BUDGET.max(share.saturating_mul(40)).saturating_mul(4))
                .min(FTS_COUNT_CAP);
            let found = self.fts_matches(&query, &fts, counted, sparse_below)?;
            if let Some(text) = found.matches {
                return self.ranked_page(&query, &text, page);
            }
            query.text_matches = Some(found.n);
            if found.n >= FTS_COUNT_CAP && sparse_below > FTS_COUNT_CAP {
                // Sparse even at the cap (a very large table).
                return self.exact(&query, page);
            }
        } else if dialect == Dialect::Postgres && self.sample_is_sparse(&query, &stores, share)? {
            return self.exact(&query, page);
        }
        match self.scan_page(&query, &stores, page)? {
            Some(found) => Ok(found),
            // Too few matches in the offers read (a sparse query): rank
            // every match through the full-text or filter indexes.
            None => {
                if let (Some(fts), Some(matches)) = (query.fts.clone(), query.text_matches) {
                    // Counted only up to the sparseness bound: the whole
                    // count chooses how the matches are read.
                    if matches < FTS_COUNT_CAP {
                        let found = self.fts_matches(&query, &fts, FTS_COUNT_CAP, 0)?;
                        query.text_matches = Some(found.n);
                    }
                }
                self.exact(&query, page)
            }
        }
    }

    /// SQLite: the full-text matches of `fts` counted up to `counted`
    /// (at most [`FTS_COUNT_CAP`]); under `sparse_below` (at most
    /// `counted`), the same statement also returns their rank keys
    /// ([`Pricing::rank_keys`]) with the filters applied. The full-text
    /// index is read once (SQLite materializes a CTE used more than once;
    /// the host's SQL check has no `MATERIALIZED`): counting first, then
    /// ranking, read it twice (~1 ms of the sparse query). `COUNT(id)`, as
    /// the authorizer sees `COUNT(*)` of a CTE as a read of a table `f`.
    fn fts_matches(
        &self,
        query: &Query,
        fts: &str,
        counted: i64,
        sparse_below: i64,
    ) -> Result<FtsMatches, HostError> {
        let mut params = query.params.clone();
        let limit = bind(&mut params, json!(counted));
        let below = bind(&mut params, json!(sparse_below.min(counted)));
        let mut filters = String::new();
        for filter in &query.filters {
            filters.push_str(" AND ");
            filters.push_str(&query.on(filter, "o"));
        }
        let keys = Self::rank_keys(query);
        self.host.query_row_as(
            &format!(
                "WITH f AS (SELECT rowid AS id FROM pricing_offers_fts \
                 WHERE pricing_offers_fts MATCH {fts} LIMIT {limit}) \
                 SELECT (SELECT COUNT(id) FROM f) AS n, \
                 CASE WHEN (SELECT COUNT(id) FROM f) < {below} THEN \
                 (SELECT {keys} FROM f CROSS JOIN pricing_offers o \
                 WHERE o.id = f.id{filters}) END AS matches"
            ),
            params,
        )
    }

    /// PostgreSQL, which has no cheap count of the text's matches: whether
    /// the first store's [`SAMPLE`] cheapest offers in the price range
    /// hold so few first-tier matches that its scan would run out of
    /// budget (the scan then costs ~3 ms for nothing). The rows are the
    /// scan's own first rows, the tier tested first (a `LIKE`), the text
    /// last (`to_tsvector` per row is the costly test).
    fn sample_is_sparse(
        &self,
        query: &Query,
        stores: &[String],
        share: i64,
    ) -> Result<bool, HostError> {
        let Some(store) = stores.first() else {
            return Ok(false);
        };
        let mut params = query.params.clone();
        let store = bind(&mut params, json!(store));
        let window = query.window(&store);
        let limit = bind(&mut params, json!(SAMPLE));
        let mut tests: Vec<String> = query
            .tiers
            .first()
            .filter(|tier| !tier.is_empty())
            .map(|tier| query.on(tier, "o"))
            .into_iter()
            .collect();
        tests.push(query.conditions("o", false));
        let sample: Sample = self.host.query_row_as(
            &format!(
                "SELECT COUNT(*) AS seen, \
                 COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0) AS hits FROM (
                    SELECT w.id, w.store_id, w.reference_key, w.price_cents, w.title_key,
                           w.search_text, w.category_slug, w.subcategory_slug, w.brand_key,
                           w.brand_slug, w.discount_cents
                    FROM pricing_offers w WHERE {window}
                    ORDER BY w.price_cents, w.id LIMIT {limit}) o",
                tests.join(" AND ")
            ),
            params,
        )?;
        if sample.seen < SAMPLE {
            // The store's whole window: its scan cannot run out.
            return Ok(false);
        }
        Ok(sample.hits.saturating_mul(scan_budget(None, share)) < share.saturating_mul(SAMPLE))
    }

    /// Every match ranked, de-duplicated, numbered per store and counted,
    /// then the page cut: exact, and as costly as the matches are many.
    /// SQL finds the matches and their rank keys (one JSON array, one
    /// row); the ranking is done here ([`rank`]) and only the page's
    /// offers are then read in full. Ranking ~3,000 matches in SQL (two
    /// window sorts, then every match's card columns joined and sorted)
    /// cost more than finding them.
    fn exact(&self, query: &Query, page: i64) -> Result<Page, HostError> {
        let source = query.exact_source();
        let all = Self::rank_keys(query);
        let text: String = self.host.query_scalar(
            &format!("SELECT {all} AS matches FROM {source}"),
            query.params.clone(),
        )?;
        self.ranked_page(query, &text, page)
    }

    /// The aggregate of the rank keys of every row `o`, one JSON array
    /// of `[id, store, price, reference key, tier]` arrays ([`Match`]).
    fn rank_keys(query: &Query) -> String {
        let tier = query.on(&query.tier, "o");
        let keys = format!("o.id, o.store_id, o.price_cents, o.reference_key, {tier}");
        match query.dialect {
            Dialect::Sqlite => format!("json_group_array(json_array({keys}))"),
            Dialect::Postgres => {
                format!("CAST(COALESCE(json_agg(json_build_array({keys})), '[]') AS TEXT)")
            }
        }
    }

    /// The page of `text`, every match's rank keys ([`Pricing::rank_keys`]),
    /// ranked here; the total is exact.
    fn ranked_page(&self, query: &Query, text: &str, page: i64) -> Result<Page, HostError> {
        let matches: Vec<Match> = serde_json::from_str(text).map_err(|error| HostError::Other {
            message: format!("unreadable search matches: {error}"),
        })?;
        let ranked = rank(matches, query.round_robin);
        let size = usize::try_from(PAGE_SIZE).unwrap_or(0);
        let skip = usize::try_from((page - 1) * PAGE_SIZE).unwrap_or(0);
        let ids: Vec<i64> = ranked.iter().skip(skip).take(size).copied().collect();
        let cards = self.cards(query.dialect, &ids)?;
        Ok(Page {
            cards,
            total: i64::try_from(ranked.len()).unwrap_or(i64::MAX),
        })
    }

    /// The cards of offers `ids`, in that order.
    fn cards(&self, dialect: Dialect, ids: &[i64]) -> Result<Vec<Card>, HostError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = match dialect {
            Dialect::Sqlite => "SELECT value FROM json_each($1)",
            Dialect::Postgres => {
                "SELECT CAST(value AS BIGINT) FROM json_array_elements_text($1::json)"
            }
        };
        let mut cards: Vec<Card> = self.host.query_as(
            &format!(
                "SELECT {CARD_COLUMNS} FROM pricing_offers o \
                 JOIN pricing_stores s ON s.id = o.store_id WHERE o.id IN ({list})"
            ),
            params![Value::from(ids.to_vec()).to_string()],
        )?;
        cards.sort_by_key(|card| {
            ids.iter()
                .position(|id| id.to_string() == card.id)
                .unwrap_or(usize::MAX)
        });
        Ok(cards)
    }

    /// The page from each store's cheapest matches read in price order
    /// (index `pricing_offers_store_price_idx`), interleaved here: the work
    /// is bounded by the page, not by the matches. The results are read
    /// [`TOTAL_AHEAD`] pages further than the page, for the total: exact
    /// when they end before, else that horizon. `None` when a store's
    /// offers read within the budget held too few matches (a sparse
    /// query): the caller ranks every match instead.
    fn scan_page(
        &self,
        query: &Query,
        stores: &[String],
        page: i64,
    ) -> Result<Option<Page>, HostError> {
        let end = usize::try_from(page * PAGE_SIZE).unwrap_or(0);
        let needed = usize::try_from((page + TOTAL_AHEAD) * PAGE_SIZE).unwrap_or(0);
        if stores.is_empty() || end == 0 {
            return Ok(Some(Page {
                cards: Vec::new(),
                total: 0,
            }));
        }
        // Each store's first `turns` results; more when some store runs
        // out before the page is full.
        let mut turns = needed.div_ceil(stores.len());
        // Per store: how many results were asked for, and those found
        // (fewer than asked: the store has no more).
        let mut lists: Vec<(usize, Vec<i64>)> = vec![(0, Vec::new()); stores.len()];
        loop {
            for (store, (asked, list)) in stores.iter().zip(lists.iter_mut()) {
                let exhausted = list.len() < *asked;
                if exhausted || *asked >= turns {
                    continue;
                }
                match self.store_results(query, store, turns)? {
                    Some(found) => *list = found,
                    None => return Ok(None),
                }
                *asked = turns;
            }
            let placed: usize = lists.iter().map(|(_, l)| l.len().min(turns)).sum();
            let open = lists.iter().filter(|(_, l)| l.len() >= turns).count();
            if placed >= needed || open == 0 {
                break;
            }
            turns += (needed - placed).div_ceil(open);
        }
        let placed: usize = lists.iter().map(|(_, l)| l.len().min(turns)).sum();
        // Every store ran out before the horizon: the exact total.
        let total = i64::try_from(placed.min(needed)).unwrap_or(i64::MAX);
        // Round-robin: every store's first, then every store's second...
        let mut order = Vec::with_capacity(needed);
        for turn in 0..turns {
            for (_, list) in &lists {
                if let Some(id) = list.get(turn) {
                    order.push(*id);
                }
            }
        }
        let size = usize::try_from(PAGE_SIZE).unwrap_or(0);
        let ids: Vec<i64> = order.into_iter().skip(end - size).take(size).collect();
        Ok(Some(Page {
            cards: self.cards(query.dialect, &ids)?,
            total,
        }))
    }

    /// `store`'s first `wanted` results in rank order (tier, then price),
    /// or all it has; `None` when a scan ran out of budget first.
    fn store_results(
        &self,
        query: &Query,
        store: &str,
        wanted: usize,
    ) -> Result<Option<Vec<i64>>, HostError> {
        let budget = scan_budget(
            query.text_matches,
            i64::try_from(wanted).unwrap_or(i64::MAX / 80),
        );
        let mut found: Vec<i64> = Vec::with_capacity(wanted);
        let mut truncated: Option<bool> = None;
        for tier in &query.tiers {
            let want = wanted - found.len();
            let rows = self.scan(query, store, tier, want, budget)?;
            let short = rows.len() < want;
            found.extend(rows);
            if found.len() >= wanted {
                break;
            }
            if short {
                let cut = match truncated {
                    Some(cut) => cut,
                    None => {
                        let cut = self.window_is_cut(query, store, budget)?;
                        truncated = Some(cut);
                        cut
                    }
                };
                if cut {
                    return Ok(None);
                }
            }
        }
        Ok(Some(found))
    }

    /// The ids of `store`'s first `want` matches of `tier` among its
    /// `budget` cheapest offers in the price range, cheapest first; each
    /// the cheapest matching offer of its reference (de-duplication).
    fn scan(
        &self,
        query: &Query,
        store: &str,
        tier: &str,
        want: usize,
        budget: i64,
    ) -> Result<Vec<i64>, HostError> {
        let mut params = query.params.clone();
        let store = bind(&mut params, json!(store));
        let window = query.window(&store);
        let budget = bind(&mut params, json!(budget));
        let want = bind(&mut params, json!(want));
        let mut conditions = query.conditions("o", false);
        if !tier.is_empty() {
            conditions = format!("{conditions} AND {}", query.on(tier, "o"));
        }
        let others = query.conditions("o2", false);
        let (indexed, order) = match query.dialect {
            // SQLite's planner might prefer another index (and sort); the
            // co-routine yields the window's rows in its order.
            Dialect::Sqlite => ("INDEXED BY pricing_offers_store_price_idx", ""),
            // PostgreSQL keeps the subquery's order without sorting again.
            Dialect::Postgres => ("", "ORDER BY o.price_cents, o.id"),
        };
        let sql = format!(
            "SELECT o.id FROM (
                SELECT w.id, w.store_id, w.reference_key, w.price_cents, w.title_key,
                       w.search_text, w.category_slug, w.subcategory_slug, w.brand_key,
                       w.brand_slug, w.discount_cents
                FROM pricing_offers w {indexed} WHERE {window}
                ORDER BY w.price_cents, w.id LIMIT {budget}
             ) o
             WHERE {conditions} AND NOT EXISTS (
                SELECT 1 FROM pricing_offers o2 WHERE o.reference_key <> '' \
                AND o2.reference_key = o.reference_key \
                AND (o2.price_cents < o.price_cents OR (o2.price_cents = o.price_cents AND o2.id < o.id)) \
                AND {others})
             {order} LIMIT {want}"
        );
        Ok(self
            .host
            .query_as::<IdRow>(&sql, params)?
            .into_iter()
            .map(|row| row.id)
            .collect())
    }

    /// Whether `store` has more than `budget` offers in the price range
    /// (so a scan of `budget` offers did not see them all).
    fn window_is_cut(&self, query: &Query, store: &str, budget: i64) -> Result<bool, HostError> {
        let mut params = query.params.clone();
        let store = bind(&mut params, json!(store));
        let window = query.window(&store);
        let limit = bind(&mut params, json!(budget));
        let seen: i64 = self.host.query_scalar(
            &format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM pricing_offers w \
                 WHERE {window} LIMIT {limit}) AS windowed"
            ),
            params,
        )?;
        Ok(seen >= budget)
    }
}

/// SQLite: the number of full-text matches under which every match is
/// ranked at once (the scan's rule: fewer than [`EXACT_MAX`], or so rare
/// that a store's share is not expected within its scan budget in
/// `offers`, the ids' bound on the number of offers); more than
/// [`FTS_COUNT_CAP`] when even that many would be. The rule only goes
/// from sparse to not as the matches grow, so the bound is searched.
fn sparse_below(share: i64, offers: i64) -> i64 {
    let sparse = |matches: i64| {
        matches < EXACT_MAX
            || share.saturating_mul(offers) / matches.max(1) > scan_budget(Some(matches), share)
    };
    if sparse(FTS_COUNT_CAP) {
        return FTS_COUNT_CAP + 1;
    }
    // The first count that is not sparse, in (0, FTS_COUNT_CAP].
    let (mut low, mut high) = (0, FTS_COUNT_CAP);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if sparse(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// How many offers a store's scan reads for `wanted` results before the
/// query counts as sparse.
fn scan_budget(text_matches: Option<i64>, wanted: i64) -> i64 {
    let budget = SCAN_BUDGET.max(wanted.saturating_mul(40));
    match text_matches {
        // Offers read in price order are scattered over the table; the
        // full-text matches are read in table order. With few matches,
        // ranking them all is cheaper than a long scan.
        Some(matches) => budget.min(matches / 4).max(MIN_SCAN_BUDGET),
        None => budget,
    }
}

/// One match as [`Pricing::exact`] reads it, from a JSON array `[id,
/// store, price, reference key, tier]`; the texts borrowed from the
/// array's text when they have no escapes (~3,000 matches: two
/// allocations each were a third of the parse).
#[derive(Clone, Debug, Deserialize)]
struct Match<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    i64,
);

/// The ids of `matches` in result order: one per reference (its cheapest
/// offer; an offer without a reference is its own, keyed by its id as
/// text), then, with `round_robin`, each store's best (tier, price, id),
/// then each store's second..., stores in byte order; else by price.
fn rank(mut matches: Vec<Match<'_>>, round_robin: bool) -> Vec<i64> {
    matches.sort_unstable_by_key(|a| (a.2, a.0));
    let mut seen: HashSet<Cow<'_, str>> = HashSet::with_capacity(matches.len());
    matches.retain(|Match(id, _, _, reference, _)| {
        if reference.is_empty() {
            seen.insert(Cow::Owned(id.to_string()))
        } else {
            seen.insert(reference.clone())
        }
    });
    if !round_robin {
        return matches.into_iter().map(|m| m.0).collect();
    }
    matches.sort_unstable_by(|a, b| (&a.1, a.4, a.2, a.0).cmp(&(&b.1, b.4, b.2, b.0)));
    // Each match's turn: its place in its store's list.
    let mut turns: Vec<(usize, Match<'_>)> = Vec::with_capacity(matches.len());
    for m in matches {
        let turn = match turns.last() {
            Some((turn, last)) if last.1 == m.1 => turn + 1,
            _ => 0,
        };
        turns.push((turn, m));
    }
    turns.sort_unstable_by(|(ta, a), (tb, b)| {
        (ta, &a.1, a.4, a.2, a.0).cmp(&(tb, &b.1, b.4, b.2, b.0))
    });
    turns.into_iter().map(|(_, m)| m.0).collect()
}

fn bind(params: &mut Vec<Value>, value: Value) -> String {
    params.push(value);
    format!("${}", params.len())
}

/// What [`Pricing::fts_matches`] reads.
#[derive(Deserialize)]
struct FtsMatches {
    /// Full-text matches, counted up to the statement's bound.
    n: i64,
    /// Under the sparseness bound: every match's rank keys.
    matches: Option<String>,
}

/// What [`Pricing::sample_is_sparse`] reads.
#[derive(Deserialize)]
struct Sample {
    /// Offers read (fewer than [`SAMPLE`]: the store's whole window).
    seen: i64,
    /// Of which first-tier matches.
    hits: i64,
}

#[derive(Deserialize)]
struct StoreRow {
    id: String,
}

#[derive(Deserialize)]
struct IdRow {
    id: i64,
}

/// A search's SQL pieces. Conditions are written for an alias `@`
/// ([`Query::on`] names it), so the same filters apply to a result and to
/// the other offers of its reference.
struct Query {
    dialect: Dialect,
    params: Vec<Value>,
    /// Filter conditions (category, brand, prices, sale, reference).
    filters: Vec<String>,
    /// The text match through the full-text index.
    text_index: Option<String>,
    /// The text match tested on one row (the offers a scan reads).
    text_row: Option<String>,
    /// SQLite: the `MATCH` parameter.
    fts: Option<String>,
    /// The rank tier of a row (0: title starts with the phrase, 1: holds
    /// it, 2: other matches).
    tier: String,
    /// Each tier as a condition, in rank order (`""`: no tiers).
    tiers: Vec<String>,
    prix_min: Option<String>,
    prix_max: Option<String>,
    round_robin: bool,
    /// SQLite: the text's full-text matches, up to [`FTS_COUNT_CAP`].
    text_matches: Option<i64>,
}

impl Query {
    fn new(dialect: Dialect, filters: &Filters, mode: &Mode) -> Self {
        let mut q = Self {
            dialect,
            params: Vec::new(),
            filters: Vec::new(),
            text_index: None,
            text_row: None,
            fts: None,
            tier: "0".into(),
            tiers: vec![String::new()],
            prix_min: None,
            prix_max: None,
            round_robin: true,
            text_matches: None,
        };
        if let Some(slug) = &filters.categorie {
            let slug = q.bind(json!(text::slugify(slug)));
            q.filters.push(format!(
                "(@.category_slug = {slug} OR @.subcategory_slug = {slug})"
            ));
        }
        if let Some(parent) = &filters.parent_category {
            let parent = q.bind(json!(parent));
            q.filters.push(format!("@.category_slug = {parent}"));
        }
        if let Some((parent, sub)) = &filters.sub_category {
            let parent = q.bind(json!(parent));
            let sub = q.bind(json!(sub));
            q.filters.push(format!(
                "@.category_slug = {parent} AND @.subcategory_slug = {sub}"
            ));
        }
        if let Some(brand) = &filters.marque {
            let key = q.bind(json!(brand.trim().to_lowercase()));
            let slug = q.bind(json!(text::slugify(brand)));
            q.filters
                .push(format!("(@.brand_key = {key} OR @.brand_slug = {slug})"));
        }
        if let Some(min) = filters.prix_min {
            let min = q.bind(json!(min));
            q.filters.push(format!("@.price_cents >= {min}"));
            q.prix_min = Some(min);
        }
        if let Some(max) = filters.prix_max {
            let max = q.bind(json!(max));
            q.filters.push(format!("@.price_cents <= {max}"));
            q.prix_max = Some(max);
        }
        if filters.en_promo {
            q.filters.push("@.discount_cents > 0".into());
        }
        match mode {
            Mode::Browse => {}
            Mode::Reference(key) => {
                let key = q.bind(json!(key));
                q.filters.push(format!("@.reference_key = {key}"));
                q.round_robin = false;
            }
            Mode::Text {
                words,
                alternatives,
                completions,
            } => {
                let matched = q.bind(json!(match (dialect, completions) {
                    (Dialect::Sqlite, _) => fts5_query(alternatives),
                    (Dialect::Postgres, Some(completions)) => {
                        let mut groups = alternatives.clone();
                        if let Some(last) = groups.last_mut() {
                            last.clone_from(completions);
                        }
                        all_groups(&groups, tsquery_word, "", " | ", " & ")
                    }
                    (Dialect::Postgres, None) => tsquery(alternatives),
                }));
                match dialect {
                    Dialect::Sqlite => {
                        q.text_index = Some(format!(
                            "@.id IN (SELECT rowid FROM pricing_offers_fts \
                             WHERE pricing_offers_fts MATCH {matched})"
                        ));
                        q.fts = Some(matched);
                        // The same test on one row: search_text is the
                        // folded words joined by single spaces, the tokens
                        // FTS5 indexes; words are letters and digits only.
                        let last = alternatives.len().saturating_sub(1);
                        let mut groups = Vec::new();
                        for (index, group) in alternatives.iter().enumerate() {
                            let prefix = index == last && group.len() == 1;
                            let tests: Vec<String> = group
                                .iter()
                                .map(|word| {
                                    if prefix {
                                        let p = q.bind(json!(format!("% {word}%")));
                                        format!("' ' || @.search_text LIKE {p}")
                                    } else {
                                        let p = q.bind(json!(format!("% {word} %")));
                                        format!("' ' || @.search_text || ' ' LIKE {p}")
                                    }
                                })
                                .collect();
                            groups.push(format!("({})", tests.join(" OR ")));
                        }
                        q.text_row = Some(groups.join(" AND "));
                    }
                    Dialect::Postgres => {
                        let test = format!(
                            "to_tsvector('simple', @.search_text) @@ to_tsquery('simple', {matched})"
                        );
                        q.text_index = Some(test.clone());
                        q.text_row = Some(test);
                    }
                }
                let phrase = words.join(" ");
                let starts = q.bind(json!(format!("{phrase}%")));
                let holds = q.bind(json!(format!("%{phrase}%")));
                q.tier = format!(
                    "CASE WHEN @.title_key LIKE {starts} THEN 0 \
                     WHEN @.title_key LIKE {holds} THEN 1 ELSE 2 END"
                );
                q.tiers = vec![
                    format!("@.title_key LIKE {starts}"),
                    format!("@.title_key NOT LIKE {starts} AND @.title_key LIKE {holds}"),
                    format!("@.title_key NOT LIKE {holds}"),
                ];
            }
        }
        q
    }

    fn bind(&mut self, value: Value) -> String {
        bind(&mut self.params, value)
    }

    /// `template` for alias `alias`.
    fn on(&self, template: &str, alias: &str) -> String {
        template.replace("@.", &format!("{alias}."))
    }

    /// Every condition on `alias`, the text through the full-text index
    /// (`by_index`) or tested on the row; `1 = 1` when there is none.
    fn conditions(&self, alias: &str, by_index: bool) -> String {
        let text = if by_index {
            &self.text_index
        } else {
            &self.text_row
        };
        let all: Vec<String> = self
            .filters
            .iter()
            .chain(text.iter())
            .map(|c| self.on(c, alias))
            .collect();
        if all.is_empty() {
            "1 = 1".into()
        } else {
            all.join(" AND ")
        }
    }

    /// The `FROM ... WHERE` of every match, as `o`. On SQLite, with fewer
    /// text matches than [`FTS_COUNT_CAP`], the full-text index drives (its
    /// matches in table order, each then filtered); otherwise the planner
    /// picks (with a brand filter it would read every offer of the brand).
    fn exact_source(&self) -> String {
        match (&self.fts, self.text_matches) {
            (Some(fts), Some(matches)) if matches < FTS_COUNT_CAP => {
                let mut source = format!(
                    "pricing_offers_fts CROSS JOIN pricing_offers o \
                     WHERE o.id = pricing_offers_fts.rowid AND pricing_offers_fts MATCH {fts}"
                );
                for filter in &self.filters {
                    source.push_str(" AND ");
                    source.push_str(&self.on(filter, "o"));
                }
                source
            }
            _ => format!("pricing_offers o WHERE {}", self.conditions("o", true)),
        }
    }

    /// A store's offers in the price range, as alias `w`.
    fn window(&self, store: &str) -> String {
        let mut window = format!("w.store_id = {store}");
        if let Some(min) = &self.prix_min {
            window.push_str(&format!(" AND w.price_cents >= {min}"));
        }
        if let Some(max) = &self.prix_max {
            window.push_str(&format!(" AND w.price_cents <= {max}"));
        }
        window
    }
}

/// Each word's alternatives, and the last word's completions
/// ([`Pricing::alternatives`]).
type Alternatives = (Vec<Vec<String>>, Option<Vec<String>>);

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
        /// The vocabulary's words starting with the last word, when they
        /// are few and it is kept as a prefix: PostgreSQL matches them
        /// instead of the prefix (the vocabulary holds every word of
        /// every offer's `search_text`, so the matches are the same). A
        /// prefix is a partial match in the GIN index: `televiseur &
        /// samsung:*` took 10.6 ms to count, `televiseur & samsung` 4.3.
        completions: Option<Vec<String>>,
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

    #[test]
    fn ranking_keeps_the_cheapest_of_a_reference_and_takes_turns() {
        let m = |id: i64, store: &'static str, price: i64, reference: &'static str, tier: i64| {
            Match(id, store.into(), price, reference.into(), tier)
        };
        let matches = vec![
            m(1, "b", 500, "R1", 2),
            m(2, "a", 400, "R1", 2),
            m(3, "a", 100, "", 2),
            m(4, "a", 900, "R2", 0),
            m(5, "b", 50, "", 1),
            m(6, "b", 50, "6", 2),
            m(7, "c", 10, "R2", 2),
        ];
        // R1 is kept as 2 (cheaper), R2 as 7. Store a: 3 then 2 (same
        // tier, by price); b: 5 (tier 1) then 6; c: 7.
        assert_eq!(rank(matches.clone(), true), vec![3, 5, 7, 2, 6]);
        assert_eq!(rank(matches, false), vec![7, 5, 6, 3, 2]);
        // An offer without a reference is keyed by its id as text, as the
        // SQL it replaces did.
        let clash = vec![m(9, "a", 10, "", 2), m(8, "a", 20, "9", 2)];
        assert_eq!(rank(clash, false), vec![9]);
        // Texts with escapes are read too (owned, not borrowed).
        let text = r#"[[1,"a",5,"R\"1",2],[2,"b",4,"R\"1",2]]"#;
        let read: Vec<Match> = serde_json::from_str(text).expect("matches");
        assert_eq!(read[0].3, "R\"1");
        assert_eq!(rank(read, false), vec![2]);
    }
}
