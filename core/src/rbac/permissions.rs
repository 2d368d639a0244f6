//! Permission names, the `Require<P>` extractor, and the core permission set.
//!
//! Permissions are `resource:action` strings. Core routes name theirs with a
//! marker type (`Require<UsersRead>`), so a handler's signature states what
//! it needs and a route cannot be added without choosing one.

use std::{marker::PhantomData, sync::Arc};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};

use utoipa::IntoResponses;

use crate::{
    auth::{AuthUser, Gate},
    error::ApiError,
    http::answers::{error_answer, Answers, Unauthenticated},
};

/// A permission a marker type stands for.
pub trait Permission {
    /// The `resource:action` name.
    const NAME: &'static str;
    /// What it allows, for `/admin/permissions`.
    const DESCRIPTION: &'static str;
}

macro_rules! core_permissions {
    ($($marker:ident => $name:literal, $description:literal;)*) => {
        $(
            #[doc = $description]
            #[derive(Debug)]
            pub struct $marker;
            impl Permission for $marker {
                const NAME: &'static str = $name;
                const DESCRIPTION: &'static str = $description;
            }
            /// In `#[utoipa::path(responses(...))]`: the route's 401 and 403.
            impl utoipa::IntoResponses for $marker {
                fn responses() -> Answers {
                    refusals($name)
                }
            }
        )*
        /// Every permission the host itself defines: `(name, description)`.
        pub const CORE_PERMISSIONS: &[(&str, &str)] = &[$(($name, $description)),*];
    };
}

/// The OpenAPI extension on a guarded route's 403 that names the
/// permission it needs.
pub const PERMISSION_EXTENSION: &str = "x-permission";

/// The answers of a route guarded by `permission` to a caller who may not
/// use it, in the standard error body. The 403 names the permission in
/// [`PERMISSION_EXTENSION`], which also tells the OpenAPI document that the
/// route needs the bearer token.
fn refusals(permission: &str) -> Answers {
    use utoipa::openapi::extensions::Extensions;
    let mut answers = Unauthenticated::responses();
    let forbidden = error_answer(format!("Lacks `{permission}`")).extensions(Some(
        Extensions::builder()
            .add(PERMISSION_EXTENSION, permission)
            .build(),
    ));
    answers.insert("403".to_string(), forbidden.build().into());
    answers
}

core_permissions! {
    UsersRead => "users:read", "List and view user accounts";
    UsersWrite => "users:write", "Create, activate, deactivate users and assign their roles";
    RolesRead => "roles:read", "List and view roles and permissions";
    RolesWrite => "roles:write", "Create, change and delete roles and permissions, and grant permissions to roles";
    PluginsManage => "plugins:manage", "Install, enable, disable, reload and uninstall plugins";
    TasksManage => "tasks:manage", "Create, run, pause and resume scheduled tasks";
    AuditRead => "audit:read", "Read the audit log";
}

/// The authenticated caller, checked to hold `P`: 401 without a valid token,
/// 403 without the permission.
#[derive(Debug)]
pub struct Require<P: Permission> {
    /// The caller.
    pub user: AuthUser,
    marker: PhantomData<P>,
}

impl<P, S> FromRequestParts<S> for Require<P>
where
    P: Permission + Send + Sync,
    S: Send + Sync,
    Arc<Gate>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require(P::NAME)?;
        Ok(Self {
            user,
            marker: PhantomData,
        })
    }
}

/// Splits and checks a `resource:action` name: lower-case ASCII letters,
/// digits, `_`, `-` and `.`, one colon.
pub fn parse_permission_name(name: &str) -> Option<(&str, &str)> {
    let (resource, action) = name.split_once(':')?;
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 64
            && part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            })
    };
    (part_ok(resource) && part_ok(action)).then_some((resource, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_are_resource_colon_action() {
        assert_eq!(
            parse_permission_name("reports:generate"),
            Some(("reports", "generate"))
        );
        for bad in ["reports", "Reports:gen", ":x", "x:", "a:b:c", "a b:c"] {
            assert_eq!(parse_permission_name(bad), None, "{bad}");
        }
        for (name, _) in CORE_PERMISSIONS {
            assert!(parse_permission_name(name).is_some(), "{name}");
        }
    }
}
