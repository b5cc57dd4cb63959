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
use crate::runbook::load::deserialize_document;
use crate::runbook::{LoadedRunbook, Runbook};
use crate::yaml::{self, Limits, Loc};

pub use times::StepTimes;

/// The text of every file validation may look at, keyed by path. A failed read is kept as its
/// error text so that validation can report it where the file is referred to.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: BTreeMap<PathBuf, Result<String, String>>,
}

impl Sources {
    pub fn insert(&mut self, path: PathBuf, text: Result<String, String>) {
        self.files.insert(path, text);
    }

    pub fn get(&self, path: &Path) -> Option<&Result<String, String>> {
        self.files.get(path)
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    /// Every file read, in path order.
    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.keys()
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
        .map(|i| dir.join(&i.value))
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
    let inventory = load_inventory(&loaded.file, runbook, dir, sources, &mut diags);
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
    let checked = compiled.map(|(tz, times, schedule)| CheckedRunbook {
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

/// Reads the runbook's inventory from `sources`; its errors are reported against its own file.
fn load_inventory(
    file: &str,
    runbook: &Runbook,
    dir: &Path,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Option<Inventory> {
    let reference = runbook.inventory.as_ref()?;
    let path = dir.join(&reference.value);
    let shown = path.display().to_string();
    let text = match sources.get(&path) {
        Some(Ok(text)) => text,
        Some(Err(e)) => {
            diags.push(Diagnostic::error(
                file,
                reference.loc,
                format!("cannot read inventory `{}`: {e}", reference.value),
            ));
            return None;
        }
        None => {
            diags.push(Diagnostic::error(
                file,
                reference.loc,
                format!("inventory `{}` was not found", reference.value),
            ));
            return None;
        }
    };
    parse_inventory(&shown, text, diags)
}

/// Parses and checks an inventory file on its own (`patchday validate inventory/hosts.yaml`).
pub fn check_inventory_file(file: &str, text: &str) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    parse_inventory(file, text, &mut diags);
    diags
}

fn parse_inventory(file: &str, text: &str, diags: &mut Vec<Diagnostic>) -> Option<Inventory> {
    let root = match yaml::parse(text, Limits::INVENTORY) {
        Ok(root) => root,
        Err(e) => {
            diags.push(Diagnostic::error(file, e.loc, e.message));
            return None;
        }
    };
    let inventory: Inventory = deserialize_document(file, root, diags, &mut Vec::new())?;
    check_inventory(file, &inventory, diags);
    Some(inventory)
}

fn check_inventory(file: &str, inventory: &Inventory, diags: &mut Vec<Diagnostic>) {
    let unknown = |name: &str| {
        let suggestion = yaml::nearest(name, inventory.hosts.keys().map(|k| k.value.as_str()));
        match suggestion {
            Some(s) => format!("unknown host `{name}`; did you mean `{s}`?"),
            None => format!("unknown host `{name}`: it is not in `hosts`"),
        }
    };
    for member in inventory.groups.values().flatten() {
        if !inventory.hosts.contains_key(member.value.as_str()) {
            diags.push(Diagnostic::error(file, member.loc, unknown(&member.value)));
        }
    }
    for exception in &inventory.exceptions {
        if !inventory.hosts.contains_key(exception.host.value.as_str()) {
            diags.push(Diagnostic::error(
                file,
                exception.host.loc,
                unknown(&exception.host.value),
            ));
        }
    }
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
