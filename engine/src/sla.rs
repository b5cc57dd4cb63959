//! Planned patching against the patch SLA (issue 14 item 5): what `plan`, `calendar` and
//! `validate` warn of before a cycle runs. Pure: a checked runbook and a cycle (or a fire) in,
//! the misses out.
//!
//! The deadline is the one [`crate::compliance`] measures runs against: the release (Patch
//! Tuesday of the cycle, or the runbook's `released` param default for emergency runbooks) plus
//! the `sla:` entry of the runbook's severity (its `severity`, else its `severity` param's
//! default). The patching steps are the rows compliance measures: the fan-out steps
//! (`for_each`), or, in a runbook without fan-out, every step with `uses`. A miss is a patching
//! step whose planned start falls after the deadline, or a cycle a blackout skips (its hosts
//! wait for a later cycle, past the deadline).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::calendar::{Cycle, Fire};
use crate::plan::{PlanFor, plan};
use crate::runbook::Severity;
use crate::validate::CheckedRunbook;
use crate::yaml::Located;
use patchday_connectors::values::DurationText;

/// The deadline of one cycle and where the SLA that sets it is written.
#[derive(Debug, Clone)]
pub struct Deadline<'a> {
    pub severity: Severity,
    /// The `sla:` entry of the severity.
    pub field: &'a Located<DurationText>,
    pub released: NaiveDate,
    pub at: DateTime<Utc>,
}

/// A patching step planned after the deadline, or a cycle skipped by a blackout.
#[derive(Debug, Clone)]
pub struct Miss<'a> {
    pub cycle: Cycle,
    pub deadline: Deadline<'a>,
    pub what: Late,
}

/// What is late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Late {
    /// `step` is planned to start at `planned`.
    Step {
        step: String,
        planned: DateTime<Utc>,
    },
    /// A blackout skips the cycle: its patching steps do not run in it.
    Skipped {
        blackout: String,
        steps: Vec<String>,
    },
}

impl Miss<'_> {
    /// One line naming the cycle, the step, the planned time and the deadline (in the
    /// runbook's zone `tz`).
    pub fn message(&self, tz: Tz) -> String {
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339();
        let d = &self.deadline;
        let sla = format!(
            "the SLA deadline {} ({}: {} from the release on {})",
            local(d.at),
            severity_name(d.severity),
            d.field.value.0,
            d.released
        );
        match &self.what {
            Late::Step { step, planned } => format!(
                "cycle {}: step `{step}` is planned at {}, after {sla}",
                self.cycle,
                local(*planned)
            ),
            Late::Skipped { blackout, steps } => format!(
                "cycle {}: the blackout `{blackout}` skips the cycle, so its patching ({}) does not run before {sla}",
                self.cycle,
                steps
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The lowercase name of a severity, as written in runbooks.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::Important => "important",
        Severity::Moderate => "moderate",
        Severity::Low => "low",
    }
}

/// The deadline of `cycle`, when the runbook declares an SLA for its severity.
pub fn deadline(checked: &CheckedRunbook, cycle: Cycle) -> Option<Deadline<'_>> {
    let runbook = &checked.runbook;
    let param_default = |name: &str| {
        runbook
            .params
            .iter()
            .find(|(key, _)| key.value == name)
            .and_then(|(_, param)| param.default.as_deref())
    };
    let severity = runbook
        .severity
        .or_else(|| param_default("severity")?.parse().ok())?;
    let field = runbook.sla.as_ref()?.field(severity)?;
    let released = param_default("released")
        .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .unwrap_or_else(|| crate::calendar::patch_tuesday(cycle));
    Some(Deadline {
        severity,
        field,
        released,
        at: crate::compliance::deadline(checked.tz, released, field.value.duration()),
    })
}

/// The patching steps: the fan-out steps, else every step with `uses`.
fn patching_steps(checked: &CheckedRunbook) -> Vec<&str> {
    let steps = &checked.runbook.steps;
    let fan_out: Vec<&str> = steps
        .iter()
        .filter(|(_, s)| s.for_each.is_some())
        .map(|(id, _)| id.value.as_str())
        .collect();
    if !fan_out.is_empty() {
        return fan_out;
    }
    steps
        .iter()
        .filter(|(_, s)| s.uses.is_some())
        .map(|(id, _)| id.value.as_str())
        .collect()
}

/// The misses of a run planned for `target` (its cycle, or the cycle its start falls in).
pub fn check_plan(checked: &CheckedRunbook, target: PlanFor) -> Vec<Miss<'_>> {
    let planned = plan(checked, target);
    let Some(cycle) = target.cycle.or_else(|| {
        target
            .start
            .map(|s| Cycle::of(s.with_timezone(&checked.tz).date_naive()))
    }) else {
        return Vec::new();
    };
    let Some(deadline) = deadline(checked, cycle) else {
        return Vec::new();
    };
    let patching = patching_steps(checked);
    planned
        .steps
        .iter()
        .filter(|s| patching.contains(&s.id.as_str()))
        .filter_map(|s| {
            let at = s.planned()?.to_utc();
            (at > deadline.at).then(|| Miss {
                cycle,
                deadline: deadline.clone(),
                what: Late::Step {
                    step: s.id.clone(),
                    planned: at,
                },
            })
        })
        .collect()
}

/// The misses of the cycle `fire` starts: skipped by a blackout, or planned late.
pub fn check_fire<'a>(checked: &'a CheckedRunbook, fire: &Fire) -> Vec<Miss<'a>> {
    if let Some(blackout) = &fire.blackout {
        let Some(deadline) = deadline(checked, fire.cycle) else {
            return Vec::new();
        };
        let steps = patching_steps(checked)
            .into_iter()
            .map(str::to_string)
            .collect();
        return vec![Miss {
            cycle: fire.cycle,
            deadline,
            what: Late::Skipped {
                blackout: blackout.clone(),
                steps,
            },
        }];
    }
    let target = PlanFor {
        cycle: Some(fire.cycle),
        start: Some(fire.fires_at.to_utc()),
    };
    check_plan(checked, target)
}

/// The misses of the next `count` cycles the schedule fires from `from`.
pub fn check_cycles(checked: &CheckedRunbook, from: DateTime<Utc>, count: usize) -> Vec<Miss<'_>> {
    if checked.runbook.sla.is_none() {
        return Vec::new();
    }
    checked
        .schedule
        .fires_from(from)
        .take(count)
        .flat_map(|fire| check_fire(checked, &fire))
        .collect()
}
