//! The calendar: cycles keyed to Patch Tuesday, time expressions, schedules, blackouts and
//! catch-up. Pure code: no I/O, and the clock is never read; every "now" is passed in.
//!
//! - [`cycle`]: the "YYYY-MM" cycle id, [`patch_tuesday`] and [`nth_weekday`].
//! - [`zone`]: IANA zones and [`local_to_instant`], the one place a wall-clock time becomes an
//!   instant (RFC 5545 §3.3.5: a time in a DST gap uses the offset before the gap; a repeated
//!   time means its first occurrence).
//! - [`expr`]: time expressions `ANCHOR[±Nd][±Nh][±Nm][ HH:MM]` and how they resolve.
//! - [`crontab`]: cron rules (seconds first; day-of-month AND day-of-week must both match).
//! - [`rrule`]: RFC 5545 recurrence rules (`FREQ=WEEKLY;INTERVAL=2;BYDAY=MO`), expanded to
//!   dates here, one cycle per date.
//! - [`ics`]: the fires as an RFC 5545 VCALENDAR, one VEVENT per cycle.
//! - [`schedule`]: a runbook's rules, zone and blackouts, and the fires they produce; a cycle
//!   fires exactly once, at the earliest time any rule gives it.
//! - [`blackout`]: change freezes; a cycle firing inside one is skipped with a reason.
//! - [`catch_up`](mod@catch_up): which due cycles to fire now, which were missed, what is next.

pub mod blackout;
pub mod catch_up;
pub mod crontab;
pub mod cycle;
pub mod expr;
pub mod ics;
pub mod rrule;
pub mod schedule;
pub mod zone;

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod rrule_oracle_tests;

pub use blackout::{Blackout, blackout_for, parse_date};
pub use catch_up::{CatchUp, catch_up};
pub use crontab::{fires_less_often_than_it_reads, parse_cron};
pub use cycle::{Cycle, CycleError, Nth, nth_weekday, patch_tuesday};
pub use expr::{Anchor, AnchorContext, ResolveError, TimeExpr, TimeExprError};
pub use schedule::{Fire, Fires, RuleError, Schedule, ScheduleRule};
pub use zone::{local_to_instant, parse_zone, wall_clock};
