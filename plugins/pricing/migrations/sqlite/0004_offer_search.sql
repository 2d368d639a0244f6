-- pricing plugin, migration 4 (SQLite): each store's offers in price order,
-- and the category counts. Keep in step with ../postgres/0004_offer_search.sql.
--
-- A broad search or a browse reads each store's cheapest matching offers
-- from this index and stops after what the page needs (see src/search.rs),
-- instead of ranking every match.
CREATE INDEX pricing_offers_store_price_idx ON pricing_offers (store_id, price_cents, id);

-- How many offers each (category, sub-category) has, kept by the offer
-- writes in their own transaction (see src/offers.rs, src/stores.rs), so
-- /categories/ reads fifty rows instead of counting every offer. An offer
-- without a sub-category counts under subcategory_slug ''.
CREATE TABLE pricing_category_counts (
    category_slug TEXT NOT NULL,
    subcategory_slug TEXT NOT NULL,
    category TEXT NOT NULL,
    subcategory TEXT,
    n BIGINT NOT NULL,
    PRIMARY KEY (category_slug, subcategory_slug)
);
INSERT INTO pricing_category_counts (category_slug, subcategory_slug, category, subcategory, n)
SELECT category_slug, COALESCE(subcategory_slug, ''), MIN(category), MIN(subcategory), COUNT(*)
FROM pricing_offers WHERE category_slug IS NOT NULL AND category_slug <> ''
GROUP BY category_slug, COALESCE(subcategory_slug, '');
