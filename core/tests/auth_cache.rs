//! The authentication cache: every change that affects a decision is
//! applied before the changing request answers, so the very next request is
//! decided on the new state; other instances apply it at their poll; the
//! revocations survive a restart.
//!
//! The test servers never poll on their own (see `common::test_config`), so
//! each test here fails if the change's invalidation is missing: the cache
//! is warmed by a request first, and nothing else would refresh it.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

use common::{
    access_token, deploy, expect_error, expect_status, hello_variant, TestDatabase, TestServer,
    ADMIN_EMAIL,
};

const PASSWORD: &str = "UserPassw0rd!";

/// `GET path` as `token`: the status.
async fn status(server: &TestServer, path: &str, token: &str) -> StatusCode {
    server.as_(token).get(path).send().await.status()
}

/// The error message of a 401 answer to `GET /auth/me`.
async fn refused(server: &TestServer, token: &str) -> String {
    let body = server
        .as_(token)
        .get("/auth/me")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    expected: StatusCode,
) -> Value {
    server
        .as_(token)
        .request(method, path)
        .json_opt(body)
        .expect(expected)
        .await
}

/// A role named `name` holding `permissions`; its id.
async fn role_with(server: &TestServer, admin: &str, name: &str, permissions: &[&str]) -> i64 {
    let role = send(
        server,
        Method::POST,
        "/admin/roles",
        admin,
        Some(json!({"name": name})),
        StatusCode::CREATED,
    )
    .await;
    let id = role["id"].as_i64().expect("role id");
    for permission in permissions {
        send(
            server,
            Method::POST,
            &format!("/admin/roles/{id}/permissions/{permission}"),
            admin,
            None,
            StatusCode::OK,
        )
        .await;
    }
    id
}

async fn permissions_of(server: &TestServer, token: &str) -> Vec<String> {
    let me = send(server, Method::GET, "/auth/me", token, None, StatusCode::OK).await;
    serde_json::from_value(me["permissions"].clone()).expect("permissions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_refuses_the_token_and_its_session_at_once() {
    let server = TestServer::start().await;
    server.register("lou@example.com", PASSWORD).await;
    let tokens = server.login("lou@example.com", PASSWORD).await;
    let token = access_token(&tokens);
    // A second access token of the same session.
    let rotated = server
        .anonymous()
        .post("/auth/refresh")
        .json(json!({"refresh_token": tokens["refresh_token"]}))
        .expect(StatusCode::OK)
        .await;
    let sibling = access_token(&rotated);
    assert_eq!(status(&server, "/auth/me", &token).await, StatusCode::OK);
    assert_eq!(status(&server, "/auth/me", &sibling).await, StatusCode::OK);

    send(
        &server,
        Method::POST,
        "/auth/logout",
        &token,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(refused(&server, &token).await, "token revoked");
    assert_eq!(refused(&server, &sibling).await, "session revoked");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_refuses_older_tokens_at_once() {
    let server = TestServer::start().await;
    let (_, token) = server.user_token("pat@example.com").await;
    assert_eq!(status(&server, "/auth/me", &token).await, StatusCode::OK);
    let changed = send(
        &server,
        Method::PUT,
        "/auth/password/update",
        &token,
        Some(json!({"current_password": PASSWORD, "new_password": "NewPassw0rd!!"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        refused(&server, &token).await,
        "token superseded (password change or deactivation)"
    );
    assert_eq!(
        status(&server, "/auth/me", &access_token(&changed)).await,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_refuses_older_tokens_at_once() {
    let server = TestServer::start().await;
    let (_, token) = server.user_token("rae@example.com").await;
    assert_eq!(status(&server, "/auth/me", &token).await, StatusCode::OK);
    server
        .anonymous()
        .post("/auth/password/reset")
        .json(json!({"email": "rae@example.com"}))
        .expect(StatusCode::ACCEPTED)
        .await;
    let row =
        sqlx::query("SELECT body FROM notification_outbox WHERE recipient = $1 ORDER BY id DESC")
            .bind("rae@example.com")
            .fetch_one(server.state.db.pool())
            .await
            .expect("outbox message");
    let body: String = row.get("body");
    let reset = body
        .lines()
        .find_map(|line| line.strip_prefix("Reset token: "))
        .expect("token line");
    server
        .anonymous()
        .post("/auth/password/reset")
        .json(json!({"token": reset, "new_password": "ResetPassw0rd!"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(
        refused(&server, &token).await,
        "token superseded (password change or deactivation)"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_and_activation_apply_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, token) = server.user_token("dee@example.com").await;
    assert_eq!(status(&server, "/auth/me", &token).await, StatusCode::OK);
    let path = format!("/admin/users/{id}/deactivate");
    send(&server, Method::POST, &path, &admin, None, StatusCode::OK).await;
    assert_eq!(
        refused(&server, &token).await,
        "token superseded (password change or deactivation)"
    );
    // Warm the cache with the deactivated state: a new token (its version
    // current) is refused for the account, not the version.
    let row = sqlx::query("SELECT token_version FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(server.state.db.pool())
        .await
        .expect("user");
    let (current, _) = server
        .state
        .tokens
        .issue(id, row.get("token_version"), "probe", vec![])
        .expect("issue");
    assert_eq!(refused(&server, &current).await, "account is deactivated");
    let path = format!("/admin/users/{id}/activate");
    send(&server, Method::POST, &path, &admin, None, StatusCode::OK).await;
    assert_eq!(status(&server, "/auth/me", &current).await, StatusCode::OK);
    let fresh = access_token(&server.login("dee@example.com", PASSWORD).await);
    assert_eq!(status(&server, "/auth/me", &fresh).await, StatusCode::OK);
    // The token from before the deactivation stays dead.
    assert_eq!(
        refused(&server, &token).await,
        "token superseded (password change or deactivation)"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_assignment_and_removal_apply_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = role_with(&server, &admin, "auditor", &["roles:read"]).await;
    let (id, token) = server.user_token("ann@example.com").await;
    assert_eq!(
        status(&server, "/admin/roles", &token).await,
        StatusCode::FORBIDDEN
    );

    let path = format!("/admin/users/{id}/roles/{auditor}");
    send(&server, Method::POST, &path, &admin, None, StatusCode::OK).await;
    assert_eq!(
        status(&server, "/admin/roles", &token).await,
        StatusCode::OK
    );

    send(
        &server,
        Method::DELETE,
        &path,
        &admin,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        status(&server, "/admin/roles", &token).await,
        StatusCode::FORBIDDEN
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_revoke_apply_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = role_with(&server, &admin, "auditor", &[]).await;
    let (id, token) = server.user_token("gus@example.com").await;
    let path = format!("/admin/users/{id}/roles/{auditor}");
    send(&server, Method::POST, &path, &admin, None, StatusCode::OK).await;
    assert_eq!(
        status(&server, "/admin/users", &token).await,
        StatusCode::FORBIDDEN
    );

    let grant = format!("/admin/roles/{auditor}/permissions/users:read");
    send(&server, Method::POST, &grant, &admin, None, StatusCode::OK).await;
    assert_eq!(
        status(&server, "/admin/users", &token).await,
        StatusCode::OK
    );

    send(
        &server,
        Method::DELETE,
        &grant,
        &admin,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        status(&server, "/admin/users", &token).await,
        StatusCode::FORBIDDEN
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_role_grants_nothing_from_the_next_request() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = role_with(&server, &admin, "auditor", &["roles:read"]).await;
    let (id, token) = server.user_token("del@example.com").await;
    let path = format!("/admin/users/{id}/roles/{auditor}");
    send(&server, Method::POST, &path, &admin, None, StatusCode::OK).await;
    assert_eq!(
        status(&server, "/admin/roles", &token).await,
        StatusCode::OK
    );

    let path = format!("/admin/roles/{auditor}");
    send(
        &server,
        Method::DELETE,
        &path,
        &admin,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        status(&server, "/admin/roles", &token).await,
        StatusCode::FORBIDDEN
    );
    let me = send(
        &server,
        Method::GET,
        "/auth/me",
        &token,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["roles"], json!(["user"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_role_shows_its_new_name_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = role_with(&server, &admin, "auditor", &[]).await;
    let (id, token) = server.user_token("ren@example.com").await;
    let path = format!("/admin/users/{id}/roles/{auditor}");
    send(&server, Method::POST, &path, &admin, None, StatusCode::OK).await;
    let me = send(
        &server,
        Method::GET,
        "/auth/me",
        &token,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["roles"], json!(["auditor", "user"]));
    let path = format!("/admin/roles/{auditor}");
    let body = Some(json!({"name": "inspector"}));
    send(&server, Method::PUT, &path, &admin, body, StatusCode::OK).await;
    let me = send(
        &server,
        Method::GET,
        "/auth/me",
        &token,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["roles"], json!(["inspector", "user"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_permission_reaches_admins_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    assert!(!permissions_of(&server, &admin)
        .await
        .contains(&"reports:generate".to_string()));
    let body = Some(json!({"name": "reports:generate"}));
    send(
        &server,
        Method::POST,
        "/admin/permissions",
        &admin,
        body,
        StatusCode::CREATED,
    )
    .await;
    assert!(permissions_of(&server, &admin)
        .await
        .contains(&"reports:generate".to_string()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_permissions_apply_when_registered_and_when_purged() {
    let plugins = tempfile::tempdir().expect("dir");
    let sources = tempfile::tempdir().expect("sources");
    deploy(
        &hello_variant(""),
        sources.path(),
        "libxcore_plugin_hello.so",
    );
    let (dir, allowed) = (
        plugins.path().display().to_string(),
        sources.path().display().to_string(),
    );
    let server = TestServer::start_with(move |config| {
        config.plugins.dir = dir;
        config.plugins.install_from = vec![allowed];
    })
    .await;
    let admin = server.admin_token().await;
    assert!(!permissions_of(&server, &admin)
        .await
        .contains(&"hello:read".to_string()));

    let source = sources.path().join("libxcore_plugin_hello.so");
    let body = Some(json!({"name": "hello", "source": source.display().to_string()}));
    send(
        &server,
        Method::POST,
        "/system/plugins",
        &admin,
        body,
        StatusCode::CREATED,
    )
    .await;
    // The admin's cached grants gained the plugin's permissions.
    assert_eq!(
        status(&server, "/api/v1/hello/greetings", &admin).await,
        StatusCode::OK
    );

    let purge = "/system/plugins/hello?purge=true";
    send(
        &server,
        Method::DELETE,
        purge,
        &admin,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert!(!permissions_of(&server, &admin)
        .await
        .contains(&"hello:read".to_string()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_reuse_refuses_the_familys_access_tokens_at_once() {
    let server = TestServer::start().await;
    server.register("ray@example.com", PASSWORD).await;
    let first = server.login("ray@example.com", PASSWORD).await;
    let rotate = |refresh: Value| {
        server
            .post("/auth/refresh")
            .json(&json!({"refresh_token": refresh}))
            .send()
    };
    let second = rotate(first["refresh_token"].clone()).await.expect("send");
    let second = access_token(&expect_status(second, StatusCode::OK).await);
    assert_eq!(status(&server, "/auth/me", &second).await, StatusCode::OK);
    // The spent refresh token again: reuse, the family is revoked.
    let reused = rotate(first["refresh_token"].clone()).await.expect("send");
    expect_error(reused, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    assert_eq!(refused(&server, &second).await, "session revoked");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_deletions_survive_a_restart() {
    let server = TestServer::start().await;
    server.register("rex@example.com", PASSWORD).await;
    let tokens = server.login("rex@example.com", PASSWORD).await;
    let token = access_token(&tokens);
    let rotated = server
        .anonymous()
        .post("/auth/refresh")
        .json(json!({"refresh_token": tokens["refresh_token"]}))
        .expect(StatusCode::OK)
        .await;
    let sibling = access_token(&rotated);
    send(
        &server,
        Method::POST,
        "/auth/logout",
        &token,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let (_, doomed) = server.user_token("gone@example.com").await;
    let admin = server.admin_token().await;
    assert_eq!(status(&server, "/auth/me", &admin).await, StatusCode::OK);
    let db = server.stop().await;

    // Changed while no server ran: a user deleted by hand.
    let pool = sqlx::AnyPool::connect(&db.url).await.expect("connect");
    sqlx::query("DELETE FROM users WHERE email = 'gone@example.com'")
        .execute(&pool)
        .await
        .expect("delete");
    pool.close().await;

    let server = TestServer::start_on(db, |_| {}).await;
    assert_eq!(refused(&server, &token).await, "token revoked");
    assert_eq!(refused(&server, &sibling).await, "session revoked");
    assert_eq!(refused(&server, &doomed).await, "invalid token");
    assert_eq!(status(&server, "/auth/me", &admin).await, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_applies_changes_at_its_next_poll() {
    let first = TestServer::start().await;
    let second = TestServer::start_on(TestDatabase::at(first.db.url.clone()), |_| {}).await;
    let admin = first.admin_token().await;
    let auditor = role_with(&first, &admin, "auditor", &["roles:read"]).await;
    let (id, token) = first.user_token("two@example.com").await;
    let assign = format!("/admin/users/{id}/roles/{auditor}");
    send(&first, Method::POST, &assign, &admin, None, StatusCode::OK).await;
    let other = access_token(&first.login("two@example.com", PASSWORD).await);
    // The second instance caches all of it.
    assert_eq!(
        status(&second, "/admin/roles", &token).await,
        StatusCode::OK
    );
    assert_eq!(status(&second, "/auth/me", &other).await, StatusCode::OK);

    // Changes on the first instance: a revoke, a logout.
    let revoke = format!("/admin/roles/{auditor}/permissions/roles:read");
    send(
        &first,
        Method::DELETE,
        &revoke,
        &admin,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    send(
        &first,
        Method::POST,
        "/auth/logout",
        &other,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    // Until it polls, the second instance decides on what it knew: the
    // bound documented for other instances.
    assert_eq!(
        status(&second, "/admin/roles", &token).await,
        StatusCode::OK
    );
    second.state.auth.poll().await.expect("poll");
    assert_eq!(
        status(&second, "/admin/roles", &token).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(refused(&second, &other).await, "token revoked");

    // A deactivation whose log rows were pruned before the second instance
    // read them: the hole in the log makes it reload everything.
    let deactivate = format!("/admin/users/{id}/deactivate");
    send(
        &first,
        Method::POST,
        &deactivate,
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    sqlx::query("DELETE FROM auth_changes")
        .execute(first.state.db.pool())
        .await
        .expect("prune");
    assert_eq!(status(&second, "/auth/me", &token).await, StatusCode::OK);
    second.state.auth.poll().await.expect("poll");
    assert_eq!(
        refused(&second, &token).await,
        "token superseded (password change or deactivation)"
    );
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_is_current_on_a_running_instance_after_another_starts() {
    let first = TestServer::start().await;
    let admin = first.admin_token().await;
    assert_eq!(status(&first, "/auth/me", &admin).await, StatusCode::OK);
    // Another instance starts with a new bootstrap password: it ends the
    // admin's sessions (the token version moves) on every instance.
    let second = TestServer::start_on(TestDatabase::at(first.db.url.clone()), |config| {
        config.admin.password = "RotatedAdm1n!".into();
    })
    .await;
    first.state.auth.poll().await.expect("poll");
    assert_eq!(
        refused(&first, &admin).await,
        "token superseded (password change or deactivation)"
    );
    let fresh = access_token(&first.login(ADMIN_EMAIL, "RotatedAdm1n!").await);
    assert_eq!(status(&first, "/auth/me", &fresh).await, StatusCode::OK);
    second.stop().await;
    first.stop().await;
}
