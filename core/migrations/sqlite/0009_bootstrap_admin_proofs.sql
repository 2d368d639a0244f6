-- What the bootstrap admin's start-up check proved, sqlite dialect. Keep in
-- step with ../postgres/0009_bootstrap_admin_proofs.sql.
--
-- Every start makes sure XCORE_ADMIN_PASSWORD still verifies against the
-- admin's stored hash: one argon2 run, a third of a restart's CPU. Once it
-- has verified, this row keeps a keyed hash (HMAC-SHA256 under the
-- instance's signing secret) of the email, that stored hash and the
-- password. A later start with the same three computes the same proof and
-- skips the argon2 run; a changed password, a hash rewritten through the
-- API or another signing secret gives another proof, and the full check
-- runs. Without the signing secret the proof says nothing about the
-- password; with it, the password is next to it in the same configuration.
CREATE TABLE bootstrap_admin_proofs (
    email TEXT PRIMARY KEY,
    proof TEXT NOT NULL
);
