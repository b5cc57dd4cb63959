//! Cycles ("YYYY-MM" or "YYYY-MM-DD") and the weekday arithmetic they are keyed to.
//!
//! A cycle is the period its schedule entry repeats on:
//! - a **month cycle** ("YYYY-MM") for anchored entries (`at: patch_tuesday-7d 09:00`), whose
//!   fire is keyed to the month however far an offset moves it;
//! - a **day cycle** ("YYYY-MM-DD") for cron and RRULE entries: the local date of the fire, so
//!   a weekly rule fires every week and a daily one every day. A day is the finest period a
//!   cycle can have: a rule that matches twice on one date is refused at validation.
//!
//! Either way a cycle belongs to a month (`year`, `month`): the month its calendar anchors
//! (Patch Tuesday, the n-th weekday, the first of the month) are resolved in. Those dates are
//! pure functions of the month, computed here without any time zone: a date is a date
//! everywhere.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first year a [`Cycle`] can be parsed with (four digits, "0001-01").
pub const MIN_YEAR: i32 = 1;
/// The last year a [`Cycle`] can be parsed with; schedules stop iterating after it.
pub const MAX_YEAR: i32 = 9999;

/// One cycle: a month ("YYYY-MM") or a day ("YYYY-MM-DD"). Cycles of one kind are ordered by
/// time; a month sorts before the days in it (one schedule never mixes the kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cycle {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    /// The day of the month (a valid date) for a day cycle; `None` for a month cycle.
    pub day: Option<u32>,
}

/// Why a cycle id did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CycleError {
    #[error("cycle `{0}` is not of the form YYYY-MM or YYYY-MM-DD (e.g. 2026-03, 2026-03-04)")]
    Format(String),
    #[error("month {month:02} in cycle `{text}` is out of range (01-12)")]
    Month { text: String, month: u32 },
    #[error("year 0000 in cycle `{0}` is out of range (0001-9999)")]
    Year(String),
    #[error("cycle `{0}` is not a date")]
    Day(String),
}

impl Cycle {
    /// The month cycle, or `None` when the month is not in 1..=12 or the year not in 1..=9999.
    pub fn new(year: i32, month: u32) -> Option<Cycle> {
        let valid = (1..=12).contains(&month) && (MIN_YEAR..=MAX_YEAR).contains(&year);
        valid.then_some(Cycle {
            year,
            month,
            day: None,
        })
    }

    /// The month cycle a date belongs to.
    pub fn of(date: NaiveDate) -> Cycle {
        Cycle {
            year: date.year(),
            month: date.month(),
            day: None,
        }
    }

    /// The day cycle of a date (the cycle of a cron or RRULE fire on that local date).
    pub fn on(date: NaiveDate) -> Cycle {
        Cycle {
            day: Some(date.day()),
            ..Cycle::of(date)
        }
    }

    /// The date of a day cycle; `None` for a month cycle.
    pub fn date(self) -> Option<NaiveDate> {
        self.day
            .and_then(|day| NaiveDate::from_ymd_opt(self.year, self.month, day))
    }

    /// True for a day cycle ("YYYY-MM-DD").
    pub fn is_day(self) -> bool {
        self.day.is_some()
    }

    /// The month cycle this cycle belongs to (itself for a month cycle).
    pub fn month_cycle(self) -> Cycle {
        Cycle { day: None, ..self }
    }

    /// The first date of the cycle: its day, or the first of its month.
    pub fn start_date(self) -> NaiveDate {
        self.date().unwrap_or_else(|| self.first_day())
    }

    /// The next month (as a month cycle).
    pub fn succ(self) -> Cycle {
        Cycle::from_index(self.index() + 1)
    }

    /// The previous month (as a month cycle).
    pub fn pred(self) -> Cycle {
        Cycle::from_index(self.index() - 1)
    }

    /// The first day of the cycle's month.
    ///
    /// # Panics
    /// If the year is outside chrono's range (about ±262,000) or the month is not 1..=12.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("cycle within chrono's range")
    }

    /// The last day of the cycle's month.
    pub fn last_day(self) -> NaiveDate {
        self.succ()
            .first_day()
            .pred_opt()
            .expect("cycle within chrono's range")
    }

    /// Months since year 0, so that cycles can be stepped and compared as integers.
    pub(crate) fn index(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }

    pub(crate) fn from_index(index: i64) -> Cycle {
        let year = index.div_euclid(12);
        Cycle {
            year: i32::try_from(year).expect("cycle year fits in i32"),
            month: u32::try_from(index.rem_euclid(12)).expect("0..12") + 1,
            day: None,
        }
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)?;
        match self.day {
            Some(day) => write!(f, "-{day:02}"),
            None => Ok(()),
        }
    }
}

impl FromStr for Cycle {
    type Err = CycleError;

    fn from_str(text: &str) -> Result<Cycle, CycleError> {
        if text.len() == 10 {
            let month: Cycle = text[..7].parse()?;
            return parse_day(text, month);
        }
        let format_error = || CycleError::Format(text.to_owned());
        let (year, month) = text.split_once('-').ok_or_else(format_error)?;
        let well_formed = year.len() == 4
            && month.len() == 2
            && year
                .bytes()
                .chain(month.bytes())
                .all(|b| b.is_ascii_digit());
        if !well_formed {
            return Err(format_error());
        }
        let year: i32 = year.parse().map_err(|_| format_error())?;
        let month: u32 = month.parse().map_err(|_| format_error())?;
        if !(1..=12).contains(&month) {
            return Err(CycleError::Month {
                text: text.to_owned(),
                month,
            });
        }
        Cycle::new(year, month).ok_or_else(|| CycleError::Year(text.to_owned()))
    }
}

/// "YYYY-MM-DD" given its month part, already parsed.
fn parse_day(text: &str, month: Cycle) -> Result<Cycle, CycleError> {
    let day = text[7..]
        .strip_prefix('-')
        .filter(|d| d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| CycleError::Format(text.to_owned()))?;
    let day: u32 = day
        .parse()
        .map_err(|_| CycleError::Format(text.to_owned()))?;
    let date = NaiveDate::from_ymd_opt(month.year, month.month, day)
        .ok_or_else(|| CycleError::Day(text.to_owned()))?;
    Ok(Cycle::on(date))
}

impl Serialize for Cycle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cycle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cycle, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which occurrence of a weekday in a month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

impl Nth {
    /// All values, in the order they are written in docs and suggestions.
    pub const ALL: [Nth; 5] = [Nth::First, Nth::Second, Nth::Third, Nth::Fourth, Nth::Last];

    /// The spelling used in time expressions: "first" .. "fourth", "last".
    pub fn name(self) -> &'static str {
        match self {
            Nth::First => "first",
            Nth::Second => "second",
            Nth::Third => "third",
            Nth::Fourth => "fourth",
            Nth::Last => "last",
        }
    }

    /// The inverse of [`Nth::name`].
    pub fn from_name(name: &str) -> Option<Nth> {
        Nth::ALL.into_iter().find(|nth| nth.name() == name)
    }
}

/// The spelling of a weekday in time expressions: "monday" .. "sunday".
pub fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

/// All weekdays, Monday first.
pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// The inverse of [`weekday_name`].
pub fn weekday_from_name(name: &str) -> Option<Weekday> {
    WEEKDAYS.into_iter().find(|day| weekday_name(*day) == name)
}

/// The `nth` `weekday` of the cycle's month, e.g. the second Tuesday.
pub fn nth_weekday(cycle: Cycle, nth: Nth, weekday: Weekday) -> NaiveDate {
    let weeks_in = |n: u32| {
        let first = cycle.first_day();
        let ahead = days_until(first.weekday(), weekday);
        first.with_day(1 + ahead + 7 * n).expect("day 1..=28")
    };
    match nth {
        Nth::First => weeks_in(0),
        Nth::Second => weeks_in(1),
        Nth::Third => weeks_in(2),
        Nth::Fourth => weeks_in(3),
        Nth::Last => {
            let last = cycle.last_day();
            let back = days_until(weekday, last.weekday());
            last.with_day(last.day() - back)
                .expect("day within the month")
        }
    }
}

/// Microsoft's Patch Tuesday: the second Tuesday of the month.
pub fn patch_tuesday(cycle: Cycle) -> NaiveDate {
    nth_weekday(cycle, Nth::Second, Weekday::Tue)
}

/// Days from `from` forward to the next `to` (0 when they are the same weekday).
fn days_until(from: Weekday, to: Weekday) -> u32 {
    (to.num_days_from_monday() + 7 - from.num_days_from_monday()) % 7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Microsoft's published release days, 2024-2026.
    const RELEASE_DAYS: [(i32, [u32; 12]); 3] = [
        (2024, [9, 13, 12, 9, 14, 11, 9, 13, 10, 8, 12, 10]),
        (2025, [14, 11, 11, 8, 13, 10, 8, 12, 9, 14, 11, 9]),
        (2026, [13, 10, 10, 14, 12, 9, 14, 11, 8, 13, 10, 8]),
    ];

    fn cycles_2024_2026() -> impl Iterator<Item = (Cycle, NaiveDate)> {
        RELEASE_DAYS.into_iter().flat_map(|(year, days)| {
            (1..=12).map(move |month| {
                let day = days[month as usize - 1];
                (Cycle::new(year, month).unwrap(), date(year, month, day))
            })
        })
    }

    #[test]
    fn patch_tuesday_matches_microsofts_release_days_2024_to_2026() {
        for (cycle, released) in cycles_2024_2026() {
            assert_eq!(patch_tuesday(cycle), released, "cycle {cycle}");
        }
    }

    #[test]
    fn second_saturday_falls_before_patch_tuesday_in_19_of_36_months() {
        let before: Vec<Cycle> = cycles_2024_2026()
            .filter(|(cycle, pt)| nth_weekday(*cycle, Nth::Second, Weekday::Sat) < *pt)
            .map(|(cycle, _)| cycle)
            .collect();
        assert_eq!(before.len(), 19, "{before:?}");
        // February 2024: Patch Tuesday is the 13th, the second Saturday the 10th.
        let feb = Cycle::new(2024, 2).unwrap();
        assert_eq!(
            nth_weekday(feb, Nth::Second, Weekday::Sat),
            date(2024, 2, 10)
        );
        assert!(before.contains(&feb));
        // It happens exactly when Patch Tuesday is on the 11th or later.
        for (cycle, pt) in cycles_2024_2026() {
            assert_eq!(before.contains(&cycle), pt.day() >= 11, "{cycle}");
        }
    }

    #[test]
    fn nth_weekday_covers_first_to_last() {
        let march_2026 = Cycle::new(2026, 3).unwrap(); // starts on a Sunday, 31 days
        assert_eq!(
            nth_weekday(march_2026, Nth::First, Weekday::Sun),
            date(2026, 3, 1)
        );
        assert_eq!(
            nth_weekday(march_2026, Nth::First, Weekday::Sat),
            date(2026, 3, 7)
        );
        assert_eq!(
            nth_weekday(march_2026, Nth::Third, Weekday::Mon),
            date(2026, 3, 16)
        );
        assert_eq!(
            nth_weekday(march_2026, Nth::Fourth, Weekday::Sat),
            date(2026, 3, 28)
        );
        assert_eq!(
            nth_weekday(march_2026, Nth::Last, Weekday::Tue),
            date(2026, 3, 31)
        );
        assert_eq!(
            nth_weekday(march_2026, Nth::Last, Weekday::Sun),
            date(2026, 3, 29)
        );
        let feb_2026 = Cycle::new(2026, 2).unwrap();
        assert_eq!(
            nth_weekday(feb_2026, Nth::Last, Weekday::Sat),
            date(2026, 2, 28)
        );
        assert_eq!(
            nth_weekday(feb_2026, Nth::Last, Weekday::Sun),
            date(2026, 2, 22)
        );
    }

    #[test]
    fn nth_weekday_agrees_with_counting_days_for_a_century() {
        let mut cycle = Cycle::new(2000, 1).unwrap();
        while cycle.year < 2100 {
            for weekday in WEEKDAYS {
                let matching: Vec<NaiveDate> = cycle
                    .first_day()
                    .iter_days()
                    .take_while(|d| d.month() == cycle.month)
                    .filter(|d| d.weekday() == weekday)
                    .collect();
                for (n, nth) in Nth::ALL[..4].iter().enumerate() {
                    assert_eq!(nth_weekday(cycle, *nth, weekday), matching[n]);
                }
                assert_eq!(
                    nth_weekday(cycle, Nth::Last, weekday),
                    *matching.last().unwrap()
                );
            }
            cycle = cycle.succ();
        }
    }

    #[test]
    fn cycle_display_parse_and_order() {
        let cycle: Cycle = "2026-03".parse().unwrap();
        assert_eq!(cycle, Cycle::new(2026, 3).unwrap());
        assert_eq!(cycle.to_string(), "2026-03");
        assert_eq!(Cycle::new(2026, 12).unwrap().succ().to_string(), "2027-01");
        assert_eq!(Cycle::new(2027, 1).unwrap().pred().to_string(), "2026-12");
        assert!(Cycle::new(2026, 12).unwrap() < Cycle::new(2027, 1).unwrap());
        assert!(Cycle::new(2026, 2).unwrap() < Cycle::new(2026, 10).unwrap());
        assert_eq!(cycle.last_day(), date(2026, 3, 31));
        assert_eq!(Cycle::new(2024, 2).unwrap().last_day(), date(2024, 2, 29));
        assert_eq!(Cycle::of(date(2026, 7, 31)), Cycle::new(2026, 7).unwrap());
    }

    #[test]
    fn cycle_parse_errors() {
        let err = |text: &str| text.parse::<Cycle>().unwrap_err().to_string();
        assert_eq!(
            err("2026-13"),
            "month 13 in cycle `2026-13` is out of range (01-12)"
        );
        assert_eq!(
            err("2026-00"),
            "month 00 in cycle `2026-00` is out of range (01-12)"
        );
        assert_eq!(
            err("2026-3"),
            "cycle `2026-3` is not of the form YYYY-MM or YYYY-MM-DD (e.g. 2026-03, 2026-03-04)"
        );
        assert_eq!(err("2026-02-30"), "cycle `2026-02-30` is not a date");
        assert!(err("2026-02-3x").contains("YYYY-MM-DD"));
        assert!(err("2026-13-01").contains("out of range"));
        assert!(err("2026-02-003").contains("YYYY-MM-DD"));
        assert!(err("26-03").contains("YYYY-MM"));
        assert!(err("2026/03").contains("YYYY-MM"));
        assert!(err("+026-03").contains("YYYY-MM"));
        assert!(err("").contains("YYYY-MM"));
        assert!(err("0000-01").contains("out of range"));
    }

    #[test]
    fn day_cycles_display_parse_and_belong_to_their_month() {
        let day: Cycle = "2026-03-08".parse().unwrap();
        assert_eq!(day, Cycle::on(date(2026, 3, 8)));
        assert_eq!(day.to_string(), "2026-03-08");
        assert!(day.is_day());
        assert_eq!(day.date(), Some(date(2026, 3, 8)));
        assert_eq!(day.start_date(), date(2026, 3, 8));
        assert_eq!(day.month_cycle(), Cycle::new(2026, 3).unwrap());
        assert_eq!(patch_tuesday(day), date(2026, 3, 10));
        let month = Cycle::new(2026, 3).unwrap();
        assert!(!month.is_day());
        assert_eq!(month.date(), None);
        assert_eq!(month.start_date(), date(2026, 3, 1));
        // Days are ordered by date, across month and year ends.
        let dates = ["2026-12-31", "2027-01-01", "2026-03-09", "2026-03-08"];
        let mut cycles: Vec<Cycle> = dates.iter().map(|d| d.parse().unwrap()).collect();
        cycles.sort();
        let sorted: Vec<String> = cycles.iter().map(Cycle::to_string).collect();
        assert_eq!(
            sorted,
            ["2026-03-08", "2026-03-09", "2026-12-31", "2027-01-01"]
        );
        let json = serde_json::to_string(&day).unwrap();
        assert_eq!(json, "\"2026-03-08\"");
        assert_eq!(serde_json::from_str::<Cycle>(&json).unwrap(), day);
    }

    #[test]
    fn cycle_serde_round_trip() {
        let cycle = Cycle::new(2026, 12).unwrap();
        let json = serde_json::to_string(&cycle).unwrap();
        assert_eq!(json, "\"2026-12\"");
        assert_eq!(serde_json::from_str::<Cycle>(&json).unwrap(), cycle);
        assert!(serde_json::from_str::<Cycle>("\"2026-13\"").is_err());
    }
}
