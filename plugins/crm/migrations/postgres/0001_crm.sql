-- crm plugin, migration 1 (PostgreSQL): customers, pipelines and stages,
-- opportunities with their lines and stage history, activities, imports.
-- Keep in step with ../sqlite/0001_crm.sql.
--
-- Money is exact: *_cents columns are integer cents. Timestamps are
-- TEXT in the host's fixed-width RFC 3339 format, so they compare as text.
-- Ids of host users (owner, assignee) and catalogue products are plain
-- columns: foreign keys may only point at this plugin's own tables.

CREATE TABLE crm_customers (
    id BIGSERIAL PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('company', 'person')),
    name TEXT NOT NULL,
    -- Lower-cased by the API; NULL for a customer without one.
    email TEXT UNIQUE,
    phone TEXT,
    -- Further addresses and numbers, JSON arrays of strings.
    other_emails TEXT NOT NULL DEFAULT '[]',
    other_phones TEXT NOT NULL DEFAULT '[]',
    company_id BIGINT REFERENCES crm_customers (id),
    address TEXT,
    -- A JSON array of lower-case tags; filtered with LIKE '%"tag"%'.
    tags TEXT NOT NULL DEFAULT '[]',
    owner_id BIGINT,
    notes TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX crm_customers_company_idx ON crm_customers (company_id);
CREATE INDEX crm_customers_owner_idx ON crm_customers (owner_id, created_at, id);
CREATE INDEX crm_customers_type_idx ON crm_customers (type, created_at);
CREATE INDEX crm_customers_name_idx ON crm_customers (name);
CREATE INDEX crm_customers_created_idx ON crm_customers (created_at);
CREATE INDEX crm_customers_updated_idx ON crm_customers (updated_at);

-- The full-text document, computed by the database on every write; 'simple'
-- lower-cases without stemming (names mix languages). '@' and '.' split an
-- email into words, as FTS5 does on SQLite.
ALTER TABLE crm_customers ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', name || ' ' || translate(coalesce(email, ''), '@.', '  ') || ' '
        || coalesce(phone, '') || ' ' || coalesce(notes, ''))
) STORED;
CREATE INDEX crm_customers_search_idx ON crm_customers USING GIN (search_vector);

CREATE TABLE crm_pipelines (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE crm_stages (
    id BIGSERIAL PRIMARY KEY,
    pipeline_id BIGINT NOT NULL REFERENCES crm_pipelines (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    probability BIGINT NOT NULL CHECK (probability BETWEEN 0 AND 100),
    kind TEXT NOT NULL CHECK (kind IN ('open', 'won', 'lost'))
);
CREATE INDEX crm_stages_pipeline_idx ON crm_stages (pipeline_id, position);

CREATE TABLE crm_opportunities (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES crm_customers (id),
    pipeline_id BIGINT NOT NULL REFERENCES crm_pipelines (id),
    stage_id BIGINT NOT NULL REFERENCES crm_stages (id),
    amount_cents BIGINT NOT NULL DEFAULT 0 CHECK (amount_cents >= 0),
    currency TEXT NOT NULL,
    -- NULL: the stage's probability applies.
    probability BIGINT CHECK (probability BETWEEN 0 AND 100),
    expected_close TEXT,
    owner_id BIGINT,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    lost_reason TEXT,
    closed_at TEXT,
    -- Seconds from creation to closing, computed when the deal closes, so
    -- the dashboard's average sales cycle needs no date arithmetic.
    cycle_seconds BIGINT,
    -- A one-time key the creating transaction finds its row by, so the
    -- lines and the first history entry are written in the same
    -- transaction on both databases (no portable "last id").
    create_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX crm_opportunities_customer_idx ON crm_opportunities (customer_id, status);
CREATE INDEX crm_opportunities_stage_idx ON crm_opportunities (stage_id, status);
-- The dashboard's two scans read only these indexes (covering): open deals
-- by stage and expected month, closed deals by close date.
-- The open scan is in (stage, expected close) order, so it aggregates
-- without sorting.
CREATE INDEX crm_opportunities_open_idx ON crm_opportunities
    (status, currency, stage_id, expected_close, probability, amount_cents, owner_id);
CREATE INDEX crm_opportunities_closed_idx ON crm_opportunities
    (status, currency, closed_at, amount_cents, cycle_seconds, owner_id, customer_id);
-- An owner's deals by status, in amount order (the list's usual sort).
CREATE INDEX crm_opportunities_owner_amount_idx ON crm_opportunities (owner_id, status, amount_cents);
CREATE INDEX crm_opportunities_owner_idx ON crm_opportunities (owner_id, status);
CREATE INDEX crm_opportunities_created_idx ON crm_opportunities (created_at);

CREATE TABLE crm_opportunity_lines (
    id BIGSERIAL PRIMARY KEY,
    opportunity_id BIGINT NOT NULL REFERENCES crm_opportunities (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    -- A catalogue product's id and name when the line was priced.
    product_id BIGINT NOT NULL,
    product_name TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    -- Percent off, in hundredths of a percent (1250 = 12.50 %).
    discount_bp BIGINT NOT NULL DEFAULT 0 CHECK (discount_bp BETWEEN 0 AND 10000),
    total_cents BIGINT NOT NULL
);
CREATE INDEX crm_opportunity_lines_opportunity_idx ON crm_opportunity_lines (opportunity_id, position);

CREATE TABLE crm_stage_history (
    id BIGSERIAL PRIMARY KEY,
    opportunity_id BIGINT NOT NULL REFERENCES crm_opportunities (id) ON DELETE CASCADE,
    from_stage_id BIGINT,
    to_stage_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    changed_by BIGINT,
    changed_at TEXT NOT NULL
);
CREATE INDEX crm_stage_history_opportunity_idx ON crm_stage_history (opportunity_id, id);

CREATE TABLE crm_activities (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('call', 'meeting', 'task', 'email', 'note')),
    subject TEXT NOT NULL,
    notes TEXT,
    customer_id BIGINT REFERENCES crm_customers (id) ON DELETE CASCADE,
    opportunity_id BIGINT REFERENCES crm_opportunities (id) ON DELETE CASCADE,
    due_at TEXT,
    assignee_id BIGINT,
    done BOOLEAN NOT NULL DEFAULT FALSE,
    done_at TEXT,
    -- When crm.activity.due was published for it (once per due date).
    notified_at TEXT,
    created_by BIGINT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX crm_activities_customer_idx ON crm_activities (customer_id, created_at);
CREATE INDEX crm_activities_opportunity_idx ON crm_activities (opportunity_id);
CREATE INDEX crm_activities_assignee_idx ON crm_activities (assignee_id, done, due_at);
CREATE INDEX crm_activities_due_idx ON crm_activities (done, due_at);

CREATE TABLE crm_imports (
    id BIGSERIAL PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    -- The uploaded file, dropped once imported.
    content TEXT,
    owner_id BIGINT,
    rows_total BIGINT NOT NULL DEFAULT 0,
    rows_imported BIGINT NOT NULL DEFAULT 0,
    rows_failed BIGINT NOT NULL DEFAULT 0,
    created_by BIGINT,
    created_at TEXT NOT NULL,
    finished_at TEXT
);

CREATE TABLE crm_import_errors (
    id BIGSERIAL PRIMARY KEY,
    import_id BIGINT NOT NULL REFERENCES crm_imports (id) ON DELETE CASCADE,
    line BIGINT NOT NULL,
    field TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX crm_import_errors_import_idx ON crm_import_errors (import_id, line);

-- The default pipeline, created once, with the install.
INSERT INTO crm_pipelines (name, is_default, created_at, updated_at)
VALUES ('Sales', TRUE, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
INSERT INTO crm_stages (pipeline_id, name, position, probability, kind) VALUES
    ((SELECT id FROM crm_pipelines WHERE name = 'Sales'), 'Lead', 1, 10, 'open'),
    ((SELECT id FROM crm_pipelines WHERE name = 'Sales'), 'Qualified', 2, 25, 'open'),
    ((SELECT id FROM crm_pipelines WHERE name = 'Sales'), 'Proposal', 3, 50, 'open'),
    ((SELECT id FROM crm_pipelines WHERE name = 'Sales'), 'Negotiation', 4, 75, 'open'),
    ((SELECT id FROM crm_pipelines WHERE name = 'Sales'), 'Won', 5, 100, 'won'),
    ((SELECT id FROM crm_pipelines WHERE name = 'Sales'), 'Lost', 6, 0, 'lost');
