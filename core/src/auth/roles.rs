//! The built-in roles' names: what authentication gives a new account
//! (`user`) and what rate limits and RBAC treat specially (`admin`). RBAC
//! (`crate::rbac`) creates and manages the roles themselves.

/// The all-powerful built-in role.
pub const ADMIN_ROLE: &str = "admin";
/// The default role of registered accounts.
pub const USER_ROLE: &str = "user";

/// Built-in roles: `(name, description)`.
pub const BUILTIN_ROLES: &[(&str, &str)] = &[
    (
        ADMIN_ROLE,
        "Administrator: every permission, including those plugins add",
    ),
    (USER_ROLE, "Registered user"),
];
