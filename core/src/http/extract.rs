//! Extractors that reject in the standard error body.
//!
//! axum's own `Json`, `Query` and `Path` reject with plain text; these
//! wrappers keep their parsing and translate the rejection, naming the
//! offending field in `details` when serde tells us which one it was.

use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection, QueryRejection},
        FromRequest, FromRequestParts, Path, Query, Request,
    },
    http::{request::Parts, StatusCode},
    Json,
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode, FieldError};

/// JSON body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

/// Path parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

/// A request's media type, lower case, parameters included (`""` when
/// absent or not text): what bodies that accept several encodings branch on.
pub fn content_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Maps a JSON body rejection: malformed JSON is 400, a wrong content type
/// 415, an oversize body 413, and well-formed JSON of the wrong shape 422
/// with the field named.
pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            let reason = text
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&text);
            ApiError::validation(vec![serde_field_error(reason, "body")])
        }
        _ => ApiError::new(status, ErrorCode::for_status(status), text),
    }
}

/// Maps a query-string rejection to 422 naming the parameter.
pub fn query_rejection(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let reason = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::validation(vec![serde_field_error(reason, "query")])
}

/// Maps a path rejection: an unparsable id is 422, anything else internal.
pub fn path_rejection(rejection: PathRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        ApiError::internal(anyhow::anyhow!(text))
    } else {
        let reason = text
            .strip_prefix("Invalid URL: ")
            .unwrap_or(&text)
            .to_string();
        ApiError::invalid_field("path", reason)
    }
}

/// Recovers the field name from a serde message: `missing field `x``,
/// `unknown field `x``, or a `path.to.x: reason` prefix added by
/// serde_path_to_error. Falls back to `fallback` when none is present.
fn serde_field_error(reason: &str, fallback: &str) -> FieldError {
    let backticked = |marker: &str| {
        reason
            .find(marker)
            .map(|start| &reason[start + marker.len()..])
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    if let Some(field) = backticked("missing field `").or_else(|| backticked("unknown field `")) {
        return FieldError::new(field, reason);
    }
    if let Some((path, rest)) = reason.split_once(": ") {
        if !path.is_empty() && !path.contains(' ') && path != "." {
            return FieldError::new(path, rest);
        }
    }
    FieldError::new(fallback, reason)
}

#[cfg(test)]
mod tests {
    use super::serde_field_error;

    #[test]
    fn field_names_are_recovered_from_serde_messages() {
        assert_eq!(
            serde_field_error("missing field `password` at line 1 column 2", "body").field,
            "password"
        );
        assert_eq!(
            serde_field_error(
                "email: invalid type: integer `1`, expected a string",
                "body"
            )
            .field,
            "email"
        );
        assert_eq!(
            serde_field_error("invalid type: map, expected a string", "body").field,
            "body"
        );
    }
}
