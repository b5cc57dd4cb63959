//! Durable state (DESIGN §5, §6): runs, step rows, the hash-chained audit log and the email
//! outbox, behind one narrow [`Store`] trait. Only this module contains SQL. Each backend
//! (SQLite, PostgreSQL; [`any::AnyStore`] picks one by URL scheme) has its own file and its
//! own migrations folder, and all of them pass the same conformance suite (`conformance.rs`).
//!
//! The rule every caller relies on: a [`Change`] (decisions, step transitions, run transition,
//! audit events, outbox emails) commits in one transaction, or not at all. Several changes may be
//! committed together ([`Store::commit`] takes a batch) to group fsyncs; none of their effects
//! is visible before the transaction is durable.
//!
//! Several daemons may share one database (DESIGN §5; PostgreSQL in practice, but SQLite answers
//! the same calls): a named lease elects one leader ([`Store::try_acquire_lease`]); a daemon
//! claims a run before driving it ([`Store::claim_run`], [`Store::claim_runs`]) and renews the
//! claim while it drives; every claim increments the run's epoch, and a [`Change`] carrying a
//! [`Fence`] is refused whole ([`StoreError::Fenced`]) once that epoch has moved on, so a daemon
//! that lost its claim cannot write. Outbox rows are claimed for a short while before they are
//! sent ([`Store::claim_emails`]), so two mailers never send the same row at the same time.

pub mod any;
mod codec;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, Subtree};

/// Identifier of a run (unique, time-ordered text).
pub type RunId = String;

/// Where a run is (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    /// `running`, `succeeded`, `failed`, `cancelled`: as stored, shown and counted.
    pub fn as_str(self) -> &'static str {
        codec::run_state_str(self)
    }
}

/// Where a step (or one host of a fanned-out step) is (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Waiting,
    Running,
    AwaitingInput,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    /// Found `running` after a crash, connector not idempotent: waits for an operator.
    Interrupted,
}

impl StepState {
    /// Whether nothing more will happen to the step by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Succeeded | StepState::Failed | StepState::Skipped | StepState::Cancelled
        )
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: RunId,
    pub runbook: String,
    /// The cycle (`YYYY-MM`, or `YYYY-MM-DD` for cron schedules) of a scheduled or `--cycle` run. At most one run per runbook and cycle.
    pub cycle: Option<String>,
    /// SHA-256 of the runbook text the run pinned.
    pub content_hash: String,
    /// Git commit of the runbooks folder, when it is a work tree.
    pub commit: Option<String>,
    /// What the run needs to resume without the files: runbook text, inventory text, template
    /// files, non-secret params (JSON, written once at creation).
    pub snapshot: serde_json::Value,
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why this run re-runs a cycle that may have had a run already (`--rerun --reason`):
    /// such a run is exempt from one run per runbook and cycle. `None` for every other run.
    pub rerun: Option<String>,
}

/// A step row: one step, or one host of a fanned-out step. `host` is "" for the step itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    pub run_id: RunId,
    pub step: String,
    pub host: String,
    pub state: StepState,
    /// Attempts started so far (0 before the first).
    pub attempt: u32,
    /// Not to start before this instant (`at`, or a retry's backoff).
    pub not_before: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Connector outputs (JSON object; secrets already redacted).
    pub outputs: serde_json::Value,
    /// Why it failed, was skipped or cancelled (secrets already redacted).
    pub reason: Option<String>,
}

/// An audit event to append; the store assigns `seq` and the hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    /// `scheduler`, `cli:<user>`, `link:<email>`, `api:<token name>`, `engine`.
    pub actor: String,
    /// `run.started`, `step.succeeded`, `approval.decided`, ...
    pub action: String,
    pub run_id: Option<RunId>,
    pub step_id: Option<String>,
    /// Secrets already redacted.
    pub details: serde_json::Value,
}

/// An audit event as stored: hash = SHA-256 over the canonical event and `prev_hash`
/// (see [`crate::audit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub run_id: Option<RunId>,
    pub step_id: Option<String>,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// An audit event as its stored text, undecoded: what the chain walkers (`audit verify`, the
/// daemon's incremental check) hash. `at` is the instant as [`crate::audit::format_instant`]
/// writes it (SQLite: the column's text; PostgreSQL: formatted from the `timestamptz`);
/// `details` the column's text, which the stores write in canonical JSON
/// ([`crate::audit::canonical_json`]), so that a verifier can hash it without parsing it
/// ([`crate::audit::ChainVerifier::push_text`] decodes only when that does not match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventText {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub run_id: Option<RunId>,
    pub step_id: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl EventText {
    /// The event decoded (`at` parsed, `details` read as JSON), or why the text is not one.
    pub fn decode(&self) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            seq: self.seq,
            at: codec::parse_instant(&self.at)?,
            actor: self.actor.clone(),
            action: self.action.clone(),
            run_id: self.run_id.clone(),
            step_id: self.step_id.clone(),
            details: codec::parse_json(&self.details)?,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        })
    }
}

/// The chain's head as the store last wrote it (detects a deleted tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// An email to send, written in the same transaction as the change that causes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEmail {
    pub run_id: Option<RunId>,
    /// Addresses (roles already resolved).
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Text files sent with it (a witnessed checkpoint, the monthly compliance report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<EmailAttachment>,
    /// Once-only key: an email queued under a key already in the outbox is not queued again,
    /// whichever daemon, restart or retry writes it (migration 0020).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The `attachments` column: a JSON array, NULL for none.
pub(crate) fn attachments_column(email: &NewEmail) -> Option<String> {
    (!email.attachments.is_empty())
        .then(|| serde_json::to_string(&email.attachments).expect("strings serialize"))
}

/// Reads the `attachments` column.
pub(crate) fn attachments_from(column: Option<String>) -> Result<Vec<EmailAttachment>, StoreError> {
    column.map_or(Ok(Vec::new()), |text| {
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Database(format!("bad attachments in the outbox: {e}")))
    })
}

/// A text file attached to an outbox email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAttachment {
    pub filename: String,
    /// e.g. `text/plain; charset=utf-8`.
    pub content_type: String,
    pub content: String,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailRow {
    pub id: i64,
    pub email: NewEmail,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Set while a mailer hands the row to the server, cleared when it records the attempt:
    /// found set, the last delivery may have reached the server (a possible duplicate).
    pub delivering_since: Option<DateTime<Utc>>,
    /// When the row was given up (the server refused it for good): a dead letter.
    pub dead_at: Option<DateTime<Utc>>,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// This email tells the committee that outbox row `notice_of` was given up.
    pub notice_of: Option<i64>,
}

/// What became of one delivery attempt of an outbox row ([`Store::email_attempted`]). Each
/// variant that changes the row's state carries the audit event of that change; an attempt
/// that changes nothing (a retry failing again) writes none, so a row has at most three events
/// (`email.failed` once, then `email.sent` or `email.dead_lettered`).
#[derive(Debug, Clone, PartialEq)]
pub enum EmailAttempt {
    /// Delivered at `at`. The server answers again: every other row waiting for a retry comes
    /// due at `at` too (the backlog of an outage goes out now, not after its backoff).
    Sent { at: DateTime<Utc>, event: NewEvent },
    /// Not delivered; tried again at `next`. `event` only when the row changes state (its
    /// first failure).
    Failed {
        next: DateTime<Utc>,
        error: String,
        event: Option<NewEvent>,
    },
    /// Refused for good: never tried again. `notice` (telling the committee) is queued in the
    /// same transaction, marked as the notice about this row.
    Dead {
        at: DateTime<Utc>,
        error: String,
        event: NewEvent,
        notice: Option<NewEmail>,
    },
}

/// The outbox as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxFigures {
    /// Rows not sent and not given up.
    pub depth: u64,
    /// Of those, the ones due now.
    pub due: u64,
    /// Rows given up (dead letters).
    pub dead: u64,
}

/// One step row's transition: written only if the row is in `expect` (optimistic check);
/// `expect: None` inserts a new row (a fan-out child), which must not exist yet.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWrite {
    pub expect: Option<StepState>,
    pub row: StepRow,
}

/// Everything one transition writes. Committed atomically with its events and emails.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change {
    pub steps: Vec<StepWrite>,
    /// Finishes (or cancels) a run: (run id, new state, when).
    pub run: Option<(RunId, RunState, DateTime<Utc>)>,
    pub events: Vec<NewEvent>,
    pub emails: Vec<NewEmail>,
    /// Decisions on approval and manual steps. Written first, before the step writes: a
    /// second decision by one recipient on one row ([`StoreError::AlreadyDecided`]) or a
    /// reused link nonce ([`StoreError::LinkUsed`]) rolls the whole commit back.
    pub decisions: Vec<NewDecision>,
    /// Whose write this is: checked first; a stale epoch refuses the whole commit
    /// ([`StoreError::Fenced`]). `None`: unfenced (the CLI, decisions, operators).
    pub fence: Option<Fence>,
    /// Sessions opened (a sign-in) or closed (a sign-out), with the events that record them.
    /// Opening one with a link nonce that opened another refuses the whole commit
    /// ([`StoreError::LinkUsed`]): a sign-in link signs in once.
    pub sessions: Vec<SessionWrite>,
}

/// A signed-in person's session as it is opened (DESIGN §7; migration `0006_auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 (hex) of the cookie's random value; the value itself is never stored.
    pub id_hash: String,
    /// The person's email address (lower case).
    pub email: String,
    /// `link`, `local` or `oidc`.
    pub via: String,
    /// The identity provider's groups (OIDC), for roles given to groups.
    pub groups: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The absolute end of the session, whatever its use.
    pub expires_at: DateTime<Utc>,
    /// The nonce of the sign-in link that opened it (unique); `None` for OIDC.
    pub link_nonce: Option<String>,
    /// The client address of the sign-in (migration `0018_session_source`; `None` before it).
    pub source_ip: Option<String>,
}

/// A calendar-feed event as about to be published: its UID, start and status
/// (`CONFIRMED`/`CANCELLED`). [`Store::feed_sequences`] gives its SEQUENCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStamp {
    pub uid: String,
    pub start: DateTime<Utc>,
    pub status: String,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub session: NewSession,
    /// The last request that used it (updated at most once a minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it was signed out or revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A session change in a [`Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionWrite {
    Open(NewSession),
    /// Revokes the session (no-op if it is already revoked or unknown).
    Close {
        id_hash: String,
        at: DateTime<Utc>,
    },
}

/// The epoch a write was made under (DESIGN §5). The store compares it with the current epoch
/// in the commit's transaction and refuses the whole commit when they differ: a daemon whose
/// claim on a run was taken over, or that lost the leadership, cannot write any more.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fence {
    /// The driver of a run: the epoch of its claim ([`RunClaim::epoch`]).
    Run { run_id: RunId, epoch: u64 },
    /// The holder of a named lease (the scheduler holds [`LEADER`]): the lease's epoch.
    Lease { name: String, epoch: u64 },
}

/// The lease whose holder schedules cycles, expires inputs and resumes orphaned runs.
pub const LEADER: &str = "leader";

/// A run claimed by one daemon: nobody else drives it while the claim lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunClaim {
    pub run_id: RunId,
    /// The run's attempt number: incremented by every claim. The driver's commits carry it
    /// ([`Fence::Run`]).
    pub epoch: u64,
    /// Who asked (on another daemon) for the run to be cancelled, if anyone did.
    pub cancel_requested: Option<String>,
}

/// Which unfinished runs [`Store::claim_runs`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimScope {
    /// Every one nobody holds: never claimed, released, or whose claim expired.
    Unheld,
    /// Only those whose holder stopped renewing its claim (crashed, cut off, or stopped).
    Abandoned,
}

/// A person's decision on an approval or manual step row (DESIGN §7), as the deciding
/// transaction records it. Unique per (run, step, host, recipient), and per link `nonce`:
/// that is what makes decisions, and links, single-use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDecision {
    pub run_id: RunId,
    pub step: String,
    /// "" for the step itself, else the host of a fanned-out step.
    pub host: String,
    /// The email address of the person deciding (an approver or assignee).
    pub recipient: String,
    /// One of the step's choices (approval) or `done` / `failed` (manual).
    pub choice: String,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
    /// `link:<email>`, `cli:<user>` or `api:<token name>`.
    pub actor: String,
    pub source_ip: Option<String>,
    /// The nonce of the link that decided (`None` for the CLI and the API).
    pub nonce: Option<String>,
}

/// A decision as stored: `seq` is its insertion order (across all runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRow {
    pub seq: i64,
    pub decision: NewDecision,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub run_id: Option<RunId>,
    pub since: Option<DateTime<Utc>>,
}

/// One page of events and the number of events on all pages.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<EventRow>,
    pub total: u64,
    /// How many events come before this page.
    pub offset: u64,
}

/// Where page `page` (from 1; `None`: the last) of `per_page` items starts among `total`: a
/// page past either end is the nearest one there is.
pub fn page_offset(total: u64, page: Option<u64>, per_page: u32) -> u64 {
    let per_page = u64::from(per_page.max(1));
    let pages = total.div_ceil(per_page).max(1);
    (page.unwrap_or(pages).clamp(1, pages) - 1) * per_page
}

/// Upper bounds (milliseconds) of the step-duration buckets that migration `0017_figures`'s
/// triggers sort finished step rows into (`step_figures.bucket`): a second to a day. The
/// migrations write the same numbers; the conformance suite checks a row at each bound.
pub const STEP_DURATION_BUCKETS_MS: [u64; 9] = [
    1_000, 5_000, 15_000, 60_000, 300_000, 900_000, 3_600_000, 14_400_000, 86_400_000,
];

/// Step rows of recent runs summed by runbook, step, state and duration bucket: what
/// `/metrics` shows, read from the `step_figures` aggregate ([`Store::step_figures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFigure {
    pub runbook: String,
    pub step: String,
    pub state: StepState,
    /// `None`: rows not timed (not succeeded or failed, or without both times). Else the index
    /// of the first bound of [`STEP_DURATION_BUCKETS_MS`] their duration is at or below, or
    /// the bounds' length for longer ones.
    pub bucket: Option<usize>,
    /// How many rows.
    pub rows: u64,
    /// The sum of their durations, in whole milliseconds.
    pub millis: u64,
}

/// What the audit browser asks for (`GET /audit`): every filter optional, newest first, one
/// page at a time by a keyset cursor on `seq` (never `OFFSET`: a page costs the same at seq 10
/// and at seq 2,000,000).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Events at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Events before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Events of this runbook's runs, and events about the runbook itself (`details.runbook`:
    /// `runbook.loaded`, `cycle.missed`, ...).
    pub runbook: Option<String>,
    pub run_id: Option<RunId>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub cursor: AuditCursor,
    /// Events per page.
    pub limit: u32,
}

/// Where a page of the audit browser starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditCursor {
    /// The newest events.
    #[default]
    Newest,
    /// The events just older than this seq ("older").
    Before(i64),
    /// The events just newer than this seq ("newer").
    After(i64),
}

/// One page of the audit browser, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub events: Vec<EventRow>,
    /// Whether events past the page exist in the direction it was read (older for
    /// [`AuditCursor::Newest`] and [`AuditCursor::Before`], newer for [`AuditCursor::After`]).
    pub more: bool,
}

/// A value [`audit_query_sql`] binds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuditBind {
    Text(String),
    Int(i64),
    At(DateTime<Utc>),
}

/// The audit browser's one query, for either backend: the filters present become conditions
/// (so each backend's planner sees the indexes of migration `0016_audit`), then the cursor;
/// `mark(n)` writes the n-th placeholder (`?` or `$n`), `of_runbook(a, b)` the runbook
/// condition given its two placeholders (the runbook's runs' events, or the details' `runbook`
/// that the `events_runbook` index is on). Reads `limit + 1` rows to know whether there are
/// more; `After` reads oldest first (the caller reverses the page).
pub(crate) fn audit_query_sql(
    query: &AuditQuery,
    columns: &str,
    mark: impl Fn(usize) -> String,
    of_runbook: impl Fn(&str, &str) -> String,
) -> (String, Vec<AuditBind>) {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let bind = |binds: &mut Vec<AuditBind>, value: AuditBind| {
        binds.push(value);
        mark(binds.len())
    };
    if let Some(since) = query.since {
        conditions.push(format!("at >= {}", bind(&mut binds, AuditBind::At(since))));
    }
    if let Some(until) = query.until {
        conditions.push(format!("at < {}", bind(&mut binds, AuditBind::At(until))));
    }
    if let Some(runbook) = &query.runbook {
        let a = bind(&mut binds, AuditBind::Text(runbook.clone()));
        let b = bind(&mut binds, AuditBind::Text(runbook.clone()));
        conditions.push(of_runbook(&a, &b));
    }
    for (column, value) in [
        ("run_id", &query.run_id),
        ("actor", &query.actor),
        ("action", &query.action),
    ] {
        if let Some(value) = value {
            let m = bind(&mut binds, AuditBind::Text(value.clone()));
            conditions.push(format!("{column} = {m}"));
        }
    }
    let order = match query.cursor {
        AuditCursor::Newest => "DESC",
        AuditCursor::Before(seq) => {
            conditions.push(format!("seq < {}", bind(&mut binds, AuditBind::Int(seq))));
            "DESC"
        }
        AuditCursor::After(seq) => {
            conditions.push(format!("seq > {}", bind(&mut binds, AuditBind::Int(seq))));
            "ASC"
        }
    };
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let limit = bind(&mut binds, AuditBind::Int(i64::from(query.limit) + 1));
    let sql = format!("SELECT {columns} FROM events{filter} ORDER BY seq {order} LIMIT {limit}");
    (sql, binds)
}

/// Turns the `limit + 1` rows [`audit_query_sql`] read into a page, newest first.
pub(crate) fn audit_page(query: &AuditQuery, mut events: Vec<EventRow>) -> AuditPage {
    let more = events.len() > query.limit as usize;
    events.truncate(query.limit as usize);
    if matches!(query.cursor, AuditCursor::After(_)) {
        events.reverse();
    }
    AuditPage { events, more }
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A step row was not in the expected state (someone else moved it): nothing was written.
    #[error("step `{step}` (host `{host}`) of run {run_id} is not {expected:?} any more")]
    Conflict {
        run_id: RunId,
        step: String,
        host: String,
        expected: Option<StepState>,
    },
    /// A run for this runbook and cycle exists already.
    #[error("runbook `{runbook}` already has a run for cycle {cycle}")]
    DuplicateCycle { runbook: String, cycle: String },
    #[error("no run {0}")]
    NoSuchRun(RunId),
    /// This recipient already decided on this step row: nothing was written.
    #[error("{recipient} already decided on step `{step}` (host `{host}`) of run {run_id}")]
    AlreadyDecided {
        run_id: RunId,
        step: String,
        host: String,
        recipient: String,
    },
    /// A decision with this link nonce exists: the link was used. Nothing was written.
    #[error("the link was already used (nonce {nonce})")]
    LinkUsed { nonce: String },
    /// The commit carried a stale epoch (another daemon took the run, or the lease, over):
    /// nothing was written.
    #[error("fenced: {what} is at epoch {current}, this write was made under epoch {epoch}")]
    Fenced {
        /// `run <id>` or `lease <name>`.
        what: String,
        epoch: u64,
        current: u64,
    },
    #[error("database: {0}")]
    Database(String),
    #[error("migration: {0}")]
    Migration(String),
}

/// Durable state. Every method is one transaction; writes use `BEGIN IMMEDIATE` on SQLite.
pub trait Store: Send + Sync + 'static {
    /// Creates a run with its initial step rows and its `run.started` event, atomically.
    fn create_run(
        &self,
        run: RunRow,
        steps: Vec<StepRow>,
        event: NewEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Commits a batch of changes in one transaction: all or nothing.
    fn commit(&self, changes: Vec<Change>) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn run(&self, id: &str) -> impl Future<Output = Result<Option<RunRow>, StoreError>> + Send;

    /// The most recent runs first.
    fn runs(&self, limit: u32) -> impl Future<Output = Result<Vec<RunRow>, StoreError>> + Send;

    /// Up to `limit` runs that come after run `after` in [`Store::runs`]' order (newest first;
    /// keyset on (started_at, insertion order), index `runs_started`): the API's next page.
    /// Empty when `after` is no run.
    fn runs_after(
        &self,
        after: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RunRow>, StoreError>> + Send;

    /// Up to `limit` of a run's step rows (hosts' included) whose position (insertion order) is
    /// after `after`, in that order, each with its position: the API's pages of a run's rows
    /// (keyset on the position, index `steps_run`).
    fn run_steps_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, StepRow)>, StoreError>> + Send;

    /// Up to `limit` of a run's audit events with `seq > after`, in `seq` order: the API's
    /// pages of a run's events (keyset on `seq`, index `events_run`).
    fn run_events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// Runs in state `running`, oldest first (crash recovery resumes them).
    fn unfinished_runs(&self) -> impl Future<Output = Result<Vec<RunRow>, StoreError>> + Send;

    /// A run's step rows, in insertion order.
    fn steps(&self, run_id: &str) -> impl Future<Output = Result<Vec<StepRow>, StoreError>> + Send;

    /// Audit events in `seq` order.
    fn events(
        &self,
        filter: EventFilter,
    ) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// Page `page` (from 1; `None`: the last, as the run page opens) of a run's audit events
    /// in `seq` order, `per_page` a page (`LIMIT`/`OFFSET` in the database), with how many the
    /// run has in all: counted once, then that page read ([`page_offset`]).
    fn run_events_page(
        &self,
        run_id: &str,
        page: Option<u64>,
        per_page: u32,
    ) -> impl Future<Output = Result<EventPage, StoreError>> + Send;

    /// A run's own step rows (`host` ""), in insertion order, without its hosts' rows (index
    /// `steps_own`): what the run page's graph, timeline and buttons read.
    fn run_step_rows(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<StepRow>, StoreError>> + Send;

    /// Up to `limit` host rows of a run in `state`, in insertion order, after the first
    /// `offset` (index `steps_hosts`): one page of the run page's hosts of one state.
    fn run_host_rows(
        &self,
        run_id: &str,
        state: StepState,
        offset: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StepRow>, StoreError>> + Send;

    /// How many rows of each step of a run are in each state (the step's own row included;
    /// only counts that are not zero), from the `step_figures` aggregate: no row is read.
    fn run_row_counts(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<(String, StepState, u64)>, StoreError>> + Send;

    /// A run's events about the run and its steps as a whole (none with a `host` in its
    /// details), in `seq` order: what a run's timeline is drawn from, without the events of
    /// each host of a fanned-out step.
    fn run_step_events(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// The chain head the store recorded with the last event.
    fn chain_head(&self) -> impl Future<Output = Result<Option<ChainHead>, StoreError>> + Send;

    /// Up to `limit` audit events with `seq > after`, in `seq` order: one page of the log, so
    /// that `audit verify` and the checkpointer walk years of history in constant memory.
    fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// [`Store::events_after`] as stored text, undecoded: the page the chain walkers hash.
    fn event_texts_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<EventText>, StoreError>> + Send;

    /// Up to `limit` `(seq, hash)` pairs with `seq > after`, in `seq` order: the leaves of the
    /// audit log's Merkle tree, without the events' content.
    fn event_hashes(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, String)>, StoreError>> + Send;

    /// The stored roots of those of `subtrees` the store has (migration 0019, written by the
    /// checkpointer through [`Store::put_merkle_nodes`]), in any order. Never trusted for
    /// verification: see [`crate::merkle_nodes`].
    fn merkle_nodes(
        &self,
        subtrees: Vec<Subtree>,
    ) -> impl Future<Output = Result<Vec<(Subtree, Hash)>, StoreError>> + Send;

    /// Stores the roots of perfect subtrees of the audit log's Merkle tree, replacing any
    /// stored for the same subtree. One transaction.
    fn put_merkle_nodes(
        &self,
        nodes: Vec<(Subtree, Hash)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Outbox rows not yet sent (nor given up) whose `next_attempt_at` is at or before `now`.
    fn due_emails(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<EmailRow>, StoreError>> + Send;

    /// The session whose cookie value hashes to `id_hash`, live or not.
    fn session(
        &self,
        id_hash: &str,
    ) -> impl Future<Output = Result<Option<SessionRow>, StoreError>> + Send;

    /// Records that the session was used at `at` (its idle timeout restarts).
    fn touch_session(
        &self,
        id_hash: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The sessions neither revoked nor past `expires_at` at `now`, newest first.
    fn live_sessions(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<SessionRow>, StoreError>> + Send;

    /// The SEQUENCE (RFC 5545 §3.8.7.4) of each feed event about to be published, in order,
    /// recording what is published: 0 for a UID never published, the stored one when its start
    /// and status are as last published, else the stored one plus 1. One transaction; one row
    /// per UID ever published.
    fn feed_sequences(
        &self,
        stamps: Vec<FeedStamp>,
    ) -> impl Future<Output = Result<Vec<u32>, StoreError>> + Send;

    /// The decisions on one step row (`host` "" for the step itself), in insertion order.
    fn decisions(
        &self,
        run_id: &str,
        step: &str,
        host: &str,
    ) -> impl Future<Output = Result<Vec<DecisionRow>, StoreError>> + Send;

    /// Notes that the mailer is about to hand row `id` to the server
    /// ([`EmailRow::delivering_since`]); [`Store::email_attempted`] clears it.
    fn email_delivering(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records what became of a delivery attempt of row `id` (see [`EmailAttempt`]); ends its
    /// claim and its `delivering_since` mark.
    fn email_attempted(
        &self,
        id: i64,
        attempt: EmailAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts of the outbox rows waiting, due at `now`, and given up.
    fn outbox_figures(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<OutboxFigures, StoreError>> + Send;

    /// (id, content hash) of every unfinished run: the runbook versions the daemon keeps.
    fn unfinished_versions(
        &self,
    ) -> impl Future<Output = Result<Vec<(RunId, String)>, StoreError>> + Send;

    /// The audit events whose action is one of `actions`, in `seq` order (a scan of the log
    /// that returns only those: for reading what was last recorded about the runbooks).
    fn events_by_action(
        &self,
        actions: &[&str],
    ) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// One page of the audit browser ([`AuditQuery`]): the filtered events, newest first, by a
    /// keyset cursor on `seq` (migration `0016_audit`'s indexes).
    fn audit_events(
        &self,
        query: AuditQuery,
    ) -> impl Future<Output = Result<AuditPage, StoreError>> + Send;

    // --- reads in proportion to what is active, not to history (issue 12) ---------------------

    /// (runbook, latest cycle) of every runbook with a run of a cycle (re-runs included), one
    /// per kind of cycle (months `YYYY-MM`, days `YYYY-MM-DD`): the scheduler's last dealt
    /// cycles from runs, one indexed read whatever the history.
    fn last_cycles(&self)
    -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// How many runs are in each state (an aggregate: no run is read).
    fn run_counts(&self) -> impl Future<Output = Result<Vec<(RunState, u64)>, StoreError>> + Send;

    /// The ids of the runs with a step row awaiting a person's input (the expiry task's work).
    fn runs_awaiting_input(&self) -> impl Future<Output = Result<Vec<RunId>, StoreError>> + Send;

    /// Up to `limit` runs of `runbook` (manual runs and re-runs included), the most recent
    /// first: the runbook page's recent runs, on the `runs_runbook_started` index.
    fn runs_of_runbook(
        &self,
        runbook: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RunRow>, StoreError>> + Send;

    /// Up to `limit` runs in `state`, the most recent first: the overview's failed runs, on
    /// the `runs_state_started` index.
    fn runs_in_state(
        &self,
        state: RunState,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RunRow>, StoreError>> + Send;

    /// The step rows of the `runs` most recent runs summed by runbook, step, state and
    /// duration bucket (only sums that are not zero): read from the `step_figures` aggregate
    /// the step writes keep (migration `0017_figures`), never from the step rows.
    fn step_figures(
        &self,
        runs: u32,
    ) -> impl Future<Output = Result<Vec<StepFigure>, StoreError>> + Send;

    /// The plans of the hot queries, as the database explains them: (query, plan). The
    /// conformance suite checks that each uses its index ([`HOT_QUERIES`]).
    fn hot_query_plans(
        &self,
    ) -> impl Future<Output = Result<Vec<(&'static str, String)>, StoreError>> + Send;

    // --- several daemons on one database (DESIGN §5) ------------------------------------------

    /// Takes the lease `name` for `holder` until `now + ttl` if nobody has it, it expired, or
    /// `holder` has it already. Returns its epoch, which increments whenever the lease is taken
    /// afresh (free, expired or released before); `None` while another holder's lease lasts.
    fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Extends `holder`'s unexpired lease to `now + ttl` and returns its epoch; `None` when the
    /// lease expired or is another holder's (leadership is lost: acquire it again).
    fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Who holds or last held the lease `name` (expired or not); `None` if never taken.
    fn lease_holder(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Gives `holder`'s lease up: it expires at once; its epoch stays, so the next is higher.
    fn release_lease(
        &self,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims one unfinished run for `holder` until `now + ttl`, if nobody holds it, its claim
    /// expired, or `holder` holds it. The epoch increments. `None`: another daemon holds it,
    /// or the run is finished or missing.
    fn claim_run(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<RunClaim>, StoreError>> + Send;

    /// Claims up to `limit` unfinished runs in `scope` for `holder` (oldest first), each with
    /// its epoch incremented. Concurrent claimers get disjoint sets (PostgreSQL: `FOR UPDATE
    /// SKIP LOCKED`).
    fn claim_runs(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        scope: ClaimScope,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RunClaim>, StoreError>> + Send;

    /// Extends `holder`'s claim of epoch `epoch` to `now + ttl`; `None` when the claim was
    /// taken over (the epoch moved on) or released.
    fn renew_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<RunClaim>, StoreError>> + Send;

    /// Releases `holder`'s claim of epoch `epoch` (the run finished, or waits for a person).
    /// Returns a cancellation requested meanwhile, if the run is still unfinished.
    fn release_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Lets every claim `holder` has expire at `now` (a daemon stopping): the runs go to the
    /// next claimer at once. Returns how many.
    fn abandon_runs(
        &self,
        holder: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Asks whoever drives the unfinished run to cancel it as `actor` (the first request
    /// stands); its holder sees it when it renews or releases its claim. False: the run is
    /// finished or missing.
    fn request_cancel(
        &self,
        run_id: &str,
        actor: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims up to `limit` outbox rows for `holder` until `now + ttl`, oldest first: unsent
    /// rows whose `next_attempt_at` is at or before `due` (the engine's clock) that nobody's
    /// claim holds at `now` (the lease clock). Concurrent claimers get disjoint sets.
    /// [`Store::email_attempted`] ends the claim; a crashed mailer's rows come due again when
    /// its claim expires.
    fn claim_emails(
        &self,
        holder: &str,
        due: DateTime<Utc>,
        ttl: Duration,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<EmailRow>, StoreError>> + Send;
}

/// The queries run per scheduler pass, per page, per expiry pass and per scrape, with the
/// index each must use (`None`: the backend's own index on the key, named differently on each).
pub const HOT_QUERIES: &[(&str, Option<&str>)] = &[
    ("last cycles (scheduler pass)", Some("runs_cycles")),
    ("cycle events (scheduler pass)", Some("events_action")),
    ("runs awaiting input (expiry pass)", Some("steps_awaiting")),
    ("runs by state (/metrics)", Some("runs_state")),
    ("recent runs (index page, API list)", Some("runs_started")),
    ("a run's steps (run page, driver)", None),
    (
        "a runbook's recent runs (runbook page)",
        Some("runs_runbook_started"),
    ),
    (
        "recent runs in a state (overview)",
        Some("runs_state_started"),
    ),
    ("audit browser, older page (audit page)", None),
    ("audit browser by actor (audit page)", Some("events_actor")),
    (
        "audit browser by runbook (audit page)",
        Some("runs_runbook"),
    ),
    ("step figures of recent runs (/metrics)", None),
    ("a run's own step rows (run page)", Some("steps_own")),
    (
        "a page of a run's hosts in one state (run page)",
        Some("steps_hosts"),
    ),
    ("a run's rows counted by step and state (run page)", None),
    ("a run's event count (run page)", Some("events_run")),
    ("a page of a run's events (run page)", Some("events_run")),
    (
        "a run's step events (run page timeline)",
        Some("events_run_steps"),
    ),
    ("the next page of runs (API)", Some("runs_started")),
    ("the next page of a run's rows (API)", Some("steps_run")),
    ("the next page of a run's events (API)", Some("events_run")),
];

/// The audit browser's queries whose plans [`HOT_QUERIES`] checks: a page of every event, of
/// one actor's, of one runbook's (each an older page, as after a click on "older"; the newest
/// page is the same backwards walk of the key from its end, which a plan shows as a scan).
pub(crate) static AUDIT_PLAN_QUERIES: std::sync::LazyLock<[AuditQuery; 3]> =
    std::sync::LazyLock::new(|| {
        let page = |f: fn(&mut AuditQuery)| {
            let mut query = AuditQuery {
                limit: 50,
                cursor: AuditCursor::Before(1_000),
                ..AuditQuery::default()
            };
            f(&mut query);
            query
        };
        [
            page(|_| {}),
            page(|q| q.actor = Some("scheduler".into())),
            page(|q| q.runbook = Some("monthly".into())),
        ]
    });

/// `now + ttl`, saturating (a lease never ends before it starts).
pub(crate) fn lease_end(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The distinct fences of a batch, in order.
pub(crate) fn fences(changes: &[Change]) -> Vec<&Fence> {
    let mut out: Vec<&Fence> = Vec::new();
    for fence in changes.iter().filter_map(|c| c.fence.as_ref()) {
        if !out.contains(&fence) {
            out.push(fence);
        }
    }
    out
}
