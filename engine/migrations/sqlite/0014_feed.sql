-- patchday store, SQLite backend: what the calendar feed last published (issue 13 item 7).
--
-- One row per VEVENT UID ever published by `/calendar.ics`: its start and status as last
-- published, and its SEQUENCE (RFC 5545 §3.8.7.4). When a runbook edit, a blackout or a
-- reschedule moves the event or cancels it, the next feed bumps `sequence` so calendar
-- programs replace their copy; the same start and status leave it alone (a restart bumps
-- nothing). Small: one row per cycle (and milestone) ever subscribed to.
CREATE TABLE feed_events (
    uid      TEXT PRIMARY KEY,
    start    TEXT NOT NULL,
    status   TEXT NOT NULL,
    sequence INTEGER NOT NULL
);
