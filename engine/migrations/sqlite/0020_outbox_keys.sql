-- patchday store, SQLite backend: outbox emails with attachments and once-only keys (issue 14).
--
-- `attachments`: a JSON array of text files ({filename, content_type, content}) sent with the
-- email (a witnessed checkpoint, the monthly compliance report), NULL for none.
-- `idempotency_key`: an email queued under a key is queued once: a second insert with the same
-- key is ignored, whichever daemon, restart or retry writes it (`checkpoint:<origin>:<n>`,
-- `compliance:<YYYY-MM>`). NULL for the ordinary emails, which the unique index does not compare.
ALTER TABLE outbox ADD COLUMN attachments TEXT;
ALTER TABLE outbox ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX outbox_key ON outbox (idempotency_key);
