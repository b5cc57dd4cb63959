//! RFC 5545 §3.3.10 recurrence rules (`FREQ=WEEKLY;INTERVAL=2;BYDAY=MO`): "every alternate
//! week", "the first Monday of every alternate month", "every 14 days from 5 January".
//!
//! Written here rather than taken from a crate: cycles are dates, so only the daily to yearly
//! frequencies matter, and every wall-clock time must go through our one gap-and-overlap function
//! ([`local_to_instant`](super::local_to_instant)); what is left is a small, exact expansion.
//! It follows python-dateutil's `rrule` (the reference the tests compare against):
//!
//! - each period (a day, a week starting on `WKST`, a month, a year; every `INTERVAL`-th from
//!   the start's) gives the dates that pass every `BY` part present: `BYMONTH`, `BYYEARDAY`,
//!   `BYMONTHDAY` (negative counts from the end), `BYDAY` (an ordinal such as `2TU` or `-1FR`
//!   counts within the month for `MONTHLY`, and for `YEARLY` within each `BYMONTH` month or
//!   else the year), then `BYSETPOS` picks among them;
//! - without `BYDAY`, `BYMONTHDAY` or `BYYEARDAY`, the start supplies them: its weekday
//!   (`WEEKLY`), its day of the month (`MONTHLY`), its month and day (`YEARLY`);
//! - occurrences before the start are not counted; `COUNT` counts the rest; `UNTIL` (a date, a
//!   local date-time, or UTC with `Z`) is inclusive.
//!
//! Every occurrence is at the start's time of day (or a single `BYHOUR`/`BYMINUTE`/
//! `BYSECOND`): a rule fires at most once a day, one cycle per date. Refused with a message
//! naming the part: sub-daily frequencies and lists of hours or minutes (two fires a day),
//! `BYWEEKNO` (not supported), ordinals or month days where RFC 5545 forbids them.

use std::fmt;

use chrono::{
    DateTime, Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc, Weekday,
};
use chrono_tz::Tz;

use super::cycle::WEEKDAYS;
use super::zone::local_to_instant;

/// How often the periods repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// `UNTIL`: a date (the whole day counts), a wall-clock time in the runbook's zone, or UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    Date(NaiveDate),
    Local(NaiveDateTime),
    Utc(DateTime<Utc>),
}

/// A parsed recurrence rule. The text is kept as written (for display and the `.ics` feed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rrule {
    text: String,
    pub freq: Freq,
    pub interval: u32,
    pub count: Option<u32>,
    pub until: Option<Until>,
    pub by_month: Vec<u32>,
    pub by_year_day: Vec<i32>,
    pub by_month_day: Vec<i32>,
    /// Weekdays, with an ordinal (`2TU` → `Some(2)`) or without.
    pub by_day: Vec<(Option<i32>, Weekday)>,
    pub by_set_pos: Vec<i32>,
    pub wkst: Weekday,
    /// A single `BYHOUR`, `BYMINUTE`, `BYSECOND`: they replace the start's time of day.
    pub hour: Option<u32>,
    pub minute: Option<u32>,
    pub second: Option<u32>,
}

/// A rule that did not parse: the part (`BYDAY=2XX`), where it starts in the text (byte offset)
/// and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{part}`: {message}")]
pub struct RruleError {
    pub part: String,
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for Rrule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const WEEKDAY_CODES: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// The RFC 5545 code of a weekday (`MO` .. `SU`).
pub fn weekday_code(day: Weekday) -> &'static str {
    WEEKDAY_CODES[day.num_days_from_monday() as usize]
}

impl Rrule {
    /// Parses `FREQ=...;...` (an `RRULE:` prefix is allowed), checking each part.
    pub fn parse(text: &str) -> Result<Rrule, RruleError> {
        let body = text.trim().strip_prefix("RRULE:").unwrap_or(text.trim());
        let base = text.len() - text.trim_start().len() + (text.trim().len() - body.len());
        let mut rule = Rrule {
            text: body.to_string(),
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until: None,
            by_month: Vec::new(),
            by_year_day: Vec::new(),
            by_month_day: Vec::new(),
            by_day: Vec::new(),
            by_set_pos: Vec::new(),
            wkst: Weekday::Mon,
            hour: None,
            minute: None,
            second: None,
        };
        let mut freq = None;
        let mut offset = base;
        let mut seen: Vec<String> = Vec::new();
        for part in body.split(';') {
            let at = offset;
            offset += part.len() + 1;
            if part.is_empty() {
                continue;
            }
            let fail = |message: String| RruleError {
                part: part.to_string(),
                offset: at,
                message,
            };
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| fail("write NAME=VALUE, parts separated by `;`".into()))?;
            let name = name.to_ascii_uppercase();
            if seen.contains(&name) {
                return Err(fail(format!("{name} is given twice")));
            }
            seen.push(name.clone());
            match name.as_str() {
                "FREQ" => freq = Some(parse_freq(value).map_err(fail)?),
                _ => rule.set(&name, value).map_err(fail)?,
            }
        }
        rule.freq = freq.ok_or_else(|| RruleError {
            part: body.to_string(),
            offset: base,
            message: "FREQ is required (DAILY, WEEKLY, MONTHLY or YEARLY)".into(),
        })?;
        rule.check_combination(body, base)?;
        Ok(rule)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name {
            "INTERVAL" => {
                self.interval = number(value, 1, 10_000)
                    .map_err(|_| format!("INTERVAL must be a whole number from 1 (every period); `{value}` is not"))?
            }
            "COUNT" => {
                self.count = Some(
                    number(value, 1, 1_000_000)
                        .map_err(|_| format!("COUNT must be a whole number from 1; `{value}` is not"))?,
                )
            }
            "UNTIL" => self.until = Some(parse_until(value)?),
            "BYMONTH" => self.by_month = list(value, |v| number(v, 1, 12))?,
            "BYYEARDAY" => self.by_year_day = list(value, |v| signed(v, 366))?,
            "BYMONTHDAY" => self.by_month_day = list(value, |v| signed(v, 31))?,
            "BYDAY" => self.by_day = list(value, parse_day)?,
            "BYSETPOS" => self.by_set_pos = list(value, |v| signed(v, 366))?,
            "WKST" => self.wkst = weekday(value)?,
            "BYHOUR" => self.hour = Some(once_a_day(value, "BYHOUR", 23)?),
            "BYMINUTE" => self.minute = Some(once_a_day(value, "BYMINUTE", 59)?),
            "BYSECOND" => self.second = Some(once_a_day(value, "BYSECOND", 59)?),
            "BYWEEKNO" => return Err("BYWEEKNO is not supported; write the weeks with FREQ=WEEKLY and INTERVAL, or BYYEARDAY".into()),
            "DTSTART" => return Err("the start is the entry's `start:`, not a part of the rule".into()),
            other => return Err(format!("unknown part `{other}` (RFC 5545 §3.3.10: FREQ, INTERVAL, COUNT, UNTIL, BYMONTH, BYYEARDAY, BYMONTHDAY, BYDAY, BYSETPOS, WKST)")),
        }
        Ok(())
    }

    /// RFC 5545's restrictions on which parts go with which frequency.
    fn check_combination(&self, body: &str, base: usize) -> Result<(), RruleError> {
        let part_error = |name: &str, message: String| {
            let found = body
                .split(';')
                .scan(base, |at, p| {
                    let here = *at;
                    *at += p.len() + 1;
                    Some((here, p))
                })
                .find(|(_, p)| p.to_ascii_uppercase().starts_with(&format!("{name}=")));
            let (offset, part) = found.unwrap_or((base, body));
            RruleError {
                part: part.to_string(),
                offset,
                message,
            }
        };
        if self.count.is_some() && self.until.is_some() {
            return Err(part_error(
                "UNTIL",
                "COUNT and UNTIL cannot both be given".into(),
            ));
        }
        let ordinal = self.by_day.iter().any(|(n, _)| n.is_some());
        if ordinal && !matches!(self.freq, Freq::Monthly | Freq::Yearly) {
            return Err(part_error(
                "BYDAY",
                "an ordinal weekday (`2TU`, `-1FR`) needs FREQ=MONTHLY or FREQ=YEARLY".into(),
            ));
        }
        if !self.by_month_day.is_empty() && self.freq == Freq::Weekly {
            return Err(part_error(
                "BYMONTHDAY",
                "BYMONTHDAY does not go with FREQ=WEEKLY (RFC 5545)".into(),
            ));
        }
        if !self.by_year_day.is_empty() && self.freq != Freq::Yearly {
            return Err(part_error(
                "BYYEARDAY",
                "BYYEARDAY needs FREQ=YEARLY (RFC 5545)".into(),
            ));
        }
        Ok(())
    }

    /// The time of day of every occurrence: the start's, with `BYHOUR`/`BYMINUTE`/`BYSECOND`.
    fn time_of_day(&self, start: NaiveTime) -> NaiveTime {
        use chrono::Timelike as _;
        NaiveTime::from_hms_opt(
            self.hour.unwrap_or(start.hour()),
            self.minute.unwrap_or(start.minute()),
            self.second.unwrap_or(start.second()),
        )
        .unwrap_or(start)
    }

    /// Whether the start supplies a day that the rule does not say (see the module doc): then
    /// a rule without `start:` would depend on an arbitrary date.
    pub fn needs_start_for_days(&self) -> bool {
        let has_days = !(self.by_day.is_empty()
            && self.by_month_day.is_empty()
            && self.by_year_day.is_empty());
        match self.freq {
            Freq::Daily => false,
            Freq::Weekly | Freq::Monthly => !has_days,
            Freq::Yearly => !has_days,
        }
    }

    /// Whether the rule counts from its start (INTERVAL > 1, COUNT, UNTIL).
    pub fn counts_from_start(&self) -> bool {
        self.interval > 1 || self.count.is_some() || self.until.is_some()
    }
}

fn parse_freq(value: &str) -> Result<Freq, String> {
    match value.to_ascii_uppercase().as_str() {
        "DAILY" => Ok(Freq::Daily),
        "WEEKLY" => Ok(Freq::Weekly),
        "MONTHLY" => Ok(Freq::Monthly),
        "YEARLY" => Ok(Freq::Yearly),
        "HOURLY" | "MINUTELY" | "SECONDLY" => Err(format!(
            "FREQ={value} fires more than once a day; a cycle is a date, so FREQ is DAILY, WEEKLY, MONTHLY or YEARLY"
        )),
        _ => Err(format!(
            "unknown frequency `{value}` (DAILY, WEEKLY, MONTHLY or YEARLY)"
        )),
    }
}

fn number(value: &str, low: u32, high: u32) -> Result<u32, String> {
    let n: u32 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if (low..=high).contains(&n) && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range ({low}-{high})"))
    }
}

/// ±1..=max, not 0.
fn signed(value: &str, max: u32) -> Result<i32, String> {
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let n = number(digits, 1, max).map_err(|_| format!("`{value}` is not in ±1..{max}"))?;
    let n = n as i32;
    Ok(if negative { -n } else { n })
}

fn list<T>(value: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if value.is_empty() {
        return Err("the list is empty".into());
    }
    value.split(',').map(|v| item(v.trim())).collect()
}

fn weekday(code: &str) -> Result<Weekday, String> {
    let upper = code.to_ascii_uppercase();
    WEEKDAY_CODES
        .iter()
        .position(|c| *c == upper)
        .map(|i| WEEKDAYS[i])
        .ok_or_else(|| format!("unknown weekday `{code}` (MO, TU, WE, TH, FR, SA, SU)"))
}

/// `MO`, `2TU`, `-1FR`, `+3WE`.
fn parse_day(text: &str) -> Result<(Option<i32>, Weekday), String> {
    let split = text.len().saturating_sub(2);
    let (ordinal, code) = text.split_at(split);
    let day = weekday(code).map_err(|_| format!("unknown weekday `{text}` (MO, TU, WE, TH, FR, SA, SU, with an optional ordinal such as 2TU or -1FR)"))?;
    if ordinal.is_empty() {
        return Ok((None, day));
    }
    let n = signed(ordinal, 53).map_err(|_| format!("`{text}`: the ordinal must be ±1..53"))?;
    Ok((Some(n), day))
}

fn once_a_day(value: &str, name: &str, max: u32) -> Result<u32, String> {
    if value.contains(',') {
        return Err(format!(
            "{name}={value} fires more than once a day; a cycle is a date: give one value"
        ));
    }
    number(value, 0, max)
}

fn parse_until(value: &str) -> Result<Until, String> {
    let bad = || {
        format!(
            "UNTIL `{value}` is not a date (20270630), a local time (20270630T090000) or UTC (20270630T090000Z)"
        )
    };
    if value.len() == 8 {
        return NaiveDate::parse_from_str(value, "%Y%m%d")
            .map(Until::Date)
            .map_err(|_| bad());
    }
    if let Some(local) = value.strip_suffix('Z') {
        return NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S")
            .map(|t| Until::Utc(t.and_utc()))
            .map_err(|_| bad());
    }
    NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S")
        .map(Until::Local)
        .map_err(|_| bad())
}

/// A schedule entry's recurrence: the rule, its start (DTSTART, a wall-clock time in the
/// runbook's zone), dates left out (EXDATE) and occurrences added (RDATE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurrence {
    pub rule: Rrule,
    /// The first occurrence; [`DEFAULT_START`] at midnight when the entry has no `start`.
    pub start: NaiveDateTime,
    pub exdates: Vec<NaiveDate>,
    pub rdates: Vec<NaiveDateTime>,
}

/// The start of a rule written without one: any date before the schedules people run works,
/// since such a rule does not count from its start ([`Rrule::counts_from_start`]).
pub const DEFAULT_START: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 3) {
    Some(date) => date,
    None => panic!("a valid date"),
};

/// The longest stretch searched for an occurrence: the Gregorian calendar repeats every 400
/// years, so a rule with none in that span has none at all.
const GIVE_UP_YEARS: i32 = 400;

impl Recurrence {
    /// The occurrences (wall-clock, in the zone `tz`) on or after `from`, in order: the rule's
    /// and the RDATEs, without the EXDATEs, one per date (the earliest).
    pub fn occurrences_from(
        &self,
        tz: Tz,
        from: NaiveDate,
    ) -> impl Iterator<Item = NaiveDateTime> + '_ {
        let mut rule = Expansion::new(self, tz, from).peekable();
        let mut rdates = self
            .rdates
            .iter()
            .copied()
            .filter(move |d| d.date() >= from)
            .peekable();
        let mut last_date: Option<NaiveDate> = None;
        std::iter::from_fn(move || {
            loop {
                let next = match (rule.peek(), rdates.peek()) {
                    (Some(a), Some(b)) if b < a => rdates.next(),
                    (Some(_), _) => rule.next(),
                    (None, Some(_)) => rdates.next(),
                    (None, None) => return None,
                }?;
                if last_date == Some(next.date()) || self.exdates.contains(&next.date()) {
                    continue;
                }
                last_date = Some(next.date());
                return Some(next);
            }
        })
    }
}

/// The rule's own occurrences from one date on, period by period.
struct Expansion<'a> {
    recurrence: &'a Recurrence,
    tz: Tz,
    time: NaiveTime,
    period: i64,
    /// Occurrences from the start on, counted for COUNT.
    counted: u32,
    skip_before: NaiveDate,
    pending: std::vec::IntoIter<NaiveDate>,
    /// The period index after which nothing more is looked for: [`GIVE_UP_YEARS`] of periods
    /// after the last one with a date.
    last_period: i64,
    give_up_after: i64,
    done: bool,
}

impl<'a> Expansion<'a> {
    fn new(recurrence: &'a Recurrence, tz: Tz, from: NaiveDate) -> Expansion<'a> {
        let rule = &recurrence.rule;
        let first = if rule.count.is_some() {
            0 // COUNT counts from the start: walk every period
        } else {
            period_of(rule, recurrence.start.date(), from).max(0)
        };
        let span_days = i64::from(GIVE_UP_YEARS) * 366;
        let per_period = match rule.freq {
            Freq::Daily => 1,
            Freq::Weekly => 7,
            Freq::Monthly => 28,
            Freq::Yearly => 365,
        } * i64::from(rule.interval);
        Expansion {
            recurrence,
            tz,
            time: rule.time_of_day(recurrence.start.time()),
            period: first,
            counted: 0,
            skip_before: from,
            pending: Vec::new().into_iter(),
            last_period: first + span_days / per_period + 1,
            give_up_after: span_days / per_period + 1,
            done: false,
        }
    }

    fn past_until(&self, at: NaiveDateTime) -> bool {
        match self.recurrence.rule.until {
            None => false,
            Some(Until::Date(date)) => at.date() > date,
            Some(Until::Local(until)) => at > until,
            Some(Until::Utc(until)) => local_to_instant(self.tz, at).to_utc() > until,
        }
    }
}

impl Iterator for Expansion<'_> {
    type Item = NaiveDateTime;

    fn next(&mut self) -> Option<NaiveDateTime> {
        while !self.done {
            if let Some(date) = self.pending.next() {
                let at = date.and_time(self.time);
                if at < self.recurrence.start {
                    continue;
                }
                if self.past_until(at)
                    || self
                        .recurrence
                        .rule
                        .count
                        .is_some_and(|c| self.counted >= c)
                {
                    self.done = true;
                    return None;
                }
                self.counted += 1;
                if date >= self.skip_before {
                    return Some(at);
                }
                continue;
            }
            if self.period > self.last_period {
                self.done = true;
                return None;
            }
            match period_dates(
                &self.recurrence.rule,
                self.recurrence.start.date(),
                self.period,
            ) {
                Some(dates) => {
                    if !dates.is_empty() {
                        self.last_period = self.period + self.give_up_after;
                    }
                    self.pending = dates.into_iter();
                }
                None => self.done = true, // beyond the calendar
            }
            self.period += 1;
        }
        None
    }
}

/// The index of the period holding `date` (negative before the start's).
fn period_of(rule: &Rrule, start: NaiveDate, date: NaiveDate) -> i64 {
    let interval = i64::from(rule.interval);
    let units = match rule.freq {
        Freq::Daily => (date - start).num_days(),
        Freq::Weekly => (week_start(date, rule.wkst) - week_start(start, rule.wkst)).num_days() / 7,
        Freq::Monthly => month_index(date) - month_index(start),
        Freq::Yearly => i64::from(date.year() - start.year()),
    };
    units.div_euclid(interval)
}

fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

fn week_start(date: NaiveDate, wkst: Weekday) -> NaiveDate {
    let back = (7 + date.weekday().num_days_from_monday() - wkst.num_days_from_monday()) % 7;
    date - TimeDelta::days(i64::from(back))
}

/// The dates of period `index`, filtered by the BY parts and BYSETPOS, in order; `None` past
/// the last year the calendar handles.
fn period_dates(rule: &Rrule, start: NaiveDate, index: i64) -> Option<Vec<NaiveDate>> {
    let steps = index.checked_mul(i64::from(rule.interval))?;
    let (first, last) = match rule.freq {
        Freq::Daily => {
            let day = start.checked_add_signed(TimeDelta::try_days(steps)?)?;
            (day, day)
        }
        Freq::Weekly => {
            let first =
                week_start(start, rule.wkst).checked_add_signed(TimeDelta::try_weeks(steps)?)?;
            (first, first + TimeDelta::days(6))
        }
        Freq::Monthly => {
            let first = start
                .with_day(1)?
                .checked_add_months(Months::new(u32::try_from(steps).ok()?))?;
            (first, first.checked_add_months(Months::new(1))?.pred_opt()?)
        }
        Freq::Yearly => {
            let year = start.year().checked_add(i32::try_from(steps).ok()?)?;
            (
                NaiveDate::from_ymd_opt(year, 1, 1)?,
                NaiveDate::from_ymd_opt(year, 12, 31)?,
            )
        }
    };
    if first.year() > 9999 {
        return None;
    }
    let filter = Filter::new(rule, start);
    let dates: Vec<NaiveDate> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .filter(|d| filter.keeps(*d))
        .collect();
    Some(set_positions(&rule.by_set_pos, dates))
}

/// BYSETPOS: the n-th (or n-th from last) of a period's dates.
fn set_positions(positions: &[i32], dates: Vec<NaiveDate>) -> Vec<NaiveDate> {
    if positions.is_empty() {
        return dates;
    }
    let len = dates.len() as i64;
    let mut picked: Vec<NaiveDate> = positions
        .iter()
        .filter_map(|&pos| {
            let index = if pos > 0 {
                i64::from(pos) - 1
            } else {
                len + i64::from(pos)
            };
            usize::try_from(index)
                .ok()
                .and_then(|i| dates.get(i).copied())
        })
        .collect();
    picked.sort();
    picked.dedup();
    picked
}

/// The BY parts with the start's defaults filled in.
struct Filter<'a> {
    rule: &'a Rrule,
    months: Vec<u32>,
    month_days: Vec<i32>,
    weekdays: Vec<Weekday>,
    nth: Vec<(i32, Weekday)>,
}

impl<'a> Filter<'a> {
    fn new(rule: &'a Rrule, start: NaiveDate) -> Filter<'a> {
        let mut months = rule.by_month.clone();
        let mut month_days = rule.by_month_day.clone();
        let mut weekdays = Vec::new();
        let mut nth = Vec::new();
        for (n, day) in &rule.by_day {
            match n {
                Some(n) if matches!(rule.freq, Freq::Monthly | Freq::Yearly) => {
                    nth.push((*n, *day))
                }
                _ => weekdays.push(*day),
            }
        }
        if rule.by_day.is_empty() && rule.by_month_day.is_empty() && rule.by_year_day.is_empty() {
            match rule.freq {
                Freq::Yearly => {
                    if months.is_empty() {
                        months.push(start.month());
                    }
                    month_days.push(start.day() as i32);
                }
                Freq::Monthly => month_days.push(start.day() as i32),
                Freq::Weekly => weekdays.push(start.weekday()),
                Freq::Daily => {}
            }
        }
        Filter {
            rule,
            months,
            month_days,
            weekdays,
            nth,
        }
    }

    fn keeps(&self, date: NaiveDate) -> bool {
        (self.months.is_empty() || self.months.contains(&date.month()))
            && (self.rule.by_year_day.is_empty() || self.year_day_matches(date))
            && (self.month_days.is_empty() || self.month_day_matches(date))
            && (self.weekdays.is_empty() || self.weekdays.contains(&date.weekday()))
            && (self.nth.is_empty() || self.nth_matches(date))
    }

    fn year_day_matches(&self, date: NaiveDate) -> bool {
        let day = date.ordinal() as i32;
        let len = if date.leap_year() { 366 } else { 365 };
        self.rule
            .by_year_day
            .iter()
            .any(|&n| n == day || n == day - len - 1)
    }

    fn month_day_matches(&self, date: NaiveDate) -> bool {
        let day = date.day() as i32;
        let len = days_in_month(date) as i32;
        self.month_days
            .iter()
            .any(|&n| n == day || n == day - len - 1)
    }

    /// `2TU` / `-1FR` within the month (MONTHLY, or YEARLY with BYMONTH) or the year.
    fn nth_matches(&self, date: NaiveDate) -> bool {
        let within_month = self.rule.freq == Freq::Monthly || !self.rule.by_month.is_empty();
        let (first, last) = if within_month {
            let first = date.with_day(1).expect("day 1");
            (
                first,
                first + TimeDelta::days(days_in_month(date) as i64 - 1),
            )
        } else {
            let year = date.year();
            (
                NaiveDate::from_ymd_opt(year, 1, 1).expect("January 1st"),
                NaiveDate::from_ymd_opt(year, 12, 31).expect("December 31st"),
            )
        };
        let from_start = (date - first).num_days() / 7 + 1;
        let from_end = -((last - date).num_days() / 7 + 1);
        self.nth.iter().any(|&(n, day)| {
            day == date.weekday() && (i64::from(n) == from_start || i64::from(n) == from_end)
        })
    }
}

fn days_in_month(date: NaiveDate) -> u32 {
    let first = date.with_day(1).expect("day 1");
    match first.checked_add_months(Months::new(1)) {
        Some(next) => (next - first).num_days() as u32,
        None => 31, // December 9999
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NY: Tz = chrono_tz::America::New_York;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn recurrence(rule: &str, start: &str) -> Recurrence {
        Recurrence {
            rule: Rrule::parse(rule).unwrap(),
            start: at(start),
            exdates: vec![],
            rdates: vec![],
        }
    }

    fn dates(r: &Recurrence, from: &str, n: usize) -> Vec<String> {
        r.occurrences_from(NY, date(from))
            .take(n)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect()
    }

    fn error(text: &str) -> String {
        Rrule::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn malformed_rules_name_the_part() {
        assert_eq!(
            error("FREQ=WEEKLY;BYDAY=2XX"),
            "`BYDAY=2XX`: unknown weekday `2XX` (MO, TU, WE, TH, FR, SA, SU, with an optional ordinal such as 2TU or -1FR)"
        );
        assert!(
            error("FREQ=WEEKLY;INTERVAL=0")
                .starts_with("`INTERVAL=0`: INTERVAL must be a whole number from 1")
        );
        assert!(error("INTERVAL=2").contains("FREQ is required"));
        assert!(error("FREQ=HOURLY").contains("more than once a day"));
        assert!(
            error("FREQ=DAILY;BYHOUR=9,17")
                .starts_with("`BYHOUR=9,17`: BYHOUR=9,17 fires more than once a day")
        );
        assert!(error("FREQ=WEEKLY;BYDAY=2TU").starts_with("`BYDAY=2TU`: an ordinal weekday"));
        assert!(error("FREQ=MONTHLY;BYMONTHDAY=0").starts_with("`BYMONTHDAY=0`"));
        assert!(
            error("FREQ=MONTHLY;BYMONTH=13").starts_with("`BYMONTH=13`: 13 is out of range (1-12)")
        );
        assert!(error("FREQ=YEARLY;BYWEEKNO=1").contains("BYWEEKNO is not supported"));
        assert!(error("FREQ=DAILY;COUNT=3;UNTIL=20270101").contains("COUNT and UNTIL"));
        assert!(
            error("FREQ=DAILY;UNTIL=2027-01-01")
                .starts_with("`UNTIL=2027-01-01`: UNTIL `2027-01-01` is not a date")
        );
        assert!(error("FREQ=DAILY;FOO=1").contains("unknown part `FOO`"));
        assert!(error("FREQ=DAILY;FREQ=WEEKLY").contains("given twice"));
        let e = Rrule::parse("FREQ=WEEKLY;BYDAY=2XX").unwrap_err();
        assert_eq!(e.offset, 12);
        assert!(Rrule::parse("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;WKST=SU").is_ok());
    }

    #[test]
    fn every_alternate_monday_across_both_dst_changes_in_new_york() {
        let r = recurrence("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", "2027-01-04 09:00");
        let got: Vec<String> = r
            .occurrences_from(NY, date("2027-01-01"))
            .take_while(|d| d.year() == 2027)
            .map(|d| local_to_instant(NY, d).to_rfc3339())
            .collect();
        assert_eq!(got.len(), 26);
        assert_eq!(got[0], "2027-01-04T09:00:00-05:00");
        assert_eq!(got[5], "2027-03-15T09:00:00-04:00"); // DST began on 2027-03-14
        assert_eq!(got[21], "2027-10-25T09:00:00-04:00");
        assert_eq!(got[22], "2027-11-08T09:00:00-05:00"); // DST ended on 2027-11-07
        assert_eq!(got[25], "2027-12-20T09:00:00-05:00");
    }

    #[test]
    fn the_second_wednesday_except_listed_dates() {
        let mut r = recurrence("FREQ=MONTHLY;BYDAY=2WE", "2027-01-01 18:00");
        r.exdates = vec![date("2027-03-10"), date("2027-06-09")];
        assert_eq!(
            dates(&r, "2027-01-01", 6),
            [
                "2027-01-13",
                "2027-02-10",
                "2027-04-14",
                "2027-05-12",
                "2027-07-14",
                "2027-08-11"
            ]
        );
    }

    #[test]
    fn last_weekday_of_the_quarter() {
        let r = recurrence(
            "FREQ=MONTHLY;INTERVAL=3;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "2027-03-01 17:00",
        );
        assert_eq!(
            dates(&r, "2027-01-01", 5),
            [
                "2027-03-31",
                "2027-06-30",
                "2027-09-30",
                "2027-12-31",
                "2028-03-31"
            ]
        );
    }

    #[test]
    fn a_count_ends_and_an_until_in_the_zone_is_inclusive() {
        let r = recurrence("FREQ=DAILY;INTERVAL=14;COUNT=3", "2027-01-05 06:00");
        assert_eq!(
            dates(&r, "2026-12-01", 10),
            ["2027-01-05", "2027-01-19", "2027-02-02"]
        );
        // Asked from the middle, COUNT still counts from the start.
        assert_eq!(dates(&r, "2027-01-06", 10), ["2027-01-19", "2027-02-02"]);
        // UNTIL 2027-03-08T14:00Z is 09:00 EST on the 8th: that Monday is the last.
        let r = recurrence(
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270308T140000Z",
            "2027-02-01 09:00",
        );
        assert_eq!(
            dates(&r, "2027-01-01", 10),
            [
                "2027-02-01",
                "2027-02-08",
                "2027-02-15",
                "2027-02-22",
                "2027-03-01",
                "2027-03-08"
            ]
        );
        let r = recurrence(
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270308T135959Z",
            "2027-02-01 09:00",
        );
        assert_eq!(dates(&r, "2027-01-01", 10).last().unwrap(), "2027-03-01");
        let r = recurrence("FREQ=WEEKLY;BYDAY=MO;UNTIL=20270308", "2027-02-01 09:00");
        assert_eq!(dates(&r, "2027-01-01", 10).last().unwrap(), "2027-03-08");
    }

    #[test]
    fn rdates_add_and_one_date_fires_once() {
        let mut r = recurrence("FREQ=WEEKLY;BYDAY=FR", "2027-01-01 20:00");
        r.rdates = vec![at("2027-01-06 20:00"), at("2027-01-08 07:00")];
        let got: Vec<String> = r
            .occurrences_from(NY, date("2027-01-01"))
            .take(4)
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "2027-01-01 20:00:00",
                "2027-01-06 20:00:00",
                "2027-01-08 07:00:00",
                "2027-01-15 20:00:00"
            ]
        );
    }

    #[test]
    fn a_rule_that_never_fires_ends() {
        let r = recurrence("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "2027-01-01 09:00");
        assert_eq!(r.occurrences_from(NY, date("2027-01-01")).next(), None);
        let r = recurrence("FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4,6", "2027-01-01 09:00");
        assert_eq!(r.occurrences_from(NY, date("2027-01-01")).next(), None);
    }

    #[test]
    fn leap_days_and_month_ends() {
        let r = recurrence("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", "2027-01-01 09:00");
        assert_eq!(
            dates(&r, "2027-01-01", 3),
            ["2027-02-28", "2028-02-29", "2029-02-28"]
        );
        let r = recurrence("FREQ=YEARLY", "2028-02-29 09:00");
        assert_eq!(dates(&r, "2028-01-01", 2), ["2028-02-29", "2032-02-29"]);
        let r = recurrence("FREQ=MONTHLY;BYDAY=-1FR", "2027-01-01 09:00");
        assert_eq!(
            dates(&r, "2027-01-01", 3),
            ["2027-01-29", "2027-02-26", "2027-03-26"]
        );
    }
}
