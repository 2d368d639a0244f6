-- API keys for machines, PostgreSQL dialect. Keep in step with
-- ../sqlite/0006_api_keys.sql.
--
-- A key is `xk_<prefix>_<secret>`: `prefix` finds the row, `secret_hash`
-- is the SHA-256 (hex) of the 256-bit random secret, so a leaked table does
-- not leak usable keys. `scopes` is a JSON array of permission names; a
-- request made with the key holds those of them its owner still holds.
-- Revoked keys keep their row (`revoked_at` set) so the owner's list shows
-- them. `last_used_at` is written in batches, at most once per flush
-- interval per key (see core/src/auth/api_keys/usage.rs).
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires_at TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id);
