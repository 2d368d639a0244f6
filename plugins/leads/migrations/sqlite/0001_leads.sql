-- leads plugin, migration 1 (SQLite). Keep in step with
-- ../postgres/0001_leads.sql.
--
-- Timestamps are TEXT in the host's fixed-width RFC 3339 format (they sort
-- as text). JSON documents (tags, criteria, target, config) are TEXT.
-- Flags are INTEGER 0/1.

CREATE TABLE leads_niches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    criteria TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE leads_campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    niche_id BIGINT REFERENCES leads_niches (id),
    channel TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'phone', 'linkedin')),
    template TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '{}',
    schedule TEXT,
    webhook_url TEXT,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'completed')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- email_key (lower-cased email) and phone_key (digits only) are what a
-- duplicate is: the API names the existing lead first; the unique indexes
-- close the race between two concurrent writers.
CREATE TABLE leads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    company TEXT NOT NULL,
    contact_name TEXT,
    email TEXT,
    phone TEXT,
    website TEXT,
    source TEXT,
    niche_id BIGINT REFERENCES leads_niches (id),
    campaign_id BIGINT REFERENCES leads_campaigns (id),
    status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'contacted', 'qualified', 'converted', 'lost')),
    score BIGINT NOT NULL DEFAULT 0 CHECK (score BETWEEN 0 AND 100),
    tags TEXT NOT NULL DEFAULT '[]',
    notes TEXT,
    owner_id BIGINT,
    email_key TEXT,
    phone_key TEXT,
    converted_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX leads_email_key_idx ON leads (email_key) WHERE email_key IS NOT NULL;
CREATE UNIQUE INDEX leads_phone_key_idx ON leads (phone_key) WHERE phone_key IS NOT NULL;
-- (status, score): the overview counts and sums per status from the index.
CREATE INDEX leads_status_idx ON leads (status, score);
CREATE INDEX leads_niche_idx ON leads (niche_id);
CREATE INDEX leads_campaign_idx ON leads (campaign_id);
CREATE INDEX leads_source_idx ON leads (source);
CREATE INDEX leads_created_idx ON leads (created_at);
CREATE INDEX leads_updated_idx ON leads (updated_at);
CREATE INDEX leads_score_idx ON leads (score);
CREATE INDEX leads_company_idx ON leads (company);
CREATE INDEX leads_converted_idx ON leads (converted_at);

CREATE VIRTUAL TABLE leads_fts USING fts5(
    company, contact_name, email, notes,
    content='leads', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads BEGIN
    INSERT INTO leads_fts (rowid, company, contact_name, email, notes)
    VALUES (new.id, new.company, new.contact_name, new.email, new.notes);
END;
CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, company, contact_name, email, notes)
    VALUES ('delete', old.id, old.company, old.contact_name, old.email, old.notes);
END;
CREATE TRIGGER leads_fts_update AFTER UPDATE OF company, contact_name, email, notes ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, company, contact_name, email, notes)
    VALUES ('delete', old.id, old.company, old.contact_name, old.email, old.notes);
    INSERT INTO leads_fts (rowid, company, contact_name, email, notes)
    VALUES (new.id, new.company, new.contact_name, new.email, new.notes);
END;

-- A lead's history: status moves, merges (with the merged lead's fields),
-- enrichments. lead_id is a plain column so history outlives a delete.
CREATE TABLE leads_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX leads_history_lead_idx ON leads_history (lead_id, id);

-- One row per (campaign, lead): a lead gets a campaign's message once.
CREATE TABLE leads_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id BIGINT NOT NULL REFERENCES leads_campaigns (id) ON DELETE CASCADE,
    lead_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    response_status BIGINT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (campaign_id, lead_id)
);
CREATE INDEX leads_deliveries_status_idx ON leads_deliveries (campaign_id, status);

CREATE TABLE leads_agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL CHECK (type IN ('scorer', 'qualifier', 'deduplicator', 'follow_up', 'enricher')),
    config TEXT NOT NULL DEFAULT '{}',
    schedule TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'error')),
    last_error TEXT,
    last_run_at TEXT,
    next_run_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE leads_agent_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id BIGINT NOT NULL REFERENCES leads_agents (id) ON DELETE CASCADE,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    examined BIGINT NOT NULL,
    changed BIGINT NOT NULL,
    errors TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX leads_agent_runs_agent_idx ON leads_agent_runs (agent_id, id);

-- The plugin's activity log (GET /logs).
CREATE TABLE leads_activity (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    level TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    subject_id BIGINT,
    data TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX leads_activity_kind_idx ON leads_activity (kind, id);
CREATE INDEX leads_activity_level_idx ON leads_activity (level, id);

CREATE TABLE leads_settings (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Webhook answers by Idempotency-Key: a replay gets the first answer.
CREATE TABLE leads_idempotency (
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    status BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (route, key)
);

CREATE TABLE leads_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    content TEXT,
    rows_total BIGINT NOT NULL DEFAULT 0,
    rows_imported BIGINT NOT NULL DEFAULT 0,
    rows_duplicate BIGINT NOT NULL DEFAULT 0,
    rows_failed BIGINT NOT NULL DEFAULT 0,
    problems TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
