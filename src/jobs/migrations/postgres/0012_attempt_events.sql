-- An attempt's start and end were written twice: as the attempt's row
-- (who ran it, from when to when, how it ended) and as two events
-- (queued -> running when claimed, running -> its next state when it
-- ended). Each job that runs once paid two heap rows and two index
-- entries for what the attempt's row already said. Now the attempt's row
-- holds its end's state, reason and actor, and `events` is a view that
-- reads both: the events stored as before (`job_events`: enqueues, review
-- actions, cancels, anything that is not an attempt's start or end), and
-- each attempt's start and end from `attempts`, or from `jobs` while the
-- attempt still runs.
--
-- An attempt's start and end keep their place among the job's events:
-- each takes a number from the stored events' sequence when it happens
-- (the claim keeps it in the job's row until the attempt ends), so the
-- trail reads in the order it was written, whatever the nodes' clocks say.
-- Attempts that ended before this migration have no numbers; their events
-- were stored, and stay where they are.
ALTER TABLE events RENAME TO job_events;
ALTER SEQUENCE events_id_seq RENAME TO job_events_id_seq;
ALTER TABLE job_events RENAME CONSTRAINT events_pkey TO job_events_pkey;

ALTER TABLE jobs ADD COLUMN claim_seq BIGINT;
ALTER TABLE attempts
    ADD COLUMN claim_seq BIGINT,
    ADD COLUMN end_seq BIGINT,
    ADD COLUMN ended_by TEXT,
    ADD COLUMN to_state TEXT,
    ADD COLUMN reason TEXT;

-- The view is a UNION ALL under one outer filter, not filters in its
-- branches: PostgreSQL pulls a branch up into the join only where it has
-- no WHERE clause of its own, and only pulled up does a join (a day's
-- finished jobs and their events) reach the branch's index by job. The
-- filter drops the rows that are no event: an attempt without its
-- numbers. The running jobs' branch keeps its WHERE: few jobs run, it is
-- read by its own index, where pulled up it was read whole.
CREATE VIEW events (id, job_id, at, actor, from_state, to_state, reason, detail) AS
SELECT * FROM (
    SELECT id, job_id, at, actor, from_state, to_state, reason, detail FROM job_events
    UNION ALL
    SELECT claim_seq, job_id, started_at, worker, 'queued', 'running', 'claimed, attempt ' || attempt, NULL::jsonb
    FROM attempts
    UNION ALL
    SELECT end_seq, job_id, finished_at, ended_by, 'running', to_state, reason, NULL::jsonb
    FROM attempts
    UNION ALL
    SELECT claim_seq, id, attempt_started_at, worker, 'queued', 'running', 'claimed, attempt ' || attempt, NULL::jsonb
    FROM jobs WHERE state = 'running'
) AS trail (id, job_id, at, actor, from_state, to_state, reason, detail)
WHERE id IS NOT NULL;

-- The mail an event may call for (a job failed, died or waits for
-- review) follows an attempt's end as it followed its event.
CREATE FUNCTION attempt_end_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (job_id, bot, kind, reason, at)
    SELECT NEW.job_id, jobs.bot, NEW.to_state, NEW.reason, NEW.finished_at FROM jobs WHERE jobs.id = NEW.job_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER attempt_end_notify AFTER INSERT OR UPDATE OF end_seq ON attempts
FOR EACH ROW WHEN (NEW.end_seq IS NOT NULL AND NEW.to_state IN ('failed', 'dead', 'waiting_review'))
EXECUTE FUNCTION attempt_end_notify();
