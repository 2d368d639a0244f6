//! The user account store, shared by `/auth`, `/admin/users`, the bootstrap
//! admin and `xcore admin create-user`.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::password::PasswordHasher;
use crate::{
    db::{timestamp, Database},
    error::{ApiError, FieldError},
};

/// Longest email accepted (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Longest display name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// What `/auth/register` and account creation return.
#[derive(Clone, Debug, Serialize)]
pub struct Account {
    /// Id.
    pub id: i64,
    /// Email (lower-case).
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Creation time.
    pub created_at: String,
}

/// What `/auth/me` returns.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Profile {
    /// Id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// Display name.
    pub full_name: Option<String>,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Role names.
    pub roles: Vec<String>,
    /// Permission names through the roles.
    pub permissions: Vec<String>,
    /// Last successful login.
    pub last_login: Option<String>,
    /// Creation time.
    pub created_at: String,
}

/// What a login needs to know about an account.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Id.
    pub id: i64,
    /// Stored argon2 hash.
    pub password_hash: String,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Current token version.
    pub token_version: i64,
}

/// Normalises an email for storage and lookup.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A syntactic check: one `@`, a non-empty local part, a dotted domain, no
/// whitespace. Deliverability is the reset flow's job, not the parser's.
pub fn check_email(field: &str, email: &str) -> Option<FieldError> {
    let valid = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    (!valid).then(|| FieldError::new(field, "invalid email address"))
}

/// Checks an optional display name.
pub fn check_name(field: &str, name: Option<&str>) -> Option<FieldError> {
    match name {
        Some(name) if name.chars().count() > MAX_NAME_LEN => Some(FieldError::new(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        )),
        _ => None,
    }
}

/// Creates an account with the given roles inside `tx`. A taken email is 409;
/// an unknown role name is 422.
pub async fn create(
    tx: &mut Transaction<'_, Any>,
    email: &str,
    full_name: Option<&str>,
    password_hash: &str,
    roles: &[&str],
) -> Result<Account, ApiError> {
    let now = timestamp::now();
    let row = sqlx::query(
        "INSERT INTO users (email, full_name, password_hash, is_active, token_version, created_at, updated_at)
         VALUES ($1, $2, $3, TRUE, 0, $4, $4) RETURNING id",
    )
    .bind(email)
    .bind(full_name)
    .bind(password_hash)
    .bind(&now)
    .fetch_one(&mut **tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ApiError::conflict("an account with this email already exists")
        }
        _ => error.into(),
    })?;
    let id: i64 = row.try_get("id")?;
    for role in roles {
        let granted = sqlx::query(
            "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = $2",
        )
        .bind(id)
        .bind(*role)
        .execute(&mut **tx)
        .await?;
        if granted.rows_affected() == 0 {
            return Err(ApiError::invalid_field(
                "role",
                format!("unknown role {role:?}"),
            ));
        }
    }
    Ok(Account {
        id,
        email: email.to_string(),
        full_name: full_name.map(str::to_string),
        is_active: true,
        created_at: now,
    })
}

/// Creates an account the one way every entry point does (self-registration,
/// `POST /admin/users`, `xcore admin create-user`): normalises the email and
/// name, reports every field problem at once (422), hashes the password and
/// inserts the account with `roles` in one write transaction (a taken email
/// is 409, an unknown role 422).
pub async fn create_account(
    db: &Database,
    passwords: &PasswordHasher,
    email: &str,
    password: &str,
    full_name: Option<&str>,
    roles: &[&str],
) -> Result<Account, ApiError> {
    let email = normalize_email(email);
    let full_name = full_name.map(str::trim).filter(|name| !name.is_empty());
    let problems: Vec<FieldError> = [
        check_email("email", &email),
        passwords.check_policy("password", password, Some(&email)),
        check_name("full_name", full_name),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let hash = passwords.hash(password).await?;
    let mut tx = db.begin_write().await?;
    let account = create(&mut tx, &email, full_name, &hash, roles).await?;
    tx.commit().await?;
    Ok(account)
}

/// Looks an account up by (normalised) email for a login.
pub async fn credentials_by_email(
    db: &Database,
    email: &str,
) -> Result<Option<Credentials>, ApiError> {
    let row = sqlx::query(
        "SELECT id, password_hash, is_active, token_version FROM users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| credentials_from_row(&row)).transpose()
}

/// Looks an account up by id.
pub async fn credentials_by_id(db: &Database, id: i64) -> Result<Option<Credentials>, ApiError> {
    let row =
        sqlx::query("SELECT id, password_hash, is_active, token_version FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    row.map(|row| credentials_from_row(&row)).transpose()
}

fn credentials_from_row(row: &sqlx::any::AnyRow) -> Result<Credentials, ApiError> {
    Ok(Credentials {
        id: row.try_get("id")?,
        password_hash: row.try_get("password_hash")?,
        is_active: crate::db::flag(row, "is_active")?,
        token_version: row.try_get("token_version")?,
    })
}

/// Role names of a user, sorted.
pub async fn role_names(db: &Database, user_id: i64) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query(
        "SELECT r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = $1 ORDER BY r.name",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| row.try_get("name").map_err(ApiError::from))
        .collect()
}

/// Replaces a password hash and bumps the token version, which invalidates
/// every access token issued before; returns the new version.
pub async fn set_password(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    password_hash: &str,
) -> Result<i64, ApiError> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, token_version = token_version + 1, updated_at = $2
         WHERE id = $3 RETURNING token_version",
    )
    .bind(password_hash)
    .bind(timestamp::now())
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::unauthenticated("account no longer exists"))?
    .try_get("token_version")
    .map_err(ApiError::from)
}

/// Bumps the token version without touching the password: every access
/// token issued before is refused from the next request on, permanently
/// (reactivating the account does not bring the old version back).
pub async fn invalidate_tokens(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Replaces a password hash without touching sessions: used to upgrade a
/// hash to new argon2 parameters after a successful login.
pub async fn rehash(db: &Database, user_id: i64, password_hash: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_syntactically() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(check_email("email", good).is_none(), "{good}");
        }
        for bad in [
            "", "plain", "@b.co", "a@b", "a@.b.co", "a@b..co", "a b@c.co", "a@b@c.co",
        ] {
            assert!(check_email("email", bad).is_some(), "{bad}");
        }
        assert_eq!(normalize_email("  Foo@Example.COM "), "foo@example.com");
    }
}
