-- Where an intake got to in a source (a mailbox's UIDVALIDITY and last UID),
-- so the next poll reads only what is new.
CREATE TABLE checkpoints (
    bot        TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (bot, name)
);
