-- Audit log, PostgreSQL dialect. Keep in step with ../sqlite/0007_audit_log.sql.
--
-- One row per security-relevant act (see core/src/audit/mod.rs for the
-- actions). No foreign keys on purpose: the log outlives the users, roles,
-- plugins and tasks it names. Secrets (passwords, tokens, keys) are never
-- written here. Rows older than audit.retention_days are deleted by the
-- built-in task prune_audit_log.
--
-- actor_id: the user who acted, when known; actor: their email, the email a
-- failed login or reset request named, or 'system' (the plugin watcher).
-- target: what was acted on, as 'kind:id' (e.g. 'user:7', 'plugin:hello').
-- details: a JSON object with non-secret particulars.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    created_at TEXT NOT NULL,
    actor_id BIGINT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    ip TEXT,
    details TEXT NOT NULL
);
CREATE INDEX audit_log_created_at ON audit_log (created_at);
CREATE INDEX audit_log_action ON audit_log (action);
CREATE INDEX audit_log_actor ON audit_log (actor_id);
