//! Sessions: refresh-token families, rotation with reuse detection, and
//! access-token revocation.
//!
//! A login starts a family. Each refresh token is single-use: using it marks
//! it used and issues its successor in the same family. Presenting a token
//! that was already used means it was copied (RFC 6819 5.2.2.3, OAuth 2.1
//! 4.3.1): the whole family is revoked, so both the thief and the victim
//! must log in again.
//!
//! Revoking a family (reuse, logout) also records it in `revoked_sessions`,
//! which the access-token check reads: the family's access tokens die with
//! it instead of living out their lifetime. Ending every session of a user
//! (password change, deactivation) bumps the user's token version instead,
//! which kills the access tokens, and marks the refresh tokens revoked; each
//! refresh token also carries the version it was issued under, so one
//! minted concurrently with the bump is refused too.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::{
    cache::CachedUser,
    changes::Change,
    tokens::{random_token, token_hash, AccessClaims},
    AuthState,
};
use crate::{db::timestamp, error::ApiError};

/// The body of a successful login or refresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// Opaque, single-use refresh token.
    pub refresh_token: String,
}

/// Issues an access token and a refresh token in `family` (a new family when
/// `None`), inside `tx`.
pub async fn issue_pair(
    state: &AuthState,
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    token_version: i64,
    family: Option<&str>,
) -> Result<TokenPair, ApiError> {
    let family = family.map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string);
    let refresh_token = random_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, token_version, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash(&refresh_token))
    .bind(&family)
    .bind(user_id)
    .bind(token_version)
    .bind(timestamp::now())
    .bind(timestamp::in_seconds(
        state.config.auth.refresh_token_ttl_secs,
    ))
    .execute(&mut **tx)
    .await?;
    let roles = sqlx::query(
        "SELECT r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = $1",
    )
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| row.try_get("name"))
    .collect::<Result<Vec<String>, _>>()?;
    let (access_token, _) = state.tokens.issue(user_id, token_version, &family, roles)?;
    Ok(TokenPair {
        access_token,
        token_type: "bearer",
        expires_in: state.tokens.access_ttl_secs(),
        refresh_token,
    })
}

/// The body of `POST /auth/refresh`: a new pair for a refresh token, or a
/// renewed access token alone for a Bearer access token (seed 001's
/// answer, which has no refresh token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    /// The new JWT, in the same session.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires (less than the usual lifetime when the
    /// session ends sooner).
    pub expires_in: u64,
    /// The next single-use refresh token, when a refresh token was spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl From<TokenPair> for Refreshed {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
            refresh_token: Some(pair.refresh_token),
        }
    }
}

/// Renews an access token in its own session (seed 001: `POST
/// /auth/refresh` with `Authorization: Bearer <access token>`). `claims`
/// and `user` come from a full check of the presented token (signature,
/// expiry, revocation, token version, active account). The session's
/// refresh family bounds it: the new token never outlives the family's
/// newest unrevoked refresh token, and a revoked family (logout, reuse,
/// password change, deactivation) ends it.
pub async fn renew(
    state: &AuthState,
    claims: &AccessClaims,
    user: &CachedUser,
) -> Result<Refreshed, ApiError> {
    let row = sqlx::query(
        "SELECT MAX(expires_at) AS expires_at FROM refresh_tokens
         WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(&claims.sid)
    .bind(user.caller.user_id)
    .fetch_one(state.db.pool())
    .await?;
    let ends_at: Option<String> = row.try_get("expires_at")?;
    let ends_at = ends_at
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(&text).ok())
        .map(|instant| instant.timestamp())
        .ok_or_else(|| ApiError::unauthenticated("session ended; please log in again"))?;
    let now = chrono::Utc::now().timestamp();
    if ends_at <= now {
        return Err(ApiError::unauthenticated(
            "session expired; please log in again",
        ));
    }
    let (access_token, renewed) = state.tokens.issue_until(
        user.caller.user_id,
        user.token_version,
        &claims.sid,
        user.roles.iter().cloned().collect(),
        ends_at,
    )?;
    Ok(Refreshed {
        access_token,
        token_type: "bearer",
        expires_in: u64::try_from(renewed.exp - now).unwrap_or(0),
        refresh_token: None,
    })
}

/// Exchanges a refresh token for a new pair, enforcing single use.
pub async fn rotate(state: &AuthState, presented: &str) -> Result<TokenPair, ApiError> {
    let mut tx = state.db.begin_write().await?;
    let row = sqlx::query(
        "SELECT t.id, t.family_id, t.user_id, t.expires_at, t.used_at, t.revoked_at,
                t.token_version AS issued_version, u.is_active, u.token_version,
                (SELECT COUNT(*) FROM revoked_sessions s WHERE s.session_id = t.family_id)
                    AS session_revoked
         FROM refresh_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1",
    )
    .bind(token_hash(presented))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::unauthenticated("invalid refresh token"))?;
    let id: i64 = row.try_get("id")?;
    let family: String = row.try_get("family_id")?;
    let user_id: i64 = row.try_get("user_id")?;
    let now = timestamp::now();
    let already_used = row.try_get::<Option<String>, _>("used_at")?.is_some();
    // The family check catches a token minted into a family while that
    // family was being revoked (a rotation racing a logout).
    if row.try_get::<Option<String>, _>("revoked_at")?.is_some()
        || row.try_get::<i64, _>("session_revoked")? > 0
    {
        return Err(ApiError::unauthenticated("refresh token revoked"));
    }
    // The conditional update is what makes two concurrent uses of one token
    // impossible to both succeed: only one of them can flip used_at.
    let claimed = !already_used
        && sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if !claimed {
        let session = revoke_family(state, &mut tx, &family, user_id).await?;
        // The family's access tokens are refused from the next request on.
        state.auth.commit(tx, &[session]).await?;
        tracing::warn!(user_id, "refresh token reuse detected; session revoked");
        return Err(ApiError::unauthenticated(
            "refresh token already used; session revoked",
        ));
    }
    if row.try_get::<String, _>("expires_at")? <= now {
        return Err(ApiError::unauthenticated("refresh token expired"));
    }
    if !crate::db::flag(&row, "is_active")? {
        return Err(ApiError::unauthenticated("account is deactivated"));
    }
    let version: i64 = row.try_get("token_version")?;
    if row.try_get::<i64, _>("issued_version")? != version {
        return Err(ApiError::unauthenticated(
            "refresh token superseded; please log in again",
        ));
    }
    let pair = issue_pair(state, &mut tx, user_id, version, Some(&family)).await?;
    tx.commit().await?;
    Ok(pair)
}

/// Revokes a family: its refresh tokens, and (through `revoked_sessions`)
/// every access token issued in it, from the next request on. Returns the
/// change the caller commits with [`crate::auth::cache::AuthCache::commit`].
pub async fn revoke_family(
    state: &AuthState,
    tx: &mut Transaction<'_, Any>,
    family: &str,
    user_id: i64,
) -> Result<Change, ApiError> {
    // The family's refresh tokens first, then the session row: every
    // revocation takes its locks in that order. (A concurrent reuse whose
    // conditional `used_at` update found the token already used still
    // holds that token's row lock on PostgreSQL; taking the session row
    // first would deadlock against it.)
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(timestamp::now())
    .bind(family)
    .execute(&mut **tx)
    .await?;
    // The row must outlive everything of the family that could still be
    // presented: its refresh tokens, and access tokens issued up to now.
    let access_horizon = timestamp::in_seconds(state.tokens.access_ttl_secs());
    sqlx::query(
        "INSERT INTO revoked_sessions (session_id, user_id, expires_at)
         SELECT $1, $2, CASE WHEN MAX(expires_at) > $3 THEN MAX(expires_at) ELSE $3 END
         FROM refresh_tokens WHERE family_id = $1
         ON CONFLICT (session_id) DO UPDATE SET expires_at = CASE
             WHEN excluded.expires_at > revoked_sessions.expires_at THEN excluded.expires_at
             ELSE revoked_sessions.expires_at END",
    )
    .bind(family)
    .bind(user_id)
    .bind(&access_horizon)
    .execute(&mut **tx)
    .await?;
    // In memory the session matters only while its access tokens live:
    // every one was issued by now (a rotation racing this revocation
    // commits within moments, hence the margin); the refresh tokens are
    // checked in the database.
    Ok(Change::Session {
        id: family.to_string(),
        expires_at: chrono::Utc::now().timestamp()
            + i64::try_from(state.tokens.access_ttl_secs()).unwrap_or(i64::MAX / 2)
            + SESSION_MARGIN_SECS,
    })
}

/// Slack on a revoked session's in-memory lifetime, for an access token
/// minted by a rotation that committed just after the revocation read.
const SESSION_MARGIN_SECS: i64 = 60;

/// Revokes every refresh token of a user (password change or reset,
/// deactivation). The callers also bump the user's token version (see
/// [`super::users::set_password`], [`super::users::invalidate_tokens`]),
/// which is what refuses the access tokens.
pub async fn revoke_all_for_user(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
) -> Result<u64, ApiError> {
    Ok(sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(timestamp::now())
    .bind(user_id)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Refuses an access token's `jti` until the token would have expired.
pub async fn revoke_access_token(
    tx: &mut Transaction<'_, Any>,
    jti: &str,
    user_id: i64,
    expires_at_unix: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(user_id)
    .bind(timestamp::from_unix(expires_at_unix))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
