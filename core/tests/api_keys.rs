//! API keys for machines (`/auth/api-keys`, seed 004's
//! `/security/api-keys`): the seed's requests and their shapes, and
//! attacks on every entrance: forged, truncated, revoked, expired keys,
//! owners who lose permissions or are deactivated, escalation at creation,
//! keys that try to manage credentials, keys beside tokens or in the query
//! string, plugin routes, other instances, rate-limit tiers, and
//! `last_used_at` written off the request path.

mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

use common::{access_token, deploy, testbed_variant, TestDatabase, TestServer};

/// Requests sent with `key` as `X-API-Key` (and nothing else).
fn keyed(server: &TestServer, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    server.request(method, path).header("x-api-key", key)
}

async fn status_of(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.expect("send").status()
}

/// Asserts that `GET path` with `key` answers `expected`.
async fn key_answers(server: &TestServer, key: &str, path: &str, expected: StatusCode) {
    let status = status_of(keyed(server, Method::GET, path, key)).await;
    assert_eq!(status, expected, "GET {path} with the key");
}

/// Sends and asserts a standard 401 with `message`.
async fn refused(request: reqwest::RequestBuilder, message: &str) {
    let body = common::expect_error(
        request.send().await.expect("send"),
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_ERROR",
    )
    .await;
    assert_eq!(body["error"]["message"], message, "{body}");
}

/// Asserts that `GET path` with `key` is a standard 401 with `message`.
async fn key_refused(server: &TestServer, key: &str, path: &str, message: &str) {
    refused(keyed(server, Method::GET, path, key), message).await;
}

async fn create_key(server: &TestServer, token: &str, permissions: Value) -> Value {
    server
        .create_as(
            token,
            "/auth/api-keys",
            json!({"name": "ci", "permissions": permissions}),
        )
        .await
}

/// `xk_<prefix>_<secret>` as `("xk_<prefix>", secret)`. The secret is
/// base64url and may itself hold underscores: it is everything after the
/// second one.
fn split_key(key: &str) -> (&str, &str) {
    let second = key
        .match_indices('_')
        .nth(1)
        .map(|(at, _)| at)
        .expect("xk_<prefix>_<secret>");
    (&key[..second], &key[second + 1..])
}

fn key_of(created: &Value) -> String {
    created["key"].as_str().expect("key").to_string()
}

/// A user holding `users:read` and `roles:read` through a role of their
/// own: `(user id, token, role id)`.
async fn reader(server: &TestServer, admin: &str, email: &str) -> (i64, String, i64) {
    let name = format!("reader-{}", email.len());
    let role = server
        .create_role(admin, &name, &["users:read", "roles:read"])
        .await;
    let (id, _) = server.user_token(email).await;
    server
        .post_as(admin, &format!("/admin/users/{id}/roles/{role}"))
        .await;
    // A token minted after the role was given.
    let token = access_token(&server.login(email, "UserPassw0rd!").await);
    (id, token, role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_requests_create_list_use_and_revoke_a_key() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let me = server.me(&admin).await;

    // POST /security/api-keys -> POST /auth/api-keys
    let expires = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let created = server
        .create_as(
            &admin,
            "/auth/api-keys",
            json!({"name": "nightly export", "permissions": ["users:read"], "expires_at": expires}),
        )
        .await;
    let key = key_of(&created);
    let id = created["id"].as_i64().expect("id");
    let prefix = created["prefix"].as_str().expect("prefix");
    assert!(prefix.starts_with("xk_") && key.starts_with(&format!("{prefix}_")));
    assert_eq!(created["name"], "nightly export");
    assert_eq!(created["permissions"], json!(["users:read"]));
    assert!(created["created_at"].is_string());
    assert!(created["expires_at"].is_string());
    assert_eq!(created["last_used_at"], Value::Null);
    assert_eq!(created["revoked_at"], Value::Null);

    // The key works as its owner, with its one permission.
    let as_key = keyed(&server, Method::GET, "/auth/me", &key)
        .send()
        .await
        .expect("send");
    let as_key = common::expect_status(as_key, StatusCode::OK).await;
    assert_eq!(as_key["id"], me["id"]);
    assert_eq!(as_key["permissions"], json!(["users:read"]));
    key_answers(&server, &key, "/admin/users", StatusCode::OK).await;
    assert_eq!(
        status_of(keyed(&server, Method::GET, "/admin/roles", &key)).await,
        StatusCode::FORBIDDEN,
        "the admin holds roles:read, the key was not given it"
    );

    // GET /security/api-keys -> GET /auth/api-keys: never the secret.
    let response = server.as_(&admin).get("/auth/api-keys").send().await;
    let text = response.text().await.expect("text");
    let (_, secret) = split_key(&key);
    assert_eq!(secret.len(), 43, "a 256-bit secret: {key}");
    assert!(!text.contains(secret), "the list shows the secret: {text}");
    let list: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(list["total"], 1);
    let item = &list["items"][0];
    assert_eq!(item["id"], id);
    assert_eq!(item["prefix"], prefix);
    assert_eq!(item["permissions"], json!(["users:read"]));
    assert!(item.get("key").is_none() && item.get("secret_hash").is_none());
    assert!(
        item["last_used_at"].is_string(),
        "used above, shown at once: {item}"
    );

    // Another user sees none of it and cannot revoke it.
    let (_, other) = server.user_token("other@example.com").await;
    let theirs = server.get_as(&other, "/auth/api-keys").await;
    assert_eq!(theirs["total"], 0);
    server
        .as_(&other)
        .delete(&format!("/auth/api-keys/{id}"))
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    key_answers(&server, &key, "/admin/users", StatusCode::OK).await;

    // DELETE /security/api-keys/:id -> DELETE /auth/api-keys/{id}: at once.
    server
        .delete_as(&admin, &format!("/auth/api-keys/{id}"))
        .await;
    key_refused(&server, &key, "/admin/users", "API key revoked").await;
    let list = server.get_as(&admin, "/auth/api-keys").await;
    assert!(list["items"][0]["revoked_at"].is_string(), "{list}");
    server
        .delete_as(&admin, &format!("/auth/api-keys/{id}"))
        .await;
    server
        .as_(&admin)
        .delete("/auth/api-keys/999999")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    let bad_id = server.as_(&admin).delete("/auth/api-keys/x").send().await;
    assert!(bad_id.status().is_client_error(), "{}", bad_id.status());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_is_checked_and_writes_nothing_when_refused() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, token, _) = reader(&server, &admin, "reader@example.com").await;
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    for (body, status, code) in [
        // Escalation: the creator lacks it.
        (
            json!({"name": "x", "permissions": ["users:read", "users:write"]}),
            StatusCode::FORBIDDEN,
            "AUTHORIZATION_ERROR",
        ),
        (
            json!({"name": "x", "permissions": ["no:such"]}),
            StatusCode::FORBIDDEN,
            "AUTHORIZATION_ERROR",
        ),
        (
            json!({"name": "x", "permissions": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            json!({"name": " ", "permissions": ["users:read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            json!({"name": "x".repeat(101), "permissions": ["users:read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            json!({"name": "x", "permissions": ["users:read"], "expires_at": past}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            json!({"name": "x", "permissions": ["users:read"], "expires_at": "tomorrow"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            json!({"name": "x", "permissions": ["users:read"], "owner": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
    ] {
        server
            .as_(&token)
            .post("/auth/api-keys")
            .json(&body)
            .expect_error(status, code)
            .await;
    }
    server
        .anonymous()
        .post("/auth/api-keys")
        .json(json!({"name": "x", "permissions": ["users:read"]}))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
        .fetch_one(server.state.db.pool())
        .await
        .expect("count")
        .try_get("n")
        .expect("n");
    assert_eq!(count, 0, "refused creations wrote nothing");
    // A quoted, non-ASCII name is stored as given.
    let name = "l'export \"nocturne\" é";
    let created = server
        .create_as(
            &token,
            "/auth/api-keys",
            json!({"name": name, "permissions": ["users:read"]}),
        )
        .await;
    assert_eq!(created["name"], name);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_follows_its_owner_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (user_id, token, role) = reader(&server, &admin, "script@example.com").await;
    let key = key_of(&create_key(&server, &token, json!(["users:read", "roles:read"])).await);
    for path in ["/admin/users", "/admin/roles"] {
        key_answers(&server, &key, path, StatusCode::OK).await;
    }
    // The owner loses a permission: so does the key, at the next request.
    server
        .delete_as(
            &admin,
            &format!("/admin/roles/{role}/permissions/users:read"),
        )
        .await;
    key_answers(&server, &key, "/admin/users", StatusCode::FORBIDDEN).await;
    key_answers(&server, &key, "/admin/roles", StatusCode::OK).await;
    // The owner is deactivated: the key stops at once.
    server
        .post_as(&admin, &format!("/admin/users/{user_id}/deactivate"))
        .await;
    key_refused(&server, &key, "/admin/roles", "account is deactivated").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_truncated_and_misplaced_keys_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let key = key_of(&create_key(&server, &admin, json!(["users:read"])).await);
    let (prefix, secret) = split_key(&key);
    // The right prefix with another valid-looking secret.
    let other = key_of(&create_key(&server, &admin, json!(["users:read"])).await);
    let other_secret = split_key(&other).1.to_string();
    let wrong_secret = format!("{prefix}_{other_secret}");
    let truncated = key[..key.len() - 1].to_string();
    let no_secret = format!("{prefix}_");
    for forged in [
        wrong_secret.as_str(),
        truncated.as_str(),
        no_secret.as_str(),
        prefix,
        secret,
        &key.to_uppercase(),
        "xk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "",
    ] {
        // One message for every shape of wrong key.
        key_refused(&server, forged, "/admin/users", "invalid API key").await;
    }
    // A key is no Bearer token, and the query string is no entrance.
    refused(
        server.get("/admin/users").bearer_auth(&key),
        "invalid token",
    )
    .await;
    for query in [
        format!("api_key={key}"),
        format!("x-api-key={key}"),
        format!("token={key}"),
    ] {
        refused(
            server.get(&format!("/admin/users?{query}")),
            "missing bearer token",
        )
        .await;
    }
    // A key beside a token, or two keys: refused, not one of them picked.
    for request in [
        keyed(&server, Method::GET, "/admin/users", &key).bearer_auth(&admin),
        keyed(&server, Method::GET, "/admin/users", &key).header("x-api-key", &key),
    ] {
        common::expect_error(
            request.send().await.expect("send"),
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
    }
    // The real key still works after all that.
    key_answers(&server, &key, "/admin/users", StatusCode::OK).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cannot_manage_credentials() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = create_key(&server, &admin, json!(["users:read", "users:write"])).await;
    let key = key_of(&created);
    let id = created["id"].as_i64().expect("id");
    for (method, path, body) in [
        (
            Method::POST,
            "/auth/api-keys".to_string(),
            Some(json!({"name": "child", "permissions": ["users:read"]})),
        ),
        (Method::GET, "/auth/api-keys".to_string(), None),
        (Method::DELETE, format!("/auth/api-keys/{id}"), None),
        (Method::POST, "/auth/logout".to_string(), None),
        (
            Method::PUT,
            "/auth/password/update".to_string(),
            Some(
                json!({"current_password": common::ADMIN_PASSWORD, "new_password": "Another-Passw0rd!"}),
            ),
        ),
        (Method::POST, "/auth/refresh".to_string(), None),
    ] {
        let mut request = keyed(&server, method.clone(), &path, &key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        common::expect_error(
            request.send().await.expect("send"),
            StatusCode::FORBIDDEN,
            "AUTHORIZATION_ERROR",
        )
        .await;
    }
    // None of it happened: one key, unrevoked; the password unchanged.
    let list = server.get_as(&admin, "/auth/api-keys").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["revoked_at"], Value::Null);
    server.admin_token().await;
    key_answers(&server, &key, "/admin/users", StatusCode::OK).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let created = server
        .create_as(&admin, "/auth/api-keys", json!({"name": "short", "permissions": ["users:read"], "expires_at": expires.to_rfc3339()}))
        .await;
    let key = key_of(&created);
    key_answers(&server, &key, "/admin/users", StatusCode::OK).await;
    let wait = (expires - chrono::Utc::now()).num_milliseconds().max(0) as u64 + 1_100;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    key_refused(&server, &key, "/admin/users", "API key expired").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_routes_take_keys_with_their_scopes() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), "libxcore_plugin_hello.so");
    let plugins_dir = dir.path().display().to_string();
    let server = TestServer::start_with(|config| config.plugins.dir = plugins_dir).await;
    let admin = server.admin_token().await;
    let me = server.me(&admin).await;
    let reading = create_key(&server, &admin, json!(["hello:read"])).await;
    let other = key_of(&create_key(&server, &admin, json!(["users:read"])).await);
    let whoami = "/api/v1/hello/whoami";
    let answer = keyed(&server, Method::GET, whoami, &key_of(&reading))
        .send()
        .await
        .expect("send");
    let answer = common::expect_status(answer, StatusCode::OK).await;
    assert_eq!(answer["user_id"], me["id"]);
    assert_eq!(answer["email"], me["email"]);
    common::expect_error(
        keyed(&server, Method::GET, whoami, &other)
            .send()
            .await
            .expect("send"),
        StatusCode::FORBIDDEN,
        "AUTHORIZATION_ERROR",
    )
    .await;
    key_refused(
        &server,
        "xk_0123456789abcdef_nope",
        whoami,
        "invalid API key",
    )
    .await;
    let id = reading["id"].as_i64().expect("id");
    server
        .delete_as(&admin, &format!("/auth/api-keys/{id}"))
        .await;
    key_refused(&server, &key_of(&reading), whoami, "API key revoked").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_refuses_a_revoked_key_after_its_poll() {
    let first = TestServer::start().await;
    let second = TestServer::start_on(TestDatabase::at(first.db.url.clone()), |_| {}).await;
    let admin = first.admin_token().await;
    let created = create_key(&first, &admin, json!(["users:read"])).await;
    let key = key_of(&created);
    // The second instance reads the key on first use, and holds it.
    assert_eq!(
        status_of(keyed(&second, Method::GET, "/admin/users", &key)).await,
        StatusCode::OK
    );
    first
        .delete_as(&admin, &format!("/auth/api-keys/{}", created["id"]))
        .await;
    // Test servers poll only when told (common::test_config): before its
    // poll the second instance still decides from memory...
    assert_eq!(
        status_of(keyed(&second, Method::GET, "/admin/users", &key)).await,
        StatusCode::OK
    );
    // ...and after it, the change log has evicted the key.
    second.state.auth.poll().await.expect("poll");
    key_refused(&second, &key, "/admin/users", "API key revoked").await;
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_requests_spend_the_key_tier() {
    let server = TestServer::start_with(|config| {
        config.rate_limits.enabled = true;
        config.rate_limits.anonymous_per_hour = 1_000;
        config.rate_limits.user_per_hour = 1_000;
        config.rate_limits.admin_per_hour = 1_000;
        config.rate_limits.api_key_per_hour = 3;
        config.rate_limits.auth_per_minute = 100;
    })
    .await;
    let admin = server.admin_token().await;
    let key = key_of(&create_key(&server, &admin, json!(["users:read"])).await);
    for remaining in ["2", "1", "0"] {
        let response = keyed(&server, Method::GET, "/admin/users", &key)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
    }
    let spent = keyed(&server, Method::GET, "/admin/users", &key)
        .send()
        .await
        .expect("send");
    common::expect_error(spent, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT").await;
    // The owner's own budget is untouched, and a forged key (right prefix)
    // spends the anonymous one, not the key's.
    let own = server.as_(&admin).get("/admin/users").send().await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(own.headers()["x-ratelimit-limit"], "1000");
    let forged = format!("{}AAAA", &key[..key.len() - 4]);
    let response = keyed(&server, Method::GET, "/admin/users", &forged)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-ratelimit-limit"], "1000");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_at_is_written_off_the_request_path() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = create_key(&server, &admin, json!(["users:read"])).await;
    let key = key_of(&created);
    for _ in 0..5 {
        key_answers(&server, &key, "/admin/users", StatusCode::OK).await;
    }
    let stored = || async {
        sqlx::query("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(created["id"].as_i64().expect("id"))
            .fetch_one(server.state.db.pool())
            .await
            .expect("row")
            .try_get::<Option<String>, _>("last_used_at")
            .expect("column")
    };
    // The default flush interval is a minute: no request wrote the row...
    assert_eq!(stored().await, None);
    // ...yet this instance shows the use at once.
    let list = server.get_as(&admin, "/auth/api-keys").await;
    let shown = list["items"][0]["last_used_at"]
        .as_str()
        .expect("shown")
        .to_string();
    // A clean stop writes what was noted; a restarted instance reads it.
    let db = server.stop().await;
    let server = TestServer::start_on(db, |_| {}).await;
    let admin = server.admin_token().await;
    let list = server.get_as(&admin, "/auth/api-keys").await;
    assert_eq!(list["items"][0]["last_used_at"], shown.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_at_flushes_on_its_interval() {
    let server =
        TestServer::start_with(|config| config.auth.api_keys.last_used_flush_secs = 1).await;
    let admin = server.admin_token().await;
    let created = create_key(&server, &admin, json!(["users:read"])).await;
    assert_eq!(
        status_of(keyed(
            &server,
            Method::GET,
            "/admin/users",
            &key_of(&created)
        ))
        .await,
        StatusCode::OK
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = sqlx::query("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(created["id"].as_i64().expect("id"))
            .fetch_one(server.state.db.pool())
            .await
            .expect("row");
        if row
            .try_get::<Option<String>, _>("last_used_at")
            .expect("column")
            .is_some()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last_used_at never written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The audit log shows the key's creation, one use per flush (not per
    // request) and its revocation, with the owner and never the secret.
    let id = created["id"].as_i64().expect("id");
    for _ in 0..5 {
        keyed(&server, Method::GET, "/admin/users", &key_of(&created))
            .send()
            .await
            .expect("send");
    }
    server
        .delete_as(&admin, &format!("/auth/api-keys/{id}"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let log = server
            .get_as(
                &admin,
                "/admin/audit?action=api_key.&sort_by=id&sort_order=asc&limit=100",
            )
            .await;
        let rows: Vec<Value> = common::items(&log).clone();
        let used = rows
            .iter()
            .filter(|row| row["action"] == "api_key.used")
            .count();
        if used >= 2 || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let actions: Vec<&str> = rows
        .iter()
        .filter_map(|row| row["action"].as_str())
        .collect();
    assert_eq!(actions.first(), Some(&"api_key.created"), "{actions:?}");
    assert!(actions.contains(&"api_key.revoked"), "{actions:?}");
    let used = actions
        .iter()
        .filter(|action| **action == "api_key.used")
        .count();
    assert!(
        (1..=3).contains(&used),
        "one row per flush, not per request (6 requests): {actions:?}"
    );
    let secret = key_of(&created);
    for row in &rows {
        assert_eq!(row["target"], format!("api_key:{id}"), "{row}");
        assert_eq!(row["actor"], common::ADMIN_EMAIL, "{row}");
        assert!(!row.to_string().contains(&secret), "{row}");
    }
    server.stop().await;
}
