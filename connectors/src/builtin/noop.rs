//! `noop`: does nothing and succeeds; idempotent. Outputs `message` when one was given.

use crate::catalog::ConnectorSpec;
use crate::inputs::NoopInputs;
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of,
};

/// The `noop` connector.
pub struct Noop;

impl Connector for Noop {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("noop")
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let inputs: NoopInputs = parse_inputs("noop", inputs)?;
        Ok(match inputs.message {
            Some(m) => format!("would do nothing ({})", ctx.secrets.redact(&m)),
            None => "would do nothing".to_string(),
        })
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let inputs: NoopInputs = parse_inputs("noop", &inputs)?;
            let mut out = Outputs::new();
            if let Some(m) = inputs.message {
                out.insert("message".into(), m.into());
            }
            Ok(ctx.redact_outputs(out))
        })
    }
}
