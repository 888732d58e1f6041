-- Documents kept in the job database (`--documents database`), so a
-- PostgreSQL deployment needs no other shared storage: each by the SHA-256
-- of its content, its name and media type beside it. `touched_at` moves
-- whenever intake puts the same content again, so garbage collection never
-- deletes a document a job is about to be queued for.
CREATE TABLE documents (
    sha256     TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    media_type TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    touched_at BIGINT NOT NULL,
    content    BYTEA  NOT NULL
);
-- PDFs and scans are compressed already: stored out of line as they are.
ALTER TABLE documents ALTER COLUMN content SET STORAGE EXTERNAL;

-- Which documents kept jobs refer to, whichever store holds them, for
-- garbage collection.
CREATE INDEX jobs_document ON jobs ((input->>'sha256')) WHERE input ? 'sha256';
