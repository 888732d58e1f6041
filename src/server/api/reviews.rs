//! `/api/v1/reviews`: the queue of documents waiting for a person, and what
//! a reviewer does with one.

use std::time::Duration;

use axum::Json;
use axum::extract::State;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::jobs::{Review, ReviewFilter, ReviewItem, Role};
use crate::review::{self, ApproveError, Correction, ReviewView};
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult, ErrorBody};

/// How long a claim holds without a save.
pub const HOLD: Duration = Duration::from_secs(30 * 60);

/// Which reviews to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Only reviews of this bot.
    bot: Option<String>,
    /// Only reviews with a reason containing this text.
    reason: Option<String>,
    /// Only reviews past their deadline.
    overdue: Option<bool>,
    /// Only reviews the caller may work (their role and groups).
    mine: Option<bool>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// A review, and what the review page shows of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDetail {
    pub review: Review,
    pub view: ReviewView,
}

/// A value a reviewer gives for a field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FieldValue {
    pub field: String,
    /// The text typed; for `lines`, the rows as tables of column → text.
    #[schema(value_type = Object)]
    pub value: Value,
}

/// A save of a review.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SaveReview {
    /// The version the reviewer's page shows; a save of an older one is
    /// refused with 409.
    #[serde(deserialize_with = "super::extract::whole_number")]
    pub version: i64,
    #[serde(default)]
    pub corrections: Vec<FieldValue>,
    /// Read the document again with this template (its file, as the view
    /// lists them), for a document no template recognised.
    pub template: Option<String>,
}

/// An approval.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Approve {
    #[serde(deserialize_with = "super::extract::whole_number")]
    pub version: i64,
    #[serde(default)]
    pub note: String,
    /// Why the document is approved although checks fail or required
    /// fields are missing; without it such an approval is refused.
    #[serde(rename = "override")]
    pub override_note: Option<String>,
}

/// A rejection or a postponement, with its reason.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WithReason {
    #[serde(deserialize_with = "super::extract::whole_number")]
    pub version: i64,
    /// Why: the job fails with it (reject), or keeps it as a note
    /// (postpone).
    pub reason: String,
}

/// Where a review ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Finished {
    pub job_id: i64,
    /// `approved`, `rejected` or `postponed`.
    pub outcome: String,
}

/// Jobs waiting for review, oldest first.
#[utoipa::path(get, operation_id = "list_reviews", path = "/api/v1/reviews", tag = "reviews", params(ReviewQuery),
    responses((status = 200, description = "The reviews, oldest first", body = [ReviewItem]), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<Json<Vec<ReviewItem>>> {
    caller.require(Role::Viewer)?;
    let filter = ReviewFilter {
        bot: q.bot,
        reason: q.reason.filter(|r| !r.is_empty()),
        workable_by: (q.mine.unwrap_or(false) && caller.role != Role::Admin)
            .then(|| caller.answers_to()),
        overdue_at: q.overdue.unwrap_or(false).then(crate::jobs::now_ms),
        limit: super::extract::limit(q.limit, 100, 1000)?,
    };
    Ok(Json(app.db.review_queue(&filter).await?))
}

/// The review of job `id` if the caller may work it: 403 when its bot or
/// rules give it to others.
pub(crate) async fn workable(app: &App, caller: &Caller, id: i64) -> ApiResult<Review> {
    caller.require(Role::Reviewer)?;
    let review = load(app, id).await?;
    caller.require_work(&review.item)?;
    Ok(review)
}

/// The review of job `id`, or 404.
pub(crate) async fn load(app: &App, id: i64) -> ApiResult<Review> {
    app.db
        .review(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} is not waiting for review")))
}

/// The review and its view.
pub(crate) async fn detail(app: &App, id: i64) -> ApiResult<ReviewDetail> {
    let review = load(app, id).await?;
    let templates = app.templates_of(&review.item.bot, &review.item.step);
    let view = review::view(&review, &templates, chrono::Local::now().date_naive());
    Ok(ReviewDetail { review, view })
}

/// One review: its fields with confidence and reasons, failing checks,
/// the templates a reviewer may pick.
#[utoipa::path(get, operation_id = "show_review", path = "/api/v1/reviews/{id}", tag = "reviews", params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The review and what its page shows", body = ReviewDetail), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 404, description = "No such job or review", body = ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReviewDetail>> {
    caller.require(Role::Viewer)?;
    Ok(Json(detail(&app, id).await?))
}

/// Hold a review for 30 minutes, so no one else works it meanwhile.
#[utoipa::path(post, operation_id = "claim_review", path = "/api/v1/reviews/{id}/claim", tag = "reviews", params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The review, now held by the caller", body = ReviewItem), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody),
        (status = 404, description = "No such job or review", body = ErrorBody), (status = 409, description = "The job changed meanwhile (a stale version, or another reviewer holds it)", body = ErrorBody)))]
pub async fn claim(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReviewItem>> {
    workable(&app, &caller, id).await?;
    Ok(Json(app.db.claim_review(id, &caller.name, HOLD).await?))
}

/// Let go of a review.
#[utoipa::path(post, operation_id = "release_review", path = "/api/v1/reviews/{id}/release", tag = "reviews", params(("id" = i64, Path, description = "The job's id")),
    responses((status = 204, description = "Done"), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody), (status = 404, description = "No such job or review", body = ErrorBody)))]
pub async fn release(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    workable(&app, &caller, id).await?;
    app.db.release_review(id, &caller.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Save corrections (and a template picked); every value is typed and
/// checked, and nothing is saved when one is wrong (422).
#[utoipa::path(put, operation_id = "save_review", path = "/api/v1/reviews/{id}", tag = "reviews", params(("id" = i64, Path, description = "The job's id")),
    request_body = SaveReview,
    responses((status = 200, description = "The review and what its page shows", body = ReviewDetail), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody),
        (status = 404, description = "No such job or review", body = ErrorBody), (status = 409, description = "The job changed meanwhile (a stale version, or another reviewer holds it)", body = ErrorBody), (status = 422, description = "Values that do not check out; the details say which", body = ErrorBody)))]
pub async fn save(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SaveReview>,
) -> ApiResult<Json<ReviewDetail>> {
    caller.require(Role::Reviewer)?;
    save_review(&app, &caller, id, body).await?;
    Ok(Json(detail(&app, id).await?))
}

/// Save a reviewer's corrections: a template picked first (the document
/// read again with it), then the values.
pub(crate) async fn save_review(
    app: &App,
    caller: &Caller,
    id: i64,
    body: SaveReview,
) -> ApiResult<i64> {
    let mut review = workable(app, caller, id).await?;
    let templates = app.templates_of(&review.item.bot, &review.item.step);
    let mut version = body.version;
    if let Some(name) = body.template.filter(|t| !t.is_empty()) {
        let template = templates
            .iter()
            .find(|t| t.file.display().to_string() == name)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!("no template {name:?} for this bot's step"))
            })?;
        let file = app
            .document_file(Some(&review.extraction), &review.input)
            .await
            .ok_or_else(|| ApiError::bad_request("the review names no document to read again"))?;
        let doc = tokio::task::spawn_blocking(move || {
            crate::documents::read_file(&file, &crate::documents::ReadOptions::default())
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the document cannot be read: {e}"),
            )
        })?;
        let update = review::pick_template(&review, &template, &doc);
        version = app
            .db
            .save_review(id, &caller.name, version, &update)
            .await?;
        review = load(app, id).await?;
    }
    if !body.corrections.is_empty() {
        let corrections: Vec<Correction> = body
            .corrections
            .into_iter()
            .map(|c| Correction {
                field: c.field,
                value: c.value,
            })
            .collect();
        let update = review::correct(&review, &templates, &corrections).map_err(|errors| {
            let words: Vec<String> = errors.iter().map(ToString::to_string).collect();
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, words.join("; ")).with_details(errors)
        })?;
        version = app
            .db
            .save_review(id, &caller.name, version, &update)
            .await?;
    }
    Ok(version)
}

/// Approve: the reviewed values become the step's output and the job goes
/// on at its next step. With failing checks, only with `override` (422
/// lists the checks otherwise).
#[utoipa::path(post, operation_id = "approve_review", path = "/api/v1/reviews/{id}/approve", tag = "reviews", params(("id" = i64, Path, description = "The job's id")),
    request_body = Approve,
    responses((status = 200, description = "Where the review ended", body = Finished), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody),
        (status = 404, description = "No such job or review", body = ErrorBody), (status = 409, description = "The job changed meanwhile (a stale version, or another reviewer holds it)", body = ErrorBody), (status = 422, description = "Values that do not check out; the details say which", body = ErrorBody)))]
pub async fn approve(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Approve>,
) -> ApiResult<Json<Finished>> {
    caller.require(Role::Reviewer)?;
    approve_review(&app, &caller, id, &body).await?;
    Ok(Json(Finished {
        job_id: id,
        outcome: "approved".into(),
    }))
}

pub(crate) async fn approve_review(
    app: &App,
    caller: &Caller,
    id: i64,
    body: &Approve,
) -> ApiResult<()> {
    let review = workable(app, caller, id).await?;
    let templates = app.templates_of(&review.item.bot, &review.item.step);
    let outcome = review::approve(
        &review,
        &templates,
        &caller.name,
        &body.note,
        body.override_note.as_deref(),
        chrono::Local::now().date_naive(),
    )
    .map_err(|e| {
        let ApproveError::NeedsOverride { failures, missing } = &e;
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            .with_details(serde_json::json!({ "failures": failures, "missing": missing }))
    })?;
    app.db
        .finish_review(id, &caller.name, body.version, &outcome)
        .await?;
    Ok(())
}

/// Reject: the job fails with the reason, and its owners hear of it.
#[utoipa::path(post, operation_id = "reject_review", path = "/api/v1/reviews/{id}/reject", tag = "reviews", params(("id" = i64, Path, description = "The job's id")),
    request_body = WithReason,
    responses((status = 200, description = "Where the review ended", body = Finished), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody),
        (status = 404, description = "No such job or review", body = ErrorBody), (status = 409, description = "The job changed meanwhile (a stale version, or another reviewer holds it)", body = ErrorBody), (status = 422, description = "Values that do not check out; the details say which", body = ErrorBody)))]
pub async fn reject(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<WithReason>,
) -> ApiResult<Json<Finished>> {
    with_reason(&app, &caller, id, &body, review::reject, "rejected").await
}

/// Postpone: the job keeps waiting with the reason as a note.
#[utoipa::path(post, operation_id = "postpone_review", path = "/api/v1/reviews/{id}/postpone", tag = "reviews", params(("id" = i64, Path, description = "The job's id")),
    request_body = WithReason,
    responses((status = 200, description = "Where the review ended", body = Finished), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "Signed in, but the role or review group may not do this (or the CSRF token is missing)", body = ErrorBody),
        (status = 404, description = "No such job or review", body = ErrorBody), (status = 409, description = "The job changed meanwhile (a stale version, or another reviewer holds it)", body = ErrorBody), (status = 422, description = "Values that do not check out; the details say which", body = ErrorBody)))]
pub async fn postpone(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<WithReason>,
) -> ApiResult<Json<Finished>> {
    with_reason(&app, &caller, id, &body, review::postpone, "postponed").await
}

/// End or put off a review with a reason: `decide` checks the reason and
/// makes the outcome; `word` says where the review ended.
async fn with_reason<E: std::fmt::Display>(
    app: &App,
    caller: &Caller,
    id: i64,
    body: &WithReason,
    decide: impl FnOnce(&str) -> Result<crate::jobs::ReviewOutcome, E>,
    word: &str,
) -> ApiResult<Json<Finished>> {
    workable(app, caller, id).await?;
    let outcome = decide(&body.reason)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    app.db
        .finish_review(id, &caller.name, body.version, &outcome)
        .await?;
    Ok(Json(Finished {
        job_id: id,
        outcome: word.into(),
    }))
}
