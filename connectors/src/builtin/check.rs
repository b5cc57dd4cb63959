//! `check`: a smoke test polled every `interval` until it passes or `within` runs out.
//! Idempotent (probes only look).
//!
//! Probes: `http` (GET; `expect.status`, default any 2xx, and `expect.body_contains`), `tcp`
//! (`host:port` accepts a connection), `command` (local, or on `host` over SSH; exit code
//! `expect.exit_code`, default 0, and `expect.body_contains` on stdout), and
//! `reboot_required` (passes when the Linux host does not need a reboot:
//! `/var/run/reboot-required` absent and `needs-restarting -r`, where installed, exiting 0).
//!
//! Each attempt is cut off at the end of `within` (but gets at least 2 s).
//! Outputs `attempts` and `last_result` (and `reboot_required` for that probe). Not passing
//! within the time is a retryable failure; an unknown SSH host key or refused credentials end
//! the polling at once as fatal.

use std::time::Duration;

use tokio::time::Instant;

use crate::builtin::command::{CommandJob, last_lines};
use crate::builtin::http::{check_status, client, fetch};
use crate::catalog::ConnectorSpec;
use crate::inputs::{CheckExpect, CheckInputs};
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of,
};
use crate::ssh::RemoteTarget;
use crate::values::CommandLine;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_WITHIN: Duration = Duration::from_secs(300);
/// Every attempt gets at least this long, even when `within` is nearly over.
const MIN_ATTEMPT: Duration = Duration::from_secs(2);
/// One attempt of an HTTP or TCP probe never takes longer than this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Exits 0 when no reboot is needed, 1 when one is, 2 when `needs-restarting` cannot tell.
const REBOOT_PROBE: &str = r#"if [ -e /var/run/reboot-required ]; then echo "reboot required: /var/run/reboot-required exists"; exit 1; fi
if command -v needs-restarting >/dev/null 2>&1; then
  needs-restarting -r >/dev/null 2>&1; rc=$?
  if [ "$rc" -eq 1 ]; then echo "reboot required: needs-restarting -r exited 1"; exit 1; fi
  if [ "$rc" -ne 0 ]; then echo "cannot tell: needs-restarting -r exited $rc"; exit 2; fi
  echo "no reboot required (needs-restarting -r exited 0)"; exit 0
fi
echo "no reboot required"; exit 0"#;

/// The `check` connector.
pub struct Check;

/// What one attempt found.
struct Attempt {
    passed: bool,
    detail: String,
    extra: Outputs,
}

impl Attempt {
    fn new(passed: bool, detail: impl Into<String>) -> Self {
        Attempt {
            passed,
            detail: detail.into(),
            extra: Outputs::new(),
        }
    }
}

enum Probe {
    Http(String),
    Tcp(String),
    Command(CommandJob),
    RebootRequired(CommandJob),
}

impl Probe {
    fn from_inputs(inputs: &CheckInputs) -> Result<Probe, ConnectorError> {
        let job = |run: CommandLine| CommandJob {
            run,
            remote: inputs.host.clone().map(|host| RemoteTarget {
                host,
                user: inputs.user.clone(),
                port: inputs.port,
            }),
            env: inputs.env.clone().into_iter().collect(),
            cwd: None,
        };
        if let Some(url) = &inputs.http {
            Ok(Probe::Http(url.clone()))
        } else if let Some(addr) = &inputs.tcp {
            Ok(Probe::Tcp(addr.clone()))
        } else if let Some(run) = &inputs.command {
            Ok(Probe::Command(job(run.clone())))
        } else if inputs.reboot_required.is_some() {
            Ok(Probe::RebootRequired(job(CommandLine::Shell(
                REBOOT_PROBE.into(),
            ))))
        } else {
            Err(ConnectorError::Fatal(
                "give one probe: `http`, `tcp`, `command` or `reboot_required`".into(),
            ))
        }
    }

    fn describe(&self, ctx: &Context) -> String {
        match self {
            Probe::Http(url) => format!("GET {url}"),
            Probe::Tcp(addr) => format!("connect to {addr}"),
            Probe::Command(job) => format!("run {}", job.describe(ctx)),
            Probe::RebootRequired(job) => match &job.remote {
                Some(t) => format!(
                    "check that {} needs no reboot",
                    t.describe(&ctx.settings.ssh)
                ),
                None => "check that this machine needs no reboot".into(),
            },
        }
    }
}

struct Plan<'a> {
    probe: Probe,
    expect: CheckExpect,
    ca_file: Option<std::path::PathBuf>,
    ctx: &'a Context,
}

impl Plan<'_> {
    /// One attempt, bounded by `limit`.
    async fn attempt(&self, limit: Duration) -> Result<Attempt, ConnectorError> {
        match tokio::time::timeout(limit, self.attempt_unbounded(limit)).await {
            Ok(result) => result,
            Err(_) => Ok(Attempt::new(false, "the attempt timed out")),
        }
    }

    async fn attempt_unbounded(&self, limit: Duration) -> Result<Attempt, ConnectorError> {
        match &self.probe {
            Probe::Http(url) => self.http(url, limit).await,
            Probe::Tcp(addr) => Ok(tcp(addr).await),
            Probe::Command(job) => self.command(job).await,
            Probe::RebootRequired(job) => self.reboot(job).await,
        }
    }

    async fn http(&self, url: &str, limit: Duration) -> Result<Attempt, ConnectorError> {
        let client = client(self.ca_file.as_deref(), limit.min(PROBE_TIMEOUT))?;
        let fetched = match fetch(client.get(url), 64 * 1024).await {
            Ok(f) => f,
            Err(ConnectorError::Fatal(m)) => return Err(ConnectorError::Fatal(m)),
            Err(e) => return Ok(Attempt::new(false, e.to_string())),
        };
        let status = self.expect.status.as_ref().map(|s| s.as_slice());
        if let Err(why) = check_status(status, fetched.status) {
            return Ok(Attempt::new(false, why));
        }
        if let Some(needle) = &self.expect.body_contains
            && !fetched.text().contains(needle.as_str())
        {
            return Ok(Attempt::new(
                false,
                format!(
                    "status {}, body does not contain `{needle}`",
                    fetched.status
                ),
            ));
        }
        Ok(Attempt::new(true, format!("status {}", fetched.status)))
    }

    async fn command(&self, job: &CommandJob) -> Result<Attempt, ConnectorError> {
        let output = match job.run(self.ctx).await {
            Ok(o) => o,
            Err(ConnectorError::Retryable(m)) => return Ok(Attempt::new(false, m)),
            Err(e) => return Err(e),
        };
        let want = self.expect.exit_code.unwrap_or(0);
        let mut detail = output.describe_end();
        let last = last_lines(&output.stdout.text, 1);
        if !last.is_empty() {
            detail = format!("{detail}: {last}");
        }
        let mut passed = output.exit_code == Some(want);
        if let Some(needle) = &self.expect.body_contains
            && !output.stdout.text.contains(needle.as_str())
        {
            passed = false;
            detail = format!("{detail} (output does not contain `{needle}`)");
        }
        Ok(Attempt::new(passed, detail))
    }

    async fn reboot(&self, job: &CommandJob) -> Result<Attempt, ConnectorError> {
        let output = match job.run(self.ctx).await {
            Ok(o) => o,
            Err(ConnectorError::Retryable(m)) => return Ok(Attempt::new(false, m)),
            Err(e) => return Err(e),
        };
        let detail = last_lines(&output.stdout.text, 1);
        let mut attempt = match output.exit_code {
            Some(0) => Attempt::new(true, detail),
            Some(1) => Attempt::new(false, detail),
            _ => Attempt::new(false, format!("{}: {detail}", output.describe_end())),
        };
        if let Some(code @ (0 | 1)) = output.exit_code {
            attempt
                .extra
                .insert("reboot_required".into(), (code == 1).into());
        }
        Ok(attempt)
    }
}

async fn tcp(addr: &str) -> Attempt {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Attempt::new(true, format!("connected to {addr}")),
        Ok(Err(e)) => Attempt::new(false, format!("cannot connect to {addr}: {e}")),
        Err(_) => Attempt::new(false, format!("connecting to {addr} timed out")),
    }
}

async fn poll(
    plan: &Plan<'_>,
    interval: Duration,
    within: Duration,
) -> Result<Outputs, ConnectorError> {
    let ctx = plan.ctx;
    let deadline = Instant::now() + within;
    let mut attempts: u64 = 0;
    loop {
        attempts += 1;
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_ATTEMPT);
        let attempt = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Err(ConnectorError::Cancelled),
            a = plan.attempt(limit) => a?,
        };
        ctx.log_line(&format!("attempt {attempts}: {}", attempt.detail));
        if attempt.passed {
            return Ok(outputs(attempts, attempt));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ConnectorError::Retryable(format!(
                "{} did not pass within {:?} ({attempts} attempts); last result: {}",
                plan.probe.describe(ctx),
                within,
                attempt.detail
            )));
        }
        let pause = interval.min(deadline - now);
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(ConnectorError::Cancelled),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn outputs(attempts: u64, attempt: Attempt) -> Outputs {
    let mut out = attempt.extra;
    out.insert("attempts".into(), attempts.into());
    out.insert("last_result".into(), attempt.detail.into());
    out
}

impl Connector for Check {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("check")
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let inputs: CheckInputs = parse_inputs("check", inputs)?;
        let probe = Probe::from_inputs(&inputs)?;
        let within = inputs.within.as_ref().map(|d| d.0.as_str()).unwrap_or("5m");
        let interval = inputs
            .interval
            .as_ref()
            .map(|d| d.0.as_str())
            .unwrap_or("10s");
        Ok(ctx.secrets.redact(&format!(
            "would {} every {interval} until it passes (within {within})",
            probe.describe(ctx)
        )))
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let inputs: CheckInputs = parse_inputs("check", &inputs)?;
            let interval = inputs
                .interval
                .as_ref()
                .map_or(DEFAULT_INTERVAL, |d| d.duration())
                .max(MIN_INTERVAL);
            let within = inputs
                .within
                .as_ref()
                .map_or(DEFAULT_WITHIN, |d| d.duration());
            let plan = Plan {
                probe: Probe::from_inputs(&inputs)?,
                expect: inputs.expect.clone().unwrap_or_default(),
                ca_file: inputs.ca_file.as_deref().map(|p| ctx.resolve_path(p)),
                ctx,
            };
            poll(&plan, interval, within)
                .await
                .map(|out| ctx.redact_outputs(out))
                .map_err(|e| e.redacted(&ctx.secrets))
        })
    }
}
