-- patchday store, SQLite backend: initial schema (DESIGN §5, §6).
-- Timestamps are RFC 3339 UTC text with exactly six fractional digits
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ), so text order is time order and values round-trip exactly.
-- JSON columns hold serde_json text.

-- One execution of a runbook.
CREATE TABLE runs (
    id           TEXT PRIMARY KEY NOT NULL,
    runbook      TEXT NOT NULL,
    cycle        TEXT,
    content_hash TEXT NOT NULL,
    git_commit   TEXT,
    snapshot     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);
-- A cycle fires once: at most one run per runbook and cycle.
CREATE UNIQUE INDEX runs_runbook_cycle ON runs (runbook, cycle) WHERE cycle IS NOT NULL;
CREATE INDEX runs_started ON runs (started_at);
CREATE INDEX runs_unfinished ON runs (started_at) WHERE state = 'running';

-- One row per step, and one per host of a fanned-out step (host = '' for the step itself).
-- `position` is the rowid (stable across VACUUM because it is declared): insertion order.
-- (run_id, step, host) is the logical key.
CREATE TABLE steps (
    position    INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    step        TEXT NOT NULL,
    host        TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    not_before  TEXT,
    started_at  TEXT,
    finished_at TEXT,
    outputs     TEXT NOT NULL,
    reason      TEXT,
    UNIQUE (run_id, step, host)
);

-- The audit log: append-only, hash-chained (see src/audit.rs for the hash).
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    run_id    TEXT,
    step_id   TEXT,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX events_run ON events (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX events_at ON events (at);
-- Append-only: the engine never updates or deletes an event. (Anyone with write access to the
-- file can drop these triggers; `patchday audit verify` is what detects tampering.)
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- The last event's seq and hash, written in the same transaction as every append: a deleted
-- tail of the log no longer matches it.
CREATE TABLE chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);

-- Emails to send, written with the transition that causes them (transactional outbox).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    html            TEXT,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
