//! End-to-end tests: drive the built `patchday` binary as a user would.
//! One test binary (like ripgrep's), one module per area.

mod ansible;
mod browser;
mod cadence;
mod calendar;
mod corpus;
mod daemon;
mod demo;
mod durability;
mod evidence;
mod first_run;
mod lasting;
mod mailer;
mod multi;
mod new;
mod operator;
mod plan;
mod recurrence;
mod reload;
mod runs;
mod schema;
mod signals;
mod soak;
mod validate;
mod xtask;
