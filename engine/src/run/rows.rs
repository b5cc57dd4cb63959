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
//! Layout: `rows` in insertion order; `by_key` from (step, host) to a position; `own` from a
//! step's DAG index to its own row; `fan_outs` from a step id to its host rows; `undo` the
//! compensation rows in insertion order.
//!
//! Incremental bookkeeping, so that deciding costs what changed, not the run's size: every
//! `put` takes the replaced row's contribution out and the new row's in ([`RunRows::tally`]):
//! counts of unfinished, running and bad rows; the waiting rows by `not_before`; per step the
//! number of needs not finished yet and the `active` set (steps that may have something to
//! decide: not finished, and started or with every need finished), in topological order; per
//! fan-out the ordinals of its open, pending, waiting and failed hosts.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::store::{StepRow, StepState};
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

/// The host rows of one fanned-out step and what deciding its waves needs. Ordinals are
/// positions in `children` (the hosts not excepted, in insertion order).
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    /// Every host row, excepted ones too, by position in insertion order.
    all: Vec<usize>,
    /// The host rows not excepted, by position: the ones waves are cut from.
    children: Vec<usize>,
    /// Ordinals of children not finished.
    pub open: BTreeSet<usize>,
    /// Ordinals of children `pending`.
    pub pending: BTreeSet<usize>,
    /// Ordinals of children `waiting` (a retry, or resumed after a restart).
    pub waiting: BTreeSet<usize>,
    /// Ordinals of children `failed` or `cancelled`.
    pub failed: BTreeSet<usize>,
    /// Children `running`.
    pub running: usize,
}

impl FanOut {
    /// How many children (hosts not excepted) the step has.
    pub fn total(&self) -> usize {
        self.children.len()
    }

    /// The position (in [`RunRows::all`]) of the child with ordinal `ordinal`.
    pub fn position(&self, ordinal: usize) -> usize {
        self.children[ordinal]
    }
}

/// The rows of one run with their index (see the module docs).
#[derive(Debug, Clone)]
pub struct RunRows {
    rows: Vec<StepRow>,
    /// What each row is, by position.
    slots: Vec<Slot>,
    /// step → host → position (looked up with `&str`s, no key built per lookup).
    by_key: HashMap<String, HashMap<String, usize>>,
    /// The position of each step's own row, by the step's DAG index.
    own: Vec<usize>,
    /// Host rows of each fanned-out step, by step id.
    fan_outs: HashMap<String, FanOut>,
    /// Undo rows, in insertion order.
    undo: Vec<usize>,
    /// Each step's position in the topological order, by DAG index.
    topo: Vec<usize>,
    /// The steps that need each step, by DAG index.
    dependents: Vec<Vec<usize>>,
    /// Whether each step has `continue_on_failure`, by DAG index.
    continues: Vec<bool>,
    /// Steps with a `deadline`, by DAG index.
    with_deadline: Vec<usize>,
    /// Needs of each step whose own row is not finished, by DAG index.
    open_needs: Vec<usize>,
    /// (topological position, DAG index) of the steps that may have something to decide.
    active: BTreeSet<(usize, usize)>,
    /// Rows not finished.
    unfinished: usize,
    /// Rows `running`.
    running: usize,
    /// Own rows that make the run fail (failed without `continue_on_failure`, or cancelled).
    bad: usize,
    /// (not_before, position) of the rows `waiting` with a time.
    waiting: BTreeSet<(DateTime<Utc>, usize)>,
}

/// What kind of row a (step, host) key is in a version.
enum Kind {
    Own(usize),
    Host,
    Undo,
}

/// What a stored row is, for the bookkeeping.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Own(usize),
    Child(usize),
    Excepted,
    Undo,
}

impl RunRows {
    /// Indexes `rows` (in insertion order) and checks them against `checked`.
    pub fn new(checked: &CheckedRunbook, rows: Vec<StepRow>) -> Result<RunRows, RowsError> {
        let steps = checked.dag.len();
        let mut topo = vec![0; steps];
        let order: Vec<usize> = match checked.dag.topological() {
            Some(order) => order.to_vec(),
            None => (0..steps).collect(),
        };
        for (position, &index) in order.iter().enumerate() {
            topo[index] = position;
        }
        let mut dependents = vec![Vec::new(); steps];
        for index in 0..steps {
            for &need in checked.dag.needs(index) {
                dependents[need].push(index);
            }
        }
        let step_list = &checked.runbook.steps;
        let continues = step_list.values().map(|s| s.continue_on_failure).collect();
        let with_deadline = (0..steps)
            .filter(|&i| checked.times.get(i).is_some_and(|t| t.deadline.is_some()))
            .collect();
        let mut index = RunRows {
            rows: Vec::with_capacity(rows.len()),
            slots: Vec::with_capacity(rows.len()),
            by_key: HashMap::new(),
            own: vec![usize::MAX; steps],
            fan_outs: HashMap::new(),
            undo: Vec::new(),
            topo,
            dependents,
            continues,
            with_deadline,
            open_needs: vec![0; steps],
            active: BTreeSet::new(),
            unfinished: 0,
            running: 0,
            bad: 0,
            waiting: BTreeSet::new(),
        };
        for row in rows {
            index.insert(checked, row)?;
        }
        if let Some(missing) = index.own.iter().position(|&p| p == usize::MAX) {
            return Err(RowsError::MissingStep(checked.dag.id(missing).to_string()));
        }
        for position in 0..index.rows.len() {
            index.tally(position, true);
        }
        for step in 0..steps {
            index.refresh(step);
        }
        Ok(index)
    }

    /// Every row, in insertion order.
    pub fn all(&self) -> &[StepRow] {
        &self.rows
    }

    /// The steps' own rows, in DAG (file) order.
    pub fn own_rows(&self) -> impl Iterator<Item = &StepRow> {
        self.own.iter().map(|&p| &self.rows[p])
    }

    /// The row (step, host), if the run has it.
    pub fn get(&self, step: &str, host: &str) -> Option<&StepRow> {
        self.rows.get(self.position_of(step, host)?)
    }

    /// Where the row (step, host) is in [`RunRows::all`], if the run has it.
    pub fn position_of(&self, step: &str, host: &str) -> Option<usize> {
        self.by_key.get(step)?.get(host).copied()
    }

    /// The row (step, host), or [`RowsError::NoRow`].
    pub fn row(&self, step: &str, host: &str) -> Result<&StepRow, RowsError> {
        self.get(step, host).ok_or_else(|| RowsError::NoRow {
            step: step.to_string(),
            host: host.to_string(),
        })
    }

    /// The row at `position` in insertion order.
    pub fn at(&self, position: usize) -> &StepRow {
        &self.rows[position]
    }

    /// The own row of the step with DAG index `index` ([`RunRows::new`] checked it exists).
    pub fn step(&self, index: usize) -> &StepRow {
        &self.rows[self.own[index]]
    }

    /// The host rows of step `step`, in insertion order.
    pub fn hosts<'a>(&'a self, step: &str) -> impl Iterator<Item = &'a StepRow> + 'a {
        self.fan_outs
            .get(step)
            .into_iter()
            .flat_map(|f| f.all.iter())
            .map(|&p| &self.rows[p])
    }

    /// The hosts of fanned-out step `step`, with the sets its waves are decided from.
    pub fn fan_out(&self, step: &str) -> Option<&FanOut> {
        self.fan_outs.get(step)
    }

    /// The undo rows, in insertion order.
    pub fn undo(&self) -> impl Iterator<Item = &StepRow> {
        self.undo.iter().map(|&p| &self.rows[p])
    }

    /// DAG indices of the steps that may have something to decide, in topological order:
    /// not finished, and either started or with every need finished.
    pub fn active(&self) -> impl Iterator<Item = usize> + '_ {
        self.active.iter().map(|&(_, index)| index)
    }

    /// DAG indices of the steps with a `deadline`.
    pub fn with_deadline(&self) -> &[usize] {
        &self.with_deadline
    }

    /// Whether some step's own row failed (without `continue_on_failure`) or was cancelled.
    pub fn failing(&self) -> bool {
        self.bad > 0
    }

    /// Whether every row is finished.
    pub fn all_finished(&self) -> bool {
        self.unfinished == 0
    }

    /// Rows `running`.
    pub fn running(&self) -> usize {
        self.running
    }

    /// The earliest `not_before` of the rows `waiting`.
    pub fn next_waiting(&self) -> Option<DateTime<Utc>> {
        self.waiting.first().map(|&(at, _)| at)
    }

    /// Whether the own row of step `index` makes the run fail.
    pub fn is_bad(&self, index: usize) -> bool {
        self.bad_state(index, self.step(index).state)
    }

    fn bad_state(&self, index: usize, state: StepState) -> bool {
        match state {
            StepState::Cancelled => true,
            StepState::Failed => !self.continues[index],
            _ => false,
        }
    }

    /// Replaces the row with the same (step, host), or adds it (a host of a fan-out, an undo
    /// row) after checking it against `checked` as [`RunRows::new`] does. Returns where it is
    /// in [`RunRows::all`].
    pub fn put(&mut self, checked: &CheckedRunbook, row: StepRow) -> Result<usize, RowsError> {
        if let Some(position) = self.position_of(&row.step, &row.host) {
            self.tally(position, false);
            self.rows[position] = row;
            self.tally(position, true);
            if let Slot::Own(index) = self.slots[position] {
                self.refresh(index);
                for d in 0..self.dependents[index].len() {
                    self.refresh(self.dependents[index][d]);
                }
            }
            return Ok(position);
        }
        if let Kind::Own(_) = kind(checked, &row.step, &row.host)? {
            // A step's own row is created with the run: one that is missing is a mismatch.
            return Err(RowsError::MissingStep(row.step));
        }
        let position = self.insert(checked, row)?;
        self.tally(position, true);
        Ok(position)
    }

    fn insert(&mut self, checked: &CheckedRunbook, row: StepRow) -> Result<usize, RowsError> {
        let kind = kind(checked, &row.step, &row.host)?;
        if self.position_of(&row.step, &row.host).is_some() {
            return Err(RowsError::Duplicate {
                step: row.step,
                host: row.host,
            });
        }
        let position = self.rows.len();
        let slot = match kind {
            Kind::Own(i) => {
                self.own[i] = position;
                Slot::Own(i)
            }
            Kind::Host => {
                let fan_out = self.fan_outs.entry(row.step.clone()).or_default();
                fan_out.all.push(position);
                if is_excepted(&row) {
                    Slot::Excepted
                } else {
                    fan_out.children.push(position);
                    Slot::Child(fan_out.children.len() - 1)
                }
            }
            Kind::Undo => {
                self.undo.push(position);
                Slot::Undo
            }
        };
        let hosts = match self.by_key.get_mut(&row.step) {
            Some(hosts) => hosts,
            None => self.by_key.entry(row.step.clone()).or_default(),
        };
        hosts.insert(row.host.clone(), position);
        self.rows.push(row);
        self.slots.push(slot);
        Ok(position)
    }

    /// Adds (`add`) or takes out the contribution of the row at `position` to the counts and
    /// sets. Every change of a row is a take-out of the old row and an add of the new.
    fn tally(&mut self, position: usize, add: bool) {
        let row = &self.rows[position];
        let state = row.state;
        let count = |n: &mut usize| if add { *n += 1 } else { *n -= 1 };
        if !state.is_terminal() {
            count(&mut self.unfinished);
        }
        if state == StepState::Running {
            count(&mut self.running);
        }
        if let (StepState::Waiting, Some(at)) = (state, row.not_before) {
            toggle(&mut self.waiting, (at, position), add);
        }
        match self.slots[position] {
            Slot::Own(index) => {
                if self.bad_state(index, state) {
                    count(&mut self.bad);
                }
                if !state.is_terminal() {
                    for &d in &self.dependents[index] {
                        count(&mut self.open_needs[d]);
                    }
                }
            }
            Slot::Child(ordinal) => {
                let step = &self.rows[position].step;
                let Some(fan_out) = self.fan_outs.get_mut(step) else {
                    return;
                };
                if !state.is_terminal() {
                    toggle(&mut fan_out.open, ordinal, add);
                }
                match state {
                    StepState::Pending => toggle(&mut fan_out.pending, ordinal, add),
                    StepState::Waiting => toggle(&mut fan_out.waiting, ordinal, add),
                    StepState::Failed | StepState::Cancelled => {
                        toggle(&mut fan_out.failed, ordinal, add)
                    }
                    StepState::Running => count(&mut fan_out.running),
                    _ => {}
                }
            }
            Slot::Excepted | Slot::Undo => {}
        }
    }

    /// Puts step `index` in the active set or takes it out, from its own row and its needs.
    fn refresh(&mut self, index: usize) {
        let Some(&position) = self.own.get(index).filter(|&&p| p != usize::MAX) else {
            return;
        };
        let state = self.rows[position].state;
        let active =
            !state.is_terminal() && (state != StepState::Pending || self.open_needs[index] == 0);
        toggle(&mut self.active, (self.topo[index], index), active);
    }
}

/// Inserts `value` into `set` (`add`) or removes it.
fn toggle<T: Ord>(set: &mut BTreeSet<T>, value: T, add: bool) {
    if add {
        set.insert(value);
    } else {
        set.remove(&value);
    }
}

/// Whether a host row was excepted when its fan-out started (inserted skipped with the
/// exception as reason): waves are cut from the other hosts.
fn is_excepted(row: &StepRow) -> bool {
    row.state == StepState::Skipped
        && row
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("excepted"))
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

    /// What the bookkeeping says, to compare an updated index with one built afresh.
    fn summary(rows: &RunRows) -> String {
        let fan = rows.fan_out("fan").map(|f| {
            let set = |s: &BTreeSet<usize>| s.iter().copied().collect::<Vec<_>>();
            (
                set(&f.open),
                set(&f.pending),
                set(&f.waiting),
                set(&f.failed),
                f.running,
            )
        });
        format!(
            "active {:?} failing {} finished {} running {} next {:?} fan {fan:?}",
            rows.active().collect::<Vec<_>>(),
            rows.failing(),
            rows.all_finished(),
            rows.running(),
            rows.next_waiting(),
        )
    }

    #[test]
    fn the_bookkeeping_after_every_put_equals_a_fresh_index() {
        let checked = checked();
        let mut rows = RunRows::new(&checked, vec![row("a", ""), row("fan", "")]).unwrap();
        let at = |m: u32| chrono::DateTime::from_timestamp(i64::from(m) * 60, 0);
        let mut set = |step: &str, host: &str, state: StepState, minute: Option<u32>| {
            let mut r = rows
                .get(step, host)
                .cloned()
                .unwrap_or_else(|| row(step, host));
            r.state = state;
            r.not_before = minute.and_then(at);
            r.reason = None;
            rows.put(&checked, r).unwrap();
            let fresh = RunRows::new(&checked, rows.all().to_vec()).unwrap();
            assert_eq!(
                summary(&rows),
                summary(&fresh),
                "after {step} [{host}] {state:?}"
            );
            summary(&rows)
        };
        assert!(set("a", "", StepState::Running, None).starts_with("active [0]"));
        assert!(set("a", "", StepState::Succeeded, None).starts_with("active [1]"));
        set("fan", "", StepState::Running, None);
        for host in ["h1", "h2", "h3"] {
            set("fan", host, StepState::Pending, None);
        }
        set("fan", "h1", StepState::Running, None);
        set("fan", "h2", StepState::Waiting, Some(5));
        set("fan", "h1", StepState::Failed, None);
        set("fan", "h2", StepState::Running, None);
        set("fan", "h2", StepState::Succeeded, None);
        let last = set("fan", "h3", StepState::Skipped, None);
        assert!(last.contains("fan Some(([], [], [], [0], 0))"), "{last}");
        let done = set("fan", "", StepState::Failed, None);
        assert!(
            done.starts_with("active [] failing true finished true"),
            "{done}"
        );
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
