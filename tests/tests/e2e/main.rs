//! End-to-end tests: drive the built `patchday` binary as a user would.
//! One test binary (like ripgrep's), one module per area.

mod actions;
mod ansible;
mod auth;
mod browser;
mod cadence;
mod calendar;
mod corpus;
mod daemon;
mod dashboard;
mod demo;
mod durability;
mod evidence;
mod feed;
mod first_run;
mod hardening;
mod lasting;
mod mailer;
mod month;
mod multi;
mod new;
mod oidc;
mod operator;
mod plan;
mod recurrence;
mod reload;
mod runs;
mod schema;
mod signals;
mod sla;
mod soak;
mod tls;
mod validate;
mod witnesses;
mod xtask;
