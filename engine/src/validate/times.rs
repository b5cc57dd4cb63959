//! Checks on time: the zone, schedules, blackouts, `at` and `deadline` expressions; and a
//! warning when a step's `at` comes before an upstream step's `at` (a timeline that cannot hold).

use chrono_tz::Tz;

use super::Ctx;
use chrono::{NaiveDateTime, NaiveTime};

use crate::calendar::rrule::{self, Recurrence, Rrule};
use crate::calendar::{self, AnchorContext, Blackout, Cycle, Schedule, ScheduleRule, TimeExpr};
use crate::runbook::ScheduleEntry;
use crate::yaml::{Loc, Located};

/// The parsed `at` and `deadline` of one step.
#[derive(Debug, Clone, Default)]
pub struct StepTimes {
    pub at: Option<TimeExpr>,
    pub deadline: Option<TimeExpr>,
}

/// Months checked for timelines that cannot hold: three years cover every way Patch Tuesday
/// and the other anchors fall against each other often enough to catch a bad order.
const REFERENCE_YEARS: std::ops::RangeInclusive<i32> = 2025..=2027;

pub(super) fn check(ctx: &mut Ctx) -> Option<(Tz, Vec<StepTimes>, Schedule)> {
    let tz = check_zone(ctx);
    let rules = check_schedule(ctx, tz.unwrap_or(Tz::UTC));
    let blackouts = check_blackouts(ctx);
    let times = check_steps(ctx);
    let tz = tz?;
    check_order(ctx, tz, &times);
    Some((tz, times, Schedule::new(rules, tz, blackouts)))
}

fn check_zone(ctx: &mut Ctx) -> Option<Tz> {
    let Some(zone) = &ctx.runbook.timezone else {
        return Some(Tz::UTC);
    };
    match calendar::parse_zone(&zone.value) {
        Ok(tz) => Some(tz),
        Err(e) => {
            ctx.error(zone.loc, e);
            None
        }
    }
}

/// Parses a time expression, pointing an error at the column inside the expression.
fn parse_expr(ctx: &mut Ctx, text: &Located<String>, field: &str) -> Option<TimeExpr> {
    match TimeExpr::parse(&text.value) {
        Ok(expr) => Some(expr),
        Err(e) => {
            let quoted = ctx.char_at(text.loc).is_some_and(|c| c == '"' || c == '\'');
            let column = text.loc.column + u32::from(quoted) + e.offset as u32;
            let loc = Loc {
                line: text.loc.line,
                column,
            };
            ctx.error(
                loc,
                format!("malformed time expression in `{field}`: {}", e.message),
            );
            None
        }
    }
}

fn check_schedule(ctx: &mut Ctx, tz: Tz) -> Vec<ScheduleRule> {
    let runbook = ctx.runbook;
    let mut rules = Vec::new();
    for entry in &runbook.schedule {
        if let Some(rule) = schedule_rule(ctx, tz, entry) {
            rules.push(rule);
        }
    }
    check_one_kind_of_cycle(ctx);
    rules
}

/// One entry: exactly one of `at`, `cron`, `rrule`, and only the fields that go with it.
fn schedule_rule(ctx: &mut Ctx, tz: Tz, entry: &ScheduleEntry) -> Option<ScheduleRule> {
    let kinds = [
        ("at", &entry.at),
        ("cron", &entry.cron),
        ("rrule", &entry.rrule),
    ];
    let given: Vec<(&str, &Located<String>)> = kinds
        .iter()
        .filter_map(|(name, field)| field.as_ref().map(|f| (*name, f)))
        .collect();
    match given[..] {
        [] => {
            let loc = entry_loc(entry).unwrap_or(ctx.runbook.name.loc);
            ctx.error(
                loc,
                "a schedule entry needs `at` (a time expression), `cron` or `rrule`",
            );
            None
        }
        [(kind, text)] => {
            check_fields_of(ctx, kind, entry);
            match kind {
                "at" => anchored_rule(ctx, text, entry.months.as_ref()),
                "cron" => cron_rule(ctx, text),
                _ => recurrence_rule(ctx, tz, text, entry),
            }
        }
        [(first, text), (second, _), ..] => {
            ctx.error(text.loc, format!("a schedule entry has one of `at`, `cron` or `rrule`, not both `{first}` and `{second}`"));
            None
        }
    }
}

/// The location of the first field an entry has, for errors about the entry as a whole.
fn entry_loc(entry: &ScheduleEntry) -> Option<Loc> {
    let fields = [
        &entry.start,
        &entry.exdates.first().cloned(),
        &entry.rdates.first().cloned(),
    ];
    let months = entry.months.as_ref().map(|m| m.loc);
    months.or_else(|| fields.iter().find_map(|f| f.as_ref().map(|f| f.loc)))
}

/// `months` goes with `at`; `start`, `exdates` and `rdates` with `rrule`.
fn check_fields_of(ctx: &mut Ctx, kind: &str, entry: &ScheduleEntry) {
    if kind != "at"
        && let Some(months) = &entry.months
    {
        ctx.error(
            months.loc,
            format!("`months` goes with `at`; a `{kind}` entry says its months itself"),
        );
    }
    if kind == "rrule" {
        return;
    }
    let rrule_only = [
        ("start", entry.start.as_ref()),
        ("exdates", entry.exdates.first()),
        ("rdates", entry.rdates.first()),
    ];
    for (field, value) in rrule_only {
        if let Some(value) = value {
            ctx.error(
                value.loc,
                format!("`{field}` goes with `rrule`, not with `{kind}`"),
            );
        }
    }
}

fn cron_rule(ctx: &mut Ctx, cron: &Located<String>) -> Option<ScheduleRule> {
    match calendar::parse_cron(&cron.value) {
        Ok(schedule) => {
            if let Some(note) = calendar::fires_less_often_than_it_reads(&cron.value, &schedule) {
                ctx.warning(cron.loc, note);
            }
            Some(ScheduleRule::Cron(schedule))
        }
        Err(e) => {
            ctx.error(cron.loc, one_line(&e, &cron.value));
            None
        }
    }
}

/// An `rrule` entry: the rule, its start, EXDATEs and RDATEs; an error for a rule that needs a
/// start it lacks or never fires, a warning for an EXDATE that is not an occurrence.
fn recurrence_rule(
    ctx: &mut Ctx,
    tz: Tz,
    text: &Located<String>,
    entry: &ScheduleEntry,
) -> Option<ScheduleRule> {
    let rule = match Rrule::parse(&text.value) {
        Ok(rule) => rule,
        Err(e) => {
            let loc = inside(ctx, text, e.offset);
            ctx.error(loc, format!("invalid rrule: {e}"));
            return None;
        }
    };
    let start = match &entry.start {
        Some(start) => Some(local_time(ctx, start, "start", None)?),
        None => None,
    };
    if start.is_none() && (rule.counts_from_start() || rule.needs_start_for_days()) {
        let why = if rule.counts_from_start() {
            "INTERVAL, COUNT and UNTIL count from the first occurrence"
        } else {
            "without BYDAY or BYMONTHDAY the rule takes its day from the first occurrence"
        };
        ctx.error(
            text.loc,
            format!("this rrule needs `start: YYYY-MM-DD HH:MM` (its first occurrence): {why}"),
        );
        return None;
    }
    let start_time = start.map(|s| s.time());
    let mut exdates = Vec::new();
    for exdate in &entry.exdates {
        exdates.push(date(ctx, exdate)?);
    }
    let mut rdates = Vec::new();
    for rdate in &entry.rdates {
        rdates.push(local_time(ctx, rdate, "rdates", start_time)?);
    }
    rdates.sort();
    let recurrence = Recurrence {
        start: start.unwrap_or_else(|| rrule::DEFAULT_START.and_time(NaiveTime::MIN)),
        rule,
        exdates,
        rdates,
    };
    check_occurrences(ctx, tz, text, entry, &recurrence)?;
    Some(ScheduleRule::Recurrence(Box::new(recurrence)))
}

/// A rule that never fires is an error; an EXDATE on which it would not fire anyway, a warning.
fn check_occurrences(
    ctx: &mut Ctx,
    tz: Tz,
    text: &Located<String>,
    entry: &ScheduleEntry,
    recurrence: &Recurrence,
) -> Option<()> {
    let without_exdates = Recurrence {
        exdates: Vec::new(),
        ..recurrence.clone()
    };
    let from = recurrence.start.date();
    if recurrence.occurrences_from(tz, from).next().is_none() {
        ctx.error(
            text.loc,
            "this rrule never fires (no date matches it, or every one is in `exdates`)",
        );
        return None;
    }
    for (exdate, located) in recurrence.exdates.iter().zip(&entry.exdates) {
        let hit = without_exdates.occurrences_from(tz, *exdate).next();
        if hit.is_none_or(|at| at.date() != *exdate) {
            ctx.warning(
                located.loc,
                format!(
                    "{exdate} is not a date this rrule fires on, so leaving it out changes nothing"
                ),
            );
        }
    }
    Some(())
}

/// The location `offset` bytes into a scalar (past its opening quote, if any).
fn inside(ctx: &Ctx, text: &Located<String>, offset: usize) -> Loc {
    let quoted = ctx.char_at(text.loc).is_some_and(|c| c == '"' || c == '\'');
    Loc {
        line: text.loc.line,
        column: text.loc.column + u32::from(quoted) + offset as u32,
    }
}

/// `YYYY-MM-DD HH:MM` (or `THH:MM`, seconds allowed); a bare date takes `default_time`.
fn local_time(
    ctx: &mut Ctx,
    text: &Located<String>,
    field: &str,
    default_time: Option<NaiveTime>,
) -> Option<NaiveDateTime> {
    let value = text.value.trim();
    let formats = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ];
    if let Some(at) = formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
    {
        return Some(at);
    }
    if let (Some(time), Ok(day)) = (default_time, calendar::parse_date(value)) {
        return Some(day.and_time(time));
    }
    ctx.error(text.loc, format!("`{field}`: `{value}` is not a local time of the form YYYY-MM-DD HH:MM (e.g. 2027-01-04 09:00)"));
    None
}

/// Anchored entries give month cycles ("YYYY-MM"), cron and rrule entries day cycles
/// ("YYYY-MM-DD"); one runbook's cycles must be of one kind, or "the last cycle dealt with"
/// would compare a month with a day, and `{{cycle}}` would change shape from run to run.
fn check_one_kind_of_cycle(ctx: &mut Ctx) {
    let runbook = ctx.runbook;
    // (An entry with several kinds is an error of its own.)
    let single = |e: &&ScheduleEntry| {
        [&e.at, &e.cron, &e.rrule]
            .iter()
            .filter(|f| f.is_some())
            .count()
            == 1
    };
    let entries = || runbook.schedule.iter().filter(single);
    let first_at = entries().find_map(|e| e.at.as_ref());
    let first_day = entries().find_map(|e| e.cron.as_ref().or(e.rrule.as_ref()));
    let (Some(at), Some(day)) = (first_at, first_day) else {
        return;
    };
    let later = if at.loc.line > day.loc.line { at } else { day };
    ctx.error(
        later.loc,
        "this schedule mixes `at` entries (one cycle a month, YYYY-MM) with `cron` or `rrule` entries (one cycle a day, YYYY-MM-DD); a runbook's cycles are all of one kind: put them in two runbooks",
    );
}

/// The cron crate explains a syntax error on the last of several lines, under a caret.
fn one_line(message: &str, expression: &str) -> String {
    match message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()[..]
    {
        [_, .., last] => format!("invalid cron expression `{expression}`: {last}"),
        _ => message.to_string(),
    }
}

fn anchored_rule(
    ctx: &mut Ctx,
    at: &Located<String>,
    months: Option<&Located<Vec<Located<u32>>>>,
) -> Option<ScheduleRule> {
    let expr = parse_expr(ctx, at, "schedule.at")?;
    if expr.is_start_anchored() {
        ctx.error(at.loc, "a schedule cannot be anchored on `start` (the run's start): use a calendar anchor such as `patch_tuesday`");
        return None;
    }
    let mut valid_months = Vec::new();
    for month in months.map(|m| m.value.as_slice()).unwrap_or_default() {
        if (1..=12).contains(&month.value) {
            valid_months.push(month.value);
        } else {
            ctx.error(
                month.loc,
                format!("month {} is out of range 1-12", month.value),
            );
        }
    }
    let months = months.map(|_| valid_months);
    Some(ScheduleRule::Anchored { expr, months })
}

fn check_blackouts(ctx: &mut Ctx) -> Vec<Blackout> {
    let runbook = ctx.runbook;
    let mut out = Vec::new();
    for blackout in &runbook.blackouts {
        let from = date(ctx, &blackout.from);
        let to = date(ctx, &blackout.to);
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        if to < from {
            ctx.error(
                blackout.to.loc,
                format!("the blackout ends ({to}) before it starts ({from})"),
            );
            continue;
        }
        out.push(Blackout {
            from,
            to,
            reason: blackout.reason.clone(),
        });
    }
    out
}

fn date(ctx: &mut Ctx, text: &Located<String>) -> Option<chrono::NaiveDate> {
    calendar::parse_date(&text.value)
        .map_err(|e| ctx.error(text.loc, e))
        .ok()
}

fn check_steps(ctx: &mut Ctx) -> Vec<StepTimes> {
    let runbook = ctx.runbook;
    runbook
        .steps
        .values()
        .map(|step| StepTimes {
            at: step.at.as_ref().and_then(|at| parse_expr(ctx, at, "at")),
            deadline: step
                .deadline
                .as_ref()
                .and_then(|d| parse_expr(ctx, d, "deadline")),
        })
        .collect()
}

/// Warns where a step may not start before a step it needs may start, or where a deadline
/// falls before the step's own `at`.
fn check_order(ctx: &mut Ctx, tz: Tz, times: &[StepTimes]) {
    let runbook = ctx.runbook;
    for (index, (id, step)) in runbook.steps.iter().enumerate() {
        let Some(own) = &times[index].at else {
            continue;
        };
        for up in ctx.dag.upstream(index) {
            let Some(theirs) = &times[up].at else {
                continue;
            };
            if let Some(cycle) = first_cycle_where(tz, theirs, own) {
                let loc = step.at.as_ref().map_or(id.loc, |a| a.loc);
                let up_id = ctx.dag.id(up).to_string();
                ctx.warning(loc, format!("`{}` may start at `{own}`, before `{up_id}` (which it waits for) may start at `{theirs}` (e.g. in {cycle}): the timeline cannot hold", id.value));
                break;
            }
        }
        if let (Some(deadline), Some(loc)) = (&times[index].deadline, step.deadline.as_ref())
            && let Some(cycle) = first_cycle_where(tz, own, deadline)
        {
            ctx.warning(loc.loc, format!("the deadline `{deadline}` of `{}` comes before its `at` `{own}` (e.g. in {cycle})", id.value));
        }
    }
}

/// The first reference cycle in which `later` resolves strictly before `earlier`.
fn first_cycle_where(tz: Tz, earlier: &TimeExpr, later: &TimeExpr) -> Option<Cycle> {
    if earlier.is_start_anchored() != later.is_start_anchored() {
        return None; // a calendar time and a run-relative time cannot be compared ahead
    }
    let start = chrono::DateTime::from_timestamp(1_767_225_600, 0); // 2026-01-01T00:00Z, any instant serves
    for year in REFERENCE_YEARS {
        for month in 1..=12 {
            let cycle = Cycle::new(year, month)?;
            let anchor = AnchorContext { cycle, start };
            let (Ok(a), Ok(b)) = (earlier.resolve(tz, &anchor), later.resolve(tz, &anchor)) else {
                return None;
            };
            if b < a {
                return Some(cycle);
            }
        }
    }
    None
}
