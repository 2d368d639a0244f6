//! The `api_keys` table: create, list, revoke, and the one-row read the
//! authentication cache fills itself with.

use std::collections::BTreeSet;

use sqlx::{any::AnyRow, Any, Row, Transaction};

use crate::db::Database;

/// What a request with a key is decided on, as the cache holds it.
#[derive(Debug)]
pub struct CachedKey {
    /// Row id (what `DELETE /auth/api-keys/{id}` names).
    pub id: i64,
    /// The user who created the key.
    pub owner: i64,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    /// Permission names the key was given.
    pub scopes: BTreeSet<String>,
    /// Unix seconds after which the key is refused; `None`: never.
    pub expires_at: Option<i64>,
    /// Whether the owner revoked it.
    pub revoked: bool,
}

/// One key as its owner sees it: never the secret, nor its hash.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Row id.
    pub id: i64,
    /// The owner's label.
    pub name: String,
    /// The public start of the key (`xk_<prefix>`), to tell keys apart.
    pub prefix: String,
    /// Permission names the key was given (its requests hold those of them
    /// the owner still holds).
    pub permissions: Vec<String>,
    /// RFC 3339; `null`: never expires.
    pub expires_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, to within the usage flush interval; `null`: never used.
    pub last_used_at: Option<String>,
    /// RFC 3339; `null`: the key works.
    pub revoked_at: Option<String>,
}

/// The row of a new key (its secret already hashed).
pub struct NewKey<'a> {
    /// The creator.
    pub owner: i64,
    /// The label.
    pub name: &'a str,
    /// The lookup part of the key.
    pub prefix: &'a str,
    /// SHA-256 of the secret, hex.
    pub secret_hash: &'a str,
    /// Permission names.
    pub scopes: &'a BTreeSet<String>,
    /// RFC 3339, or none.
    pub expires_at: Option<&'a str>,
}

const VIEW_COLUMNS: &str =
    "id, name, prefix, scopes, expires_at, created_at, last_used_at, revoked_at";

fn scopes_of(row: &AnyRow) -> Result<BTreeSet<String>, sqlx::Error> {
    let text: String = row.try_get("scopes")?;
    serde_json::from_str(&text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

fn view(row: &AnyRow) -> Result<KeyView, sqlx::Error> {
    let prefix: String = row.try_get("prefix")?;
    Ok(KeyView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: format!("{}{prefix}", super::KEY_START),
        permissions: scopes_of(row)?.into_iter().collect(),
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Inserts a key inside `tx`; returns it as its owner will see it.
pub async fn insert(
    tx: &mut Transaction<'static, Any>,
    key: &NewKey<'_>,
) -> Result<KeyView, sqlx::Error> {
    let scopes = serde_json::to_string(key.scopes).unwrap_or_else(|_| "[]".into());
    let row = sqlx::query(&format!(
        "INSERT INTO api_keys (user_id, name, prefix, secret_hash, scopes, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {VIEW_COLUMNS}"
    ))
    .bind(key.owner)
    .bind(key.name)
    .bind(key.prefix)
    .bind(key.secret_hash)
    .bind(scopes)
    .bind(key.expires_at)
    .bind(crate::db::timestamp::now())
    .fetch_one(&mut **tx)
    .await?;
    view(&row)
}

/// Every key of `owner`, newest first.
pub async fn list(db: &Database, owner: i64) -> Result<Vec<KeyView>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {VIEW_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY id DESC"
    ))
    .bind(owner)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(view).collect()
}

/// Marks the key `id` of `owner` revoked inside `tx` (a key already revoked
/// keeps its first revocation time). Returns its prefix, or `None` when
/// `owner` has no such key.
pub async fn revoke(
    tx: &mut Transaction<'static, Any>,
    owner: i64,
    id: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1)
         WHERE id = $2 AND user_id = $3 RETURNING prefix",
    )
    .bind(crate::db::timestamp::now())
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| row.try_get("prefix")).transpose()
}

/// The key with `prefix`, for the cache; `None` if there is none.
pub async fn load(db: &Database, prefix: &str) -> Result<Option<CachedKey>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT id, user_id, secret_hash, scopes, expires_at, revoked_at
         FROM api_keys WHERE prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let hash: String = row.try_get("secret_hash")?;
    let mut digest = [0u8; 32];
    // An unreadable hash matches no secret: all zeros is no SHA-256 output
    // anyone can find a preimage for.
    if hash.len() == 64 {
        for (index, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hash[index * 2..index * 2 + 2], 16).unwrap_or(0);
        }
    }
    let expires_at: Option<String> = row.try_get("expires_at")?;
    Ok(Some(CachedKey {
        id: row.try_get("id")?,
        owner: row.try_get("user_id")?,
        digest,
        scopes: scopes_of(&row)?,
        expires_at: expires_at.map(|at| {
            chrono::DateTime::parse_from_rfc3339(&at)
                // An unreadable expiry: treat the key as expired.
                .map_or(i64::MIN, |at| at.timestamp())
        }),
        revoked: row.try_get::<Option<String>, _>("revoked_at")?.is_some(),
    }))
}

/// Writes `last_used_at` for each `(key id, time)`; one statement per key,
/// in one transaction.
pub async fn write_last_used(db: &Database, used: &[(i64, String)]) -> Result<(), sqlx::Error> {
    if used.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    for (id, at) in used {
        // A later write from another instance wins: the column only moves
        // forward (same-width RFC 3339 text orders as time).
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
