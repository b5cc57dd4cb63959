//! Schedules: when each cycle of a runbook fires.
//!
//! A schedule is a list of rules in one IANA zone plus blackouts:
//!
//! - `Anchored { expr, months }`: the cycle is the anchor's month; the fire is the expression
//!   resolved for that cycle, even when an offset moves it into the previous or next month
//!   (`patch_tuesday-10d` of 2026-09 fires on 2026-08-29 as cycle 2026-09). `months` limits
//!   the cycles (1 = January).
//! - `Cron`: wall-clock matches in the zone (see [`super::crontab`]); the cycle is the match's
//!   local date ("YYYY-MM-DD"), so a weekly expression fires every week and a daily one every
//!   day.
//! - `Recurrence`: an RFC 5545 recurrence rule with its start, EXDATEs and RDATEs (see
//!   [`super::rrule`]); the cycle is each occurrence's local date, as for cron.
//!
//! **A cycle fires exactly once**, at the earliest time any rule gives it; later matches of
//! the same cycle (other rules, further cron matches) are ignored. Validation keeps the two
//! kinds of cycle apart: a schedule's entries are all anchored (month cycles) or all
//! cron and RRULE (day cycles). A fire whose local date is
//! in a blackout is still listed, with the blackout's reason, but never started.
//!
//! [`Schedule::fires_from`] yields each cycle's fire that is **at or after** `from`, in time
//! order (ties by cycle). A cycle whose fire is before `from` is not yielded at all: it already
//! fired (or was missed), and a later match of the same cycle does not fire it again.
//!
//! Iteration walks cycles, not calendar months, so a fire is never skipped or repeated at
//! month or year ends. Because different rules may move fires by different offsets, fires are
//! buffered and released once no later cycle can produce an earlier fire.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::blackout::{Blackout, blackout_for};
use super::crontab::{first_fire_from, parse_cron};
use super::cycle::{Cycle, MAX_YEAR, MIN_YEAR, patch_tuesday};
use super::expr::{AnchorContext, TimeExpr};
use super::rrule::Recurrence;
use super::zone::local_to_instant;

/// One schedule entry of a runbook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleRule {
    /// `{ at: EXPR, months: [...] }`; `months: None` means every month.
    Anchored {
        expr: TimeExpr,
        months: Option<Vec<u32>>,
    },
    /// `{ cron: "..." }` in the `cron` crate's syntax, evaluated in the runbook's zone; one
    /// day cycle per date it matches.
    Cron(cron::Schedule),
    /// `{ rrule: "...", start: ..., exdates: [...], rdates: [...] }`: one day cycle per
    /// occurrence date.
    Recurrence(Box<Recurrence>),
}

/// Why an anchored rule cannot be a schedule entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "`{0}` is anchored to `start`; a schedule needs a calendar anchor such as `patch_tuesday`"
    )]
    StartAnchored(String),
    #[error("month {0} is out of range (1-12)")]
    Month(u32),
    #[error("`months` is empty, so this rule would never fire")]
    NoMonths,
}

impl ScheduleRule {
    /// An anchored rule, checked: a calendar anchor and months in 1..=12.
    pub fn anchored(expr: TimeExpr, months: Option<Vec<u32>>) -> Result<ScheduleRule, RuleError> {
        if expr.is_start_anchored() {
            return Err(RuleError::StartAnchored(expr.to_string()));
        }
        if let Some(months) = &months {
            if months.is_empty() {
                return Err(RuleError::NoMonths);
            }
            if let Some(bad) = months.iter().find(|m| !(1..=12).contains(*m)) {
                return Err(RuleError::Month(*bad));
            }
        }
        Ok(ScheduleRule::Anchored { expr, months })
    }

    /// A cron rule; see [`parse_cron`].
    pub fn cron(text: &str) -> Result<ScheduleRule, String> {
        parse_cron(text).map(ScheduleRule::Cron)
    }

    /// This rule's fire for one cycle, if it gives the cycle one.
    pub fn fire_in(&self, tz: Tz, cycle: Cycle) -> Option<DateTime<Tz>> {
        match self {
            ScheduleRule::Anchored { expr, months } => {
                anchored_fire(expr, months.as_deref(), tz, cycle)
            }
            ScheduleRule::Cron(schedule) => first_fire_from(schedule, tz, cycle.date()?)
                .filter(|(c, _)| *c == cycle)
                .map(|(_, at)| at),
            ScheduleRule::Recurrence(recurrence) => {
                let date = cycle.date()?;
                let at = recurrence.occurrences_from(tz, date).next()?;
                (at.date() == date).then(|| local_to_instant(tz, at))
            }
        }
    }

    /// Earliest and latest distance of a cycle's fire from the start of its first date (the
    /// month's first for a month cycle) and from the start of the next month. Generous: the
    /// margin covers UTC offsets and DST gaps.
    fn reach(&self) -> (TimeDelta, TimeDelta) {
        let margin = TimeDelta::days(3);
        match self {
            ScheduleRule::Anchored { expr, .. } => {
                let shift = TimeDelta::days(expr.days()) + expr.duration();
                (shift - margin, shift + TimeDelta::days(1) + margin)
            }
            ScheduleRule::Cron(_) | ScheduleRule::Recurrence(_) => (-margin, margin),
        }
    }
}

fn anchored_fire(
    expr: &TimeExpr,
    months: Option<&[u32]>,
    tz: Tz,
    cycle: Cycle,
) -> Option<DateTime<Tz>> {
    if cycle.is_day() || months.is_some_and(|m| !m.contains(&cycle.month)) {
        return None;
    }
    let ctx = AnchorContext { cycle, start: None };
    expr.resolve(tz, &ctx).ok()
}

/// One cycle's fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fire {
    pub cycle: Cycle,
    pub patch_tuesday: NaiveDate,
    pub fires_at: DateTime<Tz>,
    /// The blackout's reason when the fire's local date is in one: the cycle is skipped.
    pub blackout: Option<String>,
}

/// A runbook's compiled schedule: rules, zone and blackouts. No rules: manual trigger only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    rules: Vec<ScheduleRule>,
    tz: Tz,
    blackouts: Vec<Blackout>,
}

impl Schedule {
    pub fn new(rules: Vec<ScheduleRule>, tz: Tz, blackouts: Vec<Blackout>) -> Schedule {
        Schedule {
            rules,
            tz,
            blackouts,
        }
    }

    /// Adds blackouts (e.g. the config's org-wide ones) after the runbook's own.
    pub fn add_blackouts(&mut self, extra: impl IntoIterator<Item = Blackout>) {
        self.blackouts.extend(extra);
    }

    pub fn rules(&self) -> &[ScheduleRule] {
        &self.rules
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    pub fn blackouts(&self) -> &[Blackout] {
        &self.blackouts
    }

    /// True when the schedule's cycles are days ("YYYY-MM-DD": cron entries), false when they
    /// are months ("YYYY-MM": anchored entries). Validation keeps one kind per schedule.
    pub fn has_day_cycles(&self) -> bool {
        let day_rule =
            |r: &ScheduleRule| matches!(r, ScheduleRule::Cron(_) | ScheduleRule::Recurrence(_));
        self.rules.iter().any(day_rule)
    }

    /// Why `cycle` cannot be one of this schedule's cycles (a month for a cron schedule, a day
    /// for an anchored one); `None` when it is of the right kind or there is no schedule.
    pub fn wrong_kind(&self, cycle: Cycle) -> Option<String> {
        if self.is_manual() || cycle.is_day() == self.has_day_cycles() {
            return None;
        }
        Some(if self.has_day_cycles() {
            format!(
                "cycle {cycle} is a month, but this runbook's cron schedule has one cycle a day: give a date (YYYY-MM-DD)"
            )
        } else {
            format!(
                "cycle {cycle} is a day, but this runbook's schedule has one cycle a month: give a month (YYYY-MM)"
            )
        })
    }

    /// True when the runbook has no schedule and only runs when triggered.
    pub fn is_manual(&self) -> bool {
        self.rules.is_empty()
    }

    /// The fire of one cycle (the earliest of its rules), if any rule gives it one.
    pub fn fire_for(&self, cycle: Cycle) -> Option<Fire> {
        let at = self
            .rules
            .iter()
            .filter_map(|r| r.fire_in(self.tz, cycle))
            .min()?;
        Some(self.fire(cycle, at))
    }

    /// Every cycle's fire at or after `from`, in time order. Ends after year 9999 (or 2100 for
    /// cron rules, the `cron` crate's last year) or at once for a manual schedule.
    pub fn fires_from(&self, from: DateTime<Utc>) -> Fires<'_> {
        let (earliest, latest) = self.reach();
        let first = first_cycle(from, latest);
        Fires {
            schedule: self,
            cycles: CycleFires::new(self, first),
            pending: BinaryHeap::new(),
            from,
            earliest,
        }
    }

    fn fire(&self, cycle: Cycle, fires_at: DateTime<Tz>) -> Fire {
        let blackout =
            blackout_for(&self.blackouts, fires_at.date_naive()).map(|b| b.reason.clone());
        Fire {
            cycle,
            patch_tuesday: patch_tuesday(cycle),
            fires_at,
            blackout,
        }
    }

    /// The widest reach over all rules.
    fn reach(&self) -> (TimeDelta, TimeDelta) {
        let reaches = self.rules.iter().map(ScheduleRule::reach);
        reaches.fold(
            (TimeDelta::zero(), TimeDelta::zero()),
            |(lo, hi), (l, h)| (lo.min(l), hi.max(h)),
        )
    }
}

/// The first cycle that can fire at or after `from`, given how late after its month a fire can be.
fn first_cycle(from: DateTime<Utc>, latest: TimeDelta) -> Cycle {
    let reach_back = from.checked_sub_signed(latest).unwrap_or(from);
    let cycle = Cycle::of(reach_back.date_naive()).pred();
    let lowest = Cycle::new(MIN_YEAR, 1).unwrap();
    cycle.max(lowest)
}

/// Midnight UTC on the first date of the cycle (its day, or its month's first).
fn cycle_start_utc(cycle: Cycle) -> DateTime<Utc> {
    cycle.start_date().and_time(NaiveTime::MIN).and_utc()
}

/// Iterator returned by [`Schedule::fires_from`].
pub struct Fires<'a> {
    schedule: &'a Schedule,
    cycles: CycleFires<'a>,
    /// Fires computed but not yet released, earliest first.
    pending: BinaryHeap<Reverse<(DateTime<Tz>, Cycle)>>,
    from: DateTime<Utc>,
    /// No cycle fires earlier than this before its first date starts.
    earliest: TimeDelta,
}

impl Fires<'_> {
    /// Whether no cycle still to be computed can fire before `at`.
    fn settled(&self, at: DateTime<Tz>) -> bool {
        match self.cycles.next_cycle() {
            None => true,
            Some(cycle) => at.to_utc() < cycle_start_utc(cycle) + self.earliest,
        }
    }
}

impl Iterator for Fires<'_> {
    type Item = Fire;

    fn next(&mut self) -> Option<Fire> {
        loop {
            if let Some(Reverse((at, cycle))) = self.pending.peek().copied()
                && self.settled(at)
            {
                self.pending.pop();
                if at >= self.from {
                    return Some(self.schedule.fire(cycle, at));
                }
                continue;
            }
            let (cycle, at) = self.cycles.next()?;
            self.pending.push(Reverse((at, cycle)));
        }
    }
}

/// Each cycle's fire in cycle order: the earliest over the rules that give the cycle one.
struct CycleFires<'a> {
    tz: Tz,
    rules: Vec<RuleFires<'a>>,
}

impl<'a> CycleFires<'a> {
    fn new(schedule: &'a Schedule, first: Cycle) -> CycleFires<'a> {
        let tz = schedule.tz;
        let rules = schedule
            .rules
            .iter()
            .map(|rule| RuleFires::new(rule, tz, first))
            .collect();
        CycleFires { tz, rules }
    }

    /// The cycle [`Iterator::next`] will return next.
    fn next_cycle(&self) -> Option<Cycle> {
        self.rules
            .iter()
            .filter_map(|r| r.head.map(|(c, _)| c))
            .min()
    }
}

impl Iterator for CycleFires<'_> {
    type Item = (Cycle, DateTime<Tz>);

    fn next(&mut self) -> Option<(Cycle, DateTime<Tz>)> {
        let cycle = self.next_cycle()?;
        let mut earliest: Option<DateTime<Tz>> = None;
        for rule in &mut self.rules {
            if let Some((c, at)) = rule.head
                && c == cycle
            {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
                rule.advance(self.tz);
            }
        }
        earliest.map(|at| (cycle, at))
    }
}

/// One rule's fires in cycle order, with the next one computed ahead.
struct RuleFires<'a> {
    rule: &'a ScheduleRule,
    /// The next cycle to look at: a month for an anchored rule, a day for a cron rule.
    next: Cycle,
    /// A recurrence's occurrences from the first cycle on (one per date, in order).
    occurrences: Option<Box<dyn Iterator<Item = NaiveDateTime> + 'a>>,
    head: Option<(Cycle, DateTime<Tz>)>,
}

impl<'a> RuleFires<'a> {
    fn new(rule: &'a ScheduleRule, tz: Tz, first: Cycle) -> RuleFires<'a> {
        let occurrences = match rule {
            ScheduleRule::Recurrence(r) => {
                let from = first.start_date();
                Some(Box::new(r.occurrences_from(tz, from)) as Box<dyn Iterator<Item = _>>)
            }
            _ => None,
        };
        let mut fires = RuleFires {
            rule,
            next: first,
            occurrences,
            head: None,
        };
        fires.advance(tz);
        fires
    }

    fn advance(&mut self, tz: Tz) {
        self.head = match self.rule {
            ScheduleRule::Anchored { expr, months } => {
                self.next_anchored(expr, months.as_deref(), tz)
            }
            ScheduleRule::Cron(schedule) => self.next_cron(schedule, tz),
            ScheduleRule::Recurrence(_) => {
                let at = self.occurrences.as_mut().and_then(Iterator::next);
                at.filter(|at| at.year() <= MAX_YEAR)
                    .map(|at| (Cycle::on(at.date()), local_to_instant(tz, at)))
            }
        };
    }

    fn next_anchored(
        &mut self,
        expr: &TimeExpr,
        months: Option<&[u32]>,
        tz: Tz,
    ) -> Option<(Cycle, DateTime<Tz>)> {
        let never = expr.is_start_anchored()
            || months.is_some_and(|m| !m.iter().any(|m| (1..=12).contains(m)));
        if never {
            return None;
        }
        while self.next.year <= MAX_YEAR {
            let cycle = self.next;
            self.next = cycle.succ();
            if let Some(at) = anchored_fire(expr, months, tz, cycle) {
                return Some((cycle, at));
            }
        }
        None
    }

    fn next_cron(&mut self, schedule: &cron::Schedule, tz: Tz) -> Option<(Cycle, DateTime<Tz>)> {
        if self.next.year > MAX_YEAR {
            return None;
        }
        let (cycle, at) = first_fire_from(schedule, tz, self.next.start_date())?;
        self.next = Cycle::on(cycle.date()?.succ_opt()?);
        Some((cycle, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::blackout::parse_date;

    const NY: Tz = chrono_tz::America::New_York;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn at(text: &str) -> ScheduleRule {
        ScheduleRule::anchored(TimeExpr::parse(text).unwrap(), None).unwrap()
    }

    fn at_in(text: &str, months: &[u32]) -> ScheduleRule {
        ScheduleRule::anchored(TimeExpr::parse(text).unwrap(), Some(months.to_vec())).unwrap()
    }

    fn cron(text: &str) -> ScheduleRule {
        ScheduleRule::cron(text).unwrap()
    }

    /// "cycle fires_at [blackout]" lines.
    fn listing(schedule: &Schedule, from: &str, count: usize) -> Vec<String> {
        schedule
            .fires_from(utc(from))
            .take(count)
            .map(|f| {
                let blackout = f.blackout.map(|b| format!(" [{b}]")).unwrap_or_default();
                format!("{} {}{blackout}", f.cycle, f.fires_at.to_rfc3339())
            })
            .collect()
    }

    #[test]
    fn monthly_runbook_fires_a_week_before_patch_tuesday() {
        let schedule = Schedule::new(vec![at("patch_tuesday-7d 09:00")], NY, vec![]);
        let fires: Vec<Fire> = schedule
            .fires_from(utc("2026-01-01T00:00:00Z"))
            .take(12)
            .collect();
        assert_eq!(fires.len(), 12);
        for (i, fire) in fires.iter().enumerate() {
            assert_eq!(fire.cycle, Cycle::new(2026, i as u32 + 1).unwrap());
            assert_eq!(
                fire.fires_at.date_naive(),
                fire.patch_tuesday - TimeDelta::days(7)
            );
            assert_eq!(
                fire.fires_at.time(),
                NaiveTime::from_hms_opt(9, 0, 0).unwrap()
            );
        }
        assert_eq!(fires[2].fires_at.to_rfc3339(), "2026-03-03T09:00:00-05:00");
        assert_eq!(fires[3].fires_at.to_rfc3339(), "2026-04-07T09:00:00-04:00");
    }

    #[test]
    fn offsets_that_leave_the_month_keep_the_anchor_cycle() {
        // Patch Tuesday 2026-09-08: ten days earlier is in August, still cycle 2026-09.
        let schedule = Schedule::new(vec![at("patch_tuesday-10d 09:00")], NY, vec![]);
        assert_eq!(
            listing(&schedule, "2026-08-01T00:00:00Z", 3),
            [
                "2026-08 2026-08-01T09:00:00-04:00",
                "2026-09 2026-08-29T09:00:00-04:00",
                "2026-10 2026-10-03T09:00:00-04:00",
            ]
        );
        // Last Friday + 5 days crosses the year end: 2026-12-25 + 5 = 2026-12-30,
        // 2027-01-29 + 5 = 2027-02-03 (cycle 2027-01).
        let schedule = Schedule::new(vec![at("last_friday+5d 08:00")], BERLIN, vec![]);
        assert_eq!(
            listing(&schedule, "2026-12-03T00:00:00Z", 3),
            [
                "2026-12 2026-12-30T08:00:00+01:00",
                "2027-01 2027-02-03T08:00:00+01:00",
                "2027-02 2027-03-03T08:00:00+01:00",
            ]
        );
    }

    #[test]
    fn a_fire_exactly_at_from_is_included_and_none_is_repeated_across_the_year_end() {
        // Cycle 2027-01 fires on the last day of 2026.
        let schedule = Schedule::new(vec![at("month_start-1d 22:00")], NY, vec![]);
        let from = "2027-01-01T03:00:00Z"; // 2026-12-31 22:00 EST
        assert_eq!(
            listing(&schedule, from, 2),
            [
                "2027-01 2026-12-31T22:00:00-05:00",
                "2027-02 2027-01-31T22:00:00-05:00"
            ]
        );
        assert_eq!(
            listing(&schedule, "2027-01-01T03:00:01Z", 2),
            [
                "2027-02 2027-01-31T22:00:00-05:00",
                "2027-03 2027-02-28T22:00:00-05:00"
            ]
        );
    }

    #[test]
    fn several_rules_give_a_cycle_one_fire_the_earliest() {
        // Quarterly on the first Monday, otherwise a week before Patch Tuesday; both hit
        // January: only the earlier counts.
        let rules = vec![
            at_in("first_monday 10:00", &[1, 4, 7, 10]),
            at("patch_tuesday-7d 09:00"),
        ];
        let schedule = Schedule::new(rules, NY, vec![]);
        assert_eq!(
            listing(&schedule, "2026-01-01T00:00:00Z", 4),
            [
                // first Monday 2026-01-05 10:00 vs Patch Tuesday-7d 2026-01-06 09:00
                "2026-01 2026-01-05T10:00:00-05:00",
                "2026-02 2026-02-03T09:00:00-05:00",
                "2026-03 2026-03-03T09:00:00-05:00",
                // first Monday 2026-04-06 is earlier than 2026-04-07
                "2026-04 2026-04-06T10:00:00-04:00",
            ]
        );
        assert_eq!(
            schedule
                .fire_for(Cycle::new(2026, 4).unwrap())
                .unwrap()
                .fires_at
                .to_rfc3339(),
            "2026-04-06T10:00:00-04:00"
        );
    }

    #[test]
    fn fires_come_out_in_time_order_even_when_cycles_overtake_each_other() {
        // January's cycle fires 40 days after New Year, after February's own fire.
        let rules = vec![
            at_in("month_start+40d", &[1]),
            at_in("patch_tuesday-7d", &[2]),
        ];
        let schedule = Schedule::new(rules, BERLIN, vec![]);
        assert_eq!(
            listing(&schedule, "2026-01-01T00:00:00Z", 3),
            [
                "2026-02 2026-02-03T00:00:00+01:00",
                "2026-01 2026-02-10T00:00:00+01:00",
                "2027-02 2027-02-02T00:00:00+01:00",
            ]
        );
    }

    #[test]
    fn a_weekly_cron_fires_every_week_across_both_dst_changes() {
        // Every Saturday 22:00 in New York, from the last winter Saturday to the first one
        // after DST ends (2026-03-08 and 2026-11-01): 37 weeks, one fire each.
        let schedule = Schedule::new(vec![cron("0 0 22 * * Sat")], NY, vec![]);
        let fires: Vec<Fire> = schedule
            .fires_from(utc("2026-02-28T00:00:00Z"))
            .take(37)
            .collect();
        let first = fires[0].fires_at.date_naive();
        for (week, fire) in fires.iter().enumerate() {
            let date = first + TimeDelta::weeks(week as i64);
            assert_eq!(fire.cycle, Cycle::on(date));
            assert_eq!(fire.cycle.to_string(), date.to_string());
            assert_eq!(
                fire.fires_at.naive_local(),
                date.and_hms_opt(22, 0, 0).unwrap()
            );
        }
        assert_eq!(fires[0].fires_at.to_rfc3339(), "2026-02-28T22:00:00-05:00");
        assert_eq!(fires[1].fires_at.to_rfc3339(), "2026-03-07T22:00:00-05:00");
        assert_eq!(fires[2].fires_at.to_rfc3339(), "2026-03-14T22:00:00-04:00");
        assert_eq!(fires[35].fires_at.to_rfc3339(), "2026-10-31T22:00:00-04:00");
        assert_eq!(fires[36].fires_at.to_rfc3339(), "2026-11-07T22:00:00-05:00");
        // Patch Tuesday is that of the fire's month.
        assert_eq!(fires[2].patch_tuesday, parse_date("2026-03-10").unwrap());
    }

    #[test]
    fn a_daily_cron_fires_every_day_once_through_the_gap_and_the_overlap() {
        // 02:30 every night in Berlin: on 2026-03-29 02:30 does not exist (03:30 CEST, the
        // offset before the gap); on 2026-10-25 it happens twice (the first, CEST).
        let schedule = Schedule::new(vec![cron("0 30 2 * * *")], BERLIN, vec![]);
        assert_eq!(
            listing(&schedule, "2026-03-27T12:00:00Z", 4),
            [
                "2026-03-28 2026-03-28T02:30:00+01:00",
                "2026-03-29 2026-03-29T03:30:00+02:00",
                "2026-03-30 2026-03-30T02:30:00+02:00",
                "2026-03-31 2026-03-31T02:30:00+02:00",
            ]
        );
        assert_eq!(
            listing(&schedule, "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25 2026-10-25T02:30:00+02:00",
                "2026-10-26 2026-10-26T02:30:00+01:00",
                "2026-10-27 2026-10-27T02:30:00+01:00",
            ]
        );
        // A whole year: one fire a day, 365 days, no date twice or missing.
        let year: Vec<Fire> = schedule
            .fires_from(utc("2025-12-31T12:00:00Z"))
            .take_while(|f| f.fires_at.year() == 2026)
            .collect();
        assert_eq!(year.len(), 365);
        let first = parse_date("2026-01-01").unwrap();
        assert!(
            year.iter()
                .zip(first.iter_days())
                .all(|(f, d)| f.cycle == Cycle::on(d))
        );
        // Starting after a day's fire skips to the next day, not the next month.
        assert_eq!(
            listing(&schedule, "2026-03-30T00:31:00Z", 1),
            ["2026-03-31 2026-03-31T02:30:00+02:00"]
        );
    }

    #[test]
    fn fire_for_finds_a_day_cycle_of_a_cron_rule_and_not_a_month() {
        let schedule = Schedule::new(vec![cron("0 0 9 * * Mon")], NY, vec![]);
        let monday: Cycle = "2026-03-09".parse().unwrap();
        let fire = schedule.fire_for(monday).unwrap();
        assert_eq!(fire.fires_at.to_rfc3339(), "2026-03-09T09:00:00-04:00");
        assert_eq!(schedule.fire_for("2026-03-10".parse().unwrap()), None);
        assert_eq!(schedule.fire_for(Cycle::new(2026, 3).unwrap()), None);
        // An anchored rule gives month cycles only.
        let monthly = Schedule::new(vec![at("patch_tuesday")], NY, vec![]);
        assert_eq!(monthly.fire_for("2026-03-10".parse().unwrap()), None);
    }

    #[test]
    fn weekly_fires_in_a_blackout_are_listed_with_the_reason() {
        let freeze = Blackout::new(
            parse_date("2026-12-21").unwrap(),
            parse_date("2027-01-04").unwrap(),
            "year-end change freeze",
        )
        .unwrap();
        let schedule = Schedule::new(vec![cron("0 0 22 * * Wed")], BERLIN, vec![freeze]);
        assert_eq!(
            listing(&schedule, "2026-12-15T00:00:00Z", 4),
            [
                "2026-12-16 2026-12-16T22:00:00+01:00",
                "2026-12-23 2026-12-23T22:00:00+01:00 [year-end change freeze]",
                "2026-12-30 2026-12-30T22:00:00+01:00 [year-end change freeze]",
                "2027-01-06 2027-01-06T22:00:00+01:00",
            ]
        );
    }

    #[test]
    fn blacked_out_cycles_are_listed_with_their_reason() {
        let freeze = Blackout::new(
            parse_date("2026-12-21").unwrap(),
            parse_date("2027-01-04").unwrap(),
            "year-end change freeze",
        )
        .unwrap();
        let schedule = Schedule::new(vec![at("last_monday 09:00")], NY, vec![freeze]);
        assert_eq!(
            listing(&schedule, "2026-11-01T00:00:00Z", 3),
            [
                "2026-11 2026-11-30T09:00:00-05:00",
                "2026-12 2026-12-28T09:00:00-05:00 [year-end change freeze]",
                "2027-01 2027-01-25T09:00:00-05:00",
            ]
        );
        // The blackout is by the fire's *local* date: 2027-01-04 23:30 in New York is
        // 2027-01-05 in UTC, and still blacked out.
        let late = Schedule::new(
            vec![at("month_start+3d 23:30")],
            NY,
            vec![
                Blackout::new(
                    parse_date("2027-01-04").unwrap(),
                    parse_date("2027-01-04").unwrap(),
                    "freeze",
                )
                .unwrap(),
            ],
        );
        let fire = late.fire_for(Cycle::new(2027, 1).unwrap()).unwrap();
        assert_eq!(
            fire.fires_at.to_utc().to_rfc3339(),
            "2027-01-05T04:30:00+00:00"
        );
        assert_eq!(fire.blackout.as_deref(), Some("freeze"));
    }

    #[test]
    fn months_and_cron_years_limit_the_cycles() {
        let schedule = Schedule::new(
            vec![at_in("patch_tuesday+3d 22:00", &[2, 4, 6, 8, 10, 12])],
            NY,
            vec![],
        );
        let cycles: Vec<String> = schedule
            .fires_from(utc("2026-01-01T00:00:00Z"))
            .take(4)
            .map(|f| f.cycle.to_string())
            .collect();
        assert_eq!(cycles, ["2026-02", "2026-04", "2026-06", "2026-08"]);
        // A cron rule limited to 2026-2027 ends: the first of each month, 24 days.
        let schedule = Schedule::new(vec![cron("0 0 9 1 * * 2026-2027")], NY, vec![]);
        assert_eq!(schedule.fires_from(utc("2025-06-01T00:00:00Z")).count(), 24);
        // No rules: manual trigger only, nothing fires.
        let manual = Schedule::new(vec![], NY, vec![]);
        assert!(manual.is_manual());
        assert_eq!(manual.fires_from(utc("2026-01-01T00:00:00Z")).next(), None);
    }

    #[test]
    fn rules_are_checked() {
        let start = TimeExpr::parse("start+1h").unwrap();
        let err = ScheduleRule::anchored(start, None).unwrap_err();
        assert!(err.to_string().contains("anchored to `start`"), "{err}");
        let pt = TimeExpr::parse("patch_tuesday").unwrap();
        assert_eq!(
            ScheduleRule::anchored(pt.clone(), Some(vec![13])).unwrap_err(),
            RuleError::Month(13)
        );
        assert_eq!(
            ScheduleRule::anchored(pt, Some(vec![])).unwrap_err(),
            RuleError::NoMonths
        );
    }

    #[test]
    fn schedule_ends_after_year_9999() {
        let schedule = Schedule::new(vec![at("patch_tuesday")], chrono_tz::UTC, vec![]);
        let fires: Vec<Fire> = schedule.fires_from(utc("9999-11-01T00:00:00Z")).collect();
        let cycles: Vec<String> = fires.iter().map(|f| f.cycle.to_string()).collect();
        assert_eq!(cycles, ["9999-11", "9999-12"]);
    }
}
