//! `ansible`: runs `ansible-playbook`. Not idempotent (a step may say `idempotent: true`).
//!
//! Inside `for_each` the engine hands a whole batch to [`BatchConnector::execute_batch`]: one
//! invocation with `--limit` naming the batch's hosts, and each host's own outcome (ok,
//! changed, failed, unreachable) settles that host's row, so `max_failures`, retries of only
//! the failed hosts, the report and the evidence stay per host. The outcomes come from
//! patchday's callback plugin (`ansible/patchday_results.py`, put on
//! `ANSIBLE_CALLBACK_PLUGINS`), never from the text Ansible prints, which streams to the log.
//!
//! Without `for_each` the step is one row: the playbook runs over its own plays' hosts (or
//! `limit`) and the row succeeds when no host failed or was unreachable.
//!
//! `extra_vars` reach Ansible in a file only patchday can read (`-e @file`); the command line
//! carries no secret (a secret in the playbook path, limit, tags or host names is refused).
//! Cancellation and `timeout` kill the process group, then close the SSH connections the run
//! opened; nothing it started outlives the step.

mod invocation;
mod results;

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::catalog::ConnectorSpec;
use crate::inputs::AnsibleInputs;
use crate::process::{self, ProcessOutput};
use crate::runtime::{
    BatchConnector, BatchMember, BoxFuture, Connector, ConnectorError, Context, Outputs,
    parse_inputs, spec_of,
};
use invocation::Workspace;
pub use results::{HostOutcome, HostStats, MESSAGE_LIMIT, RunReport};

/// The `ansible` connector.
pub struct Ansible;

impl Connector for Ansible {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("ansible")
    }

    fn dry_run(&self, inputs: &Value, ctx: &Context) -> Result<String, ConnectorError> {
        let parsed: AnsibleInputs = parse_inputs("ansible", inputs)?;
        describe(&parsed, &lone_member(inputs, ctx), ctx)
    }

    fn execute<'a>(
        &'a self,
        inputs: Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let mut members = lone_member(&inputs, ctx);
            if members.is_empty() {
                return run_unbatched(inputs, ctx).await;
            }
            members.truncate(1);
            let mut results = run_batch(members, ctx).await;
            results
                .pop()
                .unwrap_or_else(|| Err(ConnectorError::Fatal("ansible: no result".into())))
        })
    }

    fn batch(&self) -> Option<&dyn BatchConnector> {
        Some(self)
    }
}

impl BatchConnector for Ansible {
    fn dry_run_batch(
        &self,
        members: &[BatchMember],
        ctx: &Context,
    ) -> Result<String, ConnectorError> {
        let first = members
            .first()
            .ok_or_else(|| ConnectorError::Fatal("ansible: an empty batch".into()))?;
        let inputs: AnsibleInputs = parse_inputs("ansible", &first.inputs)?;
        describe(&inputs, members, ctx)
    }

    fn execute_batch<'a>(
        &'a self,
        members: Vec<BatchMember>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Vec<Result<Outputs, ConnectorError>>> {
        Box::pin(async move {
            if members.is_empty() {
                return vec![Err(ConnectorError::Fatal(
                    "ansible: a batch without hosts; run a step without `for_each` through `execute`"
                        .into(),
                ))];
            }
            run_batch(members, ctx).await
        })
    }
}

/// The host of a context inside `for_each`, as a batch of one; empty outside it.
fn lone_member(inputs: &Value, ctx: &Context) -> Vec<BatchMember> {
    let Some(host) = &ctx.host else {
        return Vec::new();
    };
    let name = ctx.host_name().unwrap_or_default().to_string();
    vec![BatchMember {
        name,
        host: host.clone(),
        inputs: inputs.clone(),
    }]
}

/// "would run ansible-playbook site.yml --limit web1,web2 (check mode)".
fn describe(
    inputs: &AnsibleInputs,
    members: &[BatchMember],
    ctx: &Context,
) -> Result<String, ConnectorError> {
    let mut text = format!("would run ansible-playbook {}", inputs.playbook);
    let hosts: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    match (hosts.is_empty(), &inputs.limit) {
        (false, _) => text.push_str(&format!(" --limit {}", hosts.join(","))),
        (true, Some(limit)) => text.push_str(&format!(" --limit {limit}")),
        (true, None) => {}
    }
    if let Some(tags) = &inputs.tags {
        text.push_str(&format!(" --tags {}", tags.as_slice().join(",")));
    }
    if inputs.check {
        text.push_str(" (check mode)");
    }
    Ok(ctx.secrets.redact(&text))
}

/// One invocation for `members`; one result per member, in order.
async fn run_batch(
    members: Vec<BatchMember>,
    ctx: &Context,
) -> Vec<Result<Outputs, ConnectorError>> {
    let first = &members[0];
    let inputs: AnsibleInputs = match parse_inputs("ansible", &first.inputs) {
        Ok(inputs) => inputs,
        Err(e) => return members.iter().map(|_| Err(e.clone())).collect(),
    };
    // One invocation serves the batch, so its hosts must share one rendering of `with:`.
    let (same, different): (Vec<BatchMember>, Vec<BatchMember>) = members
        .iter()
        .cloned()
        .partition(|m| m.inputs == first.inputs);
    let mut outcome = match invoke(&inputs, &same, ctx).await {
        Ok(report) => same
            .iter()
            .map(|m| report.row_result(&m.name, inputs.check, ctx))
            .collect::<Vec<_>>(),
        Err(e) => same.iter().map(|_| Err(e.clone())).collect(),
    }
    .into_iter();
    members
        .iter()
        .map(|m| {
            if different.iter().any(|d| d.name == m.name) {
                Err(ConnectorError::Fatal(format!(
                    "ansible: `with:` renders differently for `{}` than for `{}`; one playbook \
                     run serves the batch, so per-host values belong in the inventory's host vars",
                    m.name, first.name
                )))
            } else {
                outcome
                    .next()
                    .unwrap_or_else(|| Err(ConnectorError::Fatal("ansible: no result".into())))
            }
        })
        .collect()
}

/// A step without `for_each`: one invocation over the playbook's own hosts (or `limit`).
async fn run_unbatched(inputs: Value, ctx: &Context) -> Result<Outputs, ConnectorError> {
    let inputs: AnsibleInputs = parse_inputs("ansible", &inputs)?;
    let report = invoke(&inputs, &[], ctx).await?;
    let mut hosts = serde_json::Map::new();
    let mut bad = Vec::new();
    for host in report.hosts() {
        let status = match report.outcome(host) {
            HostOutcome::Ok(_) => "ok",
            HostOutcome::Changed(_) => "changed",
            HostOutcome::Failed { .. } => "failed",
            HostOutcome::Unreachable { .. } => "unreachable",
            HostOutcome::NotRun => continue,
        };
        if let Err(e) = report.row_result(host, inputs.check, ctx) {
            bad.push(format!("{host}: {e}"));
        }
        hosts.insert(host.to_string(), status.into());
    }
    if !bad.is_empty() {
        let text = format!("{} host(s) failed: {}", bad.len(), bad.join("; "));
        return Err(ConnectorError::Retryable(results::bounded(ctx, &text)));
    }
    let outputs = json!({ "hosts": hosts, "check": inputs.check });
    Ok(ctx.redact_outputs(outputs.as_object().cloned().unwrap_or_default()))
}

/// Runs `ansible-playbook` once and reads what the plugin reported. An error here is the
/// whole invocation's (it could not start, was cancelled, timed out, or ended before the recap).
async fn invoke(
    inputs: &AnsibleInputs,
    members: &[BatchMember],
    ctx: &Context,
) -> Result<RunReport, ConnectorError> {
    check_no_secret_in_argv(inputs, members, ctx)?;
    let workspace = Workspace::prepare(inputs, members, ctx)?;
    let spec = workspace.spec(inputs, !members.is_empty(), ctx);
    let limit = inputs.timeout.as_ref().map(|t| t.duration());
    let ended = run_within(spec, limit, ctx).await;
    workspace.close_connections(ctx).await;
    let output = ended?;
    let report = RunReport::parse(&workspace.results());
    if !report.has_recap() {
        return Err(ended_early(&output, ctx));
    }
    Ok(report)
}

/// The process, stopped (its group killed) when `ctx.cancel` fires or `limit` passes.
async fn run_within(
    spec: process::ProcessSpec,
    limit: Option<Duration>,
    ctx: &Context,
) -> Result<ProcessOutput, ConnectorError> {
    let Some(limit) = limit else {
        return process::run(spec, ctx).await;
    };
    let mut bounded = ctx.clone();
    let stop: CancellationToken = ctx.cancel.child_token();
    bounded.cancel = stop.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        stop.cancel();
    });
    let result = process::run(spec, &bounded).await;
    timer.abort();
    match result {
        Err(ConnectorError::Cancelled) if !ctx.cancel.is_cancelled() => {
            Err(ConnectorError::Retryable(format!(
                "ansible-playbook timed out after {}s",
                limit.as_secs()
            )))
        }
        other => other,
    }
}

/// A run that ended before the recap: the end of what it printed says why.
fn ended_early(output: &ProcessOutput, ctx: &Context) -> ConnectorError {
    let tail = |text: &str| {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    };
    let why = match tail(&output.stderr.text) {
        t if t.is_empty() => tail(&output.stdout.text),
        t => t,
    };
    ConnectorError::Fatal(results::bounded(
        ctx,
        &format!(
            "ansible-playbook ended with {} before any play recap: {why}",
            output.describe_end()
        ),
    ))
}

/// Refuses a secret value where it would show in process lists: the playbook, inventory,
/// limit, tags, users and host names. Secrets go in `extra_vars`.
fn check_no_secret_in_argv(
    inputs: &AnsibleInputs,
    members: &[BatchMember],
    ctx: &Context,
) -> Result<(), ConnectorError> {
    let mut visible: Vec<&str> = vec![inputs.playbook.as_str()];
    visible.extend(inputs.inventory.as_deref());
    visible.extend(inputs.limit.as_deref());
    visible.extend(inputs.become_user.as_deref());
    visible.extend(inputs.config.as_deref());
    for tags in [&inputs.tags, &inputs.skip_tags].into_iter().flatten() {
        visible.extend(tags.as_slice().iter().map(String::as_str));
    }
    visible.extend(members.iter().map(|m| m.name.as_str()));
    if visible.iter().any(|v| ctx.secrets.redact(v) != *v) {
        return Err(ConnectorError::Fatal(
            "ansible: a secret appears where the command line would show it; pass it in `extra_vars`"
                .into(),
        ));
    }
    Ok(())
}
