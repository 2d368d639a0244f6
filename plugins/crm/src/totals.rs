//! Running totals of the opportunities, which the dashboard reads instead
//! of scanning every deal (`crm_deal_totals`, `crm_customer_revenue`,
//! migration 2).
//!
//! - `crm_deal_totals`: per currency, owner, status, stage and month (the
//!   expected close month of an open deal, the close month of a closed
//!   one): how many deals, their amount, their amount weighted by their own
//!   probability, the amount of those without one (weighted by their
//!   stage's at read time, so changing a stage's probability needs no
//!   rewrite), and the sales cycle of closed ones.
//! - `crm_customer_revenue`: per currency, owner and customer, the won
//!   deals and their amount (the dashboard's top customers).
//!
//! Each group is kept twice: under its owner (`owner_key`, 0 for a deal
//! without one) and under [`EVERYONE`], so the whole team's dashboard
//! reads a few hundred rows too.
//!
//! Every write of `crm_opportunities` goes through [`Totals`]: in the same
//! transaction, it takes the totals lock (one row, so writers of deals
//! queue instead of deadlocking on totals rows they update in different
//! orders, and none reads a deal another is changing), subtracts the deals
//! it is about to change, writes, and adds them back as they are now. The
//! `rebuild_totals` job recomputes everything (after rows were written by
//! hand, say).

use serde_json::Value;
use xcore_plugin_sdk::{params, Statement};

/// The `owner_key` of the whole team's rows.
pub const EVERYONE: i64 = -1;

/// The month a deal counts in (`YYYY-MM`, or empty for an open deal with
/// no expected close).
const MONTH: &str =
    "CASE WHEN o.status = 'open' THEN COALESCE(substr(o.expected_close, 1, 7), '') \
     ELSE COALESCE(substr(o.closed_at, 1, 7), '') END";

/// Each deal twice: under its owner and under everyone.
const OWNERS: &str = "CROSS JOIN (SELECT 0 AS everyone UNION ALL SELECT 1 AS everyone) k";

/// Its owner key for the row of `k`.
const OWNER_KEY: &str = "CASE WHEN k.everyone = 1 THEN -1 ELSE COALESCE(o.owner_id, 0) END";

/// The statements that add `sign` (1 or -1) times the deals `condition`
/// selects (on `crm_opportunities o`, with `params` bound from `$1`) to the
/// totals, counting them in `stage` when given (a `$n` after `params`)
/// instead of their own stage.
fn adjust(condition: &str, params: &[Value], sign: i64, stage: Option<&str>) -> Vec<Statement> {
    let stage = stage.unwrap_or("o.stage_id");
    let deals = format!(
        "INSERT INTO crm_deal_totals (currency, owner_key, status, stage_id, month, deals, \
         amount_cents, weighted, unset_amount, cycle_seconds, cycle_deals) \
         SELECT o.currency, {OWNER_KEY}, o.status, {stage}, {MONTH}, {sign} * COUNT(*), \
         CAST({sign} * SUM(o.amount_cents) AS BIGINT), \
         CAST({sign} * SUM(o.amount_cents * COALESCE(o.probability, 0)) AS BIGINT), \
         CAST({sign} * SUM(CASE WHEN o.probability IS NULL THEN o.amount_cents ELSE 0 END) AS BIGINT), \
         CAST({sign} * COALESCE(SUM(o.cycle_seconds), 0) AS BIGINT), {sign} * COUNT(o.cycle_seconds) \
         FROM crm_opportunities o {OWNERS} WHERE {condition} GROUP BY 1, 2, 3, 4, 5 \
         ON CONFLICT (currency, owner_key, status, stage_id, month) DO UPDATE SET \
         deals = crm_deal_totals.deals + excluded.deals, \
         amount_cents = crm_deal_totals.amount_cents + excluded.amount_cents, \
         weighted = crm_deal_totals.weighted + excluded.weighted, \
         unset_amount = crm_deal_totals.unset_amount + excluded.unset_amount, \
         cycle_seconds = crm_deal_totals.cycle_seconds + excluded.cycle_seconds, \
         cycle_deals = crm_deal_totals.cycle_deals + excluded.cycle_deals"
    );
    let revenue = format!(
        "INSERT INTO crm_customer_revenue (currency, owner_key, customer_id, deals, revenue) \
         SELECT o.currency, {OWNER_KEY}, o.customer_id, {sign} * COUNT(*), \
         CAST({sign} * SUM(o.amount_cents) AS BIGINT) \
         FROM crm_opportunities o {OWNERS} WHERE o.status = 'won' AND ({condition}) GROUP BY 1, 2, 3 \
         ON CONFLICT (currency, owner_key, customer_id) DO UPDATE SET \
         deals = crm_customer_revenue.deals + excluded.deals, \
         revenue = crm_customer_revenue.revenue + excluded.revenue"
    );
    vec![
        Statement::new(&deals, params.to_vec()),
        Statement::new(&revenue, params.to_vec()),
    ]
}

/// The lock every writer of deals takes first.
fn lock() -> Statement {
    Statement::new(
        "UPDATE crm_totals_lock SET writes = writes + 1 WHERE id = 1",
        params![],
    )
}

/// Builds the transaction of a write of deals with the totals kept right.
pub struct Totals;

impl Totals {
    /// `writes`, which change the deals `condition` selects (the same deals
    /// before and after, e.g. `o.id = $1`), wrapped: lock, subtract them,
    /// write, add them back. The writes' results come at index 3 onwards.
    pub fn around(condition: &str, params: &[Value], writes: Vec<Statement>) -> Vec<Statement> {
        let mut statements = vec![lock()];
        statements.extend(adjust(condition, params, -1, None));
        statements.extend(writes);
        statements.extend(adjust(condition, params, 1, None));
        statements
    }

    /// `writes`, which create the deals `condition` selects: lock, write,
    /// add them. The writes' results come at index 1 onwards.
    pub fn after_creating(
        condition: &str,
        params: &[Value],
        writes: Vec<Statement>,
    ) -> Vec<Statement> {
        let mut statements = vec![lock()];
        statements.extend(writes);
        statements.extend(adjust(condition, params, 1, None));
        statements
    }

    /// `writes`, which delete the deals `condition` selects: lock, subtract
    /// them, write. The writes' results come at index 3 onwards.
    pub fn before_deleting(
        condition: &str,
        params: &[Value],
        writes: Vec<Statement>,
    ) -> Vec<Statement> {
        let mut statements = vec![lock()];
        statements.extend(adjust(condition, params, -1, None));
        statements.extend(writes);
        statements
    }

    /// `writes`, which move every deal of stage `from` to stage `to` and
    /// nothing else: lock, move their totals, write. (After the move the
    /// moved deals cannot be told from the stage's own, so the move is
    /// counted before it.)
    pub fn moving_stage(from: i64, to: i64, writes: Vec<Statement>) -> Vec<Statement> {
        let mut statements = vec![lock()];
        statements.extend(adjust("o.stage_id = $1", &params![from], -1, None));
        statements.extend(adjust(
            "o.stage_id = $1",
            &params![from, to],
            1,
            Some("CAST($2 AS BIGINT)"),
        ));
        statements.extend(writes);
        statements
    }

    /// Recomputes every total from the deals.
    pub fn rebuild() -> Vec<Statement> {
        let mut statements = vec![
            lock(),
            Statement::new("DELETE FROM crm_deal_totals", params![]),
            Statement::new("DELETE FROM crm_customer_revenue", params![]),
        ];
        statements.extend(adjust("1 = 1", &[], 1, None));
        statements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_wrapped_in_the_lock_a_subtraction_and_an_addition() {
        let write = Statement::new(
            "UPDATE crm_opportunities SET title = 'x' WHERE id = $1",
            params![7],
        );
        let statements = Totals::around("o.id = $1", &params![7], vec![write]);
        assert_eq!(statements.len(), 6);
        assert!(statements[0].sql.contains("crm_totals_lock"));
        assert!(
            statements[1].sql.contains("-1 * COUNT(*)"),
            "{}",
            statements[1].sql
        );
        assert!(statements[2].sql.contains("crm_customer_revenue"));
        assert!(statements[3].sql.starts_with("UPDATE crm_opportunities"));
        assert!(statements[4]
            .sql
            .contains("SELECT o.currency, CASE WHEN k.everyone = 1 THEN -1"));
        assert!(statements[4].sql.contains("1 * COUNT(*)"));
        assert!(!statements[4].sql.contains("-1 * COUNT(*)"));
    }

    #[test]
    fn a_stage_move_counts_the_deals_in_their_new_stage() {
        let statements = Totals::moving_stage(3, 4, Vec::new());
        assert_eq!(statements.len(), 5);
        assert!(statements[3].sql.contains("SELECT o.currency, CASE WHEN k.everyone = 1 THEN -1 ELSE COALESCE(o.owner_id, 0) END, o.status, CAST($2 AS BIGINT)"));
        assert_eq!(statements[3].params, params![3, 4]);
    }
}
