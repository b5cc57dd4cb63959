-- patchday store, PostgreSQL backend: initial schema (DESIGN §5, §6).
-- Tables are created unqualified, in the first schema of the connection's search_path.
-- Timestamps are timestamptz (microsecond precision, the same as the store's instants).
-- JSON columns hold serde_json text as TEXT, not jsonb: jsonb reorders keys and reformats
-- numbers, and the audit hash is computed over the details as written.

-- One execution of a runbook. `position` is insertion order (ties of started_at).
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    position     BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    runbook      TEXT NOT NULL,
    cycle        TEXT,
    content_hash TEXT NOT NULL,
    git_commit   TEXT,
    snapshot     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
-- A cycle fires once: at most one run per runbook and cycle (the store maps a violation of
-- this index, by name, to DuplicateCycle).
CREATE UNIQUE INDEX runs_runbook_cycle ON runs (runbook, cycle) WHERE cycle IS NOT NULL;
CREATE INDEX runs_started ON runs (started_at, position);
CREATE INDEX runs_unfinished ON runs (started_at, position) WHERE state = 'running';

-- One row per step, and one per host of a fanned-out step (host = '' for the step itself).
-- `position` is insertion order; (run_id, step, host) is the logical key.
CREATE TABLE steps (
    position    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    step        TEXT NOT NULL,
    host        TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    not_before  TIMESTAMPTZ,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    outputs     TEXT NOT NULL,
    reason      TEXT,
    UNIQUE (run_id, step, host)
);
CREATE INDEX steps_run ON steps (run_id, position);

-- The audit log: append-only, hash-chained (see src/audit.rs for the hash).
CREATE TABLE events (
    seq       BIGINT PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    run_id    TEXT,
    step_id   TEXT,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX events_run ON events (run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX events_at ON events (at);
-- Append-only: the engine never updates, deletes or truncates events. (A superuser or the
-- table owner can drop these triggers; `patchday audit verify` is what detects tampering.)
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- The last event's seq and hash, written in the same transaction as every append: a deleted
-- tail of the log no longer matches it. The one row exists from the start (seq 0 = no event
-- yet): every write transaction locks it first (SELECT ... FOR UPDATE), which serializes
-- appends across connections, processes and daemons.
CREATE TABLE chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Emails to send, written with the transition that causes them (transactional outbox).
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    html            TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE sent_at IS NULL;
