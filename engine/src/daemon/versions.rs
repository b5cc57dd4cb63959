//! The runbook versions a daemon keeps in memory: those of its unfinished runs, next to the
//! versions in force (held by [`super::Runbooks`]). A run's version is rebuilt from the run's
//! snapshot the first time the daemon needs it (a resumed or taken-over run, a link clicked
//! on another daemon, the expiry task, a page) and kept while the run is unfinished; after a
//! reload and whenever a run ends, versions no unfinished run uses and not in force are
//! dropped ([`Versions::prune`]). A finished run's version is rebuilt for its pages each time
//! and not kept. So memory holds the current versions plus one per version still running,
//! however many edits and months go by.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::{LoadedRunbook, Runbooks};
use crate::run::{sha256_hex, version_of};
use crate::store::{RunRow, RunState};
use crate::validate::CheckedRunbook;
use crate::version::VersionError;

/// Versions of unfinished runs, by content hash.
#[derive(Debug, Default)]
pub struct Versions {
    by_hash: Mutex<HashMap<String, Arc<CheckedRunbook>>>,
}

impl Versions {
    /// The version `run` is bound to: kept, in force (when it is the run's), or rebuilt from
    /// the run's snapshot. Kept if the run is unfinished.
    pub fn for_run(
        &self,
        run: &RunRow,
        current: &Runbooks,
    ) -> Result<Arc<CheckedRunbook>, VersionError> {
        if let Some(kept) = self.lock().get(&run.content_hash) {
            return Ok(kept.clone());
        }
        let in_force = current
            .get(&run.runbook)
            .filter(|loaded| is_version_of(loaded, run))
            .map(|loaded| loaded.checked.clone());
        let checked = match in_force {
            Some(checked) => checked,
            None => Arc::new(version_of(run)?.check()?),
        };
        if run.state == RunState::Running {
            self.lock()
                .entry(run.content_hash.clone())
                .or_insert_with(|| checked.clone());
        }
        Ok(checked)
    }

    /// Drops every version whose content hash is not in `keep`.
    pub fn prune(&self, keep: &BTreeSet<String>) {
        self.lock().retain(|hash, _| keep.contains(hash));
    }

    /// The content hashes kept.
    pub fn hashes(&self) -> BTreeSet<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CheckedRunbook>>> {
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `loaded` is the version `run` started with. A run started before versions were
/// stored pinned the hash of its runbook's text alone.
fn is_version_of(loaded: &LoadedRunbook, run: &RunRow) -> bool {
    loaded.content_hash == run.content_hash
        || (run.snapshot.get("version").is_none()
            && sha256_hex(loaded.checked.version.text.as_bytes()) == run.content_hash)
}
