-- Running totals of the opportunities for the dashboard (src/totals.rs):
-- every write of a deal updates them in its own transaction, so the
-- dashboard reads a few hundred rows instead of every deal.

-- Per currency, owner (0: none; -1: everyone), status, stage and month (an
-- open deal's expected close month, a closed deal's close month).
CREATE TABLE crm_deal_totals (
    currency TEXT NOT NULL,
    owner_key BIGINT NOT NULL,
    status TEXT NOT NULL,
    stage_id BIGINT NOT NULL,
    month TEXT NOT NULL,
    deals BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    -- Amount × the deal's own probability (percent), for deals that have one.
    weighted BIGINT NOT NULL,
    -- Amount of the deals without their own probability (their stage's
    -- applies, read when the dashboard is built).
    unset_amount BIGINT NOT NULL,
    cycle_seconds BIGINT NOT NULL,
    cycle_deals BIGINT NOT NULL,
    PRIMARY KEY (currency, owner_key, status, stage_id, month)
);

-- Won deals per currency, owner (as above) and customer: the top customers.
CREATE TABLE crm_customer_revenue (
    currency TEXT NOT NULL,
    owner_key BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    deals BIGINT NOT NULL,
    revenue BIGINT NOT NULL,
    PRIMARY KEY (currency, owner_key, customer_id)
);
CREATE INDEX crm_customer_revenue_top_idx ON crm_customer_revenue
    (currency, owner_key, revenue DESC, customer_id);

-- One row every writer of deals updates first: writers queue on it rather
-- than deadlock on totals rows they update in different orders.
CREATE TABLE crm_totals_lock (
    id BIGINT PRIMARY KEY,
    writes BIGINT NOT NULL
);
INSERT INTO crm_totals_lock (id, writes) VALUES (1, 0);

-- The deals that exist already.
INSERT INTO crm_deal_totals (currency, owner_key, status, stage_id, month, deals,
    amount_cents, weighted, unset_amount, cycle_seconds, cycle_deals)
SELECT o.currency, CASE WHEN k.everyone = 1 THEN -1 ELSE COALESCE(o.owner_id, 0) END,
    o.status, o.stage_id,
    CASE WHEN o.status = 'open' THEN COALESCE(substr(o.expected_close, 1, 7), '')
         ELSE COALESCE(substr(o.closed_at, 1, 7), '') END,
    COUNT(*), CAST(SUM(o.amount_cents) AS BIGINT),
    CAST(SUM(o.amount_cents * COALESCE(o.probability, 0)) AS BIGINT),
    CAST(SUM(CASE WHEN o.probability IS NULL THEN o.amount_cents ELSE 0 END) AS BIGINT),
    CAST(COALESCE(SUM(o.cycle_seconds), 0) AS BIGINT), COUNT(o.cycle_seconds)
FROM crm_opportunities o
CROSS JOIN (SELECT 0 AS everyone UNION ALL SELECT 1 AS everyone) k
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO crm_customer_revenue (currency, owner_key, customer_id, deals, revenue)
SELECT o.currency, CASE WHEN k.everyone = 1 THEN -1 ELSE COALESCE(o.owner_id, 0) END,
    o.customer_id, COUNT(*), CAST(SUM(o.amount_cents) AS BIGINT)
FROM crm_opportunities o
CROSS JOIN (SELECT 0 AS everyone UNION ALL SELECT 1 AS everyone) k
WHERE o.status = 'won'
GROUP BY 1, 2, 3;
