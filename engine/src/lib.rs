//! patchday: a workflow engine for IT patch management.
//!
//! Runbooks are YAML files kept in git. Each is a DAG of steps on a timeline keyed to Patch
//! Tuesday. This crate holds the whole engine; the binary in `main.rs` is only the CLI edge.
//! Start reading at [`runbook`] (the model and how it is loaded), then [`validate`], [`dag`]
//! and [`plan`]. ARCHITECTURE.md has the codemap.

pub mod audit;
pub mod auth;
pub mod calendar;
pub mod checkpoint;
pub mod checkpoints;
pub mod cli;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod daemon;
pub mod dag;
pub mod dashboard;
pub mod diagnostic;
pub mod docs;
pub mod evidence;
pub mod git;
pub mod inventory;
pub mod links;
pub mod logging;
pub mod merkle;
pub mod merkle_nodes;
pub mod notification;
pub mod pages;
pub mod plan;
pub mod proof;
pub mod run;
pub mod runbook;
pub mod schema;
pub mod sla;
pub mod sources;
pub mod store;
pub mod template;
pub mod validate;
pub mod version;
pub mod yaml;
