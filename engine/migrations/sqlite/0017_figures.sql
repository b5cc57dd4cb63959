-- patchday store, SQLite backend: /metrics' step figures from an aggregate (issue 12 item 4).
--
-- One row per (run, step, state, duration bucket): how many of the run's rows of that step are
-- in that state, and the sum of their durations in milliseconds. Triggers on `steps` keep it in
-- the same transaction as every step write (insert, transition), so a scrape sums these rows
-- for the 1,000 most recent runs (a few per step) instead of reading their step rows (thousands
-- per fanned-out step).
--
-- `bucket`: -1 for a row that is not timed (not `succeeded`/`failed`, or without both times);
-- else the first of `store::STEP_DURATION_BUCKETS_MS` (1 s, 5 s, 15 s, 1 min, 5 min, 15 min,
-- 1 h, 4 h, 1 d) that the duration is at or below, counted from 0; 9 above all of them.
-- The duration is finished_at - started_at in whole milliseconds, truncated as chrono's
-- `num_milliseconds` does (never negative), from the stored text (six fractional digits).
CREATE TABLE step_figures (
    run_id    TEXT NOT NULL,
    step      TEXT NOT NULL,
    state     TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    millis    INTEGER NOT NULL,
    PRIMARY KEY (run_id, step, state, bucket)
) WITHOUT ROWID;

-- A step row's duration in milliseconds, NULL when it is not timed (the view every trigger and
-- the backfill below read through, so the rule is written once).
CREATE VIEW step_durations AS
SELECT position, run_id, step, state,
       CASE WHEN state IN ('succeeded', 'failed') AND started_at IS NOT NULL
                 AND finished_at IS NOT NULL
            THEN MAX(0, ((CAST(strftime('%s', substr(finished_at, 1, 19)) AS INTEGER)
                          - CAST(strftime('%s', substr(started_at, 1, 19)) AS INTEGER)) * 1000000
                         + CAST(substr(finished_at, 21, 6) AS INTEGER)
                         - CAST(substr(started_at, 21, 6) AS INTEGER)) / 1000)
       END AS millis
FROM steps;

CREATE VIEW step_buckets AS
SELECT position, run_id, step, state, COALESCE(millis, 0) AS millis,
       CASE WHEN millis IS NULL THEN -1
            WHEN millis <= 1000 THEN 0
            WHEN millis <= 5000 THEN 1
            WHEN millis <= 15000 THEN 2
            WHEN millis <= 60000 THEN 3
            WHEN millis <= 300000 THEN 4
            WHEN millis <= 900000 THEN 5
            WHEN millis <= 3600000 THEN 6
            WHEN millis <= 14400000 THEN 7
            WHEN millis <= 86400000 THEN 8
            ELSE 9
       END AS bucket
FROM step_durations;

INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
SELECT run_id, step, state, bucket, COUNT(*), SUM(millis)
FROM step_buckets GROUP BY run_id, step, state, bucket;

CREATE TRIGGER steps_figures_insert AFTER INSERT ON steps
BEGIN
    INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
    SELECT run_id, step, state, bucket, 1, millis FROM step_buckets
    WHERE position = NEW.position
    ON CONFLICT (run_id, step, state, bucket)
    DO UPDATE SET row_count = row_count + 1, millis = millis + excluded.millis;
END;

-- The row's old contribution out before the update (the view still reads the old values), the
-- new one in after it.
CREATE TRIGGER steps_figures_before_update BEFORE UPDATE OF state, started_at, finished_at ON steps
BEGIN
    UPDATE step_figures
    SET row_count = step_figures.row_count - 1, millis = step_figures.millis - old_row.millis
    FROM step_buckets AS old_row
    WHERE old_row.position = OLD.position AND step_figures.run_id = old_row.run_id
      AND step_figures.step = old_row.step AND step_figures.state = old_row.state
      AND step_figures.bucket = old_row.bucket;
END;

CREATE TRIGGER steps_figures_after_update AFTER UPDATE OF state, started_at, finished_at ON steps
BEGIN
    INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
    SELECT run_id, step, state, bucket, 1, millis FROM step_buckets
    WHERE position = NEW.position
    ON CONFLICT (run_id, step, state, bucket)
    DO UPDATE SET row_count = row_count + 1, millis = millis + excluded.millis;
END;

-- The run page reads in proportion to the screen (issue 12 item 3): the run's own step rows
-- (not its hosts'), one page of its hosts in one state, and its step-level events (the
-- timeline), each through its index.
CREATE INDEX steps_own ON steps (run_id, position) WHERE host = '';
CREATE INDEX steps_hosts ON steps (run_id, state, position) WHERE host <> '';
CREATE INDEX events_run_steps ON events (run_id, seq)
    WHERE run_id IS NOT NULL AND json_type(details, '$.host') IS NULL;

-- The API's pages of a run's rows: keyset on insertion order within the run (PostgreSQL has
-- this index, `steps_run`, since 0001).
CREATE INDEX steps_run ON steps (run_id, position);
