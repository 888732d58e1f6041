//! The figures of operations: what came in, what went straight through,
//! where exceptions pile up, how long a document takes from intake to
//! done, and the review backlog; per bot and overall, for any period.
//!
//! - `histogram`: durations in shared buckets, so days add up;
//! - `day`: one day of one bot, rolled up;
//! - `rollup`: days worked out from the jobs and kept past their pruning;
//! - `figures`: a period's figures, as the dashboard, `clerk stats` and
//!   the report show them;
//! - `metrics`: the same as Prometheus metrics.
//!
//! Mailbox polls (`<bot>:<trigger>`) are the machinery of intake, not
//! documents: they are left out of these figures (the metrics count them).

pub mod charts;
mod day;
mod figures;
mod histogram;
pub mod metrics;
pub mod report;
mod rollup;

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::Serialize;

pub use day::{DayStats, FailureReason, StepStats};
pub use figures::{DayPoint, Durations, Figures, Now, Reason, StepFigure, date_of_day};
pub use histogram::{Histogram, bound, bucket_of};
pub use rollup::{
    DAY_MS, Day, Rolled, SETTLE_AFTER_MS, compute_day, compute_range, day_of, load, rollup,
};

use crate::jobs::{Result, StatsStore};

/// A period of whole UTC days, `from_day..to_day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_day: i64,
    pub to_day: i64,
}

impl Period {
    /// The last `days` days, today included.
    pub fn last_days(days: i64, now: i64) -> Period {
        let today = day_of(now);
        Period {
            from_day: today - days.max(1) + 1,
            to_day: today + 1,
        }
    }

    /// From `from` to `to` (dates, both included); a missing end is today,
    /// a missing start is `default_days` before the end.
    pub fn between(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        default_days: i64,
        now: i64,
    ) -> std::result::Result<Period, String> {
        let day = |d: NaiveDate| {
            day_of(
                d.and_hms_opt(0, 0, 0)
                    .map_or(0, |t| t.and_utc().timestamp_millis()),
            )
        };
        let to_day = to.map_or(day_of(now), day) + 1;
        let from_day = from.map_or(to_day - default_days.max(1), day);
        if from_day >= to_day {
            return Err(format!(
                "the period is empty: {} is after {}",
                date_of_day(from_day),
                date_of_day(to_day - 1)
            ));
        }
        Ok(Period { from_day, to_day })
    }

    /// The period of the same length just before this one.
    pub fn previous(self) -> Period {
        let len = self.to_day - self.from_day;
        Period {
            from_day: self.from_day - len,
            to_day: self.from_day,
        }
    }

    pub fn days(self) -> i64 {
        self.to_day - self.from_day
    }

    /// `[from, to)` in Unix ms.
    pub fn millis(self) -> (i64, i64) {
        (self.from_day * DAY_MS, self.to_day * DAY_MS)
    }
}

/// Whether a bot name is a mailbox poll's.
pub fn is_poll(bot: &str) -> bool {
    bot.contains(':')
}

/// One bot's figures, with its queue now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BotFigures {
    pub bot: String,
    #[serde(flatten)]
    pub figures: Figures,
    pub now: Now,
}

/// The figures of a period: overall and per bot.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// First day of the period (`YYYY-MM-DD`, UTC).
    pub from: String,
    /// Last day of the period, included.
    pub to: String,
    /// When the figures were worked out (Unix ms).
    pub at: i64,
    /// Every bot of the period together (or the one asked for).
    pub overall: BotFigures,
    pub bots: Vec<BotFigures>,
}

/// The figures of `period` for every bot (or `only` one), listing also
/// the `known` bots that had no work in it.
pub async fn overview(
    db: &dyn StatsStore,
    period: Period,
    only: Option<&str>,
    known: &[String],
    now: i64,
) -> Result<Overview> {
    let days = load(db, period.from_day, period.to_day, now).await?;
    let live = db.live().await?;
    let mut names: BTreeSet<String> = known.iter().filter(|b| !is_poll(b)).cloned().collect();
    for bots in days.values() {
        names.extend(bots.keys().filter(|b| !is_poll(b)).cloned());
    }
    names.extend(
        live.depth
            .iter()
            .map(|(b, _, _)| b.clone())
            .filter(|b| !is_poll(b)),
    );
    if let Some(one) = only {
        names.retain(|b| b == one);
        names.insert(one.to_string());
    }
    let figures_of = |wanted: &dyn Fn(&str) -> bool, bot: String| BotFigures {
        bot,
        figures: Figures::of(&days, period.from_day, period.to_day, wanted),
        now: Now::of(&live, now, wanted),
    };
    let bots: Vec<BotFigures> = names
        .iter()
        .map(|name| figures_of(&|b: &str| b == name, name.clone()))
        .collect();
    let overall = figures_of(
        &|b: &str| names.contains(b),
        only.unwrap_or("all").to_string(),
    );
    Ok(Overview {
        from: date_of_day(period.from_day),
        to: date_of_day(period.to_day - 1),
        at: now,
        overall,
        bots,
    })
}

/// Roll up what is due, logging what it did; for the long-running
/// processes.
pub async fn rollup_logged(db: &dyn StatsStore) {
    match rollup(db, crate::jobs::now_ms()).await {
        Ok(r) if r.settled > 0 => {
            tracing::info!(days = r.days, settled = r.settled, "figures rolled up")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "rolling up the figures failed; will try again"),
    }
}
