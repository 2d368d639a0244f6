-- leads plugin, migration 2 (PostgreSQL): indexes for the lists. Keep in
-- step with ../sqlite/0002_list_indexes.sql.
--
-- Each starts with a list's equality filters and continues with its sort
-- column, then `id`, the lists' tie-breaker (SQLite's indexes carry the
-- rowid implicitly; PostgreSQL's must name it), so a page sorted
-- `ORDER BY <column>, id` walks the index and reads only that page.

-- `/status/{status}` and `?status=`, default sort (created_at).
CREATE INDEX leads_status_created_idx ON leads (status, created_at, id);
-- status + source, sorted by created_at.
CREATE INDEX leads_status_source_created_idx ON leads (status, source, created_at, id);
-- (status, id): the sort by status, and a status's leads in id order.
CREATE INDEX leads_status_id_idx ON leads (status, id);
-- (status, score) gains id: status + sort by score in the lists' exact
-- order; the overview still counts and sums per status from it.
DROP INDEX leads_status_idx;
CREATE INDEX leads_status_idx ON leads (status, score, id);
