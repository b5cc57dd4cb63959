//! `command`: a local process (argv list or `sh -c` string), or a remote one on `host` through
//! the OpenSSH client. Not idempotent.
//!
//! Outputs `exit_code`, `stdout`, `stderr` (the last 64 KiB of each, redacted) and
//! `stdout_truncated` / `stderr_truncated`. A non-zero exit is a retryable failure (the step's
//! `retry:` decides); a command that cannot start, an unknown host key or refused credentials
//! are fatal; an unreachable host is retryable.

use crate::catalog::ConnectorSpec;
use crate::inputs::CommandInputs;
use crate::process::{self, ProcessOutput, ProcessSpec};
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of,
};
use crate::ssh::{self, RemoteTarget};
use crate::values::CommandLine;

/// The `command` connector.
pub struct Command;

/// One command to run, locally or on a remote host.
#[derive(Debug, Clone)]
pub struct CommandJob {
    pub run: CommandLine,
    pub remote: Option<RemoteTarget>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
}

impl CommandJob {
    fn from_inputs(inputs: CommandInputs) -> Self {
        CommandJob {
            remote: inputs.host.map(|host| RemoteTarget {
                host,
                user: inputs.user,
                port: inputs.port,
            }),
            run: inputs.run,
            env: inputs.env.into_iter().collect(),
            cwd: inputs.cwd,
        }
    }

    /// "`apt-get -y upgrade` on root@10.0.0.11" for dry runs and messages.
    pub fn describe(&self, ctx: &Context) -> String {
        let text = match &self.run {
            CommandLine::Shell(s) => s.clone(),
            CommandLine::Argv(argv) => ssh::join_argv(argv),
        };
        let place = match &self.remote {
            Some(t) => format!("on {} over ssh", t.describe(&ctx.settings.ssh)),
            None => "locally".into(),
        };
        ctx.secrets.redact(&format!("`{text}` {place}"))
    }

    /// Refuses a secret value in the command line, host or user: argv shows in process
    /// lists on both ends. Secrets go through `env`.
    fn check_no_secret_in_argv(&self, ctx: &Context) -> Result<(), ConnectorError> {
        let mut visible: Vec<&str> = match &self.run {
            CommandLine::Shell(s) => vec![s.as_str()],
            CommandLine::Argv(argv) => argv.iter().map(String::as_str).collect(),
        };
        if let Some(t) = &self.remote {
            visible.push(&t.host);
            visible.extend(t.user.as_deref());
        }
        if let Some(cwd) = &self.cwd {
            visible.push(cwd);
        }
        if visible.iter().any(|v| ctx.secrets.redact(v) != *v) {
            return Err(ConnectorError::Fatal(
                "a secret appears in the command line; pass it through `env` instead".into(),
            ));
        }
        Ok(())
    }

    /// Runs it to the end (any exit code) or until cancelled.
    pub async fn run(&self, ctx: &Context) -> Result<ProcessOutput, ConnectorError> {
        self.check_no_secret_in_argv(ctx)?;
        let spec = match &self.remote {
            Some(target) => self.remote_spec(target, ctx)?,
            None => self.local_spec(ctx)?,
        };
        let output = process::run(spec, ctx).await?;
        if self.remote.is_some() && output.exit_code == Some(255) {
            return Err(ssh_failure(&output));
        }
        Ok(output)
    }

    fn local_spec(&self, ctx: &Context) -> Result<ProcessSpec, ConnectorError> {
        let (program, args) = match &self.run {
            CommandLine::Shell(s) => ("sh".to_string(), vec!["-c".to_string(), s.clone()]),
            CommandLine::Argv(argv) => match argv.split_first() {
                Some((p, rest)) => (p.clone(), rest.to_vec()),
                None => return Err(ConnectorError::Fatal("`run` is an empty list".into())),
            },
        };
        Ok(ProcessSpec {
            program,
            args,
            env: self.env.clone(),
            cwd: self.cwd.as_deref().map(|c| ctx.resolve_path(c)),
            stdin: None,
        })
    }

    fn remote_spec(
        &self,
        target: &RemoteTarget,
        ctx: &Context,
    ) -> Result<ProcessSpec, ConnectorError> {
        let mut command = match &self.run {
            CommandLine::Shell(s) => s.clone(),
            CommandLine::Argv(argv) if argv.is_empty() => {
                return Err(ConnectorError::Fatal("`run` is an empty list".into()));
            }
            CommandLine::Argv(argv) => ssh::join_argv(argv),
        };
        if let Some(cwd) = &self.cwd {
            command = format!("cd {} && {command}", ssh::shell_quote(cwd));
        }
        ssh::remote_spec(&ctx.settings.ssh, target, &command, &self.env)
            .map_err(|e| ConnectorError::Fatal(e.to_string()))
    }
}

fn ssh_failure(output: &ProcessOutput) -> ConnectorError {
    let message = format!("ssh failed: {}", last_lines(&output.stderr.text, 3));
    if ssh::failure_is_retryable(&output.stderr.text) {
        ConnectorError::Retryable(message)
    } else {
        ConnectorError::Fatal(message)
    }
}

/// The last `n` non-empty lines of `text`, joined with " | ".
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The outputs of a finished process.
pub fn process_outputs(output: &ProcessOutput) -> Outputs {
    let mut out = Outputs::new();
    out.insert("exit_code".into(), output.exit_code.into());
    out.insert("stdout".into(), output.stdout.text.clone().into());
    out.insert("stderr".into(), output.stderr.text.clone().into());
    out.insert("stdout_truncated".into(), output.stdout.truncated.into());
    out.insert("stderr_truncated".into(), output.stderr.truncated.into());
    out
}

impl Connector for Command {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("command")
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let job = CommandJob::from_inputs(parse_inputs("command", inputs)?);
        Ok(format!("would run {}", job.describe(ctx)))
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let job = CommandJob::from_inputs(parse_inputs("command", &inputs)?);
            let output = job.run(ctx).await.map_err(|e| e.redacted(&ctx.secrets))?;
            if !output.success() {
                return Err(ConnectorError::Retryable(ctx.secrets.redact(&format!(
                    "{} ended with {}: {}",
                    job.describe(ctx),
                    output.describe_end(),
                    last_lines(&output.stderr.text, 3)
                ))));
            }
            Ok(ctx.redact_outputs(process_outputs(&output)))
        })
    }
}
