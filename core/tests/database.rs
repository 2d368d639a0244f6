//! The database layer on the real backends: SQLite file creation, WAL and
//! foreign keys; the migration ledger; refusing a changed migration; several
//! instances starting at once on one database.

mod common;

use common::{test_config, TestDatabase, TestServer};
use sqlx::Row;
use xcore::{db::Database, AppState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_is_created_with_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("nested/deeper/xcore.db");
    let mut config = test_config(&format!("sqlite://{}", path.display()));
    config.database.max_connections = 2;
    let db = Database::connect(&config.database).await.expect("connect");
    assert!(path.exists(), "the file and its directories are created");
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(db.pool())
        .await
        .expect("pragma")
        .get(0);
    assert_eq!(mode, "wal");
    // Every pooled connection enforces foreign keys, not just the first.
    for _ in 0..3 {
        let on: i64 = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(db.pool())
            .await
            .expect("pragma")
            .get(0);
        assert_eq!(on, 1);
    }
    xcore::db::migrate::apply(&db, "core", xcore::db::migrate::CORE_MIGRATIONS)
        .await
        .expect("migrate");
    let orphan = sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES (999, 999)")
        .execute(db.pool())
        .await;
    assert!(orphan.is_err(), "foreign keys are enforced");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_and_a_changed_one_is_refused() {
    let server = TestServer::start().await;
    let row = sqlx::query("SELECT COUNT(*) AS n FROM xcore_migrations WHERE owner = 'core'")
        .fetch_one(server.state.db.pool())
        .await
        .expect("ledger");
    assert_eq!(
        row.get::<i64, _>("n"),
        xcore::db::migrate::CORE_MIGRATIONS.len() as i64
    );
    sqlx::query(
        "UPDATE xcore_migrations SET checksum = 'edited' WHERE owner = 'core' AND version = 1",
    )
    .execute(server.state.db.pool())
    .await
    .expect("tamper");
    let db = server.stop().await;
    let error = AppState::build(test_config(&db.url))
        .await
        .expect_err("refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("was changed after it was applied"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_on_one_database_migrate_once() {
    let db = TestDatabase::new().await;
    // Three start-ups interleaved on one task: each await yields to the
    // others, so their migrations and seeding race at the database.
    let (a, b, c) = tokio::join!(
        AppState::build(test_config(&db.url)),
        AppState::build(test_config(&db.url)),
        AppState::build(test_config(&db.url)),
    );
    let pools: Vec<_> = [a, b, c]
        .into_iter()
        .map(|state| state.expect("every instance starts").db.clone())
        .collect();
    let row = sqlx::query("SELECT COUNT(*) AS n FROM roles")
        .fetch_one(pools[0].pool())
        .await
        .expect("roles");
    assert_eq!(
        row.get::<i64, _>("n"),
        2,
        "built-in roles exist exactly once"
    );
    let admins = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(pools[0].pool())
        .await
        .expect("users");
    assert_eq!(admins.get::<i64, _>("n"), 1, "one bootstrap admin");
    for pool in pools {
        pool.close().await;
    }
}
