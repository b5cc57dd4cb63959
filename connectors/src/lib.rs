//! patchday-connectors: the connectors a runbook step can `use`.
//!
//! A connector knows nothing about runs, the store or the audit log. It is described by a
//! [`ConnectorSpec`] (name, idempotency, typed inputs and their JSON Schema) so that
//! `patchday validate` can check a step's `with:` before anything runs. The typed inputs live
//! in [`inputs`]; shared value types (durations, recipients) in [`values`].

pub mod catalog;
pub mod inputs;
pub mod values;

pub use catalog::{CATALOG, ConnectorSpec, InputError, lookup};
