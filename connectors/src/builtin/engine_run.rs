//! `approval` and `manual`: run by the engine itself (signed links, the outbox, the store).
//! Their connectors only describe the step in a dry run; `execute` refuses.

use crate::catalog::ConnectorSpec;
use crate::inputs::{ApprovalInputs, ManualInputs};
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of,
};

/// A connector whose steps the engine runs: `approval` or `manual`.
pub struct EngineRun(pub &'static str);

impl Connector for EngineRun {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of(self.0)
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let line = if self.0 == "approval" {
            let i: ApprovalInputs = parse_inputs("approval", inputs)?;
            let choices = i
                .choices
                .unwrap_or_else(|| vec!["approve".into(), "reject".into()]);
            format!(
                "would ask {} to decide ({}; quorum {})",
                i.approvers.as_slice().join(", "),
                choices.join("/"),
                i.quorum
            )
        } else {
            let i: ManualInputs = parse_inputs("manual", inputs)?;
            format!(
                "would assign a manual task to {}: {}",
                i.assignee.as_slice().join(", "),
                i.instructions.lines().next().unwrap_or_default()
            )
        };
        Ok(ctx.secrets.redact(&line))
    }

    fn execute<'a>(
        &'a self,
        _: serde_json::Value,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        let name = self.0;
        Box::pin(async move {
            Err(ConnectorError::Fatal(format!(
                "`{name}` steps are run by the engine"
            )))
        })
    }
}
