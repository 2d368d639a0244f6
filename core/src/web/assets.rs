//! `/static/{path}`: files from `web.static_dir`, through tower-http's
//! `ServeDir` (content type, `Last-Modified`, conditional and range
//! requests), with a `Cache-Control` header.
//!
//! Traversal is refused here, before the file system is touched, with a
//! clear 400 rather than left to `ServeDir`'s silent 404: a `..` or `.`
//! segment, a backslash or a NUL, whether sent raw or percent-encoded (the
//! path parameter is already decoded). Directories are never listed.

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::{config::Config, error::ApiError};

/// Files under this directory have their version in their path (e.g.
/// `vendor/redoc-2.5.4/`), so they never change and are cached for a year.
const VERSIONED_DIR: &str = "vendor/";
const VERSIONED_CACHE: &str = "public, max-age=31536000, immutable";

/// Why `path` may not be served, if it may not.
pub fn refuse(path: &str) -> Option<&'static str> {
    if path.contains('\\') || path.contains('\0') {
        return Some("backslashes and NUL bytes are not allowed in static paths");
    }
    if path.starts_with('/') {
        return Some("static paths are relative to /static");
    }
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Some("path traversal refused: '.' and '..' segments are not allowed");
    }
    None
}

/// One file from the static directory.
#[utoipa::path(
    get, path = "/static/{path}", tag = "pages",
    params(("path" = String, Path, description = "File path under the static directory")),
    responses(
        (status = 200, description = "The file, with Cache-Control and Last-Modified"),
        (status = 304, description = "Not modified since If-Modified-Since"),
        (status = 400, description = "Traversal attempt ('..' or '.' segment, backslash)", body = crate::error::ErrorBody),
        (status = 404, description = "No such file", body = crate::error::ErrorBody),
    )
)]
pub async fn static_file(
    State(config): State<Arc<Config>>,
    Path(path): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    if let Some(reason) = refuse(&path) {
        return Err(ApiError::bad_request(reason));
    }
    // ServeDir resolves the request's own URI against its root: give it the
    // part after /static, still percent-encoded as the client sent it.
    let (mut parts, body) = request.into_parts();
    let relative = parts
        .uri
        .path()
        .strip_prefix("/static")
        .unwrap_or("/")
        .to_string();
    parts.uri = Uri::builder()
        .path_and_query(relative)
        .build()
        .map_err(|_| ApiError::bad_request("invalid static path"))?;
    let service = ServeDir::new(&config.web.static_dir).append_index_html_on_directories(false);
    let response = match service.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(Body::new),
        Err(infallible) => match infallible {},
    };
    let status = response.status();
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        // An empty 404 or 405 from ServeDir: the request-context middleware
        // turns it into the standard error body.
        return Ok(response);
    }
    let cache = if path.starts_with(VERSIONED_DIR) {
        HeaderValue::from_static(VERSIONED_CACHE)
    } else {
        HeaderValue::from_str(&format!(
            "public, max-age={}",
            config.web.static_max_age_secs
        ))
        .map_err(ApiError::internal)?
    };
    let mut response = response.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, cache);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::refuse;

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "../Cargo.toml",
            "css/../../Cargo.toml",
            "..",
            "./x",
            "a\\..\\b",
            "/etc/passwd",
            "a\0b",
        ] {
            assert!(refuse(bad).is_some(), "{bad:?}");
        }
        for good in [
            "css/xcore.css",
            "vendor/redoc-2.5.4/redoc.standalone.js",
            "a..b",
        ] {
            assert!(refuse(good).is_none(), "{good:?}");
        }
    }
}
