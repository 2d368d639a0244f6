//! What a person's browser sees: the home page (`/`), the API reference
//! (`/core-docs`, ReDoc over `/openapi.json`), the operator console
//! (`/console`) and the files under `/static`.
//!
//! # Layout
//!
//! - [`openapi`]: the OpenAPI document: the core routes, generated from the
//!   handlers' `#[utoipa::path]` annotations, merged with the fragment of
//!   every enabled plugin under its prefix.
//! - [`pages`]: the askama pages (templates in the repository's
//!   `templates/`).
//! - [`assets`]: `/static/{path}` from `web.static_dir`, with cache headers.
//!
//! The pages are public and server-rendered, readable without JavaScript.
//! The console is the exception by nature: its page is a shell, and what it
//! shows comes from the authenticated public API (`/auth/login`,
//! `/system/plugins`, `/system/tasks`, `/ws`), called by
//! `static/js/console.js` with the operator's token, so RBAC applies to it
//! exactly as to any other client.

pub mod assets;
pub mod openapi;
pub mod pages;

use std::sync::Arc;

use axum::{extract::FromRef, routing::get, Router};

use crate::{
    config::Config, observability::health::HealthState, plugins::manager::PluginManager,
    tasks::Scheduler,
};

/// `/`, `/core-docs`, `/console`, `/openapi.json` and `/static/{path}`.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Config>: FromRef<S>,
    Arc<HealthState>: FromRef<S>,
    Arc<PluginManager>: FromRef<S>,
    Arc<Scheduler>: FromRef<S>,
{
    Router::new()
        .route("/", get(pages::home))
        .route("/core-docs", get(pages::core_docs))
        .route("/console", get(pages::console))
        .route("/openapi.json", get(openapi::document))
        .route("/static/{*path}", get(assets::static_file))
}
