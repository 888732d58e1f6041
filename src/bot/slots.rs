//! When a trigger's slots fall, and how a trigger is described: the
//! scheduler fires them, lists and the API show them.

use chrono::TimeZone;

use super::{Trigger, TriggerKind};

impl Trigger {
    /// The most recent slot at or before `now` (Unix ms); none for
    /// triggers without slots (manual, folder, mailbox).
    pub fn latest_slot(&self, now: i64) -> Option<i64> {
        match &self.kind {
            TriggerKind::Manual | TriggerKind::Folder { .. } | TriggerKind::Mailbox(_) => None,
            TriggerKind::Interval { every } => {
                let every = (every.as_millis() as i64).max(1);
                Some(now.div_euclid(every) * every)
            }
            TriggerKind::Cron {
                schedule, timezone, ..
            } => {
                let at = timezone.timestamp_millis_opt(now).single()?;
                schedule
                    .find_previous_occurrence(&at, true)
                    .ok()
                    .map(|t| t.timestamp_millis())
            }
        }
    }

    /// The first slot after `now` (Unix ms).
    pub fn next_slot(&self, now: i64) -> Option<i64> {
        match &self.kind {
            TriggerKind::Manual | TriggerKind::Folder { .. } | TriggerKind::Mailbox(_) => None,
            TriggerKind::Interval { every } => {
                let every = (every.as_millis() as i64).max(1);
                Some((now.div_euclid(every) + 1) * every)
            }
            TriggerKind::Cron {
                schedule, timezone, ..
            } => {
                let at = timezone.timestamp_millis_opt(now).single()?;
                schedule
                    .find_next_occurrence(&at, false)
                    .ok()
                    .map(|t| t.timestamp_millis())
            }
        }
    }

    /// The trigger in a few words, for lists: `cron `0 7 * * *` (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        match &self.kind {
            TriggerKind::Cron {
                expression,
                timezone,
                ..
            } => format!("cron `{expression}` ({timezone})"),
            TriggerKind::Interval { every } => {
                format!("every {}", humantime::format_duration(*every))
            }
            TriggerKind::Manual => "manual".into(),
            TriggerKind::Mailbox(m) => format!(
                "mailbox {}@{}:{}/{} {} {}",
                m.user,
                m.host,
                m.port,
                m.folder,
                if m.idle {
                    "listening (IDLE), a poll per"
                } else {
                    "every"
                },
                humantime::format_duration(m.every)
            ),
            TriggerKind::Folder { path, patterns, .. } => format!(
                "folder {} ({})",
                path.display(),
                patterns
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
}
