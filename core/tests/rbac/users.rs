//! Users: listed, searched, sorted, created by an administrator.

use crate::common::{TestServer, ADMIN_EMAIL};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_listed_searched_sorted_and_created() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    for (email, name) in [
        ("zoe@example.com", "Zoe Zed"),
        ("adam@example.com", "Adam Ant"),
        ("bob@other.org", "Bob 100%"),
    ] {
        let created = server
            .create_as(
                &admin,
                "/admin/users",
                json!({"email": email, "name": name, "password": "SecurePass123!"}),
            )
            .await;
        assert_eq!(created["roles"], json!(["user"]));
        assert_eq!(created["full_name"], name);
    }
    let manager = server.create_as(&admin, "/admin/users", json!({"email": "Max@Example.com", "full_name": "Max", "password": "SecurePass123!", "role": "admin"})).await;
    assert_eq!(manager["email"], "max@example.com");
    assert_eq!(manager["roles"], json!(["admin"]));

    let all = server.get_as(&admin, "/admin/users").await;
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

    let by_email = server
        .get_as(
            &admin,
            "/admin/users?search=EXAMPLE.com&sort_by=email&sort_order=desc",
        )
        .await;
    let emails: Vec<&str> = crate::common::items(&by_email)
        .iter()
        .map(|u| u["email"].as_str().expect("email"))
        .collect();
    assert_eq!(
        emails,
        vec!["zoe@example.com", "max@example.com", "adam@example.com"]
    );
    let by_name = server.get_as(&admin, "/admin/users?search=ant").await;
    assert_eq!(by_name["total"], 1);
    // LIKE wildcards in the search are literal.
    let percent = server.get_as(&admin, "/admin/users?search=100%25").await;
    assert_eq!(percent["total"], 1);
    assert_eq!(percent["items"][0]["email"], "bob@other.org");

    let page = server
        .get_as(&admin, "/admin/users?skip=1&limit=2&sort_by=email")
        .await;
    assert_eq!(page["skip"], 1);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["has_more"], true);
    let emails: Vec<&str> = crate::common::items(&page)
        .iter()
        .map(|u| u["email"].as_str().expect("email"))
        .collect();
    assert_eq!(emails, vec!["admin@xcore.test", "bob@other.org"]);

    let zoe = by_email["items"][0]["id"].as_i64().expect("id");
    server
        .post_as(&admin, &format!("/admin/users/{zoe}/deactivate"))
        .await;
    let inactive = server.get_as(&admin, "/admin/users?is_active=false").await;
    assert_eq!(inactive["total"], 1);
    assert_eq!(inactive["items"][0]["id"], zoe);
    let active = server.get_as(&admin, "/admin/users?is_active=true").await;
    assert_eq!(active["total"], 4);
    let one = server.get_as(&admin, &format!("/admin/users/{zoe}")).await;
    assert_eq!(one["is_active"], false);

    for bad in [
        "/admin/users?limit=101",
        "/admin/users?sort_by=password_hash",
        "/admin/users?sort_order=up",
        "/admin/users?is_active=maybe",
        "/admin/users?skip=-1",
    ] {
        server
            .as_(&admin)
            .get(bad)
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
            .await;
    }
    let body = server
        .as_(&admin)
        .post("/admin/users")
        .json(json!({"email": "nope", "password": "weak"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    let mut fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field"))
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["email", "password"]);
    let body = server
        .as_(&admin)
        .post("/admin/users")
        .json(json!({"email": "weak@example.com", "password": "password"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(body["error"]["details"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["error"]["details"][0]["field"], "password");
    let body = server
        .as_(&admin)
        .post("/admin/users")
        .json(json!({"email": "r@example.com", "password": "SecurePass123!", "role": "ghost"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(body["error"]["details"][0]["field"], "role");
    server
        .as_(&admin)
        .post("/admin/users")
        .json(json!({"email": "ZOE@example.com", "password": "SecurePass123!"}))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server
        .as_(&admin)
        .get("/admin/users/999999")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    // Nothing was half-created by the refused requests.
    let after = server.get_as(&admin, "/admin/users").await;
    assert_eq!(after["total"], 5);

    // `roles` (a list) instead of `role`.
    let both = server.create_as(&admin, "/admin/users", json!({"email": "both@example.com", "password": "SecurePass123!", "roles": ["user", "admin"]})).await;
    assert_eq!(both["roles"], json!(["admin", "user"]));
    assert_eq!(both["is_active"], true);
    assert_eq!(both["full_name"], Value::Null);
    let fetched = server
        .get_as(&admin, &format!("/admin/users/{}", both["id"]))
        .await;
    assert_eq!(fetched, both);
    server.stop().await;
}
