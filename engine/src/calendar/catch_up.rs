//! Catch-up: what the daemon does with cycles that came due while it was not looking.
//!
//! [`catch_up`] is a pure function of the schedule, the last fired cycle, the runbook's
//! `catch_up` window, `now`, and `since` (when the daemon first knew the runbook). It looks at
//! the fires from `since` to `now` whose cycle is after the last fired one:
//!
//! - due within the window (`now - fires_at <= window`): **fire now**, oldest first;
//! - due longer ago: **missed**, to be recorded, never started;
//! - in a blackout: **skipped**, to be recorded with the reason, never started.
//!
//! Nothing before `since` is reported, so a runbook added in the middle of a cycle whose fire
//! has passed waits for the next cycle. `next_due` is the first fire after `now` that is not
//! blacked out (the daemon sleeps until then; blacked-out fires in between are reported as
//! skipped by the call made at that time).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::cycle::Cycle;
use super::schedule::{Fire, Schedule};

/// What to do now; every list is in time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatchUp {
    pub fire_now: Vec<Fire>,
    pub missed: Vec<Fire>,
    /// Due fires whose local date is in a blackout (`Fire::blackout` holds the reason).
    pub skipped: Vec<Fire>,
    pub next_due: Option<Fire>,
}

/// Sorts the fires since `since` into fire now / missed / skipped, and finds the next one due.
///
/// `last_fired` is the last cycle already dealt with: fired, or recorded as missed or skipped.
/// Passing the last *recorded* cycle (not only the last started one) keeps a miss from being
/// reported twice.
pub fn catch_up(
    schedule: &Schedule,
    last_fired: Option<Cycle>,
    catch_up_window: Duration,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> CatchUp {
    let window = TimeDelta::from_std(catch_up_window).unwrap_or(TimeDelta::MAX);
    let mut result = CatchUp::default();
    let not_yet_fired = |fire: &Fire| last_fired.is_none_or(|last| fire.cycle > last);
    for fire in schedule.fires_from(since).filter(not_yet_fired) {
        if fire.fires_at.to_utc() > now {
            if fire.blackout.is_none() {
                result.next_due = Some(fire);
                break;
            }
            continue;
        }
        let late = now - fire.fires_at.to_utc();
        let list = match (&fire.blackout, late <= window) {
            (Some(_), _) => &mut result.skipped,
            (None, true) => &mut result.fire_now,
            (None, false) => &mut result.missed,
        };
        list.push(fire);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::blackout::{Blackout, parse_date};
    use crate::calendar::expr::TimeExpr;
    use crate::calendar::schedule::ScheduleRule;

    const NY: chrono_tz::Tz = chrono_tz::America::New_York;
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn cycle(text: &str) -> Cycle {
        text.parse().unwrap()
    }

    /// DESIGN §3's monthly runbook: a week before Patch Tuesday at 09:00 New York time.
    fn monthly(blackouts: Vec<Blackout>) -> Schedule {
        let expr = TimeExpr::parse("patch_tuesday-7d 09:00").unwrap();
        Schedule::new(
            vec![ScheduleRule::anchored(expr, None).unwrap()],
            NY,
            blackouts,
        )
    }

    fn cycles(fires: &[Fire]) -> Vec<String> {
        fires.iter().map(|f| f.cycle.to_string()).collect()
    }

    #[test]
    fn a_schedule_created_after_this_cycles_fire_waits_for_the_next_cycle() {
        // Cycle 2026-02 fired on 2026-02-03 09:00; the runbook appears on 2026-02-20.
        let since = utc("2026-02-20T12:00:00Z");
        let result = catch_up(&monthly(vec![]), None, DAY, since, since);
        assert!(result.fire_now.is_empty() && result.missed.is_empty());
        let next = result.next_due.unwrap();
        assert_eq!(next.cycle, cycle("2026-03"));
        assert_eq!(next.fires_at.to_rfc3339(), "2026-03-03T09:00:00-05:00");
    }

    #[test]
    fn a_schedule_created_before_this_cycles_fire_fires_this_cycle() {
        // Patch Tuesday 2026-02-10: the +3d 22:00 step of cycle 2026-02 is still ahead on the 12th.
        let expr = TimeExpr::parse("patch_tuesday+3d 22:00").unwrap();
        let schedule = Schedule::new(
            vec![ScheduleRule::anchored(expr, None).unwrap()],
            NY,
            vec![],
        );
        let since = utc("2026-02-12T15:00:00Z");
        let result = catch_up(&schedule, None, DAY, since, since);
        let next = result.next_due.unwrap();
        assert_eq!(next.cycle, cycle("2026-02"));
        assert_eq!(next.fires_at.to_rfc3339(), "2026-02-13T22:00:00-05:00");
        // An hour after the fire, the daemon (down at that moment) fires it now.
        let later = catch_up(&schedule, None, DAY, utc("2026-02-14T04:00:00Z"), since);
        assert_eq!(cycles(&later.fire_now), ["2026-02"]);
        assert_eq!(later.next_due.unwrap().cycle, cycle("2026-03"));
    }

    #[test]
    fn within_the_window_fires_now_older_is_missed() {
        let schedule = monthly(vec![]);
        let since = utc("2026-01-01T00:00:00Z");
        // 2026-03-03 09:00 EST = 14:00 UTC. Ten hours later: within 24h.
        let result = catch_up(
            &schedule,
            Some(cycle("2026-02")),
            DAY,
            utc("2026-03-04T00:00:00Z"),
            since,
        );
        assert_eq!(cycles(&result.fire_now), ["2026-03"]);
        assert!(result.missed.is_empty());
        assert_eq!(result.next_due.unwrap().cycle, cycle("2026-04"));
        // Exactly at the window's edge still fires.
        let edge = catch_up(
            &schedule,
            Some(cycle("2026-02")),
            DAY,
            utc("2026-03-04T14:00:00Z"),
            since,
        );
        assert_eq!(cycles(&edge.fire_now), ["2026-03"]);
        // A second later it is missed.
        let result = catch_up(
            &schedule,
            Some(cycle("2026-02")),
            DAY,
            utc("2026-03-04T14:00:01Z"),
            since,
        );
        assert!(result.fire_now.is_empty());
        assert_eq!(cycles(&result.missed), ["2026-03"]);
    }

    #[test]
    fn a_daemon_down_for_months_reports_each_missed_cycle_once() {
        let schedule = monthly(vec![]);
        let since = utc("2025-06-01T00:00:00Z");
        // Last fired 2026-01; back on 2026-05-05 10:00 EDT, an hour after 2026-05's fire (09:00).
        let now = utc("2026-05-05T14:00:00Z");
        let result = catch_up(&schedule, Some(cycle("2026-01")), DAY, now, since);
        assert_eq!(cycles(&result.missed), ["2026-02", "2026-03", "2026-04"]);
        assert_eq!(cycles(&result.fire_now), ["2026-05"]);
        assert_eq!(result.next_due.unwrap().cycle, cycle("2026-06"));
        // Once 2026-05 is recorded as fired, asking again reports nothing new.
        let again = catch_up(&schedule, Some(cycle("2026-05")), DAY, now, since);
        assert!(again.fire_now.is_empty() && again.missed.is_empty() && again.skipped.is_empty());
    }

    #[test]
    fn a_runbook_that_never_fired_is_not_charged_with_cycles_before_since() {
        let schedule = monthly(vec![]);
        let since = utc("2026-03-01T00:00:00Z");
        let result = catch_up(&schedule, None, DAY, utc("2026-04-20T00:00:00Z"), since);
        assert_eq!(cycles(&result.missed), ["2026-03", "2026-04"]);
        assert!(result.fire_now.is_empty());
    }

    #[test]
    fn blacked_out_cycles_are_skipped_and_not_due() {
        let freeze = Blackout::new(
            parse_date("2026-04-01").unwrap(),
            parse_date("2026-05-31").unwrap(),
            "data centre move",
        )
        .unwrap();
        let schedule = monthly(vec![freeze]);
        let since = utc("2026-01-01T00:00:00Z");
        // Right after the April fire: it is skipped; May is blacked out too; June is next.
        let now = utc("2026-04-07T14:00:00Z");
        let result = catch_up(&schedule, Some(cycle("2026-03")), DAY, now, since);
        assert_eq!(cycles(&result.skipped), ["2026-04"]);
        assert_eq!(
            result.skipped[0].blackout.as_deref(),
            Some("data centre move")
        );
        assert!(result.fire_now.is_empty() && result.missed.is_empty());
        let next = result.next_due.unwrap();
        assert_eq!(next.cycle, cycle("2026-06"));
        assert_eq!(next.fires_at.to_rfc3339(), "2026-06-02T09:00:00-04:00");
    }

    #[test]
    fn a_manual_runbook_has_nothing_due() {
        let schedule = Schedule::new(vec![], NY, vec![]);
        let now = utc("2026-04-07T14:00:00Z");
        assert_eq!(catch_up(&schedule, None, DAY, now, now), CatchUp::default());
    }
}
