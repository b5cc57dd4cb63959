-- patchday store, SQLite backend: who is signed in (DESIGN §7).
--
-- A session is a server-side row, keyed by the SHA-256 (hex) of the random value its cookie
-- holds: the value itself is never stored, so a copy of the database signs nobody in. A session
-- ends when it is revoked (`revoked_at`: signed out), at `expires_at` (absolute), or after the
-- idle timeout past `last_seen_at` (checked by the daemon). `via` is `link` (an emailed
-- sign-in link), `local` (the URL `patchday serve` / `patchday login-url` print) or `oidc`;
-- `groups` the identity provider's groups (JSON array). `link_nonce` is the nonce of the link
-- that opened the session: UNIQUE, so a sign-in link signs in once (NULL for OIDC).
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    via          TEXT NOT NULL,
    groups       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    link_nonce   TEXT UNIQUE
);
CREATE INDEX sessions_email ON sessions (email);
