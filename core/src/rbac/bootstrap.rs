//! The bootstrap administrator (`XCORE_ADMIN_EMAIL`/`XCORE_ADMIN_PASSWORD`
//! at start, `xcore admin create-user` by hand).

use sqlx::Row;

use crate::{
    auth::{cache::AuthCache, changes::Change, password::PasswordHasher, users},
    db::{timestamp, Database},
    error::ApiError,
};

use crate::auth::roles::ADMIN_ROLE;

/// Makes sure `email` exists, is active, has the admin role and the given
/// password. The password is rewritten only when it no longer verifies, so
/// a restart does not end the admin's sessions. Safe when several instances
/// start at once: the insert yields to a concurrent one instead of failing.
pub async fn ensure_admin(
    db: &Database,
    auth: &AuthCache,
    passwords: &PasswordHasher,
    email: &str,
    password: &str,
) -> anyhow::Result<()> {
    let email = users::normalize_email(email);
    if let Some(problem) = users::check_email("email", &email) {
        anyhow::bail!("bootstrap admin email: {}", problem.message);
    }
    if let Some(problem) = passwords.check_policy("password", password, Some(&email)) {
        anyhow::bail!("bootstrap admin password {}", problem.message);
    }
    // On a restart the stored hash usually still verifies: checking it is
    // one argon2 run, and hashing anew only when it does not (or on the
    // first start) saves a second one on every restart.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(db.pool())
            .await?;
    let stored_verifies = match &stored {
        Some(hash) => passwords.verify(password, Some(hash)).await?.matched(),
        None => false,
    };
    let mut fresh_hash = if stored_verifies {
        None
    } else {
        Some(passwords.hash(password).await?)
    };
    let now = timestamp::now();
    let mut tx = db.begin_write().await?;
    let present: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?;
    let created = match present {
        Some(_) => None,
        None => {
            // Gone since the check above, or never there: a new account.
            let hash = match fresh_hash.take() {
                Some(hash) => hash,
                None => passwords.hash(password).await?,
            };
            let inserted = sqlx::query(
                "INSERT INTO users (email, full_name, password_hash, is_active, token_version, created_at, updated_at)
                 VALUES ($1, 'Administrator', $2, TRUE, 0, $3, $3)
                 ON CONFLICT (email) DO NOTHING RETURNING id",
            )
            .bind(&email)
            .bind(&hash)
            .bind(&now)
            .fetch_optional(&mut *tx)
            .await?;
            // Another instance starting at once may have inserted it first:
            // then it is an existing account, below.
            fresh_hash = Some(hash);
            inserted
        }
    };
    let user_id: i64 = match created {
        Some(row) => row.try_get("id")?,
        None => {
            let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
                .bind(&email)
                .fetch_one(&mut *tx)
                .await?;
            let id: i64 = row.try_get("id")?;
            let now_stored: String = row.try_get("password_hash")?;
            // Changed since the check above: check what is there now.
            let verifies = if stored.as_deref() == Some(now_stored.as_str()) {
                stored_verifies
            } else {
                passwords
                    .verify(password, Some(&now_stored))
                    .await?
                    .matched()
            };
            if !verifies {
                let hash = match fresh_hash.take() {
                    Some(hash) => hash,
                    None => passwords.hash(password).await?,
                };
                users::set_password(&mut tx, id, &hash)
                    .await
                    .map_err(api_to_anyhow)?;
            }
            sqlx::query("UPDATE users SET is_active = TRUE WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            id
        }
    };
    sqlx::query(
        "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = $2
         ON CONFLICT (user_id, role_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(ADMIN_ROLE)
    .execute(&mut *tx)
    .await?;
    // Its password, active flag or roles may have changed.
    auth.commit(tx, &[Change::User(user_id)]).await?;
    tracing::info!(user_id, "bootstrap admin ready");
    Ok(())
}

/// Creates a user with one role from the command line; refuses an email
/// that is taken.
pub async fn create_user(
    db: &Database,
    passwords: &PasswordHasher,
    email: &str,
    password: &str,
    role: &str,
    full_name: Option<&str>,
) -> anyhow::Result<users::Account> {
    users::create_account(db, passwords, email, password, full_name, &[role])
        .await
        .map_err(api_to_anyhow)
}

/// Keeps the field details, which are the useful part on a command line.
fn api_to_anyhow(error: ApiError) -> anyhow::Error {
    let details: Vec<String> = error
        .details()
        .iter()
        .map(|detail| format!("{}: {}", detail.field, detail.message))
        .collect();
    if details.is_empty() {
        anyhow::anyhow!("{}", error.message())
    } else {
        anyhow::anyhow!("{}", details.join("; "))
    }
}
