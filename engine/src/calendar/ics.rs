//! RFC 5545 calendar output (`patchday calendar --format ics`, and the daemon's
//! `/calendar.ics`, one runbook or all): one VEVENT per cycle.
//!
//! - `UID` is `<cycle>.<runbook>@patchday`: stable across runs of the command and edits of the
//!   runbook (runbook names are unique in a folder), so a subscribed calendar updates an event in
//!   place when its time moves.
//! - `DTSTART` is the fire in UTC (`...Z`), which needs no VTIMEZONE; the description gives the
//!   local time. A fire is an instant: no `DTEND` (RFC 5545 §3.6.1: a zero-length event).
//! - A cycle in a blackout is `STATUS:CANCELLED` with the reason; the others `CONFIRMED`.
//! - `DTSTAMP` is the time the calendar was made (the injected clock: `--now` sets it).
//! - Lines end in CRLF and are folded at 75 octets; text values are escaped (§3.3.11).
//!
//! Pure: the fires and the time come in, the text goes out.

use chrono::{DateTime, Utc};

use super::schedule::Fire;

/// The VCALENDAR of `fires` for `runbook`, made at `now`.
pub fn vcalendar(runbook: &str, fires: &[Fire], now: DateTime<Utc>) -> String {
    vcalendar_of(&format!("patchday {runbook}"), &[(runbook, fires)], now)
}

/// The VCALENDAR named `title` of every runbook's fires, made at `now`.
pub fn vcalendar_of(title: &str, runbooks: &[(&str, &[Fire])], now: DateTime<Utc>) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//patchday//calendar//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", escape(title)),
    ];
    for (runbook, fires) in runbooks {
        for fire in fires.iter() {
            lines.extend(vevent(runbook, fire, now));
        }
    }
    lines.push("END:VCALENDAR".to_string());
    let mut out = String::new();
    for line in lines {
        out.push_str(&fold(&line));
        out.push_str("\r\n");
    }
    out
}

fn vevent(runbook: &str, fire: &Fire, now: DateTime<Utc>) -> Vec<String> {
    let local = fire.fires_at.format("%a %Y-%m-%d %H:%M %Z");
    let (status, note) = match &fire.blackout {
        Some(reason) => ("CANCELLED", format!("skipped: {reason}")),
        None => ("CONFIRMED", format!("fires {local}")),
    };
    let description = format!(
        "{runbook} cycle {}; {note}; Patch Tuesday {}",
        fire.cycle, fire.patch_tuesday
    );
    vec![
        "BEGIN:VEVENT".to_string(),
        format!("UID:{}.{}@patchday", fire.cycle, runbook),
        format!("DTSTAMP:{}", utc_stamp(now)),
        format!("DTSTART:{}", utc_stamp(fire.fires_at.to_utc())),
        format!("SUMMARY:{}", escape(&format!("{runbook} {}", fire.cycle))),
        format!("DESCRIPTION:{}", escape(&description)),
        format!("STATUS:{status}"),
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

    #[test]
    fn one_vevent_per_cycle_with_a_stable_uid_and_cancelled_blackouts() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .to_utc();
        let ics = vcalendar("linux-weekly", &fires(), now);
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
        assert_eq!(vcalendar("linux-weekly", &fires(), now), ics);
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
