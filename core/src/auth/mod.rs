//! Authentication: argon2id passwords, HS256 access tokens, rotating refresh
//! tokens, password reset, the `AuthUser` extractor every protected route
//! uses, and the in-memory cache it is answered from (`cache`, kept right
//! by the change log in `changes`), and API keys for machines
//! (`api_keys`).

pub mod api_keys;
pub mod cache;
pub mod changes;
pub mod extract;
pub mod password;
pub mod password_reset;
pub mod roles;
pub mod routes;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use axum::{
    extract::FromRef,
    routing::{get, post, put},
    Router,
};

pub use extract::{AuthUser, Gate};

use crate::{config::Config, db::Database, events::EventBus};

/// What the `/auth` routes use: the part of the application state they
/// need, so this module does not depend on the application.
#[derive(Debug)]
pub struct AuthState {
    /// The loaded configuration (`[auth]` above all).
    pub config: Arc<Config>,
    /// The database pool.
    pub db: Database,
    /// Access-token signing and checking.
    pub tokens: Arc<tokens::TokenService>,
    /// Users, grants and revocations in memory.
    pub auth: Arc<cache::AuthCache>,
    /// argon2id hashing and the password policy.
    pub passwords: Arc<password::PasswordHasher>,
    /// The event bus (`user.registered`, `user.login`).
    pub events: EventBus,
}

/// The `/auth` routes, for any application state that provides
/// [`AuthState`] and the [`Gate`] protected routes pass through.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<AuthState>: FromRef<S>,
    Arc<Gate>: FromRef<S>,
    Arc<Config>: FromRef<S>,
{
    Router::new()
        .route("/auth/register", post(routes::register))
        .route("/auth/login", post(routes::login))
        .route("/auth/me", get(routes::me))
        .route("/auth/refresh", post(routes::refresh))
        .route("/auth/logout", post(routes::logout))
        .route("/auth/password/reset", post(routes::password_reset))
        .route("/auth/password/update", put(routes::password_update))
        .route(
            "/auth/api-keys",
            get(api_keys::routes::list).post(api_keys::routes::create),
        )
        .route(
            "/auth/api-keys/{id}",
            axum::routing::delete(api_keys::routes::revoke),
        )
}
