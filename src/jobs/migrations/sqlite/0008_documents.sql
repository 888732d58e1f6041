-- Documents kept in the job database (`--documents database`): each by the
-- SHA-256 of its content, its name and media type beside it. `touched_at`
-- moves whenever intake puts the same content again, so garbage collection
-- never deletes a document a job is about to be queued for.
CREATE TABLE documents (
    sha256     TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    media_type TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    touched_at INTEGER NOT NULL,
    content    BLOB    NOT NULL
);

-- Which documents kept jobs refer to, whichever store holds them, for
-- garbage collection.
CREATE INDEX jobs_document ON jobs (json_extract(input, '$.sha256'))
    WHERE json_extract(input, '$.sha256') IS NOT NULL;
