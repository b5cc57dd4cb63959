-- patchday store, PostgreSQL backend: decisions on approval and manual steps (DESIGN §7).
-- A decision is written in the same transaction as its audit event and, when it settles the
-- step, the step's transition. The unique keys are what make decisions single-use: one decision
-- per recipient and step row, and one per link nonce (NULL for CLI and API decisions; NULLs are
-- distinct under UNIQUE). `seq` is insertion order.
CREATE TABLE decisions (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    TEXT NOT NULL REFERENCES runs (id),
    step      TEXT NOT NULL,
    host      TEXT NOT NULL,
    recipient TEXT NOT NULL,
    choice    TEXT NOT NULL,
    comment   TEXT,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    source_ip TEXT,
    nonce     TEXT,
    CONSTRAINT decisions_one_per_recipient UNIQUE (run_id, step, host, recipient),
    CONSTRAINT decisions_nonce_once UNIQUE (nonce)
);
