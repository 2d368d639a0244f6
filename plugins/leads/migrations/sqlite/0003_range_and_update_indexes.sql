-- leads plugin, migration 3 (SQLite): two more list indexes, measured in
-- the leads bench (200,000 leads). Keep in step with
-- ../postgres/0003_range_and_update_indexes.sql.

-- status sorted by updated_at (a follow-up view: what moved last): page
-- 200 of a status took 35 ms without it, 2 ms with it.
CREATE INDEX leads_status_updated_idx ON leads (status, updated_at);
-- source with a score range, sorted by score (the best leads of a
-- channel): the range is read from the index in order; 32 ms (71 ms p99)
-- without it, 0.8 ms with it.
CREATE INDEX leads_source_score_idx ON leads (source, score);
