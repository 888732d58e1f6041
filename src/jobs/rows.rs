//! Turning result rows into the `jobs` types, the same for both back ends.
//!
//! The SQL differs per back end; the columns it returns do not (JSON comes
//! back as text from both, times and counters as 64-bit integers), so the
//! decoding lives here once.

use std::collections::HashMap;

use serde_json::Value;

use super::*;

/// The column reads decoding needs, for either back end's rows.
pub(super) trait JobRow {
    fn text(&self, column: &str) -> Result<String>;
    fn text_opt(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn int_opt(&self, column: &str) -> Result<Option<i64>>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
}

macro_rules! job_row {
    ($row:ty) => {
        impl JobRow for $row {
            fn text(&self, column: &str) -> Result<String> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn text_opt(&self, column: &str) -> Result<Option<String>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int_opt(&self, column: &str) -> Result<Option<i64>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn flag(&self, column: &str) -> Result<bool> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}

job_row!(sqlx::sqlite::SqliteRow);
job_row!(sqlx::postgres::PgRow);

/// Columns of a [`JobSummary`], for the SELECTs that read one.
pub(super) const SUMMARY_COLUMNS: &str = "id, bot, state, attempt, idempotency_key, created_at, started_at, finished_at, run_after, last_error";

pub(super) fn claimed(row: &impl JobRow) -> Result<ClaimedJob> {
    Ok(ClaimedJob {
        id: row.int("id")?,
        bot: row.text("bot")?,
        input: serde_json::from_str(&row.text("input")?).unwrap_or(Value::Null),
        attempt: row.int("attempt")?,
        errors: row.int("errors")?,
        lost: row.int("lost")?,
        max_attempts: row.int("max_attempts")?,
        next_step: row.int("next_step")?,
        run_after: row.int("run_after")?,
        created_at: row.int("created_at")?,
    })
}

pub(super) fn summary(row: &impl JobRow) -> Result<JobSummary> {
    Ok(JobSummary {
        id: row.int("id")?,
        bot: row.text("bot")?,
        state: parse_state(&row.text("state")?)?,
        attempt: row.int("attempt")?,
        idempotency_key: row.text_opt("idempotency_key")?,
        created_at: row.int("created_at")?,
        started_at: row.int_opt("started_at")?,
        finished_at: row.int_opt("finished_at")?,
        run_after: row.int("run_after")?,
        last_error: row.text_opt("last_error")?,
    })
}

/// A job with its attempts, step runs and events, from the rows of the
/// four SELECTs that read them.
pub(super) fn detail<R: JobRow>(
    job: &R,
    attempt_rows: &[R],
    step_rows: &[R],
    event_rows: &[R],
) -> Result<JobDetail> {
    let mut attempts = attempt_rows
        .iter()
        .map(|a| {
            Ok(AttemptRecord {
                attempt: a.int("attempt")?,
                worker: a.text("worker")?,
                started_at: a.int("started_at")?,
                finished_at: a.int_opt("finished_at")?,
                outcome: a.text_opt("outcome")?,
                error: a.text_opt("error")?,
                steps: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The attempt in progress has no row of its own yet; show it from the job.
    if job.text("state")? == "running" {
        attempts.push(AttemptRecord {
            attempt: job.int("attempt")?,
            worker: job.text_opt("worker")?.unwrap_or_default(),
            started_at: job.int_opt("attempt_started_at")?.unwrap_or(0),
            finished_at: None,
            outcome: None,
            error: None,
            steps: Vec::new(),
        });
    }
    for s in step_rows {
        let attempt = s.int("attempt")?;
        let step = StepRecord {
            index: s.int("step_index")?,
            name: s.text("step_name")?,
            started_at: s.int("started_at")?,
            finished_at: s.int("finished_at")?,
            outcome: parse_outcome(&s.text("outcome")?)?,
            error: s.text_opt("error")?,
            output: parse_json(s.text_opt("output")?),
        };
        if let Some(a) = attempts.iter_mut().find(|a| a.attempt == attempt) {
            a.steps.push(step);
        }
    }
    let events = event_rows
        .iter()
        .map(|e| {
            Ok(EventRecord {
                at: e.int("at")?,
                actor: e.text("actor")?,
                from_state: e.text_opt("from_state")?,
                to_state: e.text("to_state")?,
                reason: e.text("reason")?,
                detail: parse_json(e.text_opt("detail")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(JobDetail {
        summary: summary(job)?,
        input: serde_json::from_str(&job.text("input")?).unwrap_or(Value::Null),
        output: parse_json(job.text_opt("output")?),
        review: parse_json(job.text_opt("review")?),
        errors: job.int("errors")?,
        lost: job.int("lost")?,
        max_attempts: job.int("max_attempts")?,
        max_lost: job.int("max_lost")?,
        next_step: job.int("next_step")?,
        worker: job.text_opt("worker")?,
        lease_expires_at: job.int_opt("lease_expires_at")?,
        cancel_requested: job.flag("cancel_requested")?,
        created_by: job.text("created_by")?,
        attempts,
        events,
    })
}

/// What a heartbeat learns, from the rows its lease renewal returned (`id`,
/// `attempt`, `cancel_requested` of every job the database says the worker
/// runs) and the jobs the worker believes it holds.
pub(super) fn heartbeat(held: &[(i64, i64)], renewed: &[impl JobRow]) -> Result<Heartbeat> {
    let mut owned = HashMap::new();
    for row in renewed {
        owned.insert(
            row.int("id")?,
            (row.int("attempt")?, row.flag("cancel_requested")?),
        );
    }
    let mut beat = Heartbeat::default();
    for &(id, attempt) in held {
        match owned.get(&id) {
            Some(&(a, cancel)) if a == attempt => {
                if cancel {
                    beat.cancel.push(id);
                }
            }
            _ => beat.gone.push(id),
        }
    }
    Ok(beat)
}

/// Columns of a [`Notice`], for the statements that return one.
pub(super) const NOTICE_COLUMNS: &str = "id, job_id, bot, kind, reason, at, tries";

pub(super) fn notice(row: &impl JobRow) -> Result<Notice> {
    Ok(Notice {
        id: row.int("id")?,
        job_id: row.int("job_id")?,
        bot: row.text("bot")?,
        kind: row.text("kind")?.parse().map_err(JobsError::Corrupt)?,
        reason: row.text("reason")?,
        at: row.int("at")?,
        tries: row.int("tries")?,
    })
}

/// Job inputs by id, from rows of `id` and `input`.
pub(super) fn inputs(rows: &[impl JobRow]) -> Result<HashMap<i64, Value>> {
    rows.iter()
        .map(|row| {
            let input = serde_json::from_str(&row.text("input")?).unwrap_or(Value::Null);
            Ok((row.int("id")?, input))
        })
        .collect()
}

/// Columns of a [`User`], for the statements that read one.
pub(super) const USER_COLUMNS: &str = "id, name, role, group_names, created_at, created_by";

pub(super) fn user(row: &impl JobRow) -> Result<User> {
    Ok(User {
        id: row.int("id")?,
        name: row.text("name")?,
        role: row.text("role")?.parse().map_err(JobsError::Corrupt)?,
        groups: serde_json::from_str(&row.text("group_names")?)
            .map_err(|e| JobsError::Corrupt(format!("a user's groups: {e}")))?,
        created_at: row.int("created_at")?,
        created_by: row.text("created_by")?,
    })
}

/// Columns of an [`ApiToken`], for the statements that read one.
pub(super) const TOKEN_COLUMNS: &str = "id, name, role, created_at, created_by, last_used_at";

pub(super) fn token(row: &impl JobRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.int("id")?,
        name: row.text("name")?,
        role: row.text("role")?.parse().map_err(JobsError::Corrupt)?,
        created_at: row.int("created_at")?,
        created_by: row.text("created_by")?,
        last_used_at: row.int_opt("last_used_at")?,
    })
}

/// The columns a review queue line is read from: the job's and its
/// review's (`j.` and `r.`).
pub(super) const REVIEW_COLUMNS: &str = "j.id, j.bot, j.input, j.review, j.updated_at, r.claimed_by, r.claimed_until, r.version, r.note";

/// A line of the review queue.
pub(super) fn review_item(row: &impl JobRow) -> Result<ReviewItem> {
    let input: Value = serde_json::from_str(&row.text("input")?).unwrap_or(Value::Null);
    let review = parse_json(row.text_opt("review")?).unwrap_or(Value::Null);
    let document = input
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            let file = input.get("file").and_then(Value::as_str)?;
            std::path::Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        });
    Ok(ReviewItem {
        job_id: row.int("id")?,
        bot: row.text("bot")?,
        document,
        step: review
            .get("step")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        reasons: strings(review.get("reasons")),
        waiting_since: row.int("updated_at")?,
        claimed_by: row.text_opt("claimed_by")?,
        claimed_until: row.int_opt("claimed_until")?,
        version: row.int_opt("version")?.unwrap_or(0),
        note: row.text_opt("note")?,
        review_by: strings(review.get("review_by")),
        due_at: review.get("due_at").and_then(Value::as_i64),
    })
}

/// A JSON array's strings; nothing for anything else.
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A review in full, from its queue columns plus `template`, `extraction`
/// and `corrections`, and the output of the step that asked for it.
pub(super) fn review(
    row: &impl JobRow,
    step_index: i64,
    original: Option<Value>,
) -> Result<Review> {
    let original = original.unwrap_or(Value::Null);
    let corrections = match parse_json(row.text_opt("corrections")?) {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    Ok(Review {
        item: review_item(row)?,
        input: serde_json::from_str(&row.text("input")?).unwrap_or(Value::Null),
        step_index,
        extraction: parse_json(row.text_opt("extraction")?).unwrap_or_else(|| original.clone()),
        original,
        template: row.text_opt("template")?,
        corrections,
    })
}

/// An approval, from an event's `job_id`, `at`, `actor` and `detail`.
pub(super) fn approval(row: &impl JobRow) -> Result<Approval> {
    Ok(Approval {
        job_id: row.int("job_id")?,
        at: row.int("at")?,
        by: row.text("actor")?,
        detail: parse_json(row.text_opt("detail")?).unwrap_or(Value::Null),
    })
}

/// Facts of finished jobs from their rows (`id, bot, state, created_at,
/// finished_at, last_error`) and their trails (`job_id, at, by_rescuer,
/// from_state, to_state, review_action`, by job and in order).
pub(super) fn job_facts(jobs: &[impl JobRow], trail: &[impl JobRow]) -> Result<Vec<JobFact>> {
    let mut trails: HashMap<i64, Vec<TrailEvent>> = HashMap::new();
    for e in trail {
        let from = e.text_opt("from_state")?;
        trails
            .entry(e.int("job_id")?)
            .or_default()
            .push(TrailEvent {
                at: e.int("at")?,
                by_rescuer: e.flag("by_rescuer")?,
                from: from.as_deref().map(parse_state).transpose()?,
                to: parse_state(&e.text("to_state")?)?,
                review_action: e.flag("review_action")?,
            });
    }
    jobs.iter()
        .map(|j| {
            let id = j.int("id")?;
            let row = FinishedRow {
                id,
                bot: j.text("bot")?,
                state: parse_state(&j.text("state")?)?,
                created_at: j.int("created_at")?,
                finished_at: j.int("finished_at")?,
                last_error: j.text_opt("last_error")?,
            };
            Ok(job_fact(
                row,
                trails.get(&id).map_or(&[][..], Vec::as_slice),
            ))
        })
        .collect()
}

/// Step runs (`bot, step_name, ms, outcome`).
pub(super) fn step_fact(row: &impl JobRow) -> Result<StepFact> {
    Ok(StepFact {
        bot: row.text("bot")?,
        step: row.text("step_name")?,
        ms: row.int("ms")?.max(0),
        succeeded: parse_outcome(&row.text("outcome")?)? == Outcome::Succeeded,
    })
}

/// Jobs created, per bot and source, from counts per bot and `created_by`.
pub(super) fn received(rows: &[impl JobRow]) -> Result<Vec<Received>> {
    let mut out: Vec<Received> = Vec::new();
    for r in rows {
        let bot = r.text("bot")?;
        let source = facts::source_of(&r.text("created_by")?);
        let n = r.int("n")?;
        match out.iter_mut().find(|x| x.bot == bot && x.source == source) {
            Some(x) => x.count += n,
            None => out.push(Received {
                bot,
                source: source.to_string(),
                count: n,
            }),
        }
    }
    Ok(out)
}

pub(super) fn daily(row: &impl JobRow) -> Result<DailyRow> {
    let stats = row.text("stats")?;
    Ok(DailyRow {
        day: row.int("day")?,
        bot: row.text("bot")?,
        stats: serde_json::from_str(&stats)
            .map_err(|e| JobsError::Corrupt(format!("daily figures: {e}")))?,
        settled: row.flag("final")?,
    })
}

pub(super) fn pause(row: &impl JobRow) -> Result<Pause> {
    Ok(Pause {
        bot: row.text("bot")?,
        paused_by: row.text("paused_by")?,
        paused_at: row.int("paused_at")?,
        reason: row.text("reason")?,
    })
}

pub(super) fn bot_event(row: &impl JobRow) -> Result<BotEvent> {
    Ok(BotEvent {
        bot: row.text("bot")?,
        at: row.int("at")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        reason: row.text("reason")?,
    })
}

/// A kept document and its content.
pub(super) fn document(row: &impl JobRow) -> Result<(DocumentRow, Vec<u8>)> {
    Ok((
        DocumentRow {
            sha256: row.text("sha256")?,
            name: row.text("name")?,
            media_type: row.text("media_type")?,
            size: u64::try_from(row.int("size")?).unwrap_or(0),
        },
        row.bytes("content")?,
    ))
}

pub(super) fn worker(row: &impl JobRow) -> Result<WorkerRow> {
    let list = |column: &str| -> Result<Vec<String>> {
        Ok(serde_json::from_str(&row.text(column)?).unwrap_or_default())
    };
    Ok(WorkerRow {
        id: row.text("id")?,
        kinds: list("kinds")?,
        bots: list("bots")?,
        seen_at: row.int("seen_at")?,
    })
}

pub(super) fn kept_document(row: &impl JobRow) -> Result<KeptDocument> {
    Ok(KeptDocument {
        sha256: row.text("sha256")?,
        size: u64::try_from(row.int("size")?).unwrap_or(0),
        touched_at: row.int("touched_at")?,
    })
}

/// Many jobs' details: `jobs` by id, the other rows sorted by `job_id`.
pub(super) fn details<R: JobRow>(
    jobs: &[R],
    attempts: &[R],
    steps: &[R],
    events: &[R],
) -> Result<Vec<JobDetail>> {
    let ids = |rows: &[R]| {
        rows.iter()
            .map(|r| r.int("job_id"))
            .collect::<Result<Vec<i64>>>()
    };
    let (a, s, e) = (ids(attempts)?, ids(steps)?, ids(events)?);
    fn of<'a, R>(rows: &'a [R], ids: &[i64], id: i64) -> &'a [R] {
        &rows[ids.partition_point(|j| *j < id)..ids.partition_point(|j| *j <= id)]
    }
    jobs.iter()
        .map(|j| {
            let id = j.int("id")?;
            detail(
                j,
                of(attempts, &a, id),
                of(steps, &s, id),
                of(events, &e, id),
            )
        })
        .collect()
}
