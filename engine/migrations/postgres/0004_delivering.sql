-- patchday store, PostgreSQL backend: the outbox remembers a delivery in progress (DESIGN §5).
-- The mailer sets `delivering_since` just before it hands a row to SMTP and clears it when it
-- records the attempt. A row found with it set was being delivered when its mailer stopped:
-- the server may have accepted it (the SMTP final-dot window), so sending it again is counted
-- as a possible duplicate.
ALTER TABLE outbox ADD COLUMN delivering_since TIMESTAMPTZ;
