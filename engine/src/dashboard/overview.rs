//! The overview at `/` (issue #13 item 1): what needs attention now, then what goes on and
//! what comes next.
//!
//! - Attention: approvals and tasks waiting, for whom and how long they have left;
//!   interrupted steps waiting for an operator (with links to retry, skip or abort); steps
//!   past their deadline; recent failed runs; runbook files rejected on reload, with the
//!   last rejection's errors.
//! - Running runs with their progress (steps and hosts finished of all).
//! - Every runbook's next cycles with a countdown ("in 3 days 4 h"), blacked-out cycles struck
//!   with their reason; recent runs; links to the month calendar.
//!
//! Pure: the view is built by `daemon/http/overview.rs` from bounded store reads; "now" comes
//! in with it (the injected clock), so countdowns need no script.

use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};

use super::actions::runbook_path;
use super::run::query_value;
use crate::calendar::AnchorContext;
use crate::pages::{NO_CYCLE, WaitView, run_path};
use crate::run::{anchor_cycle, run_start};
use crate::store::{RunRow, RunState, StepRow, StepState};
use crate::validate::CheckedRunbook;

/// Everything the overview shows.
#[derive(Debug, Clone, Default)]
pub struct OverviewView {
    pub now: DateTime<Utc>,
    /// Rows waiting for people, each with its run.
    pub waiting: Vec<RunWait>,
    /// Steps past their deadline and not finished.
    pub overdue: Vec<Overdue>,
    /// The most recent failed runs.
    pub failed: Vec<RunRow>,
    /// Runbook files rejected on the last reload, still rejected now.
    pub rejected: Vec<RejectedFile>,
    /// Running runs and their progress.
    pub running: Vec<Progress>,
    /// Every loaded runbook with its next cycles.
    pub runbooks: Vec<RunbookNext>,
    /// The most recent runs.
    pub recent: Vec<RunRow>,
    /// Whether the person may start runs and settle interrupted steps.
    pub operates: bool,
    /// The "Start a run" links (operators only) and the signed-in bar.
    pub footer: Markup,
}

/// A row waiting for people, with the run it belongs to.
#[derive(Debug, Clone)]
pub struct RunWait {
    pub run: RunRow,
    pub wait: WaitView,
}

/// A step past its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Overdue {
    pub run: RunRow,
    pub step: String,
    pub deadline: DateTime<Utc>,
}

/// A runbook file the daemon refused on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedFile {
    pub file: String,
    /// Rendered diagnostics, each naming file, line and column.
    pub errors: Vec<String>,
    /// The runbook whose last good version runs in its place.
    pub kept: Option<String>,
    /// When the audit log recorded this rejection (`runbook.rejected`).
    pub at: Option<DateTime<Utc>>,
}

/// A running run's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub run: RunRow,
    /// Steps finished, of all (the step rows, not each host's).
    pub steps: (usize, usize),
    /// Hosts finished, of all (the host rows of fanned-out steps).
    pub hosts: (usize, usize),
}

impl Progress {
    /// The progress of `run` from its own step rows and its hosts counted by (step, state)
    /// ([`crate::dashboard::run::host_counts`]).
    pub fn of(run: RunRow, own: &[StepRow], host_counts: &[(String, StepState, u64)]) -> Progress {
        let steps = own.iter().filter(|r| r.host.is_empty());
        let done_steps = steps.clone().filter(|r| r.state.is_terminal()).count();
        let hosts = host_counts
            .iter()
            .fold((0, 0), |(done, all), (_, state, n)| {
                let n = *n as usize;
                (done + if state.is_terminal() { n } else { 0 }, all + n)
            });
        Progress {
            run,
            steps: (done_steps, steps.count()),
            hosts,
        }
    }
}

/// A runbook and its next cycles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookNext {
    pub name: String,
    pub description: Option<String>,
    pub next: Vec<NextFire>,
}

/// One coming cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextFire {
    pub cycle: String,
    pub at: DateTime<Utc>,
    /// The blackout's reason when the cycle is skipped.
    pub blackout: Option<String>,
}

/// The steps of `run` past their deadline at `now` and not finished (the deadline resolved as
/// the driver resolves it: in the run's anchor month, from its start).
pub fn overdue_steps(
    checked: &CheckedRunbook,
    run: &RunRow,
    rows: &[StepRow],
    now: DateTime<Utc>,
) -> Vec<Overdue> {
    let anchor = AnchorContext {
        cycle: anchor_cycle(run, checked.tz),
        start: Some(run_start(run)),
    };
    let unfinished = |step: &str| {
        rows.iter()
            .any(|r| r.step == step && r.host.is_empty() && !r.state.is_terminal())
    };
    (0..checked.dag.len())
        .filter_map(|i| {
            let step = checked.dag.id(i);
            let deadline = checked.times.get(i)?.deadline.as_ref()?;
            let deadline = deadline.resolve(checked.tz, &anchor).ok()?.to_utc();
            (deadline <= now && unfinished(step)).then(|| Overdue {
                run: run.clone(),
                step: step.to_string(),
                deadline,
            })
        })
        .collect()
}

/// How long from `now` to `at` in words: "3 days 4 h", "4 h 10 min", "12 min", "less than a
/// minute" (nothing below the second unit shown).
pub fn span_words(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let span = at.signed_duration_since(now).max(TimeDelta::zero());
    let (days, hours, minutes) = (
        span.num_days(),
        span.num_hours() % 24,
        span.num_minutes() % 60,
    );
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match (days, hours, minutes) {
        (0, 0, 0) => "less than a minute".to_string(),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => plural(d, "day", "days"),
        (d, h, _) => format!("{} {h} h", plural(d, "day", "days")),
    }
}

/// "in 3 days 4 h", or "now" once `at` has come.
pub fn countdown(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    if at <= now {
        "now".to_string()
    } else {
        format!("in {}", span_words(now, at))
    }
}

/// The overview page's body.
pub fn overview_body(view: &OverviewView) -> Markup {
    html! {
        h1 { "Overview" }
        p { a href="/calendar" { "The month's patch calendar" } }
        h2 #attention { "Needs attention" }
        (attention(view))
        h2 #running { "Running" }
        (running(view))
        h2 #next { "Next cycles" }
        (runbooks(view))
        h2 #recent { "Recent runs" }
        (runs_table(&view.recent))
        (view.footer)
    }
}

fn attention(view: &OverviewView) -> Markup {
    let nothing = view.waiting.is_empty()
        && view.overdue.is_empty()
        && view.failed.is_empty()
        && view.rejected.is_empty();
    html! {
        @if nothing { p.muted { "Nothing needs attention." } }
        @let (interrupted, people): (Vec<&RunWait>, Vec<&RunWait>) =
            view.waiting.iter().partition(|w| w.wait.interrupted);
        @if !people.is_empty() {
            h3 { "Waiting for people" }
            table.waiting-people {
                thead { tr { th { "Run" } th { "Step" } th { "Who" } th { "For what" } th { "Time left" } } }
                tbody { @for w in people { (person_row(view.now, w)) } }
            }
        }
        @if !interrupted.is_empty() {
            h3 { "Interrupted, waiting for an operator" }
            table.interrupted {
                thead { tr { th { "Run" } th { "Step" } th { "Who" } th { "Answer" } } }
                tbody { @for w in interrupted { (interrupted_row(view.operates, w)) } }
            }
        }
        @if !view.overdue.is_empty() {
            h3 { "Past their deadline" }
            table.overdue {
                thead { tr { th { "Run" } th { "Step" } th { "Deadline" } } }
                tbody { @for o in &view.overdue {
                    tr {
                        td { (run_link(&o.run)) }
                        td { code { (o.step) } }
                        td { (stamp(o.deadline)) " (" (span_words(o.deadline, view.now)) " ago)" }
                    }
                } }
            }
        }
        @if !view.failed.is_empty() {
            h3 { "Failed runs" }
            table.failed {
                thead { tr { th { "Run" } th { "Finished" } } }
                tbody { @for run in &view.failed {
                    tr {
                        td { (run_link(run)) }
                        td { (run.finished_at.map_or("—".to_string(), stamp)) }
                    }
                } }
            }
        }
        @for rejected in &view.rejected { (rejected_file(rejected)) }
    }
}

/// A run as a link: "monthly 2026-12" (or "a manual run of …"), with the runbook linked.
fn run_link(run: &RunRow) -> Markup {
    html! {
        a href=(run_path(&run.id)) {
            @match run.cycle.as_deref().filter(|c| !c.is_empty()) {
                Some(cycle) => { "Run " (cycle) }
                None => "Manual run",
            }
        }
        " of " a href=(runbook_path(&run.runbook)) { (run.runbook) }
    }
}

fn step_and_host(wait: &WaitView) -> Markup {
    html! {
        code { (wait.step) }
        @if !wait.host.is_empty() { " on " span.nowrap { (wait.host) } }
    }
}

fn person_row(now: DateTime<Utc>, w: &RunWait) -> Markup {
    html! {
        tr {
            td { (run_link(&w.run)) }
            td { (step_and_host(&w.wait)) }
            td { (w.wait.who) }
            td { (w.wait.what) }
            td {
                @match w.wait.expires_at {
                    Some(at) if at > now => { (span_words(now, at)) " left (expires " (stamp(at)) ")" }
                    Some(at) => { "expired at " (stamp(at)) }
                    None => span.muted { "no expiry" },
                }
            }
        }
    }
}

fn interrupted_row(operates: bool, w: &RunWait) -> Markup {
    let resume = format!(
        "{}/resume?step={}&host={}",
        run_path(&w.run.id),
        query_value(&w.wait.step),
        query_value(&w.wait.host)
    );
    html! {
        tr {
            td { (run_link(&w.run)) }
            td { (step_and_host(&w.wait)) }
            td { (w.wait.who) }
            td {
                @if operates {
                    @for (decision, label) in [("retry", "Retry"), ("skip", "Skip"), ("abort", "Abort the run")] {
                        a.action href=(format!("{resume}&decision={decision}")) { (label) } " "
                    }
                } @else {
                    a href=(run_path(&w.run.id)) { "See the run" }
                }
            }
        }
    }
}

fn rejected_file(rejected: &RejectedFile) -> Markup {
    html! {
        div.notice.error.rejected {
            p {
                strong { "Rejected on reload: " code { (rejected.file) } }
                @if let Some(at) = rejected.at { " at " (stamp(at)) }
                @match &rejected.kept {
                    Some(name) => { ". The last good version of " a href=(runbook_path(name)) { (name) } " runs in its place." }
                    None => ". Nothing of it runs.",
                }
            }
            ul.errors { @for error in &rejected.errors { li { pre.error { (error) } } } }
        }
    }
}

fn running(view: &OverviewView) -> Markup {
    html! {
        @if view.running.is_empty() {
            p.muted { "No run is going on." }
        } @else {
            table.running {
                thead { tr { th { "Run" } th { "Started" } th { "Steps done" } th { "Hosts done" } } }
                tbody { @for p in &view.running {
                    tr {
                        td { (run_link(&p.run)) }
                        td { (stamp(p.run.started_at)) }
                        td { (fraction(p.steps)) }
                        td { @if p.hosts.1 == 0 { span.muted { "no fan-out" } } @else { (fraction(p.hosts)) } }
                    }
                } }
            }
        }
    }
}

/// "3 of 7" with a `<progress>` bar.
fn fraction((done, all): (usize, usize)) -> Markup {
    html! {
        progress value=(done) max=(all.max(1)) { (done) "/" (all) }
        " " (done) " of " (all)
    }
}

fn runbooks(view: &OverviewView) -> Markup {
    html! {
        @if view.runbooks.is_empty() {
            p.muted { "No runbooks loaded." }
        } @else {
            table.runbooks {
                thead { tr { th { "Runbook" } th { "Description" } th { "Next cycles" } } }
                tbody { @for r in &view.runbooks {
                    tr {
                        td { a href=(runbook_path(&r.name)) { strong { (r.name) } } }
                        td { (r.description.as_deref().unwrap_or("")) }
                        td { (next_cycles(view.now, r)) }
                    }
                } }
            }
        }
    }
}

fn next_cycles(now: DateTime<Utc>, runbook: &RunbookNext) -> Markup {
    html! {
        @if runbook.next.is_empty() {
            span.muted {
                "no schedule: started by hand (" code { "patchday trigger " (runbook.name) } ") or through the API"
            }
        } @else {
            ul.plain { @for fire in &runbook.next {
                li {
                    @match &fire.blackout {
                        None => { (fire.cycle) " — " (minute(fire.at)) " " span.countdown { "(" (countdown(now, fire.at)) ")" } }
                        Some(reason) => { s { (fire.cycle) " — " (minute(fire.at)) } " " span.muted { "skipped: " (reason) } }
                    }
                }
            } }
        }
    }
}

/// The recent runs table (the run, its runbook, cycle, state and times).
pub fn runs_table(runs: &[RunRow]) -> Markup {
    html! {
        @if runs.is_empty() {
            p.muted { "No runs yet." }
        } @else {
            table.runs {
                thead { tr { th { "Run" } th { "Runbook" } th { "Cycle" } th { "State" } th { "Started" } th { "Finished" } } }
                tbody { @for run in runs {
                    tr {
                        td { a href=(run_path(&run.id)) { code { (run.id) } } }
                        td { a href=(runbook_path(&run.runbook)) { (run.runbook) } }
                        td { @match run.cycle.as_deref().filter(|c| !c.is_empty()) {
                            Some(cycle) => (cycle),
                            None => span.muted { (NO_CYCLE) },
                        } }
                        td { (state_badge(run.state)) }
                        td { (minute(run.started_at)) }
                        td { (run.finished_at.map_or("—".to_string(), minute)) }
                    }
                } }
            }
        }
    }
}

/// A run state as a badge; the class from a fixed list, the state also in words.
pub fn state_badge(state: RunState) -> Markup {
    let class = match state {
        RunState::Succeeded => "badge ok",
        RunState::Failed | RunState::Cancelled => "badge bad",
        RunState::Running => "badge busy",
    };
    html! { span class=(class) { (state.as_str()) } }
}

/// `2026-12-08 14:03 UTC`.
pub fn minute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn stamp(at: DateTime<Utc>) -> String {
    minute(at)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, minute, 0)
            .unwrap()
    }

    fn run(id: &str, state: RunState) -> RunRow {
        RunRow {
            id: id.into(),
            runbook: "<b>monthly</b>".into(),
            cycle: Some("2026-12".into()),
            content_hash: "h".into(),
            commit: None,
            snapshot: serde_json::json!({}),
            state,
            started_at: at(8, 10, 0),
            finished_at: None,
            rerun: None,
        }
    }

    #[test]
    fn countdowns_are_in_words_from_now() {
        let now = at(8, 10, 0);
        assert_eq!(countdown(now, at(11, 14, 30)), "in 3 days 4 h");
        assert_eq!(countdown(now, at(9, 10, 0)), "in 1 day");
        assert_eq!(countdown(now, at(8, 14, 10)), "in 4 h 10 min");
        assert_eq!(countdown(now, at(8, 12, 0)), "in 2 h");
        assert_eq!(countdown(now, at(8, 10, 12)), "in 12 min");
        assert_eq!(
            countdown(now, now + TimeDelta::seconds(30)),
            "in less than a minute"
        );
        assert_eq!(countdown(now, at(8, 9, 0)), "now");
    }

    #[test]
    fn progress_counts_steps_and_hosts_apart() {
        use crate::store::StepState::*;
        let row = |step: &str, host: &str, state| StepRow {
            run_id: "r".into(),
            step: step.into(),
            host: host.into(),
            state,
            attempt: 0,
            not_before: None,
            started_at: None,
            finished_at: None,
            outputs: serde_json::json!({}),
            reason: None,
        };
        let rows = [
            row("a", "", Succeeded),
            row("b", "", Running),
            row("b", "h1", Succeeded),
            row("b", "h2", Failed),
            row("b", "h3", Running),
        ];
        let (own, hosts): (Vec<StepRow>, Vec<StepRow>) =
            rows.into_iter().partition(|r| r.host.is_empty());
        let host_counts: Vec<(String, StepState, u64)> =
            hosts.iter().map(|r| (r.step.clone(), r.state, 1)).collect();
        let p = Progress::of(run("r", RunState::Running), &own, &host_counts);
        assert_eq!((p.steps, p.hosts), ((1, 2), (2, 3)));
    }

    #[test]
    fn the_overview_escapes_and_says_who_and_how_long() {
        let now = at(8, 10, 0);
        let wait = |interrupted: bool| RunWait {
            run: run("r/1", RunState::Running),
            wait: WaitView {
                step: "cab".into(),
                host: String::new(),
                who: "alice@example.com".into(),
                what: "approval".into(),
                command: None,
                interrupted,
                expires_at: Some(at(10, 12, 0)),
            },
        };
        let view = OverviewView {
            now,
            waiting: vec![wait(false), wait(true)],
            failed: vec![run("f", RunState::Failed)],
            rejected: vec![RejectedFile {
                file: "runbooks/x.yaml".into(),
                errors: vec!["runbooks/x.yaml:3:7: <unknown> field".into()],
                kept: Some("x".into()),
                at: Some(now),
            }],
            operates: true,
            ..OverviewView::default()
        };
        let html = overview_body(&view).into_string();
        assert!(html.contains("2 days 2 h left"), "{html}");
        assert!(html.contains("alice@example.com"));
        assert!(html.contains("href=\"/runs/r%2F1/resume?step=cab&amp;host=&amp;decision=retry\""));
        assert!(html.contains("&lt;b&gt;monthly&lt;/b&gt;") && !html.contains("<b>"));
        assert!(html.contains("runbooks/x.yaml:3:7: &lt;unknown&gt; field"));
        assert!(
            html.contains("href=\"/runbooks/%3Cb%3Emonthly%3C%2Fb%3E\""),
            "{html}"
        );
        let viewer = overview_body(&OverviewView {
            operates: false,
            ..view
        })
        .into_string();
        assert!(!viewer.contains("/resume?"), "{viewer}");
    }

    #[test]
    fn a_step_past_its_deadline_and_unfinished_is_overdue() {
        use std::path::Path;

        use crate::runbook::load_runbook;
        use crate::store::StepState::*;
        use crate::validate::{Sources, check};
        let yaml = "name: m\ntimezone: UTC\nsteps:\n  patch: { uses: noop, deadline: start+4h }\n  \
                    report: { uses: noop, needs: [patch], deadline: start+8h }\n  free: { uses: noop }\n";
        let mut sources = Sources::default();
        sources.insert("m.yaml".into(), Ok(yaml.into()));
        let (checked, diags) = check(&load_runbook("m.yaml", yaml), Path::new(""), &sources);
        let checked = checked.unwrap_or_else(|| panic!("{diags:#?}"));
        let row = |step: &str, state| StepRow {
            run_id: "r".into(),
            step: step.into(),
            host: String::new(),
            state,
            attempt: 0,
            not_before: None,
            started_at: None,
            finished_at: None,
            outputs: serde_json::json!({}),
            reason: None,
        };
        let run = run("r", RunState::Running);
        let rows = [
            row("patch", Running),
            row("report", Pending),
            row("free", Pending),
        ];
        let steps = |now| {
            overdue_steps(&checked, &run, &rows, now)
                .into_iter()
                .map(|o| (o.step, o.deadline))
                .collect::<Vec<_>>()
        };
        assert!(steps(at(8, 13, 59)).is_empty());
        assert_eq!(steps(at(8, 14, 0)), [("patch".to_string(), at(8, 14, 0))]);
        assert_eq!(steps(at(8, 18, 0)).len(), 2);
        let done = [
            row("patch", Succeeded),
            row("report", Running),
            row("free", Pending),
        ];
        let overdue = overdue_steps(&checked, &run, &done, at(8, 15, 0));
        assert!(overdue.is_empty(), "{overdue:?}");
    }
}
