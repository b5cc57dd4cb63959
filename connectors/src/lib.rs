//! patchday-connectors: the connectors a runbook step can `use`.
//!
//! A connector knows nothing about runs, the store or the audit log. It is described by a
//! [`ConnectorSpec`] (name, idempotency, typed inputs and their JSON Schema) so that
//! `patchday validate` can check a step's `with:` before anything runs. The typed inputs live
//! in [`inputs`]; shared value types (durations, recipients) in [`values`].
//!
//! The execution side is the [`Connector`] trait in [`runtime`]: [`builtin`] finds a built-in
//! connector by name; it runs with a [`Context`] (host, cancellation, [`Secrets`],
//! [`Settings`]) and returns [`Outputs`] or a [`ConnectorError`] (retryable / fatal).

pub mod builtin;
pub mod catalog;
pub mod inputs;
pub mod process;
pub mod runtime;
pub mod secrets;
pub mod settings;
pub mod ssh;
pub mod values;

pub use builtin::email::{Attachment, OutgoingEmail, send_email};
pub use builtin::report::{CycleReport, render_report};
pub use catalog::{CATALOG, ConnectorSpec, InputError, lookup};
pub use runtime::{
    BatchConnector, BatchMember, BoxFuture, Connector, ConnectorError, Context, LogSink, Outputs,
    builtin, parse_inputs,
};
pub use secrets::Secrets;
pub use settings::Settings;
