-- products plugin, migration 13 (PostgreSQL): nothing to do. SQLite adds a
-- full-text index holding the status (../sqlite/0013_search_with_status.sql);
-- PostgreSQL counts a search with a status filter from the GIN index and
-- the table, as before. The version exists so both databases share one
-- history.
SELECT 1;
