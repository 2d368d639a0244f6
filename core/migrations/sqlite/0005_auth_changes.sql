-- Authentication change log, SQLite dialect. Keep in step with
-- ../postgres/0005_auth_changes.sql.
--
-- Requests are authenticated and authorized from an in-process cache (see
-- core/src/auth/cache.rs). Every change that affects a decision bumps
-- `auth_state.version` as the last statement of its transaction and logs
-- what changed in `auth_changes` under that version. The counter row's lock
-- makes versions commit in order, so an instance that polls
-- `version > last seen` never skips a change that commits late.
CREATE TABLE auth_state (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO auth_state (id, version) VALUES (1, 0);

-- kind: 'user' (subject: user id), 'grants' (roles, permissions, grants),
-- 'jti' and 'session' (subject: the revoked id, expires_at: unix seconds
-- after which the revocation no longer matters), 'reload' (everything).
-- Rows are pruned by the expired-token purge; an instance that finds a
-- version missing reloads everything instead.
CREATE TABLE auth_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    expires_at BIGINT,
    created_at TEXT NOT NULL
);
CREATE INDEX auth_changes_version ON auth_changes (version);
