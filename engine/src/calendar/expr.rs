//! Time expressions: `ANCHOR[±Nd][±Nh][±Nm][ HH:MM]` (DESIGN §3).
//!
//! - Anchors: `patch_tuesday` (second Tuesday of the cycle's month), `<nth>_<weekday>` with nth
//!   in first|second|third|fourth|last, `month_start`, and `start` (the instant a run started).
//! - Offsets are written in the order days, hours, minutes, each at most once. `±Nd` moves by
//!   calendar days in the runbook's zone keeping the wall clock; `±Nh`/`±Nm` are exact
//!   durations added last.
//! - `HH:MM` sets the wall-clock time on the date reached by the day offset. Without it a
//!   calendar anchor means 00:00 and `start` keeps its own wall-clock time.
//! - The cycle stays the anchor's month whatever the offsets: `patch_tuesday-7d` of cycle
//!   2026-03 is 2026-03-03 and `last_friday+5d` of 2026-12 is 2027-01-04, both still in their
//!   anchor's cycle.
//!
//! Wall-clock times are made instants by [`local_to_instant`] (RFC 5545 §3.3.5).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cycle::{
    Cycle, Nth, WEEKDAYS, nth_weekday, patch_tuesday, weekday_from_name, weekday_name,
};
use super::zone::local_to_instant;

/// The largest offset number accepted, in any unit (9999 days is over 27 years).
pub const MAX_OFFSET: i64 = 9999;

/// What a time expression is measured from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// The second Tuesday of the cycle's month.
    PatchTuesday,
    /// The n-th weekday of the cycle's month, e.g. `third_saturday`.
    Nth(Nth, Weekday),
    /// The first day of the cycle's month.
    MonthStart,
    /// The instant the run started (emergency timelines).
    Start,
}

impl Anchor {
    /// The anchor's date in a cycle; `None` for `start`, which is not a calendar anchor.
    pub fn date(self, cycle: Cycle) -> Option<NaiveDate> {
        match self {
            Anchor::PatchTuesday => Some(patch_tuesday(cycle)),
            Anchor::Nth(nth, weekday) => Some(nth_weekday(cycle, nth, weekday)),
            Anchor::MonthStart => Some(cycle.first_day()),
            Anchor::Start => None,
        }
    }

    fn from_name(name: &str) -> Option<Anchor> {
        match name {
            "patch_tuesday" => Some(Anchor::PatchTuesday),
            "month_start" => Some(Anchor::MonthStart),
            "start" => Some(Anchor::Start),
            _ => {
                let (nth, weekday) = name.split_once('_')?;
                Some(Anchor::Nth(
                    Nth::from_name(nth)?,
                    weekday_from_name(weekday)?,
                ))
            }
        }
    }

    /// Every anchor spelling, for suggestions.
    fn all_names() -> impl Iterator<Item = String> {
        let fixed = ["patch_tuesday", "month_start", "start"].map(String::from);
        let nth = Nth::ALL.into_iter().flat_map(|nth| {
            WEEKDAYS
                .into_iter()
                .map(move |day| format!("{}_{}", nth.name(), weekday_name(day)))
        });
        fixed.into_iter().chain(nth)
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anchor::PatchTuesday => f.write_str("patch_tuesday"),
            Anchor::Nth(nth, day) => write!(f, "{}_{}", nth.name(), weekday_name(*day)),
            Anchor::MonthStart => f.write_str("month_start"),
            Anchor::Start => f.write_str("start"),
        }
    }
}

/// A parsed time expression. `Display` prints the canonical form (zero offsets dropped).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimeExpr {
    anchor: Anchor,
    days: i64,
    hours: i64,
    minutes: i64,
    time: Option<NaiveTime>,
}

/// A time expression that did not parse: where (0-based byte offset in the expression) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TimeExprError {
    pub offset: usize,
    pub message: String,
}

/// The context a time expression is resolved in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchorContext {
    pub cycle: Cycle,
    /// When the run started; needed only by `start`-anchored expressions.
    pub start: Option<DateTime<Utc>>,
}

/// Why a time expression could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("`{expr}` is anchored to `start`, but no start time was given")]
    MissingStart { expr: String },
}

impl TimeExpr {
    /// Parses `ANCHOR[±Nd][±Nh][±Nm][ HH:MM]`; errors point at the byte where the problem starts.
    pub fn parse(text: &str) -> Result<TimeExpr, TimeExprError> {
        Parser { text, pos: 0 }.expr()
    }

    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    /// The day offset (negative: earlier).
    pub fn days(&self) -> i64 {
        self.days
    }

    /// The exact-duration part of the offset (`±Nh±Nm`).
    pub fn duration(&self) -> TimeDelta {
        TimeDelta::hours(self.hours) + TimeDelta::minutes(self.minutes)
    }

    /// The explicit `HH:MM`, if written.
    pub fn time(&self) -> Option<NaiveTime> {
        self.time
    }

    /// Whether the expression is measured from the run's start rather than the calendar.
    pub fn is_start_anchored(&self) -> bool {
        self.anchor == Anchor::Start
    }

    /// The instant this expression denotes in `tz` for the given cycle (and start).
    pub fn resolve(&self, tz: Tz, ctx: &AnchorContext) -> Result<DateTime<Tz>, ResolveError> {
        let base = match self.anchor.date(ctx.cycle) {
            Some(date) => self.on_date(tz, date, self.time.unwrap_or(NaiveTime::MIN)),
            None => {
                let start = ctx.start.ok_or_else(|| ResolveError::MissingStart {
                    expr: self.to_string(),
                })?;
                self.relative_to_start(tz, start)
            }
        };
        Ok(base + self.duration())
    }

    /// `date` moved by the day offset, at the wall-clock `time`.
    fn on_date(&self, tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Tz> {
        let date = date + TimeDelta::days(self.days);
        local_to_instant(tz, date.and_time(time))
    }

    /// `start` moved by the day offset (wall clock kept, or set by `HH:MM`).
    fn relative_to_start(&self, tz: Tz, start: DateTime<Utc>) -> DateTime<Tz> {
        let local = start.with_timezone(&tz);
        if self.days == 0 && self.time.is_none() {
            return local;
        }
        let naive = local.naive_local();
        self.on_date(tz, naive.date(), self.time.unwrap_or(naive.time()))
    }
}

impl fmt::Display for TimeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.anchor)?;
        for (value, unit) in [(self.days, 'd'), (self.hours, 'h'), (self.minutes, 'm')] {
            if value != 0 {
                write!(f, "{value:+}{unit}")?;
            }
        }
        if let Some(time) = self.time {
            write!(f, " {}", time.format("%H:%M"))?;
        }
        Ok(())
    }
}

impl FromStr for TimeExpr {
    type Err = TimeExprError;

    fn from_str(text: &str) -> Result<TimeExpr, TimeExprError> {
        TimeExpr::parse(text)
    }
}

impl Serialize for TimeExpr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TimeExpr, D::Error> {
        let text = String::deserialize(deserializer)?;
        TimeExpr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The three offset units, in the order they must be written.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Days,
    Hours,
    Minutes,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Days => "day",
            Unit::Hours => "hour",
            Unit::Minutes => "minute",
        }
    }
}

/// A hand-written recursive-descent parser over the expression's bytes.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

type Parsed<T> = Result<T, TimeExprError>;

fn fail<T>(offset: usize, message: impl Into<String>) -> Parsed<T> {
    Err(TimeExprError {
        offset,
        message: message.into(),
    })
}

impl Parser<'_> {
    fn expr(mut self) -> Parsed<TimeExpr> {
        if self.text.trim().is_empty() {
            return fail(
                0,
                "empty time expression; expected an anchor such as `patch_tuesday`",
            );
        }
        let anchor = self.anchor()?;
        let mut expr = TimeExpr {
            anchor,
            days: 0,
            hours: 0,
            minutes: 0,
            time: None,
        };
        self.offsets(&mut expr)?;
        expr.time = self.time()?;
        Ok(expr)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// Consumes the longest run of characters matching `keep`, returning it.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        let len = self.text[start..]
            .find(|c: char| !keep(c))
            .unwrap_or(self.text.len() - start);
        self.pos += len;
        &self.text[start..self.pos]
    }

    fn anchor(&mut self) -> Parsed<Anchor> {
        let start = self.pos;
        let word = self
            .take_while(|c| c.is_alphanumeric() || c == '_')
            .to_owned();
        if word.is_empty() {
            return match self.peek() {
                Some(c) if c.is_whitespace() => {
                    fail(start, "unexpected whitespace before the anchor")
                }
                _ => fail(
                    start,
                    "expected an anchor such as `patch_tuesday` or `start` first",
                ),
            };
        }
        Anchor::from_name(&word).map_or_else(|| fail(start, unknown_anchor(&word)), Ok)
    }

    fn offsets(&mut self, expr: &mut TimeExpr) -> Parsed<()> {
        let mut last: Option<Unit> = None;
        while let Some(sign @ ('+' | '-')) = self.peek() {
            let at = self.pos;
            let (value, unit) = self.offset(sign)?;
            if let Some(previous) = last {
                check_order(at, previous, unit)?;
            }
            last = Some(unit);
            match unit {
                Unit::Days => expr.days = value,
                Unit::Hours => expr.hours = value,
                Unit::Minutes => expr.minutes = value,
            }
        }
        Ok(())
    }

    /// One `±N<unit>`; the sign has been peeked, not consumed.
    fn offset(&mut self, sign: char) -> Parsed<(i64, Unit)> {
        self.pos += 1;
        let digits_at = self.pos;
        let digits = self.take_while(|c| c.is_ascii_digit()).to_owned();
        if digits.is_empty() {
            return fail(
                digits_at,
                format!("expected a number after `{sign}`, e.g. `{sign}3d`"),
            );
        }
        let value = digits.parse::<i64>().ok().filter(|v| *v <= MAX_OFFSET);
        let Some(value) = value else {
            return fail(
                digits_at,
                format!("offset {digits} is too large (at most {MAX_OFFSET})"),
            );
        };
        let unit_at = self.pos;
        let unit = self.take_while(char::is_alphabetic).to_owned();
        let unit =
            parse_unit(&unit, &format!("{sign}{digits}"), value).or_else(|m| fail(unit_at, m))?;
        Ok((if sign == '-' { -value } else { value }, unit))
    }

    fn time(&mut self) -> Parsed<Option<NaiveTime>> {
        let Some(next) = self.peek() else {
            return Ok(None);
        };
        if next != ' ' {
            return fail(
                self.pos,
                format!(
                    "unexpected `{next}`; expected an offset such as `+3d` or `-2h`, or a space and HH:MM"
                ),
            );
        }
        self.pos += 1;
        if self.peek().is_some_and(char::is_whitespace) {
            return fail(self.pos, "expected exactly one space before HH:MM");
        }
        if self.peek().is_none() {
            return fail(
                self.pos,
                "expected a time HH:MM after the space, e.g. `09:00`",
            );
        }
        let time = self.clock()?;
        match self.peek() {
            None => Ok(Some(time)),
            Some(':') => fail(self.pos, "seconds are not supported; write HH:MM"),
            Some(_) => fail(
                self.pos,
                "unexpected text after the time; an expression ends with HH:MM",
            ),
        }
    }

    /// `HH:MM`, two digits each, in range.
    fn clock(&mut self) -> Parsed<NaiveTime> {
        let start = self.pos;
        let hour = self.take_while(|c| c.is_ascii_digit()).to_owned();
        if self.peek() != Some(':') || hour.is_empty() {
            return fail(start, "expected a time HH:MM, e.g. `09:00`");
        }
        if hour.len() != 2 {
            return fail(
                start,
                format!("write the hour with two digits, e.g. `{hour:0>2}:00`"),
            );
        }
        self.pos += 1;
        let minute_at = self.pos;
        let minute = self.take_while(|c| c.is_ascii_digit()).to_owned();
        if minute.len() != 2 {
            return fail(minute_at, "write the minutes with two digits, e.g. `09:05`");
        }
        let (hour, minute): (u32, u32) = (hour.parse().unwrap_or(99), minute.parse().unwrap_or(99));
        if hour > 23 {
            return fail(start, format!("hour {hour} is out of range (00-23)"));
        }
        if minute > 59 {
            return fail(
                minute_at,
                format!("minute {minute} is out of range (00-59)"),
            );
        }
        Ok(NaiveTime::from_hms_opt(hour, minute, 0).expect("checked range"))
    }
}

/// Offsets come in the order days, hours, minutes, each at most once.
fn check_order(at: usize, previous: Unit, unit: Unit) -> Parsed<()> {
    if previous == unit {
        let name = unit.name();
        return fail(
            at,
            format!("the {name} offset is given twice; combine them into one"),
        );
    }
    if previous > unit {
        return fail(
            at,
            format!(
                "the {} offset must come before the {} offset (order: days, hours, minutes, e.g. `patch_tuesday+1d+2h+30m`)",
                unit.name(),
                previous.name()
            ),
        );
    }
    Ok(())
}

/// The unit after an offset's number; the error message suggests the right spelling.
fn parse_unit(unit: &str, written: &str, value: i64) -> Result<Unit, String> {
    let message = match unit {
        "d" => return Ok(Unit::Days),
        "h" => return Ok(Unit::Hours),
        "m" => return Ok(Unit::Minutes),
        "" => format!("missing unit after `{written}`; use d (days), h (hours) or m (minutes)"),
        "day" | "days" | "D" => format!("write days as `{written}d`"),
        "hour" | "hours" | "hr" | "hrs" | "H" => format!("write hours as `{written}h`"),
        "min" | "mins" | "minute" | "minutes" | "M" => format!("write minutes as `{written}m`"),
        "w" | "week" | "weeks" => {
            let sign = &written[..1];
            format!("weeks are not supported; write `{sign}{}d`", value * 7)
        }
        "s" | "sec" | "secs" | "second" | "seconds" => {
            "seconds are not supported; the smallest unit is m (minutes)".to_owned()
        }
        "mo" | "month" | "months" | "y" | "year" | "years" => {
            "months and years are not offsets; the cycle's month is set by the schedule".to_owned()
        }
        other => format!("unknown unit `{other}`; use d (days), h (hours) or m (minutes)"),
    };
    Err(message)
}

/// The message for an anchor that is not one, with the closest spelling when it is near.
fn unknown_anchor(word: &str) -> String {
    let lower = word.to_lowercase();
    if lower != word && Anchor::from_name(&lower).is_some() {
        return format!("anchors are written in lower case: `{lower}`");
    }
    if let Some((nth, _)) = lower.split_once('_')
        && ["fifth", "5th", "1st", "2nd", "3rd", "4th"].contains(&nth)
    {
        return format!(
            "`{nth}` is not supported; use first, second, third, fourth or last (e.g. `last_friday`)"
        );
    }
    match closest_anchor(&lower) {
        Some(name) => format!("unknown anchor `{word}`; did you mean `{name}`?"),
        None => format!(
            "unknown anchor `{word}`; use patch_tuesday, month_start, start or <nth>_<weekday> such as `second_saturday`"
        ),
    }
}

fn closest_anchor(word: &str) -> Option<String> {
    let (distance, name) = Anchor::all_names()
        .map(|name| (strsim::damerau_levenshtein(word, &name), name))
        .min()?;
    (distance <= 3 && distance * 3 <= word.len()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> TimeExpr {
        TimeExpr::parse(text).unwrap_or_else(|e| panic!("{text}: {e} at {}", e.offset))
    }

    fn error(text: &str) -> (usize, String) {
        let e = TimeExpr::parse(text).expect_err(text);
        (e.offset, e.message)
    }

    fn cycle(year: i32, month: u32) -> AnchorContext {
        AnchorContext {
            cycle: Cycle::new(year, month).unwrap(),
            start: None,
        }
    }

    fn at(expr: &str, tz: Tz, ctx: AnchorContext) -> String {
        parse(expr).resolve(tz, &ctx).unwrap().to_rfc3339()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    const NY: Tz = chrono_tz::America::New_York;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;
    const SYDNEY: Tz = chrono_tz::Australia::Sydney;

    #[test]
    fn parses_every_part() {
        let expr = parse("patch_tuesday-7d+2h-30m 09:15");
        assert_eq!(expr.anchor(), Anchor::PatchTuesday);
        assert_eq!(expr.days(), -7);
        assert_eq!(expr.duration(), TimeDelta::minutes(90));
        assert_eq!(expr.time(), NaiveTime::from_hms_opt(9, 15, 0));
        assert_eq!(
            parse("third_saturday").anchor(),
            Anchor::Nth(Nth::Third, Weekday::Sat)
        );
        assert_eq!(
            parse("last_sunday").anchor(),
            Anchor::Nth(Nth::Last, Weekday::Sun)
        );
        assert_eq!(parse("month_start+1d").anchor(), Anchor::MonthStart);
        assert!(parse("start+4h").is_start_anchored());
        assert!(!parse("patch_tuesday").is_start_anchored());
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (text, canonical) in [
            ("patch_tuesday-7d 09:00", "patch_tuesday-7d 09:00"),
            ("patch_tuesday+0d+0h 22:00", "patch_tuesday 22:00"),
            ("second_tuesday+3d", "second_tuesday+3d"),
            ("start+2h+30m", "start+2h+30m"),
            ("start-0m", "start"),
            ("month_start+10d-1h", "month_start+10d-1h"),
        ] {
            let expr = parse(text);
            assert_eq!(expr.to_string(), canonical);
            assert_eq!(parse(canonical), expr);
        }
        let json = serde_json::to_string(&parse("patch_tuesday+3d 22:00")).unwrap();
        assert_eq!(json, "\"patch_tuesday+3d 22:00\"");
        assert!(serde_json::from_str::<TimeExpr>("\"patch_tuesdy\"").is_err());
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "",
                0,
                "empty time expression; expected an anchor such as `patch_tuesday`",
            ),
            (
                "patch_tuesdya",
                0,
                "unknown anchor `patch_tuesdya`; did you mean `patch_tuesday`?",
            ),
            (
                "secnd_saturday+1d",
                0,
                "unknown anchor `secnd_saturday`; did you mean `second_saturday`?",
            ),
            (
                "Patch_Tuesday",
                0,
                "anchors are written in lower case: `patch_tuesday`",
            ),
            (
                "fifth_monday",
                0,
                "`fifth` is not supported; use first, second, third, fourth or last (e.g. `last_friday`)",
            ),
            (
                "tomorrow",
                0,
                "unknown anchor `tomorrow`; use patch_tuesday, month_start, start or <nth>_<weekday> such as `second_saturday`",
            ),
            (
                " patch_tuesday",
                0,
                "unexpected whitespace before the anchor",
            ),
            (
                "+3d",
                0,
                "expected an anchor such as `patch_tuesday` or `start` first",
            ),
            (
                "patch_tuesday+",
                14,
                "expected a number after `+`, e.g. `+3d`",
            ),
            (
                "patch_tuesday+3",
                15,
                "missing unit after `+3`; use d (days), h (hours) or m (minutes)",
            ),
            (
                "patch_tuesday+3x",
                15,
                "unknown unit `x`; use d (days), h (hours) or m (minutes)",
            ),
            ("patch_tuesday+3days", 15, "write days as `+3d`"),
            (
                "patch_tuesday+2w",
                15,
                "weeks are not supported; write `+14d`",
            ),
            (
                "patch_tuesday+99999d",
                14,
                "offset 99999 is too large (at most 9999)",
            ),
            (
                "patch_tuesday+1d+2d",
                16,
                "the day offset is given twice; combine them into one",
            ),
            (
                "patch_tuesday+2h+1d",
                16,
                "the day offset must come before the hour offset (order: days, hours, minutes, e.g. `patch_tuesday+1d+2h+30m`)",
            ),
            ("patch_tuesday 25:00", 14, "hour 25 is out of range (00-23)"),
            (
                "patch_tuesday 09:60",
                17,
                "minute 60 is out of range (00-59)",
            ),
            (
                "patch_tuesday 9:00",
                14,
                "write the hour with two digits, e.g. `09:00`",
            ),
            (
                "patch_tuesday 09:5",
                17,
                "write the minutes with two digits, e.g. `09:05`",
            ),
            (
                "patch_tuesday 0900",
                14,
                "expected a time HH:MM, e.g. `09:00`",
            ),
            (
                "patch_tuesday 09:00:30",
                19,
                "seconds are not supported; write HH:MM",
            ),
            (
                "patch_tuesday 09:00 EST",
                19,
                "unexpected text after the time; an expression ends with HH:MM",
            ),
            (
                "patch_tuesday  09:00",
                14,
                "expected exactly one space before HH:MM",
            ),
            (
                "patch_tuesday ",
                14,
                "expected a time HH:MM after the space, e.g. `09:00`",
            ),
            (
                "patch_tuesday*2",
                13,
                "unexpected `*`; expected an offset such as `+3d` or `-2h`, or a space and HH:MM",
            ),
        ];
        for (text, offset, message) in cases {
            assert_eq!(error(text), (*offset, (*message).to_owned()), "{text:?}");
        }
    }

    #[test]
    fn patch_tuesday_plus_4d_is_not_second_saturday() {
        let feb_2024 = cycle(2024, 2);
        assert_eq!(
            at("patch_tuesday+4d", NY, feb_2024),
            "2024-02-17T00:00:00-05:00"
        );
        assert_eq!(
            at("second_saturday", NY, feb_2024),
            "2024-02-10T00:00:00-05:00"
        );
        // In March 2026 (Patch Tuesday on the 10th) they coincide.
        let mar_2026 = cycle(2026, 3);
        assert_eq!(
            at("patch_tuesday+4d", NY, mar_2026),
            at("second_saturday", NY, mar_2026)
        );
    }

    #[test]
    fn offsets_cross_month_and_year_ends() {
        // Patch Tuesday 2026-03-10; a week before is still cycle 2026-03.
        assert_eq!(
            at("patch_tuesday-7d 09:00", NY, cycle(2026, 3)),
            "2026-03-03T09:00:00-05:00"
        );
        // Patch Tuesday 2026-09-08: ten days before is in August.
        assert_eq!(
            at("patch_tuesday-10d 09:00", NY, cycle(2026, 9)),
            "2026-08-29T09:00:00-04:00"
        );
        // Last Friday of December 2026 is the 25th; +10d is in January 2027.
        assert_eq!(
            at("last_friday+10d 08:00", BERLIN, cycle(2026, 12)),
            "2027-01-04T08:00:00+01:00"
        );
        // month_start-1d is the previous year's last day.
        assert_eq!(
            at("month_start-1d 23:30", BERLIN, cycle(2027, 1)),
            "2026-12-31T23:30:00+01:00"
        );
        // Hours and minutes roll over midnight and the year.
        assert_eq!(
            at("month_start-1d+3h 22:00", NY, cycle(2027, 1)),
            "2027-01-01T01:00:00-05:00"
        );
        // Leap day.
        assert_eq!(
            at("month_start+28d", NY, cycle(2024, 2)),
            "2024-02-29T00:00:00-05:00"
        );
    }

    #[test]
    fn day_offsets_keep_the_wall_clock_hour_offsets_are_exact() {
        // New York springs forward on 2026-03-08.
        let start = utc("2026-03-07T17:00:00Z"); // 12:00 EST
        let ctx = AnchorContext {
            cycle: Cycle::new(2026, 3).unwrap(),
            start: Some(start),
        };
        assert_eq!(at("start+1d", NY, ctx), "2026-03-08T12:00:00-04:00");
        assert_eq!(at("start+24h", NY, ctx), "2026-03-08T13:00:00-04:00");
        assert_eq!(at("start", NY, ctx), "2026-03-07T12:00:00-05:00");
        assert_eq!(at("start+1d 09:00", NY, ctx), "2026-03-08T09:00:00-04:00");
        assert_eq!(at("start 18:30", NY, ctx), "2026-03-07T18:30:00-05:00");
        // A day offset landing in the gap follows RFC 5545.
        let night = utc("2026-03-07T07:30:00Z"); // 02:30 EST on the 7th
        let ctx = AnchorContext {
            start: Some(night),
            ..ctx
        };
        assert_eq!(at("start+1d", NY, ctx), "2026-03-08T03:30:00-04:00");
    }

    #[test]
    fn start_keeps_its_instant_in_an_overlap() {
        // 01:30 EST, the second 01:30 of 2026-11-01: `start+1h` must not jump back an hour.
        let second = utc("2026-11-01T06:30:00Z");
        let ctx = AnchorContext {
            cycle: Cycle::new(2026, 11).unwrap(),
            start: Some(second),
        };
        assert_eq!(at("start+1h", NY, ctx), "2026-11-01T02:30:00-05:00");
        assert_eq!(at("start", NY, ctx), "2026-11-01T01:30:00-05:00");
    }

    #[test]
    fn start_needs_a_start_time() {
        let err = parse("start+2h").resolve(NY, &cycle(2026, 3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`start+2h` is anchored to `start`, but no start time was given"
        );
    }

    #[test]
    fn dst_gaps_and_overlaps_in_three_zones() {
        // New York 2026: spring forward Sun 03-08 02:00, fall back Sun 11-01 02:00.
        assert_eq!(
            at("second_sunday 02:30", NY, cycle(2026, 3)),
            "2026-03-08T03:30:00-04:00"
        );
        assert_eq!(
            at("first_sunday 01:30", NY, cycle(2026, 11)),
            "2026-11-01T01:30:00-04:00"
        );
        // Berlin 2026: last Sundays of March and October.
        assert_eq!(
            at("last_sunday 02:30", BERLIN, cycle(2026, 3)),
            "2026-03-29T03:30:00+02:00"
        );
        assert_eq!(
            at("last_sunday 02:30", BERLIN, cycle(2026, 10)),
            "2026-10-25T02:30:00+02:00"
        );
        // Sydney 2026: DST ends first Sunday of April, starts first Sunday of October.
        assert_eq!(
            at("first_sunday 02:30", SYDNEY, cycle(2026, 4)),
            "2026-04-05T02:30:00+11:00"
        );
        assert_eq!(
            at("first_sunday 02:30", SYDNEY, cycle(2026, 10)),
            "2026-10-04T03:30:00+11:00"
        );
        // An hour offset after a gap time is an exact duration from the adjusted instant.
        assert_eq!(
            at("second_sunday+1h 02:30", NY, cycle(2026, 3)),
            "2026-03-08T04:30:00-04:00"
        );
        // The first Saturday plus a day lands in the gap too (first Saturday: 2026-03-07).
        assert_eq!(
            at("first_saturday+1d 02:00", NY, cycle(2026, 3)),
            "2026-03-08T03:00:00-04:00"
        );
    }
}
