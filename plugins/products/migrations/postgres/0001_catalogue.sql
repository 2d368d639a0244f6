-- products plugin, migration 1 (PostgreSQL): categories, products, full-text
-- search. Keep in step with ../sqlite/0001_catalogue.sql.
--
-- Money is exact: price_cents is an integer number of cents. Timestamps are
-- TEXT in the host's fixed-width RFC 3339 format.

CREATE TABLE products_categories (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- supplier_id: no SQL foreign key (see the SQLite script).
CREATE TABLE products (
    id BIGSERIAL PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    stock BIGINT NOT NULL DEFAULT 0 CHECK (stock >= 0),
    supplier_id BIGINT,
    category_id BIGINT REFERENCES products_categories (id),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'draft')),
    images TEXT NOT NULL DEFAULT '[]',
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- The full-text document, computed by the database on every write. The
    -- 'simple' configuration lower-cases without stemming: the catalogue
    -- mixes French and English, and SKUs must match as written.
    search_vector tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', sku || ' ' || name || ' ' || coalesce(description, ''))
    ) STORED
);
CREATE INDEX products_search_idx ON products USING GIN (search_vector);
CREATE INDEX products_status_idx ON products (status);
CREATE INDEX products_supplier_idx ON products (supplier_id);
CREATE INDEX products_category_idx ON products (category_id);
-- Sort indexes end with id, the tie-breaker every list orders by, so a
-- page can be read in index order and stop (SQLite's indexes carry the
-- rowid implicitly; PostgreSQL's do not).
CREATE INDEX products_price_idx ON products (price_cents, id);
CREATE INDEX products_stock_idx ON products (stock, id);
CREATE INDEX products_name_idx ON products (name, id);
CREATE INDEX products_created_idx ON products (created_at, id);
CREATE INDEX products_updated_idx ON products (updated_at, id);
