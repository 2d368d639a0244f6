//! `GET/POST /auth/api-keys`, `DELETE /auth/api-keys/{id}` (seed 004's
//! `/security/api-keys`).
//!
//! Every user manages their own keys, and only with a session token (see
//! the module docs of [`super`]). Nobody, admins included, lists or revokes
//! another user's keys here: an administrator cuts a user's keys by taking
//! away permissions or deactivating the user, which the keys follow at
//! once. Another user's key id answers 404, as a missing one does.

use std::{collections::BTreeSet, net::IpAddr, sync::Arc};

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::{Deserialize, Serialize};

use super::{
    mint,
    store::{self, KeyView, NewKey},
};
use crate::{
    audit,
    auth::{changes::Change, AuthState, AuthUser, Gate},
    error::{ApiError, ApiResult, ErrorCode, FieldError},
    http::{
        answers::{ApiKeyRefused, Unauthenticated},
        client_ip::ClientIp,
        extract::{ApiJson, ApiPath},
    },
};

/// Longest key name accepted.
const MAX_NAME_CHARS: usize = 100;

/// `POST /auth/api-keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label for the owner's list (1 to 100 characters).
    name: String,
    /// Permission names the key may use; each must be one the creator
    /// holds. Also accepted as `scopes`.
    #[serde(alias = "scopes")]
    permissions: Vec<String>,
    /// RFC 3339 time after which the key is refused; omitted or `null`:
    /// never.
    #[serde(default)]
    expires_at: Option<String>,
}

/// A new key: its description, and the key itself, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    view: KeyView,
    /// `xk_<prefix>_<secret>`, to send as `X-API-Key`. Only its hash is
    /// kept: it cannot be shown again.
    key: String,
}

/// The caller's keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Newest first, revoked ones included.
    items: Vec<KeyView>,
    /// How many.
    total: usize,
}

/// Checks a creation request against its creator: the name, the scopes
/// (never more than the creator holds), the expiry. Returns the scopes and
/// the expiry as stored.
fn validate(
    user: &AuthUser,
    body: &CreateKey,
) -> Result<(BTreeSet<String>, Option<String>), ApiError> {
    let mut problems = Vec::new();
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        problems.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if body.permissions.is_empty() {
        problems.push(FieldError::new(
            "permissions",
            "name at least one permission",
        ));
    }
    let expires_at = match body.expires_at.as_deref() {
        None => None,
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(at) if at.timestamp() > chrono::Utc::now().timestamp() => {
                Some(crate::db::timestamp::format(at.with_timezone(&chrono::Utc)))
            }
            Ok(_) => {
                problems.push(FieldError::new("expires_at", "must be in the future"));
                None
            }
            Err(_) => {
                problems.push(FieldError::new(
                    "expires_at",
                    "must be an RFC 3339 time, e.g. 2030-01-31T00:00:00Z",
                ));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let scopes: BTreeSet<String> = body.permissions.iter().cloned().collect();
    let lacking: Vec<&str> = scopes
        .iter()
        .filter(|scope| !user.has_permission(scope))
        .map(String::as_str)
        .collect();
    if !lacking.is_empty() {
        // A key never holds more than its creator: no escalation through
        // a key, and no naming of permissions that do not exist.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AuthorizationError,
            format!(
                "a key can only be given permissions you hold; you lack: {}",
                lacking.join(", ")
            ),
        ));
    }
    Ok((scopes, expires_at))
}

/// Creates a key for the caller, carrying a subset of their permissions.
#[utoipa::path(
    post, path = "/auth/api-keys", tag = "auth",
    security(("bearer" = [])),
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key; `key` is shown this once", body = CreatedKey),
        Unauthenticated,
        (status = 403, description = "A permission the caller lacks, or the request came with an API key", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid name, permissions or expiry", body = crate::error::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<Arc<AuthState>>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<impl IntoResponse> {
    user.session_token()?;
    let (scopes, expires_at) = validate(&user, &body)?;
    let created = create_key(&state, &user, ip, body.name.trim(), &scopes, expires_at).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Mints and stores a key: the one place keys are created.
pub async fn create_key(
    state: &AuthState,
    user: &AuthUser,
    ip: IpAddr,
    name: &str,
    scopes: &BTreeSet<String>,
    expires_at: Option<String>,
) -> Result<CreatedKey, ApiError> {
    let minted = mint();
    let mut tx = state.db.begin_write().await?;
    let view = store::insert(
        &mut tx,
        &NewKey {
            owner: user.id,
            name,
            prefix: &minted.prefix,
            secret_hash: &minted.secret_hash,
            scopes,
            expires_at: expires_at.as_deref(),
        },
    )
    .await?;
    audit::record_in(
        &mut tx,
        &audit::api_key(user.into(), audit::API_KEY_CREATED, view.id, ip)
            .details(serde_json::json!({"name": name, "permissions": scopes})),
    )
    .await?;
    // Logged so that every instance's cache learns the prefix exists
    // (none holds it yet; this keeps the rule "every key change is logged").
    state
        .auth
        .commit(tx, &[Change::ApiKey(minted.prefix.clone())])
        .await?;
    // Held in memory from the start, so even the key's first request is
    // counted in the API key rate-limit tier on this instance.
    state.auth.api_key(&minted.prefix).await?;
    tracing::info!(user_id = user.id, key_id = view.id, "API key created");
    Ok(CreatedKey {
        view,
        key: minted.key,
    })
}

/// The caller's keys, never their secrets.
#[utoipa::path(
    get, path = "/auth/api-keys", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's keys, newest first", body = KeyList),
        Unauthenticated,
        ApiKeyRefused,
    )
)]
pub async fn list(
    State(state): State<Arc<AuthState>>,
    State(gate): State<Arc<Gate>>,
    user: AuthUser,
) -> ApiResult<Json<KeyList>> {
    user.session_token()?;
    let mut items = store::list(&state.db, user.id).await?;
    for item in &mut items {
        // Uses this instance noted but has not written yet are newer.
        if let Some(pending) = gate.key_usage.pending(item.id) {
            if item.last_used_at.as_ref().is_none_or(|at| *at < pending) {
                item.last_used_at = Some(pending);
            }
        }
    }
    Ok(Json(KeyList {
        total: items.len(),
        items,
    }))
}

/// Revokes one of the caller's keys, at once.
#[utoipa::path(
    delete, path = "/auth/api-keys/{id}", tag = "auth",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked (again, if it already was)"),
        Unauthenticated,
        ApiKeyRefused,
        (status = 404, description = "The caller has no such key", body = crate::error::ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<Arc<AuthState>>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    user.session_token()?;
    revoke_key(&state, &user, ip, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a key revoked and evicts it from every cache: the one place keys
/// are revoked.
pub async fn revoke_key(
    state: &AuthState,
    user: &AuthUser,
    ip: IpAddr,
    id: i64,
) -> Result<(), ApiError> {
    let mut tx = state.db.begin_write().await?;
    let prefix = store::revoke(&mut tx, user.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found")))?;
    audit::record_in(
        &mut tx,
        &audit::api_key(user.into(), audit::API_KEY_REVOKED, id, ip),
    )
    .await?;
    state.auth.commit(tx, &[Change::ApiKey(prefix)]).await?;
    tracing::info!(user_id = user.id, key_id = id, "API key revoked");
    Ok(())
}
