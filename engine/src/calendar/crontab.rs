//! Cron rules: the `cron` crate's syntax, evaluated on the runbook's wall clock.
//!
//! The syntax has six or seven fields, seconds first:
//! `sec min hour day-of-month month day-of-week [year]`, e.g. `0 0 22 8-14 * Sat`.
//!
//! Two differences from Vixie cron (crontab(5)) matter for patch schedules:
//!
//! - **Day-of-month AND day-of-week must both match.** Vixie cron ORs them when both are
//!   restricted, so its `0 22 8-14 * 6` fires on every Saturday *and* on every day from the 8th
//!   to the 14th. Here `0 0 22 8-14 * Sat` fires only on the Saturday between the 8th and the
//!   14th, the second Saturday (tested below).
//! - Day-of-week numbers start at 1 = Sunday (Vixie: 0 or 7 = Sunday, 1 = Monday). To avoid
//!   that trap, [`parse_cron`] only accepts day names (`Mon`, `Tue-Fri`, ...) in that field.
//!
//! Matches are wall-clock times in the runbook's zone, turned into instants by
//! [`local_to_instant`] (RFC 5545 §3.3.5): a match inside a DST gap fires with the offset from
//! before the gap (the `cron` crate alone would skip it), a match in an overlap fires once.
//! The cycle of a cron fire is the month of its wall-clock date, and a cycle fires once: only
//! the earliest match of each month counts (`0 0 9 * * Tue` fires on the month's first
//! Tuesday).

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeDelta};
use chrono_tz::Tz;

use super::cycle::Cycle;
use super::zone::local_to_instant;

/// Parses a cron expression in the `cron` crate's syntax (seconds first), with messages that
/// explain the usual mistakes (five-field Vixie syntax, numeric days of the week, impossible
/// dates).
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    check_fields(text)?;
    let schedule = cron::Schedule::from_str(text.trim())
        .map_err(|e| format!("invalid cron expression `{text}`: {e}"))?;
    if next_match(
        &schedule,
        DateTime::UNIX_EPOCH.naive_utc() - TimeDelta::seconds(1),
    )
    .is_none()
    {
        return Err(format!("cron expression `{text}` never matches any date"));
    }
    Ok(schedule)
}

const FIELDS_HINT: &str =
    "seconds minutes hours day-of-month month day-of-week [year], e.g. `0 0 22 8-14 * Sat`";

fn check_fields(text: &str) -> Result<(), String> {
    if text.trim_start().starts_with('@') {
        return Ok(());
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.len() {
        6 | 7 => check_day_of_week(fields[5]),
        5 => Err(format!(
            "cron expression `{text}` has 5 fields (Vixie style); this syntax has a seconds field first: {FIELDS_HINT}"
        )),
        n => Err(format!(
            "cron expression `{text}` has {n} fields; expected 6 or 7: {FIELDS_HINT}"
        )),
    }
}

fn check_day_of_week(field: &str) -> Result<(), String> {
    if field.contains('#') || field.contains('L') {
        return Err(format!(
            "day-of-week `{field}`: `#` and `L` are not supported; for the second Saturday write day-of-month `8-14` with `Sat`, or use an anchored rule such as `at: second_saturday`"
        ));
    }
    let numeric = field
        .split(',')
        .flat_map(|part| part.split('/').next().unwrap_or_default().split('-'))
        .any(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        return Err(format!(
            "day-of-week `{field}` uses numbers; write day names (Mon, Tue, ..., Sun): in this syntax 1 means Sunday, unlike Vixie cron where 1 is Monday"
        ));
    }
    Ok(())
}

/// The first wall-clock match strictly after `after`.
fn next_match(schedule: &cron::Schedule, after: NaiveDateTime) -> Option<NaiveDateTime> {
    schedule
        .after(&after.and_utc())
        .next()
        .map(|m| m.naive_utc())
}

/// The first cycle at or after `cycle` in which the expression matches, with that cycle's fire:
/// the earliest instant among its matches.
pub(crate) fn first_fire_from(
    schedule: &cron::Schedule,
    tz: Tz,
    cycle: Cycle,
) -> Option<(Cycle, DateTime<Tz>)> {
    let before = cycle.first_day().and_time(NaiveTime::MIN) - TimeDelta::seconds(1);
    let first = next_match(schedule, before)?;
    let cycle = Cycle::of(first.date());
    Some((cycle, earliest_in_cycle(schedule, tz, cycle, first)))
}

/// Matches become instants in order, except that a match inside a DST gap moves forward by
/// the gap's length, so a match just after the gap can be an earlier instant (e.g. 02:15 and
/// 02:30 on Lord Howe Island's half-hour spring-forward night). Only then look further.
fn earliest_in_cycle(
    schedule: &cron::Schedule,
    tz: Tz,
    cycle: Cycle,
    first: NaiveDateTime,
) -> DateTime<Tz> {
    let mut best = local_to_instant(tz, first);
    let mut current = first;
    while best.naive_local() != current {
        let Some(next) = next_match(schedule, current) else {
            break;
        };
        if next >= best.naive_local() || Cycle::of(next.date()) != cycle {
            break;
        }
        best = best.min(local_to_instant(tz, next));
        current = next;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::cycle::patch_tuesday;
    use chrono::{Datelike, NaiveDate, Utc, Weekday};

    fn cycle(year: i32, month: u32) -> Cycle {
        Cycle { year, month }
    }

    fn fire(expr: &str, tz: Tz, c: Cycle) -> (Cycle, String) {
        let (c, at) = first_fire_from(&parse_cron(expr).unwrap(), tz, c).unwrap();
        (c, at.to_rfc3339())
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match() {
        // Vixie cron would fire on every Tuesday and on every day 8-14.
        let schedule = parse_cron("0 0 9 8-14 * Tue").unwrap();
        let start = NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .and_time(NaiveTime::MIN);
        let matches: Vec<_> = schedule.after(&start.and_utc()).take(36).collect();
        let mut c = cycle(2024, 1);
        for m in matches {
            assert_eq!(m.weekday(), Weekday::Tue);
            assert!((8..=14).contains(&m.day()));
            assert_eq!(
                m.date_naive(),
                patch_tuesday(c),
                "one match per month: Patch Tuesday"
            );
            c = c.succ();
        }
        assert_eq!(c, cycle(2027, 1));
        // With day-of-month `*`, the weekday alone decides: every Tuesday matches.
        let tuesdays = parse_cron("0 0 9 * * Tue").unwrap();
        let in_january = tuesdays
            .after(&start.and_utc())
            .take_while(|m| m.month() == 1)
            .count();
        assert_eq!(in_january, 5);
    }

    #[test]
    fn parse_cron_explains_common_mistakes() {
        let err = parse_cron("0 22 8-14 * 6").unwrap_err();
        assert!(err.contains("has 5 fields (Vixie style)"), "{err}");
        let err = parse_cron("0 0 22 8-14 * 6").unwrap_err();
        assert!(
            err.contains("write day names") && err.contains("1 means Sunday"),
            "{err}"
        );
        assert!(parse_cron("0 0 22 * * 1-5").is_err());
        assert!(parse_cron("0 0 22 * * Tue#2").unwrap_err().contains("8-14"));
        let err = parse_cron("0 0 0 30 Feb *").unwrap_err();
        assert_eq!(
            err,
            "cron expression `0 0 0 30 Feb *` never matches any date"
        );
        let err = parse_cron("0 0 25 * * *").unwrap_err();
        assert!(
            err.starts_with("invalid cron expression `0 0 25 * * *`"),
            "{err}"
        );
        assert!(parse_cron("").unwrap_err().contains("has 0 fields"));
        assert!(parse_cron("0 0 9 * * Mon-Fri/2").is_ok());
        assert!(parse_cron("0 0 9 1 */2 * 2026-2030").is_ok());
        assert!(parse_cron("@monthly").is_ok());
    }

    #[test]
    fn only_the_first_match_of_a_month_fires() {
        let ny = chrono_tz::America::New_York;
        // Every Tuesday at 09:00: the cycle fires on its first Tuesday.
        assert_eq!(
            fire("0 0 9 * * Tue", ny, cycle(2026, 9)),
            (cycle(2026, 9), "2026-09-01T09:00:00-04:00".to_owned())
        );
        // Only in odd months: asking from an even month jumps to the next odd one.
        assert_eq!(
            fire("0 0 20 8-14 1/2 Sat", ny, cycle(2026, 12)),
            (cycle(2027, 1), "2027-01-09T20:00:00-05:00".to_owned())
        );
    }

    #[test]
    fn a_match_in_a_dst_gap_fires_with_the_offset_before_it() {
        let ny = chrono_tz::America::New_York;
        // The cron crate alone skips 02:30 on 2026-03-08; we fire at 03:30 EDT.
        assert_eq!(
            fire("0 30 2 8-14 Mar Sun", ny, cycle(2026, 3)).1,
            "2026-03-08T03:30:00-04:00"
        );
        let alone = parse_cron("0 30 2 8-14 Mar Sun").unwrap();
        let start = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .to_utc();
        // The cron crate on its own skips the gap, and since New York's DST always starts on
        // the second Sunday of March, it skips every year the tz data has DST rules for.
        let crate_next = alone.after(&start.with_timezone(&ny)).next();
        assert!(crate_next.is_none_or(|d| d.year() > 2090), "{crate_next:?}");
        // Overlap: the first 01:30 of 2026-11-01.
        assert_eq!(
            fire("0 30 1 1-7 Nov Sun", ny, cycle(2026, 11)).1,
            "2026-11-01T01:30:00-04:00"
        );
        let sydney = chrono_tz::Australia::Sydney;
        assert_eq!(
            fire("0 30 2 1-7 Oct Sun", sydney, cycle(2026, 10)).1,
            "2026-10-04T03:30:00+11:00"
        );
    }

    #[test]
    fn a_later_match_after_a_half_hour_gap_can_be_earlier() {
        // Lord Howe Island, 2026-10-04: 02:00 jumps to 02:30. 02:15 is read as 02:45;
        // the 02:30 match is the earlier instant and is the cycle's fire.
        let lord_howe = chrono_tz::Australia::Lord_Howe;
        let (c, at) = fire("0 15,30 2 1-7 Oct Sun", lord_howe, cycle(2026, 10));
        assert_eq!(c, cycle(2026, 10));
        assert_eq!(at, "2026-10-04T02:30:00+11:00");
        let utc_fire = DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(utc_fire.to_rfc3339(), "2026-10-03T15:30:00+00:00");
    }
}
