//! Planning: the resolved DAG of a checked runbook with each step's wave and planned start,
//! and its renderings (text table, JSON per DESIGN §8, Graphviz dot, Mermaid).
//!
//! A step's planned start is the latest of: the run's start, its own `at`, and the planned
//! starts of the steps it needs. Without a cycle or start, times stay unknown (`null`).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::calendar::ics::Milestone;
use crate::calendar::{AnchorContext, Cycle, Fire};
use crate::validate::CheckedRunbook;

/// How a step without `uses` shows in the text plan.
const MILESTONE: &str = "(milestone)";

/// The plan of one runbook for one cycle (or with no cycle: the DAG alone).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub runbook: String,
    pub cycle: Option<String>,
    pub timezone: String,
    pub patch_tuesday: Option<NaiveDate>,
    /// When the run starts: the cycle's fire time, or `--start`.
    pub run_start: Option<String>,
    pub steps: Vec<PlannedStep>,
    /// The longest chain of dependencies, by step id.
    pub critical_path: Vec<String>,
}

/// One step in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub id: String,
    pub uses: Option<String>,
    pub needs: Vec<String>,
    /// RFC 3339 with the runbook zone's offset, or null when it cannot be known yet.
    pub planned_start: Option<String>,
    pub wave: usize,
    /// The step's `at` as written.
    pub at: Option<String>,
    /// The step's fan-out group.
    pub for_each: Option<String>,
    #[serde(skip)]
    planned: Option<DateTime<Tz>>,
}

/// What to plan for: a calendar cycle and/or the run's start instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanFor {
    pub cycle: Option<Cycle>,
    pub start: Option<DateTime<Utc>>,
}

/// Plans a checked runbook.
pub fn plan(checked: &CheckedRunbook, target: PlanFor) -> Plan {
    let dag = &checked.dag;
    let waves = dag.waves().unwrap_or_else(|| vec![1; dag.len()]);
    let run_start = run_start(checked, target);
    let cycle = target.cycle.or_else(|| {
        target
            .start
            .map(|s| Cycle::of(s.with_timezone(&checked.tz).date_naive()))
    });
    let anchor = cycle.map(|cycle| AnchorContext {
        cycle,
        start: target.start.or(run_start),
    });
    let mut steps: Vec<PlannedStep> = checked
        .runbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, (id, step))| PlannedStep {
            id: id.value.clone(),
            uses: step.uses.as_ref().map(|u| u.value.clone()),
            needs: dag
                .needs(i)
                .iter()
                .map(|&n| dag.id(n).to_string())
                .collect(),
            planned_start: None,
            wave: waves[i],
            at: step.at.as_ref().map(|a| a.value.clone()),
            for_each: step.for_each.as_ref().map(|f| f.group.value.clone()),
            planned: None,
        })
        .collect();
    let order = dag
        .topological()
        .map(<[usize]>::to_vec)
        .unwrap_or_else(|| (0..dag.len()).collect());
    for i in order {
        let own = checked.times[i].at.as_ref().map(|expr| {
            anchor
                .as_ref()
                .and_then(|a| expr.resolve(checked.tz, a).ok())
        });
        let from_needs: Vec<_> = dag.needs(i).iter().map(|&n| steps[n].planned).collect();
        let base = run_start.map(|s| s.with_timezone(&checked.tz));
        steps[i].planned = latest(base, own.into_iter().chain(from_needs));
        steps[i].planned_start = steps[i].planned.map(|t| t.to_rfc3339());
    }
    Plan {
        runbook: checked.runbook.name.value.clone(),
        cycle: target.cycle.map(|c| c.to_string()),
        timezone: checked.tz.name().to_string(),
        patch_tuesday: target.cycle.map(crate::calendar::patch_tuesday),
        run_start: run_start.map(|s| s.with_timezone(&checked.tz).to_rfc3339()),
        critical_path: dag
            .critical_path()
            .into_iter()
            .map(|i| dag.id(i).to_string())
            .collect(),
        steps,
    }
}

/// The milestones of the cycle `fire` starts: each step with an `at` (committee email, CAB,
/// patch night, report), at its planned start for a run starting at the fire, in the
/// runbook's order. What the month calendar and the calendar feed show of a cycle.
pub fn milestones(checked: &CheckedRunbook, fire: &Fire) -> Vec<Milestone> {
    let target = PlanFor {
        cycle: Some(fire.cycle),
        start: Some(fire.fires_at.to_utc()),
    };
    plan(checked, target)
        .steps
        .into_iter()
        .filter(|s| s.at.is_some())
        .filter_map(|s| {
            Some(Milestone {
                at: s.planned?,
                step: s.id,
            })
        })
        .collect()
}

/// The latest of `base` and `times`; unknown (`None`) when any of `times` is unknown, or
/// when nothing is known at all.
fn latest(
    base: Option<DateTime<Tz>>,
    times: impl IntoIterator<Item = Option<DateTime<Tz>>>,
) -> Option<DateTime<Tz>> {
    let mut out = base;
    for t in times {
        let t = t?;
        out = Some(out.map_or(t, |o| o.max(t)));
    }
    out
}

/// When the run starts: `--start` if given, else the fire time of the cycle's schedule.
fn run_start(checked: &CheckedRunbook, target: PlanFor) -> Option<DateTime<Utc>> {
    if target.start.is_some() {
        return target.start;
    }
    fire_of(checked, target.cycle?).map(|f| f.fires_at.with_timezone(&Utc))
}

/// The schedule's fire of `cycle` (with its blackout, if one skips it), if it fires one.
pub fn fire_of(checked: &CheckedRunbook, cycle: Cycle) -> Option<Fire> {
    let from = cycle
        .first_day()
        .pred_opt()?
        .pred_opt()?
        .and_hms_opt(0, 0, 0)?;
    let from = from.and_utc() - chrono::Duration::days(45);
    checked
        .schedule
        .fires_from(from)
        .take_while(|f| f.cycle <= cycle)
        .find(|f| f.cycle == cycle)
}

impl PlannedStep {
    /// The planned start, when it can be known.
    pub fn planned(&self) -> Option<DateTime<Tz>> {
        self.planned
    }
}

impl Plan {
    /// A table a person can read: wave, step, connector, planned start, needs.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "{}", self.runbook);
        if let Some(cycle) = &self.cycle {
            let _ = write!(out, "  cycle {cycle}");
        }
        if let Some(pt) = self.patch_tuesday {
            let _ = write!(out, "  (Patch Tuesday {pt})");
        }
        let _ = writeln!(out, "  [{}]", self.timezone);
        if let Some(start) = &self.run_start {
            let _ = writeln!(out, "run starts {}", local_text(start, &self.timezone));
        }
        let id_width = self
            .steps
            .iter()
            .map(|s| s.id.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let uses_width = self
            .steps
            .iter()
            .map(|s| s.uses.as_deref().unwrap_or(MILESTONE).len())
            .max()
            .unwrap_or(4);
        let _ = writeln!(
            out,
            "\n{:<4}  {:<id_width$}  {:<uses_width$}  {:<27}  needs",
            "wave", "step", "uses", "planned start"
        );
        for step in &self.steps_in_order() {
            let planned = step
                .planned_start
                .as_deref()
                .map(|t| local_text(t, &self.timezone))
                .unwrap_or_else(|| "-".into());
            let needs = if step.needs.is_empty() {
                "-".to_string()
            } else {
                step.needs.join(", ")
            };
            let uses = step.uses.as_deref().unwrap_or(MILESTONE);
            let fan = step
                .for_each
                .as_ref()
                .map(|g| format!("  [each host of {g}]"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<4}  {:<id_width$}  {:<uses_width$}  {:<27}  {needs}{fan}",
                step.wave, step.id, uses, planned
            );
        }
        let _ = writeln!(out, "\ncritical path: {}", self.critical_path.join(" -> "));
        out
    }

    /// Steps by planned start where known, then wave, then file order.
    fn steps_in_order(&self) -> Vec<&PlannedStep> {
        let mut order: Vec<(usize, &PlannedStep)> = self.steps.iter().enumerate().collect();
        order.sort_by_key(|(i, s)| (s.wave, s.planned, *i));
        order.sort_by_key(|(_, s)| s.planned.map(|p| p.timestamp()));
        order.into_iter().map(|(_, s)| s).collect()
    }

    /// Graphviz dot.
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
            self.runbook
        );
        for step in &self.steps {
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\"];",
                step.id,
                label(step, "\\n", &self.timezone)
            );
        }
        for step in &self.steps {
            for need in &step.needs {
                let _ = writeln!(out, "  \"{need}\" -> \"{}\";", step.id);
            }
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        let ids: std::collections::HashMap<&str, String> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), format!("s{i}")))
            .collect();
        for step in &self.steps {
            let _ = writeln!(
                out,
                "  {}[\"{}\"]",
                ids[step.id.as_str()],
                label(step, "<br/>", &self.timezone)
            );
        }
        for step in &self.steps {
            for need in &step.needs {
                let _ = writeln!(
                    out,
                    "  {} --> {}",
                    ids[need.as_str()],
                    ids[step.id.as_str()]
                );
            }
        }
        out
    }
}

/// `id`, connector and planned start, separated by `sep`, with quotes made safe.
fn label(step: &PlannedStep, sep: &str, timezone: &str) -> String {
    let mut text = step.id.clone();
    if let Some(uses) = &step.uses {
        text.push_str(sep);
        text.push_str(uses);
    }
    if let Some(group) = &step.for_each {
        text.push_str(&format!(" × {group}"));
    }
    if let Some(planned) = &step.planned_start {
        text.push_str(sep);
        text.push_str(&local_text(planned, timezone));
    }
    text.replace('"', "'")
}

/// `Sat 2026-12-12 22:00 EST` from an RFC 3339 text, in the zone named `timezone` (the one
/// format `simulate`, `calendar` and the emails show).
fn local_text(rfc3339: &str, timezone: &str) -> String {
    match (
        DateTime::parse_from_rfc3339(rfc3339),
        timezone.parse::<Tz>(),
    ) {
        (Ok(t), Ok(tz)) => crate::calendar::wall_clock(&t, tz),
        _ => rfc3339.to_string(),
    }
}
