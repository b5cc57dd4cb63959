-- patchday store, PostgreSQL backend: the overview and the runbook page (issue 13 items 1 and 3).
--
-- A runbook's recent runs (manual runs included, which `runs_cycles` leaves out) and the
-- recent runs in one state (the overview's failed runs), newest first, read through an index
-- whatever the history.
CREATE INDEX runs_runbook_started ON runs (runbook, started_at, position);
CREATE INDEX runs_state_started ON runs (state, started_at, position);
