-- pricing plugin, migration 2 (PostgreSQL): price alerts. Keep in step with
-- ../sqlite/0002_alerts.sql.
--
-- below is 1 while the reference's best price is under the target: an
-- alert fires when it turns 1 (a crossing), and re-arms when it turns 0.
CREATE TABLE pricing_alerts (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    reference TEXT NOT NULL,
    reference_key TEXT NOT NULL,
    target_cents BIGINT NOT NULL CHECK (target_cents > 0),
    below BIGINT NOT NULL DEFAULT 0,
    last_alerted_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX pricing_alerts_user_idx ON pricing_alerts (user_id, id);
CREATE INDEX pricing_alerts_reference_idx ON pricing_alerts (reference_key);
