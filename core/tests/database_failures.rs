//! Database failures, reproduced on a real SQLite file (a full disk, a held
//! write lock, a failed COMMIT): the host must come back by itself once the
//! cause is gone, without a restart, and readiness must see what requests
//! see. SQLite-only: each test says so and returns on PostgreSQL.

mod common;

use common::{expect_status, test_config, TestDatabase, TestServer};
use reqwest::StatusCode;
use serde_json::json;
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

/// A small tmpfs mounted for one test, unmounted on drop. Mounting needs
/// root (CAP_SYS_ADMIN); where it is refused the test says so and skips.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if output.status.success() {
            Ok(Self { dir })
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the remaining space with one file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        // Big chunks until one no longer fits, then single bytes for the rest.
        while file.write_all(&[0u8; 64 * 1024]).is_ok() {}
        while file.write_all(&[0u8]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

// The incident end to end, on a real full disk: a server whose SQLite file
// lives on a small tmpfs. While the disk is full, writes fail and readiness
// says so; once space is freed, writes work again on the same process (and,
// with a single pooled connection, necessarily on a connection the failure
// did not poison).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_readiness_recover_after_the_disk_fills_up() {
    if std::env::var("XCORE_TEST_DATABASE_URL").is_ok_and(|url| url.starts_with("postgres")) {
        eprintln!("skipped: SQLite-only (the file system under the database file)");
        return;
    }
    let disk = match SmallDisk::mount("4m") {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipped: cannot mount a tmpfs to fill up ({reason})");
            return;
        }
    };
    let url = format!("sqlite://{}/xcore.db", disk.path().display());
    let server = TestServer::start_on(TestDatabase::at(url), |config| {
        config.database.max_connections = 1;
    })
    .await;
    let register = |n: usize| {
        server
            .post("/auth/register")
            .json(
                &json!({"email": format!("user{n}@example.com"), "password": "SecurePassword123!"}),
            )
            .send()
    };
    let ready = || server.get("/health/ready").send();
    expect_status(register(0).await.expect("send"), StatusCode::CREATED).await;
    expect_status(ready().await.expect("send"), StatusCode::OK).await;

    let filler = disk.fill();
    for n in 1..=3 {
        expect_status(
            register(n).await.expect("send"),
            StatusCode::INTERNAL_SERVER_ERROR,
        )
        .await;
    }
    let body = expect_status(
        ready().await.expect("send"),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["status"], "disk_full");
    assert_eq!(body["failed_check"], "disk_full");

    std::fs::remove_file(&filler).expect("free the space");
    expect_status(ready().await.expect("send"), StatusCode::OK).await;
    for n in 4..=6 {
        expect_status(register(n).await.expect("send"), StatusCode::CREATED).await;
    }
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(server.state.db.pool())
        .await
        .expect("count");
    assert_eq!(users, 5, "the admin, one user before and three after");
    server.stop().await;
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
