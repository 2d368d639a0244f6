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
//!
//! An `X-API-Key` header is the second entrance (see [`super::api_keys`]):
//! the caller is then the key's owner holding the key's permissions, and
//! [`AuthUser::credential`] says so, for the routes that want a session.

use std::{collections::BTreeSet, sync::Arc};

use super::{
    api_keys::{self, usage::Usage},
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
    /// Users, grants, API keys and revocations in memory.
    pub auth: Arc<AuthCache>,
    /// API key uses waiting to be written as `last_used_at`.
    pub key_usage: Arc<Usage>,
}

/// How the caller authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A Bearer access token.
    Token {
        /// The token's id.
        jti: String,
        /// The token's expiry (unix seconds).
        expires_at: i64,
        /// The session (refresh family) the token belongs to.
        session: String,
    },
    /// An `X-API-Key`.
    ApiKey {
        /// The key's row id.
        id: i64,
        /// The key's expiry (unix seconds), if any.
        expires_at: Option<i64>,
    },
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
    /// Permission names the request holds: the roles' grants, narrowed to
    /// the key's scopes for a keyed request.
    pub permissions: BTreeSet<String>,
    /// The token or key the request came with.
    pub credential: Credential,
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

    /// The session token's id, expiry and session; 403 for a keyed
    /// request, on the routes that manage credentials (module docs of
    /// [`super::api_keys`]).
    pub fn session_token(&self) -> Result<(&str, i64, &str), ApiError> {
        match &self.credential {
            Credential::Token {
                jti,
                expires_at,
                session,
            } => Ok((jti, *expires_at, session)),
            Credential::ApiKey { .. } => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                crate::error::ErrorCode::AuthorizationError,
                "this route needs a session access token; an API key cannot manage credentials",
            )),
        }
    }

    /// When the credential stops working on its own (unix seconds), if it
    /// does.
    pub fn expires_at(&self) -> Option<i64> {
        match &self.credential {
            Credential::Token { expires_at, .. } => Some(*expires_at),
            Credential::ApiKey { expires_at, .. } => *expires_at,
        }
    }
}

/// A credential a request carries.
#[derive(Clone, Copy, Debug)]
pub enum Presented<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `X-API-Key: <key>`.
    ApiKey(&'a str),
}

/// The one credential in `headers`, if any: 400 when both a Bearer token
/// and an API key (or several keys) are sent, since picking one would let
/// a client believe the other was checked.
pub fn presented(headers: &axum::http::HeaderMap) -> Result<Option<Presented<'_>>, ApiError> {
    let mut keys = headers.get_all(api_keys::HEADER).iter();
    let key = keys.next();
    if keys.next().is_some() {
        return Err(ApiError::bad_request("send one X-API-Key header"));
    }
    let key = key
        .map(|value| {
            value
                .to_str()
                .map(str::trim)
                .map_err(|_| ApiError::unauthenticated("invalid API key"))
        })
        .transpose()?;
    match (bearer_token_of(headers), key) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "send either a Bearer token or an X-API-Key, not both",
        )),
        (Some(token), None) => Ok(Some(Presented::Bearer(token))),
        (None, Some(key)) => Ok(Some(Presented::ApiKey(key))),
        (None, None) => Ok(None),
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
        let gate = Arc::<Gate>::from_ref(state);
        let user = match presented(&parts.headers)? {
            Some(Presented::Bearer(token)) => authenticate(&gate, token).await?,
            Some(Presented::ApiKey(key)) => authenticate_key(&gate, key).await?,
            None => return Err(ApiError::unauthenticated("missing bearer token")),
        };
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
        credential: Credential::Token {
            jti: claims.jti,
            expires_at: claims.exp,
            session: claims.sid,
        },
    })
}

/// Verifies an API key and loads the caller: its owner, holding the key's
/// permissions.
pub async fn authenticate_key(state: &Gate, key: &str) -> Result<AuthUser, ApiError> {
    let keyed = api_keys::verify(state, key).await?;
    Ok(AuthUser {
        id: keyed.owner.caller.user_id,
        email: keyed.owner.email.clone(),
        roles: keyed.owner.roles.clone(),
        permissions: keyed.permissions,
        credential: Credential::ApiKey {
            id: keyed.key_id,
            expires_at: keyed.expires_at,
        },
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
