//! The runbooks folder as the daemon holds it (DESIGN §8 `serve`, §9 `[runbooks]`): loaded
//! at start, watched while it runs, pulled from git when `[runbooks] git_pull` is set.
//!
//! [`watch`] looks at the folder every [`WATCH_INTERVAL`]: the size and modification time of
//! every runbook file in it and of every file those runbooks read (templates, inventories),
//! so an edit, a new file, a deleted file or a `git pull` is seen within about a second. A
//! change reloads the whole folder ([`Runbooks::load`], off the async threads) and merges it
//! over what runs ([`Runbooks::merge`]):
//! - a valid runbook replaces the version of the same name; runs already started keep the
//!   version they started with (they hold it, and pinned its content hash and commit);
//! - an invalid file keeps the last good version of the runbook it held running, and is
//!   recorded as `runbook.rejected` with its errors, mailed to that runbook's `notify.to`
//!   (or its `committee` role) whatever `notify.on` says: a broken runbook is never silent;
//! - added, changed and removed runbooks are recorded as `runbook.loaded`, `runbook.updated`
//!   and `runbook.removed` with their content hash (the version's: an edit of the inventory or
//!   a template it reads is an update too) and commit; at start, against what the audit log
//!   last recorded, so an edit made while no daemon ran is recorded as well
//!   ([`record_initial`]).
//!
//! Files are read without ever blocking, only if they are regular files, and never past the
//! size limit ([`crate::sources`]): a FIFO or a symlink to `/dev/zero` in place of an
//! inventory is a rejection, not a hung or bloated daemon. A reload and a `git pull` (killed
//! after `[runbooks] git_timeout`) never hold up a shutdown.
//!
//! Invariant: a runbook error never stops the daemon or the other runbooks; a rejected
//! version is recorded once per distinct content, not once per look.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::{DaemonError, Shared};
use crate::calendar::Blackout;
use crate::notification::{Facts, Notification};
use crate::run::notify::{always_told, rendered_email};
use crate::store::{Change, NewEmail, NewEvent, Store, StoreError};
use crate::validate::CheckedRunbook;

/// How often the folder is looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A loaded, valid runbook (its version holds the texts it was read from).
#[derive(Debug, Clone)]
pub struct LoadedRunbook {
    pub checked: Arc<CheckedRunbook>,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its version's hash (the runbook's text and every file it read), as runs pin it.
    pub content_hash: String,
    /// The folder's git commit when it was read (`None`: not a git work tree).
    pub commit: Option<String>,
}

/// A runbook file that failed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub file: PathBuf,
    /// Its diagnostics, rendered (`file:line:col: message` with a snippet).
    pub errors: Vec<String>,
    /// SHA-256 of the file's text (empty if unreadable): one record per distinct content.
    pub text_hash: String,
    /// The runbook whose last good version keeps running in its place, if any.
    pub kept: Option<String>,
}

impl Rejected {
    /// `runbook runbooks/x.yaml rejected (2 errors):` and the errors.
    pub fn message(&self) -> String {
        let n = self.errors.len();
        format!(
            "runbook {} rejected ({n} error{}):\n{}",
            self.file.display(),
            if n == 1 { "" } else { "s" },
            self.errors.join("\n")
        )
    }
}

/// The runbooks folder as loaded: the valid runbooks by name, and what was rejected.
#[derive(Debug, Default, Clone)]
pub struct Runbooks {
    pub by_name: BTreeMap<String, LoadedRunbook>,
    pub rejected: Vec<Rejected>,
    /// Every file the load read besides the folder's runbook files (templates, inventories).
    pub references: Vec<PathBuf>,
    /// The folder's git commit when it was read (`None`: not a git work tree).
    pub commit: Option<String>,
}

/// What a reload changed, for the audit log.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub loaded: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// Rejections not recorded before (new file, or new content).
    pub rejected: Vec<Rejected>,
}

impl Runbooks {
    /// Reads and checks every runbook in `dir`; an invalid one is reported and left out,
    /// never stopping the others. Org-wide `blackouts` are added to every schedule.
    pub fn load(
        dir: &Path,
        blackouts: &[Blackout],
        ansible: &crate::sources::AnsibleInventories,
    ) -> Result<Runbooks, DaemonError> {
        let fail = |message: String| DaemonError::Runbooks {
            dir: dir.display().to_string(),
            message,
        };
        if !dir.is_dir() {
            return Err(fail(
                "no such folder (set [runbooks] dir or --runbooks)".into(),
            ));
        }
        let files =
            crate::sources::expand(&[dir.to_path_buf()]).map_err(|e| fail(e.to_string()))?;
        let checked = crate::sources::check_files_with(&files, ansible);
        let commit = crate::git::commit_of(dir);
        let mut runbooks = Runbooks {
            commit: commit.clone(),
            references: checked
                .sources
                .paths()
                .filter(|p| !files.contains(p))
                .cloned()
                .collect(),
            ..Runbooks::default()
        };
        for (loaded, one) in &checked.runbooks {
            let file = &loaded.file;
            match one {
                Some(one) => {
                    let mut one = one.clone();
                    one.schedule.add_blackouts(blackouts.iter().cloned());
                    runbooks.by_name.insert(
                        one.runbook.name.value.clone(),
                        LoadedRunbook {
                            content_hash: one.version.hash(),
                            checked: Arc::new(one),
                            file: PathBuf::from(file),
                            commit: commit.clone(),
                        },
                    );
                }
                None => runbooks.rejected.push(Rejected {
                    file: PathBuf::from(file),
                    errors: checked
                        .diagnostics
                        .iter()
                        .filter(|d| d.is_error() && &d.file == file)
                        .map(|d| d.render(None).trim_end().to_string())
                        .collect(),
                    text_hash: crate::run::sha256_hex(
                        checked.text(file).unwrap_or_default().as_bytes(),
                    ),
                    kept: None,
                }),
            }
        }
        Ok(runbooks)
    }

    pub fn get(&self, name: &str) -> Option<&LoadedRunbook> {
        self.by_name.get(name)
    }

    /// `fresh` (the folder as just read) over `self` (what runs now): valid runbooks from
    /// `fresh`; for each rejected file, the last good runbook it held in `self` kept running.
    /// Returns the merged set and what changed.
    pub fn merge(&self, mut fresh: Runbooks) -> (Runbooks, Changes) {
        let mut changes = Changes::default();
        for rejected in &mut fresh.rejected {
            let last_good = self
                .by_name
                .values()
                .find(|l| l.file == rejected.file && !fresh.by_name.contains_key(l.name()));
            if let Some(last_good) = last_good {
                rejected.kept = Some(last_good.name().to_string());
                fresh
                    .by_name
                    .insert(last_good.name().to_string(), last_good.clone());
            }
            let seen = self
                .rejected
                .iter()
                .any(|r| r.file == rejected.file && r.text_hash == rejected.text_hash);
            if !seen {
                changes.rejected.push(rejected.clone());
            }
        }
        for (name, new) in &fresh.by_name {
            match self.by_name.get(name) {
                None => changes.loaded.push(name.clone()),
                Some(old) if old.content_hash != new.content_hash => {
                    changes.updated.push(name.clone())
                }
                Some(_) => {}
            }
        }
        changes.removed = self
            .by_name
            .keys()
            .filter(|name| !fresh.by_name.contains_key(*name))
            .cloned()
            .collect();
        (fresh, changes)
    }

    /// What [`watch`] compares: every runbook file in `dir` and every file they read, with
    /// size and modification time (a missing file counts as a state too).
    fn fingerprint(&self, dir: &Path) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
        let mut files = crate::sources::expand(&[dir.to_path_buf()]).unwrap_or_default();
        files.extend(self.references.iter().cloned());
        files.push(dir.to_path_buf());
        files
            .into_iter()
            .map(|path| {
                let stamp = stamp(&path);
                (path, stamp)
            })
            .collect()
    }
}

/// A file's size and modification time: what the watchers compare (`None`: missing).
pub(super) fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

impl LoadedRunbook {
    pub fn name(&self) -> &str {
        &self.checked.runbook.name.value
    }
}

/// Where the folder is and how to keep it current.
#[derive(Debug, Clone)]
pub struct Watch {
    pub dir: PathBuf,
    pub blackouts: Vec<Blackout>,
    /// `git pull --ff-only` this often (`[runbooks] git_pull`), when set.
    pub git_pull: Option<Duration>,
    /// How long a pull may take before it is killed (`[runbooks] git_timeout`).
    pub git_timeout: Duration,
    /// How Ansible inventories are read (`[ansible] inventory`).
    pub ansible: crate::sources::AnsibleInventories,
}

/// Looks at the folder until shutdown; pulls from git when due; reloads on change.
pub async fn watch<S: Store>(shared: Arc<Shared<S>>, watch: Watch) {
    let mut last = fingerprint_of(&shared, &watch.dir).await;
    let mut next_pull = watch
        .git_pull
        .map(|every| tokio::time::Instant::now() + every);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        if let (Some(at), Some(every)) = (next_pull, watch.git_pull)
            && tokio::time::Instant::now() >= at
        {
            // Shutdown does not wait for a pull: dropping it kills git.
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                () = pull(&watch.dir, watch.git_timeout) => {}
            }
            next_pull = Some(tokio::time::Instant::now() + every);
        }
        let now = fingerprint_of(&shared, &watch.dir).await;
        if now != last {
            last = now;
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                result = reload(&shared, &watch) => {
                    if let Err(e) = result {
                        tracing::warn!("runbooks reload: {e}");
                    }
                }
            }
        }
    }
}

async fn fingerprint_of<S: Store>(
    shared: &Shared<S>,
    dir: &Path,
) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
    let runbooks = shared.runbooks();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || runbooks.fingerprint(&dir))
        .await
        .unwrap_or_default()
}

async fn pull(dir: &Path, timeout: Duration) {
    let shown = dir.display();
    match crate::git::pull_ff_only(dir, timeout).await {
        Ok(_) => tracing::debug!("git pull --ff-only in {shown}: done"),
        Err(e) => tracing::warn!("git pull --ff-only in {shown}: {e}"),
    }
}

/// Reads the folder again, records what changed, and makes the merged set current.
pub async fn reload<S: Store>(shared: &Arc<Shared<S>>, watch: &Watch) -> Result<(), DaemonError> {
    let (dir, blackouts, ansible) = (
        watch.dir.clone(),
        watch.blackouts.clone(),
        watch.ansible.clone(),
    );
    let fresh = tokio::task::spawn_blocking(move || Runbooks::load(&dir, &blackouts, &ansible))
        .await
        .map_err(|e| DaemonError::Runbooks {
            dir: watch.dir.display().to_string(),
            message: e.to_string(),
        })??;
    let current = shared.runbooks();
    let (merged, changes) = current.merge(fresh);
    record(shared, &described_all(&current), &merged, &changes).await?;
    shared.counters.reloaded(changes.rejected.len());
    tracing::info!(
        loaded = changes.loaded.len(),
        updated = changes.updated.len(),
        removed = changes.removed.len(),
        rejected = changes.rejected.len(),
        "runbooks reloaded: {} runbook(s)",
        merged.by_name.len()
    );
    shared.set_runbooks(merged);
    shared.reschedule.notify_one();
    shared.prune_versions().await;
    Ok(())
}

/// At start: records what changed since the audit log last spoke of each runbook (an edit,
/// an addition or a removal made while no daemon ran is `runbook.updated`, `.loaded` or
/// `.removed` now, as if a daemon had watched), and the start-up rejections.
pub async fn record_initial<S: Store>(shared: &Arc<Shared<S>>) -> Result<(), StoreError> {
    let runbooks = shared.runbooks();
    let before = recorded(shared).await?;
    let hash_of =
        |details: &serde_json::Value| details["content_hash"].as_str().map(str::to_string);
    let mut changes = Changes {
        rejected: runbooks.rejected.clone(),
        ..Changes::default()
    };
    for (name, loaded) in &runbooks.by_name {
        match before.get(name) {
            None => changes.loaded.push(name.clone()),
            Some(details) if hash_of(details).as_deref() != Some(&loaded.content_hash) => {
                changes.updated.push(name.clone())
            }
            Some(_) => {}
        }
    }
    changes.removed = before
        .keys()
        .filter(|name| !runbooks.by_name.contains_key(*name))
        .cloned()
        .collect();
    record(shared, &before, &runbooks, &changes).await
}

/// What the audit log last said of each runbook it says is loaded: the details of its last
/// `runbook.loaded` / `runbook.updated` event (a later `runbook.removed` drops it).
async fn recorded<S: Store>(
    shared: &Shared<S>,
) -> Result<BTreeMap<String, serde_json::Value>, StoreError> {
    let actions = ["runbook.loaded", "runbook.updated", "runbook.removed"];
    let events = shared.engine.store.events_by_action(&actions).await?;
    let mut out = BTreeMap::new();
    for event in events {
        let Some(name) = event.details["runbook"].as_str().map(str::to_string) else {
            continue;
        };
        if event.action == "runbook.removed" {
            out.remove(&name);
        } else {
            out.insert(name, event.details);
        }
    }
    Ok(out)
}

/// How the audit log describes a loaded runbook.
fn described(l: &LoadedRunbook) -> serde_json::Value {
    json!({ "runbook": l.name(), "file": l.file.display().to_string(), "content_hash": l.content_hash, "commit": l.commit })
}

fn described_all(runbooks: &Runbooks) -> BTreeMap<String, serde_json::Value> {
    runbooks
        .by_name
        .iter()
        .map(|(name, l)| (name.clone(), described(l)))
        .collect()
}

/// One commit: an audit event per change, an email per rejection with someone to tell.
/// `before`: how each runbook was described before the change.
async fn record<S: Store>(
    shared: &Arc<Shared<S>>,
    before: &BTreeMap<String, serde_json::Value>,
    after: &Runbooks,
    changes: &Changes,
) -> Result<(), StoreError> {
    let now = shared.clock.now();
    let mut change = Change::default();
    let event = |action: &str, details: serde_json::Value| NewEvent {
        at: now,
        actor: "engine".into(),
        action: action.into(),
        run_id: None,
        step_id: None,
        details,
    };
    for name in &changes.loaded {
        change
            .events
            .push(event("runbook.loaded", described(&after.by_name[name])));
    }
    for name in &changes.updated {
        let mut details = described(&after.by_name[name]);
        details["previous_content_hash"] = before[name]["content_hash"].clone();
        change.events.push(event("runbook.updated", details));
    }
    for name in &changes.removed {
        change
            .events
            .push(event("runbook.removed", before[name].clone()));
    }
    for rejected in &changes.rejected {
        tracing::warn!("{}", rejected.message());
        let kept = rejected.kept.as_ref().and_then(|n| after.by_name.get(n));
        change.events.push(event(
            "runbook.rejected",
            json!({
                "file": rejected.file.display().to_string(),
                "errors": rejected.errors,
                "content_hash": rejected.text_hash,
                "commit": after.commit,
                "kept": kept.map(described),
            }),
        ));
        let dashboard = shared.engine.dashboard_url();
        if let Some(email) = kept.and_then(|k| rejection_email(rejected, k, now, &dashboard)) {
            change.emails.push(email);
        }
    }
    if change.events.is_empty() {
        return Ok(());
    }
    // Several daemons read one folder: only the leader records it, under its lease's fence.
    let Some(fence) = shared.cluster.fence() else {
        return Ok(());
    };
    change.fence = Some(fence);
    shared.engine.store.commit(vec![change]).await?;
    shared.mail.notify_one();
    Ok(())
}

/// The email about a rejected change, to the kept runbook's `notify.to` (or `committee`),
/// rendered with the kept runbook's `rejected` template.
fn rejection_email(
    rejected: &Rejected,
    kept: &LoadedRunbook,
    now: chrono::DateTime<chrono::Utc>,
    dashboard_url: &str,
) -> Option<NewEmail> {
    let checked = &kept.checked;
    let to = always_told(checked);
    if to.is_empty() {
        return None;
    }
    let notification = Notification {
        runbook: kept.name().to_string(),
        at: now,
        tz: checked.tz,
        dashboard_url: dashboard_url.to_string(),
        facts: Facts::Rejected {
            file: rejected.file.display().to_string(),
            errors: rejected.errors.clone(),
            content_hash: kept.content_hash.clone(),
            commit: kept
                .commit
                .clone()
                .unwrap_or_else(|| "none: not a git work tree".into()),
        },
    };
    Some(rendered_email(checked, &notification, to, None, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: a\ntimezone: UTC\nsteps:\n  s: { uses: noop }\n";
    const GOOD_TOO: &str =
        "name: a\ntimezone: UTC\nsteps:\n  s: { uses: noop }\n  t: { uses: noop }\n";
    const BAD: &str = "name: a\ntimezone: UTC\nsteps:\n  s: { uses: nope }\n";

    fn load(dir: &Path) -> Runbooks {
        Runbooks::load(dir, &[], &Default::default()).unwrap()
    }

    #[test]
    fn an_invalid_change_keeps_the_last_good_version_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let first = load(dir.path());
        let hash = first.by_name["a"].content_hash.clone();

        std::fs::write(&file, BAD).unwrap();
        let (merged, changes) = first.merge(load(dir.path()));
        assert_eq!(
            merged.by_name["a"].content_hash, hash,
            "the good version stays"
        );
        assert_eq!(changes.rejected.len(), 1);
        assert_eq!(changes.rejected[0].kept.as_deref(), Some("a"));
        assert!(
            changes.rejected[0].errors[0].contains("nope"),
            "{:?}",
            changes.rejected[0].errors
        );
        assert!(changes.updated.is_empty() && changes.removed.is_empty());

        // Read again with the same broken text: nothing new to report.
        let (again, changes) = merged.merge(load(dir.path()));
        assert_eq!(changes, Changes::default());

        // Fixed: the new version replaces the old one.
        std::fs::write(&file, GOOD_TOO).unwrap();
        let (fixed, changes) = again.merge(load(dir.path()));
        assert_eq!(changes.updated, ["a"]);
        assert_ne!(fixed.by_name["a"].content_hash, hash);
        assert!(fixed.rejected.is_empty());
    }

    #[test]
    fn added_and_removed_files_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        let first = load(dir.path());
        std::fs::write(
            dir.path().join("b.yaml"),
            GOOD.replace("name: a", "name: b"),
        )
        .unwrap();
        let (second, changes) = first.merge(load(dir.path()));
        assert_eq!(changes.loaded, ["b"]);
        std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
        let (third, changes) = second.merge(load(dir.path()));
        assert_eq!(changes.removed, ["a"]);
        assert_eq!(third.by_name.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn the_fingerprint_changes_with_a_referenced_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        let runbooks = Runbooks {
            references: vec![dir.path().join("inventory.yaml")],
            ..load(dir.path())
        };
        let before = runbooks.fingerprint(dir.path());
        std::fs::write(dir.path().join("inventory.yaml"), "hosts: {}\n").unwrap();
        assert_ne!(runbooks.fingerprint(dir.path()), before);
    }

    /// An inventory that is a FIFO (nobody writes to it) or a symlink to `/dev/zero`: the
    /// reload returns at once with the runbook rejected and says why; nothing hangs, nothing
    /// is read without end.
    #[test]
    fn a_fifo_or_a_device_in_place_of_a_file_is_rejected_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let runbook = "name: a\ninventory: hosts.yaml\nsteps:\n  s: { uses: noop, for_each: { group: all } }\n";
        std::fs::write(dir.path().join("a.yaml"), runbook).unwrap();
        let inventory = dir.path().join("hosts.yaml");
        nix::unistd::mkfifo(&inventory, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        let loaded = load(dir.path());
        assert!(loaded.by_name.is_empty());
        let errors = loaded.rejected[0].errors.join("\n");
        assert!(errors.contains("not a regular file"), "{errors}");
        std::fs::remove_file(&inventory).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &inventory).unwrap();
        let loaded = load(dir.path());
        let errors = loaded.rejected[0].errors.join("\n");
        assert!(errors.contains("not a regular file"), "{errors}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
