//! The built-in connectors, one module each.

pub mod ansible;
pub mod check;
pub mod command;
pub mod email;
pub mod engine_run;
pub mod http;
pub mod noop;
pub mod report;
pub mod sleep;
pub mod snapshot;
