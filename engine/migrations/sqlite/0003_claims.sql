-- patchday store, SQLite backend: several daemons on one database (DESIGN §5). SQLite has one
-- writer at a time (BEGIN IMMEDIATE), so claims need no row locks; the columns and their
-- meaning are the PostgreSQL backend's.
--
-- Named leases: `leader` elects the one daemon that schedules cycles, expires inputs and
-- resumes orphaned runs. `epoch` increments each time the lease is taken afresh and never goes
-- back (a released lease keeps its row and epoch), so a write fenced with an old epoch is refused.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);

-- Run claims: the daemon driving a run holds it until `claimed_until` and renews it while it
-- drives. `claim_epoch` increments with every claim: the driver's commits carry it and are
-- refused once it moved on. `cancel_requested_by` asks the holder to cancel the run.
ALTER TABLE runs ADD COLUMN claimed_by TEXT;
ALTER TABLE runs ADD COLUMN claimed_until TEXT;
ALTER TABLE runs ADD COLUMN claim_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancel_requested_by TEXT;

-- Outbox claims: a mailer claims due rows for a short while before sending them.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
