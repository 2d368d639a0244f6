//! Authentication: argon2id passwords, HS256 access tokens, rotating refresh
//! tokens, password reset, the `AuthUser` extractor every protected route
//! uses, and the in-memory cache it is answered from (`cache`, kept right
//! by the change log in `changes`).

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

use axum::{
    routing::{get, post, put},
    Router,
};

pub use extract::AuthUser;

use crate::app::AppState;

/// The `/auth` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(routes::register))
        .route("/auth/login", post(routes::login))
        .route("/auth/me", get(routes::me))
        .route("/auth/refresh", post(routes::refresh))
        .route("/auth/logout", post(routes::logout))
        .route("/auth/password/reset", post(routes::password_reset))
        .route("/auth/password/update", put(routes::password_update))
}
