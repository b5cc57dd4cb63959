//! People's decisions on approval and manual steps (DESIGN §5, §7): [`Engine::decide`] records
//! one decision, and settles the step when it completes it; [`Engine::expire_inputs`] fails the
//! steps nobody decided on in time.
//!
//! In live mode the driver leaves an `approval` or `manual` step row `awaiting_input` and the
//! run blocks on it. A decision comes from a link (`link:<email>`), the CLI (`cli:<user>`) or the
//! API (`api:<token name>`, through [`Engine::decide_as_operator`], which skips the recipient
//! check); whoever calls [`Engine::decide`] has already authenticated it (the link's signature,
//! expiry and target are checked by [`crate::links`]).
//!
//! What a decision must be:
//! - its row (run, step, host) is `awaiting_input` ([`RunError::NotAwaitingInput`]);
//! - its choice is one the step offers: an approval's `choices` (default `approve`, `reject`),
//!   a manual task's `done` / `failed` ([`RunError::NotAChoice`]);
//! - its recipient is one of the approvers (the assignees of a task), roles resolved with the
//!   runbook's `roles:` merged into the configured ones ([`RunError::NotARecipient`]). Addresses
//!   compare case-insensitively; the decision records the address as the step lists it.
//!
//! One commit writes the decision row, its `approval.decided` (`task.decided`) audit event
//! (actor, recipient, choice, comment, source IP) and, when it settles the step, the step's
//! transition with its `step.succeeded` / `step.failed` event and any failure notification:
//! - approval: settled when `quorum` decisions share a choice (counted in the order they were
//!   recorded). The first choice → `succeeded` with outputs `{ "choice", "decided_by" }`; any
//!   other → `failed`, the reason naming who decided.
//! - manual: the first decision settles it: `done` → `succeeded`, `failed` → `failed` with the
//!   comment as the reason.
//!
//! Single use and races. The store refuses a second decision by one recipient on one row and a
//! reused link nonce ([`StoreError::AlreadyDecided`], [`StoreError::LinkUsed`], returned inside
//! [`RunError::Store`]), and every deciding commit carries a write of the row that expects it
//! `awaiting_input` (the settling transition, or the row unchanged). So of two decisions racing
//! to settle a step exactly one commits; the other gets [`RunError::AlreadySettled`] and,
//! because its whole commit rolled back, **is not recorded** (no decision row, no event): the
//! person is told the step was already decided. Likewise no decision is recorded on a row that
//! was settled, expired or cancelled after the decider read it. The opposite
//! race (two decisions that each saw too few earlier ones to reach the quorum, but reach it
//! together) is repaired after the commit: a decider that did not settle re-reads the recorded
//! decisions and, if they reach the quorum, settles the step in a second commit (again expecting
//! `awaiting_input`, so only one of them does).
//!
//! After a step is settled, the run goes on when [`Engine::drive`] is called for it again (the
//! daemon does this after every settling decision and expiry): the row is no longer awaiting
//! input, so the driver picks up the steps that need it.

use chrono::{DateTime, Utc};
use patchday_connectors::inputs::OnExpire;
use serde_json::{Value, json};

use super::approvals::PersonAsk;
use super::notify::{About, Notice};
use super::*;
use crate::links::Purpose;
use crate::store::{DecisionRow, NewDecision, NewEmail};

/// What [`Engine::decide`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The state the step was settled to by this decision (`None`: it still awaits input).
    pub settled: Option<StepState>,
    /// Decisions recorded on the row so far, this one included.
    pub decisions_so_far: usize,
    /// Matching decisions the step needs (1 for a manual task).
    pub quorum: u32,
}

/// What [`Engine::expire_inputs`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expired {
    /// Rows (step, host) failed because their time ran out.
    pub expired: Vec<(String, String)>,
    /// When the next row still awaiting input expires (the daemon wakes then).
    pub next: Option<DateTime<Utc>>,
}

impl<S: Store> Engine<S> {
    /// Records a decision on an approval or manual step and, when it completes the step,
    /// settles it, all in one commit (see the module docs for the rules and the races).
    pub async fn decide(
        &self,
        checked: &CheckedRunbook,
        decision: NewDecision,
    ) -> Result<Decided, RunError> {
        self.decide_checked(checked, decision, None).await
    }

    /// The operator path (the JSON API, `patchday approve`): like [`Engine::decide`], but the
    /// decider need not be one of the step's people; the caller authenticated them. The
    /// decision's recipient is its actor (`api:<token name>`), so the store's one decision per
    /// (row, recipient) means one decision per operator identity on a row, and an operator
    /// decision counts towards the quorum like any other. It is an override: its event says
    /// so (`"override": true`) and carries the operator's written `reason`.
    pub async fn decide_as_operator(
        &self,
        checked: &CheckedRunbook,
        mut decision: NewDecision,
        reason: &str,
    ) -> Result<Decided, RunError> {
        decision.recipient = decision.actor.clone();
        self.decide_checked(checked, decision, Some(reason)).await
    }

    async fn decide_checked(
        &self,
        checked: &CheckedRunbook,
        mut decision: NewDecision,
        override_reason: Option<&str>,
    ) -> Result<Decided, RunError> {
        let operator = override_reason.is_some();
        let (step, host) = (decision.step.clone(), decision.host.clone());
        let rows = self.store.steps(&decision.run_id).await?;
        let row = awaiting_row(&rows, &step, &host)?;
        let run = self
            .store
            .run(&decision.run_id)
            .await?
            .ok_or_else(|| RunError::NoSuchRun(decision.run_id.clone()))?;
        let ask = self.person_ask(checked, &run, &rows, &step, &host)?;
        if !ask.choices.contains(&decision.choice) {
            return Err(RunError::NotAChoice {
                step,
                choice: decision.choice,
                choices: ask.choices.join(", "),
            });
        }
        if !operator {
            decision.recipient = ask
                .recipients
                .iter()
                .find(|r| r.trim().eq_ignore_ascii_case(decision.recipient.trim()))
                .cloned()
                .ok_or_else(|| RunError::NotARecipient {
                    step: step.clone(),
                    recipient: decision.recipient.clone(),
                })?;
        }
        let previous = self.store.decisions(&run.id, &step, &host).await?;
        if previous
            .iter()
            .any(|d| d.decision.recipient == decision.recipient)
        {
            return Err(StoreError::AlreadyDecided {
                run_id: run.id.clone(),
                step,
                host,
                recipient: decision.recipient,
            }
            .into());
        }
        let mut all: Vec<&NewDecision> = previous.iter().map(|d| &d.decision).collect();
        all.push(&decision);
        let settle = settlement(&ask, &all).map(|s| self.settle(checked, &run, row, &ask, s, &all));
        let decisions_so_far = all.len();

        let mut change = Change::default();
        change.events.push(event(
            decision.at,
            &decision.actor,
            match ask.purpose {
                Purpose::Approval => "approval.decided",
                Purpose::Task => "task.decided",
            },
            row,
            json!({
                "recipient": decision.recipient,
                "choice": decision.choice,
                "comment": decision.comment,
                "source_ip": decision.source_ip,
                "decisions_so_far": decisions_so_far,
                "quorum": ask.quorum,
            }),
        ));
        if let (Some(reason), Some(details)) = (override_reason, change.events.last_mut()) {
            details.details["override"] = json!(true);
            details.details["reason"] = json!(reason);
        }
        let settled = settle.as_ref().map(|(new, ..)| new.state);
        let mut progress = None;
        if let Some((new, step_event, email)) = settle {
            change.events.push(step_event);
            change.emails.extend(email);
            progress = Some(self.progress_of(&new, decision.at));
            change.steps.push(StepWrite {
                expect: Some(StepState::AwaitingInput),
                row: new,
            });
        } else {
            // Unchanged, but only while it awaits input: no decision is recorded on a row
            // that was settled (or expired, or cancelled) after it was read.
            change.steps.push(StepWrite {
                expect: Some(StepState::AwaitingInput),
                row: row.clone(),
            });
        }
        change.decisions.push(decision.clone());
        self.store
            .commit(vec![change])
            .await
            .map_err(|e| settled_error(e, &step, &host))?;
        if let Some(p) = progress {
            (self.observer)(&p);
            return Ok(Decided {
                settled,
                decisions_so_far,
                quorum: ask.quorum,
            });
        }
        // Not settled by what this call saw: decisions committed concurrently may complete it.
        let recorded = self.store.decisions(&run.id, &step, &host).await?;
        let settled = self
            .settle_recorded(checked, &run, row, &ask, &recorded, &decision)
            .await?;
        Ok(Decided {
            settled,
            decisions_so_far: recorded.len(),
            quorum: ask.quorum,
        })
    }

    /// Fails the approval and manual rows of a run whose `expires` (from the step's inputs,
    /// measured from the row's `started_at`) is at or before `now`, with the reason "expired
    /// without a decision" and an `approval.expired` (`task.expired`) event. A row without
    /// `expires` never expires here (the configuration's `link_ttl` bounds its links only).
    /// Each row is its own commit; a row settled meanwhile by a decision is left alone.
    ///
    /// The daemon calls this (at [`Expired::next`], and on start); the driver does not wake for
    /// it yet. Call [`Engine::drive`] afterwards for the run to go on (or fail).
    pub async fn expire_inputs(
        &self,
        checked: &CheckedRunbook,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Expired, RunError> {
        let run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| RunError::NoSuchRun(run_id.to_string()))?;
        let rows = self.store.steps(run_id).await?;
        let mut out = Expired::default();
        for row in rows.iter().filter(|r| r.state == StepState::AwaitingInput) {
            let ask = self.person_ask(checked, &run, &rows, &row.step, &row.host)?;
            let (Some(ttl), Some(started)) = (ask.expires, row.started_at) else {
                continue;
            };
            let deadline = started + ttl;
            if deadline > now {
                out.next = Some(out.next.map_or(deadline, |n| n.min(deadline)));
                continue;
            }
            let (state, why) = match ask.on_expire {
                OnExpire::Fail => (StepState::Failed, "expired without a decision"),
                OnExpire::Skip => (
                    StepState::Skipped,
                    "expired without a decision (on_expire: skip)",
                ),
            };
            let mut new = row.clone();
            new.state = state;
            new.finished_at = Some(now);
            new.reason = Some(why.to_string());
            let action = match ask.purpose {
                Purpose::Approval => "approval.expired",
                Purpose::Task => "task.expired",
            };
            let mut change = Change::default();
            change.events.push(event(
                now,
                "engine",
                action,
                &new,
                json!({ "reason": why, "expired_at": deadline, "attempt": new.attempt, "outcome": crate::run::state_word(state) }),
            ));
            if state == StepState::Failed {
                change
                    .emails
                    .extend(self.failure_email(checked, &run, &new, why, now));
            }
            let decided = self.store.decisions(run_id, &row.step, &row.host).await?;
            let decided: Vec<&NewDecision> = decided.iter().map(|d| &d.decision).collect();
            let moot = format!("the step {why}");
            change.emails.extend(self.moot_emails(
                checked,
                &run,
                (row, &ask),
                &decided,
                &moot,
                now,
            ));
            let progress = self.progress_of(&new, now);
            change.steps.push(StepWrite {
                expect: Some(StepState::AwaitingInput),
                row: new,
            });
            match self.store.commit(vec![change]).await {
                Ok(()) => {
                    (self.observer)(&progress);
                    out.expired.push((row.step.clone(), row.host.clone()));
                }
                // Decided in the meantime: not expired.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// After a commit that did not settle the row: if the recorded decisions reach the quorum
    /// (decisions committed concurrently), settle it now. Of several callers one settles; the
    /// others see a conflict and leave it. Returns the state this call settled the row to.
    async fn settle_recorded(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        row: &StepRow,
        ask: &PersonAsk,
        recorded: &[DecisionRow],
        mine: &NewDecision,
    ) -> Result<Option<StepState>, RunError> {
        let all: Vec<&NewDecision> = recorded.iter().map(|d| &d.decision).collect();
        let Some(outcome) = settlement(ask, &all) else {
            return Ok(None);
        };
        let (new, mut step_event, email) = self.settle(checked, run, row, ask, outcome, &all);
        step_event.actor = mine.actor.clone();
        let state = new.state;
        let progress = self.progress_of(&new, mine.at);
        let change = Change {
            steps: vec![StepWrite {
                expect: Some(StepState::AwaitingInput),
                row: new,
            }],
            events: vec![step_event],
            emails: email,
            ..Change::default()
        };
        match self.store.commit(vec![change]).await {
            Ok(()) => {
                (self.observer)(&progress);
                Ok(Some(state))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The settled row, its `step.succeeded` / `step.failed` event, and its emails: the
    /// failure notice, and "no longer needed" to the people who did not decide (all of
    /// `decided`, this decision included, did).
    fn settle(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        row: &StepRow,
        ask: &PersonAsk,
        outcome: Settlement<'_>,
        decided: &[&NewDecision],
    ) -> (StepRow, NewEvent, Vec<NewEmail>) {
        let Settlement { choice, by } = outcome;
        let last = by.last().expect("a settlement has deciders");
        let who: Vec<&str> = by.iter().map(|d| d.recipient.as_str()).collect();
        let mut new = row.clone();
        new.finished_at = Some(last.at);
        new.outputs = json!({ "choice": choice, "decided_by": who });
        let comments: Vec<String> = by
            .iter()
            .filter_map(|d| Some(format!("{}: {}", d.recipient, d.comment.as_deref()?)))
            .collect();
        if let Some(map) = new.outputs.as_object_mut()
            && !comments.is_empty()
        {
            let all: Vec<&str> = by.iter().filter_map(|d| d.comment.as_deref()).collect();
            map.insert("comments".into(), json!(all));
        }
        let ok = choice == ask.choices[0];
        (new.state, new.reason) = match (ask.purpose, ok) {
            (_, true) => (StepState::Succeeded, None),
            (Purpose::Task, false) => (
                StepState::Failed,
                Some(
                    last.comment
                        .clone()
                        .filter(|c| !c.trim().is_empty())
                        .unwrap_or_else(|| format!("marked failed by {}", last.recipient)),
                ),
            ),
            (Purpose::Approval, false) => {
                let mut reason = format!("`{choice}` decided by {}", who.join(", "));
                if !comments.is_empty() {
                    reason.push_str(&format!(" ({})", comments.join("; ")));
                }
                (StepState::Failed, Some(reason))
            }
        };
        let action = if ok { "step.succeeded" } else { "step.failed" };
        let step_event = event(
            last.at,
            &last.actor,
            action,
            &new,
            json!({ "attempt": new.attempt, "reason": new.reason, "outputs": new.outputs }),
        );
        let mut emails: Vec<NewEmail> = match &new.reason {
            Some(reason) if !ok => self.failure_email(checked, run, &new, reason, last.at),
            _ => None,
        }
        .into_iter()
        .collect();
        let why = match ask.purpose {
            Purpose::Approval => format!("the quorum was reached: {choice} by {}", who.join(", ")),
            Purpose::Task => format!("{} marked it {choice}", who.join(", ")),
        };
        emails.extend(self.moot_emails(checked, run, (row, ask), decided, &why, last.at));
        (new, step_event, emails)
    }

    /// The runbook's failure notification for a failed row (the step itself, as the driver).
    fn failure_email(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        row: &StepRow,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Option<NewEmail> {
        if !row.host.is_empty() {
            return None;
        }
        let cycle = super::cycle_shown(run);
        let run_url = self.run_url(&run.id);
        let about = About {
            run_id: &run.id,
            cycle: &cycle,
            run_url: &run_url,
            dashboard_url: &self.dashboard_url(),
        };
        let notice = Notice::StepFailed {
            step: &row.step,
            host: "",
            reason,
        };
        super::notify::email(checked, &notice, &about, at)
    }

    /// The run's page.
    pub fn run_url(&self, run_id: &str) -> String {
        format!("{}/runs/{run_id}", self.base_url())
    }

    /// The daemon's index page (runbooks, next cycles, recent runs).
    pub fn dashboard_url(&self) -> String {
        format!("{}/", self.base_url())
    }

    /// `public_url` without a trailing slash: the base of pages and links.
    pub fn base_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    fn progress_of(&self, row: &StepRow, at: DateTime<Utc>) -> Progress {
        Progress {
            at,
            step: row.step.clone(),
            host: row.host.clone(),
            state: row.state,
            note: row.reason.clone().unwrap_or_else(|| {
                let choice = row.outputs.get("choice").and_then(Value::as_str);
                format!("decided `{}`", choice.unwrap_or_default())
            }),
        }
    }
}

/// The row (run, step, host), which must be awaiting input.
fn awaiting_row<'a>(rows: &'a [StepRow], step: &str, host: &str) -> Result<&'a StepRow, RunError> {
    let row = rows.iter().find(|r| r.step == step && r.host == host);
    match row {
        Some(row) if row.state == StepState::AwaitingInput => Ok(row),
        _ => Err(RunError::NotAwaitingInput {
            step: step.to_string(),
            host: host.to_string(),
            state: row.map(|r| r.state),
        }),
    }
}

/// A step's outcome: the choice that reached the quorum, and who chose it (in order).
struct Settlement<'a> {
    choice: &'a str,
    by: Vec<&'a NewDecision>,
}

/// Whether `decisions` (in recording order) settle the step: the first choice to gather
/// `quorum` decisions (a manual task: the first decision).
fn settlement<'a>(ask: &PersonAsk, decisions: &[&'a NewDecision]) -> Option<Settlement<'a>> {
    let quorum = match ask.purpose {
        Purpose::Approval => ask.quorum.max(1) as usize,
        Purpose::Task => 1,
    };
    for (i, d) in decisions.iter().enumerate() {
        let by: Vec<&NewDecision> = decisions[..=i]
            .iter()
            .copied()
            .filter(|e| e.choice == d.choice)
            .collect();
        if by.len() >= quorum {
            return Some(Settlement {
                choice: &d.choice,
                by,
            });
        }
    }
    None
}

/// A conflict on the row means it stopped awaiting input after it was read: another decision
/// settled it first (or it expired, or the run was cancelled).
fn settled_error(err: StoreError, step: &str, host: &str) -> RunError {
    match err {
        StoreError::Conflict { .. } => RunError::AlreadySettled {
            step: step.to_string(),
            host: host.to_string(),
        },
        other => other.into(),
    }
}
