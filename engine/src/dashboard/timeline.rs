//! A run's timeline (Gantt) as inline SVG: one row per step (and per undo step in a
//! rollback), the planned start (`at`) as a hollow marker joined to the actual start, then the
//! step's phases as separate segments — waiting for its time, awaiting a person, running,
//! waiting to retry, rolling back — its deadline as a red tick, and a "now" line.
//!
//! The phases come from the run's audit events ([`phases`]): each step-level event that
//! changes what the step does opens a segment that the next one closes; a segment still open
//! ends at the run's end, or "now" while the run goes on. "Now" is passed in (the injected
//! clock), never read here.

use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};

use super::graph::px;
use crate::store::EventRow;

/// Width of the step names' column.
const LABEL_WIDTH: f64 = 190.0;
/// Width of the time axis.
const CHART_WIDTH: f64 = 720.0;
/// Height of one row.
const ROW_HEIGHT: f64 = 26.0;
/// Height of the axis band above the rows.
const AXIS_HEIGHT: f64 = 30.0;
/// Tick spacings tried, smallest first, in minutes.
const TICKS: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 180, 360, 720, 1440, 10080];
/// At most this many ticks on the axis.
const MAX_TICKS: i64 = 8;

/// What a step was doing during a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its `at` (or its needs).
    Waiting,
    /// An approval or manual task waiting for people.
    AwaitingPerson,
    Running,
    /// Failed an attempt; waiting for the next (backoff).
    Retry,
    /// An undo step running in a rollback.
    Rollback,
}

impl Phase {
    /// The phase's word and fill colour.
    pub fn look(self) -> (&'static str, &'static str) {
        match self {
            Phase::Waiting => ("waiting", "#d4a72c"),
            Phase::AwaitingPerson => ("awaiting a person", "#8250df"),
            Phase::Running => ("running", "#0969da"),
            Phase::Retry => ("waiting to retry", "#bc4c00"),
            Phase::Rollback => ("rolling back", "#cf222e"),
        }
    }

    const ALL: [Phase; 5] = [
        Phase::Waiting,
        Phase::AwaitingPerson,
        Phase::Running,
        Phase::Retry,
        Phase::Rollback,
    ];
}

/// One stretch of one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub phase: Phase,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One row of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub step: String,
    /// The planned start, from the step's `at` and its needs' (see [`crate::plan`]).
    pub planned: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub segments: Vec<Segment>,
}

/// The whole chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineView {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    pub rows: Vec<TimelineRow>,
}

/// The phases of `step` (its step-level row: events without a host) from the run's events in
/// `seq` order; a phase still open ends at `until`. An undo step's running is [`Phase::Rollback`].
pub fn phases(events: &[EventRow], step: &str, undo: bool, until: DateTime<Utc>) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut open: Option<(Phase, DateTime<Utc>)> = None;
    let own = events
        .iter()
        .filter(|e| e.step_id.as_deref() == Some(step) && e.details.get("host").is_none());
    for event in own {
        let Some(next) = phase_after(&event.action, undo) else {
            continue;
        };
        if let Some((phase, from)) = open.take() {
            out.push(Segment {
                phase,
                from,
                to: event.at,
            });
        }
        open = next.map(|phase| (phase, event.at));
    }
    if let Some((phase, from)) = open {
        out.push(Segment {
            phase,
            from,
            to: until.max(from),
        });
    }
    out
}

/// What a step does after an event: `Some(Some(phase))` opens a phase, `Some(None)` ends
/// the open one, `None` changes nothing (notes, decisions, overdue reports).
fn phase_after(action: &str, undo: bool) -> Option<Option<Phase>> {
    let running = if undo {
        Phase::Rollback
    } else {
        Phase::Running
    };
    Some(match action {
        "step.waiting" => Some(Phase::Waiting),
        "step.awaiting_input" => Some(Phase::AwaitingPerson),
        "step.started" | "step.running" | "step.resumed" => Some(running),
        "step.retrying" => Some(Phase::Retry),
        "step.pending" | "step.succeeded" | "step.failed" | "step.skipped" | "step.cancelled"
        | "step.interrupted" => None,
        _ => return None,
    })
}

/// The time axis: maps instants to x.
struct Axis {
    from: DateTime<Utc>,
    span: f64,
}

impl Axis {
    fn of(view: &TimelineView) -> Axis {
        let end = view.end.unwrap_or(view.now);
        let instants = view.rows.iter().flat_map(|r| {
            r.segments
                .iter()
                .flat_map(|s| [s.from, s.to])
                .chain(r.planned)
                .chain(r.deadline)
        });
        let (mut from, mut to) = (view.start.min(end), end.max(view.now));
        for at in instants {
            from = from.min(at);
            to = to.max(at);
        }
        let span = ((to - from).num_seconds() as f64).max(60.0) * 1.04;
        Axis { from, span }
    }

    fn x(&self, at: DateTime<Utc>) -> f64 {
        LABEL_WIDTH + (at - self.from).num_seconds() as f64 / self.span * CHART_WIDTH
    }

    /// Tick instants: round multiples of the smallest spacing giving at most [`MAX_TICKS`].
    fn ticks(&self) -> Vec<DateTime<Utc>> {
        let minutes = self.span / 60.0;
        let step = TICKS
            .into_iter()
            .find(|t| minutes / (*t as f64) <= MAX_TICKS as f64)
            .unwrap_or(10080);
        let step_s = step * 60;
        let first = (self.from.timestamp() + step_s - 1).div_euclid(step_s) * step_s;
        let last = self.from.timestamp() + self.span as i64;
        (0..)
            .map(|k| first + k * step_s)
            .take_while(|t| *t <= last)
            .filter_map(|t| DateTime::from_timestamp(t, 0))
            .collect()
    }

    fn tick_label(&self, at: DateTime<Utc>) -> String {
        if self.span > Duration::days(1).num_seconds() as f64 {
            at.format("%m-%d %H:%M").to_string()
        } else {
            at.format("%H:%M").to_string()
        }
    }
}

/// The chart as an `<svg>` element (UTC on the axis).
pub fn timeline_svg(view: &TimelineView) -> Markup {
    let axis = Axis::of(view);
    let height = AXIS_HEIGHT + ROW_HEIGHT * view.rows.len() as f64 + 8.0;
    let width = LABEL_WIDTH + CHART_WIDTH + 10.0;
    let now_x = axis.x(view.now);
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" role="img"
            aria-labelledby="timeline-title" width=(px(width)) height=(px(height))
            viewBox=(format!("0 0 {} {}", px(width), px(height)))
            font-family="system-ui, sans-serif" font-size="12" {
            title #timeline-title { "The run's timeline: planned and actual start of each step, its phases, deadlines and now (UTC)" }
            (axis_marks(&axis, height))
            @for (k, row) in view.rows.iter().enumerate() {
                (timeline_row(&axis, row, AXIS_HEIGHT + ROW_HEIGHT * k as f64))
            }
            @if view.end.is_none() {
                g.now {
                    title { "now: " (view.now.format("%Y-%m-%d %H:%M:%S UTC")) }
                    line x1=(px(now_x)) x2=(px(now_x)) y1="14" y2=(px(height - 4.0))
                        stroke="#cf222e" stroke-width="1.5" stroke-dasharray="4 3" {}
                    text x=(px(now_x + 3.0)) y="12" fill="#a40e26" font-weight="600" { "now" }
                }
            }
        }
    }
}

fn axis_marks(axis: &Axis, height: f64) -> Markup {
    html! {
        g.axis fill="#57606a" {
            @for tick in axis.ticks() {
                @let x = axis.x(tick);
                line x1=(px(x)) x2=(px(x)) y1=(px(AXIS_HEIGHT - 6.0)) y2=(px(height - 4.0))
                    stroke="#d0d7de" {}
                text x=(px(x)) y=(px(AXIS_HEIGHT - 10.0)) text-anchor="middle" {
                    (axis.tick_label(tick))
                }
            }
        }
    }
}

fn timeline_row(axis: &Axis, row: &TimelineRow, top: f64) -> Markup {
    let middle = top + ROW_HEIGHT / 2.0;
    let first_start = row.segments.first().map(|s| s.from);
    html! {
        g.row data-step=(row.step) {
            text x="4" y=(px(middle + 4.0)) fill="#1f2328" { (short(&row.step)) }
            @if let Some(planned) = row.planned {
                @let x = axis.x(planned);
                g.planned {
                    title { (row.step) " planned to start " (stamp(planned)) }
                    @if let Some(actual) = first_start {
                        line x1=(px(x)) x2=(px(axis.x(actual))) y1=(px(middle)) y2=(px(middle))
                            stroke="#8c959f" stroke-dasharray="2 2" {}
                    }
                    path d=(format!("M{},{} l5,5 l-5,5 l-5,-5 z", px(x), px(middle - 5.0)))
                        fill="#ffffff" stroke="#424a53" stroke-width="1.5" {}
                }
            }
            @for segment in &row.segments {
                @let (word, fill) = segment.phase.look();
                @let x = axis.x(segment.from);
                rect.segment data-phase=(word) x=(px(x)) y=(px(top + 6.0))
                    width=(px((axis.x(segment.to) - x).max(2.0))) height=(px(ROW_HEIGHT - 12.0))
                    fill=(fill) {
                    title { (row.step) ": " (word) " " (stamp(segment.from)) " – " (stamp(segment.to)) }
                }
            }
            @if let Some(deadline) = row.deadline {
                @let x = axis.x(deadline);
                g.deadline {
                    title { (row.step) " deadline " (stamp(deadline)) }
                    line x1=(px(x)) x2=(px(x)) y1=(px(top + 2.0)) y2=(px(top + ROW_HEIGHT - 2.0))
                        stroke="#cf222e" stroke-width="3" {}
                }
            }
        }
    }
}

/// The legend: every phase in words beside its colour, and the markers.
pub fn legend() -> Markup {
    html! {
        ul.legend {
            @for phase in Phase::ALL {
                @let (word, fill) = phase.look();
                li { svg width="12" height="12" aria-hidden="true" { rect width="12" height="12" fill=(fill) {} } " " (word) }
            }
            li { "◇ planned start" }
            li { "red tick: deadline" }
            li { "dashed red line: now" }
        }
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn short(step: &str) -> String {
    if step.chars().count() <= 26 {
        return step.to_string();
    }
    let cut: String = step.chars().take(25).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + minute * 60, 0).unwrap()
    }

    fn event(
        seq: i64,
        minute: i64,
        action: &str,
        step: &str,
        details: serde_json::Value,
    ) -> EventRow {
        EventRow {
            seq,
            at: at(minute),
            actor: "engine".into(),
            action: action.into(),
            run_id: Some("r".into()),
            step_id: Some(step.into()),
            details,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn events_become_separate_phases_and_host_events_are_left_out() {
        let events = vec![
            event(1, 0, "step.waiting", "patch", json!({})),
            event(2, 10, "step.started", "patch", json!({"attempt": 1})),
            event(3, 11, "step.started", "patch", json!({"host": "web1"})),
            event(4, 12, "step.retrying", "patch", json!({})),
            event(5, 15, "step.started", "patch", json!({"attempt": 2})),
            event(6, 16, "step.overdue", "patch", json!({})),
            event(7, 20, "step.succeeded", "patch", json!({})),
            event(8, 21, "step.awaiting_input", "other", json!({})),
        ];
        let phases: Vec<_> = phases(&events, "patch", false, at(30))
            .into_iter()
            .map(|s| (s.phase, s.from, s.to))
            .collect();
        assert_eq!(
            phases,
            vec![
                (Phase::Waiting, at(0), at(10)),
                (Phase::Running, at(10), at(12)),
                (Phase::Retry, at(12), at(15)),
                (Phase::Running, at(15), at(20)),
            ]
        );
        let open = super::phases(&events, "other", false, at(30));
        assert_eq!(open[0].phase, Phase::AwaitingPerson);
        assert_eq!(open[0].to, at(30));
    }

    #[test]
    fn an_undo_step_runs_as_rollback() {
        let events = vec![event(1, 0, "step.started", "undo:patch", json!({}))];
        assert_eq!(
            phases(&events, "undo:patch", true, at(5))[0].phase,
            Phase::Rollback
        );
    }

    #[test]
    fn the_chart_has_planned_segments_deadline_and_now_escaped() {
        let view = TimelineView {
            start: at(0),
            end: None,
            now: at(25),
            rows: vec![TimelineRow {
                step: "<b>patch</b>".into(),
                planned: Some(at(5)),
                deadline: Some(at(40)),
                segments: vec![Segment {
                    phase: Phase::AwaitingPerson,
                    from: at(8),
                    to: at(25),
                }],
            }],
        };
        let svg = timeline_svg(&view).into_string();
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;b&gt;patch&lt;/b&gt;"));
        assert!(svg.contains("data-phase=\"awaiting a person\""));
        assert!(svg.contains("class=\"planned\""));
        assert!(svg.contains("class=\"deadline\""));
        assert!(svg.contains(">now</text>"));
        let finished = TimelineView {
            end: Some(at(30)),
            ..view
        };
        assert!(
            !timeline_svg(&finished)
                .into_string()
                .contains(">now</text>")
        );
    }

    #[test]
    fn ticks_are_round_and_few() {
        let view = TimelineView {
            start: at(0),
            end: Some(at(600)),
            now: at(600),
            rows: vec![],
        };
        let ticks = Axis::of(&view).ticks();
        assert!(
            ticks.len() as i64 <= MAX_TICKS && !ticks.is_empty(),
            "{ticks:?}"
        );
        assert!(ticks.iter().all(|t| t.timestamp() % 3600 == 0));
    }
}
