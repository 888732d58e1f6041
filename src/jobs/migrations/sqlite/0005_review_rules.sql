-- The groups a user belongs to, as a JSON array of names: a bot or a
-- review rule may give its reviews to one group (`review_by`).
ALTER TABLE users ADD COLUMN group_names TEXT NOT NULL DEFAULT '[]';

-- Reviews past their deadline whose people were told: one row per job and
-- deadline, so however many processes look, each is told once.
CREATE TABLE review_deadlines (
    job_id     INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    noticed_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, due_at)
);
