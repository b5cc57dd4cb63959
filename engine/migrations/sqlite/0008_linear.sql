-- patchday store, SQLite backend: work in proportion to what is active, not to history.
--
-- Each index serves one hot query (the conformance suite checks with EXPLAIN QUERY PLAN that
-- the query uses it): the scheduler's last cycle per runbook (reruns included), the cycle
-- events it reads (and the runbook events read at start-up), the expiry task's runs waiting
-- for a person, and /metrics' runs by state.
CREATE INDEX runs_cycles ON runs (runbook, cycle) WHERE cycle IS NOT NULL;
CREATE INDEX events_action ON events (action, seq);
CREATE INDEX steps_awaiting ON steps (run_id) WHERE state = 'awaiting_input';
CREATE INDEX runs_state ON runs (state);
