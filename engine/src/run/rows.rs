//! A run's step rows, indexed by (step, host) and checked against the runbook version the run
//! is bound to. Every lookup the decisions and the driver make goes through this index, never
//! through a row's position: rows are stored in insertion order, which a fan-out, a rollback or
//! a later version could change.
//!
//! [`RunRows::new`] checks the rows as read from the store against the version: every step of
//! the version has its own row, every row belongs to a step of the version (or to the `undo` of
//! one), hosts appear only under `for_each` steps, no key twice. A mismatch is a [`RowsError`]
//! (the run fails with it as the reason), never a panic. [`RunRows::put`] is the one way rows
//! change afterwards, and keeps the same rules, so what `new` checked stays true.
//!
//! Layout, for whoever makes decisions incremental: `rows` in insertion order; `by_key` from
//! (step, host) to a position; `own` from a step's DAG index to its own row; `hosts` from a
//! step id to its host rows in insertion order; `undo` the compensation rows in insertion
//! order. A change to a row is one `put`, which is where a change log would go.

use std::collections::HashMap;

use crate::store::StepRow;
use crate::validate::CheckedRunbook;

use super::UNDO_PREFIX;

/// A mismatch between a run's stored rows and its runbook version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowsError {
    #[error("the stored rows have no row for step `{0}` of the run's version")]
    MissingStep(String),
    #[error("row `{step}` (host `{host}`) names a step the run's version does not have")]
    UnknownStep { step: String, host: String },
    #[error("row `{step}` (host `{host}`): step `{step}` does not fan out over hosts")]
    NotAFanOut { step: String, host: String },
    #[error("row `{step}` (host `{host}`): step `{original}` has no `undo`")]
    NoUndo {
        step: String,
        host: String,
        original: String,
    },
    #[error("row `{step}` (host `{host}`) is stored twice")]
    Duplicate { step: String, host: String },
    #[error("no row `{step}` (host `{host}`) in the run")]
    NoRow { step: String, host: String },
}

/// The rows of one run with their index (see the module docs).
#[derive(Debug, Clone)]
pub struct RunRows {
    rows: Vec<StepRow>,
    by_key: HashMap<(String, String), usize>,
    /// The position of each step's own row, by the step's DAG index.
    own: Vec<usize>,
    /// Host rows of each fanned-out step, by step id, in insertion order.
    hosts: HashMap<String, Vec<usize>>,
    /// Undo rows, in insertion order.
    undo: Vec<usize>,
}

/// What kind of row a (step, host) key is in a version.
enum Kind {
    Own(usize),
    Host,
    Undo,
}

impl RunRows {
    /// Indexes `rows` (in insertion order) and checks them against `checked`.
    pub fn new(checked: &CheckedRunbook, rows: Vec<StepRow>) -> Result<RunRows, RowsError> {
        let mut own = vec![usize::MAX; checked.dag.len()];
        let mut index = RunRows {
            rows: Vec::with_capacity(rows.len()),
            by_key: HashMap::with_capacity(rows.len()),
            own: Vec::new(),
            hosts: HashMap::new(),
            undo: Vec::new(),
        };
        for row in rows {
            let position = index.rows.len();
            if let Kind::Own(i) = index.insert(checked, row)? {
                own[i] = position;
            }
        }
        if let Some(missing) = own.iter().position(|&p| p == usize::MAX) {
            return Err(RowsError::MissingStep(checked.dag.id(missing).to_string()));
        }
        index.own = own;
        Ok(index)
    }

    /// Every row, in insertion order.
    pub fn all(&self) -> &[StepRow] {
        &self.rows
    }

    /// The row (step, host), if the run has it.
    pub fn get(&self, step: &str, host: &str) -> Option<&StepRow> {
        let position = self.by_key.get(&(step.to_string(), host.to_string()))?;
        self.rows.get(*position)
    }

    /// The row (step, host), or [`RowsError::NoRow`].
    pub fn row(&self, step: &str, host: &str) -> Result<&StepRow, RowsError> {
        self.get(step, host).ok_or_else(|| RowsError::NoRow {
            step: step.to_string(),
            host: host.to_string(),
        })
    }

    /// The own row of the step with DAG index `index` ([`RunRows::new`] checked it exists).
    pub fn step(&self, index: usize) -> &StepRow {
        &self.rows[self.own[index]]
    }

    /// The host rows of step `step`, in insertion order.
    pub fn hosts<'a>(&'a self, step: &str) -> impl Iterator<Item = &'a StepRow> + 'a {
        self.hosts
            .get(step)
            .into_iter()
            .flatten()
            .map(|&p| &self.rows[p])
    }

    /// The undo rows, in insertion order.
    pub fn undo(&self) -> impl Iterator<Item = &StepRow> {
        self.undo.iter().map(|&p| &self.rows[p])
    }

    /// Replaces the row with the same (step, host), or adds it (a host of a fan-out, an undo
    /// row) after checking it against `checked` as [`RunRows::new`] does.
    pub fn put(&mut self, checked: &CheckedRunbook, row: StepRow) -> Result<(), RowsError> {
        if let Some(&position) = self.by_key.get(&(row.step.clone(), row.host.clone())) {
            self.rows[position] = row;
            return Ok(());
        }
        if let Kind::Own(_) = kind(checked, &row.step, &row.host)? {
            // A step's own row is created with the run: one that is missing is a mismatch.
            return Err(RowsError::MissingStep(row.step));
        }
        self.insert(checked, row).map(|_| ())
    }

    fn insert(&mut self, checked: &CheckedRunbook, row: StepRow) -> Result<Kind, RowsError> {
        let kind = kind(checked, &row.step, &row.host)?;
        let key = (row.step.clone(), row.host.clone());
        if self.by_key.contains_key(&key) {
            return Err(RowsError::Duplicate {
                step: key.0,
                host: key.1,
            });
        }
        let position = self.rows.len();
        match kind {
            Kind::Own(_) => {}
            Kind::Host => self.hosts.entry(key.0.clone()).or_default().push(position),
            Kind::Undo => self.undo.push(position),
        }
        self.by_key.insert(key, position);
        self.rows.push(row);
        Ok(kind)
    }
}

/// Where (step, host) belongs in `checked`, or why it does not.
fn kind(checked: &CheckedRunbook, step: &str, host: &str) -> Result<Kind, RowsError> {
    let unknown = || RowsError::UnknownStep {
        step: step.to_string(),
        host: host.to_string(),
    };
    if let Some(original) = step.strip_prefix(UNDO_PREFIX) {
        let definition = checked.runbook.steps.get(original).ok_or_else(unknown)?;
        if definition.undo.is_none() {
            return Err(RowsError::NoUndo {
                step: step.to_string(),
                host: host.to_string(),
                original: original.to_string(),
            });
        }
        return Ok(Kind::Undo);
    }
    let (index, _, definition) = checked.runbook.steps.get_full(step).ok_or_else(unknown)?;
    if host.is_empty() {
        return Ok(Kind::Own(index));
    }
    if definition.for_each.is_none() {
        return Err(RowsError::NotAFanOut {
            step: step.to_string(),
            host: host.to_string(),
        });
    }
    Ok(Kind::Host)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runbook::load_runbook;
    use crate::store::StepState;
    use crate::validate::{Sources, check};

    const YAML: &str = "name: t\ninventory: hosts.yaml\nsteps:\n  a: { uses: noop, undo: { uses: noop } }\n  fan:\n    needs: [a]\n    uses: noop\n    for_each: { group: web }\n";
    const HOSTS: &str = "hosts:\n  h1: { address: 10.0.0.1 }\ngroups:\n  web: [h1]\n";

    fn checked() -> CheckedRunbook {
        let mut sources = Sources::default();
        sources.insert("t.yaml".into(), Ok(YAML.into()));
        sources.insert(Path::new("").join("hosts.yaml"), Ok(HOSTS.into()));
        check(&load_runbook("t.yaml", YAML), Path::new(""), &sources)
            .0
            .unwrap()
    }

    fn row(step: &str, host: &str) -> StepRow {
        StepRow {
            run_id: "r1".into(),
            step: step.into(),
            host: host.into(),
            state: StepState::Pending,
            attempt: 0,
            not_before: None,
            started_at: None,
            finished_at: None,
            outputs: serde_json::json!({}),
            reason: None,
        }
    }

    #[test]
    fn rows_are_found_by_step_and_host_whatever_their_order() {
        let checked = checked();
        // Host and undo rows first, the steps' own rows last: positions do not matter.
        let rows = vec![
            row("fan", "h1"),
            row("undo:a", ""),
            row("fan", ""),
            row("a", ""),
        ];
        let rows = RunRows::new(&checked, rows).unwrap();
        assert_eq!(rows.step(0).step, "a");
        assert_eq!(rows.step(1).step, "fan");
        assert_eq!(
            rows.hosts("fan")
                .map(|r| r.host.as_str())
                .collect::<Vec<_>>(),
            ["h1"]
        );
        assert_eq!(rows.undo().count(), 1);
        assert!(rows.get("fan", "h1").is_some() && rows.get("fan", "h2").is_none());
    }

    #[test]
    fn rows_that_do_not_fit_the_version_are_typed_errors() {
        let checked = checked();
        let own = || vec![row("a", ""), row("fan", "")];
        let with = |extra: StepRow| {
            let mut rows = own();
            rows.push(extra);
            RunRows::new(&checked, rows).unwrap_err()
        };
        assert!(matches!(
            with(row("gone", "")),
            RowsError::UnknownStep { .. }
        ));
        assert!(matches!(with(row("a", "h1")), RowsError::NotAFanOut { .. }));
        assert!(matches!(
            with(row("undo:fan", "")),
            RowsError::NoUndo { .. }
        ));
        assert!(matches!(with(row("a", "")), RowsError::Duplicate { .. }));
        let missing = RunRows::new(&checked, vec![row("a", "")]).unwrap_err();
        assert_eq!(missing, RowsError::MissingStep("fan".into()));
        // Rows added later follow the same rules.
        let mut rows = RunRows::new(&checked, own()).unwrap();
        rows.put(&checked, row("fan", "h9")).unwrap();
        assert!(rows.put(&checked, row("nope", "")).is_err());
        assert!(matches!(
            rows.row("fan", "h8"),
            Err(RowsError::NoRow { .. })
        ));
    }
}
