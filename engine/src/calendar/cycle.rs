//! Cycles ("YYYY-MM") and the weekday arithmetic they are keyed to.
//!
//! A cycle is one calendar month. Its anchor dates (Patch Tuesday, the n-th weekday, the first
//! of the month) are pure functions of the cycle, computed here without any time zone: a date
//! is a date everywhere.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first year a [`Cycle`] can be parsed with (four digits, "0001-01").
pub const MIN_YEAR: i32 = 1;
/// The last year a [`Cycle`] can be parsed with; schedules stop iterating after it.
pub const MAX_YEAR: i32 = 9999;

/// One monthly cycle, identified as "YYYY-MM". Ordered by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cycle {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

/// Why a cycle id did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CycleError {
    #[error("cycle `{0}` is not of the form YYYY-MM (e.g. 2026-03)")]
    Format(String),
    #[error("month {month:02} in cycle `{text}` is out of range (01-12)")]
    Month { text: String, month: u32 },
    #[error("year 0000 in cycle `{0}` is out of range (0001-9999)")]
    Year(String),
}

impl Cycle {
    /// The cycle, or `None` when the month is not in 1..=12 or the year not in 1..=9999.
    pub fn new(year: i32, month: u32) -> Option<Cycle> {
        let valid = (1..=12).contains(&month) && (MIN_YEAR..=MAX_YEAR).contains(&year);
        valid.then_some(Cycle { year, month })
    }

    /// The cycle (month) a date belongs to.
    pub fn of(date: NaiveDate) -> Cycle {
        Cycle {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The next month.
    pub fn succ(self) -> Cycle {
        Cycle::from_index(self.index() + 1)
    }

    /// The previous month.
    pub fn pred(self) -> Cycle {
        Cycle::from_index(self.index() - 1)
    }

    /// The first day of the month.
    ///
    /// # Panics
    /// If the year is outside chrono's range (about ±262,000) or the month is not 1..=12.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("cycle within chrono's range")
    }

    /// The last day of the month.
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
        }
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Cycle {
    type Err = CycleError;

    fn from_str(text: &str) -> Result<Cycle, CycleError> {
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
                (Cycle { year, month }, date(year, month, day))
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
        let feb = Cycle {
            year: 2024,
            month: 2,
        };
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
        let march_2026 = Cycle {
            year: 2026,
            month: 3,
        }; // starts on a Sunday, 31 days
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
        let feb_2026 = Cycle {
            year: 2026,
            month: 2,
        };
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
        let mut cycle = Cycle {
            year: 2000,
            month: 1,
        };
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
        assert_eq!(
            cycle,
            Cycle {
                year: 2026,
                month: 3
            }
        );
        assert_eq!(cycle.to_string(), "2026-03");
        assert_eq!(
            Cycle {
                year: 2026,
                month: 12
            }
            .succ()
            .to_string(),
            "2027-01"
        );
        assert_eq!(
            Cycle {
                year: 2027,
                month: 1
            }
            .pred()
            .to_string(),
            "2026-12"
        );
        assert!(
            Cycle {
                year: 2026,
                month: 12
            } < Cycle {
                year: 2027,
                month: 1
            }
        );
        assert!(
            Cycle {
                year: 2026,
                month: 2
            } < Cycle {
                year: 2026,
                month: 10
            }
        );
        assert_eq!(cycle.last_day(), date(2026, 3, 31));
        assert_eq!(
            Cycle {
                year: 2024,
                month: 2
            }
            .last_day(),
            date(2024, 2, 29)
        );
        assert_eq!(
            Cycle::of(date(2026, 7, 31)),
            Cycle {
                year: 2026,
                month: 7
            }
        );
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
            "cycle `2026-3` is not of the form YYYY-MM (e.g. 2026-03)"
        );
        assert!(err("26-03").contains("YYYY-MM"));
        assert!(err("2026/03").contains("YYYY-MM"));
        assert!(err("+026-03").contains("YYYY-MM"));
        assert!(err("").contains("YYYY-MM"));
        assert!(err("0000-01").contains("out of range"));
    }

    #[test]
    fn cycle_serde_round_trip() {
        let cycle = Cycle {
            year: 2026,
            month: 12,
        };
        let json = serde_json::to_string(&cycle).unwrap();
        assert_eq!(json, "\"2026-12\"");
        assert_eq!(serde_json::from_str::<Cycle>(&json).unwrap(), cycle);
        assert!(serde_json::from_str::<Cycle>("\"2026-13\"").is_err());
    }
}
