-- Figures of the past, kept per UTC day and bot, so a year's report and
-- the dashboard do not read every job, and outlive the pruning of jobs.
-- `stats` is the day's roll-up as JSON (counts, duration histograms,
-- failure reasons); a day is `final` once no job of it can still change.
CREATE TABLE daily_stats (
    day        BIGINT  NOT NULL,
    bot        TEXT    NOT NULL,
    stats      TEXT    NOT NULL,
    final      BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (day, bot)
);

-- Documents in per period: jobs by the time they were created.
CREATE INDEX jobs_created ON jobs (created_at);

-- Bots an operator paused: their triggers do not fire and their queued
-- jobs wait, across restarts and on every node.
CREATE TABLE bot_pauses (
    bot       TEXT    PRIMARY KEY,
    paused_by TEXT    NOT NULL,
    paused_at BIGINT  NOT NULL,
    reason    TEXT    NOT NULL
);

-- What people did to bots (paused, resumed, ran by hand), as jobs' events
-- are what happened to jobs.
CREATE TABLE bot_events (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot    TEXT    NOT NULL,
    at     BIGINT  NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    reason TEXT    NOT NULL
);
CREATE INDEX bot_events_bot ON bot_events (bot, id);
