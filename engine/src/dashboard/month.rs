//! The month calendar page (`GET /calendar?month=YYYY-MM&runbook=NAME`): a Monday-first grid
//! of the month with every runbook's cycles (when each fires) and their steps' planned times
//! (the steps with an `at`: committee email, CAB, patch night, report...), Patch Tuesday
//! marked, blackout days shaded with their reason (a blacked-out cycle struck through and
//! said to be skipped), cycles the scheduler recorded as missed (`cycle.missed`, or
//! `cycle.failed`: could not start) struck through with why, today outlined; links to the
//! previous and next month and a plain `GET` form to filter by runbook (no JavaScript).
//! Each entry carries `data-runbook`, `data-cycle` and `data-state` (`planned`, `skipped`,
//! `missed`) for scripts and tests; the state is written out, not shown by colour alone.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};

use crate::calendar::{Cycle, blackout_for, patch_tuesday};
use crate::plan::milestones;
use crate::store::EventRow;
use crate::validate::CheckedRunbook;

/// One thing on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub date: NaiveDate,
    /// Local time in the runbook's zone, with the zone's abbreviation.
    pub time: String,
    pub runbook: String,
    /// The cycle the entry belongs to.
    pub cycle: Cycle,
    /// `cycle 2026-12 starts`, or a step id.
    pub what: String,
    /// A step of the cycle rather than its start (a step says `missed`/`skipped` without
    /// repeating why; the reason is its tooltip).
    pub is_step: bool,
    /// Why the cycle is skipped, when a blackout skips it.
    pub skipped: Option<String>,
    /// Why the cycle was missed, when the scheduler recorded it as missed.
    pub missed: Option<String>,
}

/// A cycle the scheduler recorded as missed or unable to start, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    pub runbook: String,
    pub cycle: String,
    pub reason: String,
}

/// The audit actions that record a cycle as missed ([`missed_of`] reads them).
pub const MISSED_ACTIONS: [&str; 2] = ["cycle.missed", "cycle.failed"];

/// The missed cycles recorded by `events` (the scheduler's [`MISSED_ACTIONS`] events).
pub fn missed_of(events: &[EventRow]) -> Vec<Missed> {
    let text = |e: &EventRow, key: &str| e.details[key].as_str().map(str::to_string);
    events
        .iter()
        .filter(|e| MISSED_ACTIONS.contains(&e.action.as_str()))
        .filter_map(|e| {
            Some(Missed {
                runbook: text(e, "runbook")?,
                cycle: text(e, "cycle")?,
                reason: text(e, "reason").unwrap_or_else(|| e.action.clone()),
            })
        })
        .collect()
}

/// Marks the entries of the `missed` cycles (the cycle's start and its steps) with why.
pub fn mark_missed(entries: &mut [Entry], missed: &[Missed]) {
    for entry in entries.iter_mut() {
        let cycle = entry.cycle.to_string();
        entry.missed = missed
            .iter()
            .find(|m| m.runbook == entry.runbook && m.cycle == cycle)
            .map(|m| m.reason.clone());
    }
}

/// A blackout day and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutDay {
    pub date: NaiveDate,
    pub runbook: String,
    pub reason: String,
}

/// The page's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthView {
    pub month: Cycle,
    pub today: NaiveDate,
    /// Every runbook's name (the filter's choices).
    pub runbooks: Vec<String>,
    /// The runbook filtered on, if any.
    pub selected: Option<String>,
    pub entries: Vec<Entry>,
    pub blackouts: Vec<BlackoutDay>,
}

/// A runbook's cycles firing in `month` and their steps' planned times within it.
pub fn entries_of(checked: &CheckedRunbook, month: Cycle) -> Vec<Entry> {
    let tz = checked.tz;
    let name = &checked.runbook.name.value;
    let from = (month.first_day() - Duration::days(45))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let fires = checked
        .schedule
        .fires_from(from)
        .take_while(|f| f.fires_at.date_naive() <= month.last_day())
        .filter(|f| Cycle::of(f.fires_at.date_naive()) == month);
    let mut out = Vec::new();
    for fire in fires {
        let start = fire.fires_at.to_utc();
        out.push(Entry {
            date: fire.fires_at.date_naive(),
            time: local_time(start, tz),
            runbook: name.clone(),
            cycle: fire.cycle,
            what: format!("cycle {} starts", fire.cycle),
            is_step: false,
            skipped: fire.blackout.clone(),
            missed: None,
        });
        for milestone in milestones(checked, &fire) {
            let date = milestone.at.date_naive();
            if Cycle::of(date) == month {
                out.push(Entry {
                    date,
                    time: local_time(milestone.at.to_utc(), tz),
                    runbook: name.clone(),
                    cycle: fire.cycle,
                    what: milestone.step,
                    is_step: true,
                    skipped: fire.blackout.clone(),
                    missed: None,
                });
            }
        }
    }
    out
}

/// A runbook's blackout days in `month`.
pub fn blackouts_of(checked: &CheckedRunbook, month: Cycle) -> Vec<BlackoutDay> {
    let blackouts = checked.schedule.blackouts();
    month
        .first_day()
        .iter_days()
        .take_while(|d| *d <= month.last_day())
        .filter_map(|date| {
            blackout_for(blackouts, date).map(|b| BlackoutDay {
                date,
                runbook: checked.runbook.name.value.clone(),
                reason: b.reason.clone(),
            })
        })
        .collect()
}

fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%H:%M %Z").to_string()
}

/// The page's body.
pub fn month_body(view: &MonthView) -> Markup {
    let month = view.month;
    let tuesday = patch_tuesday(month);
    let link = |cycle: Cycle| match &view.selected {
        Some(runbook) => format!(
            "/calendar?month={cycle}&runbook={}",
            super::run::query_value(runbook)
        ),
        None => format!("/calendar?month={cycle}"),
    };
    html! {
        h1 { "Patch calendar " (month) }
        nav.pager aria-label="Months" {
            a href=(link(month.pred())) rel="prev" { "‹ " (month.pred()) }
            a href=(link(Cycle::of(view.today))) { "this month" }
            a href=(link(month.succ())) rel="next" { (month.succ()) " ›" }
        }
        form.filter method="get" action="/calendar" {
            input type="hidden" name="month" value=(month.to_string());
            label for="runbook" { "Runbook " }
            select #runbook name="runbook" {
                option value="" selected[view.selected.is_none()] { "all runbooks" }
                @for name in &view.runbooks {
                    option value=(name) selected[view.selected.as_deref() == Some(name.as_str())] { (name) }
                }
            }
            " "
            button type="submit" { "Show" }
        }
        table.month {
            caption { "Patch Tuesday is " (tuesday.format("%A %-d %B %Y")) ". Times are each runbook's own zone." }
            thead { tr { @for day in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] { th scope="col" { (day) } } } }
            tbody {
                @for week in weeks(month) {
                    tr { @for date in week { (day_cell(view, date, tuesday)) } }
                }
            }
        }
    }
}

/// The month's weeks, Monday first, padded with the neighbouring months' days.
fn weeks(month: Cycle) -> Vec<Vec<NaiveDate>> {
    let first = month.first_day();
    let start = first - Duration::days(i64::from(first.weekday().num_days_from_monday()));
    let mut weeks = Vec::new();
    let mut day = start;
    while day <= month.last_day() {
        weeks.push((0..7).map(|k| day + Duration::days(k)).collect());
        day += Duration::days(7);
    }
    weeks
}

fn day_cell(view: &MonthView, date: NaiveDate, tuesday: NaiveDate) -> Markup {
    let outside = Cycle::of(date) != view.month;
    let blackouts: Vec<&BlackoutDay> = view.blackouts.iter().filter(|b| b.date == date).collect();
    let mut classes = vec!["day"];
    if outside {
        classes.push("outside");
    }
    if !blackouts.is_empty() {
        classes.push("blackout");
    }
    if date == view.today {
        classes.push("today");
    }
    html! {
        td class=(classes.join(" ")) data-date=(date.to_string()) {
            div.date {
                (date.day())
                @if date == view.today { " " span.tag { "today" } }
                @if date == tuesday { " " span.tag.pt { "Patch Tuesday" } }
            }
            @for b in &blackouts { div.reason { "Blackout (" (b.runbook) "): " (b.reason) } }
            @if !outside {
                ul.entries {
                    @for entry in view.entries.iter().filter(|e| e.date == date) {
                        (entry_item(entry))
                    }
                }
            }
        }
    }
}

fn entry_item(entry: &Entry) -> Markup {
    let (state, why) = match (&entry.skipped, &entry.missed) {
        (Some(reason), _) => ("skipped", Some(reason)),
        (None, Some(reason)) => ("missed", Some(reason)),
        (None, None) => ("planned", None),
    };
    html! {
        li data-runbook=(entry.runbook) data-cycle=(entry.cycle.to_string()) data-state=(state) {
            @if let Some(reason) = why {
                s { (entry.time) " " (entry.runbook) ": " (entry.what) }
                " "
                @if entry.is_step {
                    span.muted title=(reason) { (state) }
                } @else {
                    span.muted { (state) ": " (reason) }
                }
            } @else {
                (entry.time) " " a href=(super::actions::runbook_path(&entry.runbook)) { strong { (entry.runbook) } } ": " (entry.what)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runbook::load_runbook;
    use crate::validate::{Sources, check};

    const YAML: &str = "name: monthly\ntimezone: UTC\nschedule:\n  - at: patch_tuesday-7d 09:00\nblackouts:\n  - { from: 2026-12-21, to: 2027-01-06, reason: \"<b>freeze</b> & co\" }\nsteps:\n  committee: { uses: noop, at: patch_tuesday-7d 09:00 }\n  patch-night: { uses: noop, needs: [committee], at: patch_tuesday 20:00 }\n  report: { uses: noop, needs: [patch-night] }\n";

    fn checked() -> CheckedRunbook {
        let mut sources = Sources::default();
        sources.insert("m.yaml".into(), Ok(YAML.into()));
        let (checked, diags) = check(&load_runbook("m.yaml", YAML), Path::new(""), &sources);
        checked.unwrap_or_else(|| panic!("{diags:#?}"))
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn december() -> Cycle {
        Cycle::new(2026, 12).unwrap()
    }

    #[test]
    fn a_month_has_its_cycle_and_the_timed_steps() {
        let entries = entries_of(&checked(), december());
        let seen: Vec<(NaiveDate, &str, &str)> = entries
            .iter()
            .map(|e| (e.date, e.time.as_str(), e.what.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (date("2026-12-01"), "09:00 UTC", "cycle 2026-12 starts"),
                (date("2026-12-01"), "09:00 UTC", "committee"),
                (date("2026-12-08"), "20:00 UTC", "patch-night"),
            ]
        );
        assert!(entries.iter().all(|e| e.skipped.is_none()));
    }

    #[test]
    fn a_blacked_out_cycle_is_shown_skipped_with_its_reason() {
        let january = Cycle::new(2027, 1).unwrap();
        let entries = entries_of(&checked(), january);
        assert_eq!(entries[0].what, "cycle 2027-01 starts");
        assert_eq!(entries[0].date, date("2027-01-05"));
        assert_eq!(entries[0].skipped.as_deref(), Some("<b>freeze</b> & co"));
        let days = blackouts_of(&checked(), january);
        assert_eq!(days.len(), 6, "January 1 to 6");
    }

    #[test]
    fn a_recorded_miss_marks_the_cycle_and_its_steps_with_why() {
        let event = |action: &str, runbook: &str, cycle: &str| EventRow {
            seq: 1,
            at: Utc::now(),
            actor: "scheduler".into(),
            action: action.into(),
            run_id: None,
            step_id: None,
            details: serde_json::json!({"runbook": runbook, "cycle": cycle, "reason": "late <3h>"}),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let events = [
            event("cycle.missed", "monthly", "2026-12"),
            event("cycle.missed", "other", "2026-11"),
            event("run.started", "monthly", "2026-11"),
        ];
        let missed = missed_of(&events);
        assert_eq!(missed.len(), 2);
        let mut entries = entries_of(&checked(), december());
        mark_missed(&mut entries, &missed);
        assert!(
            entries
                .iter()
                .all(|e| e.missed.as_deref() == Some("late <3h>"))
        );
        let html = entry_item(&entries[0]).into_string();
        assert!(html.contains("data-state=\"missed\""), "{html}");
        assert!(html.contains("missed: late &lt;3h&gt;"), "{html}");
        let step = entry_item(&entries[1]).into_string();
        assert!(step.contains("title=\"late &lt;3h&gt;\">missed<"), "{step}");
        let mut november = entries_of(&checked(), Cycle::new(2026, 11).unwrap());
        mark_missed(&mut november, &missed);
        assert!(november.iter().all(|e| e.missed.is_none()));
    }

    #[test]
    fn the_grid_marks_patch_tuesday_today_and_blackouts_escaped() {
        let checked = checked();
        let view = MonthView {
            month: december(),
            today: date("2026-12-03"),
            runbooks: vec!["monthly".into(), "<evil>".into()],
            selected: Some("monthly".into()),
            entries: entries_of(&checked, december()),
            blackouts: blackouts_of(&checked, december()),
        };
        let html = month_body(&view).into_string();
        assert!(!html.contains("<b>") && !html.contains("<evil>"), "{html}");
        assert!(html.contains("Blackout (monthly): &lt;b&gt;freeze&lt;/b&gt; &amp; co"));
        assert_eq!(
            html.matches("class=\"day blackout\"").count(),
            11,
            "21 to 31"
        );
        assert!(html.contains("<td class=\"day today\" data-date=\"2026-12-03\">"));
        assert!(html.contains("8 <span class=\"tag pt\">Patch Tuesday</span>"));
        assert!(html.contains("href=\"/calendar?month=2026-11&amp;runbook=monthly\""));
        assert!(html.contains("href=\"/calendar?month=2027-01&amp;runbook=monthly\""));
        assert!(html.contains("<option value=\"monthly\" selected>monthly</option>"));
        // December 2026 starts on a Tuesday: the grid starts on Monday 30 November.
        assert!(html.contains("data-date=\"2026-11-30\""));
        assert_eq!(html.matches("<tr><td").count(), 5);
    }
}
