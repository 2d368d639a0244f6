//! The request id: the header it travels in, the extension handlers read
//! it from, and the task-local that makes it known to code deep in a
//! request (the error body, logs). Depends on nothing else in the crate, so
//! the error type and the request middleware can both use it.

use std::{future::Future, sync::Arc};

use axum::http::HeaderName;

/// The request id header, echoed when sane and generated otherwise.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// Runs `serve` with `id` as the current request id.
pub async fn scope<F: Future>(id: Arc<str>, serve: F) -> F::Output {
    REQUEST_ID.scope(id, serve).await
}

/// The request id, also stored in the request extensions for handlers that
/// hand work to other tasks.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);
