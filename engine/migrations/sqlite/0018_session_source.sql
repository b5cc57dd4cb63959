-- patchday store: where a session was opened from (issue #11: sessions listed and revocable).
--
-- `source_ip` is the client address of the sign-in that opened the session (behind a trusted
-- proxy, the one its X-Forwarded-For named), shown on `/sessions` and by `patchday sessions
-- list`. NULL for sessions opened before this migration.
ALTER TABLE sessions ADD COLUMN source_ip TEXT;
