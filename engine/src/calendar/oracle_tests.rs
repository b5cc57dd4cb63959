//! Property tests: the fast path against a brute-force oracle.
//!
//! The oracle shares nothing with the fast path but the parsed rule. It walks UTC instants
//! minute by minute, reads each on the zone's wall clock (`from_utc_datetime`, the one
//! conversion with a single answer), and applies RFC 5545 §3.3.5 literally: a wall time fires
//! the first time the clock shows it, and a wall time the clock jumps over fires at the instant
//! it would have had with the offset in effect before the jump. Anchor dates are found by
//! counting weekdays, cron matches by testing each field of each minute.
//!
//! To stay fast in debug builds the oracle walks only the minutes that can matter: about a day
//! and a half around each anchored target, and for cron around each matching date (a cron
//! cycle is one date) until the earliest fire is certain. `cron_matches_a_full_year_walked_minute_by_minute`
//! walks every minute of a year.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;
use cron::TimeUnitSpec;
use proptest::prelude::*;
use proptest::test_runner::Config;

use super::cycle::{WEEKDAYS, weekday_name};
use super::{Blackout, Cycle, Fire, Schedule, ScheduleRule, TimeExpr, parse_cron};

const MINUTE: TimeDelta = TimeDelta::minutes(1);

/// Walks UTC minutes and reports the wall-clock targets that fire, per RFC 5545.
struct Walker<F: Fn(NaiveDateTime) -> bool> {
    tz: Tz,
    is_target: F,
    instant: DateTime<Utc>,
    previous: Option<NaiveDateTime>,
    latest_seen: Option<NaiveDateTime>,
}

impl<F: Fn(NaiveDateTime) -> bool> Walker<F> {
    fn new(tz: Tz, from: DateTime<Utc>, is_target: F) -> Self {
        Walker {
            tz,
            is_target,
            instant: from,
            previous: None,
            latest_seen: None,
        }
    }

    /// Advances one minute, pushing (wall time, instant) for every target that fires.
    fn step(&mut self, out: &mut Vec<(NaiveDateTime, DateTime<Utc>)>) {
        let local = self
            .tz
            .from_utc_datetime(&self.instant.naive_utc())
            .naive_local();
        if let Some(previous) = self.previous {
            let mut skipped = previous + MINUTE;
            while skipped < local {
                if (self.is_target)(skipped) && self.unseen(skipped) {
                    out.push((skipped, self.instant - MINUTE + (skipped - previous)));
                }
                skipped += MINUTE;
            }
        }
        if (self.is_target)(local) && self.unseen(local) {
            out.push((local, self.instant));
        }
        self.latest_seen = self.latest_seen.max(Some(local));
        self.previous = Some(local);
        self.instant += MINUTE;
    }

    fn unseen(&self, wall: NaiveDateTime) -> bool {
        self.latest_seen.is_none_or(|seen| wall > seen)
    }
}

fn month_days(cycle: Cycle) -> impl Iterator<Item = NaiveDate> {
    cycle
        .first_day()
        .iter_days()
        .take_while(move |d| d.month() == cycle.month)
}

/// An anchored rule as the oracle sees it; `text()` is what the parser gets.
#[derive(Clone, Debug)]
struct AnchoredCase {
    /// None: month_start; Some((n, weekday)) with n in 0..4 = first..fourth, 4 = last.
    anchor: Option<(usize, Weekday)>,
    patch_tuesday: bool,
    days: i64,
    hours: i64,
    minutes: i64,
    time: Option<(u32, u32)>,
    months: Option<Vec<u32>>,
}

impl AnchoredCase {
    fn text(&self) -> String {
        const NTH: [&str; 5] = ["first", "second", "third", "fourth", "last"];
        let mut text = match (self.patch_tuesday, self.anchor) {
            (true, _) => "patch_tuesday".to_owned(),
            (false, None) => "month_start".to_owned(),
            (false, Some((n, day))) => format!("{}_{}", NTH[n], weekday_name(day)),
        };
        for (value, unit) in [(self.days, 'd'), (self.hours, 'h'), (self.minutes, 'm')] {
            if value != 0 {
                text.push_str(&format!("{value:+}{unit}"));
            }
        }
        if let Some((h, m)) = self.time {
            text.push_str(&format!(" {h:02}:{m:02}"));
        }
        text
    }

    fn rule(&self) -> ScheduleRule {
        let expr = TimeExpr::parse(&self.text()).unwrap();
        assert_eq!(expr.to_string(), self.text(), "canonical form round-trips");
        ScheduleRule::anchored(expr, self.months.clone()).unwrap()
    }

    /// The anchor's date, by counting weekdays.
    fn anchor_date(&self, cycle: Cycle) -> NaiveDate {
        let (n, weekday) = match (self.patch_tuesday, self.anchor) {
            (true, _) => (1, Weekday::Tue),
            (false, None) => return cycle.first_day(),
            (false, Some(nth)) => nth,
        };
        let matching: Vec<NaiveDate> = month_days(cycle)
            .filter(|d| d.weekday() == weekday)
            .collect();
        if n == 4 {
            *matching.last().unwrap()
        } else {
            matching[n]
        }
    }

    fn fire(&self, tz: Tz, cycle: Cycle) -> Option<DateTime<Utc>> {
        if self
            .months
            .as_ref()
            .is_some_and(|m| !m.contains(&cycle.month))
        {
            return None;
        }
        let (h, m) = self.time.unwrap_or((0, 0));
        let date = self.anchor_date(cycle) + TimeDelta::days(self.days);
        let target = date.and_hms_opt(h, m, 0).unwrap();
        let from = target.and_utc() - TimeDelta::hours(15);
        let until = target.and_utc() + TimeDelta::hours(13);
        let mut walker = Walker::new(tz, from, |wall| wall == target);
        let mut fired = Vec::new();
        while walker.instant < until {
            walker.step(&mut fired);
        }
        assert_eq!(
            fired.len(),
            1,
            "{target} in {tz} must fire exactly once: {fired:?}"
        );
        Some(fired[0].1 + TimeDelta::hours(self.hours) + TimeDelta::minutes(self.minutes))
    }
}

fn cron_date_matches(schedule: &cron::Schedule, date: NaiveDate) -> bool {
    schedule.years().includes(date.year() as u32)
        && schedule.months().includes(date.month())
        && schedule.days_of_month().includes(date.day())
        && schedule
            .days_of_week()
            .includes(date.weekday().number_from_sunday())
}

fn cron_matches(schedule: &cron::Schedule, wall: NaiveDateTime) -> bool {
    cron_date_matches(schedule, wall.date())
        && schedule.hours().includes(wall.hour())
        && schedule.minutes().includes(wall.minute())
        && schedule.seconds().includes(0)
}

/// The earliest instant any of the day cycle's cron matches fires at.
fn cron_fire(schedule: &cron::Schedule, tz: Tz, cycle: Cycle) -> Option<DateTime<Utc>> {
    let date = cycle.date().filter(|d| cron_date_matches(schedule, *d))?;
    let from = date.and_time(NaiveTime::MIN).and_utc() - TimeDelta::hours(15);
    let give_up = from + TimeDelta::hours(15 + 24 + 13);
    let is_target = |wall: NaiveDateTime| wall.date() == date && cron_matches(schedule, wall);
    let mut walker = Walker::new(tz, from, is_target);
    let mut fired = Vec::new();
    let mut best: Option<DateTime<Utc>> = None;
    while walker.instant < give_up && best.is_none_or(|b| walker.instant <= b) {
        walker.step(&mut fired);
        best = best
            .into_iter()
            .chain(fired.drain(..).map(|(_, at)| at))
            .min();
    }
    best
}

#[derive(Clone, Debug)]
enum RuleCase {
    Anchored(AnchoredCase),
    Cron(String),
}

impl RuleCase {
    fn rule(&self) -> ScheduleRule {
        match self {
            RuleCase::Anchored(a) => a.rule(),
            RuleCase::Cron(text) => ScheduleRule::Cron(parse_cron(text).unwrap()),
        }
    }

    fn fire(&self, tz: Tz, cycle: Cycle) -> Option<DateTime<Utc>> {
        match self {
            RuleCase::Anchored(a) if !cycle.is_day() => a.fire(tz, cycle),
            RuleCase::Anchored(_) => None,
            RuleCase::Cron(text) => cron_fire(&parse_cron(text).unwrap(), tz, cycle),
        }
    }
}

/// (instant, cycle, blackout reason, patch Tuesday) — what both sides are compared on.
type Row = (DateTime<Utc>, Cycle, Option<String>, NaiveDate);

fn oracle_rows(rules: &[RuleCase], tz: Tz, blackout: &Blackout, cycles: &[Cycle]) -> Vec<Row> {
    let mut rows: Vec<Row> = cycles
        .iter()
        .filter_map(|&cycle| {
            let at = rules.iter().filter_map(|r| r.fire(tz, cycle)).min()?;
            let local_date = tz.from_utc_datetime(&at.naive_utc()).date_naive();
            let reason = blackout
                .contains(local_date)
                .then(|| blackout.reason.clone());
            let patch_tuesday = month_days(cycle)
                .filter(|d| d.weekday() == Weekday::Tue)
                .nth(1)?;
            Some((at, cycle, reason, patch_tuesday))
        })
        .collect();
    rows.sort();
    rows
}

fn fast_rows(schedule: &Schedule, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Row> {
    schedule
        .fires_from(from)
        .take_while(|f| f.fires_at.to_utc() < until)
        .map(|f: Fire| (f.fires_at.to_utc(), f.cycle, f.blackout, f.patch_tuesday))
        .collect()
}

/// Checks `fires_from(from)` against the oracle over `span` cycles starting at `first`.
fn check(rules: &[RuleCase], tz: Tz, first: Cycle, span: i64, from_minute: i64, blackout_at: i64) {
    let start = |c: Cycle| c.first_day().and_time(NaiveTime::MIN).and_utc();
    let last = Cycle::from_index(first.index() + span);
    let from = start(first) + TimeDelta::minutes(from_minute);
    let until = start(last);
    let blackout_day = from.date_naive() + TimeDelta::days(blackout_at);
    let blackout =
        Blackout::new(blackout_day, blackout_day + TimeDelta::days(9), "freeze").unwrap();
    let schedule = Schedule::new(
        rules.iter().map(RuleCase::rule).collect(),
        tz,
        vec![blackout.clone()],
    );

    // Offsets reach at most 42 days, so three months either side cover every anchored fire in
    // range; a cron fire is within a day of its date.
    let mut cycles: Vec<Cycle> = (first.index() - 3..=last.index() + 3)
        .map(Cycle::from_index)
        .collect();
    if rules.iter().any(|r| matches!(r, RuleCase::Cron(_))) {
        let days = (start(first) - TimeDelta::days(2)).date_naive().iter_days();
        cycles.extend(
            days.take_while(|d| *d <= until.date_naive() + TimeDelta::days(2))
                .map(Cycle::on),
        );
    }
    let expected: Vec<Row> = oracle_rows(rules, tz, &blackout, &cycles)
        .into_iter()
        .filter(|row| from <= row.0 && row.0 < until)
        .collect();
    let actual = fast_rows(&schedule, from, until);
    assert_eq!(actual, expected, "rules {rules:?} in {tz} from {from}");
    // At or after `from`, in time order, each cycle at most once.
    assert!(actual.iter().all(|row| row.0 >= from));
    assert!(
        actual
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
    );
    let mut seen = BTreeMap::new();
    assert!(actual.iter().all(|row| seen.insert(row.1, ()).is_none()));
    // The next fire after any `now` is the first one the oracle has at or after it. Two cycles
    // may fire at the same instant (an offset pushes one into the next month's fire), so "the
    // first at or after" is the first of that instant's rows, and one second later skips them all.
    if let Some(row) = expected.get(expected.len() / 2) {
        let first_at = expected.iter().find(|r| r.0 >= row.0).unwrap();
        let next = schedule.fires_from(row.0).next().unwrap();
        assert_eq!(
            (next.fires_at.to_utc(), next.cycle),
            (first_at.0, first_at.1)
        );
        let after = schedule.fires_from(row.0 + TimeDelta::seconds(1)).next();
        let following = expected.iter().find(|r| r.0 > row.0);
        if let (Some(after), Some(following)) = (after, following) {
            assert_eq!(
                (after.fires_at.to_utc(), after.cycle),
                (following.0, following.1)
            );
        }
    }
}

/// The zones every oracle test draws from (also the RRULE oracle's).
pub(super) fn zones() -> impl Strategy<Value = Tz> {
    use chrono_tz::{America, Asia, Australia, Europe, Pacific};
    prop::sample::select(vec![
        America::New_York,
        Europe::Berlin,
        Australia::Sydney,
        Australia::Lord_Howe,
        America::Santiago,
        Pacific::Chatham,
        Asia::Kolkata,
        chrono_tz::UTC,
    ])
}

fn anchored_case() -> impl Strategy<Value = AnchoredCase> {
    let anchor = prop_oneof![
        Just((true, None)),
        Just((false, None)),
        (0usize..5, 0usize..7).prop_map(|(n, d)| (false, Some((n, WEEKDAYS[d])))),
    ];
    let hour = prop_oneof![0u32..24, 0u32..4];
    let minute = prop_oneof![Just(0u32), Just(30), 0u32..60];
    let time = prop::option::of((hour, minute));
    let months = prop::option::of(prop::collection::btree_set(1u32..=12, 1..5));
    let small = |range: std::ops::RangeInclusive<i64>| prop_oneof![Just(0i64), range];
    (
        anchor,
        small(-40..=40),
        small(-30..=30),
        small(-90..=90),
        time,
        months,
    )
        .prop_map(
            |((patch_tuesday, anchor), days, hours, minutes, time, months)| AnchoredCase {
                anchor,
                patch_tuesday,
                days,
                hours,
                minutes,
                time,
                months: months.map(|m| m.into_iter().collect()),
            },
        )
}

fn cron_case() -> impl Strategy<Value = String> {
    let pick = |options: &[&'static str]| prop::sample::select(options.to_vec());
    (
        pick(&["0", "30", "15", "45", "59"]),
        pick(&["2", "0", "1", "23", "3"]),
        pick(&["*", "8-14", "1-7", "1", "25-31", "15"]),
        pick(&["*", "1/2", "3,4,9,10,11"]),
        pick(&["*", "Sun", "Tue", "Sat", "Mon-Fri"]),
    )
        .prop_map(|(min, hour, dom, month, dow)| format!("0 {min} {hour} {dom} {month} {dow}"))
}

fn first_cycle() -> impl Strategy<Value = Cycle> {
    (2000i32..2040, 1u32..=12).prop_map(|(year, month)| Cycle::new(year, month).unwrap())
}

/// Proptest settings of the oracle tests: `cases` cases, no failure files.
pub(super) fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn anchored_schedules_match_the_oracle(
        rule in anchored_case(), tz in zones(), first in first_cycle(),
        from_minute in 0i64..44_640, blackout_at in 0i64..600,
    ) {
        check(&[RuleCase::Anchored(rule)], tz, first, 36, from_minute, blackout_at);
    }

    #[test]
    fn cron_schedules_match_the_oracle(
        text in cron_case(), tz in zones(), first in first_cycle(),
        from_minute in 0i64..44_640, blackout_at in 0i64..120,
    ) {
        check(&[RuleCase::Cron(text)], tz, first, 4, from_minute, blackout_at);
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn mixed_anchored_schedules_match_the_oracle(
        a in anchored_case(), b in anchored_case(), tz in zones(),
        first in first_cycle(), from_minute in 0i64..44_640, blackout_at in 0i64..600,
    ) {
        let rules = [RuleCase::Anchored(a), RuleCase::Anchored(b)];
        check(&rules, tz, first, 24, from_minute, blackout_at);
    }

    #[test]
    fn mixed_cron_schedules_match_the_oracle(
        a in cron_case(), b in cron_case(), tz in zones(),
        first in first_cycle(), from_minute in 0i64..44_640, blackout_at in 0i64..120,
    ) {
        check(&[RuleCase::Cron(a), RuleCase::Cron(b)], tz, first, 3, from_minute, blackout_at);
    }
}

/// Found by the mixed oracle test: February's `patch_tuesday+28d` and March's Patch Tuesday
/// fire at the same instant (2003-03-11 00:00 New York). Both fire; the oracle agrees, and a
/// start at that instant sees both, a start one second later neither.
#[test]
fn two_cycles_firing_at_one_instant_are_both_fired() {
    let a = AnchoredCase {
        anchor: None,
        patch_tuesday: true,
        days: 28,
        hours: 0,
        minutes: 0,
        time: None,
        months: None,
    };
    let b = AnchoredCase {
        months: Some(vec![1]),
        days: 0,
        ..a.clone()
    };
    let c = AnchoredCase {
        months: Some(vec![3, 5]),
        days: 0,
        ..a.clone()
    };
    let rules = [
        RuleCase::Anchored(a),
        RuleCase::Anchored(b),
        RuleCase::Anchored(c),
    ];
    let tz = chrono_tz::America::New_York;
    check(&rules, tz, Cycle::new(2002, 2).unwrap(), 24, 0, 0);
    let schedule = Schedule::new(rules.iter().map(RuleCase::rule).collect(), tz, vec![]);
    let at = DateTime::parse_from_rfc3339("2003-03-11T05:00:00Z")
        .unwrap()
        .to_utc();
    let cycles: Vec<String> = schedule
        .fires_from(at)
        .take(3)
        .map(|f| format!("{} {}", f.cycle, f.fires_at.to_utc()))
        .collect();
    assert_eq!(
        cycles,
        [
            "2003-02 2003-03-11 05:00:00 UTC",
            "2003-03 2003-03-11 05:00:00 UTC",
            "2003-04 2003-05-06 04:00:00 UTC"
        ]
    );
}

/// A hand-picked `<nth>_<weekday> HH:MM` rule limited to some months.
fn night(n: usize, weekday: Weekday, (h, m): (u32, u32), months: &[u32]) -> RuleCase {
    RuleCase::Anchored(AnchoredCase {
        anchor: Some((n, weekday)),
        patch_tuesday: false,
        days: 0,
        hours: 0,
        minutes: 0,
        time: Some((h, m)),
        months: Some(months.to_vec()),
    })
}

#[test]
fn dst_nights_match_the_oracle_for_eight_years() {
    use chrono_tz::{America, Australia, Europe};
    const SUN: Weekday = Weekday::Sun;
    let cases = [
        // second_sunday 02:30 in March (gap), first_sunday 01:30 in November (overlap)
        (
            America::New_York,
            vec![night(1, SUN, (2, 30), &[3]), night(0, SUN, (1, 30), &[11])],
        ),
        (Europe::Berlin, vec![night(4, SUN, (2, 30), &[3, 10])]),
        (Australia::Sydney, vec![night(0, SUN, (2, 30), &[4, 10])]),
        // Chile changes at midnight: 00:00 does not exist on its spring-forward Sunday.
        (America::Santiago, vec![night(0, SUN, (0, 0), &[4, 9])]),
    ];
    for (tz, rules) in cases {
        check(&rules, tz, Cycle::new(2020, 1).unwrap(), 96, 0, 10_000);
    }
}

#[test]
fn cron_matches_a_full_year_walked_minute_by_minute() {
    use chrono_tz::{America, Australia};
    let cases = [
        (America::New_York, "0 30 2 * * Sun"),
        (Australia::Lord_Howe, "0 15 2 * * Sun"),
        (America::Santiago, "0 0 0 1-7 * Sun"),
    ];
    // 2026 has 52 Sundays; the first seven days of a month hold one each month.
    for ((tz, text), cycles) in cases.into_iter().zip([52, 52, 12]) {
        let schedule = parse_cron(text).unwrap();
        let from = NaiveDate::from_ymd_opt(2025, 12, 31)
            .unwrap()
            .and_time(NaiveTime::MIN)
            .and_utc();
        let until = NaiveDate::from_ymd_opt(2027, 1, 2)
            .unwrap()
            .and_time(NaiveTime::MIN)
            .and_utc();
        let mut walker = Walker::new(tz, from, |wall| {
            wall.year() == 2026 && cron_matches(&schedule, wall)
        });
        let mut fired = Vec::new();
        while walker.instant < until {
            walker.step(&mut fired);
        }
        let mut earliest: BTreeMap<Cycle, DateTime<Utc>> = BTreeMap::new();
        for (wall, at) in fired {
            let entry = earliest.entry(Cycle::on(wall.date())).or_insert(at);
            *entry = (*entry).min(at);
        }
        assert_eq!(earliest.len(), cycles, "{text} in {tz}");
        let fast = Schedule::new(vec![ScheduleRule::Cron(schedule.clone())], tz, vec![]);
        for (cycle, at) in earliest {
            let fire = fast.fire_for(cycle).unwrap();
            assert_eq!(fire.fires_at.to_utc(), at, "{text} in {tz}, cycle {cycle}");
        }
    }
}
