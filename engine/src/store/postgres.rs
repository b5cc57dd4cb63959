//! The PostgreSQL backend of [`Store`] (for several daemons sharing work, DESIGN §5).
//!
//! - One pool of connections serves reads and writes. Every write is one transaction that first
//!   locks the single `chain_head` row (`SELECT ... FOR UPDATE`), then writes. That lock
//!   serializes writers across connections, processes and daemons: audit events get contiguous
//!   `seq` numbers and one `prev_hash` chain, and because every writer takes it first, writers
//!   never deadlock on step rows. Transactions run at READ COMMITTED: a step write re-checks its
//!   expected state on the latest committed row, so a concurrent move shows as a conflict.
//! - Tables live in the first schema of the connection's `search_path` (the database user's
//!   default, or `?options=-c%20search_path%3D<schema>` in the URL). The schema comes from
//!   embedded migrations (`engine/migrations/postgres/`), applied on open; sqlx takes an
//!   advisory lock while migrating, so daemons starting together do not race.
//! - Timestamps are `timestamptz`, sent and read in the binary protocol as microseconds, so
//!   they round-trip exactly at microsecond precision (finer is truncated on write, as in
//!   [`crate::audit::format_instant`]).
//! - JSON (`snapshot`, `outputs`, event `details`, recipients) is serde_json text in `TEXT`
//!   columns, not `jsonb`: jsonb reorders keys and reformats numbers, and the audit hash must
//!   recompute from what was written.
//! - Batches are written with multi-row statements, and a batch that conflicts is re-run row by
//!   row to name the conflicting row, exactly as the SQLite backend does.
//! - Several daemons: leases, run claims and outbox claims are single statements that lock only
//!   their own rows (never the chain head); batch claims select with `FOR UPDATE SKIP LOCKED`,
//!   so concurrent claimers take disjoint rows without waiting. A fenced commit reads the run's
//!   (or lease's) epoch `FOR SHARE` after the chain lock: a claim cannot move it until the commit
//!   ends, and a claim committed first makes the commit fail as [`StoreError::Fenced`].

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, PgTypeInfo,
    PgValueFormat, PgValueRef, Postgres,
};
use sqlx::{Connection as _, Row as _};

use super::codec::{
    details_text, from_sqlx, json_text, node_from, node_index, parse_json, parse_run_state,
    parse_step_state, run_state_str, step_state_str, through_sqlx,
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
/// `engine/migrations/postgres/` is named `<version>_<description>.sql` and listed here (a test
/// checks the two agree).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "decisions",
        include_str!("../../migrations/postgres/0002_decisions.sql"),
    ),
    (
        3,
        "claims",
        include_str!("../../migrations/postgres/0003_claims.sql"),
    ),
    (
        4,
        "delivering",
        include_str!("../../migrations/postgres/0004_delivering.sql"),
    ),
    (
        5,
        "lasting",
        include_str!("../../migrations/postgres/0005_lasting.sql"),
    ),
    (
        6,
        "auth",
        include_str!("../../migrations/postgres/0006_auth.sql"),
    ),
    (
        8,
        "linear",
        include_str!("../../migrations/postgres/0008_linear.sql"),
    ),
    (
        14,
        "feed",
        include_str!("../../migrations/postgres/0014_feed.sql"),
    ),
    (
        15,
        "overview",
        include_str!("../../migrations/postgres/0015_overview.sql"),
    ),
    (
        16,
        "audit",
        include_str!("../../migrations/postgres/0016_audit.sql"),
    ),
    (
        17,
        "figures",
        include_str!("../../migrations/postgres/0017_figures.sql"),
    ),
    (
        18,
        "session_source",
        include_str!("../../migrations/postgres/0018_session_source.sql"),
    ),
    (
        19,
        "merkle",
        include_str!("../../migrations/postgres/0019_merkle.sql"),
    ),
    (
        20,
        "outbox_keys",
        include_str!("../../migrations/postgres/0020_outbox_keys.sql"),
    ),
];

/// Connections per store (per daemon). Writers hold one while they wait for the chain lock.
const MAX_CONNECTIONS: u32 = 5;

/// How long a caller waits for a free connection (or for the server at open).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The store on PostgreSQL. Cheap to share behind an `Arc` (or to clone: clones share the
/// pool); close it with [`PostgresStore::close`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
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

fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Database(format!("database URL `{url}`: {e}")))?
        .application_name("patchday"))
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:5432/patchday`, optionally
    /// `?options=-c%20search_path%3D<schema>`) and applies the migrations.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let store = Self::connect(url).await?;
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        migrator
            .run(&store.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(store)
    }

    /// Connects to the database at `url` without running migrations (the schema must exist).
    pub async fn open_existing(url: &str) -> Result<PostgresStore, StoreError> {
        Self::connect(url).await
    }

    async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options(url)?)
            .await
            .map_err(db("connecting to PostgreSQL"))?;
        Ok(PostgresStore { pool })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The floor the benchmarks compare with: `commits` bare PostgreSQL commits (one one-row
    /// `INSERT` each, autocommit) on one connection to `url`, with the same driver, into a
    /// table `floor` (created if missing) in the connection's schema.
    pub async fn commit_floor(url: &str, commits: usize) -> Result<(), StoreError> {
        let mut conn = PgConnection::connect_with(&options(url)?)
            .await
            .map_err(db("connecting for the floor"))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS floor (n BIGINT NOT NULL)")
            .execute(&mut conn)
            .await
            .map_err(db("creating the floor table"))?;
        for n in 0..commits {
            sqlx::query("INSERT INTO floor (n) VALUES ($1)")
                .bind(n as i64)
                .execute(&mut conn)
                .await
                .map_err(db("floor commit"))?;
        }
        conn.close()
            .await
            .map_err(db("closing the floor connection"))
    }

    /// Runs `work` in one transaction that holds the chain lock: commits (writing the chain
    /// head back if events were appended) if it succeeds, rolls back if not.
    async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: for<'c> FnOnce(
            &'c mut PgConnection,
            &'c mut Chain,
        ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>,
    {
        let mut tx = self.pool.begin().await.map_err(db("BEGIN"))?;
        let mut chain = Chain::lock(&mut tx).await?;
        match work(&mut tx, &mut chain).await {
            Ok(value) => {
                chain.save(&mut tx).await?;
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

/// `timestamptz`'s type id (a built-in type: the same in every database).
const TIMESTAMPTZ: Oid = Oid(1184);

/// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in microseconds since the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// An instant as a `timestamptz` parameter or column: microseconds since 2000-01-01 on the
/// wire (binary protocol), so nothing is lost or rounded between here and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ts(DateTime<Utc>);

impl sqlx::Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.oid() == Some(TIMESTAMPTZ)
    }
}

impl sqlx::Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let micros = self
            .0
            .timestamp_micros()
            .checked_sub(PG_EPOCH_MICROS)
            .ok_or_else(|| format!("instant out of range for PostgreSQL: {}", self.0))?;
        <i64 as sqlx::Encode<Postgres>>::encode(micros, buf)
    }

    fn size_hint(&self) -> usize {
        std::mem::size_of::<i64>()
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.format() != PgValueFormat::Binary {
            return Err("timestamptz in text format (expected binary)".into());
        }
        let micros = <i64 as sqlx::Decode<Postgres>>::decode(value)?;
        micros
            .checked_add(PG_EPOCH_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .map(Ts)
            .ok_or_else(|| format!("timestamptz out of range: {micros} µs").into())
    }
}

fn ts(at: DateTime<Utc>) -> Ts {
    Ts(at)
}

fn ts_opt(at: Option<DateTime<Utc>>) -> Option<Ts> {
    at.map(Ts)
}

fn get<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Database(format!("reading column `{column}`: {e}")))
}

fn get_ts(row: &PgRow, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
    Ok(get::<Ts>(row, column)?.0)
}

fn get_ts_opt(row: &PgRow, column: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(get::<Option<Ts>>(row, column)?.map(|t| t.0))
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
    "FROM runs WHERE runbook = $1 ORDER BY started_at DESC, position DESC LIMIT $2";
const STATE_RUNS: &str =
    "FROM runs WHERE state = $1 ORDER BY started_at DESC, position DESC LIMIT $2";
const RECENT_RUNS: &str = "FROM runs ORDER BY started_at DESC, position DESC LIMIT $1";
const EVENTS_BY_ACTION: &str = "FROM events WHERE action = ANY($1) ORDER BY seq";

const STEP_FIGURES: &str = "SELECT r.runbook, f.step, f.state, f.bucket::BIGINT AS bucket, \
    SUM(f.row_count)::BIGINT AS n, SUM(f.millis)::BIGINT AS millis \
    FROM runs AS r JOIN step_figures AS f ON f.run_id = r.id \
    WHERE r.id IN (SELECT id FROM runs ORDER BY started_at DESC, position DESC LIMIT $1) \
    GROUP BY r.runbook, f.step, f.state, f.bucket HAVING SUM(f.row_count) > 0";

const RUN_STEP_ROWS: &str = "WHERE run_id = $1 AND host = '' ORDER BY position";
const RUN_HOST_ROWS: &str =
    "WHERE run_id = $1 AND host <> '' AND state = $2 ORDER BY position LIMIT $3 OFFSET $4";
const RUN_ROW_COUNTS: &str = "SELECT step, state, SUM(row_count)::BIGINT AS n FROM step_figures \
    WHERE run_id = $1 GROUP BY step, state HAVING SUM(row_count) > 0";
const RUN_EVENT_COUNT: &str = "SELECT COUNT(*) FROM events WHERE run_id = $1";
const RUN_EVENTS_PAGE: &str = "FROM events WHERE run_id = $1 ORDER BY seq LIMIT $2 OFFSET $3";
const RUN_STEP_EVENTS: &str =
    "FROM events WHERE run_id = $1 AND details::jsonb -> 'host' IS NULL ORDER BY seq";

const RUNS_AFTER: &str = "FROM runs WHERE (started_at, position) < \
    (SELECT started_at, position FROM runs WHERE id = $1) \
    ORDER BY started_at DESC, position DESC LIMIT $2";
const RUN_STEPS_AFTER: &str =
    "FROM steps WHERE run_id = $1 AND position > $2 ORDER BY position LIMIT $3";
const RUN_EVENTS_AFTER: &str = "FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// (name, SQL) of every hot query in [`super::HOT_QUERIES`] order, parameters as literals.
fn hot_queries() -> Vec<(&'static str, String)> {
    let names: Vec<&str> = super::HOT_QUERIES.iter().map(|(n, _)| *n).collect();
    let sql = [
        LAST_CYCLES.to_string(),
        format!(
            "SELECT {EVENT_COLUMNS} {}",
            EVENTS_BY_ACTION.replace("$1", "ARRAY['cycle.missed', 'cycle.skipped']")
        ),
        RUNS_AWAITING_INPUT.to_string(),
        RUN_COUNTS.to_string(),
        format!("SELECT {RUN_COLUMNS} {}", RECENT_RUNS.replace("$1", "50")),
        format!("SELECT {STEP_COLUMNS} FROM steps WHERE run_id = 'r' ORDER BY position"),
        format!(
            "SELECT {RUN_COLUMNS} {}",
            RUNBOOK_RUNS.replace("$1", "'r'").replace("$2", "20")
        ),
        format!(
            "SELECT {RUN_COLUMNS} {}",
            STATE_RUNS.replace("$1", "'failed'").replace("$2", "20")
        ),
        explainable(audit_sql(&super::AUDIT_PLAN_QUERIES[0])),
        explainable(audit_sql(&super::AUDIT_PLAN_QUERIES[1])),
        explainable(audit_sql(&super::AUDIT_PLAN_QUERIES[2])),
        STEP_FIGURES.replace("$1", "1000"),
        format!(
            "SELECT {STEP_COLUMNS} FROM steps {}",
            RUN_STEP_ROWS.replace("$1", "'r'")
        ),
        format!(
            "SELECT {STEP_COLUMNS} FROM steps {}",
            RUN_HOST_ROWS
                .replace("$1", "'r'")
                .replace("$2", "'failed'")
                .replace("$3", "50")
                .replace("$4", "0")
        ),
        RUN_ROW_COUNTS.replace("$1", "'r'"),
        RUN_EVENT_COUNT.replace("$1", "'r'"),
        format!(
            "SELECT {EVENT_COLUMNS} {}",
            RUN_EVENTS_PAGE
                .replace("$1", "'r'")
                .replace("$2", "50")
                .replace("$3", "0")
        ),
        format!(
            "SELECT {EVENT_COLUMNS} {}",
            RUN_STEP_EVENTS.replace("$1", "'r'")
        ),
        format!(
            "SELECT {RUN_COLUMNS} {}",
            RUNS_AFTER.replace("$1", "'r'").replace("$2", "50")
        ),
        format!(
            "SELECT position, {STEP_COLUMNS} {}",
            RUN_STEPS_AFTER
                .replace("$1", "'r'")
                .replace("$2", "0")
                .replace("$3", "50")
        ),
        format!(
            "SELECT {EVENT_COLUMNS} {}",
            RUN_EVENTS_AFTER
                .replace("$1", "'r'")
                .replace("$2", "0")
                .replace("$3", "50")
        ),
    ];
    names.into_iter().zip(sql).collect()
}

/// The audit browser's query on this backend ([`super::audit_query_sql`]).
fn audit_sql(query: &AuditQuery) -> (String, Vec<AuditBind>) {
    super::audit_query_sql(
        query,
        EVENT_COLUMNS,
        |n| format!("${n}"),
        |a, b| {
            // `= ANY(ARRAY(...))`: the runs' ids as one value, so that the planner can OR the
            // two indexes (an `IN` subquery is a filter it runs per row).
            format!(
                "(run_id = ANY(ARRAY(SELECT id FROM runs WHERE runbook = {a})) \
                 OR (details::jsonb ->> 'runbook') = {b})"
            )
        },
    )
}

/// `sql` with its placeholders replaced by the values as literals, for `EXPLAIN` (which takes
/// no parameters). The values are the fixed ones of [`super::AUDIT_PLAN_QUERIES`].
fn explainable((mut sql, binds): (String, Vec<AuditBind>)) -> String {
    for (n, value) in binds.iter().enumerate().rev() {
        let literal = match value {
            AuditBind::Text(text) => format!("'{}'", text.replace('\'', "''")),
            AuditBind::Int(n) => n.to_string(),
            AuditBind::At(at) => format!("'{}'::timestamptz", at.to_rfc3339()),
        };
        sql = sql.replace(&format!("${}", n + 1), &literal);
    }
    sql
}

fn run_from(row: &PgRow) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: get(row, "id")?,
        runbook: get(row, "runbook")?,
        cycle: get(row, "cycle")?,
        content_hash: get(row, "content_hash")?,
        commit: get(row, "git_commit")?,
        snapshot: parse_json(&get::<String>(row, "snapshot")?)?,
        state: parse_run_state(&get::<String>(row, "state")?)?,
        started_at: get_ts(row, "started_at")?,
        finished_at: get_ts_opt(row, "finished_at")?,
        rerun: get(row, "rerun_reason")?,
    })
}

const STEP_COLUMNS: &str =
    "run_id, step, host, state, attempt, not_before, started_at, finished_at, outputs, reason";

fn step_from(row: &PgRow) -> Result<StepRow, StoreError> {
    Ok(StepRow {
        run_id: get(row, "run_id")?,
        step: get(row, "step")?,
        host: get(row, "host")?,
        state: parse_step_state(&get::<String>(row, "state")?)?,
        attempt: get::<i64>(row, "attempt")?
            .try_into()
            .map_err(|_| StoreError::Database("step attempt out of range".into()))?,
        not_before: get_ts_opt(row, "not_before")?,
        started_at: get_ts_opt(row, "started_at")?,
        finished_at: get_ts_opt(row, "finished_at")?,
        outputs: parse_json(&get::<String>(row, "outputs")?)?,
        reason: get(row, "reason")?,
    })
}

const EVENT_COLUMNS: &str = "seq, at, actor, action, run_id, step_id, details, prev_hash, hash";

fn event_from(row: &PgRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: get(row, "seq")?,
        at: get_ts(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        run_id: get(row, "run_id")?,
        step_id: get(row, "step_id")?,
        details: parse_json(&get::<String>(row, "details")?)?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

fn event_text_from(row: &PgRow) -> Result<EventText, StoreError> {
    Ok(EventText {
        seq: get(row, "seq")?,
        at: audit::format_instant(get_ts(row, "at")?),
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        run_id: get(row, "run_id")?,
        step_id: get(row, "step_id")?,
        details: get(row, "details")?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

const EMAIL_COLUMNS: &str = "id, run_id, recipients, subject, body, html, created_at, attempts, next_attempt_at, sent_at, \
     delivering_since, dead_at, last_error, notice_of, attachments, idempotency_key";

fn email_from(row: &PgRow) -> Result<EmailRow, StoreError> {
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
            created_at: get_ts(row, "created_at")?,
            attachments: super::attachments_from(get(row, "attachments")?)?,
            key: get(row, "idempotency_key")?,
        },
        attempts: get::<i64>(row, "attempts")?
            .try_into()
            .map_err(|_| StoreError::Database("email attempts out of range".into()))?,
        next_attempt_at: get_ts(row, "next_attempt_at")?,
        sent_at: get_ts_opt(row, "sent_at")?,
        delivering_since: get_ts_opt(row, "delivering_since")?,
        dead_at: get_ts_opt(row, "dead_at")?,
        last_error: get(row, "last_error")?,
        notice_of: get(row, "notice_of")?,
    })
}

const DECISION_COLUMNS: &str =
    "seq, run_id, step, host, recipient, choice, comment, at, actor, source_ip, nonce";

fn decision_from(row: &PgRow) -> Result<DecisionRow, StoreError> {
    Ok(DecisionRow {
        seq: get(row, "seq")?,
        decision: NewDecision {
            run_id: get(row, "run_id")?,
            step: get(row, "step")?,
            host: get(row, "host")?,
            recipient: get(row, "recipient")?,
            choice: get(row, "choice")?,
            comment: get(row, "comment")?,
            at: get_ts(row, "at")?,
            actor: get(row, "actor")?,
            source_ip: get(row, "source_ip")?,
            nonce: get(row, "nonce")?,
        },
    })
}

const SESSION_COLUMNS: &str = "id_hash, email, via, groups, created_at, last_seen_at, \
     expires_at, revoked_at, link_nonce, source_ip";

fn session_from(row: &PgRow) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        session: NewSession {
            id_hash: get(row, "id_hash")?,
            email: get(row, "email")?,
            via: get(row, "via")?,
            groups: serde_json::from_str(&get::<String>(row, "groups")?)
                .map_err(|e| StoreError::Database(format!("session groups: {e}")))?,
            created_at: get_ts(row, "created_at")?,
            expires_at: get_ts(row, "expires_at")?,
            link_nonce: get(row, "link_nonce")?,
            source_ip: get(row, "source_ip")?,
        },
        last_seen_at: get_ts(row, "last_seen_at")?,
        revoked_at: get_ts_opt(row, "revoked_at")?,
    })
}

// --- writes (inside a transaction holding the chain lock) ------------------------------------

/// Opens or closes a session; `LinkUsed` if the link that opens it opened another already.
async fn write_session(conn: &mut PgConnection, write: &SessionWrite) -> Result<(), StoreError> {
    match write {
        SessionWrite::Open(s) => {
            let groups = serde_json::to_string(&s.groups).expect("strings serialize");
            let done = sqlx::query(
                "INSERT INTO sessions (id_hash, email, via, groups, created_at, last_seen_at, \
                 expires_at, link_nonce, source_ip) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&s.id_hash)
            .bind(&s.email)
            .bind(&s.via)
            .bind(groups)
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
                "UPDATE sessions SET revoked_at = $1 WHERE id_hash = $2 AND revoked_at IS NULL",
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

/// Whether `err` is a violation of the one-run-per-runbook-and-cycle index.
fn is_duplicate_cycle(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|e| {
        e.kind() == sqlx::error::ErrorKind::UniqueViolation
            && e.constraint() == Some("runs_runbook_cycle")
    })
}

const INSERT_STEP: &str = "INSERT INTO steps (run_id, step, host, state, attempt, not_before, \
    started_at, finished_at, outputs, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (run_id, step, host) DO NOTHING";

/// Inserts a step row; `Conflict` if it exists, `NoSuchRun` if its run does not.
async fn insert_step(conn: &mut PgConnection, row: &StepRow) -> Result<(), StoreError> {
    let done = sqlx::query(INSERT_STEP)
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
/// decided on the row already, `NoSuchRun` if its run does not exist. `ON CONFLICT DO NOTHING`
/// keeps the transaction usable (no error) so that the refused key can be named. Writers are
/// serialized by the chain lock, so no concurrent insert is in flight here.
async fn insert_decision(conn: &mut PgConnection, d: &NewDecision) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO decisions (run_id, step, host, recipient, choice, comment, at, actor, \
         source_ip, nonce) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT DO NOTHING",
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
        let used = sqlx::query("SELECT 1 FROM decisions WHERE nonce = $1")
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
    conn: &mut PgConnection,
    expect: StepState,
    row: &StepRow,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE steps SET state = $1, attempt = $2, not_before = $3, started_at = $4, \
         finished_at = $5, outputs = $6, reason = $7 \
         WHERE run_id = $8 AND step = $9 AND host = $10 AND state = $11",
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

/// Finishes (or otherwise moves) a run; `NoSuchRun` if it does not exist.
async fn update_run(
    conn: &mut PgConnection,
    run_id: &str,
    state: RunState,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let finished = (state != RunState::Running).then(|| ts(at));
    let done = sqlx::query("UPDATE runs SET state = $1, finished_at = $2 WHERE id = $3")
        .bind(run_state_str(state))
        .bind(finished)
        .bind(run_id)
        .execute(&mut *conn)
        .await
        .map_err(db("updating a run"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NoSuchRun(run_id.to_string()));
    }
    Ok(())
}

/// The audit chain's head during one write transaction, which holds its row lock: events are
/// appended after it, and it is written back once, before the transaction commits.
struct Chain {
    seq: i64,
    hash: String,
    dirty: bool,
}

impl Chain {
    /// Locks the chain head row for the rest of the transaction and reads it. Every writer
    /// calls this first, so writers queue here, in one order, before touching anything else.
    async fn lock(conn: &mut PgConnection) -> Result<Chain, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("locking the chain head"))?
            .ok_or_else(|| {
                StoreError::Database(
                    "the chain_head row is missing: the database was altered by hand".into(),
                )
            })?;
        Ok(Chain {
            seq: get(&row, "seq")?,
            hash: get(&row, "hash")?,
            dirty: false,
        })
    }

    /// Assigns the next `seq` to `event` and computes its hash: (seq, prev_hash, hash).
    fn next(&mut self, event: &NewEvent) -> (i64, String, String) {
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
        let prev = std::mem::replace(&mut self.hash, hash.clone());
        self.seq = seq;
        self.dirty = true;
        (seq, prev, hash)
    }

    async fn append(
        &mut self,
        conn: &mut PgConnection,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let (seq, prev, hash) = self.next(event);
        sqlx::query(
            "INSERT INTO events (seq, at, actor, action, run_id, step_id, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(seq)
        .bind(ts(event.at))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.run_id)
        .bind(&event.step_id)
        .bind(details_text(&event.details))
        .bind(prev)
        .bind(hash)
        .execute(&mut *conn)
        .await
        .map_err(db("appending an audit event"))?;
        Ok(())
    }

    async fn save(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        sqlx::query("UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.seq)
            .bind(&self.hash)
            .execute(&mut *conn)
            .await
            .map_err(db("writing the chain head"))?;
        Ok(())
    }
}

async fn insert_email(conn: &mut PgConnection, email: &NewEmail) -> Result<(), StoreError> {
    let to = serde_json::to_string(&email.to).expect("strings serialize");
    sqlx::query(
        "INSERT INTO outbox (run_id, recipients, subject, body, html, created_at, \
         next_attempt_at, attachments, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&email.run_id)
    .bind(to)
    .bind(&email.subject)
    .bind(&email.body)
    .bind(&email.html)
    .bind(ts(email.created_at))
    .bind(ts(email.created_at))
    .bind(super::attachments_column(email))
    .bind(&email.key)
    .execute(&mut *conn)
    .await
    .map_err(db("queueing an email"))?;
    Ok(())
}

/// Refuses the batch ([`StoreError::Fenced`]) if a fence it carries names a stale epoch. The
/// epoch row is read `FOR SHARE`: no claim can move it before this transaction ends.
async fn check_fences(conn: &mut PgConnection, changes: &[Change]) -> Result<(), StoreError> {
    for fence in fences(changes) {
        let (what, current, epoch) = match fence {
            Fence::Run { run_id, epoch } => {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT claim_epoch FROM runs WHERE id = $1 FOR SHARE")
                        .bind(run_id)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(db("reading a run's epoch"))?;
                let current = current.ok_or_else(|| StoreError::NoSuchRun(run_id.clone()))?;
                (format!("run {run_id}"), current, *epoch)
            }
            Fence::Lease { name, epoch } => {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT epoch FROM leases WHERE name = $1 FOR SHARE")
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

async fn apply(
    conn: &mut PgConnection,
    chain: &mut Chain,
    changes: &[Change],
) -> Result<(), StoreError> {
    check_fences(conn, changes).await?;
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
            update_run(conn, run_id, *state, *at).await?;
        }
        for event in &change.events {
            chain.append(conn, event).await?;
        }
        for email in &change.emails {
            insert_email(conn, email).await?;
        }
    }
    Ok(())
}

// --- the batched write path ------------------------------------------------------------------
//
// As in the SQLite backend: the fast path writes a batch with multi-row statements (up to 64
// rows each, in power-of-two chunks so that few statement texts reach each connection's
// prepared-statement cache): step writes in their order, grouped into runs of inserts or updates
// with distinct keys; then run transitions; then events; then emails. If a multi-row step write
// changes fewer rows than it should (a conflict) or names a missing run, the transaction is
// rolled back and the batch is re-run row by row by [`apply`], which reports exactly which row
// failed. Each statement is a network round trip here, so batching matters even more.

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

/// `head` + `rows` tuples of `columns` numbered placeholders (`($1, $2), ($3, $4)`) + `tail`.
fn multi_row_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + rows * columns * 5 + tail.len());
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row > 0 { ", (" } else { "(" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            write!(sql, "${}", row * columns + column + 1).expect("writing to a String");
        }
        sql.push(')');
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
    created_at, next_attempt_at, attachments, idempotency_key) VALUES ";
const INSERT_EMAILS_TAIL: &str = " ON CONFLICT (idempotency_key) DO NOTHING";

/// A step write: `None` inserts, `Some(expected state)` updates.
type StepOp<'a> = (Option<StepState>, &'a StepRow);

/// Writes step rows in order, as multi-row statements over runs of one kind with distinct keys.
async fn write_step_ops(conn: &mut PgConnection, ops: &[StepOp<'_>]) -> Result<(), Fast> {
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
async fn write_steps(conn: &mut PgConnection, ops: &[StepOp<'_>]) -> Result<(), Fast> {
    let insert = ops.first().is_some_and(|op| op.0.is_none());
    for chunk in chunks(ops) {
        let sql = if insert {
            multi_row_sql(INSERT_STEPS_HEAD, 10, chunk.len(), INSERT_STEPS_TAIL)
        } else {
            multi_row_sql(UPDATE_STEPS_HEAD, 11, chunk.len(), UPDATE_STEPS_TAIL)
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

async fn apply_fast(
    conn: &mut PgConnection,
    chain: &mut Chain,
    changes: &[Change],
) -> Result<(), Fast> {
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
        update_run(conn, run_id, *state, *at).await?;
    }

    // The last events statement also writes the chain head back (one round trip fewer).
    let events: Vec<&NewEvent> = changes.iter().flat_map(|c| &c.events).collect();
    let mut left = events.len();
    for chunk in chunks(&events) {
        left -= chunk.len();
        let insert = multi_row_sql(INSERT_EVENTS_HEAD, 9, chunk.len(), "");
        let last = left == 0;
        let sql = if last {
            let n = chunk.len() * 9;
            format!(
                "WITH appended AS ({insert}) UPDATE chain_head SET seq = ${}, hash = ${} \
                 WHERE id = 1",
                n + 1,
                n + 2
            )
        } else {
            insert
        };
        let mut query = sqlx::query(&sql);
        for event in chunk {
            let (seq, prev, hash) = chain.next(event);
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
        if last {
            query = query.bind(chain.seq).bind(chain.hash.clone());
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(db("appending audit events"))?;
        if last {
            chain.dirty = false;
        }
    }

    let emails: Vec<&NewEmail> = changes.iter().flat_map(|c| &c.emails).collect();
    for chunk in chunks(&emails) {
        let sql = multi_row_sql(INSERT_EMAILS_HEAD, 9, chunk.len(), INSERT_EMAILS_TAIL);
        let mut query = sqlx::query(&sql);
        for email in chunk {
            query = query
                .bind(&email.run_id)
                .bind(serde_json::to_string(&email.to).expect("strings serialize"))
                .bind(&email.subject)
                .bind(&email.body)
                .bind(&email.html)
                .bind(ts(email.created_at))
                .bind(ts(email.created_at))
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
    conn: &mut PgConnection,
    chain: &mut Chain,
    run: &RunRow,
    steps: &[StepRow],
    event: &NewEvent,
    fast: bool,
) -> Result<(), Fast> {
    sqlx::query(
        "INSERT INTO runs (id, runbook, cycle, content_hash, git_commit, snapshot, state, \
         started_at, finished_at, rerun_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
    .map_err(|e| match &run.cycle {
        Some(cycle) if is_duplicate_cycle(&e) => StoreError::DuplicateCycle {
            runbook: run.runbook.clone(),
            cycle: cycle.clone(),
        },
        _ => StoreError::Database(format!("creating run {}: {e}", run.id)),
    })?;
    if fast {
        let ops: Vec<StepOp<'_>> = steps.iter().map(|row| (None, row)).collect();
        write_step_ops(conn, &ops).await?;
    } else {
        for step in steps {
            insert_step(conn, step).await?;
        }
    }
    Ok(chain.append(conn, event).await?)
}

/// Records a feed event as published: a new UID starts at SEQUENCE 0; a moved or re-statused
/// one gets the next; an unchanged one is left alone.
const FEED_UPSERT: &str = "INSERT INTO feed_events (uid, start, status, sequence) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (uid) DO UPDATE SET start = excluded.start, status = excluded.status, \
             sequence = feed_events.sequence + 1 \
             WHERE feed_events.start <> excluded.start OR feed_events.status <> excluded.status";

const FEED_SEQUENCE: &str = "SELECT sequence FROM feed_events WHERE uid = $1";

// --- the trait ------------------------------------------------------------------------------

impl Store for PostgresStore {
    async fn create_run(
        &self,
        run: RunRow,
        steps: Vec<StepRow>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        let outcome = self
            .write(|conn, chain| {
                Box::pin(async move {
                    match create(conn, chain, &run, &steps, &event, true).await {
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
                self.write(|conn, chain| {
                    Box::pin(async move {
                        create(conn, chain, &run, &steps, &event, false)
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
            .write(|conn, chain| {
                Box::pin(async move {
                    match apply_fast(conn, chain, &changes).await {
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
                self.write(|conn, chain| {
                    Box::pin(async move { apply(conn, chain, &changes).await })
                })
                .await
            }
        }
    }

    async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a run"))?;
        row.as_ref().map(run_from).transpose()
    }

    async fn runs(&self, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} {RECENT_RUNS}"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading runs"))?;
        rows.iter().map(run_from).collect()
    }

    async fn last_cycles(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(LAST_CYCLES)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the last cycles"))?;
        rows.iter()
            .map(|row| Ok((get(row, "runbook")?, get(row, "cycle")?)))
            .collect()
    }

    async fn run_counts(&self) -> Result<Vec<(RunState, u64)>, StoreError> {
        let rows = sqlx::query(RUN_COUNTS)
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a runbook's runs"))?;
        rows.iter().map(run_from).collect()
    }

    async fn runs_in_state(&self, state: RunState, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} {STATE_RUNS}"))
            .bind(state.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading runs by state"))?;
        rows.iter().map(run_from).collect()
    }

    async fn runs_awaiting_input(&self) -> Result<Vec<RunId>, StoreError> {
        let rows = sqlx::query(RUNS_AWAITING_INPUT)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading runs awaiting input"))?;
        rows.iter().map(|row| get(row, "run_id")).collect()
    }

    async fn step_figures(&self, runs: u32) -> Result<Vec<StepFigure>, StoreError> {
        let rows = sqlx::query(STEP_FIGURES)
            .bind(i64::from(runs))
            .fetch_all(&self.pool)
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
        let mut conn = self.pool.begin().await.map_err(db("explaining a query"))?;
        // A small table is read whole by the planner's choice; what is checked is that the
        // query can use its index, as it does once the history is long.
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .map_err(db("explaining a query"))?;
        let mut out = Vec::new();
        for (name, sql) in hot_queries() {
            let rows = sqlx::query(&format!("EXPLAIN {sql}"))
                .fetch_all(&mut *conn)
                .await
                .map_err(db("explaining a query"))?;
            let mut plan = Vec::new();
            for row in &rows {
                plan.push(get::<String>(row, "QUERY PLAN")?);
            }
            out.push((name, plan.join("\n")));
        }
        conn.rollback().await.map_err(db("explaining a query"))?;
        Ok(out)
    }

    async fn runs_after(&self, after: &str, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} {RUNS_AFTER}"))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a page of a run's events"))?;
        rows.iter().map(event_from).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' ORDER BY started_at, position"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading unfinished runs"))?;
        rows.iter().map(run_from).collect()
    }

    async fn steps(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {STEP_COLUMNS} FROM steps WHERE run_id = $1 ORDER BY position"
        ))
        .bind(run_id)
        .try_map(|row| step_from(&row).map_err(through_sqlx))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx("reading steps"))
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events");
        let mut conditions = Vec::new();
        if filter.run_id.is_some() {
            conditions.push(format!("run_id = ${}", conditions.len() + 1));
        }
        if filter.since.is_some() {
            conditions.push(format!("at >= ${}", conditions.len() + 1));
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
            .fetch_all(&self.pool)
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
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a page of audit events"))?;
        rows.iter().map(event_text_from).collect()
    }

    async fn event_hashes(&self, after: i64, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        sqlx::query_as("SELECT seq, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading audit event hashes"))
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
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a page of the audit browser"))?;
        let events = rows.iter().map(event_from).collect::<Result<_, _>>()?;
        Ok(super::audit_page(&query, events))
    }

    async fn merkle_nodes(
        &self,
        subtrees: Vec<Subtree>,
    ) -> Result<Vec<(Subtree, Hash)>, StoreError> {
        let levels: Vec<i64> = subtrees.iter().map(|t| i64::from(t.level)).collect();
        let indexes = subtrees
            .iter()
            .map(node_index)
            .collect::<Result<Vec<i64>, _>>()?;
        let rows = sqlx::query(
            "SELECT level, idx, hash FROM merkle_nodes \
             WHERE (level, idx) IN (SELECT * FROM UNNEST($1::bigint[], $2::bigint[]))",
        )
        .bind(levels)
        .bind(indexes)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading Merkle nodes"))?;
        rows.iter()
            .map(|row| {
                node_from(
                    get::<i64>(row, "level")?,
                    get::<i64>(row, "idx")?,
                    &get::<Vec<u8>>(row, "hash")?,
                )
            })
            .collect()
    }

    async fn put_merkle_nodes(&self, nodes: Vec<(Subtree, Hash)>) -> Result<(), StoreError> {
        let levels: Vec<i64> = nodes.iter().map(|(t, _)| i64::from(t.level)).collect();
        let indexes = nodes
            .iter()
            .map(|(t, _)| node_index(t))
            .collect::<Result<Vec<i64>, _>>()?;
        let hashes: Vec<Vec<u8>> = nodes.iter().map(|(_, h)| h.to_vec()).collect();
        sqlx::query(
            "INSERT INTO merkle_nodes (level, idx, hash) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[]) \
             ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash",
        )
        .bind(levels)
        .bind(indexes)
        .bind(hashes)
        .execute(&self.pool)
        .await
        .map_err(db("writing Merkle nodes"))?;
        Ok(())
    }

    async fn run_events_page(
        &self,
        run_id: &str,
        page: Option<u64>,
        per_page: u32,
    ) -> Result<EventPage, StoreError> {
        let total: i64 = sqlx::query_scalar(RUN_EVENT_COUNT)
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting audit events"))?;
        let total = u64::try_from(total).unwrap_or_default();
        let offset = super::page_offset(total, page, per_page);
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} {RUN_EVENTS_PAGE}"))
            .bind(run_id)
            .bind(i64::from(per_page))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading a run's step events"))?;
        rows.iter().map(event_from).collect()
    }

    async fn run_step_rows(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {STEP_COLUMNS} FROM steps {RUN_STEP_ROWS}"))
            .bind(run_id)
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
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
        // seq 0 is the row the migration seeds: no event yet.
        let row = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1 AND seq > 0")
            .fetch_optional(&self.pool)
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
             AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading due emails"))?;
        rows.iter().map(email_from).collect()
    }

    async fn feed_sequences(&self, stamps: Vec<FeedStamp>) -> Result<Vec<u32>, StoreError> {
        // Its own transaction, not the chain's: no audit event is written.
        let mut tx = self.pool.begin().await.map_err(db("BEGIN"))?;
        let mut out = Vec::with_capacity(stamps.len());
        for stamp in &stamps {
            sqlx::query(FEED_UPSERT)
                .bind(&stamp.uid)
                .bind(ts(stamp.start))
                .bind(&stamp.status)
                .execute(&mut *tx)
                .await
                .map_err(db("recording a feed event"))?;
            let row = sqlx::query(FEED_SEQUENCE)
                .bind(&stamp.uid)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("reading a feed event's sequence"))?;
            out.push(u32::try_from(get::<i64>(&row, "sequence")?).unwrap_or(u32::MAX));
        }
        tx.commit().await.map_err(db("COMMIT"))?;
        Ok(out)
    }

    async fn decisions(
        &self,
        run_id: &str,
        step: &str,
        host: &str,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions \
             WHERE run_id = $1 AND step = $2 AND host = $3 ORDER BY seq"
        ))
        .bind(run_id)
        .bind(step)
        .bind(host)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading decisions"))?;
        rows.iter().map(decision_from).collect()
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a session"))?;
        row.as_ref().map(session_from).transpose()
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(ts(at))
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(db("touching a session"))?;
        Ok(())
    }

    async fn live_sessions(&self, now: DateTime<Utc>) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 \
             ORDER BY created_at DESC"
        ))
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading sessions"))?;
        rows.iter().map(session_from).collect()
    }

    async fn email_delivering(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET delivering_since = $1 WHERE id = $2")
            .bind(ts(at))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("marking an email in delivery"))?;
        Ok(())
    }

    async fn email_attempted(&self, id: i64, attempt: EmailAttempt) -> Result<(), StoreError> {
        let (sent, next, dead, error, event, notice) = match attempt {
            EmailAttempt::Sent { at, event } => (Some(at), at, None, None, Some(event), None),
            EmailAttempt::Failed { next, error, event } => {
                (None, next, None, Some(error), event, None)
            }
            EmailAttempt::Dead {
                at,
                error,
                event,
                notice,
            } => (None, at, Some(at), Some(error), Some(event), notice),
        };
        self.write(|conn, chain| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, sent_at = $1, next_attempt_at = $2, \
                     dead_at = $3, last_error = COALESCE($4, last_error), claimed_by = NULL, \
                     claimed_until = NULL, delivering_since = NULL WHERE id = $5",
                )
                .bind(ts_opt(sent))
                .bind(ts(next))
                .bind(ts_opt(dead))
                .bind(&error)
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
                        "UPDATE outbox SET next_attempt_at = $1 WHERE sent_at IS NULL \
                         AND dead_at IS NULL AND attempts > 0 AND next_attempt_at > $1",
                    )
                    .bind(ts(at))
                    .execute(&mut *conn)
                    .await
                    .map_err(db("bringing waiting emails forward"))?;
                }
                if let Some(notice) = &notice {
                    let to = serde_json::to_string(&notice.to).expect("strings serialize");
                    sqlx::query(
                        "INSERT INTO outbox (run_id, recipients, subject, body, html, created_at, \
                         next_attempt_at, notice_of) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
                    )
                    .bind(&notice.run_id)
                    .bind(to)
                    .bind(&notice.subject)
                    .bind(&notice.body)
                    .bind(&notice.html)
                    .bind(ts(notice.created_at))
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("queueing a dead-letter notice"))?;
                }
                match &event {
                    Some(event) => chain.append(conn, event).await,
                    None => Ok(()),
                }
            })
        })
        .await
    }

    async fn outbox_figures(&self, now: DateTime<Utc>) -> Result<OutboxFigures, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FILTER (WHERE sent_at IS NULL AND dead_at IS NULL) AS depth, \
             COUNT(*) FILTER (WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1) \
             AS due, COUNT(*) FILTER (WHERE dead_at IS NOT NULL) AS dead FROM outbox",
        )
        .bind(ts(now))
        .fetch_one(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading unfinished runs"))?;
        rows.iter()
            .map(|row| Ok((get(row, "id")?, get(row, "content_hash")?)))
            .collect()
    }

    async fn events_by_action(&self, actions: &[&str]) -> Result<Vec<EventRow>, StoreError> {
        let actions: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} {EVENTS_BY_ACTION}"))
            .bind(actions)
            .fetch_all(&self.pool)
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
        // Every assignment reads the row as it was: the epoch stays only for the holder whose
        // lease still lasts. A concurrent first insert makes the loser update (and find the
        // winner's unexpired lease: no row).
        let epoch: Option<i64> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, epoch, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET \
             epoch = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > $4 \
             THEN leases.epoch ELSE leases.epoch + 1 END, \
             holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4 \
             RETURNING epoch",
        )
        .bind(name)
        .bind(holder)
        .bind(ts(lease_end(now, ttl)))
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db("acquiring a lease"))?;
        Ok(epoch.map(|e| e as u64))
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let epoch: Option<i64> = sqlx::query_scalar(
            "UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 \
             AND expires_at > $4 RETURNING epoch",
        )
        .bind(ts(lease_end(now, ttl)))
        .bind(name)
        .bind(holder)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db("renewing a lease"))?;
        Ok(epoch.map(|e| e as u64))
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT holder FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a lease"))?;
        row.map(|row| get(&row, "holder")).transpose()
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3")
            .bind(ts(DateTime::<Utc>::UNIX_EPOCH))
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db("releasing a lease"))?;
        Ok(())
    }

    async fn claim_run(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunClaim>, StoreError> {
        let row = sqlx::query(
            "UPDATE runs SET claimed_by = $1, claimed_until = $2, claim_epoch = claim_epoch + 1 \
             WHERE id = $3 AND state = 'running' \
             AND (claimed_by IS NULL OR claimed_until <= $4 OR claimed_by = $1) \
             RETURNING id, claim_epoch, cancel_requested_by",
        )
        .bind(holder)
        .bind(ts(lease_end(now, ttl)))
        .bind(run_id)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db("claiming a run"))?;
        row.as_ref().map(claim_from).transpose()
    }

    async fn claim_runs(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        scope: ClaimScope,
        limit: u32,
    ) -> Result<Vec<RunClaim>, StoreError> {
        let which = match scope {
            ClaimScope::Unheld => "(claimed_by IS NULL OR claimed_until <= $3)",
            ClaimScope::Abandoned => "(claimed_by IS NOT NULL AND claimed_until <= $3)",
        };
        // Rows another claimer (or a fenced commit) has locked are skipped, not waited for;
        // rows it claimed and committed no longer match once locked (re-checked on lock).
        let rows = sqlx::query(&format!(
            "WITH c AS (SELECT id FROM runs WHERE state = 'running' AND {which} \
             ORDER BY started_at, position LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE runs SET claimed_by = $1, claimed_until = $2, claim_epoch = claim_epoch + 1 \
             FROM c WHERE runs.id = c.id \
             RETURNING runs.id, runs.claim_epoch, runs.cancel_requested_by, runs.started_at, \
             runs.position"
        ))
        .bind(holder)
        .bind(ts(lease_end(now, ttl)))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("claiming runs"))?;
        let mut claims = Vec::with_capacity(rows.len());
        for row in &rows {
            let order = (get_ts(row, "started_at")?, get::<i64>(row, "position")?);
            claims.push((order, claim_from(row)?));
        }
        claims.sort_by_key(|c| c.0);
        Ok(claims.into_iter().map(|(_, c)| c).collect())
    }

    async fn renew_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunClaim>, StoreError> {
        let row = sqlx::query(
            "UPDATE runs SET claimed_until = $1 WHERE id = $2 AND claimed_by = $3 \
             AND claim_epoch = $4 RETURNING id, claim_epoch, cancel_requested_by",
        )
        .bind(ts(lease_end(now, ttl)))
        .bind(run_id)
        .bind(holder)
        .bind(epoch as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("renewing a run claim"))?;
        row.as_ref().map(claim_from).transpose()
    }

    async fn release_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
    ) -> Result<Option<String>, StoreError> {
        let cancel: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE runs SET claimed_by = NULL, claimed_until = NULL WHERE id = $1 \
             AND claimed_by = $2 AND claim_epoch = $3 \
             RETURNING CASE WHEN state = 'running' THEN cancel_requested_by END",
        )
        .bind(run_id)
        .bind(holder)
        .bind(epoch as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("releasing a run claim"))?;
        Ok(cancel.flatten())
    }

    async fn abandon_runs(&self, holder: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET claimed_until = $1 WHERE claimed_by = $2 AND claimed_until > $1",
        )
        .bind(ts(now))
        .bind(holder)
        .execute(&self.pool)
        .await
        .map_err(db("abandoning run claims"))?;
        Ok(done.rows_affected())
    }

    async fn request_cancel(&self, run_id: &str, actor: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET cancel_requested_by = COALESCE(cancel_requested_by, $1) \
             WHERE id = $2 AND state = 'running'",
        )
        .bind(actor)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(db("requesting a cancellation"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn claim_emails(
        &self,
        holder: &str,
        due: DateTime<Utc>,
        ttl: Duration,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EmailRow>, StoreError> {
        let columns = EMAIL_COLUMNS
            .split(", ")
            .map(|c| format!("outbox.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "WITH c AS (SELECT id FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL \
             AND next_attempt_at <= $5 \
             AND (claimed_until IS NULL OR claimed_until <= $3) \
             ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE outbox SET claimed_by = $1, claimed_until = $2 FROM c \
             WHERE outbox.id = c.id RETURNING {columns}"
        ))
        .bind(holder)
        .bind(ts(lease_end(now, ttl)))
        .bind(ts(now))
        .bind(i64::from(limit))
        .bind(ts(due))
        .fetch_all(&self.pool)
        .await
        .map_err(db("claiming emails"))?;
        let mut emails = rows.iter().map(email_from).collect::<Result<Vec<_>, _>>()?;
        emails.sort_by_key(|a| (a.next_attempt_at, a.id));
        Ok(emails)
    }
}

fn claim_from(row: &PgRow) -> Result<RunClaim, StoreError> {
    Ok(RunClaim {
        run_id: get(row, "id")?,
        epoch: get::<i64>(row, "claim_epoch")?.max(0) as u64,
        cancel_requested: get(row, "cancel_requested_by")?,
    })
}

/// Test support: a fresh schema per test in the database of `PATCHDAY_TEST_POSTGRES`.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::Connection as _;
    use sqlx::postgres::PgConnection;

    use super::PostgresStore;

    /// The database the tests use (`PATCHDAY_TEST_POSTGRES`, else the local server's `test`).
    pub(crate) fn test_url() -> String {
        std::env::var("PATCHDAY_TEST_POSTGRES").unwrap_or_else(|_| {
            "postgres://patchday_test:patchday_test@127.0.0.1:5432/patchday_test".to_string()
        })
    }

    /// `url` with its connections' `search_path` set to `schema`.
    pub(crate) fn with_search_path(url: &str, schema: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20search_path%3D{schema}")
    }

    /// A schema created for one test and dropped (with everything in it) when this is dropped,
    /// panicking tests included.
    #[derive(Debug)]
    pub(crate) struct Schema {
        admin_url: String,
        pub(crate) name: String,
        /// The URL whose connections work in this schema.
        pub(crate) url: String,
    }

    impl Schema {
        /// Creates a uniquely named empty schema. Panics (fails the test) if the server is
        /// unreachable: these tests are never skipped.
        pub(crate) async fn create() -> Schema {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let admin_url = test_url();
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!(
                "pd_test_{}_{}_{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {admin_url} is unreachable ({e}); the PostgreSQL tests need \
                     it (set PATCHDAY_TEST_POSTGRES)"
                )
            });
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            let url = with_search_path(&admin_url, &name);
            Schema {
                admin_url,
                name,
                url,
            }
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            // Drop runs inside the test's runtime, which cannot be blocked on: drop the schema
            // from a thread with a runtime of its own.
            let url = self.admin_url.clone();
            let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut conn = PgConnection::connect(&url).await?;
                    sqlx::query(&sql).execute(&mut conn).await?;
                    conn.close().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("dropping test schema {}: {e}", self.name);
            }
        }
    }

    /// A fresh, empty store in its own schema (the conformance suite's factory).
    pub(crate) async fn open_fresh() -> (PostgresStore, Schema) {
        let schema = Schema::create().await;
        let store = PostgresStore::open(&schema.url).await.unwrap();
        (store, schema)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::testing::{Schema, open_fresh};
    use super::*;
    use crate::store::conformance::{event, run_row, step_row, t0};
    use crate::store::{StepWrite, StoreError};

    mod conformance {
        crate::store::conformance::conformance_suite!(super::open_fresh);
    }

    #[tokio::test]
    async fn persists_across_reopen() {
        let schema = Schema::create().await;
        crate::store::conformance::persists_across_reopen(
            || async { PostgresStore::open(&schema.url).await.unwrap() },
            |s: PostgresStore| async move { s.close().await },
        )
        .await;
    }

    /// Two stores (two pools, as two daemons would have) append concurrently: one contiguous
    /// chain that verifies, every commit landed once, and a cycle is created exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_append_one_chain() {
        let schema = Schema::create().await;
        let a = PostgresStore::open(&schema.url).await.unwrap();
        let b = PostgresStore::open(&schema.url).await.unwrap();
        a.create_run(
            run_row("r1", "monthly", None, t0()),
            vec![],
            event("run.started", Some("r1"), None, t0()),
        )
        .await
        .unwrap();
        let rounds = 30;
        let worker = |store: PostgresStore, name: &'static str| {
            tokio::spawn(async move {
                for i in 0..rounds {
                    // Alternate single changes and small batches with two events each.
                    let size = if i % 2 == 0 { 1 } else { 3 };
                    let changes = (0..size)
                        .map(|j| Change {
                            steps: vec![StepWrite {
                                expect: None,
                                row: step_row(
                                    "r1",
                                    "fan",
                                    &format!("{name}-{i}-{j}"),
                                    StepState::Pending,
                                ),
                            }],
                            events: vec![
                                event("step.pending", Some("r1"), Some("fan"), t0()),
                                event("step.noted", Some("r1"), Some(name), t0()),
                            ],
                            ..Change::default()
                        })
                        .collect();
                    store.commit(changes).await.unwrap();
                }
                // Both daemons fire the same cycle: exactly one wins.
                store
                    .create_run(
                        run_row(&format!("cycle-{name}"), "monthly", Some("2026-12"), t0()),
                        vec![step_row(
                            &format!("cycle-{name}"),
                            "a",
                            "",
                            StepState::Pending,
                        )],
                        event("run.started", None, None, t0()),
                    )
                    .await
            })
        };
        let (ra, rb) = tokio::join!(worker(a.clone(), "a"), worker(b.clone(), "b"));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            matches!(
                (&ra, &rb),
                (Ok(()), Err(StoreError::DuplicateCycle { .. }))
                    | (Err(StoreError::DuplicateCycle { .. }), Ok(()))
            ),
            "{ra:?} {rb:?}"
        );
        let per_worker = (rounds / 2) * 2 + (rounds / 2) * 6;
        let expected = 1 + 2 * per_worker + 1;
        for store in [&a, &b] {
            let events = store.events(EventFilter::default()).await.unwrap();
            let head = store.chain_head().await.unwrap();
            assert_eq!(audit::verify(&events, head.as_ref()), Ok(expected));
            let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=expected as i64).collect::<Vec<_>>());
        }
        assert_eq!(a.steps("r1").await.unwrap().len(), per_worker);
        a.close().await;
        b.close().await;
    }

    /// Two stores (two daemons) and 50 concurrent commits of one decision: exactly one lands.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_record_one_decision_once() {
        let schema = Schema::create().await;
        let a = PostgresStore::open(&schema.url).await.unwrap();
        let b = PostgresStore::open(&schema.url).await.unwrap();
        crate::store::conformance::concurrent_decisions(&[a.clone(), b.clone()]).await;
        a.close().await;
        b.close().await;
    }

    /// Two stores (two daemons) on one database, from several threads: run claims and outbox
    /// claims are disjoint, and once B took a run over, none of A's fenced commits lands while
    /// A keeps trying.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_claim_disjoint_work_and_a_stale_driver_is_fenced() {
        use crate::store::{ClaimScope, Fence, NewEmail};
        let schema = Schema::create().await;
        let a = PostgresStore::open(&schema.url).await.unwrap();
        let b = PostgresStore::open(&schema.url).await.unwrap();
        let ttl = Duration::from_secs(30);
        for i in 0..40 {
            let id = format!("r{i:02}");
            a.create_run(
                run_row(&id, "monthly", None, t0()),
                vec![step_row(&id, "a", "", StepState::Pending)],
                event("run.started", Some(&id), None, t0()),
            )
            .await
            .unwrap();
        }
        let emails: Vec<NewEmail> = (0..60)
            .map(|i| crate::store::conformance::email(None, &format!("m{i}"), t0()))
            .collect();
        a.commit(vec![Change {
            emails,
            ..Change::default()
        }])
        .await
        .unwrap();
        let claimer = |store: PostgresStore, holder: &'static str| {
            tokio::spawn(async move {
                let (mut runs, mut mails) = (Vec::new(), Vec::new());
                loop {
                    let r = store
                        .claim_runs(holder, ttl, t0(), ClaimScope::Unheld, 3)
                        .await
                        .unwrap();
                    let m = store
                        .claim_emails(holder, t0(), ttl, t0(), 4)
                        .await
                        .unwrap();
                    if r.is_empty() && m.is_empty() {
                        return (runs, mails);
                    }
                    runs.extend(r.into_iter().map(|c| c.run_id));
                    mails.extend(m.into_iter().map(|e| e.id));
                }
            })
        };
        let tasks = [
            claimer(a.clone(), "a"),
            claimer(b.clone(), "b"),
            claimer(a.clone(), "a2"),
            claimer(b.clone(), "b2"),
        ];
        let (mut runs, mut mails) = (Vec::new(), Vec::new());
        for task in tasks {
            let (r, m) = task.await.unwrap();
            runs.extend(r);
            mails.extend(m);
        }
        runs.sort();
        mails.sort();
        assert_eq!(runs.len(), 40, "every run claimed once");
        runs.dedup();
        assert_eq!(runs.len(), 40);
        assert_eq!(mails.len(), 60, "every email claimed once");
        mails.dedup();
        assert_eq!(mails.len(), 60);

        // A drives r00 and commits as fast as it can; B takes the run over meanwhile.
        let claim = a.claim_run("r00", "a", ttl, t0() + chrono::TimeDelta::hours(1));
        let epoch = claim.await.unwrap().unwrap().epoch;
        let stale = {
            let a = a.clone();
            tokio::spawn(async move {
                let mut landed = 0;
                for i in 0..200 {
                    let change = Change {
                        steps: vec![StepWrite {
                            expect: None,
                            row: step_row("r00", "fan", &format!("h{i}"), StepState::Pending),
                        }],
                        events: vec![event("step.pending", Some("r00"), Some("fan"), t0())],
                        fence: Some(Fence::Run {
                            run_id: "r00".into(),
                            epoch,
                        }),
                        ..Change::default()
                    };
                    match a.commit(vec![change]).await {
                        Ok(()) => landed += 1,
                        Err(StoreError::Fenced { .. }) => return landed,
                        Err(e) => panic!("{e}"),
                    }
                }
                panic!("A was never fenced")
            })
        };
        // Let A land a few commits first.
        while b.steps("r00").await.unwrap().len() < 5 {
            tokio::task::yield_now().await;
        }
        let later = t0() + chrono::TimeDelta::hours(2);
        let taken = b.claim_run("r00", "b", ttl, later).await.unwrap().unwrap();
        assert_eq!(taken.epoch, epoch + 1);
        let rows_at_takeover = b.steps("r00").await.unwrap().len();
        let landed = stale.await.unwrap();
        // Nothing A committed after B's claim: the rows are those seen at the takeover.
        assert_eq!(b.steps("r00").await.unwrap().len(), rows_at_takeover);
        assert_eq!(rows_at_takeover, 1 + landed);
        let events = b.events(EventFilter::default()).await.unwrap();
        let head = b.chain_head().await.unwrap();
        assert_eq!(audit::verify(&events, head.as_ref()), Ok(40 + landed));
        a.close().await;
        b.close().await;
    }

    /// Throughput of `commit` against the server: a fan-out of 2,000 hosts moved pending →
    /// running → succeeded in batches of 100 changes, and a chain of 300 single-change commits,
    /// against the floor of as many bare one-row commits. Prints the figures (run with
    /// `--release --nocapture` for the real numbers).
    #[tokio::test]
    async fn commit_throughput_figures() {
        let (store, schema) = open_fresh().await;
        let floor_url = schema.url.clone();
        crate::store::conformance::commit_throughput("postgres", &store, |n| async move {
            PostgresStore::commit_floor(&floor_url, n).await.unwrap();
        })
        .await;
        store.close().await;
    }

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
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

    #[test]
    fn multi_row_placeholders_are_numbered() {
        assert_eq!(
            multi_row_sql("INSERT INTO t (a, b) VALUES ", 2, 3, " X"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6) X"
        );
        let sizes: Vec<usize> = chunks(&[0; 100]).map(<[i32]>::len).collect();
        assert_eq!(sizes, [64, 32, 4]);
    }

    #[tokio::test]
    async fn the_audit_log_is_append_only_and_opening_twice_is_fine() {
        let (store, schema) = open_fresh().await;
        store
            .create_run(
                run_row("r1", "monthly", None, t0()),
                vec![],
                event("run.started", Some("r1"), None, t0()),
            )
            .await
            .unwrap();
        // Migrations are idempotent; open_existing does not migrate.
        let again = PostgresStore::open(&schema.url).await.unwrap();
        let existing = PostgresStore::open_existing(&schema.url).await.unwrap();
        assert_eq!(
            existing.events(EventFilter::default()).await.unwrap().len(),
            1
        );
        for sql in [
            "UPDATE events SET actor = 'mallory'",
            "DELETE FROM events",
            "TRUNCATE events",
        ] {
            let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        let events = again.events(EventFilter::default()).await.unwrap();
        let head = again.chain_head().await.unwrap();
        assert_eq!(audit::verify(&events, head.as_ref()), Ok(1));
        for s in [store, again, existing] {
            s.close().await;
        }
    }
}
