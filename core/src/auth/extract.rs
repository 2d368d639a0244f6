//! `AuthUser`: the authenticated caller, as an extractor.
//!
//! A signed, unexpired JWT is not enough: every request also checks that
//! neither the token's `jti` nor its session (`sid`, the refresh family:
//! revoked by a logout or by refresh-token reuse) was revoked, that the
//! user still exists (ids are never reused, so a deleted user's tokens stay
//! dead) and is active, and that the token version still matches (a
//! password change or a deactivation bumps it, so reactivating the account
//! does not revive older tokens). The caller's roles and permissions come
//! with the user, so RBAC always sees the current grants. All of it is
//! answered from memory by the [`super::cache::AuthCache`], which every
//! change updates before the changing request answers.

use std::{collections::BTreeSet, sync::Arc};

use super::{
    cache::{AuthCache, CachedUser},
    tokens::{AccessClaims, TokenService},
};
use crate::error::ApiError;
use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};

/// What deciding on a request needs: the token check and the cache of
/// users, grants and revocations. Every extractor and entrance that
/// authenticates takes this, not the whole application state.
#[derive(Debug)]
pub struct Gate {
    /// Access-token signing and checking.
    pub tokens: Arc<TokenService>,
    /// Users, grants and revocations in memory.
    pub auth: Arc<AuthCache>,
}

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

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Gate>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let token =
            bearer_token(parts).ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
        let user = authenticate(&Arc::<Gate>::from_ref(state), token).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// Verifies an access token and loads the caller.
pub async fn authenticate(state: &Gate, token: &str) -> Result<AuthUser, ApiError> {
    let (claims, user) = verify(state, token).await?;
    Ok(AuthUser {
        id: user.caller.user_id,
        email: user.email.clone(),
        roles: user.roles.clone(),
        permissions: user.permissions.clone(),
        jti: claims.jti,
        token_expires_at: claims.exp,
        session: claims.sid,
    })
}

/// Verifies an access token against the cache: its claims and the
/// caller's cached state. The checks, and their messages, in the order
/// they always ran.
pub async fn verify(
    state: &Gate,
    token: &str,
) -> Result<(AccessClaims, Arc<CachedUser>), ApiError> {
    let claims = state.tokens.verify(token)?;
    let user_id = claims
        .user_id()
        .ok_or_else(|| ApiError::unauthenticated("invalid token"))?;
    let cache = &state.auth;
    cache.ensure_fresh().await?;
    let user = cache
        .user(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("invalid token"))?;
    if cache.is_token_revoked(&claims.jti) {
        return Err(ApiError::unauthenticated("token revoked"));
    }
    if cache.is_session_revoked(&claims.sid) {
        return Err(ApiError::unauthenticated("session revoked"));
    }
    if user.token_version != claims.ver {
        return Err(ApiError::unauthenticated(
            "token superseded (password change or deactivation)",
        ));
    }
    if !user.is_active {
        return Err(ApiError::unauthenticated("account is deactivated"));
    }
    Ok((claims, user))
}
