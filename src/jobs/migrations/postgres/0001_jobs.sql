-- The job database, PostgreSQL flavour. Times are Unix milliseconds (UTC).
CREATE TABLE jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot              TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued','running','waiting_review','succeeded','failed','dead','cancelled')),
    input            JSONB   NOT NULL DEFAULT '{}',
    idempotency_key  TEXT,
    attempt          BIGINT  NOT NULL DEFAULT 0,
    errors           BIGINT  NOT NULL DEFAULT 0,
    lost             BIGINT  NOT NULL DEFAULT 0,
    max_attempts     BIGINT  NOT NULL,
    max_lost         BIGINT  NOT NULL,
    run_after        BIGINT NOT NULL,
    worker           TEXT,
    lease_expires_at BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    next_step        BIGINT  NOT NULL DEFAULT 0,
    last_error       TEXT,
    output           JSONB,
    review           JSONB,
    created_by       TEXT    NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    attempt_started_at BIGINT,
    finished_at      BIGINT
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
    job_id      BIGINT NOT NULL,
    attempt     BIGINT  NOT NULL,
    worker      TEXT    NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    outcome     TEXT,
    error       TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE step_runs (
    job_id      BIGINT NOT NULL,
    attempt     BIGINT  NOT NULL,
    step_index  BIGINT  NOT NULL,
    step_name   TEXT    NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT,
    output      JSONB,
    PRIMARY KEY (job_id, attempt, step_index)
);

CREATE TABLE events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT    NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    reason     TEXT    NOT NULL
);
CREATE INDEX events_job ON events (job_id, id);

CREATE TABLE schedules (
    bot        TEXT    NOT NULL,
    trigger_id TEXT    NOT NULL,
    last_slot  BIGINT NOT NULL,
    PRIMARY KEY (bot, trigger_id)
);
