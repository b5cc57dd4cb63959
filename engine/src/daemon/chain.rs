//! The audit chain's verification state, as the audit browser (`GET /audit`) shows it.
//!
//! A page view never verifies the log: with years of history that is millions of events. The
//! daemon verifies it incrementally instead ([`run`]): at start it walks the whole log once in
//! pages of [`PAGE`] events by `seq` (as `patchday audit verify` does, in constant memory), then
//! every [`EVERY`] only the events appended since, keeping the [`ChainVerifier`] (the last seq
//! and hash: a few bytes) between passes; each pass ends by checking the recorded chain head.
//! The page shows the outcome of the last pass and when it was ([`ChainWatch::state`]).
//!
//! What this does not see: a rewrite of events already verified (the verifier does not read
//! them again). That is what signed checkpoints and `patchday audit verify` (the Merkle root at
//! every checkpoint) are for; the page says so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Shared;
use crate::audit::{ChainBroken, ChainVerifier};
use crate::store::{Store, StoreError};

/// Events read per page.
pub const PAGE: u32 = 2_000;

/// How often the daemon verifies what was appended.
pub const EVERY: Duration = Duration::from_secs(5);

/// The outcome of the last pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// No pass has finished yet (the first one walks the whole log).
    Pending,
    /// Every event up to the recorded head links and hashes correctly.
    Verified { events: u64 },
    /// The chain is broken: the first bad event and why. Passes stop until a restart.
    Broken(ChainBroken),
    /// The store could not be read.
    Unavailable(String),
}

/// The state shown on the page: the outcome and when the pass that found it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub status: ChainStatus,
    pub checked_at: Option<DateTime<Utc>>,
}

/// The verifier kept between passes, and the last outcome.
#[derive(Debug)]
pub struct ChainWatch {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    verifier: ChainVerifier,
    state: ChainState,
}

impl Default for ChainWatch {
    fn default() -> Self {
        ChainWatch {
            inner: Mutex::new(Inner {
                verifier: ChainVerifier::new(),
                state: ChainState {
                    status: ChainStatus::Pending,
                    checked_at: None,
                },
            }),
        }
    }
}

impl ChainWatch {
    /// The outcome of the last pass.
    pub fn state(&self) -> ChainState {
        self.lock().state.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One pass: verifies the events appended since the last pass, then the head. The lock is
    /// held only to copy the verifier out and the outcome in, never across a read.
    pub async fn advance<S: Store>(&self, store: &S, now: DateTime<Utc>) {
        let mut verifier = {
            let inner = self.lock();
            if matches!(inner.state.status, ChainStatus::Broken(_)) {
                return;
            }
            inner.verifier.clone()
        };
        let status = match verify_appended(store, &mut verifier).await {
            Ok(Ok(events)) => ChainStatus::Verified { events },
            Ok(Err(broken)) => ChainStatus::Broken(broken),
            Err(e) => ChainStatus::Unavailable(e.to_string()),
        };
        let mut inner = self.lock();
        if verifier.count() >= inner.verifier.count() {
            inner.verifier = verifier;
        }
        inner.state = ChainState {
            status,
            checked_at: Some(now),
        };
    }
}

/// Feeds `verifier` the events after the last one it checked, then checks the recorded head.
async fn verify_appended<S: Store>(
    store: &S,
    verifier: &mut ChainVerifier,
) -> Result<Result<u64, ChainBroken>, StoreError> {
    loop {
        // Seqs are 1, 2, 3...: the count checked is the last seq checked.
        let last = verifier.count() as i64;
        // The first page from the lowest seq there is: an event forged below 1 is refused.
        let after = if last == 0 { i64::MIN } else { last };
        let page = store.event_texts_after(after, PAGE).await?;
        if page.is_empty() {
            let head = store.chain_head().await?;
            // An event committed after the empty page was read moves the head: read again.
            if head.as_ref().is_some_and(|h| h.seq > last)
                && !store.event_texts_after(last, 1).await?.is_empty()
            {
                continue;
            }
            return Ok(verifier.clone().finish(head.as_ref()).map(|n| n as u64));
        }
        for event in &page {
            if let Err(broken) = verifier.push_text(event) {
                return Ok(Err(broken));
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Verifies what was appended every [`EVERY`], until shutdown.
pub async fn run<S: Store>(shared: Arc<Shared<S>>) {
    loop {
        shared
            .chain
            .advance(shared.engine.store.as_ref(), shared.clock.now())
            .await;
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::store::sqlite::SqliteStore;
    use crate::store::{Change, NewEvent, Store};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 8, 14, 0, 0).unwrap()
    }

    async fn append(store: &SqliteStore, n: usize) {
        let changes = (0..n)
            .map(|_| Change {
                events: vec![NewEvent {
                    at: t0(),
                    actor: "engine".into(),
                    action: "link.rejected".into(),
                    run_id: None,
                    step_id: None,
                    details: serde_json::json!({}),
                }],
                ..Change::default()
            })
            .collect();
        store.commit(changes).await.unwrap();
    }

    #[tokio::test]
    async fn passes_verify_what_was_appended_and_keep_a_break() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let watch = ChainWatch::default();
        assert_eq!(watch.state().status, ChainStatus::Pending);
        watch.advance(&store, t0()).await;
        assert_eq!(watch.state().status, ChainStatus::Verified { events: 0 });

        append(&store, 2_500).await;
        watch.advance(&store, t0()).await;
        assert_eq!(
            watch.state().status,
            ChainStatus::Verified { events: 2_500 }
        );
        assert_eq!(watch.state().checked_at, Some(t0()));

        append(&store, 3).await;
        // A forged event past the head (the triggers forbid updates, not inserts).
        store
            .execute_raw(
                "INSERT INTO events (seq, at, actor, action, details, prev_hash, hash) \
                 VALUES (2504, '2026-12-08T14:00:00.000000Z', 'x', 'x', '{}', 'bad', 'bad')",
            )
            .await
            .unwrap();
        watch.advance(&store, t0()).await;
        let ChainStatus::Broken(broken) = watch.state().status else {
            panic!("not broken: {:?}", watch.state());
        };
        assert_eq!(broken.seq, 2504);
        watch.advance(&store, t0()).await;
        assert!(
            matches!(watch.state().status, ChainStatus::Broken(_)),
            "stays broken"
        );
    }
}
