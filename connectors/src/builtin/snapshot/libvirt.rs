//! The libvirt provider: `virsh` snapshot commands against a connection URI.

use crate::builtin::command::last_lines;
use crate::inputs::{SnapshotAction, SnapshotInputs};
use crate::process::{self, ProcessOutput, ProcessSpec};
use crate::runtime::{ConnectorError, Context, Outputs};

/// Runs the action; the outputs say whether it found the work already done.
pub async fn run(inputs: &SnapshotInputs, ctx: &Context) -> Result<Outputs, ConnectorError> {
    let mut out = Outputs::new();
    match inputs.action {
        SnapshotAction::Create => {
            let exists = snapshot_exists(inputs, ctx).await?;
            if !exists {
                let mut args = vec![
                    "snapshot-create-as",
                    "--domain",
                    &inputs.vm,
                    "--name",
                    &inputs.name,
                ];
                if let Some(d) = &inputs.description {
                    args.extend(["--description", d]);
                }
                virsh_ok(inputs, ctx, &args).await?;
            }
            out.insert("already_existed".into(), exists.into());
        }
        SnapshotAction::Revert => {
            let args = [
                "snapshot-revert",
                "--domain",
                &inputs.vm,
                "--snapshotname",
                &inputs.name,
            ];
            virsh_ok(inputs, ctx, &args).await?;
        }
        SnapshotAction::Delete => {
            let exists = snapshot_exists(inputs, ctx).await?;
            if exists {
                let args = [
                    "snapshot-delete",
                    "--domain",
                    &inputs.vm,
                    "--snapshotname",
                    &inputs.name,
                ];
                virsh_ok(inputs, ctx, &args).await?;
            }
            out.insert("already_absent".into(), (!exists).into());
        }
    }
    Ok(out)
}

/// Whether the domain has the snapshot; an unknown domain or connection failure is an error.
async fn snapshot_exists(inputs: &SnapshotInputs, ctx: &Context) -> Result<bool, ConnectorError> {
    let args = [
        "snapshot-info",
        "--domain",
        &inputs.vm,
        "--snapshotname",
        &inputs.name,
    ];
    let output = virsh(inputs, ctx, &args).await?;
    if output.success() {
        return Ok(true);
    }
    if output.stderr.text.contains("Domain snapshot not found") {
        return Ok(false);
    }
    Err(virsh_error(&output))
}

async fn virsh_ok(
    inputs: &SnapshotInputs,
    ctx: &Context,
    args: &[&str],
) -> Result<(), ConnectorError> {
    let output = virsh(inputs, ctx, args).await?;
    if output.success() {
        Ok(())
    } else {
        Err(virsh_error(&output))
    }
}

async fn virsh(
    inputs: &SnapshotInputs,
    ctx: &Context,
    args: &[&str],
) -> Result<ProcessOutput, ConnectorError> {
    let settings = &ctx.settings.libvirt;
    let mut argv: Vec<String> = Vec::new();
    if let Some(uri) = inputs.uri.as_ref().or(settings.uri.as_ref()) {
        argv.extend(["-c".to_string(), uri.clone()]);
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    let spec = ProcessSpec {
        program: settings
            .virsh
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "virsh".into()),
        args: argv,
        env: vec![("LC_ALL".into(), "C".into())],
        cwd: None,
        stdin: None,
    };
    process::run(spec, ctx).await
}

/// A lost connection to the hypervisor may come back; anything else virsh refuses will not.
fn virsh_error(output: &ProcessOutput) -> ConnectorError {
    let stderr = &output.stderr.text;
    let message = format!("virsh: {}", last_lines(stderr, 3));
    if stderr.contains("failed to connect to the hypervisor") && !stderr.contains("XML error") {
        ConnectorError::Retryable(message)
    } else {
        ConnectorError::Fatal(message)
    }
}
