-- patchday store, PostgreSQL backend: runs that last for weeks, an outbox that lasts for months.
--
-- A run may re-run a cycle that already had one, on purpose (`patchday run --cycle C --rerun
-- --reason WHY`): `rerun_reason` says why (the audit log says who). Such runs are exempt from
-- one-run-per-runbook-and-cycle; every other run of a cycle is still unique (the store maps a
-- violation of the index, by name, to DuplicateCycle).
ALTER TABLE runs ADD COLUMN rerun_reason TEXT;
DROP INDEX runs_runbook_cycle;
CREATE UNIQUE INDEX runs_runbook_cycle ON runs (runbook, cycle)
    WHERE cycle IS NOT NULL AND rerun_reason IS NULL;

-- Dead letters: a row the SMTP server refused for good (a 5xx answer) is not tried again.
-- `dead_at` is when it was given up, `last_error` the last failure (also kept for rows that
-- are still retried). `notice_of` marks the email telling the committee that row `notice_of`
-- was given up (a notice that is itself refused is only logged: no notice about a notice).
ALTER TABLE outbox ADD COLUMN dead_at TIMESTAMPTZ;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN notice_of BIGINT;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE sent_at IS NULL AND dead_at IS NULL;
