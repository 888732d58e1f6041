-- Jobs are looked up by creation time only in ranges (a day's figures,
-- exports, the runs list's date filter) and for the oldest one kept. A
-- B-tree on created_at took an entry on every insert and on every change
-- of state, none of which is a heap-only update: three entries for a job
-- that runs once, a quarter of the index entries a job costs. Rows are
-- appended about in creation order, so a block-range index answers the
-- same ranges and costs next to nothing to keep. Ranges are summarised
-- by vacuum; until then a range is read whole, which is the newest few
-- pages.
DROP INDEX jobs_created;
CREATE INDEX jobs_created ON jobs USING brin (created_at) WITH (pages_per_range = 16);
