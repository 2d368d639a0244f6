//! How a lead list (`GET /`, `GET /status/{status}`) reads its page and
//! its total.
//!
//! The page is `ORDER BY <column>, l.id` with `LIMIT`/`OFFSET`; the total
//! counts the matches with a plain `COUNT(*)` (never the page's query
//! wrapped, which made SQLite carry every full row through the sort: 0.9 s
//! for the unfiltered list of 200,000 leads).
//!
//! SQLite has no statistics (a plugin cannot run `ANALYZE`), so the plugin
//! picks the plan itself, with the count in hand:
//! - when the equality filters are exactly the leading columns of an index
//!   that continues with the sort column (and the rowid, the tie-breaker),
//!   the page walks that index (`INDEXED BY`): it reads only the page;
//! - otherwise it either walks such an index and skips the rows the other
//!   filters refuse until the page is full, or fetches every match and
//!   sorts them; an estimate of the rows each would read decides (a walk
//!   reads about `(skip + limit) * span / matches` index entries, `span`
//!   being the entries its equality prefix selects).
//!
//! The plans are named (`INDEXED BY`, `NOT INDEXED`) rather than steered
//! with `+column` (the products plugin's way): the same plan then holds
//! whether or not the database has statistics.
//!
//! PostgreSQL has statistics once autovacuum has analysed the table and
//! plans the page itself, with the indexes of migrations 2 and 3 (ending in
//! `id`); the count runs only when the page does not tell the total. A
//! search counts its matches in the page query (`COUNT(*) OVER ()`: one
//! GIN index scan for both) and writes the sort key as an expression no
//! index serves, so the planner sorts the matches instead of walking a sort
//! index and testing every row's text.

use serde::Deserialize;
use serde_json::Value;
use xcore_plugin_sdk::{prelude::*, search::terms, Dialect};

use crate::{
    filters::LeadFilter,
    leads::{Lead, LEAD_COLUMNS},
};

/// Indexes a page can walk in sort order (migrations 1 to 3): the sort
/// column, the equality filters the index starts with, and its SQLite
/// name. Each ends with the rowid, which is `l.id`, the tie-breaker. The
/// longest prefix comes first.
const WALKS: [(&str, &[&str], &str); 10] = [
    (
        "l.created_at",
        &["status", "source"],
        "leads_status_source_created_idx",
    ),
    ("l.created_at", &["status"], "leads_status_created_idx"),
    ("l.updated_at", &["status"], "leads_status_updated_idx"),
    ("l.score", &["status"], "leads_status_idx"),
    ("l.score", &["source"], "leads_source_score_idx"),
    ("l.created_at", &[], "leads_created_idx"),
    ("l.updated_at", &[], "leads_updated_idx"),
    ("l.score", &[], "leads_score_idx"),
    ("l.company", &[], "leads_company_idx"),
    ("l.status", &[], "leads_status_id_idx"),
];

/// A walk whose other filters need the table row costs about one fetch per
/// index entry, like fetching a match to sort it; one whose only other
/// filter is the search probes the matches' ids, about ten times cheaper.
const PROBE_COST: f64 = 0.1;

/// The filter fields that are equality tests on one column.
fn equalities(filter: &LeadFilter) -> Vec<&'static str> {
    [
        ("status", filter.status.is_some()),
        ("source", filter.source.is_some()),
        ("niche_id", filter.niche_id.is_some()),
        ("campaign_id", filter.campaign_id.is_some()),
        ("owner_id", filter.owner_id.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| name)
    .collect()
}

/// Only the equality filters `names` of `filter` (and its search when
/// `search`).
fn only(filter: &LeadFilter, names: &[&str], search: bool) -> LeadFilter {
    let keep = |name: &str| names.contains(&name);
    LeadFilter {
        search: filter.search.clone().filter(|_| search),
        status: filter.status.clone().filter(|_| keep("status")),
        source: filter.source.clone().filter(|_| keep("source")),
        niche_id: filter.niche_id.filter(|_| keep("niche_id")),
        campaign_id: filter.campaign_id.filter(|_| keep("campaign_id")),
        owner_id: filter.owner_id.filter(|_| keep("owner_id")),
        ..LeadFilter::default()
    }
}

/// The index a page sorted by `column` can walk with these filters, and
/// its equality prefix.
fn walk_for(filter: &LeadFilter, column: &str) -> Option<(&'static str, &'static [&'static str])> {
    let set = equalities(filter);
    WALKS
        .iter()
        .find(|(sorted, prefix, _)| *sorted == column && prefix.iter().all(|p| set.contains(p)))
        .map(|(_, prefix, index)| (*index, *prefix))
}

/// A sort key PostgreSQL cannot read from an index (same order).
fn unindexed(column: &str) -> String {
    match column {
        "l.score" => format!("({column} + 0)"),
        _ => format!("({column} || '')"),
    }
}

/// A lead of a page that also counted the matches.
#[derive(Deserialize)]
struct Counted {
    #[serde(flatten)]
    lead: Lead,
    total_count: i64,
}

/// The leads `filter` keeps, ordered by `column direction, l.id direction`,
/// in `window`, with their total.
pub fn page(
    host: &Host,
    filter: LeadFilter,
    (column, direction): (&str, &str),
    window: Window,
) -> Result<ListBody<Lead>, HostError> {
    // A search without a word filters nothing (as in the clause).
    let filter = LeadFilter {
        search: filter.search.filter(|text| !terms(text).is_empty()),
        ..filter
    };
    let dialect = host.dialect()?;
    let clause = filter.clause(dialect);
    let count = || -> Result<i64, HostError> {
        host.query_scalar(
            &format!("SELECT COUNT(*) FROM leads l {}", clause.sql()),
            clause.params.clone(),
        )
    };
    let order = format!("{column} {direction}, l.id {direction}");
    let read =
        |from: &str, order: &str, counted: bool| -> Result<(Vec<Lead>, Option<i64>), HostError> {
            let mut params = clause.params.clone();
            params.extend([Value::from(window.limit), Value::from(window.skip)]);
            let total = if counted {
                ", COUNT(*) OVER () AS total_count"
            } else {
                ""
            };
            let sql = format!(
                "SELECT {LEAD_COLUMNS}{total} FROM {from} {} ORDER BY {order} LIMIT ${} OFFSET ${}",
                clause.sql(),
                params.len() - 1,
                params.len()
            );
            if counted {
                let rows: Vec<Counted> = host.query_as(&sql, params)?;
                let total = rows.first().map(|row| row.total_count);
                Ok((rows.into_iter().map(|row| row.lead).collect(), total))
            } else {
                Ok((host.query_as(&sql, params)?, None))
            }
        };
    // A short page tells the total (unless it is past the end).
    let total_of = |items: &[Lead], known: Option<i64>| -> Result<i64, HostError> {
        let short = (items.len() as i64) < window.limit;
        match known {
            Some(total) => Ok(total),
            None if short && (!items.is_empty() || window.skip == 0) => {
                Ok(window.skip + items.len() as i64)
            }
            None => count(),
        }
    };
    let (items, total) = match dialect {
        Dialect::Postgres => {
            // Searching, the matches come from the GIN index: the page
            // counts them too, and its sort key is one no index serves, so
            // the planner sorts those matches rather than walking a sort
            // index and testing every row's text.
            let searching = filter.search.is_some();
            let order = if searching {
                format!("{} {direction}, l.id {direction}", unindexed(column))
            } else {
                order
            };
            let (items, known) = read("leads l", &order, searching)?;
            let total = total_of(&items, known)?;
            (items, total)
        }
        Dialect::Sqlite => {
            let walk = walk_for(&filter, column);
            match walk {
                // The equality filters are the index's prefix and nothing
                // else filters: the walk reads only the page.
                Some((index, prefix)) if filter == only(&filter, prefix, false) => {
                    let (items, _) = read(&format!("leads l INDEXED BY {index}"), &order, false)?;
                    let total = total_of(&items, None)?;
                    (items, total)
                }
                _ => {
                    let matches = sqlite_count(host, &filter)?;
                    let from = match walk {
                        Some((index, prefix))
                            if matches > 0
                                && walk_wins(host, &filter, prefix, matches, window)? =>
                        {
                            format!("leads l INDEXED BY {index}")
                        }
                        // The matches by id from the full-text index.
                        _ if filter.search.is_some() => "leads l NOT INDEXED".to_string(),
                        _ => "leads l".to_string(),
                    };
                    let (items, _) = read(&from, &order, false)?;
                    (items, matches)
                }
            }
        }
    };
    Ok(listing::body(items, total, window))
}

/// The leads `filter` keeps, counted on SQLite.
fn sqlite_count(host: &Host, filter: &LeadFilter) -> Result<i64, HostError> {
    let clause = filter.clause(Dialect::Sqlite);
    if filter.search.is_some() && *filter == only(filter, &[], true) {
        // A search alone: the full-text index holds exactly the leads.
        return host.query_scalar(
            "SELECT COUNT(*) FROM leads_fts WHERE leads_fts MATCH $1",
            clause.params,
        );
    }
    // A search within a status: each match's id is looked up in
    // (status, id), not in the table (2.6 ms for 5,000 matches, against
    // 18 ms); named, since statistics could lead SQLite elsewhere.
    let from = if filter.search.is_some() && filter.status.is_some() {
        "leads l INDEXED BY leads_status_id_idx"
    } else {
        "leads l"
    };
    host.query_scalar(
        &format!("SELECT COUNT(*) FROM {from} {}", clause.sql()),
        clause.params,
    )
}

/// Whether walking the index whose equality prefix is `prefix`, skipping
/// what the other filters refuse, reads less than fetching and sorting the
/// `matches` (more than none).
fn walk_wins(
    host: &Host,
    filter: &LeadFilter,
    prefix: &[&str],
    matches: i64,
    window: Window,
) -> Result<bool, HostError> {
    let per_entry = if *filter == only(filter, prefix, true) {
        PROBE_COST
    } else {
        1.0
    };
    // Matches are spread evenly over the `span` entries the prefix selects.
    let walk_reads =
        |span: i64| (window.skip + window.limit) as f64 * span as f64 / matches as f64 * per_entry;
    // The highest id bounds every span (ids are distinct and positive),
    // which often decides without counting the span.
    let highest: Option<i64> = host.query_scalar("SELECT MAX(id) FROM leads", Vec::new())?;
    if walk_reads(highest.unwrap_or(0)) <= matches as f64 {
        return Ok(true);
    }
    let spanned = only(filter, prefix, false).clause(Dialect::Sqlite);
    let span: i64 = host.query_scalar(
        &format!("SELECT COUNT(*) FROM leads l {}", spanned.sql()),
        spanned.params,
    )?;
    Ok(walk_reads(span) <= matches as f64)
}
