//! Batch connectors (`ansible`): one execution settles every host row of a fan-out's batch.
//!
//! Decisions stay per host: `decide` starts each child row of a wave, counts each failed row
//! against `max_failures`, and puts each retryable failure back to `waiting` on its own. Only
//! the dispatch differs. [`Driver::launch_all`] receives the attempts one `apply` started and
//! groups the host rows of each step whose connector has a
//! [`BatchConnector`](patchday_connectors::BatchConnector) side: they become one
//! `execute_batch` call (one `ansible-playbook --limit <those hosts>`), whose per-host results
//! come back as one `AttemptDone` per row, exactly as if each host had run alone. Everything
//! else launches one attempt per row as before. The hosts of a wave start in one `apply`, and
//! retries due at the same instant too (results that arrive together finish together), so a
//! wave is one execution and a retry runs only the hosts that failed.
//!
//! The parallel limit of a run ([`Engine::max_parallel`]) counts executions: a batch in flight
//! is one, however many host rows it settles.

use std::collections::BTreeSet;
use std::pin::pin;

use indexmap::IndexMap;
use patchday_connectors::{BatchMember, Connector, ConnectorError, Context, Outputs};
use serde_json::Value;
use tracing::Instrument as _;

use super::driver::host_value;
use super::*;

/// An attempt `apply` started: step, host, rendered inputs (or why they could not be rendered).
pub(super) type Launch = (String, String, Result<Value, String>);

impl<S: Store> Driver<'_, S> {
    /// Dispatches the attempts one `apply` started: the host rows of a batch connector's step
    /// together, one execution per step; every other row on its own.
    pub(super) fn launch_all(&mut self, launches: Vec<Launch>) {
        let mut batches: IndexMap<String, Vec<(String, Value)>> = IndexMap::new();
        for (step, host, inputs) in launches {
            match inputs {
                Ok(inputs) if !host.is_empty() && self.runs_batches(&step) => {
                    batches.entry(step).or_default().push((host, inputs))
                }
                inputs => self.launch(step, host, inputs),
            }
        }
        for (step, members) in batches {
            self.launch_batch(step, members);
        }
    }

    /// Whether the row's connector settles batches.
    pub(super) fn runs_batches(&self, step: &str) -> bool {
        connector_of(self.checked, step).is_some_and(|c| c.batch().is_some())
    }

    /// One execution for `members` (host, inputs) of `step`; one result per host comes back.
    fn launch_batch(&mut self, step: String, members: Vec<(String, Value)>) {
        let Some(connector) = connector_of(self.checked, &step) else {
            return;
        };
        self.in_flight += members.len();
        let inventory = self.checked.inventory.as_ref();
        let members: Vec<BatchMember> = members
            .into_iter()
            .map(|(name, inputs)| BatchMember {
                host: host_value(inventory, &name)
                    .and_then(|v| v.as_object().cloned())
                    .unwrap_or_default(),
                name,
                inputs,
            })
            .collect();
        let ctx = self.connector_context(&step, "");
        let tx = self.done_tx.clone();
        if self.engine.mode == Mode::DryRun {
            for done in dry_run_batch(&step, connector.as_ref(), &members, &ctx) {
                let _ = tx.send(done);
            }
            return;
        }
        let timeout = self.timeout_of(&step);
        let slots = self.engine.slots.clone();
        let hosts: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let span = tracing::info_span!("attempt", step_id = %step, host = %hosts.join(","));
        let task = async move {
            let _slot = slots.acquire_owned().await;
            let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            let results = execute_batch(connector.as_ref(), members, &ctx, timeout).await;
            for (host, result) in names.into_iter().zip(results) {
                let _ = tx.send(AttemptDone {
                    step: step.clone(),
                    host,
                    result,
                    note: String::new(),
                });
            }
        };
        tokio::spawn(task.instrument(span));
    }

    /// Executions in flight: rows `running`, where the running hosts of a batch connector's
    /// step count once. (A fan-out's own row counts too, as it always has.)
    pub(super) fn executions_running(&self) -> usize {
        let mut running = self.rows.running();
        for step in &self.batch_fan_outs {
            let hosts = self.rows.fan_out(step).map_or(0, |f| f.running);
            running -= hosts.saturating_sub(1);
        }
        running
    }

    /// `actions` with no more starts than the run's parallel limit leaves room for, counting
    /// executions: the rows of a batch step, running or starting, are one execution.
    pub(super) fn within_parallel_limit(&self, mut actions: Vec<Action>) -> Vec<Action> {
        let mut batch_steps: BTreeSet<String> = self
            .batch_fan_outs
            .iter()
            .filter(|step| self.rows.fan_out(step).is_some_and(|f| f.running > 0))
            .cloned()
            .collect();
        let running = self.executions_running();
        let mut room = self.engine.max_parallel.saturating_sub(running);
        actions.retain(|action| {
            let Action::Start { step, host } = action else {
                return true;
            };
            let batched = !host.is_empty() && self.runs_batches(step);
            if batched && batch_steps.contains(step) {
                return true;
            }
            if room == 0 {
                return false;
            }
            room -= 1;
            if batched {
                batch_steps.insert(step.clone());
            }
            true
        });
        actions
    }
}

/// The fanned-out steps whose connector settles batches.
pub(super) fn batch_fan_outs(checked: &CheckedRunbook) -> Vec<String> {
    checked
        .runbook
        .steps
        .iter()
        .filter(|(_, step)| step.for_each.is_some())
        .filter(|(id, _)| connector_of(checked, &id.value).is_some_and(|c| c.batch().is_some()))
        .map(|(id, _)| id.value.clone())
        .collect()
}

/// What a dry run (`simulate`) of the batch would do, once for the batch, noted on every row.
fn dry_run_batch(
    step: &str,
    connector: &dyn Connector,
    members: &[BatchMember],
    ctx: &Context,
) -> Vec<AttemptDone> {
    let said = match connector.batch() {
        Some(batch) => batch.dry_run_batch(members, ctx),
        None => Err(ConnectorError::Fatal("not a batch connector".into())),
    };
    members
        .iter()
        .map(|m| AttemptDone {
            step: step.to_string(),
            host: m.name.clone(),
            result: said.clone().map(|_| Outputs::new()),
            note: match &said {
                Ok(description) => description.clone(),
                Err(e) => e.to_string(),
            },
        })
        .collect()
}

/// The batch's one execution with the step's timeout: on timeout the connector is cancelled
/// (it kills its process group) and awaited, and every host fails as retryable.
async fn execute_batch(
    connector: &dyn Connector,
    members: Vec<BatchMember>,
    ctx: &Context,
    timeout: Option<std::time::Duration>,
) -> Vec<Result<Outputs, ConnectorError>> {
    let count = members.len();
    let Some(batch) = connector.batch() else {
        let error = ConnectorError::Fatal("not a batch connector".into());
        return vec![Err(error); count];
    };
    let mut run = pin!(batch.execute_batch(members, ctx));
    let mut results = match timeout {
        None => run.await,
        Some(limit) => tokio::select! {
            results = &mut run => results,
            _ = tokio::time::sleep(limit) => {
                ctx.cancel.cancel();
                let _ = run.await;
                let error = ConnectorError::Retryable(format!("timed out after {}s", limit.as_secs()));
                vec![Err(error); count]
            }
        },
    };
    // A connector owes one result per host; a missing one fails that host rather than hang it.
    results.resize_with(count, || {
        Err(ConnectorError::Fatal(
            "the connector gave no result for this host".into(),
        ))
    });
    results
        .into_iter()
        .map(|r| r.map_err(|e| e.redacted(&ctx.secrets)))
        .collect()
}
