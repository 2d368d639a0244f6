//! The authentication cache: every change that affects a decision is
//! applied before the changing request answers, so the very next request is
//! decided on the new state; other instances apply it at their poll; the
//! revocations survive a restart.
//!
//! The test servers never poll on their own (see `common::test_config`), so
//! each test here fails if the change's invalidation is missing: the cache
//! is warmed by a request first, and nothing else would refresh it.

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use common::{
    access_token, deploy, expect_error, expect_status, hello_variant, TestDatabase, TestServer,
    ADMIN_EMAIL,
};

const PASSWORD: &str = "UserPassw0rd!";

/// Why a token older than a password change or deactivation is refused.
const SUPERSEDED: &str = "token superseded (password change or deactivation)";

/// `GET path` as `token`: the status.
async fn status(server: &TestServer, path: &str, token: &str) -> StatusCode {
    server.as_(token).get(path).send().await.status()
}

/// Asserts that `GET path` as `token` answers `expected`.
async fn answers(server: &TestServer, path: &str, token: &str, expected: StatusCode) {
    assert_eq!(status(server, path, token).await, expected, "GET {path}");
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

/// Gives user `id` the role `role` (as `admin`); the assignment's path.
async fn assign(server: &TestServer, admin: &str, id: i64, role: i64) -> String {
    let path = format!("/admin/users/{id}/roles/{role}");
    server.post_as(admin, &path).await;
    path
}

/// The roles `GET /auth/me` shows `token`.
async fn roles_of(server: &TestServer, token: &str) -> Value {
    let me = server.me(token).await;
    me["roles"].clone()
}

/// Whether `GET /auth/me` lists `permission` for `token`.
async fn holds(server: &TestServer, token: &str, permission: &str) -> bool {
    permissions_of(server, token)
        .await
        .iter()
        .any(|held| held == permission)
}

async fn permissions_of(server: &TestServer, token: &str) -> Vec<String> {
    let me = server.me(token).await;
    serde_json::from_value(me["permissions"].clone()).expect("permissions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_refuses_the_token_and_its_session_at_once() {
    let server = TestServer::start().await;
    server.register("lou@example.com", PASSWORD).await;
    let tokens = server.login("lou@example.com", PASSWORD).await;
    let token = access_token(&tokens);
    // A second access token of the same session.
    let rotated = server.refresh(&tokens).await;
    let sibling = access_token(&rotated);
    answers(&server, "/auth/me", &token, StatusCode::OK).await;
    answers(&server, "/auth/me", &sibling, StatusCode::OK).await;

    server.logout(&token).await;
    assert_eq!(refused(&server, &token).await, "token revoked");
    assert_eq!(refused(&server, &sibling).await, "session revoked");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_refuses_older_tokens_at_once() {
    let server = TestServer::start().await;
    let (_, token) = server.user_token("pat@example.com").await;
    answers(&server, "/auth/me", &token, StatusCode::OK).await;
    let changed = server
        .put_as(
            &token,
            "/auth/password/update",
            json!({"current_password": PASSWORD, "new_password": "NewPassw0rd!!"}),
        )
        .await;
    assert_eq!(refused(&server, &token).await, SUPERSEDED);
    answers(&server, "/auth/me", &access_token(&changed), StatusCode::OK).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_refuses_older_tokens_at_once() {
    let server = TestServer::start().await;
    let (_, token) = server.user_token("rae@example.com").await;
    answers(&server, "/auth/me", &token, StatusCode::OK).await;
    server
        .anonymous()
        .post("/auth/password/reset")
        .json(json!({"email": "rae@example.com"}))
        .expect(StatusCode::ACCEPTED)
        .await;
    let reset = server.outbox_reset_token("rae@example.com").await;
    server
        .anonymous()
        .post("/auth/password/reset")
        .json(json!({"token": reset, "new_password": "ResetPassw0rd!"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(refused(&server, &token).await, SUPERSEDED);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_and_activation_apply_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, token) = server.user_token("dee@example.com").await;
    answers(&server, "/auth/me", &token, StatusCode::OK).await;
    let path = format!("/admin/users/{id}/deactivate");
    server.post_as(&admin, &path).await;
    assert_eq!(refused(&server, &token).await, SUPERSEDED);
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
    server.post_as(&admin, &path).await;
    answers(&server, "/auth/me", &current, StatusCode::OK).await;
    let fresh = access_token(&server.login("dee@example.com", PASSWORD).await);
    answers(&server, "/auth/me", &fresh, StatusCode::OK).await;
    // The token from before the deactivation stays dead.
    assert_eq!(refused(&server, &token).await, SUPERSEDED);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_assignment_and_removal_apply_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = server.create_role(&admin, "auditor", &["roles:read"]).await;
    let (id, token) = server.user_token("ann@example.com").await;
    answers(&server, "/admin/roles", &token, StatusCode::FORBIDDEN).await;

    let path = assign(&server, &admin, id, auditor).await;
    answers(&server, "/admin/roles", &token, StatusCode::OK).await;

    server.delete_as(&admin, &path).await;
    answers(&server, "/admin/roles", &token, StatusCode::FORBIDDEN).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_revoke_apply_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = server.create_role(&admin, "auditor", &[]).await;
    let (id, token) = server.user_token("gus@example.com").await;
    assign(&server, &admin, id, auditor).await;
    answers(&server, "/admin/users", &token, StatusCode::FORBIDDEN).await;

    let grant = format!("/admin/roles/{auditor}/permissions/users:read");
    server.post_as(&admin, &grant).await;
    answers(&server, "/admin/users", &token, StatusCode::OK).await;

    server.delete_as(&admin, &grant).await;
    answers(&server, "/admin/users", &token, StatusCode::FORBIDDEN).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_role_grants_nothing_from_the_next_request() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = server.create_role(&admin, "auditor", &["roles:read"]).await;
    let (id, token) = server.user_token("del@example.com").await;
    assign(&server, &admin, id, auditor).await;
    answers(&server, "/admin/roles", &token, StatusCode::OK).await;

    let path = format!("/admin/roles/{auditor}");
    server.delete_as(&admin, &path).await;
    answers(&server, "/admin/roles", &token, StatusCode::FORBIDDEN).await;
    assert_eq!(roles_of(&server, &token).await, json!(["user"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_role_shows_its_new_name_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let auditor = server.create_role(&admin, "auditor", &[]).await;
    let (id, token) = server.user_token("ren@example.com").await;
    assign(&server, &admin, id, auditor).await;
    assert_eq!(roles_of(&server, &token).await, json!(["auditor", "user"]));
    server
        .put_as(
            &admin,
            &format!("/admin/roles/{auditor}"),
            json!({"name": "inspector"}),
        )
        .await;
    assert_eq!(
        roles_of(&server, &token).await,
        json!(["inspector", "user"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_permission_reaches_admins_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    assert!(
        !holds(&server, &admin, "reports:generate").await,
        "reports:generate"
    );
    server
        .create_as(
            &admin,
            "/admin/permissions",
            json!({"name": "reports:generate"}),
        )
        .await;
    assert!(
        holds(&server, &admin, "reports:generate").await,
        "reports:generate"
    );
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
    assert!(!holds(&server, &admin, "hello:read").await, "hello:read");

    let source = sources.path().join("libxcore_plugin_hello.so");
    server
        .install_plugin(&admin, "hello", &source.display().to_string())
        .await;
    // The admin's cached grants gained the plugin's permissions.
    answers(&server, "/api/v1/hello/greetings", &admin, StatusCode::OK).await;

    let purge = "/system/plugins/hello?purge=true";
    server.delete_as(&admin, purge).await;
    assert!(!holds(&server, &admin, "hello:read").await, "hello:read");
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
    answers(&server, "/auth/me", &second, StatusCode::OK).await;
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
    let rotated = server.refresh(&tokens).await;
    let sibling = access_token(&rotated);
    server.logout(&token).await;
    let (_, doomed) = server.user_token("gone@example.com").await;
    let admin = server.admin_token().await;
    answers(&server, "/auth/me", &admin, StatusCode::OK).await;
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
    answers(&server, "/auth/me", &admin, StatusCode::OK).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_applies_changes_at_its_next_poll() {
    let first = TestServer::start().await;
    let second = TestServer::start_on(TestDatabase::at(first.db.url.clone()), |_| {}).await;
    let admin = first.admin_token().await;
    let auditor = first.create_role(&admin, "auditor", &["roles:read"]).await;
    let (id, token) = first.user_token("two@example.com").await;
    let assign = format!("/admin/users/{id}/roles/{auditor}");
    first.post_as(&admin, &assign).await;
    let other = access_token(&first.login("two@example.com", PASSWORD).await);
    // The second instance caches all of it.
    answers(&second, "/admin/roles", &token, StatusCode::OK).await;
    answers(&second, "/auth/me", &other, StatusCode::OK).await;

    // Changes on the first instance: a revoke, a logout.
    let revoke = format!("/admin/roles/{auditor}/permissions/roles:read");
    first.delete_as(&admin, &revoke).await;
    first.logout(&other).await;
    // Until it polls, the second instance decides on what it knew: the
    // bound documented for other instances.
    answers(&second, "/admin/roles", &token, StatusCode::OK).await;
    second.state.auth.poll().await.expect("poll");
    answers(&second, "/admin/roles", &token, StatusCode::FORBIDDEN).await;
    assert_eq!(refused(&second, &other).await, "token revoked");

    // A deactivation whose log rows were pruned before the second instance
    // read them: the hole in the log makes it reload everything.
    let deactivate = format!("/admin/users/{id}/deactivate");
    first.post_as(&admin, &deactivate).await;
    sqlx::query("DELETE FROM auth_changes")
        .execute(first.state.db.pool())
        .await
        .expect("prune");
    answers(&second, "/auth/me", &token, StatusCode::OK).await;
    second.state.auth.poll().await.expect("poll");
    assert_eq!(refused(&second, &token).await, SUPERSEDED);
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_the_same_bootstrap_password_rewrites_nothing() {
    let first = TestServer::start().await;
    let admin = first.admin_token().await;
    let stored_hash = || async {
        sqlx::query_scalar::<_, String>("SELECT password_hash FROM users WHERE email = $1")
            .bind(ADMIN_EMAIL)
            .fetch_one(first.state.db.pool())
            .await
            .expect("the admin's hash")
    };
    let before = stored_hash().await;
    // Another instance starts with the same password: the stored hash
    // still verifies, so it is neither rehashed nor rewritten, and the
    // admin's sessions go on.
    let second = TestServer::start_on(TestDatabase::at(first.db.url.clone()), |_| {}).await;
    first.state.auth.poll().await.expect("poll");
    assert_eq!(
        stored_hash().await,
        before,
        "the hash is rewritten only when it no longer verifies"
    );
    answers(&first, "/auth/me", &admin, StatusCode::OK).await;
    answers(&second, "/auth/me", &admin, StatusCode::OK).await;
    second.stop().await;
    first.stop().await;
}

/// The proof the bootstrap check left for `ADMIN_EMAIL`.
async fn bootstrap_proof(server: &TestServer) -> String {
    sqlx::query_scalar("SELECT proof FROM bootstrap_admin_proofs WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .fetch_one(server.state.db.pool())
        .await
        .expect("the bootstrap proof")
}

/// The bootstrap admin's stored password hash.
async fn admin_hash(server: &TestServer) -> String {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .fetch_one(server.state.db.pool())
        .await
        .expect("the admin's hash")
}

/// Whether `password` signs the bootstrap admin in (200) or is refused (401).
async fn signs_in(server: &TestServer, password: &str) -> bool {
    let response = server
        .post("/auth/login")
        .json(&json!({"username": ADMIN_EMAIL, "password": password}))
        .send()
        .await
        .expect("login");
    match response.status() {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("login answered {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_same_bootstrap_password_runs_no_argon2() {
    let first = TestServer::start().await;
    assert!(
        first.state.passwords.runs() >= 1,
        "a first start hashes the password"
    );
    let db = first.stop().await;
    let second = TestServer::start_on(db, |_| {}).await;
    assert_eq!(
        second.state.passwords.runs(),
        0,
        "the proof stands for the argon2 check"
    );
    assert!(signs_in(&second, common::ADMIN_PASSWORD).await);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_proof_stands_only_for_the_password_hash_and_secret_it_was_made_for() {
    let first = TestServer::start().await;
    let made = bootstrap_proof(&first).await;
    let hash = admin_hash(&first).await;
    // A forged proof (well-formed, wrong): the full check runs, finds the
    // password unchanged, rewrites nothing and puts the real proof back.
    sqlx::query("UPDATE bootstrap_admin_proofs SET proof = $1 WHERE email = $2")
        .bind("A".repeat(43))
        .bind(ADMIN_EMAIL)
        .execute(first.state.db.pool())
        .await
        .expect("forge");
    let second = TestServer::start_on(first.stop().await, |_| {}).await;
    assert_eq!(second.state.passwords.runs(), 1, "one verification");
    assert_eq!(admin_hash(&second).await, hash);
    assert_eq!(bootstrap_proof(&second).await, made);

    // Another signing secret: the proof no longer holds.
    let secret = "another-signing-secret-another-signing-secret-42";
    let third = TestServer::start_on(second.stop().await, |config| {
        config.auth.jwt_secret = secret.into();
    })
    .await;
    assert_eq!(third.state.passwords.runs(), 1, "one verification");
    assert_eq!(admin_hash(&third).await, hash);
    assert_ne!(bootstrap_proof(&third).await, made);

    // The admin changes the password through the API: the stored hash is
    // no longer the one proved, and the next start applies the configured
    // password again.
    let admin = third.admin_token().await;
    third
        .put_as(
            &admin,
            "/auth/password/update",
            json!({"current_password": common::ADMIN_PASSWORD, "new_password": "ChangedAdm1nPass"}),
        )
        .await;
    assert!(signs_in(&third, "ChangedAdm1nPass").await);
    let fourth = TestServer::start_on(third.stop().await, |config| {
        config.auth.jwt_secret = secret.into();
    })
    .await;
    assert_eq!(
        fourth.state.passwords.runs(),
        2,
        "a failed verification, then the new hash"
    );
    assert!(signs_in(&fourth, common::ADMIN_PASSWORD).await);
    assert!(!signs_in(&fourth, "ChangedAdm1nPass").await);
    fourth.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_is_current_on_a_running_instance_after_another_starts() {
    let first = TestServer::start().await;
    let admin = first.admin_token().await;
    answers(&first, "/auth/me", &admin, StatusCode::OK).await;
    // Another instance starts with a new bootstrap password: it ends the
    // admin's sessions (the token version moves) on every instance.
    let second = TestServer::start_on(TestDatabase::at(first.db.url.clone()), |config| {
        config.admin.password = "RotatedAdm1n!".into();
    })
    .await;
    first.state.auth.poll().await.expect("poll");
    assert_eq!(refused(&first, &admin).await, SUPERSEDED);
    let fresh = access_token(&first.login(ADMIN_EMAIL, "RotatedAdm1n!").await);
    answers(&first, "/auth/me", &fresh, StatusCode::OK).await;
    second.stop().await;
    first.stop().await;
}
