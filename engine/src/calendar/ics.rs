//! RFC 5545 calendar output (`patchday calendar --format ics`, and the daemon's
//! `/calendar.ics`, one runbook or all): one VEVENT per cycle and, asked for, one per
//! milestone step (a step with an `at`: committee email, CAB, patch night, report).
//!
//! - `UID` is `<cycle>.<runbook>@patchday` for a cycle and `<step>.<cycle>.<runbook>@patchday`
//!   for a milestone: stable across runs of the command and edits of the runbook (runbook
//!   names are unique in a folder; names, cycles and step ids hold no `.`), so a subscribed
//!   calendar updates an event in place when its time moves.
//! - `SEQUENCE` is the event's revision (§3.8.7.4): the caller numbers them (the daemon keeps
//!   the last published start and status per UID in its store and bumps the number when
//!   either changes); the stateless CLI says 0.
//! - `DTSTART` is the instant in UTC (`...Z`), which needs no VTIMEZONE; the description gives
//!   the local time. A fire is an instant: no `DTEND` (RFC 5545 §3.6.1: a zero-length event).
//! - A cycle in a blackout, and each of its milestones, is `STATUS:CANCELLED` with the
//!   reason; the others `CONFIRMED`.
//! - `DTSTAMP` is the time the calendar was made (the injected clock: `--now` sets it).
//! - Lines end in CRLF and are folded at 75 octets; text values are escaped (§3.3.11).
//!
//! Pure: the fires, milestones and the time come in, the text goes out.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::schedule::Fire;

/// One VEVENT: a cycle's fire or one of its milestone steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub uid: String,
    pub start: DateTime<Utc>,
    pub summary: String,
    pub description: String,
    /// Whether a blackout skips the cycle (`STATUS:CANCELLED`).
    pub cancelled: bool,
    /// The revision number (`SEQUENCE`).
    pub sequence: u32,
}

impl Event {
    /// `CANCELLED` or `CONFIRMED`.
    pub fn status(&self) -> &'static str {
        if self.cancelled {
            "CANCELLED"
        } else {
            "CONFIRMED"
        }
    }
}

/// A milestone of a cycle: a step with an `at` and its planned start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    pub step: String,
    pub at: DateTime<Tz>,
}

/// The events of `runbook`'s cycle `fire`: the cycle's own, then one per milestone, each at
/// SEQUENCE 0.
pub fn cycle_events(runbook: &str, fire: &Fire, milestones: &[Milestone]) -> Vec<Event> {
    let skipped = fire.blackout.as_ref().map(|r| format!("skipped: {r}"));
    let when = |at: &DateTime<Tz>| format!("{}", at.format("%a %Y-%m-%d %H:%M %Z"));
    let cycle = fire.cycle;
    let tuesday = fire.patch_tuesday;
    let note = skipped
        .clone()
        .unwrap_or_else(|| format!("fires {}", when(&fire.fires_at)));
    let mut events = vec![Event {
        uid: format!("{cycle}.{runbook}@patchday"),
        start: fire.fires_at.to_utc(),
        summary: format!("{runbook} {cycle}"),
        description: format!("{runbook} cycle {cycle}; {note}; Patch Tuesday {tuesday}"),
        cancelled: skipped.is_some(),
        sequence: 0,
    }];
    events.extend(milestones.iter().map(|m| {
        let step = &m.step;
        let note = skipped
            .clone()
            .unwrap_or_else(|| format!("planned {}", when(&m.at)));
        Event {
            uid: format!("{step}.{cycle}.{runbook}@patchday"),
            start: m.at.to_utc(),
            summary: format!("{runbook} {cycle}: {step}"),
            description: format!(
                "{runbook} cycle {cycle}, step {step}; {note}; Patch Tuesday {tuesday}"
            ),
            cancelled: skipped.is_some(),
            sequence: 0,
        }
    }));
    events
}

/// The VCALENDAR named `title` of `events`, made at `now`.
pub fn vcalendar(title: &str, events: &[Event], now: DateTime<Utc>) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//patchday//calendar//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", escape(title)),
    ];
    for event in events {
        lines.extend(vevent(event, now));
    }
    lines.push("END:VCALENDAR".to_string());
    let mut out = String::new();
    for line in lines {
        out.push_str(&fold(&line));
        out.push_str("\r\n");
    }
    out
}

fn vevent(event: &Event, now: DateTime<Utc>) -> Vec<String> {
    vec![
        "BEGIN:VEVENT".to_string(),
        format!("UID:{}", event.uid),
        format!("DTSTAMP:{}", utc_stamp(now)),
        format!("DTSTART:{}", utc_stamp(event.start)),
        format!("SEQUENCE:{}", event.sequence),
        format!("SUMMARY:{}", escape(&event.summary)),
        format!("DESCRIPTION:{}", escape(&event.description)),
        format!("STATUS:{}", event.status()),
        "END:VEVENT".to_string(),
    ]
}

fn utc_stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT escaping (§3.3.11): backslash, semicolon, comma and newline.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line at 75 octets (§3.1), never inside a UTF-8 character: the
/// continuation lines start with a space.
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3);
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{Blackout, Schedule, ScheduleRule, parse_date};

    fn fires() -> Vec<Fire> {
        let freeze = Blackout::new(
            parse_date("2026-12-21").unwrap(),
            parse_date("2027-01-04").unwrap(),
            "year-end freeze; no changes, please",
        )
        .unwrap();
        let rule = ScheduleRule::cron("0 0 22 * * Wed").unwrap();
        let schedule = Schedule::new(vec![rule], chrono_tz::Europe::Berlin, vec![freeze]);
        let from = DateTime::parse_from_rfc3339("2026-12-15T00:00:00Z")
            .unwrap()
            .to_utc();
        schedule.fires_from(from).take(3).collect()
    }

    fn calendar(now: DateTime<Utc>) -> String {
        let events: Vec<Event> = fires()
            .iter()
            .flat_map(|f| cycle_events("linux-weekly", f, &[]))
            .collect();
        vcalendar("patchday linux-weekly", &events, now)
    }

    #[test]
    fn a_milestone_has_its_own_uid_time_and_the_cycle_s_status() {
        let fires = fires();
        let milestone = |fire: &Fire| Milestone {
            step: "cab".into(),
            at: fire.fires_at + chrono::Duration::hours(1),
        };
        let open = cycle_events("linux-weekly", &fires[0], &[milestone(&fires[0])]);
        assert_eq!(open.len(), 2);
        assert_eq!(open[1].uid, "cab.2026-12-16.linux-weekly@patchday");
        assert_eq!(open[1].start, open[0].start + chrono::Duration::hours(1));
        assert_eq!(open[1].summary, "linux-weekly 2026-12-16: cab");
        assert!(
            open[1]
                .description
                .contains("planned Wed 2026-12-16 23:00 CET")
        );
        assert_eq!(open[1].status(), "CONFIRMED");
        let frozen = cycle_events("linux-weekly", &fires[1], &[milestone(&fires[1])]);
        assert_eq!(frozen[1].status(), "CANCELLED");
        assert!(frozen[1].description.contains("skipped: year-end freeze"));
    }

    #[test]
    fn one_vevent_per_cycle_with_a_stable_uid_and_cancelled_blackouts() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .to_utc();
        let ics = calendar(now);
        assert!(
            ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
            "{ics}"
        );
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        assert_eq!(ics.matches("BEGIN:VEVENT\r\n").count(), 3);
        assert!(
            !ics.replace("\r\n", "").contains('\n'),
            "every line ends in CRLF"
        );
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains("UID:2026-12-16.linux-weekly@patchday\r\n"));
        assert!(unfolded.contains("DTSTART:20261216T210000Z\r\n"));
        assert!(unfolded.contains("DTSTAMP:20261201T080000Z\r\n"));
        assert!(unfolded.contains("SUMMARY:linux-weekly 2026-12-23\r\n"));
        assert_eq!(unfolded.matches("STATUS:CANCELLED\r\n").count(), 2);
        assert!(
            unfolded.contains("skipped: year-end freeze\\; no changes\\, please"),
            "{unfolded}"
        );
        assert!(
            unfolded.contains("fires Wed 2026-12-16 22:00 CET"),
            "{unfolded}"
        );
        // The same fires give the same text (stable UIDs, no randomness).
        assert_eq!(calendar(now), ics);
        assert_eq!(unfolded.matches("SEQUENCE:0\r\n").count(), 3);
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let line = format!("DESCRIPTION:{}", "é".repeat(100));
        let folded = fold(&line);
        for part in folded.split("\r\n") {
            assert!(part.len() <= 75, "{} octets: {part}", part.len());
        }
        assert_eq!(folded.replace("\r\n ", ""), line);
        assert_eq!(escape("a\\b;c,d\ne"), "a\\\\b\\;c\\,d\\ne");
    }
}
