-- products plugin, migration 1 (SQLite): categories, products, full-text
-- search. Keep in step with ../postgres/0001_catalogue.sql.
--
-- Money is exact: price_cents is an integer number of cents. Flags are
-- INTEGER 0/1 (the host's Any driver cannot decode SQLite's BOOLEAN).
-- Timestamps are TEXT in the host's fixed-width RFC 3339 format.

CREATE TABLE products_categories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- supplier_id refers to products_suppliers (id), created by a later
-- migration of this plugin (imports part), so it has no SQL foreign key:
-- the API checks it exists when a product is written.
CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    updated_at TEXT NOT NULL
);
CREATE INDEX products_status_idx ON products (status);
CREATE INDEX products_supplier_idx ON products (supplier_id);
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_price_idx ON products (price_cents);
CREATE INDEX products_stock_idx ON products (stock);
CREATE INDEX products_name_idx ON products (name);
CREATE INDEX products_created_idx ON products (created_at);
CREATE INDEX products_updated_idx ON products (updated_at);

-- An external-content FTS5 index over sku, name and description: the text
-- lives once, in products; the triggers keep the index in step with every
-- write, whoever makes it (API, bulk, CSV imports). Diacritics are folded
-- so "cafe" finds "Café".
CREATE VIRTUAL TABLE products_fts USING fts5(
    sku, name, description,
    content='products', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, sku, name, description)
    VALUES (new.id, new.sku, new.name, new.description);
END;
-- An external-content index forgets a row only when told the exact values
-- it indexed, hence the 'delete' command with the old ones.
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, sku, name, description)
    VALUES ('delete', old.id, old.sku, old.name, old.description);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF sku, name, description ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, sku, name, description)
    VALUES ('delete', old.id, old.sku, old.name, old.description);
    INSERT INTO products_fts (rowid, sku, name, description)
    VALUES (new.id, new.sku, new.name, new.description);
END;
