//! The audit log (`GET /admin/audit`, permission `audit:read`): what each
//! act records (actor, action, target, client address, time), that no secret
//! reaches a row, the filters and paging, who may read it, the retention
//! task, and that failed logins cannot outgrow the login rate limit.

mod common;

use std::time::Duration;

use common::{
    access_token, deploy, expect_status, hello_variant, next_bus_event, TestServer, ADMIN_EMAIL,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

/// Every row the log holds, oldest first, as the API shows them.
async fn audit_rows(server: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut skip = 0;
    loop {
        let separator = if query.is_empty() { "" } else { "&" };
        let page = server
            .get_as(
                token,
                &format!(
                "/admin/audit?{query}{separator}sort_by=id&sort_order=asc&limit=100&skip={skip}"
            ),
            )
            .await;
        let items = common::items(&page).clone();
        skip += items.len();
        rows.extend(items);
        if page["has_more"] != true {
            return rows;
        }
    }
}

/// The rows with `action`.
fn with_action<'a>(rows: &'a [Value], action: &str) -> Vec<&'a Value> {
    rows.iter().filter(|row| row["action"] == action).collect()
}

/// The one row with `action`; panics if there is not exactly one.
fn one<'a>(rows: &'a [Value], action: &str) -> &'a Value {
    let found = with_action(rows, action);
    assert_eq!(found.len(), 1, "one {action} row expected: {rows:#?}");
    found[0]
}

/// Checks the fields every row has: a parseable recent time and an address.
fn assert_row(row: &Value, actor: &str, actor_id: Option<i64>, target: Option<&str>) {
    assert_eq!(row["actor"], actor, "{row}");
    assert_eq!(row["actor_id"], json!(actor_id), "{row}");
    assert_eq!(row["target"], json!(target), "{row}");
    assert_eq!(row["ip"], "127.0.0.1", "{row}");
    let time = chrono::DateTime::parse_from_rfc3339(row["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339 time");
    let age = chrono::Utc::now().signed_duration_since(time);
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::minutes(5),
        "{row}"
    );
    assert!(row["details"].is_object(), "{row}");
    assert!(row["id"].is_i64(), "{row}");
}

/// Every column of every stored row, as one text: what a secret must not
/// appear in.
async fn whole_table(server: &TestServer) -> String {
    let rows = sqlx::query(
        "SELECT id, created_at, actor_id, actor, action, target, ip, details FROM audit_log",
    )
    .fetch_all(server.state.db.pool())
    .await
    .expect("audit rows");
    assert!(!rows.is_empty());
    rows.iter()
        .map(|row| {
            format!(
                "{}|{}|{:?}|{}|{}|{:?}|{:?}|{}",
                row.get::<i64, _>("id"),
                row.get::<String, _>("created_at"),
                row.get::<Option<i64>, _>("actor_id"),
                row.get::<String, _>("actor"),
                row.get::<String, _>("action"),
                row.get::<Option<String>, _>("target"),
                row.get::<Option<String>, _>("ip"),
                row.get::<String, _>("details"),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_acts_are_recorded_without_any_secret() {
    let server = TestServer::start().await;
    let email = "alice@example.com";
    let first = "AlicePassw0rd!";
    let wrong = "Wr0ngGuess-Secret!";
    let second = "AliceN3wPassw0rd!";
    let third = "AliceTh1rdPassw0rd!";
    let account = server.register(email, first).await;
    let id = account["id"].as_i64().expect("id");

    // A wrong password, an unknown account, a success.
    server
        .anonymous()
        .post("/auth/login")
        .json(json!({"username": "Alice@Example.com", "password": wrong}))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server
        .anonymous()
        .post("/auth/login")
        .json(json!({"username": "nobody@example.com", "password": wrong}))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    let tokens = server.login(email, first).await;
    let token = access_token(&tokens);

    let changed = server
        .put_as(
            &token,
            "/auth/password/update",
            json!({"current_password": first, "new_password": second}),
        )
        .await;
    let token = access_token(&changed);
    server.logout(&token).await;

    for who in [email, "ghost@example.com"] {
        server
            .anonymous()
            .post("/auth/password/reset")
            .json(json!({"email": who}))
            .expect(StatusCode::ACCEPTED)
            .await;
    }
    let reset_token = server.outbox_reset_token(email).await;
    server
        .anonymous()
        .post("/auth/password/reset")
        .json(json!({"token": reset_token, "new_password": third}))
        .expect(StatusCode::OK)
        .await;

    let admin = server.admin_token().await;
    let rows = audit_rows(&server, &admin, "").await;
    let target = format!("user:{id}");
    assert_row(
        one(&rows, "user.registered"),
        email,
        Some(id),
        Some(&target),
    );
    let failures = with_action(&rows, "auth.login_failed");
    assert_eq!(failures.len(), 2, "{rows:#?}");
    // The email tried is kept (normalised), with why it failed.
    assert_row(failures[0], email, None, None);
    assert_eq!(failures[0]["details"]["reason"], "wrong_password");
    assert_row(failures[1], "nobody@example.com", None, None);
    assert_eq!(failures[1]["details"]["reason"], "unknown_account");
    let logins = with_action(&rows, "auth.login");
    // Alice's, then the admin's who reads the log.
    assert_eq!(logins.len(), 2, "{rows:#?}");
    assert_row(logins[0], email, Some(id), Some(&target));
    assert_eq!(logins[1]["actor"], ADMIN_EMAIL);
    assert_row(
        one(&rows, "auth.password_changed"),
        email,
        Some(id),
        Some(&target),
    );
    assert_row(one(&rows, "auth.logout"), email, Some(id), Some(&target));
    let requests = with_action(&rows, "auth.password_reset_requested");
    assert_eq!(requests.len(), 2, "{rows:#?}");
    assert_row(requests[0], email, Some(id), Some(&target));
    assert_row(requests[1], "ghost@example.com", None, None);
    assert_eq!(requests[1]["details"]["account"], "unknown");
    assert_row(
        one(&rows, "auth.password_reset_completed"),
        email,
        Some(id),
        Some(&target),
    );

    // No password, token or hash anywhere in any row, nor in the API's view.
    let stored = whole_table(&server).await;
    let listed = serde_json::to_string(&rows).expect("json");
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(server.state.db.pool())
        .await
        .expect("hash")
        .get("password_hash");
    for secret in [
        first,
        wrong,
        second,
        third,
        reset_token.as_str(),
        tokens["refresh_token"].as_str().expect("refresh"),
        changed["refresh_token"].as_str().expect("refresh"),
        token.as_str(),
        hash.as_str(),
        common::ADMIN_PASSWORD,
    ] {
        assert!(!stored.contains(secret), "a secret in the table: {stored}");
        assert!(!listed.contains(secret), "a secret in the list: {listed}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_permission_and_user_changes_are_recorded_with_their_actor() {
    let server = TestServer::start().await;
    let admin_tokens = server.login(ADMIN_EMAIL, common::ADMIN_PASSWORD).await;
    let admin = access_token(&admin_tokens);
    let admin_id = server.me_id(&admin).await;
    let as_admin = server.as_(&admin);

    let role = as_admin
        .post("/admin/roles")
        .json(json!({"name": "auditors"}))
        .expect(StatusCode::CREATED)
        .await;
    let role_id = role["id"].as_i64().expect("role id");
    server
        .put_as(
            &admin,
            &format!("/admin/roles/{role_id}"),
            json!({"name": "reviewers"}),
        )
        .await;
    server
        .create_as(
            &admin,
            "/admin/permissions",
            json!({"name": "reports:read", "description": "Read reports"}),
        )
        .await;
    server
        .post_as(
            &admin,
            &format!("/admin/roles/{role_id}/permissions/reports:read"),
        )
        .await;
    server
        .delete_as(
            &admin,
            &format!("/admin/roles/{role_id}/permissions/reports:read"),
        )
        .await;
    let user = server
        .create_as(
            &admin,
            "/admin/users",
            json!({"email": "bob@example.com", "password": "BobPassw0rd!", "name": "Bob"}),
        )
        .await;
    let user_id = user["id"].as_i64().expect("user id");
    let user_path = format!("/admin/users/{user_id}");
    let assignment = format!("{user_path}/roles/{role_id}");
    let deactivate = format!("{user_path}/deactivate");
    let activate = format!("{user_path}/activate");
    let role_path = format!("/admin/roles/{role_id}");
    for (method, path, status) in [
        (Method::POST, &assignment, StatusCode::OK),
        (Method::DELETE, &assignment, StatusCode::NO_CONTENT),
        (Method::POST, &deactivate, StatusCode::OK),
        (Method::POST, &activate, StatusCode::OK),
        (Method::DELETE, &role_path, StatusCode::NO_CONTENT),
    ] {
        server
            .as_(&admin)
            .request(method, path)
            .expect(status)
            .await;
    }
    // A refused change leaves no row: the built-in role cannot be deleted.
    let admin_role = server.role_id(&admin, "admin").await;
    server
        .as_(&admin)
        .delete(&format!("/admin/roles/{admin_role}"))
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;

    let rows = audit_rows(&server, &admin, "").await;
    let role_target = format!("role:{role_id}");
    let user_target = format!("user:{user_id}");
    for (action, target) in [
        ("role.created", role_target.as_str()),
        ("role.updated", &role_target),
        ("role.permission_granted", &role_target),
        ("role.permission_revoked", &role_target),
        ("user.created", &user_target),
        ("user.role_assigned", &user_target),
        ("user.role_removed", &user_target),
        ("user.deactivated", &user_target),
        ("user.activated", &user_target),
        ("role.deleted", &role_target),
    ] {
        assert_row(
            one(&rows, action),
            ADMIN_EMAIL,
            Some(admin_id),
            Some(target),
        );
    }
    let permission = one(&rows, "permission.created");
    assert_eq!(permission["details"]["name"], "reports:read");
    assert!(permission["target"]
        .as_str()
        .is_some_and(|t| t.starts_with("permission:")));
    assert_eq!(one(&rows, "role.updated")["details"]["name"], "reviewers");
    assert_eq!(
        one(&rows, "role.updated")["details"]["previous_name"],
        "auditors"
    );
    assert_eq!(
        one(&rows, "role.permission_granted")["details"]["permission"],
        "reports:read"
    );
    assert_eq!(
        one(&rows, "user.role_assigned")["details"]["role"],
        "reviewers"
    );
    let created = one(&rows, "user.created");
    assert_eq!(created["details"]["email"], "bob@example.com");
    assert!(!serde_json::to_string(&rows)
        .expect("json")
        .contains("BobPassw0rd!"));
    // Only role.deleted for the custom role: the refused one left nothing.
    assert_eq!(with_action(&rows, "role.deleted").len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_changes_are_recorded() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    server
        .create_as(&admin, "/system/tasks", json!({"id": "nightly", "type": "cron", "schedule": "0 2 * * *", "job": "core.prune_task_runs"}))
        .await;
    server
        .put_as(
            &admin,
            "/system/tasks/nightly",
            json!({"name": "Nightly prune"}),
        )
        .await;
    for step in ["pause", "resume", "run"] {
        server
            .post_as(&admin, &format!("/system/tasks/nightly/{step}"))
            .await;
    }
    // Deleting waits for no run: retry while the manual run still holds it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = server
            .as_(&admin)
            .delete("/system/tasks/nightly")
            .send()
            .await;
        if response.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "task never deletable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = audit_rows(&server, &admin, "action=task.").await;
    let actions: Vec<&str> = rows
        .iter()
        .map(|row| row["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "task.created",
            "task.updated",
            "task.paused",
            "task.resumed",
            "task.run",
            "task.deleted"
        ]
    );
    let admin_id = server.me_id(&admin).await;
    for row in &rows {
        assert_row(row, ADMIN_EMAIL, Some(admin_id), Some("task:nightly"));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_changes_are_recorded_with_the_caller_or_system() {
    let plugins_dir = tempfile::tempdir().expect("dir");
    let dir = plugins_dir.path().to_path_buf();
    let server = TestServer::start_with(move |config| {
        config.plugins.dir = dir.display().to_string();
        config.plugins.watch = true;
        config.plugins.watch_settle_ms = 200;
    })
    .await;
    let admin = server.admin_token().await;
    let hello = std::fs::read(hello_variant("")).expect("read");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(hello).file_name("plugin.so"),
    );
    let installed = server
        .post("/system/plugins")
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .expect("send");
    expect_status(installed, StatusCode::CREATED).await;
    for step in ["disable", "enable", "reload"] {
        server
            .post_as(&admin, &format!("/system/plugins/hello/{step}"))
            .await;
    }
    server.delete_as(&admin, "/system/plugins/hello").await;
    let rows = audit_rows(&server, &admin, "action=plugin.").await;
    let by_api: Vec<&Value> = rows.iter().filter(|r| r["actor"] != "system").collect();
    let actions: Vec<&str> = by_api
        .iter()
        .map(|row| row["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "plugin.installed",
            "plugin.disabled",
            "plugin.enabled",
            "plugin.reloaded",
            "plugin.uninstalled"
        ],
        "{rows:#?}"
    );
    let admin_id = server.me_id(&admin).await;
    for row in &by_api {
        assert_row(row, ADMIN_EMAIL, Some(admin_id), Some("plugin:hello"));
    }
    assert!(by_api[0]["details"]["version"].is_string(), "{rows:#?}");
    assert_eq!(by_api[1]["details"]["cascade"], false, "{rows:#?}");
    assert!(by_api[3]["details"]["generation"].is_u64(), "{rows:#?}");
    assert_eq!(by_api[4]["details"]["purge"], false, "{rows:#?}");

    // Dropped into the directory: the watcher installs it, as `system`.
    let system_installs = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["action"] == "plugin.installed")
            .cloned()
            .collect::<Vec<_>>()
    };
    let before = system_installs(&audit_rows(&server, &admin, "actor=system").await).len();
    deploy(
        &hello_variant(""),
        plugins_dir.path(),
        "libxcore_plugin_hello.so",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let system = loop {
        let rows = audit_rows(&server, &admin, "actor=system").await;
        if let Some(row) = system_installs(&rows).get(before) {
            break row.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no system install: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(system["actor_id"], Value::Null, "{system}");
    assert_eq!(system["target"], "plugin:hello", "{system}");
    assert_eq!(system["ip"], Value::Null, "{system}");
    assert_eq!(system["details"]["source"], "watcher", "{system}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filters_pages_sorts_and_refuses_bad_queries() {
    let server = TestServer::start().await;
    let (carol_id, _) = server.user_token("carol@example.com").await;
    for _ in 0..3 {
        server
            .anonymous()
            .post("/auth/login")
            .json(json!({"username": "carol@example.com", "password": "nope-nope-nope"}))
            .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
            .await;
    }
    let admin = server.admin_token().await;
    let all = audit_rows(&server, &admin, "").await;
    // carol: registered, logged in, failed 3 times; admin: logged in.
    assert_eq!(all.len(), 6, "{all:#?}");

    // By user id: what carol did signed in; by email: also what was tried
    // against her account.
    let by_id = audit_rows(&server, &admin, &format!("actor={carol_id}")).await;
    assert_eq!(by_id.len(), 2, "{by_id:#?}");
    let by_email = audit_rows(&server, &admin, "actor=Carol@Example.com").await;
    assert_eq!(by_email.len(), 5, "{by_email:#?}");
    let exact = audit_rows(&server, &admin, "action=auth.login").await;
    assert_eq!(exact.len(), 2, "{exact:#?}");
    let prefix = audit_rows(&server, &admin, "action=auth.").await;
    assert_eq!(prefix.len(), 5, "{prefix:#?}");
    // A prefix must end with the dot: `auth` matches nothing.
    assert!(audit_rows(&server, &admin, "action=auth").await.is_empty());

    // Time range: both ends inclusive, RFC 3339 with any offset.
    let third = all[2]["timestamp"].as_str().expect("time").to_string();
    let fourth = all[3]["timestamp"].as_str().expect("time").to_string();
    let encoded = |time: &str| time.replace('+', "%2B");
    let since = audit_rows(&server, &admin, &format!("from={}", encoded(&third))).await;
    assert_eq!(since.len(), 4, "{since:#?}");
    let until = audit_rows(&server, &admin, &format!("date_to={}", encoded(&fourth))).await;
    assert_eq!(until.len(), 4, "{until:#?}");
    let window = audit_rows(
        &server,
        &admin,
        &format!("from={}&to={}", encoded(&third), encoded(&fourth)),
    )
    .await;
    assert_eq!(window.len(), 2, "{window:#?}");
    let future = audit_rows(&server, &admin, "from=2999-01-01T00:00:00%2B02:00").await;
    assert!(future.is_empty());

    // Paging and the default order: newest first.
    let page = server.get_as(&admin, "/admin/audit?limit=4&skip=4").await;
    assert_eq!(page["total"], 6, "reading the log adds no row: {page}");
    assert_eq!(
        (
            page["skip"].as_i64(),
            page["limit"].as_i64(),
            page["page"].as_i64(),
            page["total_pages"].as_i64(),
            page["has_more"].as_bool(),
        ),
        (Some(4), Some(4), Some(2), Some(2), Some(false)),
        "{page}"
    );
    let first_page = server.get_as(&admin, "/admin/audit?limit=4").await;
    let ids: Vec<i64> = common::items(&first_page)
        .iter()
        .chain(common::items(&page))
        .map(|row| row["id"].as_i64().expect("id"))
        .collect();
    let mut newest_first = ids.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);
    let by_action = server
        .get_as(
            &admin,
            "/admin/audit?sort_by=action&sort_order=asc&limit=100",
        )
        .await;
    let actions: Vec<&str> = common::items(&by_action)
        .iter()
        .map(|row| row["action"].as_str().expect("action"))
        .collect();
    let mut sorted = actions.clone();
    sorted.sort_unstable();
    assert_eq!(actions, sorted);

    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("skip=-1", "skip"),
        ("sort_by=details", "sort_by"),
        ("sort_order=up", "sort_order"),
    ] {
        let body = server
            .as_(&admin)
            .get(&format!("/admin/audit?{query}"))
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
            .await;
        assert!(
            body["error"]["details"]
                .as_array()
                .expect("details")
                .iter()
                .any(|detail| detail["field"] == field),
            "{query}: {body}"
        );
    }
    // An unknown filter is refused, never silently ignored.
    server
        .as_(&admin)
        .get("/admin/audit?user=1")
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    // An injection attempt is a plain value.
    assert!(
        audit_rows(&server, &admin, "actor=x%27%20OR%20%271%27=%271")
            .await
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_holders_of_audit_read_may_read_the_log() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (dave_id, dave) = server.user_token("dave@example.com").await;
    server
        .anonymous()
        .get("/admin/audit")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    server
        .as_("not-a-token")
        .get("/admin/audit")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    let refused = server
        .as_(&dave)
        .get("/admin/audit")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("audit:read")),
        "{refused}"
    );
    // Granted through a role (not only to admins), it works at once.
    let role = server
        .create_as(&admin, "/admin/roles", json!({"name": "auditor"}))
        .await;
    let role_id = role["id"].as_i64().expect("id");
    server
        .post_as(
            &admin,
            &format!("/admin/roles/{role_id}/permissions/audit:read"),
        )
        .await;
    server
        .post_as(&admin, &format!("/admin/users/{dave_id}/roles/{role_id}"))
        .await;
    let page = server
        .get_as(&dave, "/admin/audit?action=user.role_assigned")
        .await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["target"], format!("user:{dave_id}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_task_deletes_old_rows_only() {
    let server = TestServer::start_with(|config| config.audit.retention_days = 30).await;
    let admin = server.admin_token().await;
    let now = chrono::Utc::now();
    for (days, action) in [(400, "test.ancient"), (31, "test.old"), (29, "test.recent")] {
        let time = (now - chrono::Duration::days(days))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        sqlx::query(
            "INSERT INTO audit_log (created_at, actor_id, actor, action, target, ip, details)
             VALUES ($1, NULL, 'system', $2, NULL, NULL, '{}')",
        )
        .bind(time)
        .bind(action)
        .execute(server.state.db.pool())
        .await
        .expect("insert");
    }
    let before = audit_rows(&server, &admin, "").await;
    assert_eq!(before.len(), 4, "{before:#?}");

    let mut events = server.state.events.subscribe();
    server
        .post_as(&admin, "/system/tasks/prune_audit_log/run")
        .await;
    let completed = loop {
        let data = next_bus_event(&mut events, "task.completed").await;
        if data["id"] == "prune_audit_log" {
            break data;
        }
    };
    assert_eq!(completed["result"]["deleted_rows"], 2, "{completed}");
    let after = audit_rows(&server, &admin, "").await;
    let actions: Vec<&str> = after
        .iter()
        .map(|row| row["action"].as_str().expect("action"))
        .collect();
    // The run itself is recorded too (task.run, after the two kept rows).
    assert_eq!(
        actions,
        ["auth.login", "test.recent", "task.run"],
        "{after:#?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_grow_the_log_no_faster_than_the_login_limit() {
    let server = TestServer::start_with(|config| {
        config.rate_limits.enabled = true;
        config.rate_limits.auth_per_minute = 3;
    })
    .await;
    let mut limited = 0;
    for _ in 0..10 {
        let response = server
            .anonymous()
            .post("/auth/login")
            .json(json!({"username": "target@example.com", "password": "guess-guess-1"}))
            .send()
            .await;
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(limited, 7);
    let failures: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'auth.login_failed'")
            .fetch_one(server.state.db.pool())
            .await
            .expect("count")
            .get("n");
    assert_eq!(failures, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_comes_from_the_proxy_only_when_trusted() {
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "203.0.113.9")] {
        let server =
            TestServer::start_with(move |config| config.rate_limits.trust_forwarded_for = trusted)
                .await;
        server
            .anonymous()
            .post("/auth/login")
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.1")
            .json(json!({"username": "who@example.com", "password": "guess-guess-1"}))
            .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
            .await;
        let admin = server.admin_token().await;
        let rows = audit_rows(&server, &admin, "action=auth.login_failed").await;
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0]["ip"], expected, "trusted: {trusted}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_email_tried_at_login_is_cut_to_an_email_length() {
    let server = TestServer::start().await;
    let huge = format!("{}@example.com", "a".repeat(20_000));
    server
        .anonymous()
        .post("/auth/login")
        .json(json!({"username": huge, "password": "guess-guess-1"}))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;
    let admin = server.admin_token().await;
    let rows = audit_rows(&server, &admin, "action=auth.login_failed").await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let actor = rows[0]["actor"].as_str().expect("actor");
    assert_eq!(actor.len(), 254);
    assert!(huge.starts_with(actor));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_log_table_transactional_changes_fail_whole_and_others_still_succeed() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    // The log's table goes away under the server.
    sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away")
        .execute(server.state.db.pool())
        .await
        .expect("rename");

    // Written in the change's transaction: the change fails whole.
    server
        .as_(&admin)
        .post("/admin/roles")
        .json(json!({"name": "unlogged"}))
        .expect_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
        .await;
    let roles = server.get_as(&admin, "/admin/roles?limit=100").await;
    assert!(
        !common::items(&roles)
            .iter()
            .any(|role| role["name"] == "unlogged"),
        "{roles}"
    );
    // Written after the fact: the done change still answers as done.
    server
        .create_as(&admin, "/system/tasks", json!({"id": "unlogged", "type": "cron", "schedule": "0 2 * * *", "job": "core.prune_task_runs"}))
        .await;
    server.get_as(&admin, "/system/tasks/unlogged").await;
    // A failed login is still refused as such, not as a server error.
    server
        .anonymous()
        .post("/auth/login")
        .json(json!({"username": ADMIN_EMAIL, "password": "guess-guess-1"}))
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;

    sqlx::query("ALTER TABLE audit_log_away RENAME TO audit_log")
        .execute(server.state.db.pool())
        .await
        .expect("rename back");
    let rows = audit_rows(&server, &admin, "").await;
    assert!(
        rows.iter().all(|row| row["action"] == "auth.login"),
        "only the admin's login made it: {rows:#?}"
    );
    server.stop().await;
}
