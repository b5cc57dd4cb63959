//! The run page's live section (`<section id="live">`): the run's facts, its step graph,
//! its timeline, its hosts grouped by state and its audit trail, the last two paged through
//! query parameters ([`RunQuery`]). The whole page and the fragment the page polls while the
//! run goes on (`GET /runs/{id}/live`) are the same markup, so an update replaces the section
//! in place. Without JavaScript a `<noscript>` refresh reloads the page instead.
//!
//! The live script is tiny, vendored here ([`LIVE_SCRIPT`]) and allowed by its hash in the
//! Content-Security-Policy; so is the dashboard's stylesheet ([`super::STYLE`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::graph::{GraphNode, graph_svg};
use super::timeline::{self, TimelineRow, TimelineView, timeline_svg};
use super::{Look, STATES};
use crate::calendar::AnchorContext;
use crate::dag::Dag;
use crate::plan::{PlanFor, plan};
use crate::run::{UNDO_PREFIX, anchor_cycle, run_start};
use crate::store::{EventPage, EventRow, RunRow, RunState, StepRow, StepState};
use crate::validate::CheckedRunbook;

/// Hosts shown per state and page.
pub const HOSTS_PER_PAGE: u32 = 50;
/// Audit events shown per page.
pub const EVENTS_PER_PAGE: u32 = 50;
/// How often the page asks for a fresh section while the run goes on, in seconds.
pub const POLL_SECONDS: u32 = 3;

/// The live script: while the section says the run is `running`, fetch the fragment named in
/// its `data-src` every `data-every` seconds and swap it in. Markup comes escaped from the
/// server; nothing else is evaluated.
pub const LIVE_SCRIPT: &str = "(function(){var s=document.getElementById('live');\
function tick(){if(!s||s.getAttribute('data-state')!=='running')return;\
fetch(s.getAttribute('data-src'),{credentials:'same-origin',cache:'no-store'})\
.then(function(r){return r.ok?r.text():null}).then(function(h){if(h){\
var t=document.createElement('template');t.innerHTML=h;var n=t.content.firstElementChild;\
if(n&&n.id==='live'){s.replaceWith(n);s=n;}}}).catch(function(){})\
.then(function(){setTimeout(tick,1000*Number(s.getAttribute('data-every')||3));});}\
setTimeout(tick,1000*Number(s&&s.getAttribute('data-every')||3));})();";

/// The run page's query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RunQuery {
    /// The state whose hosts are paged (a state word, e.g. `failed`).
    pub hosts_state: Option<String>,
    /// That state's page of hosts, from 1.
    pub hosts_page: Option<u64>,
    /// The page of the audit trail, from 1; the last page when absent.
    pub audit_page: Option<u64>,
}

impl RunQuery {
    /// The query as a URL query string (without `?`), parameters that are set only.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(state) = &self.hosts_state {
            parts.push(format!("hosts_state={}", query_value(state)));
        }
        if let Some(page) = self.hosts_page {
            parts.push(format!("hosts_page={page}"));
        }
        if let Some(page) = self.audit_page {
            parts.push(format!("audit_page={page}"));
        }
        parts.join("&")
    }

    /// The page of `state`'s `count` hosts to show: the one asked for when the query pages
    /// that state, else the first; within the pages there are.
    pub fn hosts_page_of(&self, state: StepState, count: u64) -> u64 {
        let pages = count.div_ceil(u64::from(HOSTS_PER_PAGE)).max(1);
        (self.hosts_state.as_deref() == Some(Look::of(state).word))
            .then_some(self.hosts_page)
            .flatten()
            .unwrap_or(1)
            .clamp(1, pages)
    }
}

/// The hosts of one state as the run page shows them: how many, and the page read.
#[derive(Debug, Clone, PartialEq)]
pub struct HostGroup {
    pub state: StepState,
    /// Hosts of the run in this state, on all pages.
    pub count: u64,
    /// The page shown, from 1 ([`RunQuery::hosts_page_of`]).
    pub page: u64,
    /// That page's rows.
    pub rows: Vec<StepRow>,
}

/// The run's hosts counted by (step, state): the store's counts of every row
/// (`Store::run_row_counts`) less each step's own row (`own`).
pub fn host_counts(
    own: &[StepRow],
    counts: &[(String, StepState, u64)],
) -> Vec<(String, StepState, u64)> {
    counts
        .iter()
        .map(|(step, state, n)| {
            let own_row = own
                .iter()
                .any(|r| r.step == *step && r.state == *state && r.host.is_empty());
            (step.clone(), *state, n - u64::from(own_row).min(*n))
        })
        .filter(|(_, _, n)| *n > 0)
        .collect()
}

/// A query value percent-encoded (state words are plain, but the parameter is user input).
pub(super) fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Everything the section shows.
pub struct RunSection<'a> {
    pub run: &'a RunRow,
    /// The runbook version the run is bound to; `None` when it cannot be rebuilt (the graph
    /// and timeline are then left out, with a note).
    pub checked: Option<&'a CheckedRunbook>,
    /// The run's own step rows (`host` ""), not its hosts'.
    pub steps: &'a [StepRow],
    /// Its hosts counted by (step, state) ([`host_counts`]).
    pub host_counts: &'a [(String, StepState, u64)],
    /// Its hosts by state, most urgent first, one page each (states with hosts only).
    pub host_groups: &'a [HostGroup],
    /// The run's events (for the timeline).
    pub events: &'a [EventRow],
    /// The page of the audit trail asked for.
    pub audit: &'a EventPage,
    pub query: &'a RunQuery,
    /// The run page's path (`/runs/<id>`), built from the id.
    pub path: &'a str,
    /// From the injected clock.
    pub now: DateTime<Utc>,
    /// Who the run waits on and for what (`daemon::http::waiting`).
    pub waiting: &'a [crate::pages::WaitView],
    /// What the person looking may do here ([`super::actions::run_actions`]; empty for none).
    pub actions: Markup,
}

/// The live section.
pub fn run_section(view: &RunSection) -> Markup {
    let query = view.query.to_query();
    let src = format!("{}/live?{query}", view.path);
    html! {
        section #live data-state=(view.run.state.as_str()) data-src=(src)
            data-every=(POLL_SECONDS) aria-live="polite" {
            (facts(view.run))
            (crate::pages::waiting_section(view.waiting))
            (view.actions)
            @match view.checked {
                Some(checked) => {
                    h2 { "Steps" }
                    div.drawing { (graph_svg(&graph_nodes(checked, view.steps, view.host_counts), &needs_of(&checked.dag))) }
                    h2 { "Timeline" }
                    div.drawing { (timeline_svg(&timeline_view(view, checked))) }
                    (timeline::legend())
                }
                None => p.muted { "The runbook version of this run cannot be rebuilt: no graph or timeline." }
            }
            h2 #hosts { "Hosts by state" }
            (hosts_by_state(view))
            h2 #audit { "Audit trail" }
            (audit_trail(view))
        }
    }
}

/// The extra `<head>` markup of the run page: the dashboard's stylesheet, and a reload for
/// browsers without JavaScript while the run goes on.
pub fn run_head(run: &RunRow) -> Markup {
    html! {
        style { (PreEscaped(super::STYLE)) }
        @if run.state == RunState::Running {
            noscript { meta http-equiv="refresh" content=(POLL_SECONDS * 2); }
        }
    }
}

/// The script element that keeps the section live (at the end of the body).
pub fn live_script() -> Markup {
    html! { script { (PreEscaped(LIVE_SCRIPT)) } }
}

fn facts(run: &RunRow) -> Markup {
    html! {
        table.facts {
            tr { th { "Run" } td { code { (run.id) } } }
            tr { th { "Runbook" } td { a href=(super::actions::runbook_path(&run.runbook)) { (run.runbook) } } }
            tr { th { "Cycle" } td {
                @match run.cycle.as_deref().filter(|c| !c.is_empty()) {
                    Some(cycle) => (cycle),
                    None => span.muted { (crate::pages::NO_CYCLE) },
                }
            } }
            tr { th { "State" } td { span.badge { (run.state.as_str()) } } }
            tr { th { "Started" } td { (stamp(run.started_at)) } }
            tr { th { "Finished" } td { (run.finished_at.map_or("—".into(), stamp)) } }
            tr { th { "Runbook commit" } td { code.hash { (run.commit.as_deref().unwrap_or("not a git work tree")) } } }
            tr { th { "Runbook content" } td { code.hash { (run.content_hash) } } }
        }
    }
}

/// The needs of each step of `dag`, in file order.
pub fn needs_of(dag: &Dag) -> Vec<Vec<usize>> {
    (0..dag.len()).map(|i| dag.needs(i).to_vec()).collect()
}

/// The graph's boxes: each step's own state (from its own row), and its hosts counted per
/// state (from `host_counts`, [`host_counts`]).
pub fn graph_nodes(
    checked: &CheckedRunbook,
    rows: &[StepRow],
    host_counts: &[(String, StepState, u64)],
) -> Vec<GraphNode> {
    let dag = &checked.dag;
    (0..dag.len())
        .map(|i| {
            let id = dag.id(i);
            let state = rows
                .iter()
                .find(|r| r.step == id && r.host.is_empty())
                .map_or(StepState::Pending, |r| r.state);
            let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
            for (_, state, n) in host_counts.iter().filter(|(step, _, _)| step == id) {
                *counts.entry(state_rank(*state)).or_default() += *n as usize;
            }
            GraphNode {
                id: id.to_string(),
                state,
                hosts: counts
                    .into_iter()
                    .map(|(rank, n)| (STATES[rank], n))
                    .collect(),
            }
        })
        .collect()
}

fn state_rank(state: StepState) -> usize {
    STATES.iter().position(|s| *s == state).unwrap_or(0)
}

/// The timeline's rows: every step in file order, then the undo steps the run inserted.
fn timeline_view(view: &RunSection, checked: &CheckedRunbook) -> TimelineView {
    let run = view.run;
    let start = run_start(run);
    let anchor = AnchorContext {
        cycle: anchor_cycle(run, checked.tz),
        start: Some(start),
    };
    let planned = plan(
        checked,
        PlanFor {
            cycle: Some(anchor.cycle),
            start: Some(start),
        },
    );
    let until = run.finished_at.unwrap_or(view.now);
    let mut rows: Vec<TimelineRow> = planned
        .steps
        .iter()
        .zip(&checked.times)
        .map(|(step, times)| TimelineRow {
            step: step.id.clone(),
            planned: step
                .planned_start
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc()),
            deadline: times
                .deadline
                .as_ref()
                .and_then(|d| d.resolve(checked.tz, &anchor).ok())
                .map(|d| d.to_utc()),
            segments: timeline::phases(view.events, &step.id, false, until),
        })
        .collect();
    let undo_rows = view
        .steps
        .iter()
        .filter(|r| r.host.is_empty() && r.step.starts_with(UNDO_PREFIX));
    rows.extend(undo_rows.map(|r| TimelineRow {
        step: r.step.clone(),
        planned: None,
        deadline: None,
        segments: timeline::phases(view.events, &r.step, true, until),
    }));
    TimelineView {
        start,
        end: run.finished_at,
        now: view.now,
        rows,
    }
}

/// Hosts of fanned-out steps, one group per state (most urgent first), each paged.
fn hosts_by_state(view: &RunSection) -> Markup {
    if view.host_groups.is_empty() {
        return html! { p.muted { "No step of this run fans out over hosts." } };
    }
    html! {
        @for group in view.host_groups {
            (host_group(view, group))
        }
    }
}

fn host_group(view: &RunSection, group: &HostGroup) -> Markup {
    let state = group.state;
    let look = Look::of(state);
    let pages = group.count.div_ceil(u64::from(HOSTS_PER_PAGE)).max(1);
    let anchor = format!("hosts-{}", look.word.replace(' ', "-"));
    let link = |page: u64| {
        let query = RunQuery {
            hosts_state: Some(look.word.to_string()),
            hosts_page: Some(page),
            audit_page: view.query.audit_page,
        };
        format!("{}?{}#{anchor}", view.path, query.to_query())
    };
    html! {
        details.hosts #(anchor) open[state != StepState::Succeeded && state != StepState::Skipped] {
            summary { (look.mark) " " (look.word) " (" (group.count) ")" }
            table {
                thead { tr { th { "Step" } th { "Host" } th { "Started" } th { "Finished" } th { "Reason" } } }
                tbody {
                    @for row in &group.rows {
                        tr {
                            td { code { (row.step) } }
                            td { (row.host) }
                            td { (row.started_at.map_or("—".into(), stamp)) }
                            td { (row.finished_at.map_or("—".into(), stamp)) }
                            td { (row.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            (pager(group.page, pages, &format!("{} hosts", look.word), link))
        }
    }
}

/// The audit trail's page.
fn audit_trail(view: &RunSection) -> Markup {
    let per_page = u64::from(EVENTS_PER_PAGE);
    let pages = view.audit.total.div_ceil(per_page).max(1);
    let page = view.audit.offset / per_page + 1;
    let link = |page: u64| {
        let query = RunQuery {
            audit_page: Some(page),
            ..view.query.clone()
        };
        format!("{}?{}#audit", view.path, query.to_query())
    };
    html! {
        @if view.audit.events.is_empty() {
            p.muted { "No events." }
        } @else {
            table {
                thead { tr { th { "#" } th { "When" } th { "Actor" } th { "Action" } th { "Step" } th { "Details" } } }
                tbody {
                    @for event in &view.audit.events {
                        tr {
                            td { (event.seq) }
                            td { (stamp(event.at)) }
                            td { (event.actor) }
                            td { code { (event.action) } }
                            td { code { (event.step_id.as_deref().unwrap_or("")) } }
                            td { code.wrap { (event.details.to_string()) } }
                        }
                    }
                }
            }
        }
        (pager(page, pages, "audit events", link))
        p { a href=(format!("/audit?run={}", query_value(&view.run.id))) { "All events of this run in the audit log" } }
    }
}

/// "Page n of m" with first / previous / next / last links (plain links: no JavaScript).
fn pager(page: u64, pages: u64, what: &str, link: impl Fn(u64) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label=(format!("Pages of {what}")) {
                @if page > 1 {
                    a href=(link(1)) { "« first" }
                    a href=(link(page - 1)) rel="prev" { "‹ previous" }
                }
                span { "page " (page) " of " (pages) }
                @if page < pages {
                    a href=(link(page + 1)) rel="next" { "next ›" }
                    a href=(link(pages)) { "last »" }
                }
            }
        }
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::runbook::load_runbook;
    use crate::validate::{Sources, check};

    const YAML: &str = "name: t\ninventory: hosts.yaml\nsteps:\n  a: { uses: noop, undo: { uses: noop } }\n  fan:\n    needs: [a]\n    uses: noop\n    for_each: { group: web }\n";
    const HOSTS: &str = "hosts:\n  h1: { address: 10.0.0.1 }\ngroups:\n  web: [h1]\n";
    const EVIL: &str = "<script>alert('x')</script>&";

    fn checked() -> CheckedRunbook {
        let mut sources = Sources::default();
        sources.insert("t.yaml".into(), Ok(YAML.into()));
        sources.insert(Path::new("").join("hosts.yaml"), Ok(HOSTS.into()));
        check(&load_runbook("t.yaml", YAML), Path::new(""), &sources)
            .0
            .unwrap()
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_724_000 + minute * 60, 0).unwrap()
    }

    fn run() -> RunRow {
        RunRow {
            id: "t-1".into(),
            runbook: "t".into(),
            cycle: Some("2026-12".into()),
            content_hash: "c0ffee".into(),
            commit: Some(EVIL.into()),
            snapshot: json!({}),
            state: RunState::Running,
            started_at: at(0),
            finished_at: None,
            rerun: None,
        }
    }

    fn row(step: &str, host: &str, state: StepState) -> StepRow {
        StepRow {
            run_id: "t-1".into(),
            step: step.into(),
            host: host.into(),
            state,
            attempt: 1,
            not_before: None,
            started_at: Some(at(1)),
            finished_at: None,
            outputs: json!({}),
            reason: Some(format!("{EVIL} on {host}")),
        }
    }

    /// Step `a` succeeded; `fan` runs over 120 hosts: 70 failed, 50 succeeded.
    fn rows() -> Vec<StepRow> {
        let mut rows = vec![
            row("a", "", StepState::Succeeded),
            row("fan", "", StepState::Running),
        ];
        rows.extend((0..120).map(|i| {
            let state = if i < 70 {
                StepState::Failed
            } else {
                StepState::Succeeded
            };
            row("fan", &format!("host-{i:03}"), state)
        }));
        rows
    }

    fn event(seq: i64) -> EventRow {
        EventRow {
            seq,
            at: at(seq),
            actor: "engine".into(),
            action: "step.noted".into(),
            run_id: Some("t-1".into()),
            step_id: Some("a".into()),
            details: json!({ "note": EVIL }),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The hosts counted by (step, state), as the store and [`host_counts`] give them.
    fn counts_of(rows: &[StepRow]) -> Vec<(String, StepState, u64)> {
        let mut counts: BTreeMap<(String, usize), u64> = BTreeMap::new();
        for row in rows {
            *counts
                .entry((row.step.clone(), state_rank(row.state)))
                .or_default() += 1;
        }
        let all: Vec<_> = counts
            .into_iter()
            .map(|((step, rank), n)| (step, STATES[rank], n))
            .collect();
        host_counts(rows, &all)
    }

    /// The page of each state's hosts the query asks for, as the daemon reads them.
    fn groups_of(rows: &[StepRow], query: &RunQuery) -> Vec<HostGroup> {
        let per_page = HOSTS_PER_PAGE as usize;
        STATES
            .into_iter()
            .filter_map(|state| {
                let hosts: Vec<&StepRow> = rows
                    .iter()
                    .filter(|r| !r.host.is_empty() && r.state == state)
                    .collect();
                let count = hosts.len() as u64;
                let page = query.hosts_page_of(state, count);
                let first = (page as usize - 1) * per_page;
                let rows = hosts.into_iter().skip(first).take(per_page).cloned();
                (count > 0).then(|| HostGroup {
                    state,
                    count,
                    page,
                    rows: rows.collect(),
                })
            })
            .collect()
    }

    fn section(query: &RunQuery, checked: Option<&CheckedRunbook>) -> String {
        let run = run();
        let rows = rows();
        let own: Vec<StepRow> = rows.iter().filter(|r| r.host.is_empty()).cloned().collect();
        let events: Vec<EventRow> = (1..=120).map(event).collect();
        let offset = crate::store::page_offset(120, query.audit_page, EVENTS_PER_PAGE);
        let page = EventPage {
            events: events[offset as usize..]
                .iter()
                .take(EVENTS_PER_PAGE as usize)
                .cloned()
                .collect(),
            total: 120,
            offset,
        };
        run_section(&RunSection {
            run: &run,
            checked,
            steps: &own,
            host_counts: &counts_of(&rows),
            host_groups: &groups_of(&rows, query),
            events: &events,
            audit: &page,
            query,
            path: "/runs/t-1",
            now: at(30),
            waiting: &[],
            actions: Markup::default(),
        })
        .into_string()
    }

    #[test]
    fn every_value_is_escaped() {
        let html = section(&RunQuery::default(), Some(&checked()));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;&amp;"));
        assert!(html.contains("<svg class=\"dag\""));
        assert!(html.contains("<svg class=\"timeline\""));
    }

    #[test]
    fn hosts_are_grouped_by_state_and_paged() {
        let html = section(&RunQuery::default(), None);
        assert!(
            html.contains("✗ failed (70)") && html.contains("✓ succeeded (50)"),
            "{html}"
        );
        // Failed hosts first, 50 per page, the rest a link away.
        assert!(
            html.contains("host-049") && !html.contains("host-050 "),
            "{html}"
        );
        assert!(
            html.contains("href=\"/runs/t-1?hosts_state=failed&amp;hosts_page=2#hosts-failed\"")
        );
        let second = section(
            &RunQuery {
                hosts_state: Some("failed".into()),
                hosts_page: Some(2),
                audit_page: None,
            },
            None,
        );
        assert!(second.contains(">host-050<") && second.contains(">host-069<"));
        assert!(!second.contains(">host-049<"));
        assert!(second.contains("page 2 of 2"));
    }

    #[test]
    fn the_audit_trail_opens_on_its_last_page_and_pages_back() {
        let html = section(&RunQuery::default(), None);
        assert!(
            html.contains("<td>120</td>") && !html.contains("<td>100</td>"),
            "{html}"
        );
        assert!(html.contains("page 3 of 3"));
        assert!(html.contains("href=\"/runs/t-1?audit_page=2#audit\""));
        let first = section(
            &RunQuery {
                audit_page: Some(1),
                ..RunQuery::default()
            },
            None,
        );
        assert!(first.contains("<td>1</td>") && !first.contains("<td>51</td>"));
        assert_eq!(
            crate::store::page_offset(120, Some(99), EVENTS_PER_PAGE),
            100,
            "a page past the end shows the last"
        );
    }

    #[test]
    fn the_section_polls_its_own_fragment_while_the_run_goes_on() {
        let query = RunQuery {
            hosts_state: Some("a b&c".into()),
            hosts_page: Some(2),
            audit_page: Some(1),
        };
        let html = section(&query, None);
        assert!(html.contains(
            "data-state=\"running\" data-src=\"/runs/t-1/live?hosts_state=a%20b%26c&amp;hosts_page=2&amp;audit_page=1\""
        ), "{html}");
        let head = run_head(&run()).into_string();
        assert!(
            head.contains("<noscript><meta http-equiv=\"refresh\" content=\"6\"></noscript>"),
            "{head}"
        );
        let finished = RunRow {
            state: RunState::Succeeded,
            ..run()
        };
        assert!(!run_head(&finished).into_string().contains("refresh"));
        assert!(live_script().into_string().contains(LIVE_SCRIPT));
    }

    #[test]
    fn the_graph_counts_the_hosts_of_a_fanned_out_step() {
        let rows = rows();
        let nodes = graph_nodes(&checked(), &rows, &counts_of(&rows));
        assert_eq!(nodes[0].state, StepState::Succeeded);
        assert_eq!(
            nodes[1].hosts,
            vec![(StepState::Failed, 70), (StepState::Succeeded, 50)]
        );
    }
}
