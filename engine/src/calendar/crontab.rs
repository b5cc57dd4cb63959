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
//! The cycle of a cron fire is its wall-clock date ("YYYY-MM-DD"), so `0 0 9 * * Tue` fires
//! every Tuesday. A cycle fires once: an expression that matches more than once a day is
//! refused ([`parse_cron`]), and were a day to hold two matches anyway, only the earliest would
//! count.

use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
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
    check_once_a_day(text, &schedule)?;
    Ok(schedule)
}

/// A cron fire's cycle is its date, so one time of day: one second, one minute, one hour.
fn check_once_a_day(text: &str, schedule: &cron::Schedule) -> Result<(), String> {
    use cron::TimeUnitSpec as _;
    let per_day =
        schedule.seconds().count() * schedule.minutes().count() * schedule.hours().count();
    if per_day == 1 {
        return Ok(());
    }
    Err(format!(
        "cron expression `{text}` matches {per_day} times a day; a cron entry's cycle is the date of its fire, so it may fire once a day: give one second, one minute and one hour (for several times a day, write one runbook per time)"
    ))
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

/// Years in which [`fires_less_often_than_it_reads`] counts months: eight years hold two leap
/// years and every weekday on every date.
const SAMPLE_YEARS: std::ops::RangeInclusive<i32> = 2025..=2032;

/// A warning for an expression that names a day of the month but fires in fewer months than
/// it names: a day that some months lack (`31`, `29 Feb`), or a day-of-month AND day-of-week
/// pair that rarely meet (`1 * Mon`, which Vixie cron reads as "the 1st or any Monday").
/// Expressions with a year field are not judged.
pub fn fires_less_often_than_it_reads(text: &str, schedule: &cron::Schedule) -> Option<String> {
    use cron::TimeUnitSpec as _;
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 6 || fields[3] == "*" {
        return None;
    }
    let (mut named, mut fired) = (0, 0);
    for year in SAMPLE_YEARS {
        for month in (1..=12).filter(|m| schedule.months().includes(*m)) {
            named += 1;
            let first = NaiveDate::from_ymd_opt(year, month, 1)?;
            let mut days = first.iter_days().take_while(|d| d.month() == month);
            fired += usize::from(days.any(|d| date_matches(schedule, d)));
        }
    }
    if fired == named {
        return None;
    }
    let (dom, dow) = (fields[3], fields[5]);
    let why = if dow == "*" {
        format!("day {dom} is not in every month it names")
    } else {
        format!(
            "day-of-month `{dom}` AND day-of-week `{dow}` must both match (Vixie cron would fire on either)"
        )
    };
    Some(format!(
        "cron expression `{text}` fires in only {fired} of the {named} months it names in {}-{}: {why}",
        SAMPLE_YEARS.start(),
        SAMPLE_YEARS.end()
    ))
}

fn date_matches(schedule: &cron::Schedule, date: NaiveDate) -> bool {
    use cron::TimeUnitSpec as _;
    schedule.days_of_month().includes(date.day())
        && schedule
            .days_of_week()
            .includes(date.weekday().number_from_sunday())
}

/// The first wall-clock match strictly after `after`.
fn next_match(schedule: &cron::Schedule, after: NaiveDateTime) -> Option<NaiveDateTime> {
    schedule
        .after(&after.and_utc())
        .next()
        .map(|m| m.naive_utc())
}

/// The first date on or after `date` on which the expression matches, as its day cycle, with
/// that cycle's fire: the earliest instant among the date's matches.
pub(crate) fn first_fire_from(
    schedule: &cron::Schedule,
    tz: Tz,
    date: NaiveDate,
) -> Option<(Cycle, DateTime<Tz>)> {
    let before = date.and_time(NaiveTime::MIN) - TimeDelta::seconds(1);
    let first = next_match(schedule, before)?;
    let cycle = Cycle::on(first.date());
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
        if next >= best.naive_local() || Cycle::on(next.date()) != cycle {
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
        Cycle::new(year, month).unwrap()
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    /// The first fire on or after `from` of an expression, bypassing [`parse_cron`]'s checks.
    fn fire(expr: &str, tz: Tz, from: &str) -> (String, String) {
        let schedule = cron::Schedule::from_str(expr).unwrap();
        let (c, at) = first_fire_from(&schedule, tz, day(from)).unwrap();
        (c.to_string(), at.to_rfc3339())
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
    fn each_date_with_a_match_is_its_own_cycle() {
        let ny = chrono_tz::America::New_York;
        // Every Tuesday at 09:00: the next Tuesday is the next cycle, whatever its month.
        let tue = |from| fire("0 0 9 * * Tue", ny, from);
        assert_eq!(
            tue("2026-09-01"),
            ("2026-09-01".into(), "2026-09-01T09:00:00-04:00".into())
        );
        assert_eq!(
            tue("2026-09-02"),
            ("2026-09-08".into(), "2026-09-08T09:00:00-04:00".into())
        );
        assert_eq!(
            tue("2026-12-30"),
            ("2027-01-05".into(), "2027-01-05T09:00:00-05:00".into())
        );
        // Only in odd months: asking from an even month jumps to the next odd one.
        assert_eq!(
            fire("0 0 20 8-14 1/2 Sat", ny, "2026-12-01"),
            ("2027-01-09".into(), "2027-01-09T20:00:00-05:00".into())
        );
    }

    #[test]
    fn expressions_that_fire_less_often_than_they_read_are_named() {
        let note = |text: &str| fires_less_often_than_it_reads(text, &parse_cron(text).unwrap());
        let n = note("0 0 9 31 * *").unwrap();
        assert!(n.contains("fires in only 56 of the 96 months"), "{n}");
        assert!(n.contains("day 31 is not in every month"), "{n}");
        let n = note("0 0 9 29 Feb *").unwrap();
        assert!(n.contains("only 2 of the 8 months"), "{n}");
        let n = note("0 0 9 1 * Mon").unwrap();
        assert!(n.contains("AND day-of-week `Mon` must both match"), "{n}");
        // What reads as it fires: every week, the second Saturday, the 1st of the month.
        for fine in [
            "0 0 22 * * Sat",
            "0 0 22 8-14 * Sat",
            "0 0 9 1 * *",
            "0 0 9 28 * *",
            "@daily",
        ] {
            assert_eq!(note(fine), None, "{fine}");
        }
    }

    #[test]
    fn more_than_one_match_a_day_is_refused() {
        for text in [
            "0 15,30 2 * * Sun",
            "0 0 9,21 * * *",
            "*/30 0 9 * * *",
            "@hourly",
        ] {
            let err = parse_cron(text).unwrap_err();
            assert!(err.contains("times a day"), "{text}: {err}");
        }
        let err = parse_cron("0 0 9-17 * * Mon-Fri").unwrap_err();
        assert!(err.contains("matches 9 times a day"), "{err}");
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("0 0 22 * * Sat").is_ok());
    }

    #[test]
    fn a_match_in_a_dst_gap_fires_with_the_offset_before_it() {
        let ny = chrono_tz::America::New_York;
        // The cron crate alone skips 02:30 on 2026-03-08; we fire at 03:30 EDT.
        assert_eq!(
            fire("0 30 2 8-14 Mar Sun", ny, "2026-03-01").1,
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
            fire("0 30 1 1-7 Nov Sun", ny, "2026-11-01").1,
            "2026-11-01T01:30:00-04:00"
        );
        let sydney = chrono_tz::Australia::Sydney;
        assert_eq!(
            fire("0 30 2 1-7 Oct Sun", sydney, "2026-10-01").1,
            "2026-10-04T03:30:00+11:00"
        );
    }

    #[test]
    fn a_later_match_after_a_half_hour_gap_can_be_earlier() {
        // Lord Howe Island, 2026-10-04: 02:00 jumps to 02:30. 02:15 is read as 02:45;
        // the 02:30 match is the earlier instant and is the cycle's fire. (parse_cron refuses two
        // matches a day; the expansion still takes the earliest should a day hold two.)
        let lord_howe = chrono_tz::Australia::Lord_Howe;
        let (c, at) = fire("0 15,30 2 1-7 Oct Sun", lord_howe, "2026-10-01");
        assert_eq!(c, "2026-10-04");
        assert_eq!(at, "2026-10-04T02:30:00+11:00");
        let utc_fire = DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(utc_fire.to_rfc3339(), "2026-10-03T15:30:00+00:00");
    }
}
