//! Permissions: created, granted to roles, revoked, and what a grant lets
//! a user do.

use crate::common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_created_granted_and_revoked() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;

    let permission = server.create_as(&admin, "/admin/permissions", json!({"name": "reports:generate", "description": "Generate reports", "resource": "reports", "action": "generate"})).await;
    assert_eq!(permission["resource"], "reports");
    assert_eq!(permission["action"], "generate");

    server
        .as_(&admin)
        .post("/admin/permissions")
        .json(json!({"name": "reports:generate"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server
        .as_(&admin)
        .post("/admin/permissions")
        .json(json!({"name": "reports"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let body = server
        .as_(&admin)
        .post("/admin/permissions")
        .json(json!({"name": "a:b", "resource": "x", "action": "y"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(body["error"]["details"].as_array().map(Vec::len), Some(2));

    let listed = server
        .get_as(&admin, "/admin/permissions?resource=reports")
        .await;
    assert_eq!(listed["total"], 1);
    assert_eq!(
        listed["items"][0],
        json!({
            "id": permission["id"],
            "name": "reports:generate",
            "description": "Generate reports",
            "resource": "reports",
            "action": "generate",
        })
    );
    let all = server.get_as(&admin, "/admin/permissions?limit=2").await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(all["has_more"], true);

    // A new permission belongs to admin at once.
    let me = server.me(&admin).await;
    assert!(me["permissions"]
        .as_array()
        .expect("perms")
        .contains(&json!("reports:generate")));

    // Grant users:read to a new role held by a plain user: 403 becomes 200.
    let (user_id, user) = server.user_token("auditor@example.com").await;
    server
        .as_(&user)
        .get("/admin/users")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    let auditor = server
        .create_as(&admin, "/admin/roles", json!({"name": "auditor"}))
        .await;
    let auditor_id = auditor["id"].as_i64().expect("id");
    let granted = server
        .post_as(
            &admin,
            &format!("/admin/roles/{auditor_id}/permissions/users:read"),
        )
        .await;
    assert_eq!(granted["permissions"][0]["name"], "users:read");
    // Granting again is harmless; by id works too.
    let by_id = permission["id"].as_i64().expect("id");
    server
        .post_as(
            &admin,
            &format!("/admin/roles/{auditor_id}/permissions/{by_id}"),
        )
        .await;
    server
        .post_as(
            &admin,
            &format!("/admin/roles/{auditor_id}/permissions/users:read"),
        )
        .await;
    let assigned = server
        .post_as(
            &admin,
            &format!("/admin/users/{user_id}/roles/{auditor_id}"),
        )
        .await;
    assert_eq!(assigned["message"], "role assigned");
    server.get_as(&user, "/admin/users").await;
    let me = server.me(&user).await;
    assert_eq!(me["roles"], json!(["auditor", "user"]));
    assert_eq!(me["permissions"], json!(["reports:generate", "users:read"]));
    let detail = server
        .get_as(&admin, &format!("/admin/roles/{auditor_id}"))
        .await;
    assert_eq!(detail["users_count"], 1);

    // Revoking takes it away on the next request.
    server
        .delete_as(
            &admin,
            &format!("/admin/roles/{auditor_id}/permissions/users:read"),
        )
        .await;
    server
        .as_(&user)
        .get("/admin/users")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .as_(&admin)
        .delete(&format!("/admin/roles/{auditor_id}/permissions/users:read"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .post(&format!("/admin/roles/{auditor_id}/permissions/nope:nope"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .post("/admin/roles/999999/permissions/users:read")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .delete("/admin/roles/999999/permissions/users:read")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let admin_role = server.role_id(&admin, "admin").await;
    server
        .as_(&admin)
        .delete(&format!("/admin/roles/{admin_role}/permissions/users:read"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server.stop().await;
}
