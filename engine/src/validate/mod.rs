//! Validation: every check a runbook must pass before it may run, collecting all errors.
//!
//! Validation does no I/O. The caller reads the runbook and the files it refers to (inventory,
//! template files) into [`Sources`] first ([`crate::sources`] does that for the CLI); the
//! checks here only look things up in it. A runbook that passes comes out as a
//! [`CheckedRunbook`]: the model plus what was compiled from it (the DAG, the time zone, the
//! parsed time expressions, the inventory), which planning and execution use.

mod notify;
mod steps;
mod templates;
mod times;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dag::Dag;
use crate::diagnostic::Diagnostic;
use crate::inventory::Inventory;
use crate::runbook::{LoadedRunbook, Runbook};
use crate::yaml::Loc;

pub use times::StepTimes;

/// The text of every file validation may look at, keyed by path. A failed read is kept as its
/// error text so that validation can report it where the file is referred to.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: BTreeMap<PathBuf, Result<String, String>>,
    /// Ansible inventory sources read through `ansible-inventory --list`: its JSON (or why it
    /// failed), keyed by the source's path. A source here is not read natively.
    listed: BTreeMap<PathBuf, Result<String, String>>,
}

impl Sources {
    pub fn insert(&mut self, path: PathBuf, text: Result<String, String>) {
        self.files.insert(path, text);
    }

    pub fn get(&self, path: &Path) -> Option<&Result<String, String>> {
        self.files.get(path)
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.files.contains_key(path) || self.listed.contains_key(path)
    }

    /// Records what `ansible-inventory --list` printed for the source at `path`.
    pub fn insert_listed(&mut self, path: PathBuf, json: Result<String, String>) {
        self.listed.insert(path, json);
    }

    /// `ansible-inventory --list` output for the source at `path`, if it was read that way.
    pub fn listed(&self, path: &Path) -> Option<&Result<String, String>> {
        self.listed.get(path)
    }

    /// Every file read (listed sources included), in path order.
    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        let mut all: Vec<&PathBuf> = self.files.keys().chain(self.listed.keys()).collect();
        all.sort();
        all.dedup();
        all.into_iter()
    }
}

/// A runbook that passed validation, with what was compiled from it.
#[derive(Debug, Clone)]
pub struct CheckedRunbook {
    /// The file as the user named it.
    pub file: String,
    /// The folder relative paths in the runbook are read from.
    pub dir: PathBuf,
    pub runbook: Runbook,
    pub dag: Dag,
    pub tz: chrono_tz::Tz,
    pub inventory: Option<Inventory>,
    /// Parsed `at` / `deadline` of each step, in file order.
    pub times: Vec<StepTimes>,
    /// The compiled schedule (rules, zone, runbook blackouts).
    pub schedule: crate::calendar::Schedule,
    /// The notification templates: `notify.templates` over the built-in ones.
    pub notifications: crate::notification::Templates,
    /// The texts it was checked from: what a run stores and is rebuilt from.
    pub version: std::sync::Arc<crate::version::Version>,
}

/// Everything a check needs to know about the runbook under test.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub dir: &'a Path,
    pub runbook: &'a Runbook,
    pub dag: &'a Dag,
    pub inventory: Option<&'a Inventory>,
    pub sources: &'a Sources,
    pub broken_steps: &'a std::collections::BTreeSet<String>,
    pub diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub fn error(&mut self, loc: Loc, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(self.file, loc, message));
    }

    pub fn warning(&mut self, loc: Loc, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::warning(self.file, loc, message));
    }

    /// A path written in the runbook, resolved against the runbook's folder.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// The character at `loc` in the runbook's own text, if the text is in the sources.
    pub fn char_at(&self, loc: Loc) -> Option<char> {
        let Some(Ok(text)) = self.sources.get(Path::new(self.file)) else {
            return None;
        };
        let line = text.lines().nth(loc.line.checked_sub(1)? as usize)?;
        line.chars().nth(loc.column.checked_sub(1)? as usize)
    }
}

/// Files a runbook refers to (inventory, template files, notification templates), resolved
/// against its folder, so the caller can read them into [`Sources`] before checking.
pub fn references(runbook: &Runbook, dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = runbook
        .inventory
        .iter()
        .flat_map(|i| crate::inventory::load::files(i, dir))
        .collect();
    out.extend(
        templates::template_files(runbook)
            .into_iter()
            .map(|(p, _)| dir.join(p)),
    );
    out.extend(notify::files(runbook).into_iter().map(|p| dir.join(p)));
    out
}

/// Checks one loaded runbook. Returns the checked runbook when there is no error, and every
/// diagnostic (errors and warnings) found on the way, the loader's included.
pub fn check(
    loaded: &LoadedRunbook,
    dir: &Path,
    sources: &Sources,
) -> (Option<CheckedRunbook>, Vec<Diagnostic>) {
    let mut diags = loaded.diagnostics.clone();
    let Some(runbook) = &loaded.runbook else {
        return (None, diags);
    };
    let dag = Dag::new(runbook.steps.iter().map(|(id, step)| {
        (
            id.value.as_str(),
            step.needs.iter().map(|n| n.value.as_str()).collect(),
        )
    }));
    let inventory = runbook.inventory.as_ref().and_then(|reference| {
        crate::inventory::load::load(&loaded.file, reference, dir, sources, &mut diags)
    });
    let mut ctx = Ctx {
        file: &loaded.file,
        dir,
        runbook,
        dag: &dag,
        inventory: inventory.as_ref(),
        sources,
        broken_steps: &loaded.broken_steps,
        diags: Vec::new(),
    };
    steps::check(&mut ctx);
    templates::check(&mut ctx);
    let notifications = notify::check(&mut ctx);
    let compiled = times::check(&mut ctx);
    diags.append(&mut ctx.diags);
    crate::diagnostic::sort(&mut diags);
    diags.dedup();
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    let paths = references(runbook, dir);
    let version = crate::version::Version::from_sources(&loaded.file, dir, &paths, sources);
    let checked = compiled.map(|(tz, times, schedule)| CheckedRunbook {
        version: std::sync::Arc::new(version),
        file: loaded.file.clone(),
        dir: dir.to_path_buf(),
        runbook: runbook.clone(),
        dag,
        tz,
        inventory,
        times,
        schedule,
        notifications,
    });
    (checked, diags)
}

/// Parses and checks an inventory file on its own (`patchday validate inventory/hosts.yaml`).
pub fn check_inventory_file(file: &str, text: &str) -> Vec<Diagnostic> {
    crate::inventory::load::check_file(file, text)
}

/// Runbook names must be unique within a folder: one error per repeated name.
pub fn check_unique_names(runbooks: &[&LoadedRunbook]) -> Vec<Diagnostic> {
    let mut seen: BTreeMap<&str, &LoadedRunbook> = BTreeMap::new();
    let mut out = Vec::new();
    for loaded in runbooks {
        let Some(rb) = &loaded.runbook else { continue };
        match seen.get(rb.name.value.as_str()) {
            Some(first) => out.push(Diagnostic::error(
                &loaded.file,
                rb.name.loc,
                format!(
                    "runbook name `{}` is already used by {}",
                    rb.name.value, first.file
                ),
            )),
            None => {
                seen.insert(&rb.name.value, loaded);
            }
        }
    }
    out
}
