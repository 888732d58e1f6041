//! The job log as an event log for process mining: an OCEL 2.0
//! object-centric log (as JSON or as the standard's SQLite file) and a
//! flat CSV, one row per activity of a case, that Celonis, UiPath Process
//! Mining and PM4Py read.
//!
//! Objects: the job, the document it processed, the mail it came in, the
//! booking a browser step read (its `booking` output). Events: received,
//! extracted, review started, review finished, booked, mailed, a step of
//! another kind (`step NAME`), retried, failed, cancelled, completed.
//! Every event is related to its job; times are the audit trail's.

mod csv;
mod ocel;
mod sqlite;

use std::collections::BTreeMap;

pub use csv::flat_csv;
pub use ocel::ocel_json;
pub use sqlite::write_ocel_sqlite;

use crate::jobs::{JobDetail, JobState};

/// An object of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: String,
    pub kind: &'static str,
    /// Attributes, set at `time` (Unix ms).
    pub attributes: Vec<(String, String, i64)>,
    /// Relations to other objects: (target id, qualifier).
    pub related: Vec<(String, String)>,
}

/// An event of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub activity: String,
    /// When it began and ended (Unix ms); the same for a moment's event.
    pub start: i64,
    pub end: i64,
    /// Who did it: a worker, a scheduler, a person.
    pub resource: String,
    /// Done by clerk, not by a person.
    pub automated: bool,
    /// The case: the job's id.
    pub case: i64,
    /// Related objects: (object id, qualifier).
    pub objects: Vec<(String, String)>,
    pub attributes: Vec<(String, String)>,
}

/// The whole log, objects by id.
#[derive(Debug, Default)]
pub struct Log {
    pub objects: BTreeMap<String, Object>,
    pub events: Vec<Event>,
}

/// Whether an actor of the audit trail is a person: `cli:NAME` or a user
/// of the web pages (names without a `:`); workers, schedulers, intake,
/// the rescuer and API tokens are clerk or scripts.
pub fn is_person(actor: &str) -> bool {
    actor.starts_with("cli:") || !actor.contains(':')
}

/// The activity of a step that ran, by its kind.
fn step_activity(kind: &str, step: &str) -> String {
    match kind {
        "extract" => "extracted".into(),
        "browser" => "booked".into(),
        "email" => "mailed".into(),
        _ => format!("step {step}"),
    }
}

fn text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Log {
    fn object(&mut self, id: &str, kind: &'static str) -> &mut Object {
        self.objects
            .entry(id.to_string())
            .or_insert_with(|| Object {
                id: id.to_string(),
                kind,
                attributes: Vec::new(),
                related: Vec::new(),
            })
    }

    /// A job's objects (the job, its document, the mail it came in), and
    /// those its `received` event relates to.
    fn add_objects(&mut self, d: &JobDetail) -> Vec<(String, String)> {
        let s = &d.summary;
        let job = format!("job:{}", s.id);
        let created = s.created_at;
        {
            let o = self.object(&job, "job");
            o.attributes.push(("bot".into(), s.bot.clone(), created));
            o.attributes.push((
                "state".into(),
                s.state.as_str().into(),
                s.finished_at.unwrap_or(created),
            ));
        }
        let mut around = vec![(job.clone(), "job".to_string())];
        let input = &d.input;
        if let Some(doc) = text(input.get("sha256")).or_else(|| text(input.get("file"))) {
            let id = format!("document:{doc}");
            let name = text(input.get("name")).unwrap_or_else(|| doc.clone());
            self.object(&id, "document").attributes = vec![("name".into(), name, created)];
            self.object(&job, "job")
                .related
                .push((id.clone(), "processes".into()));
            around.push((id.clone(), "document".into()));
            let mail = input.get("mail");
            let message = text(mail.and_then(|m| m.get("message_id"))).or_else(|| {
                Some(format!(
                    "{}#{}",
                    text(mail.and_then(|m| m.get("mailbox")))?,
                    text(mail.and_then(|m| m.get("uid")))?
                ))
            });
            if let Some(message) = message {
                let mid = format!("mail:{message}");
                let subject = text(mail.and_then(|m| m.get("subject"))).unwrap_or_default();
                self.object(&mid, "mail").attributes = vec![("subject".into(), subject, created)];
                let doc_obj = self.object(&id, "document");
                if !doc_obj.related.iter().any(|(t, _)| t == &mid) {
                    doc_obj.related.push((mid.clone(), "came in".into()));
                }
                around.push((mid, "mail".into()));
            }
        }
        around
    }

    /// Add one job's cases: its objects and its events. `kind_of` names the
    /// kind of a step of the job's bot.
    pub fn add(&mut self, d: &JobDetail, kind_of: &dyn Fn(&str, &str) -> Option<String>) {
        let s = &d.summary;
        let job = format!("job:{}", s.id);
        let around = self.add_objects(d);
        let mut n = 0;
        let mut push = |log: &mut Log,
                        activity: String,
                        start: i64,
                        end: i64,
                        resource: &str,
                        objects: Vec<(String, String)>,
                        attributes: Vec<(String, String)>| {
            n += 1;
            log.events.push(Event {
                id: format!("{}-{n}", s.id),
                activity,
                start,
                end,
                resource: resource.to_string(),
                automated: !is_person(resource),
                case: s.id,
                objects,
                attributes,
            });
        };
        for e in &d.events {
            let from = e
                .from_state
                .as_deref()
                .and_then(|f| f.parse::<JobState>().ok());
            let to = e.to_state.parse::<JobState>().ok();
            let activity = match (from, to) {
                (None, Some(JobState::Queued)) => Some("received"),
                (Some(f), Some(JobState::WaitingReview)) if f != JobState::WaitingReview => {
                    Some("review started")
                }
                (Some(JobState::WaitingReview), Some(t)) if t != JobState::WaitingReview => {
                    Some("review finished")
                }
                (Some(JobState::Running), Some(JobState::Queued)) => Some("retried"),
                (Some(f), Some(JobState::Queued)) if f.is_finished() => Some("retried"),
                (_, Some(JobState::Failed | JobState::Dead)) => Some("failed"),
                (_, Some(JobState::Cancelled)) => Some("cancelled"),
                (_, Some(JobState::Succeeded)) => Some("completed"),
                _ => None,
            };
            let Some(activity) = activity else { continue };
            let objects = if activity == "received" {
                around.clone()
            } else {
                vec![(job.clone(), "job".into())]
            };
            let mut attributes = vec![("reason".to_string(), e.reason.clone())];
            if activity == "review finished" {
                attributes.push(("outcome".into(), e.to_state.clone()));
            }
            push(
                self,
                activity.into(),
                e.at,
                e.at,
                &e.actor,
                objects,
                attributes,
            );
        }
        for a in &d.attempts {
            for st in a.steps.iter().filter(|st| {
                matches!(
                    st.outcome,
                    crate::jobs::Outcome::Succeeded | crate::jobs::Outcome::WaitingReview
                )
            }) {
                let kind = kind_of(&s.bot, &st.name).unwrap_or_default();
                let mut objects = vec![(job.clone(), "job".to_string())];
                if let Some(doc) = around.iter().find(|(_, q)| q == "document") {
                    objects.push(doc.clone());
                }
                if kind == "browser"
                    && let Some(booking) = text(st.output.as_ref().and_then(|o| o.get("booking")))
                {
                    let id = format!("booking:{booking}");
                    self.object(&id, "booking").attributes =
                        vec![("number".into(), booking, st.finished_at)];
                    let j = self.object(&job, "job");
                    if !j.related.iter().any(|(t, _)| t == &id) {
                        j.related.push((id.clone(), "booked as".into()));
                    }
                    objects.push((id, "booking".into()));
                }
                let attributes = vec![
                    ("step".to_string(), st.name.clone()),
                    ("attempt".to_string(), a.attempt.to_string()),
                ];
                push(
                    self,
                    step_activity(&kind, &st.name),
                    st.started_at,
                    st.finished_at,
                    &a.worker,
                    objects,
                    attributes,
                );
            }
        }
    }

    /// The events in time order (a case's events by their start).
    pub fn sorted(&mut self) {
        self.events
            .sort_by(|a, b| (a.start, a.case, &a.id).cmp(&(b.start, b.case, &b.id)));
    }
}

/// `2026-12-02T08:00:00.000Z`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into())
}
