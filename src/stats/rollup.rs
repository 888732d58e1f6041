//! Rolling jobs up into days, and reading days back for a period.
//!
//! A day is worked out from the jobs themselves, per bot, and stored; once
//! it is over (and an hour has passed for late commits) it is settled and
//! never worked out again, so its figures outlive the pruning of its jobs.
//! Days not settled yet are worked out afresh whenever they are read, so
//! figures of today are current without waiting for a roll-up.

use std::collections::{BTreeMap, BTreeSet};

use super::day::DayStats;
use crate::jobs::{DailyRow, Result, StatsStore};

pub const DAY_MS: i64 = 86_400_000;
/// A day is settled this long after it ended.
pub const SETTLE_AFTER_MS: i64 = 3_600_000;
/// The name under which a day's marker row is kept: it says the day was
/// rolled up even when no job of any bot touched it.
const MARKER: &str = "";

/// The day (since 1970-01-01, UTC) a time falls in.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// One day's figures per bot.
pub type Day = BTreeMap<String, DayStats>;

/// Work out one day from the jobs, per bot.
pub async fn compute_day(db: &dyn StatsStore, day: i64) -> Result<Day> {
    compute_range(db, day * DAY_MS, (day + 1) * DAY_MS).await
}

/// Work out the jobs that finished (and were created) in `[from, to)`
/// (Unix ms), per bot. Ranges add up: the figures of `[a, b)` and of
/// `[b, c)` merged are those of `[a, c)`.
pub async fn compute_range(db: &dyn StatsStore, from: i64, to: i64) -> Result<Day> {
    let facts = db.finished_facts(from, to).await?;
    let steps = db.step_facts(from, to).await?;
    let received = db.received(from, to).await?;
    let mut out = Day::new();
    for f in &facts {
        out.entry(f.bot.clone()).or_default().add_fact(f);
    }
    for s in &steps {
        out.entry(s.bot.clone()).or_default().add_step(s);
    }
    for r in &received {
        out.entry(r.bot.clone()).or_default().add_received(r);
    }
    for d in out.values_mut() {
        d.trim();
    }
    Ok(out)
}

/// What a roll-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rolled {
    pub days: i64,
    pub settled: i64,
}

/// Roll up every day since the last settled one, up to today.
pub async fn rollup(db: &dyn StatsStore, now: i64) -> Result<Rolled> {
    let today = day_of(now);
    let start = match db.last_settled_day().await? {
        Some(d) => d + 1,
        None => db.first_job_at().await?.map_or(today, day_of),
    };
    let mut rolled = Rolled::default();
    for day in start.min(today)..=today {
        let settled = now >= (day + 1) * DAY_MS + SETTLE_AFTER_MS;
        let figures = compute_day(db, day).await?;
        let mut rows = vec![DailyRow {
            day,
            bot: MARKER.into(),
            stats: serde_json::json!({}),
            settled,
        }];
        for (bot, stats) in figures {
            rows.push(DailyRow {
                day,
                bot,
                stats: serde_json::to_value(&stats).unwrap_or_default(),
                settled,
            });
        }
        db.save_day(day, &rows).await?;
        rolled.days += 1;
        rolled.settled += i64::from(settled);
    }
    Ok(rolled)
}

/// The figures of days `from_day..to_day`, per day and bot: settled days
/// from their roll-ups, the others (since the oldest job kept) worked out
/// now.
pub async fn load(
    db: &dyn StatsStore,
    from_day: i64,
    to_day: i64,
    now: i64,
) -> Result<BTreeMap<i64, Day>> {
    let mut out: BTreeMap<i64, Day> = BTreeMap::new();
    let mut settled = BTreeSet::new();
    for row in db.daily(from_day, to_day).await? {
        if !row.settled {
            continue;
        }
        settled.insert(row.day);
        if row.bot == MARKER {
            continue;
        }
        let stats: DayStats = serde_json::from_value(row.stats).map_err(|e| {
            crate::jobs::JobsError::Corrupt(format!("figures of day {}: {e}", row.day))
        })?;
        out.entry(row.day).or_default().insert(row.bot, stats);
    }
    // Days before the oldest job kept have nothing to work out.
    let Some(first) = db.first_job_at().await? else {
        return Ok(out);
    };
    for day in from_day.max(day_of(first))..to_day.min(day_of(now) + 1) {
        if !settled.contains(&day) {
            out.insert(day, compute_day(db, day).await?);
        }
    }
    Ok(out)
}
