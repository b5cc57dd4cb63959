//! A runbook's page, `/runbooks/{name}` (issue #13 item 3): its description, its schedule in
//! words, its step graph (no run states: [`super::graph::plan_svg`]), its next cycles
//! (blacked-out ones struck with their reason), its recent runs, the version loaded (content
//! hash, commit, file), its validation state with the last rejected edit's errors, and a
//! Trigger button for operators.
//!
//! Pure: built from the loaded runbook, store rows and a "now" passed in.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::actions::trigger_path;
use super::graph::plan_svg;
use super::overview::{NextFire, RejectedFile, countdown, minute, runs_table};
use crate::calendar::{Blackout, ScheduleRule};
use crate::store::RunRow;
use crate::validate::CheckedRunbook;

/// Everything the runbook page shows.
pub struct RunbookView<'a> {
    pub checked: &'a CheckedRunbook,
    pub file: String,
    pub content_hash: String,
    pub commit: Option<String>,
    pub now: DateTime<Utc>,
    pub next: Vec<NextFire>,
    pub runs: Vec<RunRow>,
    /// A later edit of its file that was refused (this version keeps running).
    pub rejected: Option<RejectedFile>,
    /// Whether the person may start a run.
    pub operates: bool,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// One schedule rule in words: "at `patch_tuesday 10:00` every month", "at `first_monday
/// 09:00` in January and July", "whenever cron `0 0 22 * * Sat` matches", "on RRULE `…` from
/// …" (the rule's own text in `<code>`).
pub fn rule_in_words(rule: &ScheduleRule) -> Markup {
    match rule {
        ScheduleRule::Anchored { expr, months } => {
            let when = match months {
                None => "every month".to_string(),
                Some(months) => {
                    let names: Vec<&str> = months
                        .iter()
                        .filter_map(|m| MONTHS.get((*m as usize).checked_sub(1)?).copied())
                        .collect();
                    format!("in {}", and_list(&names))
                }
            };
            html! { "at " code { (expr.to_string()) } " " (when) }
        }
        ScheduleRule::Cron(schedule) => {
            html! { "whenever cron " code { (schedule.to_string()) } " matches (at most once a day)" }
        }
        ScheduleRule::Recurrence(r) => html! {
            "on RRULE " code { (r.rule.to_string()) } " from " (r.start.format("%Y-%m-%d %H:%M").to_string())
        },
    }
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The runbook page's body.
pub fn runbook_body(view: &RunbookView) -> Markup {
    let runbook = &view.checked.runbook;
    html! {
        h1 { "Runbook " (runbook.name.value) }
        @if let Some(description) = &runbook.description { p.lead { (description) } }
        @if view.operates {
            form.trigger method="get" action=(trigger_path(&runbook.name.value)) {
                button type="submit" { "Trigger a run…" }
            }
        }
        h2 #schedule { "Schedule" }
        (schedule(view))
        h2 #steps { "Steps" }
        div.drawing { (plan_svg(view.checked)) }
        h2 #next { "Next cycles" }
        (next_cycles(view))
        h2 #runs { "Recent runs" }
        (runs_table(&view.runs))
        h2 #version { "Version loaded" }
        table.facts {
            tr { th { "File" } td { code { (view.file) } } }
            tr { th { "Content hash" } td { code.hash { (view.content_hash) } } }
            tr { th { "Commit" } td { code.hash { (view.commit.as_deref().unwrap_or("not a git work tree")) } } }
        }
        h2 #validation { "Validation" }
        (validation(view))
    }
}

fn schedule(view: &RunbookView) -> Markup {
    let schedule = &view.checked.schedule;
    html! {
        @if schedule.is_manual() {
            p { "No schedule: started by hand (" code { "patchday trigger " (view.checked.runbook.name.value) } ") or through the API." }
        } @else {
            p { "Fires, in the zone " code { (schedule.tz().name()) } ":" }
            ul.plain.rules { @for rule in schedule.rules() { li { (rule_in_words(rule)) } } }
        }
        @if !schedule.blackouts().is_empty() {
            p { "Blackouts (cycles firing in them are skipped):" }
            ul.plain.blackouts { @for b in schedule.blackouts() { li { (blackout_words(b)) } } }
        }
    }
}

fn blackout_words(b: &Blackout) -> String {
    if b.from == b.to {
        format!("{}: {}", b.from, b.reason)
    } else {
        format!("{} to {}: {}", b.from, b.to, b.reason)
    }
}

fn next_cycles(view: &RunbookView) -> Markup {
    html! {
        @if view.next.is_empty() {
            p.muted { "None: the runbook runs only when triggered." }
        } @else {
            ul.plain.next { @for fire in &view.next {
                li {
                    @match &fire.blackout {
                        None => { (fire.cycle) " — " (minute(fire.at)) " " span.countdown { "(" (countdown(view.now, fire.at)) ")" } }
                        Some(reason) => { s { (fire.cycle) " — " (minute(fire.at)) } " " span.muted { "skipped: " (reason) } }
                    }
                }
            } }
            p { a href={ "/calendar?runbook=" (super::run::query_value(&view.checked.runbook.name.value)) } { "See it in the month calendar" } }
        }
    }
}

fn validation(view: &RunbookView) -> Markup {
    html! {
        @match &view.rejected {
            None => p { span.badge.ok { "valid" } " The file loaded as shown above; no later edit was refused." }
            Some(rejected) => {
                p { span.badge.bad { "edit rejected" } " The last edit of " code { (rejected.file) } " was refused"
                    @if let Some(at) = rejected.at { " at " (minute(at)) }
                    "; the version above keeps running." }
                ul.errors { @for error in &rejected.errors { li { pre.error { (error) } } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::TimeExpr;

    #[test]
    fn rules_read_in_words() {
        let expr: TimeExpr = "patch_tuesday 10:00".parse().unwrap();
        let every = ScheduleRule::anchored(expr.clone(), None).unwrap();
        let words = |rule: &ScheduleRule| rule_in_words(rule).into_string();
        assert_eq!(
            words(&every),
            "at <code>patch_tuesday 10:00</code> every month"
        );
        let some = ScheduleRule::anchored(expr, Some(vec![1, 4, 7])).unwrap();
        assert_eq!(
            words(&some),
            "at <code>patch_tuesday 10:00</code> in January, April and July"
        );
        let cron = ScheduleRule::cron("0 0 22 * * Sat").unwrap();
        assert_eq!(
            words(&cron),
            "whenever cron <code>0 0 22 * * Sat</code> matches (at most once a day)"
        );
    }
}
