//! What the links routes keep between requests, so that showing a confirmation page costs one
//! small store read (the audit chain's head: one row) instead of three (the run with its
//! snapshot, every step row of the run, the step's decisions). On this machine that is most of
//! the page's cost: each store read is a round trip to a database thread.
//!
//! - [`RunCache`]: runs by id, as first read. A link needs only what is fixed when a run is
//!   created (runbook, cycle, commit, content hash, snapshot), and runs are never deleted.
//! - [`StepCache`]: per (run, step, host), the row's state, the step's rendered ask and its
//!   decisions, tagged with the chain head read *before* them. Every change to step rows or
//!   decisions commits together with its audit event (ARCHITECTURE.md, invariants), and every
//!   event moves the chain head; so a view whose tag is the current head is what the store would
//!   answer now, whichever process wrote last (the CLI, another daemon). A write between the
//!   head read and the other reads leaves the view tagged with the older head: the next request
//!   reads again. A view is also only used with the very runbook it was built from.
//!
//! - [`HeadReads`]: the chain head itself, read once for every request waiting for it. A request
//!   takes the result of a read that *started after it arrived* (so it sees every commit done
//!   before it arrived, as with a read of its own): the read in flight when it arrives is too
//!   old, so it waits for the next one, which one read serves for all who waited. Under load that
//!   turns one database round trip per request into one per round trip's time.
//!
//! The maps are bounded (they start over when full). Locks are held for a lookup or an update
//! only, never across an `.await`. Only `GET`/`HEAD`/`POST` checks read them: a decision itself is
//! checked again by [`crate::run::Engine::decide`] in its own transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::run::PersonAsk;
use crate::store::{ChainHead, DecisionRow, RunRow, StepState, Store, StoreError};
use crate::validate::CheckedRunbook;

/// The most runs, and step views, kept.
const CAPACITY: usize = 256;

/// Runs by id, each as read the first time one of its links was fetched. Read only the fields
/// fixed at the run's creation from it: its `state` and `finished_at` are those of that read.
#[derive(Debug, Default)]
pub struct RunCache {
    runs: Mutex<HashMap<String, Arc<RunRow>>>,
}

impl RunCache {
    /// The run `id`, from the store the first time.
    pub async fn get<S: Store>(
        &self,
        store: &S,
        id: &str,
    ) -> Result<Option<Arc<RunRow>>, StoreError> {
        if let Some(run) = lock(&self.runs).get(id) {
            return Ok(Some(run.clone()));
        }
        let Some(run) = store.run(id).await? else {
            return Ok(None);
        };
        let run = Arc::new(run);
        insert(&self.runs, id.to_string(), run.clone());
        Ok(Some(run))
    }
}

/// One person-step row as the store showed it at `head`.
#[derive(Debug)]
pub struct StepView {
    /// The chain head read before the rest.
    head: Option<ChainHead>,
    pub run: Arc<RunRow>,
    pub checked: Arc<CheckedRunbook>,
    /// The row's state.
    pub state: StepState,
    /// The step's inputs, rendered for this row.
    pub ask: PersonAsk,
    /// The decisions on the row so far.
    pub decisions: Vec<DecisionRow>,
}

impl StepView {
    pub fn new(
        head: Option<ChainHead>,
        run: Arc<RunRow>,
        checked: Arc<CheckedRunbook>,
        state: StepState,
        ask: PersonAsk,
        decisions: Vec<DecisionRow>,
    ) -> StepView {
        StepView {
            head,
            run,
            checked,
            state,
            ask,
            decisions,
        }
    }
}

/// (run, step, host).
type Key = (String, String, String);

/// Step views by (run, step, host).
#[derive(Debug, Default)]
pub struct StepCache {
    views: Mutex<HashMap<Key, Arc<StepView>>>,
}

impl StepCache {
    /// The view of the row, if one was built at `head` from `checked`.
    pub fn get(
        &self,
        (run, step, host): (&str, &str, &str),
        head: &Option<ChainHead>,
        checked: &Arc<CheckedRunbook>,
    ) -> Option<Arc<StepView>> {
        let key = (run.to_string(), step.to_string(), host.to_string());
        lock(&self.views)
            .get(&key)
            .filter(|v| v.head == *head && Arc::ptr_eq(&v.checked, checked))
            .cloned()
    }

    /// Keeps `view` of the row.
    pub fn put(&self, (run, step, host): (&str, &str, &str), view: Arc<StepView>) {
        let key = (run.to_string(), step.to_string(), host.to_string());
        insert(&self.views, key, view);
    }
}

fn lock<K, V>(map: &Mutex<HashMap<K, V>>) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inserts, starting over when the map is full.
fn insert<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut map = lock(map);
    if map.len() >= CAPACITY && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

/// The result of a chain head read (a store error as its message).
type HeadResult = Result<Option<ChainHead>, String>;

/// Reads of the chain head shared by the requests that wait for them.
#[derive(Debug)]
pub struct HeadReads {
    state: Mutex<HeadState>,
    /// The number of the last finished read.
    done: watch::Sender<u64>,
}

#[derive(Debug)]
struct HeadState {
    /// The number of the last read started (reads are numbered from 1).
    started: u64,
    in_flight: bool,
    /// The last finished read: its number and result.
    last: (u64, HeadResult),
}

impl Default for HeadReads {
    fn default() -> Self {
        HeadReads {
            state: Mutex::new(HeadState {
                started: 0,
                in_flight: false,
                last: (0, Ok(None)),
            }),
            done: watch::Sender::new(0),
        }
    }
}

impl HeadReads {
    /// The chain head, from a read that started after this call.
    pub async fn read<S: Store>(self: &Arc<Self>, store: &Arc<S>) -> HeadResult {
        let mut finished = self.done.subscribe();
        let wanted = {
            let mut state = self.lock();
            if state.in_flight {
                state.started + 1
            } else {
                self.start(&mut state, store)
            }
        };
        loop {
            {
                let mut state = self.lock();
                if state.last.0 >= wanted {
                    return state.last.1.clone();
                }
                if !state.in_flight {
                    self.start(&mut state, store);
                }
            }
            if finished.changed().await.is_err() {
                return Err("the chain head reader stopped".into());
            }
        }
    }

    /// Starts the next read in its own task (so that a request that goes away cannot leave it
    /// half done); returns its number.
    fn start<S: Store>(self: &Arc<Self>, state: &mut HeadState, store: &Arc<S>) -> u64 {
        state.started += 1;
        state.in_flight = true;
        let number = state.started;
        let reads = self.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let mut finish = Finish {
                reads,
                number,
                result: Err("the chain head read stopped".into()),
            };
            finish.result = store.chain_head().await.map_err(|e| e.to_string());
        });
        number
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeadState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Publishes a read's result when dropped: when the read ends, or if its task is dropped first.
struct Finish {
    reads: Arc<HeadReads>,
    number: u64,
    result: HeadResult,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let result = std::mem::replace(&mut self.result, Ok(None));
        {
            let mut state = self.reads.lock();
            state.last = (self.number, result);
            state.in_flight = false;
        }
        self.reads.done.send_replace(self.number);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};

    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Change, NewEvent};

    async fn append(store: &SqliteStore, action: &str) {
        let event = NewEvent {
            at: chrono::Utc::now(),
            actor: "test".into(),
            action: action.into(),
            run_id: None,
            step_id: None,
            details: serde_json::json!({}),
        };
        let change = Change {
            events: vec![event],
            ..Change::default()
        };
        store.commit(vec![change]).await.unwrap();
    }

    #[tokio::test]
    async fn a_head_read_sees_every_commit_made_before_it() {
        let store = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let reads = Arc::new(HeadReads::default());
        assert_eq!(reads.read(&store).await, Ok(None));
        for n in 1..=3 {
            append(&store, "test.appended").await;
            let head = reads.read(&store).await.unwrap().expect("a head");
            assert_eq!(Some(head), store.chain_head().await.unwrap(), "after {n}");
        }
        assert_eq!(reads.lock().started, 4);
    }

    #[tokio::test]
    async fn requests_arriving_during_a_read_share_the_next_one() {
        let store = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        append(&store, "test.appended").await;
        let reads = Arc::new(HeadReads::default());
        // A read (number 7) is in flight when 50 requests arrive: it may have started before
        // the commits they must see, so they wait for the next one.
        {
            let mut state = reads.lock();
            state.started = 7;
            state.in_flight = true;
        }
        let mut waiting: Vec<Pin<Box<dyn Future<Output = HeadResult> + '_>>> =
            (0..50).map(|_| Box::pin(reads.read(&store)) as _).collect();
        let mut cx = Context::from_waker(Waker::noop());
        for request in &mut waiting {
            assert!(request.as_mut().poll(&mut cx).is_pending());
        }
        // Read 7 ends with an old answer; read 8, started by one of them, serves all 50.
        drop(Finish {
            reads: reads.clone(),
            number: 7,
            result: Ok(None),
        });
        let head = store.chain_head().await.unwrap();
        assert!(head.is_some());
        for request in waiting {
            assert_eq!(request.await, Ok(head.clone()));
        }
        assert_eq!(reads.lock().started, 8);
    }
}
