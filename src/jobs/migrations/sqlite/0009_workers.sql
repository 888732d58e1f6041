-- The workers running now: the step kinds they run and the bots whose jobs
-- they claim, renewed every few seconds. A queued job no live worker serves
-- is shown as such, instead of waiting in silence.
CREATE TABLE workers (
    id      TEXT    PRIMARY KEY,
    kinds   TEXT    NOT NULL,
    bots    TEXT    NOT NULL,
    seen_at INTEGER NOT NULL
);
