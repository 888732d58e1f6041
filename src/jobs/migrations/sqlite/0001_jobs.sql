-- The job database, SQLite flavour. Times are Unix milliseconds (UTC).
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    bot              TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued','running','waiting_review','succeeded','failed','dead','cancelled')),
    input            TEXT    NOT NULL DEFAULT '{}',
    idempotency_key  TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    errors           INTEGER NOT NULL DEFAULT 0,
    lost             INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    max_lost         INTEGER NOT NULL,
    run_after        INTEGER NOT NULL,
    worker           TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    next_step        INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    output           TEXT,
    review           TEXT,
    created_by       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    attempt_started_at INTEGER,
    finished_at      INTEGER
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (bot, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_queued ON jobs (run_after, id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Child tables carry no foreign keys: every claim and completion writes
-- them, and the checks cost more than they protect. Pruning deletes a job's
-- rows from every table together. Indexes on jobs are kept few for the same
-- reason: each claim and completion rewrites the job's index entries.
CREATE TABLE attempts (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    error       TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE step_runs (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    step_index  INTEGER NOT NULL,
    step_name   TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT,
    output      TEXT,
    PRIMARY KEY (job_id, attempt, step_index)
);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    reason     TEXT    NOT NULL
);
CREATE INDEX events_job ON events (job_id, id);

CREATE TABLE schedules (
    bot        TEXT    NOT NULL,
    trigger_id TEXT    NOT NULL,
    last_slot  INTEGER NOT NULL,
    PRIMARY KEY (bot, trigger_id)
);
