//! `/admin/*` against a real server: roles, permissions, grants, users,
//! and the guards (401, 403, 404, 409, 422) on every route group.
//!
//! One test binary, one file per topic: [`roles`] (the role CRUD and the
//! built-in roles' guards), [`permissions`] (creating, granting, revoking),
//! [`users`] (listing, searching, sorting, creating), [`last_admin`] (the
//! guards that keep one active administrator). This file: every route's
//! 401 and 403, and the helpers the topics share.

#[path = "../common/mod.rs"]
mod common;

mod last_admin;
mod permissions;
mod roles;
mod users;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_needs_a_token_and_the_permission() {
    let server = TestServer::start().await;
    let (_, user) = server.user_token("plain@example.com").await;
    let routes: &[(Method, &str)] = &[
        (Method::GET, "/admin/roles"),
        (Method::POST, "/admin/roles"),
        (Method::GET, "/admin/roles/1"),
        (Method::PUT, "/admin/roles/1"),
        (Method::DELETE, "/admin/roles/1"),
        (Method::POST, "/admin/roles/1/permissions/users:read"),
        (Method::DELETE, "/admin/roles/1/permissions/users:read"),
        (Method::GET, "/admin/permissions"),
        (Method::POST, "/admin/permissions"),
        (Method::GET, "/admin/users"),
        (Method::POST, "/admin/users"),
        (Method::GET, "/admin/users/1"),
        (Method::POST, "/admin/users/1/roles/1"),
        (Method::DELETE, "/admin/users/1/roles/1"),
        (Method::POST, "/admin/users/1/activate"),
        (Method::POST, "/admin/users/1/deactivate"),
    ];
    for (method, path) in routes {
        server
            .anonymous()
            .request(method.clone(), path)
            .json(json!({}))
            .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
            .await;
        let body = server
            .as_(&user)
            .request(method.clone(), path)
            .json(json!({}))
            .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
            .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("missing permission")),
            "{method} {path}: {body}"
        );
    }
    server.stop().await;
}
