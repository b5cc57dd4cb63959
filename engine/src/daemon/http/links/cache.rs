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
//! Both are bounded (they start over when full). Their locks are held for a lookup or an insert
//! only, never across an `.await`. Only `GET`/`HEAD`/`POST` checks read them: a decision itself is
//! checked again by [`crate::run::Engine::decide`] in its own transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
