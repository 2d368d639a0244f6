-- Session revocation, PostgreSQL dialect. Keep in step with
-- ../sqlite/0004_session_revocation.sql.
--
-- A revoked session (refresh-token family) is refused for its access tokens
-- too, at once: every authenticated request looks its `sid` up here. A row
-- lives as long as anything of the family could still be presented (the
-- later of the family's last refresh expiry and the access-token lifetime);
-- the expired-token purge deletes it after that.
CREATE TABLE revoked_sessions (
    session_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    expires_at TEXT NOT NULL
);

-- The user's token version a refresh token was issued under: a refresh
-- token minted while a deactivation was committing carries the old version
-- and is refused, so reactivating the account cannot revive it.
ALTER TABLE refresh_tokens ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
-- Live tokens were all issued under their user's current version (every
-- version bump so far also revoked the user's refresh tokens).
UPDATE refresh_tokens SET token_version = (
    SELECT u.token_version FROM users u WHERE u.id = refresh_tokens.user_id
);
