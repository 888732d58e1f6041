//! `/api/v1/bots`: the bots this server knows, their triggers and when
//! each fires next.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::jobs::Role;
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::{ApiResult, ErrorBody};

/// A trigger of a bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerInfo {
    /// The trigger's identity within its bot.
    id: String,
    /// What it is, in a few words.
    describes: String,
    /// When it fires next (Unix ms); none for manual, folder and mailbox
    /// triggers.
    next_fire: Option<i64>,
}

/// A step of a bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepInfo {
    name: String,
    kind: String,
}

/// A bot, as loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct BotInfo {
    name: String,
    description: String,
    triggers: Vec<TriggerInfo>,
    steps: Vec<StepInfo>,
    /// At most this many of its jobs run at once.
    concurrency: Option<u32>,
    max_attempts: u32,
    /// Made by clerk for a mailbox trigger of another bot.
    mailbox_poll: bool,
}

/// Every bot, with its triggers and when they fire next.
#[utoipa::path(get, operation_id = "list_bots", path = "/api/v1/bots", tag = "bots",
    responses((status = 200, description = "The bots with their triggers and next fire", body = [BotInfo]), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody)))]
pub async fn list(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<BotInfo>>> {
    caller.require(Role::Viewer)?;
    let now = crate::jobs::now_ms();
    let bots = app
        .bots
        .iter()
        .map(|b| BotInfo {
            name: b.name.clone(),
            description: b.description.clone(),
            triggers: b
                .triggers
                .iter()
                .map(|t| TriggerInfo {
                    id: t.id.clone(),
                    describes: t.describe(),
                    next_fire: t.next_slot(now),
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
        })
        .collect();
    Ok(Json(bots))
}
