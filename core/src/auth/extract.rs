//! `AuthUser`: the authenticated caller, as an extractor.
//!
//! A signed, unexpired JWT is not enough: every request also checks, in one
//! query, that the user still exists (ids are never reused, so a deleted
//! user's tokens stay dead) and is active, that neither the token's `jti`
//! nor its session (`sid`, the refresh family: revoked by a logout or by
//! refresh-token reuse) was revoked, and that the token version still
//! matches (a password change or a deactivation bumps it, so reactivating
//! the account does not revive older tokens). The same query loads the caller's roles and permissions, so RBAC
//! always sees the current grants. Both revocation lookups are primary-key
//! probes, evaluated once per query.

use std::collections::BTreeSet;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use sqlx::Row;

use crate::{app::AppState, error::ApiError};

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Email (lower-case).
    pub email: String,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Permission names granted through the roles.
    pub permissions: BTreeSet<String>,
    /// The access token's id.
    pub jti: String,
    /// The access token's expiry (unix seconds).
    pub token_expires_at: i64,
    /// The session (refresh family) the token belongs to.
    pub session: String,
}

impl AuthUser {
    /// Whether the caller holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// 403 unless the caller holds `permission`.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.has_permission(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(permission))
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers)
}

/// The bearer token in a header map, if any.
pub fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let token =
            bearer_token(parts).ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
        let user = authenticate(state, token).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// Verifies an access token and loads the caller.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state.tokens.verify(token)?;
    let user_id = claims
        .user_id()
        .ok_or_else(|| ApiError::unauthenticated("invalid token"))?;
    let rows = sqlx::query(
        "SELECT u.email, u.is_active, u.token_version,
                (SELECT COUNT(*) FROM revoked_access_tokens r WHERE r.jti = $2) AS revoked,
                (SELECT COUNT(*) FROM revoked_sessions s WHERE s.session_id = $3)
                    AS session_revoked,
                ro.name AS role_name, p.name AS permission_name
         FROM users u
         LEFT JOIN user_roles ur ON ur.user_id = u.id
         LEFT JOIN roles ro ON ro.id = ur.role_id
         LEFT JOIN role_permissions rp ON rp.role_id = ro.id
         LEFT JOIN permissions p ON p.id = rp.permission_id
         WHERE u.id = $1",
    )
    .bind(user_id)
    .bind(&claims.jti)
    .bind(&claims.sid)
    .fetch_all(state.db.pool())
    .await?;
    let first = rows
        .first()
        .ok_or_else(|| ApiError::unauthenticated("invalid token"))?;
    let revoked: i64 = first.try_get("revoked")?;
    let active = crate::db::flag(first, "is_active")?;
    let version: i64 = first.try_get("token_version")?;
    if revoked > 0 {
        return Err(ApiError::unauthenticated("token revoked"));
    }
    if first.try_get::<i64, _>("session_revoked")? > 0 {
        return Err(ApiError::unauthenticated("session revoked"));
    }
    if version != claims.ver {
        return Err(ApiError::unauthenticated(
            "token superseded (password change or deactivation)",
        ));
    }
    if !active {
        return Err(ApiError::unauthenticated("account is deactivated"));
    }
    let mut roles = BTreeSet::new();
    let mut permissions = BTreeSet::new();
    for row in &rows {
        if let Some(role) = row.try_get::<Option<String>, _>("role_name")? {
            roles.insert(role);
        }
        if let Some(permission) = row.try_get::<Option<String>, _>("permission_name")? {
            permissions.insert(permission);
        }
    }
    Ok(AuthUser {
        id: user_id,
        email: first.try_get("email")?,
        roles,
        permissions,
        jti: claims.jti,
        token_expires_at: claims.exp,
        session: claims.sid,
    })
}
