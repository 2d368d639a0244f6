//! Roles: list, create, rename, describe, delete, with the built-in
//! roles' guards and every error status.

use crate::common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_crud_with_builtin_guards() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;

    let list = server.get_as(&admin, "/admin/roles").await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["skip"], 0);
    assert_eq!(list["limit"], 20);
    assert_eq!(list["has_more"], false);
    let names: Vec<&str> = crate::common::items(&list)
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["admin", "user"]);
    for role in crate::common::items(&list) {
        assert_eq!(role["is_builtin"], true, "{role}");
        assert!(
            role["id"].is_i64() && role["created_at"].is_string(),
            "{role}"
        );
        assert!(role["description"].is_string(), "{role}");
    }

    let manager = server
        .create_as(
            &admin,
            "/admin/roles",
            json!({"name": "manager", "description": "Team lead"}),
        )
        .await;
    assert_eq!(manager["name"], "manager");
    assert_eq!(manager["description"], "Team lead");
    assert_eq!(manager["is_builtin"], false);
    let id = manager["id"].as_i64().expect("id");

    server
        .as_(&admin)
        .post("/admin/roles")
        .json(json!({"name": "manager"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    let body = server
        .as_(&admin)
        .post("/admin/roles")
        .json(json!({"name": "Bad Name"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(body["error"]["details"][0]["field"], "name");

    let renamed = server
        .put_as(
            &admin,
            &format!("/admin/roles/{id}"),
            json!({"name": "lead", "description": "Leads"}),
        )
        .await;
    assert_eq!(renamed["name"], "lead");
    assert_eq!(renamed["description"], "Leads");
    assert_eq!(renamed["users_count"], 0);
    assert_eq!(renamed["permissions"], json!([]));
    server
        .as_(&admin)
        .put(&format!("/admin/roles/{id}"))
        .json(json!({"name": "user"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    let body = server
        .as_(&admin)
        .put(&format!("/admin/roles/{id}"))
        .json(json!({"name": "9lives"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(body["error"]["details"][0]["field"], "name");
    server
        .as_(&admin)
        .put("/admin/roles/999999")
        .json(json!({"description": "x"}))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;

    let admin_id = server.role_id(&admin, "admin").await;
    let user_id = server.role_id(&admin, "user").await;
    let detail = server
        .get_as(&admin, &format!("/admin/roles/{admin_id}"))
        .await;
    assert_eq!(detail["users_count"], 1);
    let granted: Vec<&str> = detail["permissions"]
        .as_array()
        .expect("perms")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert!(
        granted.contains(&"users:read") && granted.contains(&"plugins:manage"),
        "{detail}"
    );

    for (path, body) in [
        (format!("/admin/roles/{admin_id}"), json!({"name": "root"})),
        (format!("/admin/roles/{user_id}"), json!({"name": "member"})),
    ] {
        server
            .as_(&admin)
            .put(&path)
            .json(body)
            .expect_error(StatusCode::CONFLICT, "CONFLICT")
            .await;
    }
    let redescribed = server
        .put_as(
            &admin,
            &format!("/admin/roles/{user_id}"),
            json!({"description": "Members"}),
        )
        .await;
    assert_eq!(redescribed["description"], "Members");
    server
        .as_(&admin)
        .delete(&format!("/admin/roles/{admin_id}"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;

    // Deleting a held role takes it away from its holders.
    let (holder, _) = server.user_token("holder@example.com").await;
    server
        .post_as(&admin, &format!("/admin/users/{holder}/roles/{id}"))
        .await;
    let held = server.get_as(&admin, &format!("/admin/roles/{id}")).await;
    assert_eq!(held["users_count"], 1);
    server
        .delete_as(&admin, &format!("/admin/roles/{id}"))
        .await;
    let holder = server
        .get_as(&admin, &format!("/admin/users/{holder}"))
        .await;
    assert_eq!(holder["roles"], json!(["user"]));
    server
        .as_(&admin)
        .get(&format!("/admin/roles/{id}"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .delete(&format!("/admin/roles/{id}"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .get("/admin/roles/abc")
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    server
        .as_(&admin)
        .get("/admin/roles?limit=101")
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    server.stop().await;
}
