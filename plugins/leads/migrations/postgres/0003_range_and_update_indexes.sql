-- leads plugin, migration 3 (PostgreSQL): two more list indexes. Keep in
-- step with ../sqlite/0003_range_and_update_indexes.sql.

-- status sorted by updated_at: a deep page walks the index.
CREATE INDEX leads_status_updated_idx ON leads (status, updated_at, id);
-- source with a score range, sorted by score: the range in index order.
CREATE INDEX leads_source_score_idx ON leads (source, score, id);
