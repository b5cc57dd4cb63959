-- patchday store, SQLite backend: the audit browser (issue 13 item 5).
--
-- `GET /audit` reads one page of events newest first, filtered by time, runbook, run, actor
-- and action, by a keyset cursor on seq. Each filter has an index ending in seq (SQLite's
-- indexes end in the rowid, which is seq), so a page reads about a page of rows whatever the
-- history: by actor; by runbook, which is the runs of that runbook (runs_runbook, then
-- events_run) or the events about the runbook itself (details.runbook: runbook.*, cycle.*).
-- By action uses events_action (0008), by run events_run, by time events_at (0001). The
-- conformance suite checks the plans (HOT_QUERIES).
CREATE INDEX events_actor ON events (actor, seq);
CREATE INDEX events_runbook ON events (json_extract(details, '$.runbook'))
    WHERE json_extract(details, '$.runbook') IS NOT NULL;
CREATE INDEX runs_runbook ON runs (runbook);
