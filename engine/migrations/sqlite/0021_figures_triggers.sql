-- patchday store, SQLite backend: the step figures' triggers without the views (issue 12).
--
-- 0017's triggers read each written row back through the `step_buckets` view (a lookup of the
-- row by `position` and the duration arithmetic for every write), and the update took two
-- triggers, one before and one after: a large share of SQLite's work in a big fan-out, whose
-- rows are each written three times. These compute the same figures from the
-- trigger's `OLD` and `NEW` values (the same rule as the view: `bucket` -1 and no milliseconds
-- for a row that is not timed), do nothing for an update that changes none of state,
-- started_at and finished_at, and take the cheap statement for an untimed row (all but one
-- write per row), the arithmetic only for a timed one. The conformance suite checks the figures
-- at every bucket bound and after every kind of write, on both backends.
DROP TRIGGER steps_figures_insert;
DROP TRIGGER steps_figures_before_update;
DROP TRIGGER steps_figures_after_update;

CREATE TRIGGER steps_figures_insert AFTER INSERT ON steps
BEGIN
    INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
    SELECT NEW.run_id, NEW.step, NEW.state, -1, 1, 0
    WHERE NOT (NEW.state IN ('succeeded', 'failed') AND NEW.started_at IS NOT NULL
               AND NEW.finished_at IS NOT NULL)
    ON CONFLICT (run_id, step, state, bucket) DO UPDATE SET row_count = row_count + 1;

    INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
    SELECT NEW.run_id, NEW.step, NEW.state,
           CASE WHEN m <= 1000 THEN 0 WHEN m <= 5000 THEN 1 WHEN m <= 15000 THEN 2
                WHEN m <= 60000 THEN 3 WHEN m <= 300000 THEN 4 WHEN m <= 900000 THEN 5
                WHEN m <= 3600000 THEN 6 WHEN m <= 14400000 THEN 7 WHEN m <= 86400000 THEN 8
                ELSE 9 END,
           1, m
    FROM (SELECT MAX(0, ((CAST(strftime('%s', substr(NEW.finished_at, 1, 19)) AS INTEGER)
                          - CAST(strftime('%s', substr(NEW.started_at, 1, 19)) AS INTEGER)) * 1000000
                         + CAST(substr(NEW.finished_at, 21, 6) AS INTEGER)
                         - CAST(substr(NEW.started_at, 21, 6) AS INTEGER)) / 1000) AS m)
    WHERE NEW.state IN ('succeeded', 'failed') AND NEW.started_at IS NOT NULL
          AND NEW.finished_at IS NOT NULL
    ON CONFLICT (run_id, step, state, bucket)
    DO UPDATE SET row_count = row_count + 1, millis = millis + excluded.millis;
END;

CREATE TRIGGER steps_figures_update AFTER UPDATE OF state, started_at, finished_at ON steps
WHEN OLD.state IS NOT NEW.state OR OLD.started_at IS NOT NEW.started_at
     OR OLD.finished_at IS NOT NEW.finished_at
BEGIN
    -- The old row's contribution out: untimed, then timed.
    UPDATE step_figures SET row_count = row_count - 1
    WHERE run_id = OLD.run_id AND step = OLD.step AND state = OLD.state AND bucket = -1
      AND NOT (OLD.state IN ('succeeded', 'failed') AND OLD.started_at IS NOT NULL
               AND OLD.finished_at IS NOT NULL);

    UPDATE step_figures
    SET row_count = row_count - 1,
        millis = millis - (SELECT m FROM (SELECT MAX(0, ((CAST(strftime('%s', substr(OLD.finished_at, 1, 19)) AS INTEGER)
                          - CAST(strftime('%s', substr(OLD.started_at, 1, 19)) AS INTEGER)) * 1000000
                         + CAST(substr(OLD.finished_at, 21, 6) AS INTEGER)
                         - CAST(substr(OLD.started_at, 21, 6) AS INTEGER)) / 1000) AS m))
    WHERE run_id = OLD.run_id AND step = OLD.step AND state = OLD.state
      AND OLD.state IN ('succeeded', 'failed') AND OLD.started_at IS NOT NULL
      AND OLD.finished_at IS NOT NULL
      AND bucket = (SELECT CASE WHEN m <= 1000 THEN 0 WHEN m <= 5000 THEN 1 WHEN m <= 15000 THEN 2
                WHEN m <= 60000 THEN 3 WHEN m <= 300000 THEN 4 WHEN m <= 900000 THEN 5
                WHEN m <= 3600000 THEN 6 WHEN m <= 14400000 THEN 7 WHEN m <= 86400000 THEN 8
                ELSE 9 END
            FROM (SELECT MAX(0, ((CAST(strftime('%s', substr(OLD.finished_at, 1, 19)) AS INTEGER)
                          - CAST(strftime('%s', substr(OLD.started_at, 1, 19)) AS INTEGER)) * 1000000
                         + CAST(substr(OLD.finished_at, 21, 6) AS INTEGER)
                         - CAST(substr(OLD.started_at, 21, 6) AS INTEGER)) / 1000) AS m));

    -- The new row's contribution in: untimed, then timed.
    INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
    SELECT NEW.run_id, NEW.step, NEW.state, -1, 1, 0
    WHERE NOT (NEW.state IN ('succeeded', 'failed') AND NEW.started_at IS NOT NULL
               AND NEW.finished_at IS NOT NULL)
    ON CONFLICT (run_id, step, state, bucket) DO UPDATE SET row_count = row_count + 1;

    INSERT INTO step_figures (run_id, step, state, bucket, row_count, millis)
    SELECT NEW.run_id, NEW.step, NEW.state,
           CASE WHEN m <= 1000 THEN 0 WHEN m <= 5000 THEN 1 WHEN m <= 15000 THEN 2
                WHEN m <= 60000 THEN 3 WHEN m <= 300000 THEN 4 WHEN m <= 900000 THEN 5
                WHEN m <= 3600000 THEN 6 WHEN m <= 14400000 THEN 7 WHEN m <= 86400000 THEN 8
                ELSE 9 END,
           1, m
    FROM (SELECT MAX(0, ((CAST(strftime('%s', substr(NEW.finished_at, 1, 19)) AS INTEGER)
                          - CAST(strftime('%s', substr(NEW.started_at, 1, 19)) AS INTEGER)) * 1000000
                         + CAST(substr(NEW.finished_at, 21, 6) AS INTEGER)
                         - CAST(substr(NEW.started_at, 21, 6) AS INTEGER)) / 1000) AS m)
    WHERE NEW.state IN ('succeeded', 'failed') AND NEW.started_at IS NOT NULL
          AND NEW.finished_at IS NOT NULL
    ON CONFLICT (run_id, step, state, bucket)
    DO UPDATE SET row_count = row_count + 1, millis = millis + excluded.millis;
END;
