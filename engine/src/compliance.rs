//! Patch SLA compliance over a period (issue 14, `patchday compliance --from --to`): for every
//! run started in the period whose runbook declares an `sla`, each host's time to patch against
//! the SLA of the run's severity, late hosts with their reason, decisions given after the work
//! they gated began, and the cycles missed or skipped.
//!
//! The clock starts at the release: 00:00 on Patch Tuesday of the run's cycle in the runbook's
//! time zone, or 00:00 (same zone) of the run's `released` param (`YYYY-MM-DD`), for emergency
//! runs. The deadline is that many days later at 00:00 on the calendar (a DST change does not
//! move it off midnight, as `±Nd` in time expressions), plus any hours and minutes exactly
//! ([`deadline`]). The severity is the run's `severity` param, else the runbook's `severity`. A host is
//! within the SLA when all its rows succeeded (or were skipped on purpose) and the last one
//! finished by the deadline. A run without host rows counts as one host, `(run)`.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use serde_json::{Value, json};

use crate::audit::format_instant;
use crate::runbook::Severity;
use crate::store::{EventRow, RunRow, StepRow, StepState, Store, StoreError};

/// When the SLA clock of a run starts and stops, and for which severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub severity: Severity,
    pub released: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
}

/// Why a run is not measured against an SLA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotMeasured {
    NoSla,
    NoSeverity,
    NoRelease,
    NoSlaFor(Severity),
    Invalid(String),
}

impl std::fmt::Display for NotMeasured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSla => write!(f, "its runbook declares no sla"),
            Self::NoSeverity => write!(f, "no severity (runbook `severity` or param)"),
            Self::NoRelease => write!(f, "no cycle and no `released` param"),
            Self::NoSlaFor(s) => write!(f, "the sla names no time for {s:?}"),
            Self::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// The SLA window of `run`, whose checked runbook is `checked`.
pub fn window(
    checked: &crate::validate::CheckedRunbook,
    run: &RunRow,
) -> Result<Window, NotMeasured> {
    let sla = checked.runbook.sla.as_ref().ok_or(NotMeasured::NoSla)?;
    let param = |name: &str| {
        run.snapshot
            .get("params")
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
    };
    let severity = match param("severity") {
        Some(text) => text.parse().map_err(NotMeasured::Invalid)?,
        None => checked.runbook.severity.ok_or(NotMeasured::NoSeverity)?,
    };
    let day = match (param("released"), &run.cycle) {
        (Some(text), _) => NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            NotMeasured::Invalid(format!("`released` param `{text}` is not YYYY-MM-DD"))
        })?,
        (None, Some(cycle)) => crate::calendar::patch_tuesday(
            cycle
                .parse()
                .map_err(|e| NotMeasured::Invalid(format!("cycle {cycle}: {e}")))?,
        ),
        (None, None) => return Err(NotMeasured::NoRelease),
    };
    let allowed = sla
        .allowed(severity)
        .ok_or(NotMeasured::NoSlaFor(severity))?;
    Ok(Window {
        severity,
        released: release_instant(checked.tz, day),
        deadline: deadline(checked.tz, day, allowed),
    })
}

/// The SLA deadline: `allowed` after 00:00 of `day` in `tz`, its whole days counted on the
/// calendar (00:00 of the day that many days later, whatever DST does between), the rest
/// added exactly.
pub fn deadline(tz: chrono_tz::Tz, day: NaiveDate, allowed: std::time::Duration) -> DateTime<Utc> {
    const DAY: u64 = 86_400;
    let days = allowed.as_secs() / DAY;
    let rest = allowed - std::time::Duration::from_secs(days * DAY);
    let last_day = day.checked_add_days(chrono::Days::new(days));
    let Some(last_day) = last_day.filter(|d| chrono::Datelike::year(d) < 10_000) else {
        return DateTime::<Utc>::MAX_UTC; // an SLA of millennia: never late
    };
    release_instant(tz, last_day) + chrono::Duration::from_std(rest).unwrap_or_default()
}

/// 00:00 of `day` in `tz` (the first instant of the day, whatever DST does).
pub fn release_instant(tz: chrono_tz::Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        // A zone that skips midnight: the first instant of the day is 01:00.
        chrono::LocalResult::None => tz
            .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
            .earliest()
            .expect("an hour after a gap exists")
            .with_timezone(&Utc),
    }
}

/// One host's time to patch against an SLA window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSla {
    pub host: String,
    /// When its last row finished.
    pub patched_at: Option<DateTime<Utc>>,
    /// Why it is not within the SLA; `None` when it is.
    pub late_reason: Option<String>,
}

/// Each host's time to patch against the window (a run without host rows: one host, `(run)`).
pub fn host_slas(rows: &[StepRow], window: &Window) -> Vec<HostSla> {
    let mut by_host: indexmap::IndexMap<&str, Vec<&StepRow>> = indexmap::IndexMap::new();
    for row in rows.iter().filter(|r| !r.host.is_empty()) {
        by_host.entry(&row.host).or_default().push(row);
    }
    if by_host.is_empty() {
        by_host.insert("(run)", rows.iter().collect());
    }
    by_host
        .into_iter()
        .map(|(host, rows)| host_sla(host, &rows, window))
        .collect()
}

/// [`host_slas`] as the compliance report's JSON.
pub fn hosts(rows: &[StepRow], window: &Window) -> Vec<Value> {
    host_slas(rows, window)
        .into_iter()
        .map(|h| {
            json!({
                "host": h.host,
                "patched_at": h.patched_at.map(format_instant),
                "hours_to_patch": h.patched_at.map(|at| (at - window.released).num_minutes() as f64 / 60.0),
                "within_sla": h.late_reason.is_none(),
                "late_reason": h.late_reason,
            })
        })
        .collect()
}

fn host_sla(host: &str, rows: &[&StepRow], window: &Window) -> HostSla {
    let failed = rows
        .iter()
        .find(|r| !matches!(r.state, StepState::Succeeded | StepState::Skipped));
    let patched_at = rows.iter().filter_map(|r| r.finished_at).max();
    let late_reason = match (failed, patched_at) {
        (Some(row), _) => Some(format!(
            "step `{}` {:?}{}",
            row.step,
            row.state,
            row.reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {r}"))
        )),
        (None, Some(at)) if at > window.deadline => Some(format!(
            "patched {} after the deadline {}",
            format_instant(at),
            format_instant(window.deadline)
        )),
        (None, None) => Some("not finished".into()),
        (None, Some(_)) => None,
    };
    HostSla {
        host: host.to_string(),
        patched_at,
        late_reason,
    }
}

/// The compliance report of runs started in `[from, to)`.
pub async fn report<S: Store>(
    store: &S,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let mut runs_json = Vec::new();
    let (mut hosts_total, mut hosts_within) = (0, 0);
    let mut late = Vec::new();
    let mut late_approvals = Vec::new();
    let mut exceptions = Exceptions::default();
    for run in &runs_started_in(store, from, to).await? {
        let checked = crate::run::version_of(run)
            .map_err(|e| NotMeasured::Invalid(e.to_string()))
            .and_then(|v| v.check().map_err(|e| NotMeasured::Invalid(e.to_string())));
        let steps = store.steps(&run.id).await?;
        if let Ok(checked) = &checked {
            exceptions.add(
                run,
                crate::evidence::record::exceptions(Some(checked), &steps),
            );
        }
        let measured = checked.and_then(|checked| window(&checked, run));
        let events = run_events(store, &run.id).await?;
        let version = crate::run::version_of(run).ok();
        if let Some(version) = &version {
            for a in crate::evidence::approvals(version, &events) {
                if a["before_work"] != true {
                    late_approvals.push(json!({"run": run.id, "approval": a}));
                }
            }
        }
        let window = match measured {
            Ok(window) => window,
            Err(why) => {
                runs_json.push(json!({"run": run.id, "runbook": run.runbook, "cycle": run.cycle, "measured": false, "why": why.to_string()}));
                continue;
            }
        };
        let hosts = hosts(&steps, &window);
        for host in &hosts {
            hosts_total += 1;
            if host["within_sla"] == true {
                hosts_within += 1;
            } else {
                late.push(json!({"run": run.id, "runbook": run.runbook, "cycle": run.cycle, "host": host["host"], "reason": host["late_reason"]}));
            }
        }
        runs_json.push(json!({
            "run": run.id,
            "runbook": run.runbook,
            "cycle": run.cycle,
            "measured": true,
            "severity": window.severity,
            "released": format_instant(window.released),
            "deadline": format_instant(window.deadline),
            "hosts": hosts,
        }));
    }
    let skipped = store
        .events_by_action(&["cycle.missed", "cycle.skipped"])
        .await?
        .into_iter()
        .filter(|e| e.at >= from && e.at < to)
        .map(|e| json!({"action": e.action, "at": format_instant(e.at), "details": e.details}))
        .collect::<Vec<_>>();
    Ok(json!({
        "from": format_instant(from),
        "to": format_instant(to),
        "hosts": hosts_total,
        "hosts_within_sla": hosts_within,
        "percent_within_sla": (hosts_total > 0).then(|| 100.0 * hosts_within as f64 / hosts_total as f64),
        "late": late,
        "approvals_after_work_began": late_approvals,
        "missed_or_skipped_cycles": skipped,
        "exceptions": exceptions.json(to),
        "runs": runs_json,
    }))
}

/// The inventory exceptions of the period's runs, each once (by host, end, reason and
/// approver), with the runs that left the host out because of it.
#[derive(Debug, Default)]
struct Exceptions {
    seen: Vec<(Value, Vec<String>)>,
}

impl Exceptions {
    /// Adds the exceptions of `run`'s inventory (as [`crate::evidence::record::exceptions`]
    /// lists them).
    fn add(&mut self, run: &crate::store::RunRow, listed: Value) {
        for mut exception in listed.as_array().cloned().unwrap_or_default() {
            let applied = exception["applied_in_this_run"] == true;
            if let Some(fields) = exception.as_object_mut() {
                fields.remove("applied_in_this_run");
            }
            let index = match self.seen.iter().position(|(e, _)| *e == exception) {
                Some(index) => index,
                None => {
                    self.seen.push((exception, Vec::new()));
                    self.seen.len() - 1
                }
            };
            if applied {
                self.seen[index].1.push(run.id.clone());
            }
        }
    }

    /// Each exception with `status`: `open` while it is in force on the period's last day,
    /// else `expired`, and the runs it left a host out of.
    fn json(self, to: DateTime<Utc>) -> Vec<Value> {
        let last_day = (to - chrono::Duration::seconds(1)).date_naive().to_string();
        self.seen
            .into_iter()
            .map(|(mut exception, runs)| {
                let open = exception["until"]
                    .as_str()
                    .is_some_and(|until| until >= last_day.as_str());
                exception["status"] = json!(if open { "open" } else { "expired" });
                exception["left_out_in_runs"] = json!(runs);
                exception
            })
            .collect()
    }
}

/// The runs started in `[from, to)`, newest first: read in keyset pages from the newest and
/// no further than the first run started before `from`, so a period costs the runs since it
/// began, not the whole history.
async fn runs_started_in<S: Store>(
    store: &S,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<crate::store::RunRow>, StoreError> {
    const PAGE: u32 = 200;
    let mut found = Vec::new();
    let mut page = store.runs(PAGE).await?;
    while let Some(last) = page.last().map(|r| (r.id.clone(), r.started_at)) {
        let full = page.len() == PAGE as usize;
        found.extend(
            page.into_iter()
                .filter(|r| r.started_at >= from && r.started_at < to),
        );
        if !full || last.1 < from {
            break;
        }
        page = store.runs_after(&last.0, PAGE).await?;
    }
    Ok(found)
}

async fn run_events<S: Store>(store: &S, run_id: &str) -> Result<Vec<EventRow>, StoreError> {
    store
        .events(crate::store::EventFilter {
            run_id: Some(run_id.to_string()),
            since: None,
        })
        .await
}

/// The report in Markdown.
pub fn markdown(report: &Value) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let mut out = format!(
        "# Patch SLA compliance {} to {}\n\n{} of {} hosts patched within their SLA ({})\n\n",
        text(&report["from"]),
        text(&report["to"]),
        report["hosts_within_sla"],
        report["hosts"],
        report["percent_within_sla"]
            .as_f64()
            .map_or("no host measured".into(), |p| format!("{p:.1}%"))
    );
    out.push_str("## Late hosts\n\n| runbook | cycle | host | why |\n|---|---|---|---|\n");
    for late in report["late"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            text(&late["runbook"]),
            text(&late["cycle"]),
            text(&late["host"]),
            text(&late["reason"]).replace(['|', '\n'], " ")
        ));
    }
    out.push_str("\n## Approvals given after work began\n\n");
    let approvals = report["approvals_after_work_began"].as_array();
    match approvals.filter(|a| !a.is_empty()) {
        None => out.push_str("None.\n"),
        Some(list) => {
            for a in list {
                out.push_str(&format!(
                    "- run {}: `{}` by {} at {}\n",
                    text(&a["run"]),
                    text(&a["approval"]["step"]),
                    text(&a["approval"]["actor"]),
                    text(&a["approval"]["at"])
                ));
            }
        }
    }
    out.push_str("\n## Missed or skipped cycles\n\n");
    let skipped = report["missed_or_skipped_cycles"].as_array();
    match skipped.filter(|s| !s.is_empty()) {
        None => out.push_str("None.\n"),
        Some(list) => {
            for s in list {
                out.push_str(&format!(
                    "- {} at {}: {}\n",
                    text(&s["action"]),
                    text(&s["at"]),
                    s["details"]
                ));
            }
        }
    }
    out.push_str("\n## Exceptions\n\n");
    let exceptions = report["exceptions"].as_array();
    match exceptions.filter(|e| !e.is_empty()) {
        None => out.push_str("None.\n"),
        Some(list) => {
            out.push_str("| host | until | status | reason | approved by | left out in runs |\n|---|---|---|---|---|---|\n");
            for e in list {
                let runs: Vec<String> = e["left_out_in_runs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    text(&e["host"]),
                    text(&e["until"]),
                    text(&e["status"]),
                    text(&e["reason"]).replace(['|', '\n'], " "),
                    text(&e["approved_by"]),
                    runs.join(", ")
                ));
            }
        }
    }
    out.push_str("\n## Runs\n\n| run | runbook | cycle | severity | released | deadline |\n|---|---|---|---|---|---|\n");
    for run in report["runs"].as_array().into_iter().flatten() {
        if run["measured"] == true {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                text(&run["run"]),
                text(&run["runbook"]),
                text(&run["cycle"]),
                text(&run["severity"]),
                text(&run["released"]),
                text(&run["deadline"])
            ));
        } else {
            out.push_str(&format!(
                "| {} | {} | {} | not measured: {} | | |\n",
                text(&run["run"]),
                text(&run["runbook"]),
                text(&run["cycle"]),
                text(&run["why"])
            ));
        }
    }
    out
}

/// The report as a standalone HTML document (maud: every value escaped): the same sections as
/// [`markdown`].
pub fn html(report: &Value) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let list = |key: &str| report[key].as_array().cloned().unwrap_or_default();
    let title = format!(
        "Patch SLA compliance {} to {}",
        text(&report["from"]),
        text(&report["to"])
    );
    let percent = report["percent_within_sla"]
        .as_f64()
        .map_or("no host measured".into(), |p| format!("{p:.1}%"));
    maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } }
            body {
                h1 { (title) }
                p { (report["hosts_within_sla"]) " of " (report["hosts"]) " hosts patched within their SLA (" (percent) ")" }
                h2 { "Late hosts" }
                table {
                    tr { th { "runbook" } th { "cycle" } th { "host" } th { "why" } }
                    @for late in list("late") {
                        tr { td { (text(&late["runbook"])) } td { (text(&late["cycle"])) } td { (text(&late["host"])) } td { (text(&late["reason"])) } }
                    }
                }
                h2 { "Approvals given after work began" }
                @if list("approvals_after_work_began").is_empty() { p { "None." } }
                ul {
                    @for a in list("approvals_after_work_began") {
                        li { "run " (text(&a["run"])) ": " (text(&a["approval"]["step"])) " by " (text(&a["approval"]["actor"])) " at " (text(&a["approval"]["at"])) }
                    }
                }
                h2 { "Missed or skipped cycles" }
                @if list("missed_or_skipped_cycles").is_empty() { p { "None." } }
                ul {
                    @for c in list("missed_or_skipped_cycles") {
                        li { (text(&c["action"])) " at " (text(&c["at"])) ": " (c["details"].to_string()) }
                    }
                }
                h2 { "Exceptions" }
                @if list("exceptions").is_empty() { p { "None." } }
                @else {
                    table {
                        tr { th { "host" } th { "until" } th { "status" } th { "reason" } th { "approved by" } th { "left out in runs" } }
                        @for e in list("exceptions") {
                            tr {
                                td { (text(&e["host"])) } td { (text(&e["until"])) } td { (text(&e["status"])) }
                                td { (text(&e["reason"])) } td { (text(&e["approved_by"])) }
                                td { @for run in e["left_out_in_runs"].as_array().into_iter().flatten() { (text(run)) " " } }
                            }
                        }
                    }
                }
                h2 { "Runs" }
                table {
                    tr { th { "run" } th { "runbook" } th { "cycle" } th { "severity" } th { "released" } th { "deadline" } }
                    @for run in list("runs") {
                        tr {
                            td { (text(&run["run"])) } td { (text(&run["runbook"])) } td { (text(&run["cycle"])) }
                            @if run["measured"] == true {
                                td { (text(&run["severity"])) } td { (text(&run["released"])) } td { (text(&run["deadline"])) }
                            } @else {
                                td colspan="3" { "not measured: " (text(&run["why"])) }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of a period read page by page: every run started in it once, none outside, from a
    /// history longer than a page on both sides of it.
    #[tokio::test]
    async fn the_period_s_runs_are_read_in_pages_up_to_its_start() {
        use crate::store::conformance::{event, run_row, step_row};
        use crate::store::{StepState, sqlite::SqliteStore};
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let day = |n: i64| {
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(n)
        };
        for n in 0..900 {
            let id = format!("r{n:03}");
            let run = run_row(&id, "monthly", None, day(n));
            let rows = vec![step_row(&id, "a", "", StepState::Pending)];
            let started = event("run.started", Some(&id), None, day(n));
            store.create_run(run, rows, started).await.unwrap();
        }
        let found = runs_started_in(&store, day(250), day(650)).await.unwrap();
        let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
        let expected: Vec<String> = (250..650).rev().map(|n| format!("r{n:03}")).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn the_release_is_local_midnight_across_dst_changes() {
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        // March 2026: DST starts on Sunday the 8th; Patch Tuesday is the 10th (EDT, UTC-4).
        let day = crate::calendar::patch_tuesday("2026-03".parse().unwrap());
        assert_eq!(day.to_string(), "2026-03-10");
        assert_eq!(
            release_instant(ny, day).to_rfc3339(),
            "2026-03-10T04:00:00+00:00"
        );
        // November 2026: DST ends on the 1st; Patch Tuesday is the 10th (EST, UTC-5).
        let day = crate::calendar::patch_tuesday("2026-11".parse().unwrap());
        assert_eq!(
            release_instant(ny, day).to_rfc3339(),
            "2026-11-10T05:00:00+00:00"
        );
        // A zone whose DST starts at midnight (America/Santiago, 2026-09-06): the day starts at 01:00.
        let santiago: chrono_tz::Tz = "America/Santiago".parse().unwrap();
        let gap = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        assert_eq!(
            release_instant(santiago, gap).to_rfc3339(),
            "2026-09-06T04:00:00+00:00"
        );
    }

    #[test]
    fn sla_days_are_calendar_days_across_dst_and_hours_are_exact() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let days = |n: u64| std::time::Duration::from_secs(n * 86_400);
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        // DST starts on 2026-03-29: 20 days after 03-10 00:00 CET is 03-30 00:00 CEST, one
        // hour fewer than 480 hours.
        assert_eq!(
            deadline(berlin, day(2026, 3, 10), days(20)).to_rfc3339(),
            "2026-03-29T22:00:00+00:00"
        );
        let sydney: chrono_tz::Tz = "Australia/Sydney".parse().unwrap();
        assert_eq!(
            deadline(
                sydney,
                day(2026, 9, 8),
                days(30) + std::time::Duration::from_secs(3_600)
            )
            .to_rfc3339(),
            "2026-10-07T14:00:00+00:00"
        );
        // An SLA of millennia never ends (no overflow, no panic).
        assert_eq!(
            deadline(berlin, day(2026, 3, 10), days(9_999_999)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    fn window(days: i64) -> Window {
        let released = Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap();
        Window {
            severity: Severity::Critical,
            released,
            deadline: released + chrono::Duration::days(days),
        }
    }

    fn row(host: &str, state: StepState, finished: Option<DateTime<Utc>>) -> StepRow {
        StepRow {
            run_id: "r".into(),
            step: "patch".into(),
            host: host.into(),
            state,
            attempt: 1,
            not_before: None,
            started_at: None,
            finished_at: finished,
            outputs: json!({}),
            reason: (state == StepState::Failed).then(|| "exit 1".into()),
        }
    }

    #[test]
    fn late_hosts_are_named_with_their_reason_across_month_end() {
        // Released on January 31st with 30 days: the deadline is March 2nd (February has 28).
        let w = window(30);
        assert_eq!(w.deadline.to_rfc3339(), "2026-03-02T00:00:00+00:00");
        let at = |m, d| Utc.with_ymd_and_hms(2026, m, d, 12, 0, 0).unwrap();
        let rows = [
            row("web1", StepState::Succeeded, Some(at(2, 27))),
            row("web2", StepState::Succeeded, Some(at(3, 2))),
            row("db1", StepState::Failed, Some(at(2, 3))),
            row("db2", StepState::Running, None),
        ];
        let hosts = hosts(&rows, &w);
        let within: Vec<bool> = hosts.iter().map(|h| h["within_sla"] == true).collect();
        assert_eq!(within, [true, false, false, false]);
        assert!(
            hosts[1]["late_reason"]
                .as_str()
                .unwrap()
                .contains("after the deadline 2026-03-02T00:00:00.000000Z")
        );
        assert_eq!(hosts[2]["late_reason"], "step `patch` Failed: exit 1");
        assert_eq!(hosts[0]["hours_to_patch"], 27.0 * 24.0 + 12.0);
    }
}
