//! `/api/v1/bots`: the bots this server knows, their triggers and when
//! each fires next, whether they are paused, how they did this week; run
//! one now, pause and resume it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath};
use crate::bot::Bot;
use crate::jobs::{Enqueued, JobState, ListFilter, Pause, Role, now_ms};
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::stats::{Figures, Now, Period};

/// A trigger of a bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerInfo {
    /// The trigger's identity within its bot.
    pub id: String,
    /// What it is, in a few words.
    pub describes: String,
    /// When it fires next (Unix ms); none for manual, folder and mailbox
    /// triggers, and none while the bot is paused.
    pub next_fire: Option<i64>,
}

/// A step of a bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepInfo {
    pub name: String,
    pub kind: String,
}

/// How the last job of a bot that finished ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastOutcome {
    pub job_id: i64,
    pub state: JobState,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// A bot, as loaded, with how it does.
#[derive(Debug, Serialize, ToSchema)]
pub struct BotInfo {
    pub name: String,
    pub description: String,
    pub triggers: Vec<TriggerInfo>,
    pub steps: Vec<StepInfo>,
    /// At most this many of its jobs run at once.
    pub concurrency: Option<u32>,
    pub max_attempts: u32,
    /// Made by clerk for a mailbox trigger of another bot.
    pub mailbox_poll: bool,
    /// Set while an operator has it paused.
    pub paused: Option<Pause>,
    pub last_outcome: Option<LastOutcome>,
    /// Jobs that finished in the last 7 days (cancelled apart), and the
    /// share of them that succeeded.
    pub finished_7d: i64,
    pub success_rate_7d: Option<f64>,
    /// Its jobs now.
    pub now: Now,
}

/// Every bot with its triggers, state and week, as the API and the bots
/// page show them.
pub(crate) async fn bot_infos(app: &App) -> crate::jobs::Result<Vec<BotInfo>> {
    let now = now_ms();
    let paused = app.db.paused().await?;
    let week = Period::last_days(7, now);
    let days = crate::stats::load(app.db.as_ref(), week.from_day, week.to_day, now).await?;
    let live = app.db.live().await?;
    let mut out = Vec::new();
    for b in app.bots.iter() {
        let pause = paused
            .iter()
            .find(|p| crate::jobs::belongs_to(&b.name, &p.bot))
            .cloned();
        let figures = Figures::of(&days, week.from_day, week.to_day, |n| n == b.name);
        let last = app
            .db
            .list(&ListFilter {
                bot: Some(b.name.clone()),
                limit: 1,
                finished_from: Some(0),
                ..Default::default()
            })
            .await?
            .into_iter()
            .next()
            .map(|j| LastOutcome {
                job_id: j.id,
                state: j.state,
                finished_at: j.finished_at,
                error: j.last_error,
            });
        out.push(info(
            b,
            pause,
            figures,
            last,
            Now::of(&live, now, |n| n == b.name),
            now,
        ));
    }
    Ok(out)
}

fn info(
    b: &Bot,
    paused: Option<Pause>,
    week: Figures,
    last_outcome: Option<LastOutcome>,
    now_figures: Now,
    now: i64,
) -> BotInfo {
    BotInfo {
        name: b.name.clone(),
        description: b.description.clone(),
        triggers: b
            .triggers
            .iter()
            .map(|t| TriggerInfo {
                id: t.id.clone(),
                describes: t.describe(),
                next_fire: t.next_slot(now).filter(|_| paused.is_none()),
            })
            .collect(),
        steps: b
            .steps
            .iter()
            .map(|s| StepInfo {
                name: s.name.clone(),
                kind: s.kind.to_string(),
            })
            .collect(),
        concurrency: b.concurrency,
        max_attempts: b.retry.max_attempts,
        mailbox_poll: b.is_mailbox_poll(),
        paused,
        last_outcome,
        finished_7d: week.finished,
        success_rate_7d: (week.finished > 0).then(|| week.succeeded as f64 / week.finished as f64),
        now: now_figures,
    }
}

/// Every bot, with its triggers and when they fire next.
#[utoipa::path(get, operation_id = "list_bots", path = "/api/v1/bots", tag = "bots",
    responses((status = 200, description = "The bots with their triggers, next fire, pause and week", body = [BotInfo]), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody)))]
pub async fn list(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<BotInfo>>> {
    caller.require(Role::Viewer)?;
    Ok(Json(bot_infos(&app).await?))
}

/// The bot a request names, if clerk runs it (mailbox polls are run by
/// their bot's trigger, not by hand).
pub(crate) fn runnable<'a>(app: &'a App, name: &str) -> ApiResult<&'a std::sync::Arc<Bot>> {
    app.bots
        .get(name)
        .filter(|b| !b.is_mailbox_poll())
        .ok_or_else(|| ApiError::not_found(format!("no bot named `{name}`")))
}

/// A job to run now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunNow {
    /// The job's input, an object (default `{}`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// A second run with the same key returns the first job.
    pub key: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// A body that must be a JSON object (serde would also take an array for
/// a struct whose fields all have defaults).
fn object_body<T: serde::de::DeserializeOwned>(
    body: serde_json::Map<String, serde_json::Value>,
) -> ApiResult<T> {
    serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// Queue a job of a bot `who` asked for, and note it in the bot's history.
pub(crate) async fn run_now(
    app: &App,
    who: &str,
    bot: &Bot,
    input: serde_json::Value,
    key: Option<String>,
) -> crate::jobs::Result<Enqueued> {
    let job = bot.job(input, key, who.to_string());
    let enq = app.db.enqueue(std::slice::from_ref(&job)).await?;
    let enq = enq
        .into_iter()
        .next()
        .ok_or_else(|| crate::jobs::JobsError::Corrupt("enqueue returned nothing".into()))?;
    if enq.created {
        let what = format!("job {} queued by hand", enq.id);
        app.db.bot_event(&bot.name, who, "ran", &what).await?;
    }
    Ok(enq)
}

/// Run a bot now: queue a job with the input given (operators).
#[utoipa::path(post, operation_id = "run_bot", path = "/api/v1/bots/{name}/run", tag = "bots",
    params(("name" = String, Path, description = "The bot's name")), request_body = RunNow,
    responses((status = 201, description = "The job was queued", body = Enqueued), (status = 200, description = "A job with this key exists; it is returned", body = Enqueued), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "The caller's role may not run bots", body = ErrorBody), (status = 404, description = "No such bot", body = ErrorBody), (status = 422, description = "The input cannot be stored: it holds a NUL character, at the place the error names", body = ErrorBody)))]
pub async fn run(
    State(app): State<App>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<(StatusCode, Json<Enqueued>)> {
    caller.require(Role::Operator)?;
    let body: RunNow = object_body(body)?;
    let bot = runnable(&app, &name)?;
    if !body.input.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`input` must be a JSON object",
        ));
    }
    let enq = run_now(&app, &caller.name, bot, body.input, body.key).await?;
    let status = if enq.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(enq)))
}

/// Why a bot is paused or resumed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// Kept in the bot's history and shown with the pause.
    #[serde(default)]
    pub reason: String,
}

/// Whether a pause or a resume changed anything.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paused {
    pub bot: String,
    pub paused: bool,
    /// False when the bot was already as asked.
    pub changed: bool,
}

/// Pause a bot on every node: its triggers do not fire and its queued
/// jobs wait; running jobs finish (operators).
#[utoipa::path(post, operation_id = "pause_bot", path = "/api/v1/bots/{name}/pause", tag = "bots",
    params(("name" = String, Path, description = "The bot's name")), request_body = PauseBody,
    responses((status = 200, description = "The bot is paused", body = Paused), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "The caller's role may not pause bots", body = ErrorBody), (status = 404, description = "No such bot", body = ErrorBody)))]
pub async fn pause(
    State(app): State<App>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<Paused>> {
    set_paused(&app, &caller, &name, body, true).await
}

/// Pause (`pause = true`) or resume a bot for `caller`, with the reason the
/// body gives or the action's name.
async fn set_paused(
    app: &App,
    caller: &Caller,
    name: &str,
    body: serde_json::Map<String, serde_json::Value>,
    pause: bool,
) -> ApiResult<Json<Paused>> {
    caller.require(Role::Operator)?;
    let body: PauseBody = object_body(body)?;
    let bot = runnable(app, name)?;
    let reason = match body.reason.trim() {
        "" if pause => "paused".to_string(),
        "" => "resumed".to_string(),
        _ => body.reason,
    };
    let changed = if pause {
        app.db.pause_bot(&bot.name, &caller.name, &reason).await?
    } else {
        app.db.resume_bot(&bot.name, &caller.name, &reason).await?
    };
    Ok(Json(Paused {
        bot: bot.name.clone(),
        paused: pause,
        changed,
    }))
}

/// Resume a paused bot (operators).
#[utoipa::path(post, operation_id = "resume_bot", path = "/api/v1/bots/{name}/resume", tag = "bots",
    params(("name" = String, Path, description = "The bot's name")), request_body = PauseBody,
    responses((status = 200, description = "The bot runs again", body = Paused), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody), (status = 403, description = "The caller's role may not resume bots", body = ErrorBody), (status = 404, description = "No such bot", body = ErrorBody)))]
pub async fn resume(
    State(app): State<App>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<Paused>> {
    set_paused(&app, &caller, &name, body, false).await
}
