-- Idempotency keys outlive their jobs: a file dropped again, or a mail seen
-- again after its job was pruned, is still known and not processed twice.
-- A key is kept for its own retention (`clerk db prune --key-retention`,
-- 400 days by default); `state` is its job's last state, written when the
-- job is pruned.
CREATE TABLE job_keys (
    bot        TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    job_id     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    state      TEXT,
    PRIMARY KEY (bot, key)
);
CREATE INDEX job_keys_created ON job_keys (created_at);
INSERT INTO job_keys (bot, key, job_id, created_at)
    SELECT bot, idempotency_key, id, created_at FROM jobs WHERE idempotency_key IS NOT NULL;
