-- Plugin state, PostgreSQL dialect. Keep in step with ../sqlite/0002_plugins.sql.
CREATE TABLE plugins (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    api_prefix TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    checksum TEXT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0,
    installed_at TEXT NOT NULL,
    loaded_at TEXT,
    last_reload TEXT,
    last_error TEXT
);
