-- pricing plugin, migration 3 (PostgreSQL): the blog of seed 002. Keep in
-- step with ../sqlite/0003_blog.sql.
--
-- contenu is the sanitised HTML (the plugin cleans it on write) and resume
-- the first 300 characters of its text, computed on write too. avantages
-- and inconvenients are JSON arrays of strings, specifications a JSON
-- object, all as TEXT. date_publication is in the host's fixed-width UTC
-- format, so "published" is a text comparison with now; draft is 0/1.
CREATE TABLE pricing_articles (
    id BIGSERIAL PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    titre TEXT NOT NULL,
    contenu TEXT NOT NULL,
    resume TEXT NOT NULL,
    image TEXT,
    date_publication TEXT NOT NULL,
    avantages TEXT NOT NULL DEFAULT '[]',
    inconvenients TEXT NOT NULL DEFAULT '[]',
    specifications TEXT NOT NULL DEFAULT '{}',
    draft BIGINT NOT NULL DEFAULT 0,
    created_by BIGINT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- The public list: published (draft = 0, date_publication <= now), newest
-- first, ties by id.
CREATE INDEX pricing_articles_public_idx ON pricing_articles (draft, date_publication, id);
