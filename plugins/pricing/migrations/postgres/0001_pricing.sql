-- pricing plugin, migration 1 (PostgreSQL). Keep in step with
-- ../sqlite/0001_pricing.sql.
--
-- Money is exact: *_cents columns are integer cents. Flags are INTEGER 0/1.
-- Timestamps are TEXT in the host's fixed-width RFC 3339 format.
-- product_id columns refer to the products plugin's rows: no SQL foreign
-- key (a plugin's keys stay inside its own tables).

-- Every price a catalogue product had, whoever changed it. One change is
-- (product, instant, new price): pricing's own route and the products
-- event that reports the same change meet on that key.
CREATE TABLE pricing_history (
    id BIGSERIAL PRIMARY KEY,
    product_id BIGINT NOT NULL,
    sku TEXT,
    old_price_cents BIGINT,
    new_price_cents BIGINT NOT NULL,
    reason TEXT,
    source TEXT NOT NULL,
    changed_by BIGINT,
    changed_at TEXT NOT NULL,
    UNIQUE (product_id, changed_at, new_price_cents)
);
CREATE INDEX pricing_history_product_idx ON pricing_history (product_id, changed_at);

-- Discounts on catalogue products: a percentage (in hundredths of a
-- percent) or an amount, over an optional period.
CREATE TABLE pricing_discounts (
    id BIGSERIAL PRIMARY KEY,
    product_id BIGINT NOT NULL,
    percent_hundredths BIGINT CHECK (percent_hundredths > 0 AND percent_hundredths <= 10000),
    amount_cents BIGINT CHECK (amount_cents > 0),
    starts_at TEXT,
    ends_at TEXT,
    created_by BIGINT,
    created_at TEXT NOT NULL,
    CHECK ((percent_hundredths IS NULL) <> (amount_cents IS NULL))
);
CREATE INDEX pricing_discounts_product_idx ON pricing_discounts (product_id);

-- Partner stores (Toprix's "boutiques") and their feed settings.
CREATE TABLE pricing_stores (
    id TEXT PRIMARY KEY,
    nom TEXT NOT NULL,
    site_web TEXT,
    feed_url TEXT,
    last_feed_at TEXT,
    last_feed_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One store's offer for one reference. The *_key and *_slug columns are
-- computed by the plugin on write (upper-cased reference, folded brand,
-- French slugs) so lookups and filters are plain index equalities on both
-- databases; search_text is the folded title, brand and reference that
-- the full-text index covers.
CREATE TABLE pricing_offers (
    id BIGSERIAL PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES pricing_stores (id) ON DELETE CASCADE,
    reference TEXT NOT NULL,
    reference_key TEXT NOT NULL,
    reference_slug TEXT NOT NULL,
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,
    search_text TEXT NOT NULL,
    brand TEXT,
    brand_key TEXT,
    brand_slug TEXT,
    category TEXT,
    category_slug TEXT,
    subcategory TEXT,
    subcategory_slug TEXT,
    category_path TEXT NOT NULL DEFAULT '[]',
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    old_price_cents BIGINT,
    discount_cents BIGINT NOT NULL DEFAULT 0,
    in_stock BIGINT NOT NULL DEFAULT 1,
    url TEXT,
    image TEXT,
    description TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (store_id, reference)
);
CREATE INDEX pricing_offers_reference_idx ON pricing_offers (reference_key, price_cents);
CREATE INDEX pricing_offers_slug_idx ON pricing_offers (reference_slug);
CREATE INDEX pricing_offers_brand_idx ON pricing_offers (brand_key);
CREATE INDEX pricing_offers_brand_slug_idx ON pricing_offers (brand_slug);
CREATE INDEX pricing_offers_category_idx ON pricing_offers (category_slug, subcategory_slug);
CREATE INDEX pricing_offers_price_idx ON pricing_offers (price_cents);

-- The full-text index: search_text is already folded by the plugin, so
-- the 'simple' configuration (no stemming) matches what SQLite's FTS5 does.
CREATE INDEX pricing_offers_search_idx ON pricing_offers
    USING GIN (to_tsvector('simple', search_text));

-- The words of every offer's search text: the vocabulary a misspelt
-- search word is corrected against (typo tolerance).
CREATE TABLE pricing_terms (
    term TEXT PRIMARY KEY
);

-- Every price an offer had.
CREATE TABLE pricing_offer_prices (
    id BIGSERIAL PRIMARY KEY,
    store_id TEXT NOT NULL,
    reference TEXT NOT NULL,
    old_price_cents BIGINT,
    new_price_cents BIGINT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE INDEX pricing_offer_prices_offer_idx ON pricing_offer_prices (store_id, reference, changed_at);

-- Requests from the public form (Toprix's "demandes").
CREATE TABLE pricing_requests (
    id BIGSERIAL PRIMARY KEY,
    request_type TEXT NOT NULL,
    store_name TEXT,
    website TEXT,
    product_name TEXT,
    product_url TEXT,
    contact_person TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    message TEXT,
    status TEXT NOT NULL DEFAULT 'new',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX pricing_requests_status_idx ON pricing_requests (status, created_at);
