//! `/system/tasks` (permission `tasks:manage`): list, create, details with
//! recent runs, edit, delete, run now, pause, resume.

use std::sync::Arc;

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use chrono::Utc;
use serde_json::{json, Value};

use super::{
    spec::{self, Schedule, TaskInput},
    NewTask, Scheduler,
};
use crate::{
    audit::{self, Audited},
    auth::Gate,
    config::Config,
    db::Database,
    error::{ApiError, ApiResult, FieldError},
    http::{
        answers::NoSuchTask,
        extract::{ApiJson, ApiPath, ApiQuery},
        pagination::{list_query, sort_in_memory, Page, SortOrder},
    },
    rbac::permissions::{Require, TasksManage},
};

/// The routes.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Scheduler>: FromRef<S>,
    Arc<Gate>: FromRef<S>,
    Arc<Config>: FromRef<S>,
    Database: FromRef<S>,
{
    Router::new()
        .route("/system/tasks", get(list).post(create))
        .route(
            "/system/tasks/{task_id}",
            get(details).put(update).delete(remove),
        )
        .route("/system/tasks/{task_id}/run", post(run))
        .route("/system/tasks/{task_id}/pause", post(pause))
        .route("/system/tasks/{task_id}/resume", post(resume))
}

/// The tasks, paged and sorted.
#[utoipa::path(
    get, path = "/system/tasks", tag = "tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "Every task with its schedule, state and counters"),
        TasksManage,
    )
)]
pub async fn list(
    State(tasks): State<Arc<Scheduler>>,
    _: Require<TasksManage>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let (window, field, order) = query.window_and_sort(SORTABLE, ("id", SortOrder::Asc))?;
    let mut items = Vec::new();
    for task in tasks.records().await? {
        items.push(tasks.view(task).await);
    }
    sort_in_memory(
        &mut items,
        field,
        order,
        |a, b| match field {
            "name" => a.name.cmp(&b.name),
            "job" => a.job.cmp(&b.job),
            "status" => a.status.cmp(b.status),
            "next_run" => a.next_run.cmp(&b.next_run),
            _ => std::cmp::Ordering::Equal,
        },
        |item| item.id.as_str(),
    );
    Ok(Json(Page::from_all(items, window)))
}

list_query! {
    /// `GET /system/tasks` query.
    pub struct ListQuery {
        sort_by: "id (default), name, job, status or next_run",
    }
}

/// `{task_id}`, for the annotations only: the handlers extract the bare
/// string (see [`crate::rbac::paths`]).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskIdPath {
    /// Task id
    pub task_id: String,
}

/// Sort fields of `GET /system/tasks`.
const SORTABLE: &[(&str, &str)] = &[
    ("id", "id"),
    ("name", "name"),
    ("job", "job"),
    ("status", "status"),
    ("next_run", "next_run"),
];

fn check_job(scheduler: &Scheduler, job: &str) -> Result<(), FieldError> {
    if scheduler.job_available(job) {
        Ok(())
    } else {
        Err(FieldError::new(
            "job",
            format!(
                "unknown job {job:?}; jobs: {}",
                scheduler.available_jobs().join(", ")
            ),
        ))
    }
}

fn check_future(schedule: &Schedule) -> Result<(), FieldError> {
    match schedule {
        Schedule::Once(at) if *at <= Utc::now() => {
            Err(FieldError::new("run_at", "must be in the future"))
        }
        _ => Ok(()),
    }
}

/// Creates a task.
#[utoipa::path(
    post, path = "/system/tasks", tag = "tasks",
    request_body = TaskInput,
    responses(
        (status = 201, description = "The task", body = super::TaskView),
        TasksManage,
        (status = 409, description = "The id is taken", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid schedule, job or id", body = crate::error::ErrorBody),
    )
)]
pub async fn create(
    State(tasks): State<Arc<Scheduler>>,
    caller: Audited<TasksManage>,
    ApiJson(input): ApiJson<TaskInput>,
) -> ApiResult<impl IntoResponse> {
    let mut problems = Vec::new();
    let id = input.id.clone().unwrap_or_default();
    if let Err(problem) = spec::check_id(&id) {
        problems.push(problem);
    }
    let schedule = match input.kind.as_deref() {
        None => Err(FieldError::new("type", "required: cron, interval or once")),
        Some(kind) => spec::schedule_of(kind, &input, Scheduler::cron_is_valid),
    }
    .and_then(|schedule| check_future(&schedule).map(|()| schedule));
    let schedule = schedule.map_err(|problem| problems.push(problem)).ok();
    // Seed 001 creates tasks without a job: the id names the job to run.
    let job = match input.job.clone().filter(|job| !job.is_empty()) {
        Some(job) => job,
        None if tasks.job_available(&id) => id.clone(),
        None => {
            problems.push(FieldError::new(
                "job",
                format!(
                    "required unless the id names a job; jobs: {}",
                    tasks.available_jobs().join(", ")
                ),
            ));
            String::new()
        }
    };
    if !job.is_empty() {
        if let Err(problem) = check_job(&tasks, &job) {
            problems.push(problem);
        }
    }
    let name = input.name.clone().unwrap_or_else(|| id.clone());
    if name.trim().is_empty() || name.len() > 200 {
        problems.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    let Some(schedule) = schedule.filter(|_| problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };
    let view = tasks
        .create(NewTask {
            id,
            name,
            schedule,
            job,
            enabled: input.enabled.unwrap_or(true),
        })
        .await?;
    caller
        .record(audit::TASK_CREATED, "task", &view.id, Value::Null)
        .await;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One task with its recent runs.
#[utoipa::path(
    get, path = "/system/tasks/{task_id}", tag = "tasks",
    params(TaskIdPath),
    responses(
        (status = 200, description = "The task with its recent runs"),
        TasksManage,
        NoSuchTask,
    )
)]
pub async fn details(
    State(tasks): State<Arc<Scheduler>>,
    _: Require<TasksManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let task = tasks.record(&id).await?;
    let view = tasks.view(task).await;
    let runs = tasks.runs(&id).await?;
    let mut body = serde_json::to_value(view).map_err(ApiError::internal)?;
    body["runs"] = serde_json::to_value(runs).map_err(ApiError::internal)?;
    Ok(Json(body))
}

/// Changes a task: any of `name`, `type` with its schedule fields, `job`,
/// `enabled`. The id cannot change, nor a built-in task's job.
#[utoipa::path(
    put, path = "/system/tasks/{task_id}", tag = "tasks",
    params(TaskIdPath),
    request_body = TaskInput,
    responses(
        (status = 200, description = "The task", body = super::TaskView),
        TasksManage,
        NoSuchTask,
        (status = 422, description = "Invalid schedule or job", body = crate::error::ErrorBody),
    )
)]
pub async fn update(
    State(tasks): State<Arc<Scheduler>>,
    caller: Audited<TasksManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<TaskInput>,
) -> ApiResult<impl IntoResponse> {
    let mut task = tasks.record(&id).await?;
    let mut problems = Vec::new();
    if input.id.as_ref().is_some_and(|new_id| *new_id != id) {
        problems.push(FieldError::new("id", "cannot change"));
    }
    if let Some(name) = &input.name {
        if name.trim().is_empty() || name.len() > 200 {
            problems.push(FieldError::new("name", "must be 1 to 200 characters"));
        } else {
            task.name = name.clone();
        }
    }
    let reschedules = input.kind.is_some()
        || input.schedule.is_some()
        || input.interval.is_some()
        || input.run_at.is_some();
    if reschedules {
        let kind = input
            .kind
            .clone()
            .unwrap_or_else(|| task.schedule.kind().to_string());
        match spec::schedule_of(&kind, &input, Scheduler::cron_is_valid)
            .and_then(|schedule| check_future(&schedule).map(|()| schedule))
        {
            Ok(schedule) => task.schedule = schedule,
            Err(problem) => problems.push(problem),
        }
    }
    if let Some(job) = &input.job {
        if task.builtin && *job != task.job {
            problems.push(FieldError::new(
                "job",
                "a built-in task's job cannot change",
            ));
        } else if let Err(problem) = check_job(&tasks, job) {
            problems.push(problem);
        } else {
            task.job = job.clone();
        }
    }
    if let Some(enabled) = input.enabled {
        task.enabled = enabled;
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let view = tasks.update(&task).await?;
    caller
        .record(audit::TASK_UPDATED, "task", &id, Value::Null)
        .await;
    Ok(Json(view))
}

/// Deletes a task and its history.
#[utoipa::path(
    delete, path = "/system/tasks/{task_id}", tag = "tasks",
    params(TaskIdPath),
    responses(
        (status = 204, description = "Deleted"),
        TasksManage,
        NoSuchTask,
        (status = 409, description = "A built-in task", body = crate::error::ErrorBody),
    )
)]
pub async fn remove(
    State(tasks): State<Arc<Scheduler>>,
    caller: Audited<TasksManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    tasks.delete(&id).await?;
    caller
        .record(audit::TASK_DELETED, "task", &id, Value::Null)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a task now, in the background.
#[utoipa::path(
    post, path = "/system/tasks/{task_id}/run", tag = "tasks",
    params(TaskIdPath),
    responses(
        (status = 200, description = "The run has started"),
        TasksManage,
        NoSuchTask,
        (status = 409, description = "Already running, or its plugin is not serving", body = crate::error::ErrorBody),
    )
)]
pub async fn run(
    State(tasks): State<Arc<Scheduler>>,
    caller: Audited<TasksManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let started_at = tasks.run_now(&id).await?;
    caller
        .record(audit::TASK_RUN, "task", &id, Value::Null)
        .await;
    Ok(Json(
        json!({"id": id, "status": "running", "started_at": started_at}),
    ))
}

/// Pauses a task: it stops firing until resumed.
#[utoipa::path(
    post, path = "/system/tasks/{task_id}/pause", tag = "tasks",
    params(TaskIdPath),
    responses(
        (status = 200, description = "`{\"id\", \"status\": \"paused\", \"next_run\"}`"),
        TasksManage,
        NoSuchTask,
    )
)]
pub async fn pause(
    State(tasks): State<Arc<Scheduler>>,
    caller: Audited<TasksManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let view = tasks.set_enabled(&id, false).await?;
    caller
        .record(audit::TASK_PAUSED, "task", &id, Value::Null)
        .await;
    Ok(Json(
        json!({"id": view.id, "status": "paused", "next_run": view.next_run}),
    ))
}

/// Resumes a paused task.
#[utoipa::path(
    post, path = "/system/tasks/{task_id}/resume", tag = "tasks",
    params(TaskIdPath),
    responses(
        (status = 200, description = "`{\"id\", \"status\", \"next_run\"}`: scheduled again"),
        TasksManage,
        NoSuchTask,
    )
)]
pub async fn resume(
    State(tasks): State<Arc<Scheduler>>,
    caller: Audited<TasksManage>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let view = tasks.set_enabled(&id, true).await?;
    caller
        .record(audit::TASK_RESUMED, "task", &id, Value::Null)
        .await;
    Ok(Json(
        json!({"id": view.id, "status": view.status, "next_run": view.next_run}),
    ))
}
