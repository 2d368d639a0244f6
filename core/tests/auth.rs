//! `/auth/*` against a real server: registration, login, sessions, refresh
//! rotation and reuse detection, logout, password reset and update, and the
//! token checks (algorithm, signature, expiry, revocation, account state).

mod common;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::{
    access_token, expect_error, expect_status, TestRequest, TestServer, ADMIN_EMAIL,
    ADMIN_PASSWORD, JWT_SECRET,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

/// An anonymous `POST path` with the JSON `body`.
fn post(server: &TestServer, path: &str, body: Value) -> TestRequest {
    server.anonymous().post(path).json(body)
}

/// Sends `request`, asserting a 422 `VALIDATION_ERROR`; the error body.
async fn invalid(request: TestRequest) -> Value {
    request
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await
}

/// Logs in as `email` with `password`, asserting a 401; its message.
async fn login_refused(server: &TestServer, email: &str, password: &str) -> String {
    let body = json!({"username": email, "password": password});
    refused(post(server, "/auth/login", body).send().await).await
}

async fn me(server: &TestServer, token: &str) -> reqwest::Response {
    server.as_(token).get("/auth/me").send().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_creates_an_account_and_validates_every_field() {
    let server = TestServer::start().await;
    let body = server
        .register("Alice@Example.com", "SecurePassword123!")
        .await;
    assert!(body["id"].as_i64().is_some());
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["full_name"], "Test User");
    assert_eq!(body["is_active"], true);
    assert!(body["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(body.get("password_hash").is_none() && body.get("password").is_none());

    // The email is unique regardless of case.
    server
        .anonymous()
        .post("/auth/register")
        .json(json!({"email": "ALICE@example.com", "password": "SecurePassword123!"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;

    // Both problems are reported, one details entry per field.
    let body = invalid(post(
        &server,
        "/auth/register",
        json!({"email": "not-an-email", "password": "short"}),
    ))
    .await;
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, vec!["email", "password"]);

    let body = invalid(post(
        &server,
        "/auth/register",
        json!({"email": "bob@example.com"}),
    ))
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "password");

    let malformed = server
        .post("/auth/register")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("send");
    expect_error(malformed, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

    let wrong_type = server
        .post("/auth/register")
        .body("email=x")
        .send()
        .await
        .expect("send");
    expect_error(
        wrong_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "VALIDATION_ERROR",
    )
    .await;

    // The stored hash is argon2id, never the password.
    let row = sqlx::query("SELECT password_hash FROM users WHERE email = $1")
        .bind("alice@example.com")
        .fetch_one(server.state.db.pool())
        .await
        .expect("row");
    let hash: String = row.get("password_hash");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_accepts_form_and_json_and_hides_which_part_was_wrong() {
    let server = TestServer::start().await;
    server.register("carol@example.com", "CarolPassw0rd").await;

    let form = server
        .post("/auth/login")
        .form(&[
            ("username", "carol@example.com"),
            ("password", "CarolPassw0rd"),
        ])
        .send()
        .await
        .expect("send");
    let tokens = expect_status(form, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 1800);
    assert!(tokens["refresh_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 40));
    assert_eq!(access_token(&tokens).split('.').count(), 3);

    for body in [
        json!({"username": "CAROL@example.com", "password": "CarolPassw0rd"}),
        json!({"email": "carol@example.com", "password": "CarolPassw0rd"}),
    ] {
        server
            .anonymous()
            .post("/auth/login")
            .json(body)
            .expect(StatusCode::OK)
            .await;
    }

    let wrong_password = login_refused(&server, "carol@example.com", "nope-nope-1").await;
    let unknown_user = login_refused(&server, "nobody@example.com", "nope-nope-1").await;
    assert_eq!(wrong_password, unknown_user);

    let body = invalid(post(&server, "/auth/login", json!({}))).await;
    assert_eq!(body["error"]["details"].as_array().map(Vec::len), Some(2));

    // An inactive account cannot log in, even with the right password.
    sqlx::query("UPDATE users SET is_active = FALSE WHERE email = $1")
        .bind("carol@example.com")
        .execute(server.state.db.pool())
        .await
        .expect("deactivate");
    login_refused(&server, "carol@example.com", "CarolPassw0rd").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_shows_roles_permissions_and_last_login() {
    let server = TestServer::start().await;
    let (id, token) = server.user_token("dave@example.com").await;
    let body = server.me(&token).await;
    assert_eq!(body["id"], id);
    assert_eq!(body["email"], "dave@example.com");
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["permissions"], json!([]));
    assert_eq!(body["is_active"], true);
    assert!(body["last_login"].is_string());
    assert!(body["created_at"].is_string());

    let admin = server.me(&server.admin_token().await).await;
    assert_eq!(admin["roles"], json!(["admin"]));
    let permissions = admin["permissions"].as_array().expect("permissions");
    for expected in [
        "users:read",
        "users:write",
        "roles:read",
        "roles:write",
        "plugins:manage",
        "tasks:manage",
    ] {
        assert!(
            permissions.contains(&json!(expected)),
            "admin lacks {expected}: {admin}"
        );
    }

    let anonymous = server.get("/auth/me").send().await.expect("send");
    let response_headers = anonymous.headers().clone();
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    assert_eq!(
        response_headers
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let server = TestServer::start().await;
    server.register("erin@example.com", "ErinPassw0rd").await;
    let first = server.login("erin@example.com", "ErinPassw0rd").await;
    let first_refresh = first["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    let second = post(
        &server,
        "/auth/refresh",
        json!({"refresh_token": first_refresh}),
    )
    .expect(StatusCode::OK)
    .await;
    let second_refresh = second["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(second_refresh, first_refresh);
    server.me(&access_token(&second)).await;

    // The rotated token is also accepted as the Bearer credential.
    let third = server.post_as(&second_refresh, "/auth/refresh").await;
    let third_refresh = third["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    // Replaying an already-used token is theft: 401, and the whole family,
    // including the latest token, dies with it.
    refused(refresh(&server, &first_refresh).await).await;
    refused(refresh(&server, &third_refresh).await).await;

    // Another session of the same user is unaffected.
    let other = server.login("erin@example.com", "ErinPassw0rd").await;
    post(
        &server,
        "/auth/refresh",
        json!({"refresh_token": other["refresh_token"]}),
    )
    .expect(StatusCode::OK)
    .await;

    refused(refresh(&server, "garbage").await).await;
    server
        .anonymous()
        .post("/auth/refresh")
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_access_token_and_the_session() {
    let server = TestServer::start().await;
    server.register("frank@example.com", "FrankPassw0rd").await;
    let session = server.login("frank@example.com", "FrankPassw0rd").await;
    let other = server.login("frank@example.com", "FrankPassw0rd").await;
    let token = access_token(&session);

    server.logout(&token).await;
    assert_eq!(refused(me(&server, &token).await).await, "token revoked");
    refused(refresh(&server, &refresh_token(&session)).await).await;

    // Logging out one session leaves the other alone.
    server.me(&access_token(&other)).await;
    server.stop().await;
}

fn refresh_token(tokens: &Value) -> String {
    tokens["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string()
}

async fn refresh(server: &TestServer, refresh_token: &str) -> reqwest::Response {
    server
        .post("/auth/refresh")
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .expect("send")
}

/// Refreshes with the refresh token of `tokens`, asserting a 200; the new
/// tokens.
async fn rotate(server: &TestServer, tokens: &Value) -> Value {
    expect_status(
        refresh(server, &refresh_token(tokens)).await,
        StatusCode::OK,
    )
    .await
}

/// Asserts a 401 and returns its message.
async fn refused(response: reqwest::Response) -> String {
    let body = expect_error(response, StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR").await;
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

// The attack: a stolen refresh token is replayed after the victim rotated
// it. Reuse detection revokes the family, and the access tokens minted in
// it (the thief's and the victim's) must stop working at once, not ~30
// minutes later when they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_reuse_refuses_the_familys_access_tokens_at_once() {
    let server = TestServer::start().await;
    server.register("lena@example.com", "LenaPassw0rd!").await;
    let first = server.login("lena@example.com", "LenaPassw0rd!").await;
    let stolen = refresh_token(&first);
    let second = expect_status(refresh(&server, &stolen).await, StatusCode::OK).await;
    let third = rotate(&server, &second).await;
    let other = server.login("lena@example.com", "LenaPassw0rd!").await;
    for tokens in [&first, &second, &third, &other] {
        server.me(&access_token(tokens)).await;
    }

    assert_eq!(
        refused(refresh(&server, &stolen).await).await,
        "refresh token already used; session revoked"
    );
    for tokens in [&first, &second, &third] {
        assert_eq!(
            refused(me(&server, &access_token(tokens)).await).await,
            "session revoked"
        );
    }
    refused(refresh(&server, &refresh_token(&third)).await).await;
    // The user's other session is a different family: untouched.
    server.me(&access_token(&other)).await;
    rotate(&server, &other).await;
    server.stop().await;
}

// Logging out with one access token ends the whole session: the access
// tokens minted earlier in the same family (before a refresh) die too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_refuses_the_sessions_other_access_tokens() {
    let server = TestServer::start().await;
    server.register("milo@example.com", "MiloPassw0rd!").await;
    let first = server.login("milo@example.com", "MiloPassw0rd!").await;
    let second = rotate(&server, &first).await;
    let other = server.login("milo@example.com", "MiloPassw0rd!").await;
    server.me(&access_token(&first)).await;

    server.logout(&access_token(&second)).await;
    assert_eq!(
        refused(me(&server, &access_token(&first)).await).await,
        "session revoked"
    );
    refused(me(&server, &access_token(&second)).await).await;
    refused(refresh(&server, &refresh_token(&second)).await).await;
    server.me(&access_token(&other)).await;
    server.stop().await;
}

// The attack: tokens obtained before an administrator deactivated the
// account must not work again once the account is reactivated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_ends_tokens_for_good_even_after_reactivation() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (user_id, _) = server.user_token("nora@example.com").await;
    let before = server.login("nora@example.com", "UserPassw0rd!").await;
    server.me(&access_token(&before)).await;

    for action in ["deactivate", "activate"] {
        server
            .post_as(&admin, &format!("/admin/users/{user_id}/{action}"))
            .await;
    }
    refused(me(&server, &access_token(&before)).await).await;
    refused(refresh(&server, &refresh_token(&before)).await).await;

    // A new login works, and its tokens do.
    let after = server.login("nora@example.com", "UserPassw0rd!").await;
    server.me(&access_token(&after)).await;
    let rotated = rotate(&server, &after).await;

    // A refresh token the deactivation's revocation missed (one minted by a
    // login or rotation committing at the same moment) carries the old
    // token version and is refused on its own account.
    let missed = server.login("nora@example.com", "UserPassw0rd!").await;
    server
        .post_as(&admin, &format!("/admin/users/{user_id}/deactivate"))
        .await;
    sqlx::query("UPDATE refresh_tokens SET revoked_at = NULL WHERE user_id = $1")
        .bind(user_id)
        .execute(server.state.db.pool())
        .await
        .expect("un-revoke");
    server
        .post_as(&admin, &format!("/admin/users/{user_id}/activate"))
        .await;
    assert_eq!(
        refused(refresh(&server, &refresh_token(&missed)).await).await,
        "refresh token superseded; please log in again"
    );
    refused(me(&server, &access_token(&rotated)).await).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_goes_through_the_outbox_and_ends_sessions() {
    let server = TestServer::start().await;
    server.register("gina@example.com", "GinaPassw0rd").await;
    let session = server.login("gina@example.com", "GinaPassw0rd").await;

    for email in ["gina@example.com", "unknown@example.com"] {
        server
            .anonymous()
            .post("/auth/password/reset")
            .json(json!({"email": email}))
            .expect(StatusCode::ACCEPTED)
            .await;
    }
    let unknown_messages =
        sqlx::query("SELECT COUNT(*) AS n FROM notification_outbox WHERE recipient = $1")
            .bind("unknown@example.com")
            .fetch_one(server.state.db.pool())
            .await
            .expect("count");
    assert_eq!(unknown_messages.get::<i64, _>("n"), 0);
    let token = server.outbox_reset_token("gina@example.com").await;

    invalid(post(
        &server,
        "/auth/password/reset",
        json!({"token": token, "new_password": "weak"}),
    ))
    .await;

    post(
        &server,
        "/auth/password/reset",
        json!({"token": token, "new_password": "GinaNewPassw0rd"}),
    )
    .expect(StatusCode::OK)
    .await;

    let body = invalid(post(
        &server,
        "/auth/password/reset",
        json!({"token": token, "new_password": "GinaOtherPassw0rd"}),
    ))
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "token");

    // Old password out, new password in; the old session is over.
    login_refused(&server, "gina@example.com", "GinaPassw0rd").await;
    server.login("gina@example.com", "GinaNewPassw0rd").await;
    refused(me(&server, &access_token(&session)).await).await;
    refused(refresh(&server, &refresh_token(&session)).await).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_update_checks_the_current_password_and_rotates_sessions() {
    let server = TestServer::start().await;
    server.register("hank@example.com", "HankPassw0rd").await;
    let session = server.login("hank@example.com", "HankPassw0rd").await;
    let token = access_token(&session);

    let body = server
        .as_(&token)
        .put("/auth/password/update")
        .json(json!({"current_password": "WrongPassw0rd", "new_password": "HankNewPassw0rd"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(body["error"]["details"][0]["field"], "current_password");

    server
        .as_(&token)
        .put("/auth/password/update")
        .json(json!({"current_password": "HankPassw0rd", "new_password": "short"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;

    let fresh = server
        .put_as(
            &token,
            "/auth/password/update",
            json!({"current_password": "HankPassw0rd", "new_password": "HankNewPassw0rd"}),
        )
        .await;
    server.me(&access_token(&fresh)).await;
    refused(me(&server, &token).await).await;
    refused(refresh(&server, &refresh_token(&session)).await).await;
    server.login("hank@example.com", "HankNewPassw0rd").await;
    server.stop().await;
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_token("ivy@example.com").await;
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], user_id.to_string());
    for claim in ["exp", "iat", "jti"] {
        assert!(!claims[claim].is_null(), "missing {claim}: {claims}");
    }

    // alg: none with the same claims.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!(
        "{none_header}.{}.",
        token.split('.').nth(1).expect("payload")
    );
    // Right secret, other algorithm.
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("encode");
    // Tampered payload (escalated roles), original signature.
    let mut escalated = claims.clone();
    escalated["roles"] = json!(["admin"]);
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&escalated).expect("json"));
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    // Signed with another secret.
    let foreign = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .expect("encode");
    // Correctly signed but expired.
    let mut old = claims.clone();
    let now = chrono::Utc::now().timestamp();
    old["iat"] = json!(now - 7200);
    old["exp"] = json!(now - 3600);
    let expired = encode(
        &Header::new(Algorithm::HS256),
        &old,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("encode");

    for (name, bad) in [
        ("none", &unsigned),
        ("hs384", &hs384),
        ("tampered", &tampered),
        ("foreign", &foreign),
        ("expired", &expired),
    ] {
        let message = refused(me(&server, bad).await).await;
        if name == "expired" {
            assert_eq!(message, "token expired");
        }
    }
    server.me(&token).await;

    // A deactivated user's still-unexpired token stops working at once,
    // even deactivated by hand in the database (which operators announce
    // by bumping the change counter; instances reload at their next poll).
    sqlx::query("UPDATE users SET is_active = FALSE WHERE id = $1")
        .bind(user_id)
        .execute(server.state.db.pool())
        .await
        .expect("deactivate");
    bump_and_poll(&server).await;
    refused(me(&server, &token).await).await;

    // A deleted user's token too.
    let admin = server.admin_token().await;
    sqlx::query("DELETE FROM users WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .execute(server.state.db.pool())
        .await
        .expect("delete");
    bump_and_poll(&server).await;
    refused(me(&server, &admin).await).await;
    let _ = ADMIN_PASSWORD;
    server.stop().await;
}

/// What an operator does after editing auth tables by hand, and the poll
/// every instance runs on its own timer, run now.
async fn bump_and_poll(server: &TestServer) {
    sqlx::query("UPDATE auth_state SET version = version + 1")
        .execute(server.state.db.pool())
        .await
        .expect("bump");
    server.state.auth.poll().await.expect("poll");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_can_be_closed() {
    let server = TestServer::start_with(|config| config.auth.allow_registration = false).await;
    server
        .anonymous()
        .post("/auth/register")
        .json(json!({"email": "x@example.com", "password": "SecurePassword123!"}))
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_of_one_refresh_token_yield_at_most_one_pair() {
    let server = TestServer::start().await;
    server.register("jay@example.com", "JayPassw0rd!").await;
    let session = server.login("jay@example.com", "JayPassw0rd!").await;
    let attempts = (0..12).map(|_| {
        server
            .post("/auth/refresh")
            .json(&json!({"refresh_token": session["refresh_token"]}))
            .send()
    });
    let statuses: Vec<StatusCode> = futures_join_all(attempts).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(won <= 1, "{statuses:?}");
    assert_eq!(
        won + refused,
        statuses.len(),
        "no other outcome (no 500): {statuses:?}"
    );
    server.stop().await;
}

/// Sends all requests concurrently and collects their statuses.
async fn futures_join_all(
    requests: impl Iterator<
        Item = impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
    >,
) -> Vec<StatusCode> {
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.expect("join").expect("send").status());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_login_publish_user_events() {
    let server = TestServer::start().await;
    let mut events = server.state.events.subscribe();
    let account = server.register("kay@example.com", "KayPassw0rd!").await;
    server.login("kay@example.com", "KayPassw0rd!").await;
    let registered = events.recv().await.expect("event");
    assert_eq!(registered.topic, "user.registered");
    assert_eq!(registered.data["user_id"], account["id"]);
    let login = events.recv().await.expect("event");
    assert_eq!(login.topic, "user.login");
    assert_eq!(login.data["email"], "kay@example.com");
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains(r#"xcore_events_published_total{topic="user.login"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}
