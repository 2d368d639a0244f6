//! `ApiError`: every failure a client can see, rendered as the standard body
//! `{"error": {"code", "message", "details", "timestamp", "request_id"}}`.
//!
//! Codes are a closed, stable set (seed 001 plus `PLUGIN_ERROR` and
//! `INTERNAL_ERROR`); the HTTP status carries the finer distinction (400, 405,
//! 413, 415 and 422 are all `VALIDATION_ERROR`: the request as sent is
//! invalid). Internal causes are logged once, here, and never sent.

use std::borrow::Cow;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::json;

use crate::http::request_id;

/// Stable machine-readable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Missing, invalid, expired or revoked credentials.
    AuthenticationError,
    /// Authenticated but lacking a permission.
    AuthorizationError,
    /// The request is malformed or fails validation.
    ValidationError,
    /// No such resource or route.
    NotFound,
    /// Uniqueness or state conflict.
    Conflict,
    /// Over a rate limit.
    RateLimit,
    /// A plugin failed to handle the request.
    PluginError,
    /// Anything unexpected on our side.
    InternalError,
}

impl ErrorCode {
    /// The code string as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthenticationError => "AUTHENTICATION_ERROR",
            Self::AuthorizationError => "AUTHORIZATION_ERROR",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::RateLimit => "RATE_LIMIT",
            Self::PluginError => "PLUGIN_ERROR",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The code a bare HTTP status maps to, for responses produced by the
    /// framework rather than by our handlers.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::AuthenticationError,
            403 => Self::AuthorizationError,
            404 => Self::NotFound,
            409 => Self::Conflict,
            429 => Self::RateLimit,
            400..=499 => Self::ValidationError,
            _ => Self::InternalError,
        }
    }
}

/// One field-level problem in a `VALIDATION_ERROR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The offending field, as named in the request.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The standard error body, as the OpenAPI document describes it (every
/// error response of every core route has this shape; rendering happens in
/// [`ApiError::into_response`], this type only documents it).
#[derive(Debug, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The `error` member of [`ErrorBody`].
#[derive(Debug, utoipa::ToSchema)]
pub struct ErrorObject {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Field-level problems (empty unless `VALIDATION_ERROR`).
    pub details: Vec<FieldError>,
    /// When the error happened (RFC 3339).
    pub timestamp: String,
    /// The request's `X-Request-Id`.
    pub request_id: String,
}

/// The standard error body: the one place it is rendered, for the host's
/// own errors and for the structured errors plugins answer with.
pub fn standard_body(
    code: &str,
    message: &str,
    details: &[FieldError],
    request_id: Option<&str>,
) -> serde_json::Value {
    json!({
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "timestamp": crate::db::timestamp::now(),
            "request_id": request_id,
        }
    })
}

/// An error response in the making.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: Cow<'static, str>,
    details: Vec<FieldError>,
    retry_after_secs: Option<u64>,
    www_authenticate: bool,
    /// Logged at render time, never sent.
    source: Option<anyhow::Error>,
}

/// Marks a response whose body is already the standard error body, so the
/// request-context middleware leaves it alone.
#[derive(Clone, Copy, Debug)]
pub struct RenderedError;

/// Handler result alias.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A custom status and code.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
            www_authenticate: false,
            source: None,
        }
    }

    /// 401: credentials missing or not acceptable.
    pub fn unauthenticated(message: impl Into<Cow<'static, str>>) -> Self {
        let mut error = Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthenticationError,
            message,
        );
        error.www_authenticate = true;
        error
    }

    /// 403: the caller lacks `permission`.
    pub fn forbidden(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AuthorizationError,
            format!("missing permission {permission}"),
        )
    }

    /// 422 with one entry per offending field.
    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [only] => format!("{}: {}", only.field, only.message),
            _ => "Validation failed".to_string(),
        };
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationError,
            message,
        );
        error.details = details;
        error
    }

    /// 422 for a single field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 400: the request could not be parsed at all.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::ValidationError, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimit,
            format!("rate limit exceeded; retry in {retry_after_secs} s"),
        );
        error.retry_after_secs = Some(retry_after_secs);
        error
    }

    /// 503 with `Retry-After`: this instance cannot take the request now,
    /// another (or this one, later) can. `INTERNAL_ERROR`, like every 5xx.
    pub fn unavailable(message: impl Into<Cow<'static, str>>, retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError,
            message,
        );
        error.retry_after_secs = Some(retry_after_secs);
        error
    }

    /// 500 whose cause is logged but not sent.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "internal server error",
        );
        error.source = Some(source.into());
        error
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field details.
    pub fn details(&self) -> &[FieldError] {
        &self.details
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::not_found("resource not found"),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::conflict("a resource with the same unique value already exists")
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::conflict("the operation conflicts with related resources")
            }
            sqlx::Error::PoolTimedOut => {
                let mut unavailable = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::InternalError,
                    "database busy, retry shortly",
                );
                unavailable.source = Some(error.into());
                unavailable
            }
            _ => Self::internal(error),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = request_id::current_request_id();
        if let Some(source) = &self.source {
            tracing::error!(
                request_id = request_id.as_deref().unwrap_or("-"),
                code = self.code.as_str(),
                error = format!("{source:#}"),
                "request failed"
            );
        }
        let mut response = (
            self.status,
            Json(standard_body(
                self.code.as_str(),
                &self.message,
                &self.details,
                request_id.as_deref(),
            )),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(RenderedError);
        response
    }
}
