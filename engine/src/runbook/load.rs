//! Reading a runbook file into the model, collecting every error instead of stopping at the first.
//!
//! serde stops at the first error, so loading recovers: after an error it removes the
//! offending entry from the located tree and tries again, until the rest deserializes. A
//! "missing field" error that only follows from an earlier removal is not reported twice.
//! Steps dropped whole are remembered, so later checks do not report references to them.

use std::collections::BTreeSet;

use crate::diagnostic::Diagnostic;
use crate::runbook::Runbook;
use crate::yaml::{self, Limits, Loc, Node, PathSeg, Value};

/// The most errors reported for one file; past this the file is hopeless.
const MAX_ERRORS: usize = 100;

/// A runbook file after loading: the model if it could be built, and what was wrong.
#[derive(Debug, Clone)]
pub struct LoadedRunbook {
    /// The file as the user named it, used in every diagnostic.
    pub file: String,
    pub runbook: Option<Runbook>,
    pub diagnostics: Vec<Diagnostic>,
    /// Steps written in the file but dropped because they could not be read.
    pub broken_steps: BTreeSet<String>,
}

/// Loads runbook text (no I/O: the caller reads the file).
pub fn load_runbook(file: &str, text: &str) -> LoadedRunbook {
    let mut loaded = LoadedRunbook {
        file: file.to_string(),
        runbook: None,
        diagnostics: Vec::new(),
        broken_steps: BTreeSet::new(),
    };
    match yaml::parse(text, Limits::RUNBOOK) {
        Ok(root) => loaded.runbook = deserialize_recovering(file, root, &mut loaded),
        Err(e) => loaded
            .diagnostics
            .push(Diagnostic::error(file, e.loc, e.message)),
    }
    loaded
}

/// Loads any typed document (the inventory, say) with the same recovery; `root_fields` are
/// placeholders inserted for missing top-level fields so checking can go on.
pub fn deserialize_document<T: serde::de::DeserializeOwned>(
    file: &str,
    mut root: Node,
    diagnostics: &mut Vec<Diagnostic>,
    dropped: &mut Vec<Vec<PathSeg>>,
) -> Option<T> {
    report_duplicates(file, &mut root, diagnostics);
    let mut removed: Vec<Vec<PathSeg>> = Vec::new();
    for _ in 0..MAX_ERRORS {
        let err = match yaml::from_node::<T>(&root) {
            Ok(value) => {
                dropped.extend(removed);
                return Some(value);
            }
            Err(err) => err,
        };
        if !follows_from_removal(&err, &removed) {
            let loc = err.loc.unwrap_or(root.loc);
            diagnostics.push(Diagnostic::error(file, loc, describe(&err)));
        }
        if err.path.is_empty() {
            if !insert_placeholder(&mut root, err.missing_field.as_deref()) {
                return None;
            }
            continue;
        }
        if !yaml::remove_at(&mut root, &err.path) {
            return None;
        }
        removed.push(err.path);
    }
    None
}

fn deserialize_recovering(file: &str, root: Node, loaded: &mut LoadedRunbook) -> Option<Runbook> {
    let mut dropped = Vec::new();
    let runbook =
        deserialize_document::<Runbook>(file, root, &mut loaded.diagnostics, &mut dropped);
    for path in dropped {
        if let [PathSeg::Key(section), PathSeg::Key(step)] = path.as_slice()
            && section == "steps"
        {
            loaded.broken_steps.insert(step.clone());
        }
    }
    runbook
}

/// A missing field whose value was removed after an earlier error was reported already.
fn follows_from_removal(err: &yaml::DeError, removed: &[Vec<PathSeg>]) -> bool {
    let Some(field) = &err.missing_field else {
        return false;
    };
    let mut full = err.path.clone();
    full.push(PathSeg::Key(field.clone()));
    removed.iter().any(|r| r.starts_with(&full))
}

fn describe(err: &yaml::DeError) -> String {
    if let Some(found) = err
        .message
        .strip_prefix("expected a mapping, found ")
        .filter(|_| err.path.is_empty())
    {
        let found = if found == "null" {
            "nothing (only comments?)"
        } else {
            found
        };
        return format!(
            "a runbook is a mapping with at least `name` and `steps`, but this file holds {found}"
        );
    }
    match err.path.as_slice() {
        [PathSeg::Key(s), PathSeg::Key(id), ..] if s == "steps" && err.path.len() > 2 => {
            format!("step `{id}`: {}", err.message)
        }
        _ => err.message.clone(),
    }
}

/// Reports every repeated key, then drops the repeats so the first one counts.
fn report_duplicates(file: &str, root: &mut Node, diagnostics: &mut Vec<Diagnostic>) {
    for (key, first) in yaml::duplicate_keys(root) {
        let name = key.value.as_text().unwrap_or_default();
        diagnostics.push(Diagnostic::error(
            file,
            key.loc,
            format!(
                "duplicate key `{name}` (first written at line {})",
                first.line
            ),
        ));
    }
    drop_repeats(root);
}

fn drop_repeats(node: &mut Node) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(drop_repeats),
        Value::Map(entries) => {
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            entries.retain(|(k, _)| seen.insert(k.value.as_text().unwrap_or_default()));
            entries.iter_mut().for_each(|(_, v)| drop_repeats(v));
        }
        _ => {}
    }
}

/// Inserts a neutral value for a missing top-level field. False when that is not possible.
fn insert_placeholder(root: &mut Node, field: Option<&str>) -> bool {
    let (Some(field), Value::Map(entries)) = (field, &mut root.value) else {
        return false;
    };
    let value = match field {
        "steps" | "hosts" => Value::Map(Vec::new()),
        _ => Value::Str(String::new()),
    };
    let at = Loc { line: 1, column: 1 };
    entries.push((
        Node::new(Value::Str(field.to_string()), at),
        Node::new(value, at),
    ));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        load_runbook("r.yaml", text)
            .diagnostics
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn every_error_is_collected() {
        let text = "name: demo\nsteps:\n  a:\n    uses: noop\n    neds: [b]\n  b:\n    timeout: 5x\n    retry: { attempts: two }\n";
        let got = messages(text);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got[0].starts_with("5:5 step `a`: unknown field `neds`; did you mean `needs`?"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("7:14 step `b`: invalid duration `5x`"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with("8:24 step `b`: expected a whole number, found string \"two\""),
            "{got:#?}"
        );
    }

    #[test]
    fn missing_name_and_steps_are_both_reported() {
        let got = messages("description: x\n");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains("missing field `name`"));
        assert!(got[1].contains("missing field `steps`"));
    }

    #[test]
    fn a_step_that_cannot_be_read_is_remembered() {
        let loaded = load_runbook("r.yaml", "name: x\nsteps:\n  a: [1]\n  b: {}\n");
        assert!(loaded.broken_steps.contains("a"));
        assert_eq!(loaded.runbook.unwrap().steps.len(), 1);
    }
}
