//! The path parameters of the `/admin` routes, for their OpenAPI
//! annotations: `params(RoleIdPath)`, or `params(UserIdPath, RoleIdPath)`
//! where a path names both.
//!
//! They document; they are not extracted. The handlers take the bare values
//! (`ApiPath<i64>`, `ApiPath<(i64, i64)>`), whose rejection message names
//! the bad value as clients have always seen it; a struct would change it.

/// `{role_id}`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RoleIdPath {
    /// Role id
    pub role_id: i64,
}

/// `{user_id}`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserIdPath {
    /// User id
    pub user_id: i64,
}

/// `{permission}`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PermissionPath {
    /// Permission id or name
    pub permission: String,
}
