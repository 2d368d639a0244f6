//! `/system/tasks` against the real server and scheduler: built-in tasks,
//! validation, create/run/pause/resume/edit/delete, counters and history,
//! `task.completed` over a real WebSocket, a 1-second cron task firing,
//! state across a restart, overlapping runs refused, and plugin jobs that
//! follow their plugin.

mod common;

use std::time::Duration;

use common::{deploy, testbed_variant, ws, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn task(server: &TestServer, token: &str, id: &str) -> Value {
    server.get_as(token, &format!("/system/tasks/{id}")).await
}

/// Polls until `condition` holds on the task, for up to 15 s.
async fn task_until(
    server: &TestServer,
    token: &str,
    id: &str,
    what: &str,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..150 {
        let current = task(server, token, id).await;
        if condition(&current) {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {}", task(server, token, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_validated_created_run_paused_resumed_edited_and_deleted() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, user) = server.user_token("plain@example.com").await;

    let list = server.get_as(&admin, "/system/tasks").await;
    let ids: Vec<&str> = common::items(&list)
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec!["prune_audit_log", "prune_task_runs", "purge_expired_tokens"]
    );
    for builtin in common::items(&list) {
        assert_eq!(builtin["status"], "scheduled", "{builtin}");
        assert_eq!(builtin["type"], "cron");
        assert!(builtin["next_run"].is_string(), "{builtin}");
        assert_eq!(builtin["builtin"], true);
    }
    server
        .as_(&user)
        .get("/system/tasks")
        .expect_error(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR")
        .await;
    server
        .anonymous()
        .get("/system/tasks")
        .expect_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR")
        .await;

    // Validation: one detail per field.
    for (body, field) in [
        (
            json!({"id": "t1", "type": "cron", "schedule": "every day", "job": "core.prune_task_runs"}),
            "schedule",
        ),
        (
            json!({"id": "t1", "type": "cron", "schedule": "61 * * * *", "job": "core.prune_task_runs"}),
            "schedule",
        ),
        (
            json!({"id": "t1", "type": "interval", "interval": {"hours": 1}, "job": "nope.job"}),
            "job",
        ),
        (
            json!({"id": "t1", "interval": {"hours": 1}, "job": "core.prune_task_runs"}),
            "type",
        ),
        (
            json!({"id": "t1", "type": "interval", "interval": {}, "job": "core.prune_task_runs"}),
            "interval",
        ),
        (
            json!({"id": "t1", "type": "once", "run_at": "2001-01-01T00:00:00Z", "job": "core.prune_task_runs"}),
            "run_at",
        ),
        (
            json!({"id": "Bad Id", "type": "interval", "interval": {"hours": 1}, "job": "core.prune_task_runs"}),
            "id",
        ),
    ] {
        let error = server
            .as_(&admin)
            .post("/system/tasks")
            .json(body.clone())
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
            .await;
        assert_eq!(
            error["error"]["details"][0]["field"], field,
            "{body}: {error}"
        );
    }

    let created = server
        .create_as(
            &admin,
            "/system/tasks",
            json!({
                "id": "ma_tache", "name": "Ma Tâche", "type": "interval",
                "interval": {"hours": 1}, "job": "core.purge_expired_tokens", "enabled": true
            }),
        )
        .await;
    assert_eq!(created["status"], "scheduled", "{created}");
    assert_eq!(
        created["interval"],
        json!({"days": 0, "hours": 1, "minutes": 0, "seconds": 0})
    );
    assert!(created["next_run"].is_string(), "{created}");
    assert_eq!(created["success_count"], 0);
    server.as_(&admin).post("/system/tasks").json(json!({"id": "ma_tache", "type": "interval", "interval": {"hours": 1}, "job": "core.purge_expired_tokens"})).expect_error(StatusCode::CONFLICT, "CONFLICT").await;

    // Pause and resume: next_run follows.
    let paused = server.post_as(&admin, "/system/tasks/ma_tache/pause").await;
    assert_eq!(
        paused,
        json!({"id": "ma_tache", "status": "paused", "next_run": null})
    );
    let shown = task(&server, &admin, "ma_tache").await;
    assert_eq!(
        (shown["status"].as_str(), shown["next_run"].is_null()),
        (Some("paused"), true)
    );
    let resumed = server
        .post_as(&admin, "/system/tasks/ma_tache/resume")
        .await;
    assert_eq!(resumed["status"], "scheduled");
    assert!(resumed["next_run"].is_string(), "{resumed}");

    // Run now, watched over a real WebSocket; the job really purges.
    sqlx::query("INSERT INTO revoked_access_tokens (jti, user_id, expires_at) VALUES ('old', 1, '2001-01-01T00:00:00.000000Z')")
        .execute(server.state.db.pool())
        .await
        .expect("seed an expired row");
    sqlx::query("INSERT INTO revoked_sessions (session_id, user_id, expires_at) VALUES ('old', 1, '2001-01-01T00:00:00.000000Z')")
        .execute(server.state.db.pool())
        .await
        .expect("seed an expired session revocation");
    let mut socket = ws::connect(&server, &format!("?token={admin}")).await;
    ws::next_json(&mut socket, Duration::from_secs(10))
        .await
        .expect("auth reply");
    ws::send(
        &mut socket,
        json!({"type": "subscribe", "topics": ["task.*"]}),
    )
    .await;
    ws::next_json(&mut socket, Duration::from_secs(10))
        .await
        .expect("subscribe reply");
    let run = server.post_as(&admin, "/system/tasks/ma_tache/run").await;
    assert_eq!(run["id"], "ma_tache");
    assert_eq!(run["status"], "running");
    assert!(run["started_at"].is_string());
    let completed = ws::next_event(&mut socket, "task.completed").await;
    assert_eq!(completed["data"]["id"], "ma_tache");
    assert_eq!(
        completed["data"]["result"]["revoked_access_tokens"], 1,
        "{completed}"
    );
    assert_eq!(
        completed["data"]["result"]["revoked_sessions"], 1,
        "{completed}"
    );
    let after = task_until(&server, &admin, "ma_tache", "one success", |t| {
        t["success_count"] == 1
    })
    .await;
    assert_eq!(after["runs"][0]["outcome"], "success", "{after}");
    assert_eq!(after["runs"][0]["started_by"], "manual");
    assert!(after["last_run"].is_string());
    assert!(after["runs"][0]["finished_at"].is_string());

    // Edit: a cron schedule; bad edits are refused and change nothing.
    let edited = server
        .put_as(
            &admin,
            "/system/tasks/ma_tache",
            json!({"type": "cron", "schedule": "0 4 * * *", "name": "Nightly"}),
        )
        .await;
    assert_eq!(edited["type"], "cron");
    assert_eq!(edited["name"], "Nightly");
    assert!(
        edited["next_run"]
            .as_str()
            .is_some_and(|next| next.contains("T04:00:00")),
        "{edited}"
    );
    server
        .as_(&admin)
        .put("/system/tasks/ma_tache")
        .json(json!({"schedule": "not cron"}))
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
        .await;
    assert_eq!(
        task(&server, &admin, "ma_tache").await["schedule"],
        "0 4 * * *"
    );

    server
        .as_(&admin)
        .delete("/system/tasks/purge_expired_tokens")
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    let deleted = server
        .as_(&admin)
        .delete("/system/tasks/ma_tache")
        .send()
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    server
        .as_(&admin)
        .get("/system/tasks/ma_tache")
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_cron_task_fires_and_its_state_survives_a_restart() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    server.create_as(&admin, "/system/tasks", json!({"id": "every_second", "type": "cron", "schedule": "* * * * * *", "job": "core.prune_task_runs"})).await;
    let fired = task_until(&server, &admin, "every_second", "two scheduled runs", |t| {
        t["success_count"].as_i64().unwrap_or(0) >= 2
    })
    .await;
    assert_eq!(fired["runs"][0]["started_by"], "schedule", "{fired}");
    server
        .post_as(&admin, "/system/tasks/every_second/pause")
        .await;
    // A run in flight at the pause may still finish.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = task(&server, &admin, "every_second").await;

    let db = server.stop().await;
    let server = TestServer::start_on(db, |_| {}).await;
    let admin = server.admin_token().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = task(&server, &admin, "every_second").await;
    assert_eq!(after["status"], "paused", "{after}");
    assert!(after["next_run"].is_null());
    assert_eq!(
        after["success_count"], before["success_count"],
        "a paused task stays still"
    );
    assert_eq!(after["last_run"], before["last_run"]);
    server
        .post_as(&admin, "/system/tasks/every_second/resume")
        .await;
    let counted = before["success_count"].as_i64().expect("count");
    task_until(
        &server,
        &admin,
        "every_second",
        "fires again after resume",
        |t| t["success_count"].as_i64().unwrap_or(0) > counted,
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_jobs_never_overlap_time_out_and_follow_their_plugin() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), "libxcore_plugin_hello.so");
    let plugins_dir = dir.path().display().to_string();
    let server = TestServer::start_with(|config| {
        config.plugins.dir = plugins_dir;
        config.tasks.job_timeout_secs = 1;
    })
    .await;
    let admin = server.admin_token().await;
    for (id, job) in [("hello_tick", "hello.tick"), ("hello_nap", "hello.nap")] {
        server
            .create_as(
                &admin,
                "/system/tasks",
                json!({"id": id, "type": "interval", "interval": {"hours": 6}, "job": job}),
            )
            .await;
    }

    server.post_as(&admin, "/system/tasks/hello_tick/run").await;
    task_until(&server, &admin, "hello_tick", "the plugin job ran", |t| {
        t["success_count"] == 1
    })
    .await;

    // The nap (1.5 s) overruns the 1 s timeout: recorded as failed, and
    // the task counts as running until the job's thread returns.
    server.post_as(&admin, "/system/tasks/hello_nap/run").await;
    server
        .as_(&admin)
        .post("/system/tasks/hello_nap/run")
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    let failed = task_until(&server, &admin, "hello_nap", "timed out", |t| {
        t["failure_count"] == 1
    })
    .await;
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{failed}"
    );
    task_until(&server, &admin, "hello_nap", "the nap ends", |t| {
        t["status"] == "scheduled"
    })
    .await;

    // The plugin's tasks stop with it and come back with it.
    server.plugin_action(&admin, "hello", "disable").await;
    let inactive = task_until(&server, &admin, "hello_tick", "inactive", |t| {
        t["status"] == "inactive"
    })
    .await;
    assert!(inactive["next_run"].is_null(), "{inactive}");
    server
        .as_(&admin)
        .post("/system/tasks/hello_tick/run")
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    server.plugin_action(&admin, "hello", "enable").await;
    let back = task_until(&server, &admin, "hello_tick", "scheduled again", |t| {
        t["status"] == "scheduled" && t["next_run"].is_string()
    })
    .await;
    assert_eq!(back["success_count"], 1);

    // Uninstalled, its tasks go.
    let uninstalled = server
        .as_(&admin)
        .delete("/system/plugins/hello")
        .send()
        .await;
    assert!(
        uninstalled.status().is_success(),
        "{}",
        uninstalled.status()
    );
    for _ in 0..100 {
        let gone = server
            .as_(&admin)
            .get("/system/tasks/hello_tick")
            .send()
            .await;
        if gone.status() == StatusCode::NOT_FOUND {
            server.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the uninstalled plugin's task is still there");
}

/// `HostOp::RunJob` through a real plugin: a burst of requests while the
/// job runs folds into one more run (never two at once, none lost), and a
/// job the plugin does not declare is refused with its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_runs_its_own_jobs_on_demand_one_run_at_a_time() {
    let dir = tempfile::tempdir().expect("dir");
    deploy(&testbed_variant(""), dir.path(), "libxcore_plugin_hello.so");
    let plugins_dir = dir.path().display().to_string();
    let server = TestServer::start_with(move |config| config.plugins.dir = plugins_dir).await;
    let admin = server.admin_token().await;

    let refused = server
        .anonymous()
        .get("/api/v1/hello/run-job?name=nope")
        .expect_error(StatusCode::CONFLICT, "CONFLICT")
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("declares no job named \"nope\"")),
        "{refused}"
    );

    // `stamp` takes 0.3 s and stores one greeting per run. Five requests
    // in a burst: the first starts a run, the other four ask for one more.
    for _ in 0..5 {
        let queued = server
            .anonymous()
            .get("/api/v1/hello/run-job?name=stamp")
            .expect(StatusCode::ACCEPTED)
            .await;
        assert_eq!(queued["queued"], "stamp");
    }
    let stamps = || async {
        let list = server
            .get_as(&admin, "/api/v1/hello/greetings?limit=100")
            .await;
        common::items(&list)
            .iter()
            .filter(|g| g["text"] == "stamp")
            .count()
    };
    for _ in 0..50 {
        if stamps().await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for a third run to have shown up, were there one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(stamps().await, 2, "one run, then one more for the burst");
    // Idle again: the next request runs it once more.
    server
        .anonymous()
        .get("/api/v1/hello/run-job?name=stamp")
        .expect(StatusCode::ACCEPTED)
        .await;
    for _ in 0..50 {
        if stamps().await == 3 {
            server.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the request after the burst did not run");
}
