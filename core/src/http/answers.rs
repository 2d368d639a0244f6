//! Error answers the core routes' `#[utoipa::path]` annotations share.
//!
//! Each is a marker type listed in `responses(...)` next to the route's own
//! rows, the way permission markers are (`responses(RolesRead, NoSuchRole)`,
//! see [`crate::rbac::permissions`]): the wording of "no such role" or of a
//! rejected body lives in one place, so the routes that answer it cannot
//! drift apart in the OpenAPI document. Answers only one route gives stay in
//! its annotation.

use std::collections::BTreeMap;

use utoipa::openapi::{response::Response, ContentBuilder, Ref, RefOr, ResponseBuilder};

/// What `utoipa::IntoResponses::responses` returns: status to answer.
pub type Answers = BTreeMap<String, RefOr<Response>>;

/// An answer in the standard error body ([`crate::error::ErrorBody`]), as
/// `(status = ..., description = ..., body = crate::error::ErrorBody)` would
/// write it; a builder so a caller can add extensions.
pub fn error_answer(description: impl Into<String>) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

macro_rules! error_answers {
    ($($(#[$doc:meta])* $marker:ident => $status:literal, $description:literal;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $marker;
            impl utoipa::IntoResponses for $marker {
                fn responses() -> Answers {
                    Answers::from([(
                        $status.to_string(),
                        error_answer($description).build().into(),
                    )])
                }
            }
        )*
    };
}

error_answers! {
    /// A token-only route called without a valid token (guarded routes get
    /// theirs from their permission marker).
    Unauthenticated => "401", "Missing or invalid access token";
    /// A route that manages credentials, refused to API keys.
    ApiKeyRefused => "403", "The request came with an API key";
    /// `{role_id}` names no role.
    NoSuchRole => "404", "No such role";
    /// `{user_id}` names no user.
    NoSuchUser => "404", "No such user";
    /// `{plugin_id}` names no installed plugin.
    NoSuchPlugin => "404", "No such plugin";
    /// `{task_id}` names no task.
    NoSuchTask => "404", "No such task";
    /// A new account's email belongs to another.
    EmailTaken => "409", "The email is taken";
    /// A new role's or permission's name belongs to another.
    NameTaken => "409", "The name is taken";
    /// A list query or a body out of range or of the wrong shape.
    InvalidInput => "422", "Invalid query or body";
}
