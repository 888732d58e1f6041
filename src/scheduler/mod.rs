//! The scheduler: turns cron and interval triggers into jobs.
//!
//! Every slot a trigger has is a point in time computed the same way by
//! every scheduler (cron in its time zone, intervals aligned to the Unix
//! epoch). Firing a slot enqueues a job keyed `schedule:<trigger>:<slot>`,
//! so with several schedulers on one database each slot still becomes one
//! job. The last slot fired is remembered per trigger; after downtime the
//! most recent missed slot runs once, or is skipped if the trigger says so.
//!
//! Folder triggers have no slots; [`folder`] watches their folders.

pub mod folder;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use crate::bot::{Bot, BotRegistry, CatchUp, Trigger, TriggerKind};
use crate::jobs::{NewJob, ScheduleStore, belongs_to, now_ms};

/// A slot seen more than this long after its time counts as missed.
const LATE_AFTER_MS: i64 = 60_000;
/// Longest sleep between checks, so a clock jump is noticed soon.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// What to do about a trigger right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotAction {
    Nothing,
    /// Enqueue the job of this slot.
    Fire(i64),
    /// Remember this slot as seen without running it.
    Skip(i64),
}

/// Decide about a trigger whose most recent slot at or before `now` is
/// `latest_due`, given the last slot already fired.
pub fn decide(
    latest_due: Option<i64>,
    last_fired: Option<i64>,
    now: i64,
    catch_up: CatchUp,
) -> SlotAction {
    let Some(slot) = latest_due else {
        return SlotAction::Nothing;
    };
    let on_time = now - slot <= LATE_AFTER_MS;
    match last_fired {
        Some(last) if slot <= last => SlotAction::Nothing,
        // A trigger seen for the first time does not run slots from before
        // it existed; it remembers where it starts.
        None if !on_time => SlotAction::Skip(slot),
        None => SlotAction::Fire(slot),
        Some(_) if on_time => SlotAction::Fire(slot),
        Some(_) => match catch_up {
            CatchUp::Once => SlotAction::Fire(slot),
            CatchUp::Skip => SlotAction::Skip(slot),
        },
    }
}

/// The most recent slot of `trigger` at or before `now` (Unix ms).
pub fn latest_slot(trigger: &Trigger, now: i64) -> Option<i64> {
    trigger.latest_slot(now)
}

/// The first slot of `trigger` after `now` (Unix ms).
pub fn next_slot(trigger: &Trigger, now: i64) -> Option<i64> {
    trigger.next_slot(now)
}

/// Idempotency key of the job of one slot.
pub fn slot_key(trigger: &Trigger, slot: i64) -> String {
    let at = Utc
        .timestamp_millis_opt(slot)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| slot.to_string());
    format!("schedule:{}:{at}", trigger.id)
}

pub struct Scheduler {
    db: Arc<dyn ScheduleStore>,
    bots: Arc<BotRegistry>,
    actor: String,
}

impl Scheduler {
    pub fn new(db: Arc<dyn ScheduleStore>, bots: Arc<BotRegistry>, id: &str) -> Self {
        Scheduler {
            db,
            bots,
            actor: format!("scheduler:{id}"),
        }
    }

    /// Check every trigger once; returns the ids of jobs created. The
    /// slots of a paused bot (and of its mailbox polls) pass unfired.
    pub async fn tick(&self, now: i64) -> Vec<i64> {
        let paused = match self.db.paused().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read which bots are paused; will try again");
                return Vec::new();
            }
        };
        let mut created = Vec::new();
        for bot in self.bots.iter() {
            let is_paused = paused.iter().any(|p| belongs_to(&bot.name, &p.bot));
            for trigger in &bot.triggers {
                match self.tick_trigger(bot, trigger, now, is_paused).await {
                    Ok(Some(id)) => created.push(id),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(bot = %bot.name, trigger = %trigger.id, error = %e, "scheduling failed; will try again");
                    }
                }
            }
        }
        created
    }

    async fn tick_trigger(
        &self,
        bot: &Bot,
        trigger: &Trigger,
        now: i64,
        paused: bool,
    ) -> crate::jobs::Result<Option<i64>> {
        let latest = latest_slot(trigger, now);
        if latest.is_none() {
            return Ok(None);
        }
        let last = self.db.last_slot(&bot.name, &trigger.id).await?;
        match decide(latest, last, now, trigger.catch_up) {
            SlotAction::Nothing => Ok(None),
            SlotAction::Fire(slot) if paused => {
                tracing::info!(bot = %bot.name, trigger = %trigger.id, slot = %slot_key(trigger, slot), "slot passed unfired: the bot is paused");
                self.db.mark_slot(&bot.name, &trigger.id, slot).await?;
                Ok(None)
            }
            // A poll reads everything new: one queued or running is enough,
            // and more behind it would pile up after an outage.
            SlotAction::Fire(slot)
                if bot.is_mailbox_poll() && self.db.has_unfinished(&bot.name).await? =>
            {
                tracing::debug!(bot = %bot.name, slot = %slot_key(trigger, slot), "poll slot passed: a poll of this mailbox is still queued or running");
                self.db.mark_slot(&bot.name, &trigger.id, slot).await?;
                Ok(None)
            }
            SlotAction::Skip(slot) => {
                if last.is_some() {
                    tracing::info!(bot = %bot.name, trigger = %trigger.id, slot = %slot_key(trigger, slot), "missed slot skipped");
                }
                self.db.mark_slot(&bot.name, &trigger.id, slot).await?;
                Ok(None)
            }
            SlotAction::Fire(slot) => {
                let job = NewJob {
                    bot: bot.name.clone(),
                    input: trigger.input.clone(),
                    idempotency_key: Some(slot_key(trigger, slot)),
                    max_attempts: bot.retry.max_attempts,
                    max_lost: bot.retry.max_lost,
                    run_after: None,
                    created_by: self.actor.clone(),
                    refused: None,
                };
                let enq = self.db.fire_slot(&trigger.id, slot, &job).await?;
                if enq.created {
                    tracing::info!(bot = %bot.name, trigger = %trigger.id, job = enq.id, late_ms = now - slot, "slot fired");
                    Ok(Some(enq.id))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Run until `shutdown` fires, sleeping until the next slot of any
    /// trigger.
    pub async fn run(self, shutdown: CancellationToken) {
        let triggers: usize = self
            .bots
            .iter()
            .map(|b| {
                b.triggers
                    .iter()
                    .filter(|t| !matches!(t.kind, TriggerKind::Manual))
                    .count()
            })
            .sum();
        tracing::info!(triggers, "scheduler started");
        while !shutdown.is_cancelled() {
            let now = now_ms();
            self.tick(now).await;
            let next = self
                .bots
                .iter()
                .flat_map(|b| b.triggers.iter())
                .filter_map(|t| next_slot(t, now_ms()))
                .min();
            let sleep = match next {
                Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn fires_a_slot_that_is_due_once() {
        assert_eq!(
            decide(Some(10 * MIN), Some(9 * MIN), 10 * MIN + 5, CatchUp::Once),
            SlotAction::Fire(10 * MIN)
        );
        assert_eq!(
            decide(Some(10 * MIN), Some(10 * MIN), 10 * MIN + 5, CatchUp::Once),
            SlotAction::Nothing
        );
    }

    #[test]
    fn after_downtime_runs_the_latest_missed_slot_once_or_skips_it() {
        let now = 100 * MIN + 30_000;
        // Last fired at minute 10; slots 11..=100 were missed.
        assert_eq!(
            decide(
                Some(100 * MIN - 5 * MIN),
                Some(10 * MIN),
                now,
                CatchUp::Once
            ),
            SlotAction::Fire(95 * MIN)
        );
        assert_eq!(
            decide(Some(95 * MIN), Some(10 * MIN), now, CatchUp::Skip),
            SlotAction::Skip(95 * MIN)
        );
        // A slot only seconds late is on time, even with skip.
        assert_eq!(
            decide(Some(100 * MIN), Some(10 * MIN), now, CatchUp::Skip),
            SlotAction::Fire(100 * MIN)
        );
    }

    #[test]
    fn a_new_trigger_does_not_run_old_slots() {
        assert_eq!(
            decide(Some(10 * MIN), None, 50 * MIN, CatchUp::Once),
            SlotAction::Skip(10 * MIN)
        );
        assert_eq!(
            decide(Some(50 * MIN), None, 50 * MIN + 10, CatchUp::Once),
            SlotAction::Fire(50 * MIN)
        );
    }

    fn cron(expr: &str, tz: &str) -> Trigger {
        let schedule = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .expect("valid cron in test");
        Trigger {
            id: "t".into(),
            kind: TriggerKind::Cron {
                expression: expr.into(),
                schedule: Box::new(schedule),
                timezone: tz.parse().expect("valid tz in test"),
            },
            catch_up: CatchUp::Once,
            input: serde_json::json!({}),
        }
    }

    #[test]
    fn cron_slots_follow_the_time_zone() {
        // 06:30 in Berlin on 2026-11-23 (CET, UTC+1) is 05:30 UTC.
        let t = cron("0 30 6 * * *", "Europe/Berlin");
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 5, 0, 0)
            .unwrap()
            .timestamp_millis();
        let next = next_slot(&t, now).unwrap();
        assert_eq!(
            next,
            Utc.with_ymd_and_hms(2026, 11, 23, 5, 30, 0)
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(latest_slot(&t, next), Some(next));
        assert_eq!(latest_slot(&t, next - 1), Some(next - 24 * 3600 * 1000));
    }

    #[test]
    fn interval_slots_are_aligned_so_every_scheduler_agrees() {
        let t = Trigger {
            id: "every".into(),
            kind: TriggerKind::Interval {
                every: Duration::from_secs(300),
            },
            catch_up: CatchUp::Once,
            input: serde_json::json!({}),
        };
        assert_eq!(latest_slot(&t, 301_000), Some(300_000));
        assert_eq!(next_slot(&t, 301_000), Some(600_000));
        assert_eq!(
            slot_key(&t, 300_000),
            "schedule:every:1970-01-01T00:05:00.000Z"
        );
    }
}
