//! Database failures, reproduced on a real SQLite file (a full disk, a held
//! write lock, a failed COMMIT): the host must come back by itself once the
//! cause is gone, without a restart. SQLite-only: each test says so and
//! returns on PostgreSQL.

mod common;

use common::test_config;
use sqlx::{Connection, Executor};
use xcore::db::{migrate, Database};

/// A migrated SQLite database whose pool holds a single connection, so the
/// connection a failure touched is the one the next request gets.
async fn single_connection_sqlite() -> Option<(tempfile::TempDir, Database)> {
    if std::env::var("XCORE_TEST_DATABASE_URL").is_ok_and(|url| url.starts_with("postgres")) {
        eprintln!("skipped: SQLite-only (the failure is SQLite's automatic rollback)");
        return None;
    }
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&format!("sqlite://{}/xcore.db", dir.path().display()));
    config.database.max_connections = 1;
    let db = Database::connect(&config.database).await.expect("connect");
    migrate::apply(&db, "core", migrate::CORE_MIGRATIONS)
        .await
        .expect("migrate");
    Some((dir, db))
}

async fn write_outbox(db: &Database, body: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO notification_outbox (channel, recipient, subject, body, created_at)
         VALUES ('email', 'x@example.com', 'probe', $1, '2030-01-01T00:00:00.000000Z')",
    )
    .bind(body)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

// The incident: the disk filled up, a write failed with SQLITE_FULL, SQLite
// rolled the whole transaction back on its own, the driver's ROLLBACK then
// failed ("no transaction is active") and the connection went back to the
// pool still counted inside a transaction. Every later write on it failed
// with "attempted to call begin_with at non-zero transaction depth" until a
// restart. `max_page_count` makes the file "full" at its current size, on
// the pool's only connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_recover_after_a_disk_full_error_without_a_restart() {
    let Some((_dir, db)) = single_connection_sqlite().await else {
        return;
    };
    write_outbox(&db, "fits").await.expect("a small write");
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(db.pool())
        .await
        .expect("page_count");
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(db.pool())
        .await
        .expect("cap the file");
    let full = write_outbox(&db, &"x".repeat(256 * 1024))
        .await
        .expect_err("the file is full");
    assert!(
        full.to_string().contains("full"),
        "a disk-full error: {full}"
    );
    // Space is back (on whichever connection the pool now holds).
    sqlx::query("PRAGMA max_page_count = 1073741823")
        .execute(db.pool())
        .await
        .expect("uncap the file");
    write_outbox(&db, &"y".repeat(256 * 1024))
        .await
        .expect("writes work again without a restart");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notification_outbox")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(rows, 2, "the failed write left nothing behind");
    db.close().await;
}

// A BEGIN that fails (the write lock held elsewhere past the busy timeout)
// must not cost later writes either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_recover_after_begin_fails_on_a_held_lock() {
    let Some((dir, db)) = single_connection_sqlite().await else {
        return;
    };
    let mut holder =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}/xcore.db", dir.path().display()))
            .await
            .expect("connect");
    holder.execute("BEGIN EXCLUSIVE").await.expect("lock");
    sqlx::query("PRAGMA busy_timeout = 100")
        .execute(db.pool())
        .await
        .expect("short wait");
    let locked = write_outbox(&db, "waits").await.expect_err("locked");
    assert!(locked.to_string().contains("locked"), "{locked}");
    holder.execute("ROLLBACK").await.expect("unlock");
    write_outbox(&db, "after").await.expect("writes work again");
    db.close().await;
}

// A COMMIT that fails (here a deferred foreign key) must not either: the
// transaction is rolled back and the connection is clean for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_recover_after_a_failed_commit() {
    let Some((_dir, db)) = single_connection_sqlite().await else {
        return;
    };
    let mut tx = db.begin_write().await.expect("begin");
    sqlx::query("PRAGMA defer_foreign_keys = ON")
        .execute(&mut *tx)
        .await
        .expect("defer");
    sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES (999, 999)")
        .execute(&mut *tx)
        .await
        .expect("deferred: accepted until COMMIT");
    let refused = tx.commit().await.expect_err("COMMIT fails");
    assert!(refused.to_string().contains("FOREIGN KEY"), "{refused}");
    write_outbox(&db, "after").await.expect("writes work again");
    let orphans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_roles WHERE user_id = 999")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(orphans, 0);
    db.close().await;
}
