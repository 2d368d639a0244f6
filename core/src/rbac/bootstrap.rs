//! The bootstrap administrator (`XCORE_ADMIN_EMAIL`/`XCORE_ADMIN_PASSWORD`
//! at start, `xcore admin create-user` by hand).
//!
//! A start checks that the configured password still verifies against the
//! stored hash, and the argon2 run that takes was a third of a restart's
//! CPU. Once it has verified, a keyed proof of it is kept (see migration
//! 0009): a start with the same email, stored hash and password recomputes
//! the proof and needs no argon2 run.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;

use crate::{
    auth::{cache::AuthCache, changes::Change, password::PasswordHasher, users},
    db::{timestamp, Database},
    error::ApiError,
};

use crate::auth::roles::ADMIN_ROLE;

/// The proof that `password` verifies against `stored_hash` for `email`,
/// keyed with `key` (the signing secret). Each field is length-prefixed,
/// so no two different triples hash the same bytes.
fn proof_mac(key: &[u8], email: &str, stored_hash: &str, password: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"xcore bootstrap admin proof v1");
    for field in [email, stored_hash, password] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    mac
}

fn proof(key: &[u8], email: &str, stored_hash: &str, password: &str) -> String {
    let tag = proof_mac(key, email, stored_hash, password).finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.into_bytes())
}

/// Whether `recorded` proves the check already (compared in constant time).
fn proof_holds(
    key: &[u8],
    email: &str,
    stored_hash: &str,
    password: &str,
    recorded: Option<&str>,
) -> bool {
    let Some(tag) = recorded.and_then(|recorded| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(recorded)
            .ok()
    }) else {
        return false;
    };
    proof_mac(key, email, stored_hash, password)
        .verify_slice(&tag)
        .is_ok()
}

/// Makes sure `email` exists, is active, has the admin role and the given
/// password. The password is rewritten only when it no longer verifies, so
/// a restart does not end the admin's sessions. Safe when several instances
/// start at once: the insert yields to a concurrent one instead of failing.
/// `proof_key` keys the proof that spares a restart the argon2 check (the
/// signing secret: see the module's documentation).
pub async fn ensure_admin(
    db: &Database,
    auth: &AuthCache,
    passwords: &PasswordHasher,
    proof_key: &[u8],
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
    // On a restart the stored hash usually still verifies: the proof the
    // last start left says so without argon2; without it, checking is one
    // argon2 run, and hashing anew only when it does not (or on the first
    // start) saves a second one.
    let found: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT u.password_hash, p.proof FROM users u
         LEFT JOIN bootstrap_admin_proofs p ON p.email = u.email WHERE u.email = $1",
    )
    .bind(&email)
    .fetch_optional(db.pool())
    .await?;
    let stored = found.as_ref().map(|(hash, _)| hash.clone());
    let stored_verifies = match &found {
        Some((hash, recorded)) => {
            proof_holds(proof_key, &email, hash, password, recorded.as_deref())
                || passwords.verify(password, Some(hash)).await?.matched()
        }
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
            let created = inserted.map(|row| (row, hash.clone()));
            fresh_hash = Some(hash);
            created
        }
    };
    // The account's id and the hash it holds once this transaction commits.
    let (user_id, hash_now): (i64, String) = match created {
        Some((row, hash)) => (row.try_get("id")?, hash),
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
            let hash_now = if verifies {
                now_stored
            } else {
                let hash = match fresh_hash.take() {
                    Some(hash) => hash,
                    None => passwords.hash(password).await?,
                };
                users::set_password(&mut tx, id, &hash)
                    .await
                    .map_err(api_to_anyhow)?;
                hash
            };
            sqlx::query("UPDATE users SET is_active = TRUE WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            (id, hash_now)
        }
    };
    // The password verifies against `hash_now` (hashed from it here, or
    // checked): the next start with the same three can skip the check.
    sqlx::query(
        "INSERT INTO bootstrap_admin_proofs (email, proof) VALUES ($1, $2)
         ON CONFLICT (email) DO UPDATE SET proof = excluded.proof",
    )
    .bind(&email)
    .bind(proof(proof_key, &email, &hash_now, password))
    .execute(&mut *tx)
    .await?;
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
