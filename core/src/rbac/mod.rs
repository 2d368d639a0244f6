//! Role-based access control: permissions and the `Require<P>` extractor,
//! the built-in roles, the bootstrap admin, and the `/admin/*` routes for
//! roles, permissions and users.

pub mod bootstrap;
pub mod permissions;
pub mod store;

use axum::Router;

use crate::app::AppState;

/// The `/admin` routes.
pub fn router() -> Router<AppState> {
    Router::new()
}
