//! Activation, deactivation and role changes never leave the install
//! without an active administrator, even when two admins race.

use crate::common::{access_token, assert_error_mentions, TestServer};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_and_role_guards_keep_the_install_administrable() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let admin_user = server.me_id(&admin).await;
    let admin_role = server.role_id(&admin, "admin").await;
    let user_role = server.role_id(&admin, "user").await;

    // The only admin can be neither deactivated (by itself or anyone) nor
    // stripped of the role.
    server
        .as_(&admin)
        .post(&format!("/admin/users/{admin_user}/deactivate"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server
        .as_(&admin)
        .delete(&format!("/admin/users/{admin_user}/roles/{admin_role}"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;

    // A plain user: deactivation ends their sessions and logins at once.
    let (user_id, user) = server.user_token("kim@example.com").await;
    let session = server.login("kim@example.com", "UserPassw0rd!").await;
    let old_refresh = session["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    let deactivated = server
        .post_as(&admin, &format!("/admin/users/{user_id}/deactivate"))
        .await;
    assert_eq!(deactivated, json!({"id": user_id, "is_active": false}));
    server
        .as_(&user)
        .get("/auth/me")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server
        .anonymous()
        .post("/auth/login")
        .json(json!({"username": "kim@example.com", "password": "UserPassw0rd!"}))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    let activated = server
        .post_as(&admin, &format!("/admin/users/{user_id}/activate"))
        .await;
    assert_eq!(activated, json!({"id": user_id, "is_active": true}));
    let fresh = server.login("kim@example.com", "UserPassw0rd!").await;
    // The refresh token from before the deactivation stays revoked; one
    // issued after the activation works.
    let body = server
        .anonymous()
        .post("/auth/refresh")
        .json(json!({"refresh_token": old_refresh}))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    assert_error_mentions(&body, "revoked");
    server.refresh(&fresh).await;

    // With a second admin, the first may lose the role; removing a role the
    // user does not have is 404.
    server
        .post_as(
            &admin,
            &format!("/admin/users/{user_id}/roles/{admin_role}"),
        )
        .await;
    server
        .post_as(
            &admin,
            &format!("/admin/users/{user_id}/roles/{admin_role}"),
        )
        .await;
    let kim_admin = server.login("kim@example.com", "UserPassw0rd!").await;
    let kim_admin = kim_admin["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    server
        .as_(&kim_admin)
        .post(&format!("/admin/users/{user_id}/deactivate"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server
        .delete_as(
            &kim_admin,
            &format!("/admin/users/{admin_user}/roles/{admin_role}"),
        )
        .await;
    server
        .as_(&kim_admin)
        .delete(&format!("/admin/users/{admin_user}/roles/{admin_role}"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&admin)
        .get("/admin/users")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .delete_as(
            &kim_admin,
            &format!("/admin/users/{user_id}/roles/{user_role}"),
        )
        .await;
    server
        .as_(&kim_admin)
        .post("/admin/users/999999/roles/1")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&kim_admin)
        .post(&format!("/admin/users/{user_id}/roles/999999"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server
        .as_(&kim_admin)
        .post("/admin/users/999999/activate")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_with_users_write_cannot_remove_the_last_admin() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let admin_user = server.me_id(&admin).await;
    let admin_role = server.role_id(&admin, "admin").await;

    // An operator role: users:write but not admin.
    let operator_role = server
        .create_role(&admin, "operator", &["users:write"])
        .await;
    let (operator_id, operator) = server.user_token("op@example.com").await;
    let (other_id, _) = server.user_token("other@example.com").await;
    // Before the role is assigned the operator cannot deactivate anyone.
    server
        .as_(&operator)
        .post(&format!("/admin/users/{other_id}/deactivate"))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .post_as(
            &admin,
            &format!("/admin/users/{operator_id}/roles/{operator_role}"),
        )
        .await;

    // The guards, not the permission, refuse these: the sole active admin.
    let body = server
        .as_(&operator)
        .post(&format!("/admin/users/{admin_user}/deactivate"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    assert_error_mentions(&body, "last active administrator");
    server
        .as_(&operator)
        .delete(&format!("/admin/users/{admin_user}/roles/{admin_role}"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    // The admin still works.
    server.get_as(&admin, "/admin/roles").await;

    // Anyone else the operator may deactivate; unknown users are 404.
    let done = server
        .post_as(&operator, &format!("/admin/users/{other_id}/deactivate"))
        .await;
    assert_eq!(done, json!({"id": other_id, "is_active": false}));
    server
        .as_(&operator)
        .post("/admin/users/999999/deactivate")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    // The operator deactivating itself is refused too.
    let body = server
        .as_(&operator)
        .post(&format!("/admin/users/{operator_id}/deactivate"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    assert_error_mentions(&body, "your own account");

    // Once a second admin is active, the first may be deactivated.
    server
        .post_as(
            &admin,
            &format!("/admin/users/{operator_id}/roles/{admin_role}"),
        )
        .await;
    let first_out = server
        .post_as(&operator, &format!("/admin/users/{admin_user}/deactivate"))
        .await;
    assert_eq!(first_out, json!({"id": admin_user, "is_active": false}));
    server
        .as_(&admin)
        .get("/admin/roles")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_deactivating_each_other_at_once_leave_one_active() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let first = server.me_id(&admin).await;
    let admin_role = server.role_id(&admin, "admin").await;
    let (second, _) = server.user_token("second@example.com").await;
    server
        .post_as(&admin, &format!("/admin/users/{second}/roles/{admin_role}"))
        .await;
    for round in 0..5 {
        let first_token = server.admin_token().await;
        let second_token = access_token(&server.login("second@example.com", "UserPassw0rd!").await);
        let second_path = format!("/admin/users/{second}/deactivate");
        let first_path = format!("/admin/users/{first}/deactivate");
        let (a, b) = tokio::join!(
            server.as_(&first_token).post(&second_path).send(),
            server.as_(&second_token).post(&first_path).send(),
        );
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        // The loser is refused by the guard (409), or, when its request
        // arrives after the winner committed, by authentication (401).
        assert!(
            statuses == [StatusCode::OK, StatusCode::UNAUTHORIZED]
                || statuses == [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {statuses:?}"
        );
        let (survivor, survivor_token, loser) = if a.status() == StatusCode::OK {
            (first, first_token, second)
        } else {
            (second, second_token, first)
        };
        let active = server
            .get_as(&survivor_token, "/admin/users?is_active=true")
            .await;
        let admins: Vec<i64> = crate::common::items(&active)
            .iter()
            .filter(|u| {
                u["roles"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!("admin")))
            })
            .map(|u| u["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(admins, vec![survivor], "round {round}");
        server
            .post_as(&survivor_token, &format!("/admin/users/{loser}/activate"))
            .await;
    }
    server.stop().await;
}
