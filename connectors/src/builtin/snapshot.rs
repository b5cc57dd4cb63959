//! `snapshot`: create, revert or delete a VM snapshot. Not idempotent as a whole (a revert
//! discards what changed since), but retry-safe: `create` of a snapshot that already exists and
//! `delete` of one that is already gone succeed (outputs `already_existed` / `already_absent`).
//!
//! Providers:
//! * `libvirt` through the `virsh` client: `virsh -c URI snapshot-create-as | snapshot-revert |
//!   snapshot-delete`, URI from the step's `uri` or the configuration. Tested against libvirt's
//!   test driver (`test:///default`).
//! * `proxmox` through the Proxmox VE REST API with an API token
//!   (`Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`): `POST
//!   /nodes/{node}/qemu/{vmid}/snapshot`, `POST …/snapshot/{name}/rollback`, `DELETE
//!   …/snapshot/{name}`; each returns a task (UPID) polled at `/nodes/{node}/tasks/{upid}/status`
//!   until it is `stopped`; an `exitstatus` other than `OK` fails the step. A cancelled step
//!   stops polling; the Proxmox task itself runs on.
//! * **vSphere is not supported**: vSphere has no REST snapshot API (only the SOAP
//!   `CreateSnapshot_Task`), and no simulator is available to test against.
//!
//! Outputs `provider`, `action`, `vm`, `name`, and `upid` for Proxmox. A refused token (401),
//! an unknown VM or snapshot and a failed task are fatal; an unreachable hypervisor or API and
//! a 5xx reply are retryable.

mod libvirt;
mod proxmox;

use crate::catalog::ConnectorSpec;
use crate::inputs::{SnapshotAction, SnapshotInputs, SnapshotProvider};
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of,
};

/// The `snapshot` connector.
pub struct Snapshot;

fn action_name(action: SnapshotAction) -> &'static str {
    match action {
        SnapshotAction::Create => "create",
        SnapshotAction::Revert => "revert",
        SnapshotAction::Delete => "delete",
    }
}

fn provider_name(provider: SnapshotProvider) -> &'static str {
    match provider {
        SnapshotProvider::Libvirt => "libvirt",
        SnapshotProvider::Proxmox => "proxmox",
    }
}

/// "would snapshot vm-101 as pre-patch-2026-12 (libvirt, create)".
fn describe(inputs: &SnapshotInputs) -> String {
    let (vm, name) = (&inputs.vm, &inputs.name);
    let what = match inputs.action {
        SnapshotAction::Create => format!("snapshot {vm} as {name}"),
        SnapshotAction::Revert => format!("revert {vm} to snapshot {name}"),
        SnapshotAction::Delete => format!("delete snapshot {name} of {vm}"),
    };
    let mut place = provider_name(inputs.provider).to_string();
    if let Some(node) = &inputs.node {
        place.push_str(&format!(" node {node}"));
    }
    format!("{what} ({place}, {})", action_name(inputs.action))
}

fn base_outputs(inputs: &SnapshotInputs) -> Outputs {
    let mut out = Outputs::new();
    out.insert("provider".into(), provider_name(inputs.provider).into());
    out.insert("action".into(), action_name(inputs.action).into());
    out.insert("vm".into(), inputs.vm.clone().into());
    out.insert("name".into(), inputs.name.clone().into());
    out
}

impl Connector for Snapshot {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("snapshot")
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let inputs: SnapshotInputs = parse_inputs("snapshot", inputs)?;
        Ok(ctx.secrets.redact(&format!("would {}", describe(&inputs))))
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let inputs: SnapshotInputs = parse_inputs("snapshot", &inputs)?;
            let mut out = base_outputs(&inputs);
            let extra = match inputs.provider {
                SnapshotProvider::Libvirt => libvirt::run(&inputs, ctx).await,
                SnapshotProvider::Proxmox => proxmox::run(&inputs, ctx).await,
            }
            .map_err(|e| e.redacted(&ctx.secrets))?;
            out.extend(extra);
            ctx.log_line(&format!("done: {}", describe(&inputs)));
            Ok(ctx.redact_outputs(out))
        })
    }
}
