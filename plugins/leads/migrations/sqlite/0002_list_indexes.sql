-- leads plugin, migration 2 (SQLite): indexes for the lists. Keep in step
-- with ../postgres/0002_list_indexes.sql.
--
-- Each starts with a list's equality filters and continues with its sort
-- column, so a page walks it and reads only that page (src/page.rs).
-- SQLite ends every index with the rowid, which is `id`, the lists'
-- tie-breaker: the order is exactly `ORDER BY <column>, id`.

-- `/status/{status}` and `?status=`, default sort (created_at).
CREATE INDEX leads_status_created_idx ON leads (status, created_at);
-- status + source, sorted by created_at.
CREATE INDEX leads_status_source_created_idx ON leads (status, source, created_at);
-- (status, id): a search within a status is counted by looking up each
-- match's id here (not in the table); also the sort by status.
CREATE INDEX leads_status_id_idx ON leads (status);
