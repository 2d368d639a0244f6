//! `/admin/*` against a real server: roles, permissions, grants, users,
//! and the guards (401, 403, 404, 409, 422) on every route group.

mod common;

use common::{access_token, call, expect_error, expect_status, TestServer, ADMIN_EMAIL};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn role_id(server: &TestServer, token: &str, name: &str) -> i64 {
    let roles = expect_status(
        call(server, Method::GET, "/admin/roles?limit=100", token, None).await,
        StatusCode::OK,
    )
    .await;
    roles["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|role| role["name"] == name)
        .and_then(|role| role["id"].as_i64())
        .expect("role exists")
}

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
        let anonymous = server
            .request(method.clone(), path)
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        expect_error(anonymous, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
        let forbidden = call(&server, method.clone(), path, &user, Some(json!({}))).await;
        let body = expect_error(forbidden, StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("missing permission")),
            "{method} {path}: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_crud_with_builtin_guards() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;

    let list = expect_status(
        call(&server, Method::GET, "/admin/roles", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["skip"], 0);
    assert_eq!(list["limit"], 20);
    assert_eq!(list["has_more"], false);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["admin", "user"]);
    for role in list["items"].as_array().expect("items") {
        assert_eq!(role["is_builtin"], true, "{role}");
        assert!(
            role["id"].is_i64() && role["created_at"].is_string(),
            "{role}"
        );
        assert!(role["description"].is_string(), "{role}");
    }

    let created = call(
        &server,
        Method::POST,
        "/admin/roles",
        &admin,
        Some(json!({"name": "manager", "description": "Team lead"})),
    )
    .await;
    let manager = expect_status(created, StatusCode::CREATED).await;
    assert_eq!(manager["name"], "manager");
    assert_eq!(manager["description"], "Team lead");
    assert_eq!(manager["is_builtin"], false);
    let id = manager["id"].as_i64().expect("id");

    let duplicate = call(
        &server,
        Method::POST,
        "/admin/roles",
        &admin,
        Some(json!({"name": "manager"})),
    )
    .await;
    expect_error(duplicate, StatusCode::CONFLICT, "CONFLICT").await;
    let bad_name = call(
        &server,
        Method::POST,
        "/admin/roles",
        &admin,
        Some(json!({"name": "Bad Name"})),
    )
    .await;
    let body = expect_error(
        bad_name,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "name");

    let renamed = call(
        &server,
        Method::PUT,
        &format!("/admin/roles/{id}"),
        &admin,
        Some(json!({"name": "lead", "description": "Leads"})),
    )
    .await;
    let renamed = expect_status(renamed, StatusCode::OK).await;
    assert_eq!(renamed["name"], "lead");
    assert_eq!(renamed["description"], "Leads");
    assert_eq!(renamed["users_count"], 0);
    assert_eq!(renamed["permissions"], json!([]));
    let clash = call(
        &server,
        Method::PUT,
        &format!("/admin/roles/{id}"),
        &admin,
        Some(json!({"name": "user"})),
    )
    .await;
    expect_error(clash, StatusCode::CONFLICT, "CONFLICT").await;
    let bad_rename = call(
        &server,
        Method::PUT,
        &format!("/admin/roles/{id}"),
        &admin,
        Some(json!({"name": "9lives"})),
    )
    .await;
    let body = expect_error(
        bad_rename,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "name");
    expect_error(
        call(
            &server,
            Method::PUT,
            "/admin/roles/999999",
            &admin,
            Some(json!({"description": "x"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    let admin_id = role_id(&server, &admin, "admin").await;
    let user_id = role_id(&server, &admin, "user").await;
    let detail = expect_status(
        call(
            &server,
            Method::GET,
            &format!("/admin/roles/{admin_id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
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
        expect_error(
            call(&server, Method::PUT, &path, &admin, Some(body)).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
    }
    let redescribed = call(
        &server,
        Method::PUT,
        &format!("/admin/roles/{user_id}"),
        &admin,
        Some(json!({"description": "Members"})),
    )
    .await;
    assert_eq!(
        expect_status(redescribed, StatusCode::OK).await["description"],
        "Members"
    );
    expect_error(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/roles/{admin_id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;

    // Deleting a held role takes it away from its holders.
    let (holder, _) = server.user_token("holder@example.com").await;
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{holder}/roles/{id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let held = expect_status(
        call(
            &server,
            Method::GET,
            &format!("/admin/roles/{id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(held["users_count"], 1);
    expect_status(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/roles/{id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let holder = expect_status(
        call(
            &server,
            Method::GET,
            &format!("/admin/users/{holder}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(holder["roles"], json!(["user"]));
    expect_error(
        call(
            &server,
            Method::GET,
            &format!("/admin/roles/{id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/roles/{id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(&server, Method::GET, "/admin/roles/abc", &admin, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    expect_error(
        call(&server, Method::GET, "/admin/roles?limit=101", &admin, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_created_granted_and_revoked() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;

    let created = call(
        &server,
        Method::POST,
        "/admin/permissions",
        &admin,
        Some(json!({"name": "reports:generate", "description": "Generate reports", "resource": "reports", "action": "generate"})),
    )
    .await;
    let permission = expect_status(created, StatusCode::CREATED).await;
    assert_eq!(permission["resource"], "reports");
    assert_eq!(permission["action"], "generate");

    let duplicate = call(
        &server,
        Method::POST,
        "/admin/permissions",
        &admin,
        Some(json!({"name": "reports:generate"})),
    )
    .await;
    expect_error(duplicate, StatusCode::CONFLICT, "CONFLICT").await;
    let malformed = call(
        &server,
        Method::POST,
        "/admin/permissions",
        &admin,
        Some(json!({"name": "reports"})),
    )
    .await;
    expect_error(
        malformed,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let mismatch = call(
        &server,
        Method::POST,
        "/admin/permissions",
        &admin,
        Some(json!({"name": "a:b", "resource": "x", "action": "y"})),
    )
    .await;
    let body = expect_error(
        mismatch,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["error"]["details"].as_array().map(Vec::len), Some(2));

    let listed = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/permissions?resource=reports",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
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
    let all = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/permissions?limit=2",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(all["has_more"], true);

    // A new permission belongs to admin at once.
    let me = expect_status(
        call(&server, Method::GET, "/auth/me", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    assert!(me["permissions"]
        .as_array()
        .expect("perms")
        .contains(&json!("reports:generate")));

    // Grant users:read to a new role held by a plain user: 403 becomes 200.
    let (user_id, user) = server.user_token("auditor@example.com").await;
    expect_error(
        call(&server, Method::GET, "/admin/users", &user, None).await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    let auditor = expect_status(
        call(
            &server,
            Method::POST,
            "/admin/roles",
            &admin,
            Some(json!({"name": "auditor"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let auditor_id = auditor["id"].as_i64().expect("id");
    let granted = call(
        &server,
        Method::POST,
        &format!("/admin/roles/{auditor_id}/permissions/users:read"),
        &admin,
        None,
    )
    .await;
    let granted = expect_status(granted, StatusCode::OK).await;
    assert_eq!(granted["permissions"][0]["name"], "users:read");
    // Granting again is harmless; by id works too.
    let by_id = permission["id"].as_i64().expect("id");
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/roles/{auditor_id}/permissions/{by_id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/roles/{auditor_id}/permissions/users:read"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let assigned = call(
        &server,
        Method::POST,
        &format!("/admin/users/{user_id}/roles/{auditor_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        expect_status(assigned, StatusCode::OK).await["message"],
        "role assigned"
    );
    expect_status(
        call(&server, Method::GET, "/admin/users", &user, None).await,
        StatusCode::OK,
    )
    .await;
    let me = expect_status(
        call(&server, Method::GET, "/auth/me", &user, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["roles"], json!(["auditor", "user"]));
    assert_eq!(me["permissions"], json!(["reports:generate", "users:read"]));
    let detail = expect_status(
        call(
            &server,
            Method::GET,
            &format!("/admin/roles/{auditor_id}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["users_count"], 1);

    // Revoking takes it away on the next request.
    expect_status(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/roles/{auditor_id}/permissions/users:read"),
            &admin,
            None,
        )
        .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_error(
        call(&server, Method::GET, "/admin/users", &user, None).await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/roles/{auditor_id}/permissions/users:read"),
            &admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::POST,
            &format!("/admin/roles/{auditor_id}/permissions/nope:nope"),
            &admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::POST,
            "/admin/roles/999999/permissions/users:read",
            &admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::DELETE,
            "/admin/roles/999999/permissions/users:read",
            &admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let admin_role = role_id(&server, &admin, "admin").await;
    expect_error(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/roles/{admin_role}/permissions/users:read"),
            &admin,
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_listed_searched_sorted_and_created() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    for (email, name) in [
        ("zoe@example.com", "Zoe Zed"),
        ("adam@example.com", "Adam Ant"),
        ("bob@other.org", "Bob 100%"),
    ] {
        let created = call(
            &server,
            Method::POST,
            "/admin/users",
            &admin,
            Some(json!({"email": email, "name": name, "password": "SecurePass123!"})),
        )
        .await;
        let created = expect_status(created, StatusCode::CREATED).await;
        assert_eq!(created["roles"], json!(["user"]));
        assert_eq!(created["full_name"], name);
    }
    let manager = call(
        &server,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": "Max@Example.com", "full_name": "Max", "password": "SecurePass123!", "role": "admin"})),
    )
    .await;
    let manager = expect_status(manager, StatusCode::CREATED).await;
    assert_eq!(manager["email"], "max@example.com");
    assert_eq!(manager["roles"], json!(["admin"]));

    let all = expect_status(
        call(&server, Method::GET, "/admin/users", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["total"], 5);
    let first = &all["items"][0];
    assert_eq!(first["email"], ADMIN_EMAIL);
    for field in [
        "id",
        "email",
        "full_name",
        "is_active",
        "roles",
        "last_login",
        "created_at",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert!(first.get("password_hash").is_none());

    let by_email = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/users?search=EXAMPLE.com&sort_by=email&sort_order=desc",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let emails: Vec<&str> = by_email["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["email"].as_str().expect("email"))
        .collect();
    assert_eq!(
        emails,
        vec!["zoe@example.com", "max@example.com", "adam@example.com"]
    );
    let by_name = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/users?search=ant",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_name["total"], 1);
    // LIKE wildcards in the search are literal.
    let percent = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/users?search=100%25",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(percent["total"], 1);
    assert_eq!(percent["items"][0]["email"], "bob@other.org");

    let page = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/users?skip=1&limit=2&sort_by=email",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["skip"], 1);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["has_more"], true);
    let emails: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["email"].as_str().expect("email"))
        .collect();
    assert_eq!(emails, vec!["admin@xcore.test", "bob@other.org"]);

    let zoe = by_email["items"][0]["id"].as_i64().expect("id");
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{zoe}/deactivate"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let inactive = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/users?is_active=false",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(inactive["total"], 1);
    assert_eq!(inactive["items"][0]["id"], zoe);
    let active = expect_status(
        call(
            &server,
            Method::GET,
            "/admin/users?is_active=true",
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(active["total"], 4);
    let one = expect_status(
        call(
            &server,
            Method::GET,
            &format!("/admin/users/{zoe}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["is_active"], false);

    for bad in [
        "/admin/users?limit=101",
        "/admin/users?sort_by=password_hash",
        "/admin/users?sort_order=up",
        "/admin/users?is_active=maybe",
        "/admin/users?skip=-1",
    ] {
        expect_error(
            call(&server, Method::GET, bad, &admin, None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        )
        .await;
    }
    let invalid = call(
        &server,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": "nope", "password": "weak"})),
    )
    .await;
    let body = expect_error(
        invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    let mut fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field"))
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["email", "password"]);
    let weak = call(
        &server,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": "weak@example.com", "password": "password"})),
    )
    .await;
    let body = expect_error(weak, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR").await;
    assert_eq!(body["error"]["details"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["error"]["details"][0]["field"], "password");
    let unknown_role = call(
        &server,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": "r@example.com", "password": "SecurePass123!", "role": "ghost"})),
    )
    .await;
    let body = expect_error(
        unknown_role,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "role");
    let taken = call(
        &server,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": "ZOE@example.com", "password": "SecurePass123!"})),
    )
    .await;
    expect_error(taken, StatusCode::CONFLICT, "CONFLICT").await;
    expect_error(
        call(&server, Method::GET, "/admin/users/999999", &admin, None).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    // Nothing was half-created by the refused requests.
    let after = expect_status(
        call(&server, Method::GET, "/admin/users", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["total"], 5);

    // `roles` (a list) instead of `role`.
    let both = call(
        &server,
        Method::POST,
        "/admin/users",
        &admin,
        Some(json!({"email": "both@example.com", "password": "SecurePass123!", "roles": ["user", "admin"]})),
    )
    .await;
    let both = expect_status(both, StatusCode::CREATED).await;
    assert_eq!(both["roles"], json!(["admin", "user"]));
    assert_eq!(both["is_active"], true);
    assert_eq!(both["full_name"], Value::Null);
    let fetched = expect_status(
        call(
            &server,
            Method::GET,
            &format!("/admin/users/{}", both["id"]),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fetched, both);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_and_role_guards_keep_the_install_administrable() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let me = expect_status(
        call(&server, Method::GET, "/auth/me", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    let admin_user = me["id"].as_i64().expect("id");
    let admin_role = role_id(&server, &admin, "admin").await;
    let user_role = role_id(&server, &admin, "user").await;

    // The only admin can be neither deactivated (by itself or anyone) nor
    // stripped of the role.
    expect_error(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{admin_user}/deactivate"),
            &admin,
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/users/{admin_user}/roles/{admin_role}"),
            &admin,
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;

    // A plain user: deactivation ends their sessions and logins at once.
    let (user_id, user) = server.user_token("kim@example.com").await;
    let session = server.login("kim@example.com", "UserPassw0rd!").await;
    let old_refresh = session["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    let deactivated = call(
        &server,
        Method::POST,
        &format!("/admin/users/{user_id}/deactivate"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        expect_status(deactivated, StatusCode::OK).await,
        json!({"id": user_id, "is_active": false})
    );
    expect_error(
        call(&server, Method::GET, "/auth/me", &user, None).await,
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    let login = server
        .post("/auth/login")
        .json(&json!({"username": "kim@example.com", "password": "UserPassw0rd!"}))
        .send()
        .await
        .expect("send");
    expect_error(login, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    let activated = call(
        &server,
        Method::POST,
        &format!("/admin/users/{user_id}/activate"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        expect_status(activated, StatusCode::OK).await,
        json!({"id": user_id, "is_active": true})
    );
    let fresh = server.login("kim@example.com", "UserPassw0rd!").await;
    // The refresh token from before the deactivation stays revoked; one
    // issued after the activation works.
    let stale = server
        .post("/auth/refresh")
        .json(&json!({"refresh_token": old_refresh}))
        .send()
        .await
        .expect("send");
    let body = expect_error(stale, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("revoked")),
        "{body}"
    );
    let rotated = server
        .post("/auth/refresh")
        .json(&json!({"refresh_token": fresh["refresh_token"]}))
        .send()
        .await
        .expect("send");
    expect_status(rotated, StatusCode::OK).await;

    // With a second admin, the first may lose the role; removing a role the
    // user does not have is 404.
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{user_id}/roles/{admin_role}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{user_id}/roles/{admin_role}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let kim_admin = server.login("kim@example.com", "UserPassw0rd!").await;
    let kim_admin = kim_admin["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    expect_error(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{user_id}/deactivate"),
            &kim_admin,
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    expect_status(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/users/{admin_user}/roles/{admin_role}"),
            &kim_admin,
            None,
        )
        .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_error(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/users/{admin_user}/roles/{admin_role}"),
            &kim_admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(&server, Method::GET, "/admin/users", &admin, None).await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    expect_status(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/users/{user_id}/roles/{user_role}"),
            &kim_admin,
            None,
        )
        .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_error(
        call(
            &server,
            Method::POST,
            "/admin/users/999999/roles/1",
            &kim_admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{user_id}/roles/999999"),
            &kim_admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &server,
            Method::POST,
            "/admin/users/999999/activate",
            &kim_admin,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_with_users_write_cannot_remove_the_last_admin() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let me = expect_status(
        call(&server, Method::GET, "/auth/me", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    let admin_user = me["id"].as_i64().expect("id");
    let admin_role = role_id(&server, &admin, "admin").await;

    // An operator role: users:write but not admin.
    let operator = expect_status(
        call(
            &server,
            Method::POST,
            "/admin/roles",
            &admin,
            Some(json!({"name": "operator"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let operator_role = operator["id"].as_i64().expect("id");
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/roles/{operator_role}/permissions/users:write"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (operator_id, operator) = server.user_token("op@example.com").await;
    let (other_id, _) = server.user_token("other@example.com").await;
    // Before the role is assigned the operator cannot deactivate anyone.
    expect_error(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{other_id}/deactivate"),
            &operator,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{operator_id}/roles/{operator_role}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;

    // The guards, not the permission, refuse these: the sole active admin.
    let refused = call(
        &server,
        Method::POST,
        &format!("/admin/users/{admin_user}/deactivate"),
        &operator,
        None,
    )
    .await;
    let body = expect_error(refused, StatusCode::CONFLICT, "CONFLICT").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("last active administrator")),
        "{body}"
    );
    expect_error(
        call(
            &server,
            Method::DELETE,
            &format!("/admin/users/{admin_user}/roles/{admin_role}"),
            &operator,
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    // The admin still works.
    expect_status(
        call(&server, Method::GET, "/admin/roles", &admin, None).await,
        StatusCode::OK,
    )
    .await;

    // Anyone else the operator may deactivate; unknown users are 404.
    let done = call(
        &server,
        Method::POST,
        &format!("/admin/users/{other_id}/deactivate"),
        &operator,
        None,
    )
    .await;
    assert_eq!(
        expect_status(done, StatusCode::OK).await,
        json!({"id": other_id, "is_active": false})
    );
    expect_error(
        call(
            &server,
            Method::POST,
            "/admin/users/999999/deactivate",
            &operator,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    // The operator deactivating itself is refused too.
    let body = expect_error(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{operator_id}/deactivate"),
            &operator,
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "CONFLICT",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("your own account")),
        "{body}"
    );

    // Once a second admin is active, the first may be deactivated.
    let second = call(
        &server,
        Method::POST,
        &format!("/admin/users/{operator_id}/roles/{admin_role}"),
        &admin,
        None,
    )
    .await;
    expect_status(second, StatusCode::OK).await;
    let first_out = call(
        &server,
        Method::POST,
        &format!("/admin/users/{admin_user}/deactivate"),
        &operator,
        None,
    )
    .await;
    assert_eq!(
        expect_status(first_out, StatusCode::OK).await,
        json!({"id": admin_user, "is_active": false})
    );
    expect_error(
        call(&server, Method::GET, "/admin/roles", &admin, None).await,
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_deactivating_each_other_at_once_leave_one_active() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let me = expect_status(
        call(&server, Method::GET, "/auth/me", &admin, None).await,
        StatusCode::OK,
    )
    .await;
    let first = me["id"].as_i64().expect("id");
    let admin_role = role_id(&server, &admin, "admin").await;
    let (second, _) = server.user_token("second@example.com").await;
    expect_status(
        call(
            &server,
            Method::POST,
            &format!("/admin/users/{second}/roles/{admin_role}"),
            &admin,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    for round in 0..5 {
        let first_token = server.admin_token().await;
        let second_token = access_token(&server.login("second@example.com", "UserPassw0rd!").await);
        let second_path = format!("/admin/users/{second}/deactivate");
        let first_path = format!("/admin/users/{first}/deactivate");
        let (a, b) = tokio::join!(
            call(&server, Method::POST, &second_path, &first_token, None),
            call(&server, Method::POST, &first_path, &second_token, None),
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
        let active = expect_status(
            call(
                &server,
                Method::GET,
                "/admin/users?is_active=true",
                &survivor_token,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let admins: Vec<i64> = active["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|u| {
                u["roles"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!("admin")))
            })
            .map(|u| u["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(admins, vec![survivor], "round {round}");
        expect_status(
            call(
                &server,
                Method::POST,
                &format!("/admin/users/{loser}/activate"),
                &survivor_token,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    server.stop().await;
}
