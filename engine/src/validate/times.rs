//! Checks on time: the zone, schedules, blackouts, `at` and `deadline` expressions; and a
//! warning when a step's `at` comes before an upstream step's `at` (a timeline that cannot hold).

use chrono_tz::Tz;

use super::Ctx;
use crate::calendar::{self, AnchorContext, Blackout, Cycle, Schedule, ScheduleRule, TimeExpr};
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
    let rules = check_schedule(ctx);
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

fn check_schedule(ctx: &mut Ctx) -> Vec<ScheduleRule> {
    let runbook = ctx.runbook;
    let mut rules = Vec::new();
    for entry in &runbook.schedule {
        match (&entry.at, &entry.cron) {
            (Some(at), None) => {
                if let Some(rule) = anchored_rule(ctx, at, entry.months.as_ref()) {
                    rules.push(rule);
                }
            }
            (None, Some(cron)) => {
                if let Some(months) = &entry.months {
                    ctx.error(
                        months.loc,
                        "`months` goes with `at`; a cron expression has its own month field",
                    );
                }
                match calendar::parse_cron(&cron.value) {
                    Ok(schedule) => {
                        if let Some(note) =
                            calendar::fires_less_often_than_it_reads(&cron.value, &schedule)
                        {
                            ctx.warning(cron.loc, note);
                        }
                        rules.push(ScheduleRule::Cron(schedule));
                    }
                    Err(e) => ctx.error(cron.loc, one_line(&e, &cron.value)),
                }
            }
            (Some(at), Some(_)) => {
                ctx.error(at.loc, "a schedule entry has `at` or `cron`, not both")
            }
            (None, None) => {
                let loc = entry
                    .months
                    .as_ref()
                    .map(|m| m.loc)
                    .unwrap_or(runbook.name.loc);
                ctx.error(
                    loc,
                    "a schedule entry needs `at` (a time expression) or `cron`",
                );
            }
        }
    }
    check_one_kind_of_cycle(ctx);
    rules
}

/// Anchored entries give month cycles ("YYYY-MM"), cron entries day cycles ("YYYY-MM-DD"); one
/// runbook's cycles must be of one kind, or "the last cycle dealt with" would compare a month
/// with a day, and `{{cycle}}` would change shape from run to run.
fn check_one_kind_of_cycle(ctx: &mut Ctx) {
    let runbook = ctx.runbook;
    // (An entry with both is an error of its own.)
    let entries = || {
        runbook
            .schedule
            .iter()
            .filter(|e| e.at.is_none() || e.cron.is_none())
    };
    let first_at = entries().find_map(|e| e.at.as_ref());
    let first_cron = entries().find_map(|e| e.cron.as_ref());
    let (Some(at), Some(cron)) = (first_at, first_cron) else {
        return;
    };
    let later = if at.loc.line > cron.loc.line {
        at
    } else {
        cron
    };
    ctx.error(
        later.loc,
        "this schedule mixes `at` entries (one cycle a month, YYYY-MM) with `cron` entries (one cycle a day, YYYY-MM-DD); a runbook's cycles are all of one kind: put them in two runbooks",
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
