//! Property tests: RRULE schedules against a brute-force oracle.
//!
//! The oracle shares nothing with [`super::rrule`] but the parsed parts. It walks every day for
//! three years, decides from RFC 5545's definitions whether the day is an occurrence (its
//! period is an INTERVAL-th one; it passes every BY part, with the start's defaults; BYSETPOS
//! picks among the period's passing days, found by walking the period), counts COUNT, and turns
//! the wall-clock time into an instant with chrono's own answers (the earlier of two in an
//! overlap; in a gap, the offset in force a day before).

use std::collections::HashMap;

use super::oracle_tests::{config, zones};
use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::cycle::WEEKDAYS;
use super::rrule::{Freq, Recurrence, Rrule, weekday_code};
use super::{Schedule, ScheduleRule};

const YEARS: i64 = 3;

#[derive(Clone, Debug)]
struct RuleCase {
    freq: Freq,
    interval: u32,
    by_day: Vec<(Option<i32>, Weekday)>,
    by_month_day: Vec<i32>,
    by_month: Vec<u32>,
    by_set_pos: Vec<i32>,
    wkst: Weekday,
    count: Option<u32>,
    start: NaiveDateTime,
}

impl RuleCase {
    fn text(&self) -> String {
        let freq = match self.freq {
            Freq::Daily => "DAILY",
            Freq::Weekly => "WEEKLY",
            Freq::Monthly => "MONTHLY",
            Freq::Yearly => "YEARLY",
        };
        let mut parts = vec![
            format!("FREQ={freq}"),
            format!("INTERVAL={}", self.interval),
        ];
        let join = |v: Vec<String>| v.join(",");
        if !self.by_day.is_empty() {
            let days = self.by_day.iter().map(|(n, d)| match n {
                Some(n) => format!("{n}{}", weekday_code(*d)),
                None => weekday_code(*d).to_string(),
            });
            parts.push(format!("BYDAY={}", join(days.collect())));
        }
        if !self.by_month_day.is_empty() {
            let days = self.by_month_day.iter().map(i32::to_string).collect();
            parts.push(format!("BYMONTHDAY={}", join(days)));
        }
        if !self.by_month.is_empty() {
            let months = self.by_month.iter().map(u32::to_string).collect();
            parts.push(format!("BYMONTH={}", join(months)));
        }
        if !self.by_set_pos.is_empty() {
            let pos = self.by_set_pos.iter().map(i32::to_string).collect();
            parts.push(format!("BYSETPOS={}", join(pos)));
        }
        parts.push(format!("WKST={}", weekday_code(self.wkst)));
        if let Some(count) = self.count {
            parts.push(format!("COUNT={count}"));
        }
        parts.join(";")
    }

    /// True when none of BYDAY, BYMONTHDAY is given: the start supplies the day.
    fn no_day_parts(&self) -> bool {
        self.by_day.is_empty() && self.by_month_day.is_empty()
    }
}

fn days_of_month(date: NaiveDate) -> Vec<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap();
    first
        .iter_days()
        .take_while(|d| d.month() == date.month())
        .collect()
}

fn days_of_year(date: NaiveDate) -> Vec<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap();
    first
        .iter_days()
        .take_while(|d| d.year() == date.year())
        .collect()
}

fn week_of(date: NaiveDate, wkst: Weekday) -> Vec<NaiveDate> {
    let mut first = date;
    while first.weekday() != wkst {
        first = first.pred_opt().unwrap();
    }
    first.iter_days().take(7).collect()
}

/// The oracle's period key (which period a day is in) and whether it is an INTERVAL-th one.
fn period(case: &RuleCase, day: NaiveDate) -> (i64, bool) {
    let start = case.start.date();
    let units = match case.freq {
        Freq::Daily => (day - start).num_days(),
        Freq::Weekly => (week_of(day, case.wkst)[0] - week_of(start, case.wkst)[0]).num_days() / 7,
        Freq::Monthly => {
            (day.year() * 12 + day.month() as i32 - start.year() * 12 - start.month() as i32).into()
        }
        Freq::Yearly => (day.year() - start.year()).into(),
    };
    (units, units.rem_euclid(case.interval.into()) == 0)
}

fn period_days(case: &RuleCase, day: NaiveDate) -> Vec<NaiveDate> {
    match case.freq {
        Freq::Daily => vec![day],
        Freq::Weekly => week_of(day, case.wkst),
        Freq::Monthly => days_of_month(day),
        Freq::Yearly => days_of_year(day),
    }
}

/// Whether `day` passes every BY part (before BYSETPOS), by the definitions.
fn passes(case: &RuleCase, day: NaiveDate) -> bool {
    let start = case.start.date();
    let mut months = case.by_month.clone();
    let mut month_days = case.by_month_day.clone();
    let mut weekdays: Vec<Weekday> = case
        .by_day
        .iter()
        .filter(|(n, _)| n.is_none())
        .map(|(_, d)| *d)
        .collect();
    if case.no_day_parts() {
        match case.freq {
            Freq::Yearly if months.is_empty() => {
                months.push(start.month());
                month_days.push(start.day() as i32);
            }
            Freq::Yearly | Freq::Monthly => month_days.push(start.day() as i32),
            Freq::Weekly => weekdays.push(start.weekday()),
            Freq::Daily => {}
        }
    }
    let month = days_of_month(day);
    let month_day_ok = month_days.is_empty()
        || month_days.iter().any(|&n| {
            let index = if n > 0 {
                n as i64 - 1
            } else {
                month.len() as i64 + n as i64
            };
            usize::try_from(index).ok().and_then(|i| month.get(i)) == Some(&day)
        });
    let nth: Vec<(i32, Weekday)> = case
        .by_day
        .iter()
        .filter_map(|(n, d)| n.map(|n| (n, *d)))
        .collect();
    let nth_ok = nth.is_empty() || {
        let range = if case.freq == Freq::Monthly || !case.by_month.is_empty() {
            month.clone()
        } else {
            days_of_year(day)
        };
        nth.iter().any(|&(n, weekday)| {
            let same: Vec<&NaiveDate> = range.iter().filter(|d| d.weekday() == weekday).collect();
            let index = if n > 0 {
                n as i64 - 1
            } else {
                same.len() as i64 + n as i64
            };
            usize::try_from(index).ok().and_then(|i| same.get(i)) == Some(&&day)
        })
    };
    (months.is_empty() || months.contains(&day.month()))
        && month_day_ok
        && (weekdays.is_empty() || weekdays.contains(&day.weekday()))
        && nth_ok
}

/// The oracle's occurrence dates from the start over [`YEARS`] years.
fn oracle_dates(case: &RuleCase) -> Vec<NaiveDate> {
    let start = case.start.date();
    let end = start + TimeDelta::days(366 * YEARS);
    let mut picked_by_period: HashMap<i64, Vec<NaiveDate>> = HashMap::new();
    let mut out = Vec::new();
    for day in start.iter_days().take_while(|d| *d < end) {
        let (key, on) = period(case, day);
        if !on {
            continue;
        }
        let picked = picked_by_period.entry(key).or_insert_with(|| {
            let passing: Vec<NaiveDate> = period_days(case, day)
                .into_iter()
                .filter(|d| passes(case, *d))
                .collect();
            if case.by_set_pos.is_empty() {
                return passing;
            }
            let len = passing.len() as i64;
            case.by_set_pos
                .iter()
                .filter_map(|&p| {
                    let index = if p > 0 { p as i64 - 1 } else { len + p as i64 };
                    usize::try_from(index)
                        .ok()
                        .and_then(|i| passing.get(i).copied())
                })
                .collect()
        });
        if picked.contains(&day) {
            out.push(day);
        }
    }
    let time = case.start.time();
    out.retain(|d| d.and_time(time) >= case.start);
    if let Some(count) = case.count {
        out.truncate(count as usize);
    }
    out
}

/// RFC 5545 §3.3.5 from chrono's own answers.
fn oracle_instant(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(a, b) => a.to_utc().min(b.to_utc()),
        LocalResult::None => {
            let day_before = tz.from_utc_datetime(&(wall - TimeDelta::days(1)));
            let offset = day_before.offset().fix().local_minus_utc();
            (wall - TimeDelta::seconds(offset.into())).and_utc()
        }
    }
}

fn rule_case() -> impl Strategy<Value = RuleCase> {
    let freq = prop::sample::select(vec![Freq::Daily, Freq::Weekly, Freq::Monthly, Freq::Yearly]);
    let interval = prop_oneof![Just(1u32), 1u32..=4];
    let weekday = (0usize..7).prop_map(|i| WEEKDAYS[i]);
    let ordinal = prop::option::of(prop::sample::select(vec![
        1, 2, 3, 4, 5, -1, -2, -5, 20, -53,
    ]));
    let by_day = prop::collection::vec((ordinal, weekday.clone()), 0..3);
    let month_day = prop::sample::select(vec![1, 2, 13, 15, 28, 29, 30, 31, -1, -7]);
    let by_month_day = prop::collection::vec(month_day, 0..3);
    let by_month = prop::collection::vec(1u32..=12, 0..3);
    let set_pos = prop::sample::select(vec![1, 2, -1, -2]);
    let by_set_pos = prop::collection::vec(set_pos, 0..2);
    let count = prop::option::of(1u32..40);
    let start_day = (0i64..3650)
        .prop_map(|d| NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + TimeDelta::days(d));
    let hour = prop_oneof![0u32..24, 0u32..4];
    let minute = prop::sample::select(vec![0u32, 15, 30, 45]);
    let start = (start_day, hour, minute)
        .prop_map(|(d, h, m)| d.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap()));
    (
        freq,
        interval,
        by_day,
        by_month_day,
        by_month,
        by_set_pos,
        weekday,
        count,
        start,
    )
        .prop_map(
            |(
                freq,
                interval,
                mut by_day,
                mut by_month_day,
                by_month,
                by_set_pos,
                wkst,
                count,
                start,
            )| {
                // RFC 5545: ordinals only with MONTHLY/YEARLY; no BYMONTHDAY with WEEKLY.
                if !matches!(freq, Freq::Monthly | Freq::Yearly) {
                    by_day.iter_mut().for_each(|(n, _)| *n = None);
                }
                if freq == Freq::Weekly {
                    by_month_day.clear();
                }
                RuleCase {
                    freq,
                    interval,
                    by_day,
                    by_month_day,
                    by_month,
                    by_set_pos,
                    wkst,
                    count,
                    start,
                }
            },
        )
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn rrule_schedules_match_the_day_walking_oracle(case in rule_case(), tz in zones()) {
        let text = case.text();
        let rule = Rrule::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let recurrence = Recurrence { rule, start: case.start, exdates: vec![], rdates: vec![] };
        let schedule = Schedule::new(vec![ScheduleRule::Recurrence(Box::new(recurrence))], tz, vec![]);
        let start = case.start.date();
        let end = start + TimeDelta::days(366 * YEARS);
        let from = oracle_instant(tz, start.and_time(NaiveTime::MIN));
        let fast: Vec<(String, DateTime<Utc>)> = schedule
            .fires_from(from)
            .take_while(|f| f.fires_at.date_naive() < end)
            .map(|f| (f.cycle.to_string(), f.fires_at.to_utc()))
            .collect();
        let time = case.start.time();
        let expected: Vec<(String, DateTime<Utc>)> = oracle_dates(&case)
            .into_iter()
            .map(|d| (d.to_string(), oracle_instant(tz, d.and_time(time))))
            .collect();
        prop_assert_eq!(fast, expected, "{} from {} in {}", text, case.start, tz);
    }
}
