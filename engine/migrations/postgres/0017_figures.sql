-- patchday store, PostgreSQL backend: /metrics' step figures from an aggregate (issue 12 item 4).
--
-- One row per (run, step, state, duration bucket): how many of the run's rows of that step are
-- in that state, and the sum of their durations in milliseconds. A trigger on `steps` keeps it
-- in the same transaction as every step write (insert, transition), so a scrape sums these rows
-- for the 1,000 most recent runs (a few per step) instead of reading their step rows (thousands
-- per fanned-out step). Rows are keyed by run, so commits of different runs never touch the
-- same aggregate row.
--
-- `bucket`: -1 for a row that is not timed (not `succeeded`/`failed`, or without both times);
-- else the first of `store::STEP_DURATION_BUCKETS_MS` (1 s, 5 s, 15 s, 1 min, 5 min, 15 min,
-- 1 h, 4 h, 1 d) that the duration is at or below, counted from 0; 9 above all of them.
-- The duration is finished_at - started_at in whole milliseconds, truncated as chrono's
-- `num_milliseconds` does (never negative).
CREATE TABLE step_figures (
    run_id    TEXT NOT NULL,
    step      TEXT NOT NULL,
    state     TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    row_count BIGINT NOT NULL,
    millis    BIGINT NOT NULL,
    PRIMARY KEY (run_id, step, state, bucket)
);

-- A step row's duration in milliseconds; NULL when it is not timed.
CREATE FUNCTION step_millis(state TEXT, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ)
RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN state IN ('succeeded', 'failed') AND started_at IS NOT NULL
                     AND finished_at IS NOT NULL
                THEN GREATEST(0, TRUNC(EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000))::BIGINT
           END
$$;

-- The duration bucket of a duration (NULL: -1, not timed).
CREATE FUNCTION step_bucket(millis BIGINT) RETURNS INTEGER LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN millis IS NULL THEN -1
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
           END
$$;

INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
SELECT run_id, step, state, step_bucket(m), COUNT(*), SUM(COALESCE(m, 0))
FROM (SELECT run_id, step, state, step_millis(state, started_at, finished_at) AS m FROM steps) s
GROUP BY run_id, step, state, step_bucket(m);

-- The row's old contribution out (an update), its new one in.
CREATE FUNCTION steps_figures() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m BIGINT;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.state = NEW.state AND OLD.started_at IS NOT DISTINCT FROM NEW.started_at
           AND OLD.finished_at IS NOT DISTINCT FROM NEW.finished_at THEN
            RETURN NULL;
        END IF;
        m := step_millis(OLD.state, OLD.started_at, OLD.finished_at);
        UPDATE step_figures SET row_count = row_count - 1, millis = millis - COALESCE(m, 0)
        WHERE run_id = OLD.run_id AND step = OLD.step AND state = OLD.state
          AND bucket = step_bucket(m);
    END IF;
    m := step_millis(NEW.state, NEW.started_at, NEW.finished_at);
    INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
    VALUES (NEW.run_id, NEW.step, NEW.state, step_bucket(m), 1, COALESCE(m, 0))
    ON CONFLICT (run_id, step, state, bucket)
    DO UPDATE SET row_count = step_figures.row_count + 1,
                  millis = step_figures.millis + EXCLUDED.millis;
    RETURN NULL;
END
$$;
CREATE TRIGGER steps_figures AFTER INSERT OR UPDATE ON steps
    FOR EACH ROW EXECUTE FUNCTION steps_figures();

-- The run page reads in proportion to the screen (issue 12 item 3): the run's own step rows
-- (not its hosts'), one page of its hosts in one state, and its step-level events (the
-- timeline), each through its index.
CREATE INDEX steps_own ON steps (run_id, position) WHERE host = '';
CREATE INDEX steps_hosts ON steps (run_id, state, position) WHERE host <> '';
CREATE INDEX events_run_steps ON events (run_id, seq)
    WHERE run_id IS NOT NULL AND (details::jsonb -> 'host') IS NULL;
