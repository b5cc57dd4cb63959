//! `sleep`: waits for `duration`, then succeeds; idempotent; stops at once when cancelled.

use crate::catalog::ConnectorSpec;
use crate::inputs::SleepInputs;
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of,
};

/// The `sleep` connector.
pub struct Sleep;

impl Connector for Sleep {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("sleep")
    }

    fn dry_run(&self, inputs: &serde_json::Value, _: &Context) -> Result<String, ConnectorError> {
        let inputs: SleepInputs = parse_inputs("sleep", inputs)?;
        Ok(format!("would wait {}", inputs.duration.0))
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let inputs: SleepInputs = parse_inputs("sleep", &inputs)?;
            let duration = inputs.duration.duration();
            tokio::select! {
                _ = ctx.cancel.cancelled() => Err(ConnectorError::Cancelled),
                _ = tokio::time::sleep(duration) => {
                    let mut out = Outputs::new();
                    out.insert("slept_seconds".into(), duration.as_secs().into());
                    Ok(out)
                }
            }
        })
    }
}
