//! Durable runs (DESIGN §5): start a run, drive it to its end on the injected clock, recover
//! it after a crash. [`decide`] says what should happen next (pure); [`Engine::drive`] commits
//! each transition with its audit event (one transaction, through the [`Store`]) before the
//! effect it allows happens, then runs the connectors.
//!
//! Durability rules:
//! - A step row becomes `running` (committed) before its connector is called, and its result is
//!   committed before anything that depends on it starts.
//! - After a crash a `running` row is re-run if its connector is idempotent; otherwise it becomes
//!   `interrupted` and waits for an operator (`patchday resume`). Nothing runs twice silently.

pub mod approvals;
mod batch;
pub mod consequences;
pub mod decide;
mod decisions;
pub mod notify;
pub mod render;
pub mod report;
pub mod rows;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use patchday_connectors::{
    Connector, ConnectorError, Context, Outputs, secrets::Secrets, settings::Settings,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::calendar::{AnchorContext, Cycle};
use crate::clock::Clock;
use crate::inventory::Inventory;
use crate::store::{
    Change, Fence, NewEvent, RunRow, RunState, StepRow, StepState, StepWrite, Store, StoreError,
};
use crate::template::registry;
use crate::validate::CheckedRunbook;
use crate::version::{Version, VersionError};
pub use approvals::{LinkMinter, PersonAsk};
pub use decide::{Action, UNDO_PREFIX, View, decide};
pub use decisions::{Decided, Expired};
use render::{RunContext, render_value, truthy};
pub use rows::{RowsError, RunRows};

/// Whether connectors act, or only say what they would do (`simulate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    DryRun,
}

/// One committed transition, for live progress and the simulated timeline.
#[derive(Debug, Clone)]
pub struct Progress {
    pub at: DateTime<Utc>,
    pub step: String,
    pub host: String,
    pub state: StepState,
    /// What happened, in words (a dry run's description, a failure's reason, ...).
    pub note: String,
}

/// Receives progress as transitions commit.
pub type Observer = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How a call to [`Engine::drive`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished(RunState),
    /// Nothing can happen until a person decides: these rows wait (awaiting input or interrupted).
    Blocked(Vec<(String, String, StepState)>),
}

/// Why a run could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("param `{0}` has no default and was not given")]
    MissingParam(String),
    #[error("unknown param `{0}`")]
    UnknownParam(String),
    #[error("param `{name}` must be one of {choices}")]
    BadChoice { name: String, choices: String },
    #[error("secret param `{0}`: set the environment variable {1}")]
    MissingSecret(String, String),
    #[error("no run {0}")]
    NoSuchRun(String),
    #[error("step `{0}` (host `{1}`) is not interrupted")]
    NotInterrupted(String, String),
    /// A decision on a row that is not waiting for one (`state`: `None` if there is no row).
    #[error("step `{step}` (host `{host}`) is not awaiting a decision (it is {})", state.map_or("missing".to_string(), |s| state_word(s).to_string()))]
    NotAwaitingInput {
        step: String,
        host: String,
        state: Option<StepState>,
    },
    /// A decision's choice is not one the step offers.
    #[error("`{choice}` is not a choice of step `{step}`: it offers {choices}")]
    NotAChoice {
        step: String,
        choice: String,
        choices: String,
    },
    /// The person deciding is not one of the step's approvers (or assignees).
    #[error("{recipient} may not decide on step `{step}`")]
    NotARecipient { step: String, recipient: String },
    /// Another decision settled the step first; this one was not recorded.
    #[error("step `{step}` (host `{host}`) was already decided; this decision was not recorded")]
    AlreadySettled { step: String, host: String },
    /// An approval or manual step's inputs could not be read (render, parse, unknown role).
    #[error("step `{step}`: {reason}")]
    BadInputs { step: String, reason: String },
    /// The run's stored rows do not fit its runbook version.
    #[error(transparent)]
    Rows(#[from] RowsError),
    /// A `--cycle` of the other kind than the schedule's (a month for a cron schedule, a day
    /// for an anchored one).
    #[error("{0}")]
    CycleKind(String),
    /// The run's stored version cannot be used.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The cycle has a run already; a second one must be asked for as a re-run.
    #[error(
        "runbook `{runbook}` already has a run for cycle {cycle}; to run the cycle again, re-run it on purpose: `--cycle {cycle} --rerun --reason WHY` (recorded in the audit log with who and why)"
    )]
    CycleTaken { runbook: String, cycle: String },
}

impl RunError {
    /// Whether the run's stored data (its rows, its version, its params) cannot be driven:
    /// the run is failed with this as its reason instead of being tried again.
    pub fn is_stored_data(&self) -> bool {
        matches!(
            self,
            RunError::Rows(_)
                | RunError::Version(_)
                | RunError::MissingParam(_)
                | RunError::UnknownParam(_)
                | RunError::BadChoice { .. }
        )
    }
}

/// What an operator decides for an interrupted step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Retry,
    Skip,
    Abort,
}

/// Who cancelled a run, for its `run.cancelled` event: set it before cancelling the token
/// given to [`Engine::drive_with`]. Clones share the value; the first set wins.
#[derive(Debug, Clone, Default)]
pub struct CancelBy(Arc<std::sync::OnceLock<String>>);

impl CancelBy {
    /// Records `actor` (`api:<token name>`, ...) as the one cancelling.
    pub fn set(&self, actor: &str) {
        let _ = self.0.set(actor.to_string());
    }

    /// The actor of the cancellation (`cli:operator` when nobody was named).
    pub fn actor(&self) -> &str {
        self.0.get().map_or("cli:operator", String::as_str)
    }
}

/// What starting a run needs besides the runbook (whose version the run stores).
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub id: String,
    /// The cycle it runs (scheduled, or `--cycle`); `None` for a manual run.
    pub cycle: Option<Cycle>,
    pub start: DateTime<Utc>,
    /// Given params (`--param k=v`); secrets come from the environment.
    pub params: Vec<(String, String)>,
    /// The runbooks folder's git commit the version was read at (`None`: not a git work tree).
    pub commit: Option<String>,
    pub actor: String,
    /// Why this run re-runs its cycle (`--rerun --reason WHY`): it may then share its cycle
    /// with an earlier run. `None`: the cycle must be free.
    pub rerun: Option<String>,
}

/// The engine: a store, a clock, connectors, and how to run them.
pub struct Engine<S: Store> {
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
    pub mode: Mode,
    pub settings: Arc<Settings>,
    /// Connector-wide secrets (the daemon's SMTP password from `[smtp] password_file`): every
    /// run's connectors get them besides the run's own secret params, and they are redacted
    /// like those.
    pub secrets: Arc<Secrets>,
    pub observer: Observer,
    /// Steps whose approval a simulation rejects.
    pub rejected: BTreeSet<String>,
    /// Base URL for `run.url`.
    pub public_url: String,
    /// Most attempts in flight in one run.
    pub max_parallel: usize,
    /// Attempts in flight across every run this engine drives (the global limit).
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Signs the links of approval and task emails (the daemon). `None` (the CLI `run`): a
    /// person-step waits without emails.
    pub links: Option<Arc<LinkMinter>>,
    /// Panics caught in run tasks and connector attempts (each is turned into an error;
    /// `/metrics` shows the count).
    panics: Arc<std::sync::atomic::AtomicU64>,
}

/// The result of one attempt, sent back to the driver.
struct AttemptDone {
    step: String,
    host: String,
    result: Result<Outputs, ConnectorError>,
    note: String,
}

impl<S: Store> Engine<S> {
    /// An engine with the defaults: no observer, 16 attempts per run, 64 in all.
    pub fn new(store: S, clock: Arc<dyn Clock>, mode: Mode) -> Self {
        Engine {
            store: Arc::new(store),
            clock,
            mode,
            settings: Arc::new(Settings::default()),
            secrets: Arc::new(Secrets::new()),
            observer: Arc::new(|_| {}),
            rejected: BTreeSet::new(),
            public_url: "http://127.0.0.1:8080".into(),
            max_parallel: 16,
            slots: Arc::new(tokio::sync::Semaphore::new(64)),
            links: None,
            panics: Arc::default(),
        }
    }

    /// Counts a panic caught in a run's task or an attempt.
    pub fn count_panic(&self) {
        self.panics
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Panics caught since the engine was made.
    pub fn panics(&self) -> u64 {
        self.panics.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Creates the run and its step rows (one per step, pending), with `run.started`. The run
    /// stores `checked`'s version (runbook text and every file it read) in its snapshot, and
    /// is bound to it for life.
    pub async fn start(&self, checked: &CheckedRunbook, spec: RunSpec) -> Result<RunRow, RunError> {
        let params = self.check_start(checked, &spec)?;
        let now = self.clock.now();
        let version: &Version = &checked.version;
        let run = RunRow {
            id: spec.id.clone(),
            runbook: checked.runbook.name.value.clone(),
            cycle: spec.cycle.map(|c| c.to_string()),
            content_hash: version.hash(),
            commit: spec.commit.clone(),
            snapshot: json!({ "start": spec.start, "params": params, "version": version }),
            state: RunState::Running,
            started_at: now,
            finished_at: None,
            rerun: spec.rerun.clone(),
        };
        let steps = checked
            .runbook
            .steps
            .keys()
            .map(|id| new_row(&run.id, &id.value, ""))
            .collect();
        let mut details = json!({ "runbook": run.runbook, "cycle": run.cycle, "content_hash": run.content_hash, "commit": run.commit, "params": params });
        if let Some(reason) = &spec.rerun {
            details["rerun"] = json!({ "reason": reason });
        }
        let event = NewEvent {
            at: now,
            actor: spec.actor.clone(),
            action: "run.started".into(),
            run_id: Some(run.id.clone()),
            step_id: None,
            details,
        };
        match self.store.create_run(run.clone(), steps, event).await {
            Ok(()) => Ok(run),
            Err(StoreError::DuplicateCycle { runbook, cycle }) => {
                Err(RunError::CycleTaken { runbook, cycle })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What [`Engine::start`] checks before it writes anything (the cycle's kind; the params:
    /// none unknown or missing, each one of its `choices`, every secret set): the params the run
    /// would store (defaults filled in, no secrets). The dashboard's confirm step asks it
    /// before it shows what will run.
    pub fn check_start(
        &self,
        checked: &CheckedRunbook,
        spec: &RunSpec,
    ) -> Result<Map<String, Value>, RunError> {
        if let Some(why) = spec.cycle.and_then(|c| checked.schedule.wrong_kind(c)) {
            return Err(RunError::CycleKind(why));
        }
        Ok(resolve_params(checked, &spec.params, self.mode)?.0)
    }

    /// Drives a run until it finishes, is cancelled, or waits for a person. A cancellation is
    /// audited as `cli:operator`; see [`Engine::drive_with`] to name who cancelled.
    pub async fn drive(
        &self,
        checked: &CheckedRunbook,
        run_id: &str,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        self.drive_with(checked, run_id, cancel, CancelBy::default())
            .await
    }

    /// [`Engine::drive`], with the actor of a cancellation in `by` (set before the token is
    /// cancelled; unset: `cli:operator`).
    pub async fn drive_with(
        &self,
        checked: &CheckedRunbook,
        run_id: &str,
        cancel: CancellationToken,
        by: CancelBy,
    ) -> Result<Outcome, RunError> {
        self.drive_fenced(checked, run_id, cancel, by, None).await
    }

    /// [`Engine::drive_with`] for a run this process claimed (several daemons, DESIGN §5):
    /// every commit carries `fence`, so once another daemon took the run over nothing more is
    /// written ([`StoreError::Fenced`] ends the drive). `None`: unfenced.
    pub async fn drive_fenced(
        &self,
        checked: &CheckedRunbook,
        run_id: &str,
        cancel: CancellationToken,
        by: CancelBy,
        fence: Option<Fence>,
    ) -> Result<Outcome, RunError> {
        let mut run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| RunError::NoSuchRun(run_id.to_string()))?;
        if run.state != RunState::Running {
            return Ok(Outcome::Finished(run.state));
        }
        // The drive works from `checked` (the run's version): the snapshot's copy of it (every
        // file the runbook read: an inventory of 100,000 hosts is megabytes) is not kept.
        if let Some(snapshot) = run.snapshot.as_object_mut() {
            snapshot.remove("version");
        }
        let mut driver = match Driver::new(self, checked, run.clone(), cancel).await {
            Ok(driver) => driver,
            Err(e) if e.is_stored_data() => {
                return self.fail_on(Some(checked), &run, &e, fence).await;
            }
            Err(e) => return Err(e),
        };
        driver.cancel_by = by;
        driver.fence = fence.clone();
        match driver.run().await {
            Err(e) if e.is_stored_data() => self.fail_on(Some(checked), &run, &e, fence).await,
            outcome => outcome,
        }
    }

    /// Fails `run` because its stored data cannot be driven (`error`), and says so.
    async fn fail_on(
        &self,
        checked: Option<&CheckedRunbook>,
        run: &RunRow,
        error: &RunError,
        fence: Option<Fence>,
    ) -> Result<Outcome, RunError> {
        tracing::error!(run_id = %run.id, "run {} cannot go on: {error}", run.id);
        self.fail_run(checked, run, &error.to_string(), fence)
            .await?;
        Ok(Outcome::Finished(RunState::Failed))
    }

    /// Fails a run the engine cannot drive (its stored data does not fit its version, its
    /// version cannot be rebuilt, its task panicked again and again), in one commit: every
    /// unfinished row `cancelled` with the reason, the run `failed`, a `run.failed` event with
    /// the reason, and an email to the runbook's `notify.to` (or its `committee` role) whatever
    /// `notify.on` says, from `checked` (the run's version, else the runbook's version in
    /// force, else none: then only the log says so). A run that finished meanwhile is left as
    /// it is.
    pub async fn fail_run(
        &self,
        checked: Option<&CheckedRunbook>,
        run: &RunRow,
        reason: &str,
        fence: Option<Fence>,
    ) -> Result<(), RunError> {
        let now = self.clock.now();
        let rows = self.store.steps(&run.id).await?;
        let mut change = ended_change(&rows, &run.id, now, "engine", reason, RunState::Failed);
        change.fence = fence;
        if let Some(checked) = checked {
            let moot = "the run failed";
            let moot = self.moot_for_ended_run(checked, run, &rows, moot, now);
            change.emails.extend(moot.await?);
        }
        let email = checked.and_then(|c| self.run_failed_email(c, run, reason, now));
        if email.is_none() {
            tracing::error!(run_id = %run.id, "run {} failed and nobody can be mailed: {reason}", run.id);
        }
        change.emails.extend(email);
        match self.store.commit(vec![change]).await {
            Ok(()) => Ok(()),
            // A row moved meanwhile: the run is driven by someone, or finished; not failed here.
            Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// After a crash: `running` rows of idempotent connectors go back to waiting (re-run);
    /// the others become `interrupted` and wait for an operator.
    pub async fn recover(
        &self,
        checked: &CheckedRunbook,
        run_id: &str,
    ) -> Result<Vec<StepRow>, RunError> {
        self.recover_fenced(checked, run_id, None).await
    }

    /// [`Engine::recover`] by the daemon that just claimed the run: a row found `running` was
    /// left by a driver that died or lost its claim. The commit carries `fence`.
    pub async fn recover_fenced(
        &self,
        checked: &CheckedRunbook,
        run_id: &str,
        fence: Option<Fence>,
    ) -> Result<Vec<StepRow>, RunError> {
        let rows = self.store.steps(run_id).await?;
        let now = self.clock.now();
        let mut change = Change::default();
        for row in rows
            .iter()
            .filter(|r| r.state == StepState::Running && !is_container(checked, r))
        {
            let idempotent = is_idempotent(checked, &row.step);
            let (state, action, why) = if idempotent {
                (
                    StepState::Waiting,
                    "step.resumed",
                    "found running after a restart; its connector is idempotent, so it runs again",
                )
            } else {
                (
                    StepState::Interrupted,
                    "step.interrupted",
                    "found running after a restart; its connector is not idempotent: an operator decides (retry, skip or abort)",
                )
            };
            let mut new = row.clone();
            new.state = state;
            new.not_before = None;
            new.reason = Some(why.to_string());
            change.events.push(event(
                now,
                "engine",
                action,
                row,
                json!({ "reason": why, "attempt": row.attempt }),
            ));
            change.steps.push(StepWrite {
                expect: Some(StepState::Running),
                row: new,
            });
        }
        let recovered: Vec<StepRow> = change.steps.iter().map(|w| w.row.clone()).collect();
        change.fence = fence;
        change.emails.extend(
            self.interrupted_emails(checked, run_id, &recovered, now)
                .await?,
        );
        if !recovered.is_empty() {
            self.store.commit(vec![change]).await?;
        }
        Ok(recovered)
    }

    /// One email per step that now waits for an operator (see [`notify::interrupted_email`]),
    /// committed with the transition: a restart finds the row `interrupted`, not `running`, so
    /// each wait is told once.
    async fn interrupted_emails(
        &self,
        checked: &CheckedRunbook,
        run_id: &str,
        recovered: &[StepRow],
        at: DateTime<Utc>,
    ) -> Result<Vec<crate::store::NewEmail>, RunError> {
        let waiting: Vec<&StepRow> = recovered
            .iter()
            .filter(|r| r.state == StepState::Interrupted)
            .collect();
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let Some(run) = self.store.run(run_id).await? else {
            return Ok(Vec::new());
        };
        let cycle = cycle_shown(&run);
        let run_url = self.run_url(run_id);
        let about = notify::About {
            run_id,
            cycle: &cycle,
            run_url: &run_url,
            dashboard_url: &self.dashboard_url(),
        };
        let mut steps: Vec<&str> = Vec::new();
        for row in &waiting {
            if !steps.contains(&row.step.as_str()) {
                steps.push(row.step.as_str());
            }
        }
        Ok(steps
            .into_iter()
            .filter_map(|step| {
                let rows: Vec<&&StepRow> = waiting.iter().filter(|r| r.step == step).collect();
                let hosts: Vec<&str> = rows
                    .iter()
                    .map(|r| r.host.as_str())
                    .filter(|h| !h.is_empty())
                    .collect();
                let reason = rows[0].reason.as_deref().unwrap_or("");
                notify::interrupted_email(checked, &about, step, &hosts, reason, at)
            })
            .collect())
    }

    /// The email saying the engine failed `run` (see [`Engine::fail_run`]).
    fn run_failed_email(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Option<crate::store::NewEmail> {
        let cycle = cycle_shown(run);
        let run_url = self.run_url(&run.id);
        let about = notify::About {
            run_id: &run.id,
            cycle: &cycle,
            run_url: &run_url,
            dashboard_url: &self.dashboard_url(),
        };
        notify::run_failed_email(checked, &about, reason, at)
    }

    /// An operator's decision on an interrupted step, audited as `cli:<operator>`.
    pub async fn resolve(
        &self,
        run_id: &str,
        step: &str,
        host: &str,
        resolution: Resolution,
        operator: &str,
    ) -> Result<(), RunError> {
        let actor = format!("cli:{operator}");
        self.resolve_as(run_id, step, host, resolution, &actor, None)
            .await
    }

    /// [`Engine::resolve`] audited as `actor` (`cli:<user>`, `api:<token name>`), with the
    /// operator's `reason` (recorded in the `step.resolved` / `run.cancelled` event and shown
    /// as the row's reason).
    pub async fn resolve_as(
        &self,
        run_id: &str,
        step: &str,
        host: &str,
        resolution: Resolution,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<(), RunError> {
        let rows = self.store.steps(run_id).await?;
        let row = rows
            .iter()
            .find(|r| r.step == step && r.host == host && r.state == StepState::Interrupted)
            .ok_or_else(|| RunError::NotInterrupted(step.to_string(), host.to_string()))?;
        let now = self.clock.now();
        let operator = actor.strip_prefix("cli:").unwrap_or(actor);
        let actor = actor.to_string();
        let because = reason.map(|r| format!(": {r}")).unwrap_or_default();
        if resolution == Resolution::Abort {
            let change = ended_change(
                &rows,
                run_id,
                now,
                &actor,
                &format!("aborted by {operator} at interrupted step {step}{because}"),
                RunState::Cancelled,
            );
            self.store.commit(vec![change]).await?;
            return Ok(());
        }
        let mut new = row.clone();
        (new.state, new.reason) = match resolution {
            Resolution::Retry => (
                StepState::Waiting,
                Some(format!("retry decided by {operator}{because}")),
            ),
            _ => (
                StepState::Skipped,
                Some(format!(
                    "skipped by {operator} after an interruption{because}"
                )),
            ),
        };
        let decision = if resolution == Resolution::Retry {
            "retry"
        } else {
            "skip"
        };
        let change = Change {
            steps: vec![StepWrite {
                expect: Some(StepState::Interrupted),
                row: new,
            }],
            events: vec![event(
                now,
                &actor,
                "step.resolved",
                row,
                json!({ "decision": decision, "reason": reason }),
            )],
            ..Change::default()
        };
        self.store.commit(vec![change]).await?;
        Ok(())
    }
}

/// Whether a row is the container of a fan-out (its hosts are separate rows).
fn is_container(checked: &CheckedRunbook, row: &StepRow) -> bool {
    row.host.is_empty()
        && checked
            .runbook
            .steps
            .get(row.step.as_str())
            .is_some_and(|s| s.for_each.is_some())
}

/// Whether running a row's step twice is harmless (crash recovery): the step's own
/// `idempotent:` when it says so, else its connector's; a milestone is.
fn is_idempotent(checked: &CheckedRunbook, step: &str) -> bool {
    let declared = step
        .strip_prefix(UNDO_PREFIX)
        .is_none()
        .then(|| checked.runbook.steps.get(step).and_then(|s| s.idempotent))
        .flatten();
    declared.unwrap_or_else(|| {
        connector_of(checked, step)
            .map(|c| c.spec().idempotent)
            .unwrap_or(true)
    })
}

/// The connector a row runs: the step's, or its `undo`'s for an undo row.
fn connector_of(checked: &CheckedRunbook, step: &str) -> Option<Arc<dyn Connector>> {
    let (name, undo) = match step.strip_prefix(UNDO_PREFIX) {
        Some(original) => (original, true),
        None => (step, false),
    };
    let step = checked.runbook.steps.get(name)?;
    let uses = if undo {
        step.undo.as_ref().map(|u| u.uses.value.as_str())
    } else {
        step.uses.as_ref().map(|u| u.value.as_str())
    };
    patchday_connectors::runtime::builtin(uses?)
}

fn new_row(run_id: &str, step: &str, host: &str) -> StepRow {
    StepRow {
        run_id: run_id.to_string(),
        step: step.to_string(),
        host: host.to_string(),
        state: StepState::Pending,
        attempt: 0,
        not_before: None,
        started_at: None,
        finished_at: None,
        outputs: json!({}),
        reason: None,
    }
}

fn event(
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    row: &StepRow,
    mut details: Value,
) -> NewEvent {
    if let (false, Some(map)) = (row.host.is_empty(), details.as_object_mut()) {
        map.insert("host".into(), row.host.clone().into());
    }
    NewEvent {
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        run_id: Some(row.run_id.clone()),
        step_id: Some(row.step.clone()),
        details,
    }
}

/// Ends a run in `state` (`cancelled` or `failed`), every unfinished row `cancelled` with
/// `why`, with a `run.cancelled` / `run.failed` event.
fn ended_change(
    rows: &[StepRow],
    run_id: &str,
    now: DateTime<Utc>,
    actor: &str,
    why: &str,
    state: RunState,
) -> Change {
    let mut change = Change::default();
    for row in rows.iter().filter(|r| !r.state.is_terminal()) {
        let mut new = row.clone();
        new.state = StepState::Cancelled;
        new.finished_at = Some(now);
        new.reason = Some(why.to_string());
        change.steps.push(StepWrite {
            expect: Some(row.state),
            row: new,
        });
    }
    change.run = Some((run_id.to_string(), state, now));
    change.events.push(NewEvent {
        at: now,
        actor: actor.to_string(),
        action: format!("run.{}", state.as_str()),
        run_id: Some(run_id.to_string()),
        step_id: None,
        details: json!({ "reason": why }),
    });
    change
}

/// Params as the run sees them: given values, defaults, and secrets from the environment.
/// Returns the non-secret params (safe to store) and the secrets. A dry run needs no secrets.
fn resolve_params(
    checked: &CheckedRunbook,
    given: &[(String, String)],
    mode: Mode,
) -> Result<(Map<String, Value>, Secrets), RunError> {
    let declared = &checked.runbook.params;
    if let Some((name, _)) = given
        .iter()
        .find(|(n, _)| !declared.contains_key(n.as_str()))
    {
        return Err(RunError::UnknownParam(name.clone()));
    }
    let mut public = Map::new();
    let mut secrets = Secrets::new();
    for (name, param) in declared {
        let name = name.value.as_str();
        if param.secret {
            let var = secret_env_name(name);
            if mode == Mode::DryRun {
                secrets.insert(name, "(secret)");
                continue;
            }
            match std::env::var(&var) {
                Ok(value) => secrets.insert(name, value),
                Err(_) => return Err(RunError::MissingSecret(name.to_string(), var)),
            }
            continue;
        }
        let value = given
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| param.default.clone());
        let value = value.ok_or_else(|| RunError::MissingParam(name.to_string()))?;
        if let Some(choices) = param.choices.as_ref().filter(|c| !c.contains(&value)) {
            return Err(RunError::BadChoice {
                name: name.to_string(),
                choices: choices.join(", "),
            });
        }
        public.insert(name.to_string(), Value::String(value));
    }
    Ok((public, secrets))
}

/// When a run's timeline starts: the `start` its snapshot records, else when it was created.
pub fn run_start(run: &RunRow) -> DateTime<Utc> {
    run.snapshot
        .get("start")
        .and_then(|s| serde_json::from_value::<DateTime<Utc>>(s.clone()).ok())
        .unwrap_or(run.started_at)
}

/// The month a run's calendar anchors (`patch_tuesday`, `first_monday`, ...) are resolved in:
/// its cycle, or for a run without one (a manual run) the month its timeline started in, in
/// the runbook's zone. Not shown anywhere: a run without a cycle shows none ([`cycle_shown`]).
pub fn anchor_cycle(run: &RunRow, tz: chrono_tz::Tz) -> Cycle {
    run.cycle
        .as_deref()
        .and_then(|c| c.parse::<Cycle>().ok())
        .unwrap_or_else(|| Cycle::of(run_start(run).with_timezone(&tz).date_naive()))
}

/// A run's cycle as emails and templates show it: its own, or "" for a run without one.
/// (The CLI prints `-`, the pages "none".) One rule everywhere: a manual run is not a cycle.
pub fn cycle_shown(run: &RunRow) -> String {
    run.cycle.clone().unwrap_or_default()
}

/// The runbook version `run` is bound to, from its snapshot. A run started before versions
/// were stored holds only its runbook's text: that text, with no other file.
pub fn version_of(run: &RunRow) -> Result<Version, VersionError> {
    let missing = |why: &str| VersionError::Missing {
        run: run.id.clone(),
        why: why.to_string(),
    };
    if let Some(version) = run.snapshot.get("version") {
        return serde_json::from_value(version.clone()).map_err(|e| missing(&e.to_string()));
    }
    let text = run
        .snapshot
        .get("runbook")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("neither a version nor a runbook text"))?;
    Ok(Version {
        file: format!("{}.yaml", run.runbook),
        dir: std::path::PathBuf::new(),
        text: text.to_string(),
        files: Default::default(),
        listed: Default::default(),
    })
}

/// A new run id: the runbook, the clock's time, and 64 random bits (two runs started in the
/// same second, by any process, never share an id).
pub fn new_run_id(runbook: &str, now: DateTime<Utc>) -> String {
    let mut random = [0u8; 8];
    if getrandom::fill(&mut random).is_err() {
        // No OS randomness: the process, the nanoseconds and a counter still tell runs apart.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        random = (nanos ^ (u64::from(std::process::id()) << 32) ^ next).to_be_bytes();
    }
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{runbook}-{}-{suffix}", now.format("%Y%m%dT%H%M%S"))
}

/// `PATCHDAY_SECRET_CHANGE_TOKEN` for param `change_token`.
pub fn secret_env_name(param: &str) -> String {
    format!("PATCHDAY_SECRET_{}", param.to_uppercase().replace('-', "_"))
}

/// SHA-256 of `bytes` as lowercase hex: the content hash runs pin.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The state of one run while it is driven: the rows mirrored from the store, and the
/// attempts in flight.
struct Driver<'a, S: Store> {
    engine: &'a Engine<S>,
    checked: &'a CheckedRunbook,
    run: RunRow,
    rows: RunRows,
    context: RunContext,
    secrets: Secrets,
    anchor: AnchorContext,
    cancel: CancellationToken,
    done_tx: mpsc::UnboundedSender<AttemptDone>,
    done_rx: mpsc::UnboundedReceiver<AttemptDone>,
    in_flight: usize,
    /// The version's files, for the connectors (templates come from here, not the disk).
    files: Arc<std::collections::BTreeMap<std::path::PathBuf, String>>,
    /// Transitions applied to `rows` but not yet committed: attempt results wait here so that
    /// they commit in the same transaction as the starts they allow (one commit per step on a
    /// chain). Nothing is launched before the transaction that starts it has committed.
    staged: Change,
    /// Where each row staged is in `staged.steps`, by its position in the run's rows.
    staged_at: std::collections::HashMap<usize, usize>,
    staged_progress: Vec<Progress>,
    /// The fanned-out steps whose connector settles batches (counted once in the limit).
    batch_fan_outs: Vec<String>,
    /// Steps already reported overdue (read back from the audit log on resume).
    overdue: BTreeSet<String>,
    /// The engine's connector settings with this runbook's roles added.
    settings: Arc<Settings>,
    /// Decisions on the run's approvals and tasks, read before a `report` step starts.
    decisions: Vec<crate::store::DecisionRow>,
    /// Who cancels the run when `cancel` fires.
    cancel_by: CancelBy,
    /// Carried by every commit: the claim this driver holds on the run (several daemons).
    fence: Option<Fence>,
}

mod driver;
pub use driver::state_word;
pub(crate) use driver::uses_of;
#[cfg(test)]
mod tests;
