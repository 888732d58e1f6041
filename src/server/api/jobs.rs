//! `/api/v1/jobs`: jobs listed and shown, retried and cancelled.

use axum::Json;
use axum::extract::State;

use super::extract::{ApiPath, ApiQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::jobs::{CancelOutcome, JobDetail, JobState, JobSummary, ListFilter, Role};
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult, ErrorBody};

/// Which jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs of this bot.
    bot: Option<String>,
    /// Only jobs in this state.
    state: Option<JobState>,
    /// Only jobs created at or after this time (RFC 3339; a date such as
    /// 2026-12-01 is taken as its midnight, UTC).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only jobs created before this time (as `from`).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Only jobs whose input or last error holds this text.
    text: Option<String>,
    /// Only jobs that finished at or after this time (as `from`).
    #[param(format = DateTime)]
    finished_from: Option<String>,
    /// Only jobs that finished before this time (as `from`).
    #[param(format = DateTime)]
    finished_to: Option<String>,
    /// At most this many jobs (default 50, at most 1000).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// Only jobs with an id below this: the next page.
    before: Option<i64>,
    /// Also mailbox polls (`<bot>:<trigger>` jobs), left out unless `bot`
    /// names one.
    polls: Option<bool>,
}

/// A time given as RFC 3339 or as a date (its midnight, UTC), in Unix ms.
pub(crate) fn parse_time(what: &str, text: &str) -> ApiResult<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{what}` must be a time such as 2026-12-01T08:00:00Z or a date such as 2026-12-01, found {text:?}"
            ))
        })
}

/// Jobs, newest first.
#[utoipa::path(get, operation_id = "list_jobs", path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, description = "The jobs, newest first", body = [JobSummary]), (status = 400, description = "The request is malformed", body = ErrorBody), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> ApiResult<Json<Vec<JobSummary>>> {
    caller.require(Role::Viewer)?;
    let filter = ListFilter {
        bot: q.bot,
        state: q.state,
        limit: super::extract::limit(q.limit, 50, 1000)?,
        before_id: q.before,
        created_from: q.from.map(|t| parse_time("from", &t)).transpose()?,
        created_to: q.to.map(|t| parse_time("to", &t)).transpose()?,
        text: q.text.filter(|t| !t.is_empty()),
        finished_from: q
            .finished_from
            .map(|t| parse_time("finished_from", &t))
            .transpose()?,
        finished_to: q
            .finished_to
            .map(|t| parse_time("finished_to", &t))
            .transpose()?,
        polls: q.polls.unwrap_or(false),
    };
    Ok(Json(app.db.list(&filter).await?))
}

/// One job: its attempts with their steps, and its audit trail.
#[utoipa::path(get, operation_id = "show_job", path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job with its steps, attempts, events and artifacts", body = JobDetail), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 404, description = "No such job or review", body = ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobDetail>> {
    caller.require(Role::Viewer)?;
    app.db
        .job(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))
}

/// Queue a failed, dead or cancelled job again; it resumes at the step
/// that failed.
#[utoipa::path(post, operation_id = "retry_job", path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job with its steps, attempts, events and artifacts", body = JobDetail), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody),
        (status = 404, description = "No such job or review", body = ErrorBody), (status = 409, description = "The job changed meanwhile (a stale version, or another reviewer holds it)", body = ErrorBody)))]
pub async fn retry(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobDetail>> {
    caller.require(Role::Operator)?;
    app.db.retry(id, &caller.name).await?;
    show(State(app), caller, ApiPath(id)).await
}

/// What a cancel did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    /// `cancelled` now, or `requested` from the worker that runs it.
    outcome: CancelOutcome,
}

/// Cancel a queued or waiting job now, or ask a running one to stop.
#[utoipa::path(post, operation_id = "cancel_job", path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "What the cancel did", body = Cancelled), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody),
        (status = 404, description = "No such job or review", body = ErrorBody), (status = 409, description = "The job changed meanwhile (a stale version, or another reviewer holds it)", body = ErrorBody)))]
pub async fn cancel(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Cancelled>> {
    caller.require(Role::Operator)?;
    let outcome = app.db.cancel(id, &caller.name).await?;
    Ok(Json(Cancelled { outcome }))
}
