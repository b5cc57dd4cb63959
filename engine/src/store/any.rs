//! One store type for either backend, chosen by the database URL's scheme: `sqlite:` opens a
//! [`SqliteStore`], `postgres:` or `postgresql:` a [`PostgresStore`]. [`AnyStore`] implements
//! [`Store`] by delegating to the backend it holds, so the CLI and the daemon need no generics
//! over the backend.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{
    AuditPage, AuditQuery, ChainHead, Change, ClaimScope, DecisionRow, EmailAttempt, EmailRow,
    EventFilter, EventPage, EventRow, EventText, FeedStamp, NewEvent, OutboxFigures, RunClaim,
    RunId, RunRow, RunState, SessionRow, StepFigure, StepRow, StepState, Store, StoreError,
};
use crate::merkle::{Hash, Subtree};

/// A store on either backend.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// The backends a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn backend(url: &str) -> Result<Backend, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("sqlite") => Ok(Backend::Sqlite),
        Some("postgres" | "postgresql") => Ok(Backend::Postgres),
        _ => Err(StoreError::Database(format!(
            "database URL `{url}`: expected a sqlite:, postgres: or postgresql: URL"
        ))),
    }
}

impl AnyStore {
    /// Opens the database at `url`, creating it (SQLite) and applying migrations.
    pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
        Ok(match backend(url)? {
            Backend::Sqlite => AnyStore::Sqlite(SqliteStore::open(url).await?),
            Backend::Postgres => AnyStore::Postgres(PostgresStore::open(url).await?),
        })
    }

    /// Opens an existing database: a missing SQLite file is an error (nothing is created);
    /// PostgreSQL is only connected to (no migrations run).
    pub async fn open_existing(url: &str) -> Result<AnyStore, StoreError> {
        Ok(match backend(url)? {
            Backend::Sqlite => AnyStore::Sqlite(SqliteStore::open_existing(url).await?),
            Backend::Postgres => AnyStore::Postgres(PostgresStore::open_existing(url).await?),
        })
    }

    /// The database's own consistency check: SQLite's `PRAGMA quick_check`, or with `full`
    /// its `PRAGMA integrity_check` (`ok` or the problems found); PostgreSQL checks its pages
    /// itself (data checksums are a cluster setting), so it reports `ok` once it answers a query.
    pub async fn integrity_check(&self, full: bool) -> Result<String, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.integrity_check(full).await,
            AnyStore::Postgres(s) => s.runs(1).await.map(|_| "ok".to_string()),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            AnyStore::Postgres(s) => s.close().await,
        }
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn create_run(
        &self,
        run: RunRow,
        steps: Vec<StepRow>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.create_run(run, steps, event))
    }

    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        delegate!(self, s => s.commit(changes))
    }

    async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        delegate!(self, s => s.run(id))
    }

    async fn runs(&self, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        delegate!(self, s => s.runs(limit))
    }

    async fn runs_after(&self, after: &str, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        delegate!(self, s => s.runs_after(after, limit))
    }

    async fn run_steps_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, StepRow)>, StoreError> {
        delegate!(self, s => s.run_steps_after(run_id, after, limit))
    }

    async fn run_events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        delegate!(self, s => s.run_events_after(run_id, after, limit))
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        delegate!(self, s => s.unfinished_runs())
    }

    async fn last_cycles(&self) -> Result<Vec<(String, String)>, StoreError> {
        delegate!(self, s => s.last_cycles())
    }

    async fn run_counts(&self) -> Result<Vec<(RunState, u64)>, StoreError> {
        delegate!(self, s => s.run_counts())
    }

    async fn runs_awaiting_input(&self) -> Result<Vec<RunId>, StoreError> {
        delegate!(self, s => s.runs_awaiting_input())
    }

    async fn runs_of_runbook(&self, runbook: &str, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        delegate!(self, s => s.runs_of_runbook(runbook, limit))
    }

    async fn runs_in_state(&self, state: RunState, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        delegate!(self, s => s.runs_in_state(state, limit))
    }

    async fn step_figures(&self, runs: u32) -> Result<Vec<StepFigure>, StoreError> {
        delegate!(self, s => s.step_figures(runs))
    }

    async fn hot_query_plans(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        delegate!(self, s => s.hot_query_plans())
    }

    async fn steps(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        delegate!(self, s => s.steps(run_id))
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<EventRow>, StoreError> {
        delegate!(self, s => s.events(filter))
    }

    async fn audit_events(&self, query: AuditQuery) -> Result<AuditPage, StoreError> {
        delegate!(self, s => s.audit_events(query))
    }

    async fn run_events_page(
        &self,
        run_id: &str,
        page: Option<u64>,
        per_page: u32,
    ) -> Result<EventPage, StoreError> {
        delegate!(self, s => s.run_events_page(run_id, page, per_page))
    }

    async fn run_step_rows(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        delegate!(self, s => s.run_step_rows(run_id))
    }

    async fn run_host_rows(
        &self,
        run_id: &str,
        state: StepState,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<StepRow>, StoreError> {
        delegate!(self, s => s.run_host_rows(run_id, state, offset, limit))
    }

    async fn run_row_counts(
        &self,
        run_id: &str,
    ) -> Result<Vec<(String, StepState, u64)>, StoreError> {
        delegate!(self, s => s.run_row_counts(run_id))
    }

    async fn run_step_events(&self, run_id: &str) -> Result<Vec<EventRow>, StoreError> {
        delegate!(self, s => s.run_step_events(run_id))
    }

    async fn chain_head(&self) -> Result<Option<ChainHead>, StoreError> {
        delegate!(self, s => s.chain_head())
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        delegate!(self, s => s.events_after(after, limit))
    }

    async fn event_texts_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventText>, StoreError> {
        delegate!(self, s => s.event_texts_after(after, limit))
    }

    async fn event_hashes(&self, after: i64, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        delegate!(self, s => s.event_hashes(after, limit))
    }

    async fn merkle_nodes(
        &self,
        subtrees: Vec<Subtree>,
    ) -> Result<Vec<(Subtree, Hash)>, StoreError> {
        delegate!(self, s => s.merkle_nodes(subtrees))
    }

    async fn put_merkle_nodes(&self, nodes: Vec<(Subtree, Hash)>) -> Result<(), StoreError> {
        delegate!(self, s => s.put_merkle_nodes(nodes))
    }

    async fn due_emails(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EmailRow>, StoreError> {
        delegate!(self, s => s.due_emails(now, limit))
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        delegate!(self, s => s.session(id_hash))
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        delegate!(self, s => s.touch_session(id_hash, at))
    }

    async fn live_sessions(&self, now: DateTime<Utc>) -> Result<Vec<SessionRow>, StoreError> {
        delegate!(self, s => s.live_sessions(now))
    }

    async fn feed_sequences(&self, stamps: Vec<FeedStamp>) -> Result<Vec<u32>, StoreError> {
        delegate!(self, s => s.feed_sequences(stamps))
    }

    async fn decisions(
        &self,
        run_id: &str,
        step: &str,
        host: &str,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        delegate!(self, s => s.decisions(run_id, step, host))
    }

    async fn email_delivering(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        delegate!(self, s => s.email_delivering(id, at))
    }

    async fn email_attempted(&self, id: i64, attempt: EmailAttempt) -> Result<(), StoreError> {
        delegate!(self, s => s.email_attempted(id, attempt))
    }

    async fn outbox_figures(&self, now: DateTime<Utc>) -> Result<OutboxFigures, StoreError> {
        delegate!(self, s => s.outbox_figures(now))
    }

    async fn unfinished_versions(&self) -> Result<Vec<(RunId, String)>, StoreError> {
        delegate!(self, s => s.unfinished_versions())
    }

    async fn events_by_action(&self, actions: &[&str]) -> Result<Vec<EventRow>, StoreError> {
        delegate!(self, s => s.events_by_action(actions))
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        delegate!(self, s => s.try_acquire_lease(name, holder, ttl, now))
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        delegate!(self, s => s.renew_lease(name, holder, ttl, now))
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        delegate!(self, s => s.lease_holder(name))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        delegate!(self, s => s.release_lease(name, holder))
    }

    async fn claim_run(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunClaim>, StoreError> {
        delegate!(self, s => s.claim_run(run_id, holder, ttl, now))
    }

    async fn claim_runs(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        scope: ClaimScope,
        limit: u32,
    ) -> Result<Vec<RunClaim>, StoreError> {
        delegate!(self, s => s.claim_runs(holder, ttl, now, scope, limit))
    }

    async fn renew_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunClaim>, StoreError> {
        delegate!(self, s => s.renew_run(run_id, holder, epoch, ttl, now))
    }

    async fn release_run(
        &self,
        run_id: &str,
        holder: &str,
        epoch: u64,
    ) -> Result<Option<String>, StoreError> {
        delegate!(self, s => s.release_run(run_id, holder, epoch))
    }

    async fn abandon_runs(&self, holder: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        delegate!(self, s => s.abandon_runs(holder, now))
    }

    async fn request_cancel(&self, run_id: &str, actor: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.request_cancel(run_id, actor))
    }

    async fn claim_emails(
        &self,
        holder: &str,
        due: DateTime<Utc>,
        ttl: Duration,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EmailRow>, StoreError> {
        delegate!(self, s => s.claim_emails(holder, due, ttl, now, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testing::Schema;

    async fn open_sqlite_memory() -> (AnyStore, ()) {
        let store = AnyStore::open("sqlite::memory:").await.unwrap();
        assert!(matches!(store, AnyStore::Sqlite(_)));
        (store, ())
    }

    async fn open_postgres() -> (AnyStore, Schema) {
        let schema = Schema::create().await;
        let store = AnyStore::open(&schema.url).await.unwrap();
        assert!(matches!(store, AnyStore::Postgres(_)));
        (store, schema)
    }

    mod sqlite {
        crate::store::conformance::conformance_suite!(super::open_sqlite_memory);
    }

    mod postgres {
        crate::store::conformance::conformance_suite!(super::open_postgres);
    }

    #[test]
    fn the_scheme_chooses_the_backend() {
        assert_eq!(backend("sqlite://state.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(backend("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend("postgresql://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend("PostgreSQL://u@h/db").unwrap(), Backend::Postgres);
        for bad in [
            "mysql://u@h/db",
            "state.db",
            "",
            "/var/lib/patchday/state.db",
        ] {
            let err = backend(bad).unwrap_err();
            assert!(
                err.to_string().contains("expected a sqlite:"),
                "{bad}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn open_existing_sqlite_does_not_create_and_postgres_connects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        let url = format!("sqlite://{}", path.display());
        let err = AnyStore::open_existing(&url).await.unwrap_err();
        assert!(err.to_string().contains("no such database file"), "{err}");
        assert!(!path.exists());
        AnyStore::open(&url).await.unwrap().close().await;
        let store = AnyStore::open_existing(&url).await.unwrap();
        assert!(matches!(store, AnyStore::Sqlite(_)));
        store.close().await;

        let (created, schema) = open_postgres().await;
        created.close().await;
        let store = AnyStore::open_existing(&schema.url).await.unwrap();
        assert!(matches!(store, AnyStore::Postgres(_)));
        assert_eq!(store.chain_head().await.unwrap(), None);
        store.close().await;
    }
}
