//! The driver loop of one run: decide, commit, dispatch, wait, repeat.

use std::pin::pin;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tracing::Instrument as _;

use super::notify::{About, Notice};
use super::*;

impl<'a, S: Store> Driver<'a, S> {
    pub(super) async fn new(
        engine: &'a Engine<S>,
        checked: &'a CheckedRunbook,
        run: RunRow,
        cancel: CancellationToken,
    ) -> Result<Self, RunError> {
        let rows = RunRows::new(checked, engine.store.steps(&run.id).await?)?;
        let params = run
            .snapshot
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let (_, mut secrets) = resolve_params(
            checked,
            &params
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect::<Vec<_>>(),
            engine.mode,
        )?;
        let mut all_params = params.clone();
        for (name, _) in checked.runbook.params.iter().filter(|(_, p)| p.secret) {
            if let Some(value) = secrets.get(&name.value) {
                all_params.insert(name.value.clone(), Value::String(value.to_string()));
            }
        }
        // After the params are in the template context, so only the run's own secrets are
        // visible to templates; the connector-wide ones are for connectors and redaction.
        secrets.merge(&engine.secrets);
        let start = super::run_start(&run);
        let cycle = super::anchor_cycle(&run, checked.tz);
        let run_url = engine.run_url(&run.id);
        let context = RunContext::from_run(&run, all_params, run_url);
        let overdue_filter = crate::store::EventFilter {
            run_id: Some(run.id.clone()),
            since: None,
        };
        let overdue = engine
            .store
            .events(overdue_filter)
            .await?
            .into_iter()
            .filter(|e| e.action == "step.overdue")
            .filter_map(|e| e.step_id)
            .collect();
        let mut settings = (*engine.settings).clone();
        for (role, addresses) in &checked.runbook.roles {
            settings
                .roles
                .entry(role.value.clone())
                .or_insert_with(|| addresses.iter().map(|a| a.value.clone()).collect());
        }
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Ok(Driver {
            engine,
            checked,
            run,
            rows,
            context,
            secrets,
            anchor: AnchorContext {
                cycle,
                start: Some(start),
            },
            cancel,
            done_tx,
            done_rx,
            in_flight: 0,
            files: Arc::new(checked.version.resolved_files()),
            staged: Change::default(),
            staged_at: Default::default(),
            staged_progress: Vec::new(),
            batch_fan_outs: super::batch::batch_fan_outs(checked),
            overdue,
            settings: Arc::new(settings),
            cancel_by: CancelBy::default(),
            decisions: Vec::new(),
            fence: None,
        })
    }

    pub(super) async fn run(&mut self) -> Result<Outcome, RunError> {
        loop {
            if self.cancel.is_cancelled() {
                return self.cancel_run("cancelled by the operator").await;
            }
            let actions = self.decide();
            if !actions.is_empty() {
                if let Some(state) = self.apply(actions).await? {
                    return Ok(Outcome::Finished(state));
                }
                continue;
            }
            self.flush().await?;
            if self.in_flight == 0 && self.next_due().is_none() {
                return Ok(Outcome::Blocked(self.blocked_rows()));
            }
            self.wait().await?;
        }
    }

    /// Runs `f` on a view of the run as it stands now.
    fn with_view<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        let now = self.engine.clock.now();
        let condition = |index: usize, template: &str| self.condition(index, template);
        let view = View {
            checked: self.checked,
            rows: &self.rows,
            now,
            anchor: &self.anchor,
            today: now.with_timezone(&self.checked.tz).date_naive(),
            condition: &condition,
            overdue: &self.overdue,
            room: self
                .engine
                .max_parallel
                .saturating_sub(self.executions_running()),
        };
        f(&view)
    }

    fn decide(&self) -> Vec<Action> {
        let actions = self.with_view(decide);
        self.within_parallel_limit(actions)
    }

    fn condition(&self, index: usize, template: &str) -> bool {
        let hb = registry(self.engine.mode == Mode::Live);
        let _ = index;
        let context = self.context.for_step(self.rows.own_rows(), None);
        hb.render_template(template, &context)
            .map(|t| truthy(&t))
            .unwrap_or(false)
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.rows.next_waiting()
    }

    fn blocked_rows(&self) -> Vec<(String, String, StepState)> {
        self.rows
            .all()
            .iter()
            .filter(|r| matches!(r.state, StepState::AwaitingInput | StepState::Interrupted))
            .map(|r| (r.step.clone(), r.host.clone(), r.state))
            .collect()
    }

    /// Waits for an attempt to end, the next due time, or cancellation; then commits every
    /// attempt result that has arrived, in one transaction.
    async fn wait(&mut self) -> Result<(), RunError> {
        let deadline = self.with_view(super::decide::next_deadline);
        let due = match (self.next_due(), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let clock = self.engine.clock.clone();
        let first = {
            let sleep = pin!(async move {
                match due {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            });
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Ok(()),
                done = self.done_rx.recv() => done,
                _ = sleep => None,
            }
        };
        let mut results: Vec<AttemptDone> = first.into_iter().collect();
        while let Ok(more) = self.done_rx.try_recv() {
            results.push(more);
        }
        if results.is_empty() {
            return Ok(());
        }
        self.in_flight -= results.len();
        let mut change = Change::default();
        let mut progress = Vec::new();
        // Results that arrive together finish at one instant (a batch's hosts retry together).
        let now = self.engine.clock.now();
        for done in results {
            self.finish_attempt(done, now, &mut change, &mut progress);
        }
        self.stage(change, progress)
    }

    /// Applies decided actions in one transaction, then dispatches the attempts they started.
    /// Returns the run's final state when the run finished.
    async fn apply(&mut self, actions: Vec<Action>) -> Result<Option<RunState>, RunError> {
        let starts_report = actions.iter().any(|a| {
            matches!(a, Action::Start { step, .. }
                if uses_of(self.checked, step).as_deref() == Some("report"))
        });
        if starts_report {
            self.read_decisions().await?;
        }
        let now = self.engine.clock.now();
        let mut change = Change::default();
        let mut progress = Vec::new();
        let mut launches = Vec::new();
        let mut finished = None;
        for action in actions {
            match action {
                Action::Skip { step, host, reason } => self.transition(
                    &step,
                    &host,
                    StepState::Skipped,
                    Some(reason),
                    now,
                    &mut change,
                    &mut progress,
                )?,
                Action::Wait { step, until } => {
                    let mut row = self.row(&step, "")?.clone();
                    let prior = row.state;
                    row.state = StepState::Waiting;
                    row.not_before = Some(until);
                    change.events.push(event(
                        now,
                        "engine",
                        "step.waiting",
                        &row,
                        json!({ "until": until }),
                    ));
                    progress.push(self.progress(
                        &row,
                        now,
                        format!(
                                "waits until {}",
                                until
                                    .with_timezone(&self.checked.tz)
                                    .format("%a %Y-%m-%d %H:%M %Z")
                            ),
                    ));
                    change.steps.push(StepWrite {
                        expect: Some(prior),
                        row,
                    });
                }
                Action::Start { step, host } => {
                    self.start(&step, &host, now, &mut change, &mut progress, &mut launches)?
                }
                Action::Expand {
                    step,
                    hosts,
                    excepted,
                } => self.expand(&step, hosts, excepted, now, &mut change, &mut progress)?,
                Action::FinishParent {
                    step,
                    state,
                    reason,
                } => {
                    if state == StepState::Failed {
                        let why = reason.clone().unwrap_or_default();
                        let notice = Notice::StepFailed {
                            step: &step,
                            host: "",
                            reason: &why,
                        };
                        change.emails.extend(self.notice(&notice, now));
                    }
                    self.transition(&step, "", state, reason, now, &mut change, &mut progress)?
                }
                Action::Overdue { step, deadline } => {
                    let row = self.row(&step, "")?.clone();
                    change.events.push(event(
                        now,
                        "engine",
                        "step.overdue",
                        &row,
                        json!({ "deadline": deadline }),
                    ));
                    change.emails.extend(self.notice(
                        &Notice::Overdue {
                            step: &step,
                            deadline,
                        },
                        now,
                    ));
                    progress.push(self.progress(
                        &row,
                        now,
                        format!(
                                "overdue: its deadline was {}",
                                deadline
                                    .with_timezone(&self.checked.tz)
                                    .format("%a %Y-%m-%d %H:%M %Z")
                            ),
                    ));
                    self.overdue.insert(step);
                }
                Action::BeginRollback { rows } => {
                    for (step, host) in rows {
                        change.steps.push(StepWrite {
                            expect: None,
                            row: new_row(&self.run.id, &step, &host),
                        });
                    }
                    change.events.push(NewEvent {
                        at: now,
                        actor: "engine".into(),
                        action: "run.rollback_started".into(),
                        run_id: Some(self.run.id.clone()),
                        step_id: None,
                        details: json!({}),
                    });
                }
                Action::FinishRun { failed } => {
                    let state = if failed {
                        RunState::Failed
                    } else {
                        RunState::Succeeded
                    };
                    change.run = Some((self.run.id.clone(), state, now));
                    change
                        .emails
                        .extend(self.notice(&Notice::RunFinished { state }, now));
                    change.events.push(NewEvent {
                        at: now,
                        actor: "engine".into(),
                        action: "run.finished".into(),
                        run_id: Some(self.run.id.clone()),
                        step_id: None,
                        details: json!({ "state": state }),
                    });
                    finished = Some(state);
                }
            }
        }
        self.stage(change, progress)?;
        self.flush().await?;
        self.launch_all(launches);
        Ok(finished)
    }

    #[allow(clippy::too_many_arguments)]
    fn transition(
        &self,
        step: &str,
        host: &str,
        state: StepState,
        reason: Option<String>,
        now: DateTime<Utc>,
        change: &mut Change,
        progress: &mut Vec<Progress>,
    ) -> Result<(), RunError> {
        let mut row = self.row(step, host)?.clone();
        let prior = row.state;
        row.state = state;
        row.reason = reason.clone();
        if state.is_terminal() {
            row.finished_at = Some(now);
        }
        let action = format!("step.{}", state_word(state));
        change.events.push(event(
            now,
            "engine",
            &action,
            &row,
            json!({ "reason": reason }),
        ));
        progress.push(self.progress(&row, now, reason.unwrap_or_default()));
        change.steps.push(StepWrite {
            expect: Some(prior),
            row,
        });
        Ok(())
    }

    fn expand(
        &self,
        step: &str,
        hosts: Vec<String>,
        excepted: Vec<(String, String)>,
        now: DateTime<Utc>,
        change: &mut Change,
        progress: &mut Vec<Progress>,
    ) -> Result<(), RunError> {
        let mut parent = self.row(step, "")?.clone();
        let prior = parent.state;
        parent.state = StepState::Running;
        parent.started_at = Some(now);
        change.events.push(event(now, "engine", "step.started", &parent, json!({ "hosts": hosts, "excepted": excepted.iter().map(|(h, _)| h).collect::<Vec<_>>() })));
        progress.push(self.progress(
            &parent,
            now,
            format!("fans out over {} host(s)", hosts.len()),
        ));
        change.steps.reserve(hosts.len() + excepted.len() + 1);
        change.steps.push(StepWrite {
            expect: Some(prior),
            row: parent,
        });
        for host in hosts {
            change.steps.push(StepWrite {
                expect: None,
                row: new_row(&self.run.id, step, &host),
            });
        }
        for (host, reason) in excepted {
            let mut row = new_row(&self.run.id, step, &host);
            row.state = StepState::Skipped;
            row.finished_at = Some(now);
            row.reason = Some(reason.clone());
            change.events.push(event(
                now,
                "engine",
                "step.excepted",
                &row,
                json!({ "reason": reason }),
            ));
            progress.push(self.progress(&row, now, reason));
            change.steps.push(StepWrite { expect: None, row });
        }
        Ok(())
    }

    /// Reads the decisions on every approval and task row of the run (for the report).
    async fn read_decisions(&mut self) -> Result<(), RunError> {
        self.decisions = super::report::run_decisions(
            self.engine.store.as_ref(),
            self.checked,
            &self.run.id,
            self.rows.all(),
        )
        .await?;
        Ok(())
    }

    /// Marks a row running (or awaiting input) and prepares its attempt.
    fn start(
        &self,
        step: &str,
        host: &str,
        now: DateTime<Utc>,
        change: &mut Change,
        progress: &mut Vec<Progress>,
        launches: &mut Vec<(String, String, Result<Value, String>)>,
    ) -> Result<(), RunError> {
        let mut row = self.row(step, host)?.clone();
        let prior = row.state;
        let uses = uses_of(self.checked, step);
        let waits_for_person = matches!(uses.as_deref(), Some("approval" | "manual"))
            && self.engine.mode == Mode::Live;
        row.state = if waits_for_person {
            StepState::AwaitingInput
        } else {
            StepState::Running
        };
        row.attempt += 1;
        row.started_at.get_or_insert(now);
        row.not_before = None;
        let inputs = self.inputs(step, host);
        let action = if waits_for_person {
            "step.awaiting_input"
        } else {
            "step.started"
        };
        change.events.push(event(
            now,
            "engine",
            action,
            &row,
            json!({ "attempt": row.attempt, "uses": uses }),
        ));
        progress.push(self.progress(&row, now, format!("attempt {}", row.attempt)));
        if waits_for_person {
            // The approval / task emails with their links, in this same commit.
            let emails =
                self.engine
                    .person_emails(self.checked, &self.run, self.rows.all(), &row, now);
            change
                .emails
                .extend(emails.into_iter().map(|email| self.redacted(email)));
        }
        change.steps.push(StepWrite {
            expect: Some(prior),
            row,
        });
        if !waits_for_person {
            launches.push((step.to_string(), host.to_string(), inputs));
        }
        Ok(())
    }

    /// The rendered `with:` of a row (its undo's for an undo row).
    fn inputs(&self, step: &str, host: &str) -> Result<Value, String> {
        let (name, undo) = match step.strip_prefix(UNDO_PREFIX) {
            Some(original) => (original, true),
            None => (step, false),
        };
        let Some(definition) = self.checked.runbook.steps.get(name) else {
            return Ok(json!({}));
        };
        let with = if undo {
            definition.undo.as_ref().and_then(|u| u.with.as_ref())
        } else {
            definition.with.as_ref()
        };
        let is_report = uses_of(self.checked, step).as_deref() == Some("report");
        let raw = match with {
            Some(with) => with.to_json(),
            None if is_report => json!({}),
            None => return Ok(json!({})),
        };
        let host_json = host_value(self.checked.inventory.as_ref(), host);
        let context = self
            .context
            .for_step(self.rows.own_rows(), host_json.as_ref());
        let mut inputs = render_value(&registry(self.engine.mode == Mode::Live), &raw, &context)?;
        if is_report {
            let report = super::report::cycle_report(
                self.checked,
                &self.run,
                &self.anchor,
                self.rows.all(),
                &self.decisions,
                self.engine.clock.now(),
            );
            if let (Some(map), Ok(report)) = (inputs.as_object_mut(), serde_json::to_value(report))
            {
                map.insert("report".into(), report);
            }
        }
        Ok(inputs)
    }

    /// Runs one attempt: inline for a dry run (deterministic), as a task otherwise.
    pub(super) fn launch(&mut self, step: String, host: String, inputs: Result<Value, String>) {
        self.in_flight += 1;
        let tx = self.done_tx.clone();
        let inputs = match inputs {
            Ok(inputs) => inputs,
            Err(e) => {
                let _ = tx.send(AttemptDone {
                    step,
                    host,
                    result: Err(ConnectorError::Fatal(e)),
                    note: String::new(),
                });
                return;
            }
        };
        let Some(connector) = connector_of(self.checked, &step) else {
            // A milestone: nothing to run.
            let _ = tx.send(AttemptDone {
                step,
                host,
                result: Ok(Outputs::new()),
                note: "milestone".into(),
            });
            return;
        };
        let ctx = self.connector_context(&step, &host);
        if self.engine.mode == Mode::DryRun {
            let done = self.dry_run(&step, host, connector.as_ref(), &inputs, &ctx);
            let _ = tx.send(done);
            return;
        }
        let timeout = self.timeout_of(&step);
        let slots = self.engine.slots.clone();
        let panics = self.engine.panics.clone();
        let span = tracing::info_span!("attempt", step_id = %step, host = %host);
        let task = async move {
            let _slot = slots.acquire_owned().await;
            let result = guarded_attempt(connector, inputs, ctx, timeout).await;
            if let Err(ConnectorError::Fatal(message)) = &result
                && message.starts_with(PANICKED)
            {
                panics.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let _ = tx.send(AttemptDone {
                step,
                host,
                result,
                note: String::new(),
            });
        };
        tokio::spawn(task.instrument(span));
    }

    fn dry_run(
        &self,
        step: &str,
        host: String,
        connector: &dyn Connector,
        inputs: &Value,
        ctx: &Context,
    ) -> AttemptDone {
        let name = connector.spec().name;
        if matches!(name, "approval" | "manual") {
            let rejected = self.engine.rejected.contains(step);
            let choices: Vec<String> = inputs
                .get("choices")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_else(|| vec!["approve".into(), "reject".into()]);
            let (result, note) = if rejected {
                (
                    Err(ConnectorError::Fatal(
                        "rejected (simulated with --reject)".into(),
                    )),
                    "rejected (simulated)".to_string(),
                )
            } else {
                let choice = if name == "manual" {
                    "done".to_string()
                } else {
                    choices[0].clone()
                };
                let mut outputs = Outputs::new();
                outputs.insert("choice".into(), Value::String(choice.clone()));
                outputs.insert("decided_by".into(), Value::String("simulation".into()));
                (Ok(outputs), format!("decided `{choice}` (simulated)"))
            };
            return AttemptDone {
                step: step.to_string(),
                host,
                result,
                note,
            };
        }
        match connector.dry_run(inputs, ctx) {
            Ok(description) => AttemptDone {
                step: step.to_string(),
                host,
                result: Ok(Outputs::new()),
                note: description,
            },
            Err(e) => AttemptDone {
                step: step.to_string(),
                host,
                note: e.to_string(),
                result: Err(e),
            },
        }
    }

    pub(super) fn connector_context(&self, step: &str, host: &str) -> Context {
        let mut ctx = Context::new(self.run.id.clone(), step.to_string());
        ctx.cancel = self.cancel.child_token();
        ctx.secrets = self.secrets.clone();
        ctx.settings = self.settings.clone();
        ctx.base_dir = self.checked.dir.clone();
        ctx.files = self.files.clone();
        ctx.ansible_inventory = self
            .checked
            .inventory
            .as_ref()
            .and_then(|i| i.ansible_source.clone());
        ctx.host =
            host_value(self.checked.inventory.as_ref(), host).and_then(|v| v.as_object().cloned());
        ctx.idempotency_key = Some(format!(
            "{}/{}/{}/{}",
            self.run.id,
            step,
            host,
            self.rows.get(step, host).map_or(0, |r| r.attempt)
        ));
        if matches!(
            uses_of(self.checked, step).as_deref(),
            Some("email" | "report")
        ) {
            ctx.vars = self.context.for_step(
                self.rows.own_rows(),
                ctx.host.clone().map(Value::Object).as_ref(),
            );
        }
        ctx
    }

    pub(super) fn timeout_of(&self, step: &str) -> Option<std::time::Duration> {
        let name = step.strip_prefix(UNDO_PREFIX).unwrap_or(step);
        self.checked
            .runbook
            .steps
            .get(name)?
            .timeout
            .as_ref()
            .map(|t| t.value.duration())
    }

    /// Turns an attempt's result into the row's next state: succeeded, failed, or waiting for a retry.
    fn finish_attempt(
        &self,
        done: AttemptDone,
        now: DateTime<Utc>,
        change: &mut Change,
        progress: &mut Vec<Progress>,
    ) {
        let Some(current) = self.rows.get(&done.step, &done.host) else {
            return;
        };
        if current.state != StepState::Running {
            return; // cancelled meanwhile
        }
        let mut row = current.clone();
        let (action, note) = match done.result {
            Ok(outputs) => {
                row.state = StepState::Succeeded;
                row.finished_at = Some(now);
                row.outputs = self.secrets.redact_json(Value::Object(outputs));
                let note = if done.note.is_empty() {
                    summarize(&row.outputs)
                } else {
                    done.note
                };
                ("step.succeeded", note)
            }
            Err(e) => {
                let message = self.secrets.redact(&e.to_string());
                match self.retry_at(&row, &e, now) {
                    Some(at) => {
                        row.state = StepState::Waiting;
                        row.not_before = Some(at);
                        row.reason = Some(message.clone());
                        (
                            "step.retrying",
                            format!(
                                "{message}; attempt {} of {} at {}",
                                row.attempt + 1,
                                self.attempts_of(&row.step),
                                at.with_timezone(&self.checked.tz).format("%H:%M:%S")
                            ),
                        )
                    }
                    None => {
                        if row.host.is_empty() && !matches!(e, ConnectorError::Cancelled) {
                            let notice = Notice::StepFailed {
                                step: &row.step,
                                host: "",
                                reason: &message,
                            };
                            change.emails.extend(self.notice(&notice, now));
                        }
                        row.state = if matches!(e, ConnectorError::Cancelled) {
                            StepState::Cancelled
                        } else {
                            StepState::Failed
                        };
                        row.finished_at = Some(now);
                        row.reason = Some(message.clone());
                        (
                            if row.state == StepState::Cancelled {
                                "step.cancelled"
                            } else {
                                "step.failed"
                            },
                            message,
                        )
                    }
                }
            }
        };
        change.events.push(event(
            now,
            "engine",
            action,
            &row,
            json!({ "attempt": row.attempt, "reason": row.reason, "outputs": row.outputs }),
        ));
        progress.push(self.progress(&row, now, note));
        change.steps.push(StepWrite {
            expect: Some(StepState::Running),
            row,
        });
    }

    fn attempts_of(&self, step: &str) -> u32 {
        let name = step.strip_prefix(UNDO_PREFIX).unwrap_or(step);
        self.checked
            .runbook
            .steps
            .get(name)
            .and_then(|s| s.retry.as_ref())
            .map_or(1, |r| r.attempts.value)
    }

    /// When to try again, if the error is retryable and attempts are left: backoff doubles
    /// from `backoff` (default 30s) up to `max_backoff` (default 1h).
    fn retry_at(
        &self,
        row: &StepRow,
        error: &ConnectorError,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !error.is_retryable() || row.attempt >= self.attempts_of(&row.step) {
            return None;
        }
        let name = row.step.strip_prefix(UNDO_PREFIX).unwrap_or(&row.step);
        let retry = self.checked.runbook.steps.get(name)?.retry.as_ref()?;
        let base = retry
            .backoff
            .as_ref()
            .map_or(30, |b| b.value.duration().as_secs());
        let cap = retry
            .max_backoff
            .as_ref()
            .map_or(3_600, |b| b.value.duration().as_secs());
        let factor = 1u64 << (row.attempt.saturating_sub(1)).min(20);
        let wait = base.saturating_mul(factor).min(cap);
        Some(now + chrono::Duration::seconds(wait as i64))
    }

    async fn cancel_run(&mut self, why: &str) -> Result<Outcome, RunError> {
        let now = self.engine.clock.now();
        self.flush().await?;
        let mut change = ended_change(
            self.rows.all(),
            &self.run.id,
            now,
            self.cancel_by.actor(),
            why,
            RunState::Cancelled,
        );
        let moot = format!("the run was cancelled by {}", self.cancel_by.actor());
        change.emails.extend(
            self.engine
                .moot_for_ended_run(self.checked, &self.run, self.rows.all(), &moot, now)
                .await?,
        );
        self.stage(change, Vec::new())?;
        self.flush().await?;
        // The attempts in flight saw the cancellation through their tokens (their connectors
        // kill what they started): wait until they are gone, so nothing outlives the run.
        while self.in_flight > 0 && self.done_rx.recv().await.is_some() {
            self.in_flight -= 1;
        }
        Ok(Outcome::Finished(RunState::Cancelled))
    }

    /// Applies a change to the mirrored rows and holds it for the next [`Self::flush`]. A row
    /// written twice before a flush keeps its first expected state and its last content.
    fn stage(&mut self, change: Change, progress: Vec<Progress>) -> Result<(), RunError> {
        self.staged.steps.reserve(change.steps.len());
        for write in change.steps {
            let position = self.rows.put(self.checked, write.row.clone())?;
            match self.staged_at.get(&position) {
                Some(&earlier) => self.staged.steps[earlier].row = write.row,
                None => {
                    self.staged_at.insert(position, self.staged.steps.len());
                    self.staged.steps.push(write);
                }
            }
        }
        self.staged.events.extend(change.events);
        self.staged.emails.extend(change.emails);
        if change.run.is_some() {
            self.staged.run = change.run;
        }
        self.staged_progress.extend(progress);
        Ok(())
    }

    /// Commits what is staged in one transaction, then reports its progress.
    async fn flush(&mut self) -> Result<(), RunError> {
        let mut change = std::mem::take(&mut self.staged);
        self.staged_at.clear();
        if change.steps.is_empty() && change.events.is_empty() && change.run.is_none() {
            return Ok(());
        }
        change.fence = self.fence.clone();
        self.engine.store.commit(vec![change]).await?;
        for p in std::mem::take(&mut self.staged_progress) {
            log_progress(&p);
            (self.engine.observer)(&p);
        }
        Ok(())
    }

    /// The outbox email for a notice, when the runbook's `notify` asks for it.
    fn notice(&self, notice: &Notice, now: DateTime<Utc>) -> Option<crate::store::NewEmail> {
        let about = About {
            run_id: &self.run.id,
            cycle: &super::cycle_shown(&self.run),
            run_url: &self.context.run_url,
            dashboard_url: &self.engine.dashboard_url(),
        };
        super::notify::email(self.checked, notice, &about, now).map(|e| self.redacted(e))
    }

    /// `email` with every secret value of the run redacted (a second line of defence: what
    /// notifications render is redacted already).
    fn redacted(&self, mut email: crate::store::NewEmail) -> crate::store::NewEmail {
        email.subject = self.secrets.redact(&email.subject);
        email.body = self.secrets.redact(&email.body);
        email
    }

    fn row(&self, step: &str, host: &str) -> Result<&StepRow, RowsError> {
        self.rows.row(step, host)
    }

    fn progress(&self, row: &StepRow, at: DateTime<Utc>, note: String) -> Progress {
        Progress {
            at,
            step: row.step.clone(),
            host: row.host.clone(),
            state: row.state,
            note: self.secrets.redact(&note),
        }
    }
}

/// One operator log line per committed transition, with the step and host as fields (the
/// run's span adds runbook and run id). Notes are already redacted.
fn log_progress(p: &Progress) {
    let state = state_word(p.state);
    let what = if p.note.is_empty() {
        format!("{} {state}", p.step)
    } else {
        format!("{} {state}: {}", p.step, p.note)
    };
    match p.state {
        StepState::Failed | StepState::Interrupted => {
            tracing::warn!(step_id = %p.step, host = %p.host, state, "{what}")
        }
        _ => tracing::info!(step_id = %p.step, host = %p.host, state, "{what}"),
    }
}

/// How the error of an attempt whose connector panicked begins.
const PANICKED: &str = "the connector failed unexpectedly (a panic)";

/// [`attempt`] in a task of its own: a panic in the connector becomes a fatal error of this
/// attempt (the run goes on and sees the step fail), never a lost result.
pub(super) async fn guarded_attempt(
    connector: Arc<dyn Connector>,
    inputs: Value,
    ctx: Context,
    timeout: Option<std::time::Duration>,
) -> Result<Outputs, ConnectorError> {
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(
        async move { attempt(connector.as_ref(), inputs, &ctx, timeout).await }.in_current_span(),
    );
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            // Whatever the connector started is stopped (its process group is killed).
            cancel.cancel();
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!("{PANICKED}: {message}");
            Err(ConnectorError::Fatal(format!("{PANICKED}: {message}")))
        }
        Err(_) => Err(ConnectorError::Cancelled),
    }
}

/// One attempt with its timeout: on timeout the connector is cancelled (it kills its process
/// group) and awaited, and the attempt fails as retryable.
async fn attempt(
    connector: &dyn Connector,
    inputs: Value,
    ctx: &Context,
    timeout: Option<std::time::Duration>,
) -> Result<Outputs, ConnectorError> {
    let mut run = pin!(connector.execute(inputs, ctx));
    let Some(limit) = timeout else {
        return run.await;
    };
    tokio::select! {
        result = &mut run => result,
        _ = tokio::time::sleep(limit) => {
            ctx.cancel.cancel();
            let _ = run.await;
            Err(ConnectorError::Retryable(format!("timed out after {}s", limit.as_secs())))
        }
    }
}

/// One line about what a step produced, for live progress: the last line of a command's
/// output, a message, an HTTP status.
fn summarize(outputs: &Value) -> String {
    let text = |key: &str| {
        outputs
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.lines().rev().find(|l| !l.trim().is_empty()))
            .map(str::trim)
    };
    let line = match (text("stdout"), text("message"), outputs.get("status")) {
        (Some(out), _, _) => out.to_string(),
        (None, Some(message), _) => message.to_string(),
        (None, None, Some(status)) => format!("HTTP {status}"),
        _ => String::new(),
    };
    line.chars().take(100).collect()
}

/// The connector a step row runs (`undo:` rows run their step's `undo`).
pub(crate) fn uses_of(checked: &CheckedRunbook, step: &str) -> Option<String> {
    let name = step.strip_prefix(UNDO_PREFIX);
    let definition = checked.runbook.steps.get(name.unwrap_or(step))?;
    match name {
        Some(_) => definition.undo.as_ref().map(|u| u.uses.value.clone()),
        None => definition.uses.as_ref().map(|u| u.value.clone()),
    }
}

pub(super) fn host_value(inventory: Option<&Inventory>, host: &str) -> Option<Value> {
    if host.is_empty() {
        return None;
    }
    let (name, record) = inventory?.hosts.get_key_value(host)?;
    Some(Inventory::host_json(&name.value, record))
}

/// The word used in audit actions for a state.
pub fn state_word(state: StepState) -> &'static str {
    match state {
        StepState::Pending => "pending",
        StepState::Waiting => "waiting",
        StepState::Running => "started",
        StepState::AwaitingInput => "awaiting_input",
        StepState::Succeeded => "succeeded",
        StepState::Failed => "failed",
        StepState::Skipped => "skipped",
        StepState::Cancelled => "cancelled",
        StepState::Interrupted => "interrupted",
    }
}
