-- People: who may use the web pages and the API, and how they prove it.
-- Passwords and tokens are kept only as hashes.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer','reviewer','operator','admin')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL CHECK (role IN ('viewer','reviewer','operator','admin')),
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    last_used_at INTEGER
);

-- Browser sessions, by the hash of the cookie's value.
CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL,
    csrf         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- The review of a job waiting for one: who holds it, the values corrected
-- so far, and a version that a save must name, so a stale page cannot
-- overwrite another reviewer's work.
CREATE TABLE reviews (
    job_id        INTEGER PRIMARY KEY,
    claimed_by    TEXT,
    claimed_until INTEGER,
    version       INTEGER NOT NULL DEFAULT 0,
    template      TEXT,
    extraction    TEXT,
    corrections   TEXT    NOT NULL DEFAULT '{}',
    note          TEXT,
    updated_at    INTEGER NOT NULL
);

-- Review actions are events too (who, when, what), with their details
-- (field, old value, new value, note) as JSON.
ALTER TABLE events ADD COLUMN detail TEXT;

-- The review queue: jobs waiting for review, oldest first.
CREATE INDEX jobs_waiting ON jobs (updated_at, id) WHERE state = 'waiting_review';

-- An event that keeps the job in its state (a correction saved while it
-- waits for review) is not news for anyone's mailbox.
DROP TRIGGER events_notify;
CREATE TRIGGER events_notify AFTER INSERT ON events
WHEN NEW.to_state IN ('failed', 'dead', 'waiting_review')
     AND (NEW.from_state IS NULL OR NEW.from_state <> NEW.to_state)
BEGIN
    INSERT INTO notifications (job_id, bot, kind, reason, at)
    SELECT NEW.job_id, jobs.bot, NEW.to_state, NEW.reason, NEW.at FROM jobs WHERE jobs.id = NEW.job_id;
END;
