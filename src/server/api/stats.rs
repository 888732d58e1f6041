//! `/api/v1/stats`: the dashboard's figures of a period.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::ApiQuery;
use crate::jobs::{Role, now_ms};
use crate::server::App;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::stats::{Overview, Period};

/// Which period, and which bot.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First day (YYYY-MM-DD, UTC).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Last day, included (default: today).
    #[param(format = Date)]
    pub to: Option<String>,
    /// Length of the period in days when `from` is not given (default 7).
    #[param(minimum = 1, maximum = 3660)]
    pub days: Option<i64>,
    /// Only this bot.
    pub bot: Option<String>,
}

fn date(what: &str, text: &str) -> ApiResult<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "`{what}` must be a date such as 2026-12-01, found {text:?}"
        ))
    })
}

impl StatsQuery {
    /// The period asked for, checked.
    pub fn period(&self, now: i64) -> ApiResult<Period> {
        let days = self.days.unwrap_or(7);
        if !(1..=3660).contains(&days) {
            return Err(ApiError::bad_request("`days` must be from 1 to 3660"));
        }
        let from = self.from.as_deref().map(|s| date("from", s)).transpose()?;
        let to = self.to.as_deref().map(|s| date("to", s)).transpose()?;
        // A start after the end is a period with no days in it.
        Ok(Period::between(from, to, days, now).unwrap_or_else(|_| {
            let day = from
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map_or(0, |t| crate::stats::day_of(t.and_utc().timestamp_millis()));
            Period {
                from_day: day,
                to_day: day,
            }
        }))
    }

    /// The same, with the empty fields of a submitted form left out.
    pub fn without_blanks(self) -> StatsQuery {
        let keep = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        StatsQuery {
            from: keep(self.from),
            to: keep(self.to),
            days: self.days,
            bot: keep(self.bot),
        }
    }
}

/// Documents in, straight-through and exception rates, cycle time and its
/// parts, review effort and backlog: overall and per bot.
#[utoipa::path(get, operation_id = "stats", path = "/api/v1/stats", tag = "stats", params(StatsQuery),
    responses((status = 200, description = "The figures of the period", body = Overview), (status = 401, description = "Not signed in: no valid session or token", body = ErrorBody)))]
pub async fn stats(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<Overview>> {
    caller.require(Role::Viewer)?;
    let now = now_ms();
    let period = q.period(now)?;
    let known: Vec<String> = app.bots.iter().map(|b| b.name.clone()).collect();
    let bot = q.bot.as_deref().filter(|b| !b.is_empty());
    Ok(Json(
        crate::stats::overview(app.db.as_ref(), period, bot, &known, now).await?,
    ))
}
