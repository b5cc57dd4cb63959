//! The SQLite backend of [`Store`] (the default: one file, DESIGN §5).
//!
//! - Every connection is opened with WAL, `synchronous=FULL`, `foreign_keys=ON` and a busy
//!   timeout, set through [`SqliteConnectOptions`] so that no connection can miss them.
//! - Writes run in `BEGIN IMMEDIATE` transactions on a pool of exactly one connection: writers of
//!   this process queue for it in order, and the write lock is taken at `BEGIN`, so a transaction
//!   never fails half-way to upgrade its lock (another process waits on the busy timeout).
//!   Reads use a separate pool and see the last committed state (WAL readers never block).
//! - `sqlite::memory:` uses one connection for everything, so the in-memory database is shared
//!   and lives as long as the store.
//! - The schema comes from embedded migrations (`engine/migrations/sqlite/`), applied on open.
//! - Timestamps are stored as `YYYY-MM-DDTHH:MM:SS.ffffffZ` text ([`crate::audit::format_instant`]):
//!   they sort as text, and round-trip exactly at microsecond precision (finer is truncated on
//!   write, as in PostgreSQL).

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _};

use super::codec::{
    details_text, from_sqlx, json_text, node_from, node_index, parse_instant, parse_json,
    parse_run_state, parse_step_state, run_state_str, step_state_str, through_sqlx,
};
use super::{
    AuditBind, AuditPage, AuditQuery, ChainHead, Change, ClaimScope, DecisionRow, EmailAttempt,
    EmailRow, EventFilter, EventPage, EventRow, EventText, FeedStamp, Fence, NewDecision, NewEmail,
    NewEvent, NewSession, OutboxFigures, RunClaim, RunId, RunRow, RunState, SessionRow,
    SessionWrite, StepFigure, StepRow, StepState, Store, StoreError, fences, lease_end,
};
use crate::audit;
use crate::merkle::{Hash, Subtree};

/// The migrations, embedded in the binary: (version, description, SQL), in order. Each file in
/// `engine/migrations/sqlite/` is named `<version>_<description>.sql` and listed here (a test
/// checks the two agree).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "decisions",
        include_str!("../../migrations/sqlite/0002_decisions.sql"),
    ),
    (
        3,
        "claims",
        include_str!("../../migrations/sqlite/0003_claims.sql"),
    ),
    (
        4,
        "delivering",
        include_str!("../../migrations/sqlite/0004_delivering.sql"),
    ),
    (
        5,
        "lasting",
        include_str!("../../migrations/sqlite/0005_lasting.sql"),
    ),
    (
        6,
        "auth",
        include_str!("../../migrations/sqlite/0006_auth.sql"),
    ),
    (
        8,
        "linear",
        include_str!("../../migrations/sqlite/0008_linear.sql"),
    ),
    (
        14,
        "feed",
        include_str!("../../migrations/sqlite/0014_feed.sql"),
    ),
    (
        15,
        "overview",
        include_str!("../../migrations/sqlite/0015_overview.sql"),
    ),
    (
        16,
        "audit",
        include_str!("../../migrations/sqlite/0016_audit.sql"),
    ),
    (
        17,
        "figures",
        include_str!("../../migrations/sqlite/0017_figures.sql"),
    ),
    (
        18,
        "session_source",
        include_str!("../../migrations/sqlite/0018_session_source.sql"),
    ),
    (
        19,
        "merkle",
        include_str!("../../migrations/sqlite/0019_merkle.sql"),
    ),
    (
        20,
        "outbox_keys",
        include_str!("../../migrations/sqlite/0020_outbox_keys.sql"),
    ),
    (
        21,
        "figures_triggers",
        include_str!("../../migrations/sqlite/0021_figures_triggers.sql"),
    ),
];

/// Merkle nodes per statement (three bound values each, well under SQLite's limit).
const NODE_ROWS: usize = 300;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read connections of a file database.
const READERS: u32 = 4;

/// The store on SQLite. Cheap to share behind an `Arc`; close it with [`SqliteStore::close`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: the only one that writes.
    writer: SqlitePool,
    /// Read connections (the writer itself for an in-memory database).
    reader: SqlitePool,
}

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Database(format!("{context}: {e}"))
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url` (`sqlite://patchday.db`,
    /// `sqlite:///var/lib/patchday/state.db`, `sqlite::memory:`) and applies the migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        Self::open_with(url, true).await
    }

    /// Opens an existing database; a missing file is an error (nothing is created).
    pub async fn open_existing(url: &str) -> Result<SqliteStore, StoreError> {
        Self::open_with(url, false).await
    }

    async fn open_with(url: &str, create: bool) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("database URL `{url}`: {e}")))?;
        let memory = options
            .get_filename()
            .to_string_lossy()
            .starts_with("file:sqlx-in-memory-")
            || url.contains("mode=memory");
        if !memory && !create && !options.get_filename().is_file() {
            return Err(StoreError::Database(format!(
                "{}: no such database file",
                options.get_filename().display()
            )));
        }
        let options = options
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = |max: u32| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(if memory { 1 } else { 0 })
                .idle_timeout(None)
                .max_lifetime(None)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(3600))
        };
        let writer = pool(1)
            .connect_with(options.clone())
            .await
            .map_err(db("opening the database"))?;
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        migrator
            .run(&writer)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let reader = if memory {
            writer.clone()
        } else {
            pool(READERS)
                .connect_with(options)
                .await
                .map_err(db("opening the database for reading"))?
        };
        Ok(SqliteStore { writer, reader })
    }

    /// Closes every connection (the WAL is checkpointed when the last one closes).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// [`Store::event_texts_after`] a row at a time (for a page whose details cannot be
    /// joined: see there).
    async fn event_texts_one_by_one(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventText>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, run_id, step_id, details, prev_hash, hash \
             FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db("reading a page of audit events"))?;
        rows.iter()
            .map(|row| {
                Ok(EventText {
                    seq: get(row, "seq")?,
                    at: get(row, "at")?,
                    actor: get(row, "actor")?,
                    action: get(row, "action")?,
                    run_id: get(row, "run_id")?,
                    step_id: get(row, "step_id")?,
                    details: get(row, "details")?,
                    prev_hash: get(row, "prev_hash")?,
                    hash: get(row, "hash")?,
                })
            })
            .collect()
    }

    /// SQLite's own check of the database file: `ok`, or the problems it found.
    pub async fn integrity_check(&self, full: bool) -> Result<String, StoreError> {
        let pragma = if full {
            "PRAGMA integrity_check"
        } else {
            "PRAGMA quick_check"
        };
        let rows: Vec<(String,)> = sqlx::query_as(pragma)
            .fetch_all(&self.reader)
            .await
            .map_err(db("checking integrity"))?;
        Ok(rows
            .into_iter()
            .map(|(line,)| line)
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// The floor the benchmarks compare with: `commits` bare SQLite commits (one one-row
    /// `INSERT` each, autocommit) on a database at `url` opened with the same connection
    /// settings as the store (WAL, `synchronous=FULL`) and the same driver, but no schema.
    pub async fn commit_floor(url: &str, commits: usize) -> Result<(), StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("database URL `{url}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(db("opening the floor database"))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS floor (n INTEGER NOT NULL)")
            .execute(&mut conn)
            .await
            .map_err(db("creating the floor table"))?;
        for n in 0..commits {
            sqlx::query("INSERT INTO floor (n) VALUES (?)")
                .bind(n as i64)
                .execute(&mut conn)
                .await
                .map_err(db("floor commit"))?;
        }
        conn.close().await.map_err(db("closing the floor database"))
    }

    /// Runs raw SQL on the write connection (tamper tests only).
    #[cfg(test)]
    pub(crate) async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(db("acquire"))?;
        let done = sqlx::raw_sql(sql)
            .execute(&mut *conn)
            .await
            .map_err(db("raw SQL"))?;
        Ok(done.rows_affected())
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction: commits if it succeeds, rolls back if not.
    async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>,
    {
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(db("acquiring the writer"))?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("BEGIN IMMEDIATE"))?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await.map_err(db("COMMIT"))?;
                Ok(value)
            }
            Err(err) => {
                tx.rollback().await.map_err(db("ROLLBACK"))?;
                Err(err)
            }
        }
    }
}

// --- encoding -------------------------------------------------------------------------------

fn ts(at: DateTime<Utc>) -> String {
    audit::format_instant(at)
}

fn ts_opt(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(ts)
}

fn parse_ts_opt(text: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.as_deref().map(parse_instant).transpose()
}

fn get<'r, T>(row: &'r SqliteRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Database(format!("reading column `{column}`: {e}")))
}

const RUN_COLUMNS: &str = "id, runbook, cycle, content_hash, git_commit, snapshot, state, started_at, finished_at, \
     rerun_reason";

/// The hot queries (see [`super::HOT_QUERIES`]), shared by their methods and the plans.
const LAST_CYCLES: &str = "SELECT runbook, MAX(cycle) AS cycle FROM runs \
    WHERE cycle IS NOT NULL GROUP BY runbook, length(cycle)";
const RUN_COUNTS: &str = "SELECT state, COUNT(*) AS n FROM runs GROUP BY state";
const RUNS_AWAITING_INPUT: &str =
    "SELECT DISTINCT run_id FROM steps WHERE state = 'awaiting_input'";
const RUNBOOK_RUNS: &str =
    "FROM runs WHERE runbook = ? ORDER BY started_at DESC, rowid DESC LIMIT ?";
const STATE_RUNS: &str = "FROM runs WHERE state = ? ORDER BY started_at DESC, rowid DESC LIMIT ?";
const RECENT_RUNS: &str = "FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?";
const EVENTS_BY_ACTION: &str = "FROM events WHERE action IN ({marks}) ORDER BY seq";

const STEP_FIGURES: &str = "SELECT r.runbook, f.step, f.state, f.bucket AS bucket, \
    SUM(f.row_count) AS n, SUM(f.millis) AS millis \
    FROM runs AS r JOIN step_figures AS f ON f.run_id = r.id \
    WHERE r.id IN (SELECT id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?) \
    GROUP BY r.runbook, f.step, f.state, f.bucket HAVING SUM(f.row_count) > 0";

// (Without statistics SQLite would take `steps_run` and skip every host row of the run.)
const RUN_STEP_ROWS: &str = "INDEXED BY steps_own WHERE run_id = ? AND host = '' ORDER BY position";
const RUN_HOST_ROWS: &str =
    "WHERE run_id = ? AND host <> '' AND state = ? ORDER BY position LIMIT ? OFFSET ?";
const RUN_ROW_COUNTS: &str = "SELECT step, state, SUM(row_count) AS n FROM step_figures \
    WHERE run_id = ? GROUP BY step, state HAVING SUM(row_count) > 0";
const RUN_EVENT_COUNT: &str = "SELECT COUNT(*) FROM events WHERE run_id = ?";
const RUN_EVENTS_PAGE: &str = "FROM events WHERE run_id = ? ORDER BY seq LIMIT ? OFFSET ?";
const RUN_STEP_EVENTS: &str =
    "FROM events WHERE run_id = ? AND json_type(details, '$.host') IS NULL ORDER BY seq";

const RUNS_AFTER: &str = "FROM runs WHERE (started_at, rowid) < \
    (SELECT started_at, rowid FROM runs WHERE id = ?) ORDER BY started_at DESC, rowid DESC LIMIT ?";
const RUN_STEPS_AFTER: &str =
    "FROM steps WHERE run_id = ? AND position > ? ORDER BY position LIMIT ?";
const RUN_EVENTS_AFTER: &str = "FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?";

/// (name, SQL) of every hot query in [`super::HOT_QUERIES`] order, parameters as `?`.
fn hot_queries() -> Vec<(&'static str, String)> {
    let names: Vec<&str> = super::HOT_QUERIES.iter().map(|(n, _)| *n).collect();
    let sql = [
        LAST_CYCLES.to_string(),
        format!(
            "SELECT {EVENT_COLUMNS} {}",
            EVENTS_BY_ACTION.replace("{marks}", "?, ?, ?")
        ),
        RUNS_AWAITING_INPUT.to_string(),
        RUN_COUNTS.to_string(),
        format!("SELECT {RUN_COLUMNS} {RECENT_RUNS}"),
        format!("SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY position"),
        format!("SELECT {RUN_COLUMNS} {RUNBOOK_RUNS}"),
        format!("SELECT {RUN_COLUMNS} {STATE_RUNS}"),
        audit_sql(&super::AUDIT_PLAN_QUERIES[0]).0,
        audit_sql(&super::AUDIT_PLAN_QUERIES[1]).0,
        audit_sql(&super::AUDIT_PLAN_QUERIES[2]).0,
        STEP_FIGURES.to_string(),
        format!("SELECT {STEP_COLUMNS} FROM steps {RUN_STEP_ROWS}"),
        format!("SELECT {STEP_COLUMNS} FROM steps {RUN_HOST_ROWS}"),
        RUN_ROW_COUNTS.to_string(),
        RUN_EVENT_COUNT.to_string(),
        format!("SELECT {EVENT_COLUMNS} {RUN_EVENTS_PAGE}"),
        format!("SELECT {EVENT_COLUMNS} {RUN_STEP_EVENTS}"),
        format!("SELECT {RUN_COLUMNS} {RUNS_AFTER}"),
        format!("SELECT position, {STEP_COLUMNS} {RUN_STEPS_AFTER}"),
        format!("SELECT {EVENT_COLUMNS} {RUN_EVENTS_AFTER}"),
    ];
    names.into_iter().zip(sql).collect()
}

/// The audit browser's query on this backend ([`super::audit_query_sql`]).
fn audit_sql(query: &AuditQuery) -> (String, Vec<AuditBind>) {
    super::audit_query_sql(
        query,
        EVENT_COLUMNS,
        |_| "?".to_string(),
        |a, b| {
            format!(
                "(run_id IN (SELECT id FROM runs WHERE runbook = {a}) \
                 OR json_extract(details, '$.runbook') = {b})"
            )
        },
    )
}

fn run_from(row: &SqliteRow) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: get(row, "id")?,
        runbook: get(row, "runbook")?,
        cycle: get(row, "cycle")?,
        content_hash: get(row, "content_hash")?,
        commit: get(row, "git_commit")?,
        snapshot: parse_json(&get::<String>(row, "snapshot")?)?,
        state: parse_run_state(&get::<String>(row, "state")?)?,
        started_at: parse_instant(&get::<String>(row, "started_at")?)?,
        finished_at: parse_ts_opt(get(row, "finished_at")?)?,
        rerun: get(row, "rerun_reason")?,
    })
}

const STEP_COLUMNS: &str =
    "run_id, step, host, state, attempt, not_before, started_at, finished_at, outputs, reason";

fn step_from(row: &SqliteRow) -> Result<StepRow, StoreError> {
    Ok(StepRow {
        run_id: get(row, "run_id")?,
        step: get(row, "step")?,
        host: get(row, "host")?,
        state: parse_step_state(&get::<String>(row, "state")?)?,
        attempt: get::<i64>(row, "attempt")?
            .try_into()
            .map_err(|_| StoreError::Database("step attempt out of range".into()))?,
        not_before: parse_ts_opt(get(row, "not_before")?)?,
        started_at: parse_ts_opt(get(row, "started_at")?)?,
        finished_at: parse_ts_opt(get(row, "finished_at")?)?,
        outputs: parse_json(&get::<String>(row, "outputs")?)?,
        reason: get(row, "reason")?,
    })
}

const EVENT_COLUMNS: &str = "seq, at, actor, action, run_id, step_id, details, prev_hash, hash";

fn event_from(row: &SqliteRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: get(row, "seq")?,
        at: parse_instant(&get::<String>(row, "at")?)?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        run_id: get(row, "run_id")?,
        step_id: get(row, "step_id")?,
        details: parse_json(&get::<String>(row, "details")?)?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

type EventColumns = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

/// A page of events from its JSON array of columns and its details joined by U+001E, sorted by
/// `seq`; `None` when the details do not split into one per event.
fn event_page(columns: &str, details: &str) -> Result<Option<Vec<EventText>>, StoreError> {
    let columns: Vec<EventColumns> = serde_json::from_str(columns)
        .map_err(|e| StoreError::Database(format!("a page of audit events: {e}")))?;
    let details: Vec<&str> = match columns.len() {
        0 => Vec::new(),
        _ => details.split('\u{1e}').collect(),
    };
    if details.len() != columns.len() {
        return Ok(None);
    }
    let mut page: Vec<EventText> = columns
        .into_iter()
        .zip(details)
        .map(
            |((seq, at, actor, action, run_id, step_id, prev_hash, hash), details)| EventText {
                seq,
                at,
                actor,
                action,
                run_id,
                step_id,
                details: details.to_string(),
                prev_hash,
                hash,
            },
        )
        .collect();
    page.sort_by_key(|event| event.seq);
    Ok(Some(page))
}

const EMAIL_COLUMNS: &str = "id, run_id, recipients, subject, body, html, created_at, attempts, next_attempt_at, sent_at, \
     delivering_since, dead_at, last_error, notice_of, attachments, idempotency_key";

fn email_from(row: &SqliteRow) -> Result<EmailRow, StoreError> {
    let to: Vec<String> = serde_json::from_str(&get::<String>(row, "recipients")?)
        .map_err(|e| StoreError::Database(format!("bad recipients in the outbox: {e}")))?;
    Ok(EmailRow {
        id: get(row, "id")?,
        email: NewEmail {
            run_id: get(row, "run_id")?,
            to,
            subject: get(row, "subject")?,
            body: get(row, "body")?,
            html: get(row, "html")?,
            created_at: parse_instant(&get::<String>(row, "created_at")?)?,
            attachments: super::attachments_from(get(row, "attachments")?)?,
            key: get(row, "idempotency_key")?,
        },
        attempts: get::<i64>(row, "attempts")?
            .try_into()
            .map_err(|_| StoreError::Database("email attempts out of range".into()))?,
        next_attempt_at: parse_instant(&get::<String>(row, "next_attempt_at")?)?,
        sent_at: parse_ts_opt(get(row, "sent_at")?)?,
        delivering_since: parse_ts_opt(get(row, "delivering_since")?)?,
        dead_at: parse_ts_opt(get(row, "dead_at")?)?,
        last_error: get(row, "last_error")?,
        notice_of: get(row, "notice_of")?,
    })
}

const DECISION_COLUMNS: &str =
    "seq, run_id, step, host, recipient, choice, comment, at, actor, source_ip, nonce";

fn decision_from(row: &SqliteRow) -> Result<DecisionRow, StoreError> {
    Ok(DecisionRow {
        seq: get(row, "seq")?,
        decision: NewDecision {
            run_id: get(row, "run_id")?,
            step: get(row, "step")?,
            host: get(row, "host")?,
            recipient: get(row, "recipient")?,
            choice: get(row, "choice")?,
            comment: get(row, "comment")?,
            at: parse_instant(&get::<String>(row, "at")?)?,
            actor: get(row, "actor")?,
            source_ip: get(row, "source_ip")?,
            nonce: get(row, "nonce")?,
        },
    })
}

const SESSION_COLUMNS: &str = "id_hash, email, via, groups, created_at, last_seen_at, \
     expires_at, revoked_at, link_nonce, source_ip";

fn session_from(row: &SqliteRow) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        session: NewSession {
            id_hash: get(row, "id_hash")?,
            email: get(row, "email")?,
            via: get(row, "via")?,
            groups: serde_json::from_str(&get::<String>(row, "groups")?)
                .map_err(|e| StoreError::Database(format!("session groups: {e}")))?,
            created_at: parse_instant(&get::<String>(row, "created_at")?)?,
            expires_at: parse_instant(&get::<String>(row, "expires_at")?)?,
            link_nonce: get(row, "link_nonce")?,
            source_ip: get(row, "source_ip")?,
        },
        last_seen_at: parse_instant(&get::<String>(row, "last_seen_at")?)?,
        revoked_at: parse_ts_opt(get(row, "revoked_at")?)?,
    })
}

// --- writes (inside a BEGIN IMMEDIATE transaction) -------------------------------------------

/// Opens or closes a session; `LinkUsed` if the link that opens it opened another already.
async fn write_session(
    conn: &mut SqliteConnection,
    write: &SessionWrite,
) -> Result<(), StoreError> {
    match write {
        SessionWrite::Open(s) => {
            let groups = serde_json::to_string(&s.groups).expect("strings serialize");
            let done = sqlx::query(
                "INSERT INTO sessions (id_hash, email, via, groups, created_at, last_seen_at, \
                 expires_at, link_nonce, source_ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&s.id_hash)
            .bind(&s.email)
            .bind(&s.via)
            .bind(groups)
            .bind(ts(s.created_at))
            .bind(ts(s.created_at))
            .bind(ts(s.expires_at))
            .bind(&s.link_nonce)
            .bind(&s.source_ip)
            .execute(&mut *conn)
            .await
            .map_err(db("opening a session"))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::LinkUsed {
                    nonce: s.link_nonce.clone().unwrap_or_default(),
                });
            }
        }
        SessionWrite::Close { id_hash, at } => {
            sqlx::query(
                "UPDATE sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL",
            )
            .bind(ts(*at))
            .bind(id_hash)
            .execute(&mut *conn)
            .await
            .map_err(db("closing a session"))?;
        }
    }
    Ok(())
}

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// Inserts a step row; `Conflict` if it exists, `NoSuchRun` if its run does not.
async fn insert_step(conn: &mut SqliteConnection, row: &StepRow) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO steps (run_id, step, host, state, attempt, not_before, started_at, \
         finished_at, outputs, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (run_id, step, host) DO NOTHING",
    )
    .bind(&row.run_id)
    .bind(&row.step)
    .bind(&row.host)
    .bind(step_state_str(row.state))
    .bind(i64::from(row.attempt))
    .bind(ts_opt(row.not_before))
    .bind(ts_opt(row.started_at))
    .bind(ts_opt(row.finished_at))
    .bind(json_text(&row.outputs))
    .bind(&row.reason)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StoreError::NoSuchRun(row.run_id.clone())
        } else {
            StoreError::Database(format!("inserting step `{}`: {e}", row.step))
        }
    })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            run_id: row.run_id.clone(),
            step: row.step.clone(),
            host: row.host.clone(),
            expected: None,
        });
    }
    Ok(())
}

/// Inserts a decision; `LinkUsed` if its nonce was used, `AlreadyDecided` if its recipient
/// decided on the row already, `NoSuchRun` if its run does not exist.
async fn insert_decision(conn: &mut SqliteConnection, d: &NewDecision) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO decisions (run_id, step, host, recipient, choice, comment, at, actor, \
         source_ip, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&d.run_id)
    .bind(&d.step)
    .bind(&d.host)
    .bind(&d.recipient)
    .bind(&d.choice)
    .bind(&d.comment)
    .bind(ts(d.at))
    .bind(&d.actor)
    .bind(&d.source_ip)
    .bind(&d.nonce)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StoreError::NoSuchRun(d.run_id.clone())
        } else {
            StoreError::Database(format!("recording a decision: {e}"))
        }
    })?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    // A unique key refused it: name which (a replayed link is `LinkUsed` first).
    if let Some(nonce) = &d.nonce {
        let used = sqlx::query("SELECT 1 FROM decisions WHERE nonce = ?")
            .bind(nonce)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("looking up a link nonce"))?;
        if used.is_some() {
            return Err(StoreError::LinkUsed {
                nonce: nonce.clone(),
            });
        }
    }
    Err(StoreError::AlreadyDecided {
        run_id: d.run_id.clone(),
        step: d.step.clone(),
        host: d.host.clone(),
        recipient: d.recipient.clone(),
    })
}

/// Moves a step row from `expect` to `row`; `Conflict` if it is not in `expect` (or missing).
async fn update_step(
    conn: &mut SqliteConnection,
    expect: StepState,
    row: &StepRow,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE steps SET state = ?, attempt = ?, not_before = ?, started_at = ?, \
         finished_at = ?, outputs = ?, reason = ? \
         WHERE run_id = ? AND step = ? AND host = ? AND state = ?",
    )
    .bind(step_state_str(row.state))
    .bind(i64::from(row.attempt))
    .bind(ts_opt(row.not_before))
    .bind(ts_opt(row.started_at))
    .bind(ts_opt(row.finished_at))
    .bind(json_text(&row.outputs))
    .bind(&row.reason)
    .bind(&row.run_id)
    .bind(&row.step)
    .bind(&row.host)
    .bind(step_state_str(expect))
    .execute(&mut *conn)
    .await
    .map_err(db("updating a step"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            run_id: row.run_id.clone(),
            step: row.step.clone(),
            host: row.host.clone(),
            expected: Some(expect),
        });
    }
    Ok(())
}

/// The audit chain's head during one transaction: events are appended after it, and it is
/// written back once, before the transaction commits.
struct Chain {
    seq: i64,
    hash: String,
    dirty: bool,
}

impl Chain {
    async fn load(conn: &mut SqliteConnection) -> Result<Chain, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("reading the chain head"))?;
        Ok(match row {
            Some(row) => Chain {
                seq: get(&row, "seq")?,
                hash: get(&row, "hash")?,
                dirty: false,
            },
            None => Chain {
                seq: 0,
                hash: audit::GENESIS_HASH.to_string(),
                dirty: false,
            },
        })
    }

    async fn append(
        &mut self,
        conn: &mut SqliteConnection,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let seq = self.seq + 1;
        let hash = audit::event_hash(
            seq,
            event.at,
            &event.actor,
            &event.action,
            event.run_id.as_deref(),
            event.step_id.as_deref(),
            &event.details,
            &self.hash,
        );
        sqlx::query(
            "INSERT INTO events (seq, at, actor, action, run_id, step_id, details, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(ts(event.at))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.run_id)
        .bind(&event.step_id)
        .bind(details_text(&event.details))
        .bind(&self.hash)
        .bind(&hash)
        .execute(&mut *conn)
        .await
        .map_err(db("appending an audit event"))?;
        self.seq = seq;
        self.hash = hash;
        self.dirty = true;
        Ok(())
    }

    async fn save(&self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(self.seq)
        .bind(&self.hash)
        .execute(&mut *conn)
        .await
        .map_err(db("writing the chain head"))?;
        Ok(())
    }
}

async fn insert_email(conn: &mut SqliteConnection, email: &NewEmail) -> Result<(), StoreError> {
    let to = serde_json::to_string(&email.to).expect("strings serialize");
    let created = ts(email.created_at);
    sqlx::query(
        "INSERT INTO outbox (run_id, recipients, subject, body, html, created_at, attempts, \
         next_attempt_at, attachments, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&email.run_id)
    .bind(to)
    .bind(&email.subject)
    .bind(&email.body)
    .bind(&email.html)
    .bind(&created)
    .bind(&created)
    .bind(super::attachments_column(email))
    .bind(&email.key)
    .execute(&mut *conn)
    .await
    .map_err(db("queueing an email"))?;
    Ok(())
}

/// Refuses the batch ([`StoreError::Fenced`]) if a fence it carries names a stale epoch. Runs
/// inside the write transaction, before anything is written: the epoch cannot move meanwhile.
async fn check_fences(conn: &mut SqliteConnection, changes: &[Change]) -> Result<(), StoreError> {
    for fence in fences(changes) {
        let (what, current, epoch) = match fence {
            Fence::Run { run_id, epoch } => {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT claim_epoch FROM runs WHERE id = ?")
                        .bind(run_id)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(db("reading a run's epoch"))?;
                let current = current.ok_or_else(|| StoreError::NoSuchRun(run_id.clone()))?;
                (format!("run {run_id}"), current, *epoch)
            }
            Fence::Lease { name, epoch } => {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT epoch FROM leases WHERE name = ?")
                        .bind(name)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(db("reading a lease's epoch"))?;
                (format!("lease {name}"), current.unwrap_or(0), *epoch)
            }
        };
        if u64::try_from(current).ok() != Some(epoch) {
            return Err(StoreError::Fenced {
                what,
                epoch,
                current: current.max(0) as u64,
            });
        }
    }
    Ok(())
}

async fn apply(conn: &mut SqliteConnection, changes: &[Change]) -> Result<(), StoreError> {
    check_fences(conn, changes).await?;
    let mut chain = Chain::load(conn).await?;
    for change in changes {
        for decision in &change.decisions {
            insert_decision(conn, decision).await?;
        }
        for session in &change.sessions {
            write_session(conn, session).await?;
        }
        for write in &change.steps {
            match write.expect {
                Some(expect) => update_step(conn, expect, &write.row).await?,
                None => insert_step(conn, &write.row).await?,
            }
        }
        if let Some((run_id, state, at)) = &change.run {
            let finished = (*state != RunState::Running).then(|| ts(*at));
            let done = sqlx::query("UPDATE runs SET state = ?, finished_at = ? WHERE id = ?")
                .bind(run_state_str(*state))
                .bind(finished)
                .bind(run_id)
                .execute(&mut *conn)
                .await
                .map_err(db("updating a run"))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NoSuchRun(run_id.clone()));
            }
        }
        for event in &change.events {
            chain.append(conn, event).await?;
        }
        for email in &change.emails {
            insert_email(conn, email).await?;
        }
    }
    chain.save(conn).await
}

// --- the batched write path ------------------------------------------------------------------
//
// A batch of N transitions would cost about 2N statements row by row, and each statement is a
// round trip to SQLite's worker thread. The fast path writes the same rows with multi-row
// statements (up to 64 rows each, in power-of-two chunks so that few statement texts reach the
// statement cache): step writes in their order, grouped into runs of inserts or updates with
// distinct keys; then run transitions; then events; then emails. If a multi-row step write
// changes fewer rows than it should (a conflict), the transaction is rolled back and the batch is
// re-run row by row by [`apply`], which reports exactly which row conflicted.

/// Why the fast path stopped.
enum Fast {
    /// A step write did not apply: re-run row by row for the exact error.
    Miss,
    Failed(StoreError),
}

/// What `commit` does after the fast path failed.
enum Retry<T> {
    RowByRow(T),
    Failed(StoreError),
}

impl<T> From<StoreError> for Retry<T> {
    fn from(err: StoreError) -> Self {
        Retry::Failed(err)
    }
}

impl From<StoreError> for Fast {
    fn from(err: StoreError) -> Self {
        Fast::Failed(err)
    }
}

/// Rows per multi-row statement, at most.
const MAX_ROWS: usize = 64;

/// Splits `items` into chunks of 64, 32, ..., 1 rows.
fn chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let size = if items.len() >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << (usize::BITS - 1 - items.len().leading_zeros())
        };
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

/// `head` + `rows` copies of `row` separated by commas + `tail`.
fn multi_row_sql(head: &str, row: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + (row.len() + 2) * rows + tail.len());
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sql
}

const INSERT_STEPS_HEAD: &str = "INSERT INTO steps (run_id, step, host, state, attempt, \
    not_before, started_at, finished_at, outputs, reason) VALUES ";
const INSERT_STEPS_TAIL: &str = " ON CONFLICT (run_id, step, host) DO NOTHING";
const UPDATE_STEPS_HEAD: &str = "WITH v (run_id, step, host, expect, state, attempt, not_before, \
    started_at, finished_at, outputs, reason) AS (VALUES ";
const UPDATE_STEPS_TAIL: &str = ") UPDATE steps SET state = v.state, attempt = v.attempt, \
    not_before = v.not_before, started_at = v.started_at, finished_at = v.finished_at, \
    outputs = v.outputs, reason = v.reason FROM v WHERE steps.run_id = v.run_id \
    AND steps.step = v.step AND steps.host = v.host AND steps.state = v.expect";
const INSERT_EVENTS_HEAD: &str = "INSERT INTO events (seq, at, actor, action, run_id, step_id, \
    details, prev_hash, hash) VALUES ";
const INSERT_EMAILS_HEAD: &str = "INSERT INTO outbox (run_id, recipients, subject, body, html, \
    created_at, attempts, next_attempt_at, attachments, idempotency_key) VALUES ";
const INSERT_EMAILS_TAIL: &str = " ON CONFLICT (idempotency_key) DO NOTHING";

/// A step write: `None` inserts, `Some(expected state)` updates.
type StepOp<'a> = (Option<StepState>, &'a StepRow);

/// Writes step rows in order, as multi-row statements over runs of one kind with distinct keys.
async fn write_step_ops(conn: &mut SqliteConnection, ops: &[StepOp<'_>]) -> Result<(), Fast> {
    let mut start = 0;
    let mut keys: HashSet<(&str, &str, &str)> = HashSet::new();
    for (i, op) in ops.iter().enumerate() {
        let key = (op.1.run_id.as_str(), op.1.step.as_str(), op.1.host.as_str());
        let same_kind = ops[start].0.is_none() == op.0.is_none();
        if !same_kind || keys.contains(&key) {
            write_steps(conn, &ops[start..i]).await?;
            start = i;
            keys.clear();
        }
        keys.insert(key);
    }
    write_steps(conn, &ops[start..]).await
}

/// Writes step rows that are all inserts, or all updates, with distinct keys.
async fn write_steps(conn: &mut SqliteConnection, ops: &[StepOp<'_>]) -> Result<(), Fast> {
    let insert = ops.first().is_some_and(|op| op.0.is_none());
    for chunk in chunks(ops) {
        let sql = if insert {
            multi_row_sql(
                INSERT_STEPS_HEAD,
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len(),
                INSERT_STEPS_TAIL,
            )
        } else {
            multi_row_sql(
                UPDATE_STEPS_HEAD,
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len(),
                UPDATE_STEPS_TAIL,
            )
        };
        let mut query = sqlx::query(&sql);
        for &(expect, row) in chunk {
            query = query.bind(&row.run_id).bind(&row.step).bind(&row.host);
            if let Some(expect) = expect {
                query = query.bind(step_state_str(expect));
            }
            query = query
                .bind(step_state_str(row.state))
                .bind(i64::from(row.attempt))
                .bind(ts_opt(row.not_before))
                .bind(ts_opt(row.started_at))
                .bind(ts_opt(row.finished_at))
                .bind(json_text(&row.outputs))
                .bind(&row.reason);
        }
        match query.execute(&mut *conn).await {
            Ok(done) if done.rows_affected() == chunk.len() as u64 => {}
            Ok(_) => return Err(Fast::Miss),
            Err(e) if is_foreign_key_violation(&e) => return Err(Fast::Miss),
            Err(e) => return Err(StoreError::Database(format!("writing steps: {e}")).into()),
        }
    }
    Ok(())
}

async fn apply_fast(conn: &mut SqliteConnection, changes: &[Change]) -> Result<(), Fast> {
    check_fences(conn, changes).await?;
    // Decisions are rare (one per click): written one by one; a refused one is named exactly
    // by the row-by-row path, so that both paths report the same error for a batch.
    for decision in changes.iter().flat_map(|c| &c.decisions) {
        match insert_decision(conn, decision).await {
            Ok(()) => {}
            Err(StoreError::Database(e)) => return Err(StoreError::Database(e).into()),
            Err(_) => return Err(Fast::Miss),
        }
    }
    for session in changes.iter().flat_map(|c| &c.sessions) {
        write_session(conn, session).await?;
    }
    let mut ops: Vec<StepOp<'_>> = Vec::new();
    for change in changes {
        for write in &change.steps {
            ops.push((write.expect, &write.row));
        }
    }
    write_step_ops(conn, &ops).await?;

    for (run_id, state, at) in changes.iter().filter_map(|c| c.run.as_ref()) {
        let finished = (*state != RunState::Running).then(|| ts(*at));
        let done = sqlx::query("UPDATE runs SET state = ?, finished_at = ? WHERE id = ?")
            .bind(run_state_str(*state))
            .bind(finished)
            .bind(run_id)
            .execute(&mut *conn)
            .await
            .map_err(db("updating a run"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchRun(run_id.clone()).into());
        }
    }

    let events: Vec<&NewEvent> = changes.iter().flat_map(|c| &c.events).collect();
    if !events.is_empty() {
        let mut chain = Chain::load(conn).await?;
        for chunk in chunks(&events) {
            let sql = multi_row_sql(
                INSERT_EVENTS_HEAD,
                "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len(),
                "",
            );
            let mut query = sqlx::query(&sql);
            for event in chunk {
                let seq = chain.seq + 1;
                let hash = audit::event_hash(
                    seq,
                    event.at,
                    &event.actor,
                    &event.action,
                    event.run_id.as_deref(),
                    event.step_id.as_deref(),
                    &event.details,
                    &chain.hash,
                );
                let prev = std::mem::replace(&mut chain.hash, hash.clone());
                chain.seq = seq;
                query = query
                    .bind(seq)
                    .bind(ts(event.at))
                    .bind(&event.actor)
                    .bind(&event.action)
                    .bind(&event.run_id)
                    .bind(&event.step_id)
                    .bind(details_text(&event.details))
                    .bind(prev)
                    .bind(hash);
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(db("appending audit events"))?;
        }
        chain.dirty = true;
        chain.save(conn).await?;
    }

    let emails: Vec<&NewEmail> = changes.iter().flat_map(|c| &c.emails).collect();
    for chunk in chunks(&emails) {
        let sql = multi_row_sql(
            INSERT_EMAILS_HEAD,
            "(?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            chunk.len(),
            INSERT_EMAILS_TAIL,
        );
        let mut query = sqlx::query(&sql);
        for email in chunk {
            let created = ts(email.created_at);
            query = query
                .bind(&email.run_id)
                .bind(serde_json::to_string(&email.to).expect("strings serialize"))
                .bind(&email.subject)
                .bind(&email.body)
                .bind(&email.html)
                .bind(created.clone())
                .bind(created)
                .bind(super::attachments_column(email))
                .bind(&email.key);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(db("queueing emails"))?;
    }
    Ok(())
}

/// Creates a run; `fast` writes the steps with multi-row statements (and may answer `Miss`).
async fn create(
    conn: &mut SqliteConnection,
    run: &RunRow,
    steps: &[StepRow],
    event: &NewEvent,
    fast: bool,
) -> Result<(), Fast> {
    if let (Some(cycle), None) = (&run.cycle, &run.rerun) {
        let existing = sqlx::query(
            "SELECT 1 FROM runs WHERE runbook = ? AND cycle = ? AND rerun_reason IS NULL",
        )
        .bind(&run.runbook)
        .bind(cycle)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("looking for the cycle's run"))?;
        if existing.is_some() {
            return Err(StoreError::DuplicateCycle {
                runbook: run.runbook.clone(),
                cycle: cycle.clone(),
            }
            .into());
        }
    }
    sqlx::query(
        "INSERT INTO runs (id, runbook, cycle, content_hash, git_commit, snapshot, state, \
         started_at, finished_at, rerun_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&run.id)
    .bind(&run.runbook)
    .bind(&run.cycle)
    .bind(&run.content_hash)
    .bind(&run.commit)
    .bind(json_text(&run.snapshot))
    .bind(run_state_str(run.state))
    .bind(ts(run.started_at))
    .bind(ts_opt(run.finished_at))
    .bind(&run.rerun)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::Database(format!("creating run {}: {e}", run.id)))?;
    if fast {
        let ops: Vec<StepOp<'_>> = steps.iter().map(|row| (None, row)).collect();
        write_step_ops(conn, &ops).await?;
    } else {
        for step in steps {
            insert_step(conn, step).await?;
        }
    }
    let mut chain = Chain::load(conn).await?;
    chain.append(conn, event).await?;
    Ok(chain.save(conn).await?)
}

/// Records a feed event as published: a new UID starts at SEQUENCE 0; a moved or re-statused
/// one gets the next; an unchanged one is left alone.
const FEED_UPSERT: &str = "INSERT INTO feed_events (uid, start, status, sequence) VALUES (?, ?, ?, 0) \
             ON CONFLICT (uid) DO UPDATE SET start = excluded.start, status = excluded.status, \
             sequence = feed_events.sequence + 1 \
             WHERE feed_events.start <> excluded.start OR feed_events.status <> excluded.status";

const FEED_SEQUENCE: &str = "SELECT sequence FROM feed_events WHERE uid = ?";

// --- the trait ------------------------------------------------------------------------------

impl Store for SqliteStore {
    async fn create_run(
        &self,
        run: RunRow,
        steps: Vec<StepRow>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        let outcome = self
            .write(|conn| {
                Box::pin(async move {
                    match create(conn, &run, &steps, &event, true).await {
                        Ok(()) => Ok(()),
                        Err(Fast::Miss) => Err(Retry::RowByRow((run, steps, event))),
                        Err(Fast::Failed(err)) => Err(Retry::Failed(err)),
                    }
                })
            })
            .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(Retry::Failed(err)) => Err(err),
            Err(Retry::RowByRow((run, steps, event))) => {
                self.write(|conn| {
                    Box::pin(async move {
                        create(conn, &run, &steps, &event, false)
                            .await
                            .map_err(|f| match f {
                                Fast::Failed(err) => err,
                                Fast::Miss => unreachable!("the row-by-row path never misses"),
                            })
                    })
                })
                .await
            }
        }
    }

    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let outcome = self
            .write(|conn| {
                Box::pin(async move {
                    match apply_fast(conn, &changes).await {
                        Ok(()) => Ok(()),
                        Err(Fast::Miss) => Err(Retry::RowByRow(changes)),
                        Err(Fast::Failed(err)) => Err(Retry::Failed(err)),
                    }
                })
            })
            .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(Retry::Failed(err)) => Err(err),
            // Some row of the batch conflicted: run it again row by row, which names the row
            // (and commits the batch if another writer made it valid in between).
            Err(Retry::RowByRow(changes)) => {
                self.write(|conn| Box::pin(async move { apply(conn, &changes).await }))
                    .await
            }
        }
    }

    async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db("reading a run"))?;
        row.as_ref().map(run_from).transpose()
    }

    async fn runs(&self, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} {RECENT_RUNS}"))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading runs"))?;
        rows.iter().map(run_from).collect()
    }

    async fn last_cycles(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(LAST_CYCLES)
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading the last cycles"))?;
        rows.iter()
            .map(|row| Ok((get(row, "runbook")?, get(row, "cycle")?)))
            .collect()
    }

    async fn run_counts(&self) -> Result<Vec<(RunState, u64)>, StoreError> {
        let rows = sqlx::query(RUN_COUNTS)
            .fetch_all(&self.reader)
            .await
            .map_err(db("counting runs"))?;
        rows.iter()
            .map(|row| {
                let state = parse_run_state(&get::<String>(row, "state")?)?;
                Ok((state, get::<i64>(row, "n")?.max(0) as u64))
            })
            .collect()
    }

    async fn runs_of_runbook(&self, runbook: &str, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} {RUNBOOK_RUNS}"))
            .bind(runbook)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading a runbook's runs"))?;
        rows.iter().map(run_from).collect()
    }

    async fn runs_in_state(&self, state: RunState, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} {STATE_RUNS}"))
            .bind(state.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading runs by state"))?;
        rows.iter().map(run_from).collect()
    }

    async fn runs_awaiting_input(&self) -> Result<Vec<RunId>, StoreError> {
        let rows = sqlx::query(RUNS_AWAITING_INPUT)
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading runs awaiting input"))?;
        rows.iter().map(|row| get(row, "run_id")).collect()
    }

    async fn step_figures(&self, runs: u32) -> Result<Vec<StepFigure>, StoreError> {
        let rows = sqlx::query(STEP_FIGURES)
            .bind(i64::from(runs))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading the step figures"))?;
        rows.iter()
            .map(|row| {
                let bucket: i64 = get(row, "bucket")?;
                Ok(StepFigure {
                    runbook: get(row, "runbook")?,
                    step: get(row, "step")?,
                    state: parse_step_state(&get::<String>(row, "state")?)?,
                    bucket: usize::try_from(bucket).ok(),
                    rows: get::<i64>(row, "n")?.max(0) as u64,
                    millis: get::<i64>(row, "millis")?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn hot_query_plans(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut out = Vec::new();
        for (name, sql) in hot_queries() {
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&self.reader)
                .await
                .map_err(db("explaining a query"))?;
            let mut plan = Vec::new();
            for row in &rows {
                plan.push(get::<String>(row, "detail")?);
            }
            out.push((name, plan.join("\n")));
        }
        Ok(out)
    }

    async fn runs_after(&self, after: &str, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} {RUNS_AFTER}"))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading runs"))?;
        rows.iter().map(run_from).collect()
    }

    async fn run_steps_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, StepRow)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT position, {STEP_COLUMNS} {RUN_STEPS_AFTER}"
        ))
        .bind(run_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db("reading a page of a run's rows"))?;
        rows.iter()
            .map(|row| Ok((get::<i64>(row, "position")?, step_from(row)?)))
            .collect()
    }

    async fn run_events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} {RUN_EVENTS_AFTER}"))
            .bind(run_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading a page of a run's events"))?;
        rows.iter().map(event_from).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' ORDER BY started_at, rowid"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(db("reading unfinished runs"))?;
        rows.iter().map(run_from).collect()
    }

    async fn steps(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY position"
        ))
        .bind(run_id)
        .try_map(|row| step_from(&row).map_err(through_sqlx))
        .fetch_all(&self.reader)
        .await
        .map_err(from_sqlx("reading steps"))
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events");
        let mut conditions = Vec::new();
        if filter.run_id.is_some() {
            conditions.push("run_id = ?");
        }
        if filter.since.is_some() {
            conditions.push("at >= ?");
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY seq");
        let mut query = sqlx::query(&sql);
        if let Some(run_id) = &filter.run_id {
            query = query.bind(run_id);
        }
        if let Some(since) = filter.since {
            query = query.bind(ts(since));
        }
        let rows = query
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading audit events"))?;
        rows.iter().map(event_from).collect()
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        let page = self.event_texts_after(after, limit).await?;
        page.iter().map(EventText::decode).collect()
    }

    async fn event_texts_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventText>, StoreError> {
        // One row per page: sqlx hands SQLite rows over one at a time through a channel, which
        // cost more than checking them (`bench/audit.sh`). The columns as a JSON array per
        // event, the details (JSON text already) joined by the record separator U+001E, which
        // JSON text holds only escaped: so they are neither escaped by SQLite nor unescaped
        // here. Both aggregates read the rows in the same order; the page is sorted here, not
        // by an aggregate's `ORDER BY`, whose sorter cost a fifth of `audit verify` (perf); the
        // subquery's `ORDER BY … LIMIT` decides which rows.
        let (columns, details): (String, Option<String>) = sqlx::query_as(
            "SELECT json_group_array(json_array(seq, at, actor, action, run_id, step_id, \
             prev_hash, hash)), group_concat(details, char(30)) FROM \
             (SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?)",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_one(&self.reader)
        .await
        .map_err(db("reading a page of audit events"))?;
        let page = event_page(&columns, details.as_deref().unwrap_or_default())?;
        match page {
            Some(page) => Ok(page),
            // A details text with a raw U+001E in it (not JSON: written by hand): row by row.
            None => self.event_texts_one_by_one(after, limit).await,
        }
    }

    async fn event_hashes(&self, after: i64, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        // One row per page, as in `events_after`.
        let (page,): (String,) = sqlx::query_as(
            "SELECT json_group_array(json_array(seq, hash)) FROM \
             (SELECT seq, hash FROM events WHERE seq > ? ORDER BY seq LIMIT ?)",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_one(&self.reader)
        .await
        .map_err(db("reading audit event hashes"))?;
        let mut hashes: Vec<(i64, String)> = serde_json::from_str(&page)
            .map_err(|e| StoreError::Database(format!("a page of audit event hashes: {e}")))?;
        hashes.sort_by_key(|(seq, _)| *seq);
        Ok(hashes)
    }

    async fn audit_events(&self, query: AuditQuery) -> Result<AuditPage, StoreError> {
        let (sql, binds) = audit_sql(&query);
        let mut statement = sqlx::query(&sql);
        for value in binds {
            statement = match value {
                AuditBind::Text(text) => statement.bind(text),
                AuditBind::Int(n) => statement.bind(n),
                AuditBind::At(at) => statement.bind(ts(at)),
            };
        }
        let rows = statement
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading a page of the audit browser"))?;
        let events = rows.iter().map(event_from).collect::<Result<_, _>>()?;
        Ok(super::audit_page(&query, events))
    }

    async fn merkle_nodes(
        &self,
        subtrees: Vec<Subtree>,
    ) -> Result<Vec<(Subtree, Hash)>, StoreError> {
        let mut found = Vec::with_capacity(subtrees.len());
        for chunk in subtrees.chunks(NODE_ROWS) {
            // A join, not `(level, idx) IN (VALUES …)`, which SQLite answers with a full scan.
            let sql = format!(
                "SELECT m.level, m.idx, m.hash FROM (VALUES {}) AS wanted \
                 JOIN merkle_nodes AS m ON m.level = wanted.column1 AND m.idx = wanted.column2",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&sql);
            for subtree in chunk {
                query = query
                    .bind(i64::from(subtree.level))
                    .bind(node_index(subtree)?);
            }
            let rows = query
                .fetch_all(&self.reader)
                .await
                .map_err(db("reading Merkle nodes"))?;
            for row in &rows {
                found.push(node_from(
                    get::<i64>(row, "level")?,
                    get::<i64>(row, "idx")?,
                    &get::<Vec<u8>>(row, "hash")?,
                )?);
            }
        }
        Ok(found)
    }

    async fn put_merkle_nodes(&self, nodes: Vec<(Subtree, Hash)>) -> Result<(), StoreError> {
        self.write(|conn| {
            Box::pin(async move {
                for chunk in nodes.chunks(NODE_ROWS) {
                    let sql = format!(
                        "INSERT INTO merkle_nodes (level, idx, hash) VALUES {} \
                         ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash",
                        vec!["(?, ?, ?)"; chunk.len()].join(", ")
                    );
                    let mut query = sqlx::query(&sql);
                    for (subtree, hash) in chunk {
                        query = query
                            .bind(i64::from(subtree.level))
                            .bind(node_index(subtree)?)
                            .bind(hash.as_slice());
                    }
                    query
                        .execute(&mut *conn)
                        .await
                        .map_err(db("writing Merkle nodes"))?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn run_events_page(
        &self,
        run_id: &str,
        page: Option<u64>,
        per_page: u32,
    ) -> Result<EventPage, StoreError> {
        let total: i64 = sqlx::query_scalar(RUN_EVENT_COUNT)
            .bind(run_id)
            .fetch_one(&self.reader)
            .await
            .map_err(db("counting audit events"))?;
        let total = u64::try_from(total).unwrap_or_default();
        let offset = super::page_offset(total, page, per_page);
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} {RUN_EVENTS_PAGE}"))
            .bind(run_id)
            .bind(i64::from(per_page))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading a page of audit events"))?;
        Ok(EventPage {
            events: rows.iter().map(event_from).collect::<Result<_, _>>()?,
            total,
            offset,
        })
    }

    async fn run_step_events(&self, run_id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} {RUN_STEP_EVENTS}"))
            .bind(run_id)
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading a run's step events"))?;
        rows.iter().map(event_from).collect()
    }

    async fn run_step_rows(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {STEP_COLUMNS} FROM steps {RUN_STEP_ROWS}"))
            .bind(run_id)
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading a run's step rows"))?;
        rows.iter().map(step_from).collect()
    }

    async fn run_host_rows(
        &self,
        run_id: &str,
        state: StepState,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<StepRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {STEP_COLUMNS} FROM steps {RUN_HOST_ROWS}"))
            .bind(run_id)
            .bind(step_state_str(state))
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading a page of a run's hosts"))?;
        rows.iter().map(step_from).collect()
    }

    async fn run_row_counts(
        &self,
        run_id: &str,
    ) -> Result<Vec<(String, StepState, u64)>, StoreError> {
        let rows = sqlx::query(RUN_ROW_COUNTS)
            .bind(run_id)
            .fetch_all(&self.reader)
            .await
            .map_err(db("counting a run's rows"))?;
        rows.iter()
            .map(|row| {
                let state = parse_step_state(&get::<String>(row, "state")?)?;
                Ok((
                    get(row, "step")?,
                    state,
                    get::<i64>(row, "n")?.max(0) as u64,
                ))
            })
            .collect()
    }

    async fn chain_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
            .fetch_optional(&self.reader)
            .await
            .map_err(db("reading the chain head"))?;
        row.map(|row| {
            Ok(ChainHead {
                seq: get(&row, "seq")?,
                hash: get(&row, "hash")?,
            })
        })
        .transpose()
    }

    async fn due_emails(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EmailRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EMAIL_COLUMNS} FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL \
             AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
        ))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db("reading due emails"))?;
        rows.iter().map(email_from).collect()
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?"
        ))
        .bind(id_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(db("reading a session"))?;
        row.as_ref().map(session_from).transpose()
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.write(|conn| {
            Box::pin(async move {
                sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?")
                    .bind(ts(at))
                    .bind(&id_hash)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("touching a session"))?;
                Ok(())
            })
        })
        .await
    }

    async fn live_sessions(&self, now: DateTime<Utc>) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE revoked_at IS NULL AND expires_at > ? \
             ORDER BY created_at DESC"
        ))
        .bind(ts(now))
        .fetch_all(&self.reader)
        .await
        .map_err(db("reading sessions"))?;
        rows.iter().map(session_from).collect()
    }

    async fn feed_sequences(&self, stamps: Vec<FeedStamp>) -> Result<Vec<u32>, StoreError> {
        self.write(|conn| {
            Box::pin(async move {
                let mut out = Vec::with_capacity(stamps.len());
                for stamp in &stamps {
                    sqlx::query(FEED_UPSERT)
                        .bind(&stamp.uid)
                        .bind(ts(stamp.start))
                        .bind(&stamp.status)
                        .execute(&mut *conn)
                        .await
                        .map_err(db("recording a feed event"))?;
                    let row = sqlx::query(FEED_SEQUENCE)
                        .bind(&stamp.uid)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(db("reading a feed event's sequence"))?;
                    out.push(u32::try_from(get::<i64>(&row, "sequence")?).unwrap_or(u32::MAX));
                }
                Ok(out)
            })
        })
        .await
    }

    async fn decisions(
        &self,
        run_id: &str,
        step: &str,
        host: &str,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE run_id = ? AND step = ? AND host = ? \
             ORDER BY seq"
        ))
        .bind(run_id)
        .bind(step)
        .bind(host)
        .fetch_all(&self.reader)
        .await
        .map_err(db("reading decisions"))?;
        rows.iter().map(decision_from).collect()
    }

    async fn email_delivering(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(|conn| {
            Box::pin(async move {
                sqlx::query("UPDATE outbox SET delivering_since = ? WHERE id = ?")
                    .bind(ts(at))
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("marking an email in delivery"))?;
                Ok(())
            })
        })
        .await
    }

    async fn email_attempted(&self, id: i64, attempt: EmailAttempt) -> Result<(), StoreError> {
        self.write(|conn| {
            Box::pin(async move {
                let (sent, next, dead, error, event, notice) = match &attempt {
                    EmailAttempt::Sent { at, event } => {
                        (Some(*at), *at, None, None, Some(event), None)
                    }
                    EmailAttempt::Failed { next, error, event } => {
                        (None, *next, None, Some(error), event.as_ref(), None)
                    }
                    EmailAttempt::Dead {
                        at,
                        error,
                        event,
                        notice,
                    } => (
                        None,
                        *at,
                        Some(*at),
                        Some(error),
                        Some(event),
                        notice.as_ref(),
                    ),
                };
                let done = sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, sent_at = ?, next_attempt_at = ?, \
                     dead_at = ?, last_error = COALESCE(?, last_error), claimed_by = NULL, \
                     claimed_until = NULL, delivering_since = NULL WHERE id = ?",
                )
                .bind(ts_opt(sent))
                .bind(ts(next))
                .bind(ts_opt(dead))
                .bind(error)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(db("recording an email attempt"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Database(format!("no outbox email {id}")));
                }
                if let Some(at) = sent {
                    // The server answers again: rows waiting for a retry come due now.
                    sqlx::query(
                        "UPDATE outbox SET next_attempt_at = ? WHERE sent_at IS NULL \
                         AND dead_at IS NULL AND attempts > 0 AND next_attempt_at > ?",
                    )
                    .bind(ts(at))
                    .bind(ts(at))
                    .execute(&mut *conn)
                    .await
                    .map_err(db("bringing waiting emails forward"))?;
                }
                if let Some(notice) = notice {
                    insert_email(conn, notice).await?;
                    sqlx::query("UPDATE outbox SET notice_of = ? WHERE id = last_insert_rowid()")
                        .bind(id)
                        .execute(&mut *conn)
                        .await
                        .map_err(db("marking a dead-letter notice"))?;
                }
                let Some(event) = event else {
                    return Ok(());
                };
                let mut chain = Chain::load(conn).await?;
                chain.append(conn, event).await?;
                chain.save(conn).await
            })
        })
        .await
    }

    async fn outbox_figures(&self, now: DateTime<Utc>) -> Result<OutboxFigures, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FILTER (WHERE sent_at IS NULL AND dead_at IS NULL) AS depth, \
             COUNT(*) FILTER (WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= ?) \
             AS due, COUNT(*) FILTER (WHERE dead_at IS NOT NULL) AS dead FROM outbox",
        )
        .bind(ts(now))
        .fetch_one(&self.reader)
        .await
        .map_err(db("counting the outbox"))?;
        let count = |column| get::<i64>(&row, column).map(|n| n.max(0) as u64);
        Ok(OutboxFigures {
            depth: count("depth")?,
            due: count("due")?,
            dead: count("dead")?,
        })
    }

    async fn unfinished_versions(&self) -> Result<Vec<(RunId, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, content_hash FROM runs WHERE state = 'running'")
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading unfinished runs"))?;
        rows.iter()
            .map(|row| Ok((get(row, "id")?, get(row, "content_hash")?)))
            .collect()
    }

    async fn events_by_action(&self, actions: &[&str]) -> Result<Vec<EventRow>, StoreError> {
        let marks = vec!["?"; actions.len()].join(", ");
        let sql = format!(
            "SELECT {EVENT_COLUMNS} {}",
            EVENTS_BY_ACTION.replace("{marks}", &marks)
        );
        let mut query = sqlx::query(&sql);
        for action in actions {
            query = query.bind(*action);
        }
        let rows = query
            .fetch_all(&self.reader)
            .await
            .map_err(db("reading events"))?;
        rows.iter().map(event_from).collect()
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(|conn| {
            Box::pin(async move {
                let epoch: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?1, ?2, 1, ?3) \
                     ON CONFLICT (name) DO UPDATE SET \
                     epoch = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ?4 \
                     THEN leases.epoch ELSE leases.epoch + 1 END, \
                     holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4 \
                     RETURNING epoch",
                )
                .bind(&name)
                .bind(&holder)
                .bind(ts(lease_end(now, ttl)))
                .bind(ts(now))
                .fetch_optional(&mut *conn)
                .await
                .map_err(db("acquiring a lease"))?;
                Ok(epoch.map(|e| e as u64))
            })
        })
        .await
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(|conn| {
            Box::pin(async move {
                let epoch: Option<i64> = sqlx::query_scalar(
                    "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? \
                     AND expires_at > ? RETURNING epoch",
                )
                .bind(ts(lease_end(now, ttl)))
                .bind(&name)
                .bind(&holder)
                .bind(ts(now))
                .fetch_optional(&mut *conn)
                .await
                .map_err(db("renewing a lease"))?;
                Ok(epoch.map(|e| e as u64))
            })
        })
        .await
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT holder FROM leases WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(db("reading a lease"))?;
        row.map(|row| get(&row, "holder")).transpose()
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(|conn| {
            Box::pin(async move {
                sqlx::query("UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?")
                    .bind(ts(DateTime::<Utc>::UNIX_EPOCH))
                    .bind(&name)
                    .bind(&holder)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("releasing a lease"))?;
                Ok(())
            })
        })
        .await
    }

    async fn claim_run(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunClaim>, StoreError> {
        let (run_id, holder) = (run_id.to_string(), holder.to_string());
        self.write(|conn| {
            Box::pin(async move {
                let row = sqlx::query(
                    "UPDATE runs SET claimed_by = ?1, claimed_until = ?2, \
                     claim_epoch = claim_epoch + 1 WHERE id = ?3 AND state = 'running' \
                     AND (claimed_by IS NULL OR claimed_until <= ?4 OR claimed_by = ?1) \
                     RETURNING id, claim_epoch, cancel_requested_by",
                )
                .bind(&holder)
                .bind(ts(lease_end(now, ttl)))
                .bind(&run_id)
                .bind(ts(now))
                .fetch_optional(&mut *conn)
                .await
                .map_err(db("claiming a run"))?;
                row.as_ref().map(claim_from).transpose()
            })
        })
        .await
    }

    async fn claim_runs(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        scope: ClaimScope,
        limit: u32,
    ) -> Result<Vec<RunClaim>, StoreError> {
        let holder = holder.to_string();
        let which = match scope {
            ClaimScope::Unheld => "(claimed_by IS NULL OR claimed_until <= ?3)",
            ClaimScope::Abandoned => "(claimed_by IS NOT NULL AND claimed_until <= ?3)",
        };
        let sql = format!(
            "UPDATE runs SET claimed_by = ?1, claimed_until = ?2, claim_epoch = claim_epoch + 1 \
             WHERE id IN (SELECT id FROM runs WHERE state = 'running' AND {which} \
             ORDER BY started_at, rowid LIMIT ?4) \
             RETURNING id, claim_epoch, cancel_requested_by, started_at, rowid AS position"
        );
        self.write(|conn| {
            Box::pin(async move {
                let rows = sqlx::query(&sql)
                    .bind(&holder)
                    .bind(ts(lease_end(now, ttl)))
                    .bind(ts(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db("claiming runs"))?;
                let mut claims = Vec::with_capacity(rows.len());
                for row in &rows {
                    let order: (String, i64) = (get(row, "started_at")?, get(row, "position")?);
                    claims.push((order, claim_from(row)?));
                }
                claims.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(claims.into_iter().map(|(_, c)| c).collect())
            })
        })
        .await
    }

    async fn renew_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunClaim>, StoreError> {
        let (run_id, holder) = (run_id.to_string(), holder.to_string());
        self.write(|conn| {
            Box::pin(async move {
                let row = sqlx::query(
                    "UPDATE runs SET claimed_until = ? WHERE id = ? AND claimed_by = ? \
                     AND claim_epoch = ? RETURNING id, claim_epoch, cancel_requested_by",
                )
                .bind(ts(lease_end(now, ttl)))
                .bind(&run_id)
                .bind(&holder)
                .bind(epoch as i64)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db("renewing a run claim"))?;
                row.as_ref().map(claim_from).transpose()
            })
        })
        .await
    }

    async fn release_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
    ) -> Result<Option<String>, StoreError> {
        let (run_id, holder) = (run_id.to_string(), holder.to_string());
        self.write(|conn| {
            Box::pin(async move {
                let cancel: Option<Option<String>> = sqlx::query_scalar(
                    "UPDATE runs SET claimed_by = NULL, claimed_until = NULL WHERE id = ? \
                     AND claimed_by = ? AND claim_epoch = ? \
                     RETURNING CASE WHEN state = 'running' THEN cancel_requested_by END",
                )
                .bind(&run_id)
                .bind(&holder)
                .bind(epoch as i64)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db("releasing a run claim"))?;
                Ok(cancel.flatten())
            })
        })
        .await
    }

    async fn abandon_runs(&self, holder: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let holder = holder.to_string();
        self.write(|conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE runs SET claimed_until = ? WHERE claimed_by = ? AND claimed_until > ?",
                )
                .bind(ts(now))
                .bind(&holder)
                .bind(ts(now))
                .execute(&mut *conn)
                .await
                .map_err(db("abandoning run claims"))?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    async fn request_cancel(&self, run_id: &str, actor: &str) -> Result<bool, StoreError> {
        let (run_id, actor) = (run_id.to_string(), actor.to_string());
        self.write(|conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE runs SET cancel_requested_by = COALESCE(cancel_requested_by, ?) \
                     WHERE id = ? AND state = 'running'",
                )
                .bind(&actor)
                .bind(&run_id)
                .execute(&mut *conn)
                .await
                .map_err(db("requesting a cancellation"))?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }

    async fn claim_emails(
        &self,
        holder: &str,
        due: DateTime<Utc>,
        ttl: Duration,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EmailRow>, StoreError> {
        let holder = holder.to_string();
        let sql = format!(
            "UPDATE outbox SET claimed_by = ?1, claimed_until = ?2 WHERE id IN \
             (SELECT id FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= ?5 \
             AND (claimed_until IS NULL OR claimed_until <= ?3) \
             ORDER BY next_attempt_at, id LIMIT ?4) RETURNING {EMAIL_COLUMNS}"
        );
        self.write(|conn| {
            Box::pin(async move {
                let rows = sqlx::query(&sql)
                    .bind(&holder)
                    .bind(ts(lease_end(now, ttl)))
                    .bind(ts(now))
                    .bind(i64::from(limit))
                    .bind(ts(due))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db("claiming emails"))?;
                let mut emails = rows.iter().map(email_from).collect::<Result<Vec<_>, _>>()?;
                emails.sort_by_key(|a| (a.next_attempt_at, a.id));
                Ok(emails)
            })
        })
        .await
    }
}

fn claim_from(row: &SqliteRow) -> Result<RunClaim, StoreError> {
    Ok(RunClaim {
        run_id: get(row, "id")?,
        epoch: get::<i64>(row, "claim_epoch")?.max(0) as u64,
        cancel_requested: get(row, "cancel_requested_by")?,
    })
}

/// The file path of a `sqlite:` URL, or `None` for an in-memory database.
pub fn database_path(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Database(format!("database URL `{url}`: {e}")))?;
    let path: &Path = options.get_filename();
    if path.to_string_lossy().starts_with("file:sqlx-in-memory-") || url.contains("mode=memory") {
        return Ok(None);
    }
    Ok(Some(path.to_path_buf()))
}

#[cfg(test)]
#[path = "tamper_tests.rs"]
mod tamper_tests;

#[cfg(test)]
mod tests {
    use super::*;

    async fn open_memory() -> (SqliteStore, ()) {
        (SqliteStore::open("sqlite::memory:").await.unwrap(), ())
    }

    async fn open_file() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("patchday.db").display());
        (SqliteStore::open(&url).await.unwrap(), dir)
    }

    mod memory {
        crate::store::conformance::conformance_suite!(super::open_memory);
    }

    mod file {
        crate::store::conformance::conformance_suite!(super::open_file);
    }

    #[tokio::test]
    async fn a_page_of_event_texts_holds_details_with_a_record_separator() {
        // Details are joined by U+001E for the page; a details text holding one (not JSON:
        // written by hand, with the JSON indexes dropped first) is read row by row instead,
        // every event once, in order.
        let (store, _dir) = open_file().await;
        for (i, id) in ["r1", "r2", "r3"].into_iter().enumerate() {
            let at = crate::store::conformance::t0() + chrono::Duration::seconds(i as i64);
            let run = crate::store::conformance::run_row(id, "monthly", None, at);
            let started = crate::store::conformance::event("run.started", Some(id), None, at);
            store.create_run(run, vec![], started).await.unwrap();
        }
        let joined = store.event_texts_after(0, 10).await.unwrap();
        assert_eq!(joined.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            joined[1].details, r#"{"n":1,"why":"test"}"#,
            "canonical text"
        );
        store
            .execute_raw(
                "DROP TRIGGER events_no_update; DROP INDEX events_runbook; \
                 DROP INDEX events_run_steps; \
                 UPDATE events SET details = 'a' || char(30) || 'b' WHERE seq = 2",
            )
            .await
            .unwrap();
        let page = store.event_texts_after(0, 10).await.unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(page[1].details, "a\u{1e}b");
        assert_eq!(page[0], joined[0]);
        assert_eq!(page[2], joined[2]);
    }

    #[tokio::test]
    async fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        crate::store::conformance::persists_across_reopen(
            || async { SqliteStore::open(&url).await.unwrap() },
            |s: SqliteStore| async move { s.close().await },
        )
        .await;
    }

    /// Throughput of `commit` on a file with `synchronous=FULL`: a fan-out of 2,000 hosts moved
    /// pending → running → succeeded in batches of 100 changes, and a chain of 300 single-change
    /// commits, against the floor of as many bare one-row commits. Prints the figures (run with
    /// `--release --nocapture` for the real numbers; sizes are kept small for the debug suite).
    #[tokio::test]
    async fn commit_throughput_figures() {
        let (store, dir) = open_file().await;
        let floor_url = format!("sqlite://{}", dir.path().join("floor.db").display());
        crate::store::conformance::commit_throughput("sqlite", &store, |n| async move {
            SqliteStore::commit_floor(&floor_url, n).await.unwrap();
        })
        .await;
    }

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|(v, d, _)| format!("{v:04}_{d}.sql"))
            .collect();
        assert_eq!(files, listed);
        for ((_, _, sql), name) in MIGRATIONS.iter().zip(&files) {
            assert_eq!(*sql, std::fs::read_to_string(dir.join(name)).unwrap());
        }
    }

    #[tokio::test]
    async fn pragmas_are_set_on_every_connection() {
        let (store, _dir) = open_file().await;
        for pool in [&store.writer, &store.reader] {
            let mut conns = Vec::new();
            for _ in 0..2.min(pool.options().get_max_connections()) {
                conns.push(pool.acquire().await.unwrap());
            }
            for conn in &mut conns {
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(mode, "wal");
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(sync, 2, "synchronous=FULL");
                let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(fk, 1);
                let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(busy, BUSY_TIMEOUT.as_millis() as i64);
            }
        }
    }

    #[tokio::test]
    async fn open_existing_does_not_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        let url = format!("sqlite://{}", path.display());
        let err = SqliteStore::open_existing(&url).await.unwrap_err();
        assert!(err.to_string().contains("no such database file"), "{err}");
        assert!(!path.exists());
        assert_eq!(database_path(&url).unwrap(), Some(path));
        assert_eq!(database_path("sqlite::memory:").unwrap(), None);
    }
}
