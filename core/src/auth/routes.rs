//! `/auth/*` handlers.

use std::{net::IpAddr, sync::Arc};

use axum::{
    extract::{FromRequest, Request, State},
    http::StatusCode,
    response::IntoResponse,
    Form, Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{
    changes::Change,
    extract::{bearer_token, verify, AuthUser, Gate},
    password::Verified,
    password_reset, sessions, users, AuthState,
};
use crate::{
    audit::{self, Actor, Entry},
    auth::roles::USER_ROLE,
    error::{ApiError, ApiResult, FieldError},
    http::{
        answers::{EmailTaken, Unauthenticated},
        client_ip::ClientIp,
        extract::{content_type, json_rejection, ApiJson},
    },
};

/// The audit entry of what a user did to their own account (register, log
/// in or out, change the password): they are both actor and target.
fn own_act<'a>(id: i64, email: &'a str, action: &'static str, ip: IpAddr) -> Entry<'a> {
    Entry::new(Actor::User { id, email }, action)
        .target("user", id)
        .ip(ip)
}

/// `POST /auth/register` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    email: String,
    password: String,
    #[serde(default, alias = "name", alias = "fullName")]
    full_name: Option<String>,
    /// Seed 003's form: `firstName` and `lastName` make the full name.
    #[serde(default, rename = "firstName")]
    first_name: Option<String>,
    #[serde(default, rename = "lastName")]
    last_name: Option<String>,
}

impl RegisterRequest {
    /// `full_name`, else `firstName lastName` (either may be missing).
    fn full_name(&self) -> Option<String> {
        if let Some(full_name) = &self.full_name {
            return Some(full_name.clone());
        }
        let parts: Vec<&str> = [&self.first_name, &self.last_name]
            .into_iter()
            .flatten()
            .map(|part| part.trim())
            .filter(|part| !part.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Creates an account with the `user` role.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account, with the `user` role"),
        (status = 403, description = "Self-registration is disabled", body = crate::error::ErrorBody),
        EmailTaken,
        (status = 422, description = "Invalid email or password", body = crate::error::ErrorBody),
    )
)]
pub async fn register(
    State(state): State<Arc<AuthState>>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    if !state.config.auth.allow_registration {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            crate::error::ErrorCode::AuthorizationError,
            "self-registration is disabled; ask an administrator for an account",
        ));
    }
    let account = users::create_account(
        &state.db,
        &state.passwords,
        &body.email,
        &body.password,
        body.full_name().as_deref(),
        &[USER_ROLE],
    )
    .await?;
    tracing::info!(user_id = account.id, "user registered");
    // After the fact: the account is created in a transaction of its own
    // (shared with the command line and administrators).
    audit::record(
        &state.db,
        &own_act(account.id, &account.email, audit::USER_REGISTERED, ip),
    )
    .await;
    state.events.publish(
        "user.registered",
        json!({"user_id": account.id, "email": account.email}),
    );
    Ok((StatusCode::CREATED, Json(account)))
}

/// Login credentials, from a form (`username`) or JSON (`username` or `email`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    #[serde(default, alias = "email")]
    username: String,
    #[serde(default)]
    password: String,
}

/// Accepts both `application/x-www-form-urlencoded` (the OAuth2 password
/// form the seed shows) and JSON.
pub struct LoginBody(LoginRequest);

impl<S: Send + Sync> FromRequest<S> for LoginBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = content_type(request.headers());
        if content_type.starts_with("application/x-www-form-urlencoded") {
            Form::<LoginRequest>::from_request(request, state)
                .await
                .map(|Form(body)| Self(body))
                .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
        } else if content_type.starts_with("application/json") {
            Json::<LoginRequest>::from_request(request, state)
                .await
                .map(|Json(body)| Self(body))
                .map_err(json_rejection)
        } else {
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                crate::error::ErrorCode::ValidationError,
                "send credentials as application/x-www-form-urlencoded or application/json",
            ))
        }
    }
}

/// Checks credentials and starts a session.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Access and refresh tokens", body = super::sessions::TokenPair),
        (status = 401, description = "Wrong credentials or deactivated account", body = crate::error::ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = crate::error::ErrorBody),
        (status = 422, description = "Missing fields", body = crate::error::ErrorBody),
    )
)]
pub async fn login(
    State(state): State<Arc<AuthState>>,
    ClientIp(ip): ClientIp,
    LoginBody(body): LoginBody,
) -> ApiResult<impl IntoResponse> {
    let mut problems = Vec::new();
    if body.username.trim().is_empty() {
        problems.push(FieldError::new("username", "required"));
    }
    if body.password.is_empty() {
        problems.push(FieldError::new("password", "required"));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let email = users::normalize_email(&body.username);
    let account = users::credentials_by_email(&state.db, &email).await?;
    let verified = state
        .passwords
        .verify(
            &body.password,
            account.as_ref().map(|a| a.password_hash.as_str()),
        )
        .await?;
    // A failure changes nothing, so its row is written on its own; the
    // email tried is kept (cut to an email's length), the password never.
    let failed = |reason: &'static str| {
        let state = state.clone();
        let email = email.clone();
        async move {
            audit::record(
                &state.db,
                &Entry::new(Actor::Claimed(&email), audit::LOGIN_FAILED)
                    .ip(ip)
                    .details(json!({"reason": reason})),
            )
            .await;
        }
    };
    let account = match account {
        Some(account) if verified.matched() => account,
        // One message for "no such account" and "wrong password".
        Some(_) => {
            failed("wrong_password").await;
            return Err(ApiError::unauthenticated("incorrect email or password"));
        }
        None => {
            failed("unknown_account").await;
            return Err(ApiError::unauthenticated("incorrect email or password"));
        }
    };
    if !account.is_active {
        failed("deactivated").await;
        return Err(ApiError::unauthenticated("account is deactivated"));
    }
    if verified == Verified::YesButRehash {
        let upgraded = state.passwords.hash(&body.password).await?;
        users::rehash(&state.db, account.id, &upgraded).await?;
    }
    let mut tx = state.db.begin_write().await?;
    let pair =
        sessions::issue_pair(&state, &mut tx, account.id, account.token_version, None).await?;
    sqlx::query("UPDATE users SET last_login = $1 WHERE id = $2")
        .bind(crate::db::timestamp::now())
        .bind(account.id)
        .execute(&mut *tx)
        .await?;
    audit::record_in(&mut tx, &own_act(account.id, &email, audit::LOGIN, ip)).await?;
    // `/auth/me` shows the last login from the cache.
    state.auth.commit(tx, &[Change::User(account.id)]).await?;
    tracing::info!(user_id = account.id, "user logged in");
    state
        .events
        .publish("user.login", json!({"user_id": account.id, "email": email}));
    Ok(Json(pair))
}

/// The caller's profile.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile, roles and permissions", body = super::users::Profile),
        Unauthenticated,
    )
)]
pub async fn me(
    State(state): State<Arc<AuthState>>,
    user: AuthUser,
) -> ApiResult<impl IntoResponse> {
    // From the cache the extractor just read: no database work. The
    // permissions are the request's (narrowed to a key's scopes).
    let cached = state
        .auth
        .user(user.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {} not found", user.id)))?;
    Ok(Json(users::Profile {
        id: user.id,
        email: cached.email.clone(),
        full_name: cached.full_name.clone(),
        is_active: cached.is_active,
        roles: cached.roles.iter().cloned().collect(),
        permissions: user.permissions.iter().cloned().collect(),
        last_login: cached.last_login.clone(),
        created_at: cached.created_at.clone(),
    }))
}

/// `POST /auth/refresh` body (optional: the token may come as Bearer).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// Also accepted as `refreshToken` (seed 003).
    #[serde(default, alias = "refreshToken")]
    refresh_token: Option<String>,
}

/// Rotates a refresh token, or renews an access token in its session.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional: the refresh token may come as the Bearer token instead; a Bearer access token (seed 001) renews that token in its session"),
    responses(
        (status = 200, description = "A new token pair (the presented refresh token is spent), or for a Bearer access token a new access token alone", body = super::sessions::Refreshed),
        (status = 401, description = "Unknown, expired or reused refresh token", body = crate::error::ErrorBody),
        (status = 422, description = "No refresh token", body = crate::error::ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<Arc<AuthState>>,
    State(gate): State<Arc<Gate>>,
    request: Request,
) -> ApiResult<Json<sessions::Refreshed>> {
    let (parts, body) = request.into_parts();
    if parts.headers.contains_key(super::api_keys::HEADER) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            crate::error::ErrorCode::AuthorizationError,
            "an API key cannot refresh sessions",
        ));
    }
    let header_token = bearer_token(&parts).map(str::to_string);
    let bytes = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("request body too large"))?;
    let body_token = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        // The body is optional, so a JSON `null` counts as none.
        serde_json::from_slice::<Option<RefreshRequest>>(&bytes)
            .map_err(|error| ApiError::bad_request(format!("invalid JSON body: {error}")))?
            .and_then(|body| body.refresh_token)
    };
    // Refresh tokens are opaque base64url; a Bearer token with the two dots
    // of a JWT is an access token to renew in its session.
    if let (None, Some(access_token)) = (&body_token, &header_token) {
        if access_token.matches('.').count() == 2 {
            let (claims, user) = verify(&gate, access_token).await?;
            return Ok(Json(sessions::renew(&state, &claims, &user).await?));
        }
    }
    let token = body_token.or(header_token).ok_or_else(|| {
        ApiError::invalid_field(
            "refresh_token",
            "required (in the body or as the Bearer token)",
        )
    })?;
    Ok(Json(sessions::rotate(&state, &token).await?.into()))
}

/// Ends the session: the refresh family is revoked, and with it every access
/// token issued in it (this one and any other still unexpired).
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session's refresh and access tokens revoked"),
        Unauthenticated,
    )
)]
pub async fn logout(
    State(state): State<Arc<AuthState>>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
) -> ApiResult<StatusCode> {
    let (jti, expires_at, session) = user.session_token()?;
    let mut tx = state.db.begin_write().await?;
    sessions::revoke_access_token(&mut tx, jti, user.id, expires_at).await?;
    let session = sessions::revoke_family(&state, &mut tx, session, user.id).await?;
    audit::record_in(&mut tx, &own_act(user.id, &user.email, audit::LOGOUT, ip)).await?;
    state
        .auth
        .commit(
            tx,
            &[
                Change::AccessToken {
                    jti: jti.to_string(),
                    expires_at,
                },
                session,
            ],
        )
        .await?;
    tracing::info!(user_id = user.id, "user logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/password/reset` body: either a request or a completion.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ResetRequest {
    /// Completes a reset with the emailed token.
    Complete {
        /// The token from the notification.
        token: String,
        /// The new password.
        new_password: String,
    },
    /// Asks for a reset token to be sent.
    Request {
        /// The account's email.
        email: String,
    },
}

/// Requests or completes a password reset.
#[utoipa::path(
    post, path = "/auth/password/reset", tag = "auth",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "Reset requested (same answer whether or not the account exists)"),
        (status = 200, description = "Password changed with a reset token"),
        (status = 401, description = "Invalid or expired reset token", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid body or password policy", body = crate::error::ErrorBody),
    )
)]
pub async fn password_reset(
    State(state): State<Arc<AuthState>>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<impl IntoResponse> {
    match body {
        ResetRequest::Request { email } => {
            password_reset::request(&state, &users::normalize_email(&email), ip).await?;
            // The same answer whether or not the account exists.
            Ok((
                StatusCode::ACCEPTED,
                Json(
                    json!({"message": "if the account exists, reset instructions have been sent"}),
                ),
            ))
        }
        ResetRequest::Complete {
            token,
            new_password,
        } => {
            password_reset::complete(&state, &token, &new_password, ip).await?;
            Ok((
                StatusCode::OK,
                Json(json!({"message": "password updated; please log in again"})),
            ))
        }
    }
}

/// `PUT /auth/password/update` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordUpdate {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; every other session ends, and a fresh
/// pair is returned for this one.
#[utoipa::path(
    put, path = "/auth/password/update", tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordUpdate,
    responses(
        (status = 200, description = "Password changed; a fresh token pair"),
        Unauthenticated,
        (status = 422, description = "Wrong current password or policy violation", body = crate::error::ErrorBody),
    )
)]
pub async fn password_update(
    State(state): State<Arc<AuthState>>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    ApiJson(body): ApiJson<PasswordUpdate>,
) -> ApiResult<impl IntoResponse> {
    user.session_token()?;
    let account = users::credentials_by_id(&state.db, user.id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("account no longer exists"))?;
    if !state
        .passwords
        .verify(&body.current_password, Some(&account.password_hash))
        .await?
        .matched()
    {
        return Err(ApiError::invalid_field(
            "current_password",
            "incorrect password",
        ));
    }
    if let Some(problem) =
        state
            .passwords
            .check_policy("new_password", &body.new_password, Some(&user.email))
    {
        return Err(ApiError::validation(vec![problem]));
    }
    if body.new_password == body.current_password {
        return Err(ApiError::invalid_field(
            "new_password",
            "must differ from the current password",
        ));
    }
    let hash = state.passwords.hash(&body.new_password).await?;
    let mut tx = state.db.begin_write().await?;
    let version = users::set_password(&mut tx, user.id, &hash).await?;
    // Read after the update, which waits for (and so sees) a deactivation
    // committed since the extractor's check: the fresh pair carries the
    // current version, so it must not go to a deactivated account.
    let active = sqlx::query("SELECT is_active FROM users WHERE id = $1")
        .bind(user.id)
        .fetch_one(&mut *tx)
        .await?;
    if !crate::db::flag(&active, "is_active")? {
        return Err(ApiError::unauthenticated("account is deactivated"));
    }
    sessions::revoke_all_for_user(&mut tx, user.id).await?;
    let pair = sessions::issue_pair(&state, &mut tx, user.id, version, None).await?;
    audit::record_in(
        &mut tx,
        &own_act(user.id, &user.email, audit::PASSWORD_CHANGED, ip),
    )
    .await?;
    // The token version moved: older tokens are refused from now on.
    state.auth.commit(tx, &[Change::User(user.id)]).await?;
    tracing::info!(user_id = user.id, "password changed");
    Ok(Json(json!({
        "message": "password updated",
        "access_token": pair.access_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    })))
}
