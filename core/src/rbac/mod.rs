//! Role-based access control: permissions and the `Require<P>` extractor,
//! the built-in roles, the bootstrap admin, and the `/admin/*` routes for
//! roles, permissions and users.

pub mod bootstrap;
pub mod paths;
pub mod permission_routes;
pub mod permissions;
pub mod role_routes;
pub mod store;
pub mod user_admin;

use std::sync::Arc;

use axum::{
    extract::FromRef,
    routing::{get, post},
    Router,
};

use crate::{
    auth::{cache::AuthCache, password::PasswordHasher, Gate},
    db::Database,
};

/// What the `/admin` routes use.
#[derive(Debug)]
pub struct RbacState {
    /// The database pool.
    pub db: Database,
    /// Told about every grant, role and user change.
    pub auth: Arc<AuthCache>,
    /// Hashes the passwords of accounts admins create.
    pub passwords: Arc<PasswordHasher>,
}

/// The `/admin` routes, for any application state that provides
/// [`RbacState`] and the authentication [`Gate`].
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<RbacState>: FromRef<S>,
    Arc<Gate>: FromRef<S>,
    Arc<crate::config::Config>: FromRef<S>,
    Database: FromRef<S>,
{
    Router::new()
        .route(
            "/admin/roles",
            get(role_routes::list).post(role_routes::create),
        )
        .route(
            "/admin/roles/{role_id}",
            get(role_routes::get_one)
                .put(role_routes::update)
                .delete(role_routes::delete),
        )
        .route(
            "/admin/roles/{role_id}/permissions/{permission}",
            post(role_routes::grant).delete(role_routes::revoke),
        )
        .route(
            "/admin/permissions",
            get(permission_routes::list).post(permission_routes::create),
        )
        .route(
            "/admin/users",
            get(user_admin::list).post(user_admin::create),
        )
        .route("/admin/users/{user_id}", get(user_admin::get_one))
        .route(
            "/admin/users/{user_id}/roles/{role_id}",
            post(user_admin::assign_role).delete(user_admin::remove_role),
        )
        .route(
            "/admin/users/{user_id}/activate",
            post(user_admin::activate),
        )
        .route(
            "/admin/users/{user_id}/deactivate",
            post(user_admin::deactivate),
        )
}
