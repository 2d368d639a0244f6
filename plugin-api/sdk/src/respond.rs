//! What a handler returns: anything that implements [`IntoResponse`].
//!
//! - [`Response`] itself, for full control;
//! - [`Json<T>`](crate::Json) (200), [`Created<T>`] (201), [`NoContent`]
//!   (204), [`ListBody<T>`] (200), `()` (204);
//! - `Result<T, E>` where both sides convert: handlers use `?` on
//!   `Result<_, Response>` and on [`HostError`], which becomes 409/422/403/
//!   404/503/500 without leaking SQL to the client.
//!
//! Each type also says what it adds to the route's OpenAPI operation.

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    extract::Json,
    host::HostError,
    http::{ListBody, Response},
    openapi::Operation,
};

/// Something a handler can return.
pub trait IntoResponse {
    /// The response sent to the client.
    fn into_response(self) -> Response;

    /// What it adds to the route's OpenAPI operation (its responses).
    fn document(_operation: &mut Operation) {}
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<T: Serialize + ToSchema> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(200, &self.0)
    }

    fn document(operation: &mut Operation) {
        operation.response::<T>(200, "OK");
    }
}

/// 201 with a JSON body: what a create answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created<T>(pub T);

impl<T: Serialize + ToSchema> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        Response::json(201, &self.0)
    }

    fn document(operation: &mut Operation) {
        operation.response::<T>(201, "Created");
    }
}

/// 204, no body: what a delete answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        Response::empty(204)
    }

    fn document(operation: &mut Operation) {
        operation.empty_response(204, "No content");
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::empty(204)
    }

    fn document(operation: &mut Operation) {
        operation.empty_response(204, "No content");
    }
}

impl<T: Serialize + ToSchema> IntoResponse for ListBody<T> {
    fn into_response(self) -> Response {
        Response::json(200, &self)
    }

    fn document(operation: &mut Operation) {
        operation.list_response::<T>();
    }
}

impl IntoResponse for HostError {
    fn into_response(self) -> Response {
        HostError::into_response(&self)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(error) => error.into_response(),
        }
    }

    fn document(operation: &mut Operation) {
        T::document(operation);
        E::document(operation);
    }
}
