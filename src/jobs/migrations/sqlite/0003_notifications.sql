-- Mail to a bot's owners (a job failed or went dead) and reviewers (a job
-- waits for review), written in the same transaction as the change of
-- state, so no change is missed and none is mailed twice. The notifier
-- claims pending rows, sends them in batches and marks them done.
CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL,
    bot           TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    claimed_by    TEXT,
    claimed_until INTEGER,
    tries         INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    done_at       INTEGER,
    outcome       TEXT
);
CREATE INDEX notifications_pending ON notifications (bot, kind, id) WHERE done_at IS NULL;
CREATE INDEX notifications_job ON notifications (job_id);

CREATE TRIGGER events_notify AFTER INSERT ON events
WHEN NEW.to_state IN ('failed', 'dead', 'waiting_review')
BEGIN
    INSERT INTO notifications (job_id, bot, kind, reason, at)
    SELECT NEW.job_id, jobs.bot, NEW.to_state, NEW.reason, NEW.at FROM jobs WHERE jobs.id = NEW.job_id;
END;
