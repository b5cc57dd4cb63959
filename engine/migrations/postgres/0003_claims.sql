-- patchday store, PostgreSQL backend: several daemons on one database (DESIGN §5).
--
-- Named leases: `leader` elects the one daemon that schedules cycles, expires inputs and
-- resumes orphaned runs. A lease is taken when it is free or expired; `epoch` increments each
-- time it is taken afresh and never goes back (a released lease keeps its row and epoch), so a
-- write fenced with an old epoch is refused.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Run claims: the daemon driving a run holds it until `claimed_until` and renews it while it
-- drives; claims are taken with FOR UPDATE SKIP LOCKED. `claim_epoch` increments with every
-- claim: the driver's commits carry it and are refused once it moved on. `cancel_requested_by`
-- asks the holder (on another daemon) to cancel the run.
ALTER TABLE runs ADD COLUMN claimed_by TEXT;
ALTER TABLE runs ADD COLUMN claimed_until TIMESTAMPTZ;
ALTER TABLE runs ADD COLUMN claim_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancel_requested_by TEXT;

-- Outbox claims: a mailer claims due rows for a short while before sending them, so two
-- mailers never send one row at the same time, and a crashed mailer's rows come due again.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMPTZ;
