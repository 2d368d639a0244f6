//! Plugin SQL confined by the database itself: a corpus of bypass attempts
//! run through a plugin's own pool (SQLite's authorizer, PostgreSQL's
//! plugin role) with the lexical guard out of the way, at run time and in
//! migrations, on whichever database the suite runs against.
//!
//! Each run-time attack is first run on the host's own connection inside a
//! transaction that is rolled back: it must succeed there, so the corpus
//! holds real attacks, not statements that fail for another reason. Then
//! the confined pool must refuse it, and at the end nothing of the host's
//! has changed.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use sqlx::{Executor, Row};
use xcore::{
    db::{migrate::Migration, Database, Dialect},
    plugins::confinement::{Namespace, PluginDatabase},
};
use xcore_plugin_sdk::{HostError, Statement};

/// Which databases an attack's syntax is valid on.
#[derive(Clone, Copy, PartialEq)]
enum On {
    Both,
    Sqlite,
    Postgres,
}

fn applies(on: On, dialect: Dialect) -> bool {
    matches!(
        (on, dialect),
        (On::Both, _) | (On::Sqlite, Dialect::Sqlite) | (On::Postgres, Dialect::Postgres)
    )
}

/// Run-time attacks: one statement each.
#[rustfmt::skip]
const RUNTIME_ATTACKS: &[(On, &str)] = &[
    (On::Both, "SELECT email, password_hash FROM users"),
    (On::Sqlite, "SELECT email, password_hash FROM 'users'"),
    (On::Both, "SELECT email FROM \"users\""),
    (On::Sqlite, "SELECT email FROM `users`"),
    (On::Sqlite, "SELECT email FROM [users]"),
    (On::Sqlite, "SELECT email FROM (users)"),
    (On::Sqlite, "SELECT n.id FROM intruder_notes n JOIN (users) u ON 1 = 1"),
    (On::Both, "SELECT n.id, u.email FROM intruder_notes n, users u"),
    (On::Both, "SELECT email, count(*) OVER users FROM users WINDOW users AS (ORDER BY id)"),
    (On::Sqlite, "WITH x AS (SELECT * FROM 'users') SELECT email FROM x"),
    (On::Sqlite, "WITH users AS (SELECT * FROM main.users) SELECT email FROM users"),
    (On::Postgres, "WITH users AS (SELECT * FROM public.users) SELECT email FROM users"),
    (On::Sqlite, "SELECT email FROM main.users"),
    (On::Sqlite, "SELECT email FROM \"main\".\"users\""),
    (On::Postgres, "SELECT email FROM public.users"),
    (On::Postgres, "SELECT email FROM \"public\".\"users\""),
    (On::Both, "SELECT email FROM UsErS"),
    (On::Both, "SELECT email FROM users/**/"),
    (On::Both, "SELECT email FROM/**/users"),
    (On::Both, "SELECT email FROM users -- intruder_notes"),
    (On::Both, "SELECT (SELECT password_hash FROM users LIMIT 1) AS h"),
    // The bootstrap admin's proof is keyed with the signing secret: not to
    // be read, replaced or removed.
    (On::Both, "SELECT email, proof FROM bootstrap_admin_proofs"),
    (On::Both, "UPDATE bootstrap_admin_proofs SET proof = 'forged'"),
    (On::Sqlite, "DELETE FROM 'bootstrap_admin_proofs'"),
    (On::Both, "SELECT id FROM intruder_notes WHERE id IN (SELECT id FROM users)"),
    (On::Both, "SELECT id FROM intruder_notes WHERE EXISTS (SELECT 1 FROM users)"),
    (On::Both, "SELECT id, body FROM intruder_notes UNION ALL SELECT id, email FROM users"),
    (On::Both, "SELECT * FROM (SELECT email FROM users) AS s"),
    (On::Both, "SELECT email FROM users AS intruder_notes"),
    (On::Both, "SELECT count(*) AS n FROM users"),
    (On::Both, "SELECT 1 AS one FROM users LIMIT 1"),
    (On::Both, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2) \
         SELECT email FROM users, r"),
    (On::Both, "UPDATE users SET full_name = 'pwned' WHERE id = 1"),
    (On::Sqlite, "UPDATE 'users' SET full_name = 'pwned'"),
    (On::Both, "UPDATE \"users\" SET full_name = 'pwned'"),
    (On::Sqlite, "DELETE FROM 'refresh_tokens'"),
    (On::Both, "DELETE FROM refresh_tokens"),
    (On::Both, "DELETE FROM user_roles"),
    (On::Both, "INSERT INTO users (email, password_hash, full_name, created_at, updated_at) \
         VALUES ('evil@x.test', 'h', 'evil', 'now', 'now')"),
    (On::Sqlite, "REPLACE INTO users (email, password_hash, created_at, updated_at) \
         VALUES ('evil2@x.test', 'h', 'now', 'now')"),
    (On::Both, "INSERT INTO intruder_notes (body) SELECT email FROM users"),
    (On::Sqlite, "INSERT INTO intruder_notes (body) SELECT password_hash FROM 'users'"),
    (On::Both, "UPDATE intruder_notes SET body = (SELECT password_hash FROM users LIMIT 1)"),
    (On::Both, "DELETE FROM intruder_notes WHERE body IN (SELECT email FROM users)"),
    (On::Both, "UPDATE roles SET name = 'x' WHERE name = 'admin'"),
    (On::Both, "INSERT INTO role_permissions (role_id, permission_id) SELECT r.id, p.id \
         FROM roles r, permissions p WHERE r.name = 'user' \
         AND p.id NOT IN (SELECT permission_id FROM role_permissions WHERE role_id = r.id)"),
    // On PostgreSQL the plugin sees its own ledger rows (checked below).
    (On::Sqlite, "SELECT owner, checksum FROM xcore_migrations"),
    (On::Both, "DELETE FROM xcore_migrations"),
    (On::Both, "SELECT id, enabled FROM plugins"),
    (On::Both, "UPDATE depended_items SET name = 'x'"),
    (On::Both, "DELETE FROM depended_items"),
    (On::Both, "INSERT INTO depended_items (name) VALUES ('x')"),
    (On::Sqlite, "SELECT name, sql FROM sqlite_master"),
    (On::Sqlite, "SELECT sql FROM sqlite_schema"),
    (On::Sqlite, "SELECT name FROM pragma_table_info('users')"),
    (On::Sqlite, "PRAGMA table_info(users)"),
    (On::Sqlite, "PRAGMA writable_schema = ON"),
    (On::Sqlite, "PRAGMA foreign_keys = OFF"),
    (On::Sqlite, "ATTACH DATABASE ':memory:' AS other"),
    (On::Sqlite, "CREATE TEMP TABLE users (id INTEGER)"),
    (On::Sqlite, "CREATE TEMP VIEW intruder_v AS SELECT 1 AS x"),
    (On::Both, "CREATE TABLE intruder_copy AS SELECT * FROM users"),
    (On::Both, "CREATE TABLE intruder_later (id INTEGER)"),
    (On::Both, "CREATE VIEW intruder_view AS SELECT 1 AS x"),
    // Schema changes to its own tables at run time: SQLite's authorizer
    // keeps them to migrations; on PostgreSQL an owner may change what it
    // owns (creating is refused, there is no CREATE on the schema).
    (On::Sqlite, "DROP TABLE intruder_notes"),
    (On::Sqlite, "ALTER TABLE intruder_notes ADD COLUMN extra TEXT"),
    (On::Postgres, "TABLE users"),
    (On::Postgres, "SELECT email FROM ONLY users"),
    (On::Postgres, "SELECT email FROM users FOR UPDATE"),
    (On::Postgres, "SELECT email FROM users TABLESAMPLE SYSTEM (100)"),
    (On::Postgres, "SELECT query_to_xml('SELECT email, password_hash FROM users', true, true, '')::text"),
    (On::Postgres, "SELECT usename::text, passwd::text FROM pg_shadow"),
    (On::Postgres, "SELECT rolname::text, rolpassword::text FROM pg_authid"),
    (On::Postgres, "SELECT pg_read_file('PG_VERSION')"),
    (On::Postgres, "CREATE FUNCTION intruder_f() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
    (On::Postgres, "GRANT SELECT ON users TO PUBLIC"),
    (On::Postgres, "ALTER TABLE users OWNER TO CURRENT_USER"),
];

/// Attacks that try to leave the plugin's session first, then read: one
/// transaction each.
#[rustfmt::skip]
const ESCAPES: &[(On, &[&str])] = &[
    (On::Postgres, &["SET ROLE postgres", "SELECT email FROM users"]),
    (On::Postgres, &["RESET ROLE", "SELECT email FROM users"]),
    (On::Postgres, &["SELECT set_config('role', 'postgres', false)", "SELECT email FROM users"]),
    (On::Postgres, &["SET SESSION AUTHORIZATION postgres", "SELECT email FROM users"]),
    (On::Sqlite, &["PRAGMA writable_schema = ON", "SELECT email FROM users"]),
];

/// Migration attacks: a whole script each.
#[rustfmt::skip]
const MIGRATION_ATTACKS: &[(On, &str)] = &[
    (On::Both, "UPDATE users SET full_name = 'pwned' WHERE id = 1"),
    (On::Sqlite, "UPDATE 'users' SET full_name = 'pwned'"),
    (On::Both, "DROP TABLE users"),
    (On::Both, "DELETE FROM refresh_tokens"),
    (On::Sqlite, "CREATE TABLE intruder_x AS SELECT * FROM (users)"),
    (On::Sqlite, "CREATE TABLE intruder_x AS SELECT * FROM 'users'"),
    (On::Both, "CREATE TABLE intruder_x AS SELECT * FROM users"),
    (On::Both, "CREATE TABLE intruder_ok (id INTEGER); UPDATE users SET full_name = 'pwned'"),
    (On::Both, "ALTER TABLE users ADD COLUMN intruder TEXT"),
    (On::Both, "ALTER TABLE users RENAME TO intruder_users"),
    (On::Both, "ALTER TABLE intruder_notes RENAME TO sessions"),
    (On::Both, "CREATE TABLE sessions (id INTEGER)"),
    // Cross-plugin and host foreign keys: a cascade or a restriction would
    // reach across the boundary from the other side.
    (On::Both, "CREATE TABLE intruder_refs (id INTEGER PRIMARY KEY, \
         item INTEGER REFERENCES depended_items (id) ON DELETE CASCADE)"),
    (On::Both, "CREATE TABLE intruder_owners (id INTEGER PRIMARY KEY, \
         user_id INTEGER REFERENCES users (id) ON DELETE RESTRICT)"),
    (On::Both, "CREATE INDEX intruder_idx ON users (email)"),
    (On::Both, "CREATE INDEX users_lookalike_idx ON intruder_notes (body)"),
    (On::Both, "CREATE VIEW users_view AS SELECT 1 AS x"),
    (On::Sqlite, "CREATE TRIGGER intruder_trg AFTER INSERT ON users BEGIN DELETE FROM intruder_notes; END"),
    (On::Sqlite, "CREATE VIRTUAL TABLE intruder_vocab USING fts5vocab(intruder_notes, 'row')"),
    (On::Sqlite, "PRAGMA writable_schema = ON"),
    (On::Sqlite, "ATTACH DATABASE ':memory:' AS other"),
    (On::Sqlite, "CREATE TEMP TABLE intruder_t (id INTEGER)"),
    (On::Both, "INSERT INTO xcore_migrations (owner, version, name, checksum, applied_at) \
         VALUES ('core', 99, 'x', 'x', 'x')"),
    (On::Both, "DELETE FROM xcore_migrations WHERE owner = 'core'"),
    (On::Both, "DELETE FROM permissions"),
    (On::Postgres, "CREATE FUNCTION intruder_f() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
    (On::Postgres, "CREATE FUNCTION lower(integer) RETURNS text LANGUAGE sql AS 'SELECT ''x'''"),
    (On::Postgres, "CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq)"),
    (On::Postgres, "CREATE TYPE mood AS ENUM ('a', 'b')"),
    (On::Postgres, "SET ROLE postgres; UPDATE users SET full_name = 'pwned'"),
    (On::Postgres, "RESET ROLE; UPDATE users SET full_name = 'pwned'"),
    (On::Postgres, "SELECT set_config('role', 'postgres', false); UPDATE users SET full_name = 'pwned'"),
    (On::Postgres, "CREATE SCHEMA intruder"),
    (On::Postgres, "GRANT ALL ON users TO PUBLIC"),
    (On::Postgres, "ALTER ROLE CURRENT_USER SUPERUSER"),
    (On::Postgres, "CREATE TABLE public.users_shadow (id INTEGER)"),
];

/// Attacks a migration may create but that must not work when used: a
/// view or trigger whose body reaches out, and the run-time statement that
/// would use it.
const DEFERRED_ATTACKS: &[(On, &str, &[&str])] = &[
    (
        On::Both,
        "CREATE VIEW intruder_mirror AS SELECT email, password_hash FROM users",
        &["SELECT * FROM intruder_mirror"],
    ),
    (
        On::Sqlite,
        "CREATE TRIGGER intruder_hook AFTER INSERT ON intruder_notes \
         BEGIN UPDATE users SET full_name = 'pwned'; END",
        &["INSERT INTO intruder_notes (body) VALUES ('fire')"],
    ),
    (
        On::Sqlite,
        "CREATE VIRTUAL TABLE intruder_fts USING fts5(email, content='users', content_rowid='id')",
        &[
            "INSERT INTO intruder_fts (intruder_fts) VALUES ('rebuild')",
            "SELECT email FROM intruder_fts",
        ],
    ),
];

fn statement(sql: &str) -> Statement {
    Statement {
        sql: sql.to_string(),
        params: Vec::new(),
    }
}

/// What an attacker would love to change, read on the host's connection.
async fn host_fingerprint(db: &Database) -> Value {
    let users = sqlx::query("SELECT id, email, full_name, password_hash FROM users ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("users");
    let users: Vec<Value> = users
        .iter()
        .map(|row| {
            json!([
                row.get::<i64, _>("id"),
                row.get::<String, _>("email"),
                row.get::<Option<String>, _>("full_name"),
                row.get::<String, _>("password_hash"),
            ])
        })
        .collect();
    let count = |table: &'static str| async move {
        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(db.pool())
            .await
            .expect("count")
    };
    json!({
        "users": users,
        "refresh_tokens": count("refresh_tokens").await,
        "user_roles": count("user_roles").await,
        "role_permissions": count("role_permissions").await,
        "permissions": count("permissions").await,
        "roles": count("roles").await,
        "xcore_migrations": sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM xcore_migrations WHERE owner <> 'plugin:intruder'",
        )
        .fetch_one(db.pool())
        .await
        .expect("count"),
        "depended_items": count("depended_items").await,
    })
}

/// Runs `sql` on the host's own connection in a transaction rolled back:
/// true when the database accepts it there.
async fn works_unconfined(db: &Database, sql: &str) -> bool {
    if sql.starts_with("ATTACH") {
        // SQLite refuses ATTACH inside a transaction.
        let mut connection = db.pool().acquire().await.expect("connection");
        let worked = (&mut *connection).execute(sql).await.is_ok();
        let _ = (&mut *connection).execute("DETACH DATABASE other").await;
        return worked;
    }
    let mut tx = db.pool().begin().await.expect("begin");
    let worked = (&mut *tx).execute(sql).await.is_ok();
    tx.rollback().await.expect("rollback");
    worked
}

fn migration(version: i64, sql: &str) -> [Migration<'_>; 1] {
    [Migration {
        version,
        name: "attack",
        sqlite: sql,
        postgres: sql,
    }]
}

/// The plugin under attack (`intruder`, reading `depended`), with a
/// benign table of its own.
async fn intruder(db: &Database) -> PluginDatabase {
    let depended = PluginDatabase::open(
        db,
        Namespace::new("depended", Vec::new()),
        common::JWT_SECRET,
    )
    .await
    .expect("depended pool");
    depended
        .migrate(
            db,
            &migration(
                1,
                match db.dialect() {
                    Dialect::Sqlite => {
                        "CREATE TABLE depended_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
                         INSERT INTO depended_items (name) VALUES ('shared');"
                    }
                    Dialect::Postgres => {
                        "CREATE TABLE depended_items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL); \
                         INSERT INTO depended_items (name) VALUES ('shared');"
                    }
                },
            ),
        )
        .await
        .expect("depended migrates");
    let sql = PluginDatabase::open(
        db,
        Namespace::new("intruder", vec!["depended".into()]),
        common::JWT_SECRET,
    )
    .await
    .expect("intruder pool");
    let notes = match db.dialect() {
        Dialect::Sqlite => "CREATE TABLE intruder_notes (id INTEGER PRIMARY KEY, body TEXT)",
        Dialect::Postgres => "CREATE TABLE intruder_notes (id BIGSERIAL PRIMARY KEY, body TEXT)",
    };
    sql.migrate(db, &migration(1, notes))
        .await
        .expect("benign migration");
    sql
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_every_runtime_bypass() {
    let server = TestServer::start().await;
    let db = &server.state.db;
    let sql = intruder(db).await;
    let before = host_fingerprint(db).await;

    // What the plugin may do still works.
    sql.execute(&statement(
        "INSERT INTO intruder_notes (body) VALUES ('mine')",
    ))
    .await
    .expect("write its own table");
    let rows = sql
        .query(&statement("SELECT name FROM depended_items"))
        .await
        .expect("read a dependency");
    assert_eq!(rows, json!([{"name": "shared"}]));

    let mut tried = 0;
    for (on, attack) in RUNTIME_ATTACKS {
        if !applies(*on, db.dialect()) {
            continue;
        }
        assert!(
            works_unconfined(db, attack).await,
            "not a real attack (the host's own connection refuses it too): {attack}"
        );
        let outcome = sql.query(&statement(attack)).await;
        assert!(
            outcome.is_err(),
            "confinement let through: {attack} -> {outcome:?}"
        );
        tried += 1;
    }
    for (on, steps) in ESCAPES {
        if !applies(*on, db.dialect()) {
            continue;
        }
        let statements: Vec<Statement> = steps.iter().map(|sql| statement(sql)).collect();
        let outcome = sql.transaction(&statements).await;
        assert!(outcome.is_err(), "escape worked: {steps:?} -> {outcome:?}");
        tried += 1;
    }
    // A refused statement in a transaction undoes the whole transaction.
    let outcome = sql
        .transaction(&[
            statement("INSERT INTO intruder_notes (body) VALUES ('half')"),
            statement("UPDATE users SET full_name = 'pwned'"),
        ])
        .await;
    assert!(outcome.is_err());
    let half = sql
        .query(&statement(
            "SELECT COUNT(*) AS n FROM intruder_notes WHERE body = 'half'",
        ))
        .await
        .expect("count");
    assert_eq!(half, json!([{"n": 0}]), "no partial write");
    assert!(
        tried >= 50,
        "the corpus has {tried} attacks on this database"
    );
    if db.dialect() == Dialect::Postgres {
        // Row-level security: its own migrations, no one else's.
        let ledger = sql
            .query(&statement("SELECT DISTINCT owner FROM xcore_migrations"))
            .await
            .expect("own ledger rows");
        assert_eq!(ledger, json!([{"owner": "plugin:intruder"}]));
    }

    // Refusals are typed, and their reason names the table.
    let refused = sql
        .query(&statement("SELECT email FROM 'users'"))
        .await
        .expect_err("refused");
    match db.dialect() {
        Dialect::Sqlite => assert_eq!(
            refused,
            HostError::Refused {
                reason: "table users is outside plugin intruder's tables".into()
            }
        ),
        // A syntax error there: quotes make a string, not a name.
        Dialect::Postgres => {}
    }
    let refused = sql
        .query(&statement("SELECT email FROM users"))
        .await
        .expect_err("refused");
    assert!(
        matches!(&refused, HostError::Refused { reason } if reason.contains("users")),
        "{refused:?}"
    );

    assert_eq!(
        host_fingerprint(db).await,
        before,
        "the host's data changed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_every_migration_bypass() {
    let server = TestServer::start().await;
    let db = &server.state.db;
    let sql = intruder(db).await;
    let before = host_fingerprint(db).await;
    let objects = || async {
        let query = match db.dialect() {
            Dialect::Sqlite => "SELECT name FROM sqlite_master ORDER BY name",
            Dialect::Postgres => {
                "SELECT relname::text AS name FROM pg_class c JOIN pg_namespace n \
                 ON n.oid = c.relnamespace WHERE n.nspname = current_schema() ORDER BY 1"
            }
        };
        sqlx::query_scalar::<_, String>(query)
            .fetch_all(db.pool())
            .await
            .expect("objects")
    };
    let schema_before = objects().await;

    let mut tried = 0;
    for (index, (on, attack)) in MIGRATION_ATTACKS.iter().enumerate() {
        if !applies(*on, db.dialect()) {
            continue;
        }
        let version = 100 + i64::try_from(index).expect("index");
        let outcome = sql.migrate(db, &migration(version, attack)).await;
        assert!(outcome.is_err(), "migration let through: {attack}");
        tried += 1;
    }
    assert!(tried >= 20, "{tried} migration attacks");
    assert_eq!(
        objects().await,
        schema_before,
        "a refused migration left something"
    );
    // No key from the intruder holds the dependency's rows: it still
    // deletes its own freely.
    let depended = PluginDatabase::open(
        db,
        Namespace::new("depended", Vec::new()),
        common::JWT_SECRET,
    )
    .await
    .expect("depended pool");
    depended
        .transaction(&[
            statement("DELETE FROM depended_items"),
            statement("INSERT INTO depended_items (name) VALUES ('shared')"),
        ])
        .await
        .expect("the dependency changes its own rows");

    // Created, perhaps, but useless: their bodies are checked when used.
    for (index, (on, create, attacks)) in DEFERRED_ATTACKS.iter().enumerate() {
        if !applies(*on, db.dialect()) {
            continue;
        }
        let version = 500 + i64::try_from(index).expect("index");
        if sql.migrate(db, &migration(version, create)).await.is_ok() {
            for attack in *attacks {
                let outcome = sql.query(&statement(attack)).await;
                assert!(outcome.is_err(), "{create} then {attack} -> {outcome:?}");
            }
        }
    }
    // And a legitimate migration still works, FTS included on SQLite.
    let legit = match db.dialect() {
        Dialect::Sqlite => {
            "CREATE TABLE intruder_items (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT); \
             CREATE INDEX intruder_items_title ON intruder_items (title); \
             CREATE VIRTUAL TABLE intruder_search USING fts5(title, content='intruder_items', content_rowid='id'); \
             CREATE TRIGGER intruder_items_ai AFTER INSERT ON intruder_items BEGIN \
               INSERT INTO intruder_search (rowid, title) VALUES (new.id, new.title); END; \
             ALTER TABLE intruder_items ADD COLUMN note TEXT;"
        }
        Dialect::Postgres => {
            "CREATE TABLE intruder_items (id BIGSERIAL PRIMARY KEY, title TEXT); \
             CREATE INDEX intruder_items_title ON intruder_items (title); \
             ALTER TABLE intruder_items ADD COLUMN note TEXT;"
        }
    };
    sql.migrate(db, &migration(900, legit))
        .await
        .expect("a legitimate migration");
    sql.execute(&statement(
        "INSERT INTO intruder_items (title) VALUES ('red chair')",
    ))
    .await
    .expect("insert");
    if db.dialect() == Dialect::Sqlite {
        let found = sql
            .query(&statement(
                "SELECT rowid AS id FROM intruder_search WHERE intruder_search MATCH 'chair'",
            ))
            .await
            .expect("full-text search");
        assert_eq!(found, json!([{"id": 1}]));
    }
    assert_eq!(
        host_fingerprint(db).await,
        before,
        "the host's data changed"
    );
    server.stop().await;
}
