//! `patchday calendar`: the next cycles with Patch Tuesday, fire times and blackouts.

use patchday_tests::{run, stderr, stdout};
use serde_json::Value;

#[test]
fn monthly_calendar_shows_next_year_with_the_freeze() {
    let out = run(&[
        "calendar",
        "runbooks/monthly.yaml",
        "--count",
        "12",
        "--now",
        "2026-11-24T12:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cal: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cal["runbook"], "monthly-windows");
    assert_eq!(cal["timezone"], "America/New_York");
    let cycles = cal["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 12);
    assert_eq!(cycles[0]["cycle"], "2026-12");
    assert_eq!(cycles[0]["patch_tuesday"], "2026-12-08");
    assert_eq!(cycles[0]["fires_at"], "2026-12-01T09:00:00-05:00");
    assert_eq!(cycles[0]["blackout"], Value::Null);
    // January 2027: Patch Tuesday the 12th, opened on the 5th... after the freeze ends on the 4th.
    assert_eq!(cycles[1]["cycle"], "2027-01");
    assert_eq!(cycles[1]["fires_at"], "2027-01-05T09:00:00-05:00");
    // March 2027: Patch Tuesday the 9th, opened on the 2nd, before DST starts on the 14th.
    assert_eq!(cycles[3]["fires_at"], "2027-03-02T09:00:00-05:00");
    // April 2027 is in daylight time.
    assert_eq!(cycles[4]["fires_at"], "2027-04-06T09:00:00-04:00");
}

#[test]
fn a_cycle_in_a_blackout_is_shown_as_skipped() {
    let out = run(&[
        "calendar",
        "runbooks/esx-bimonthly.yaml",
        "--from",
        "2026-12-01",
        "--count",
        "2",
    ]);
    let text = stdout(&out);
    assert!(text.contains("2027-01 "), "{text}");
    assert!(text.contains("skipped: year-end change freeze"), "{text}");
}

#[test]
fn text_calendar_shows_local_time_and_utc() {
    let out = run(&[
        "calendar",
        "runbooks/monthly.yaml",
        "--from",
        "2026-12-01",
        "--count",
        "1",
    ]);
    let text = stdout(&out);
    assert!(text.contains("Tue 2026-12-01 09:00 EST"), "{text}");
    assert!(text.contains("2026-12-01 14:00Z"), "{text}");
}

#[test]
fn a_manual_runbook_says_it_has_no_schedule() {
    let out = run(&["calendar", "runbooks/emergency.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("no schedule"));
}

#[test]
fn org_wide_blackouts_from_the_config_skip_cycles() {
    let out = run(&[
        "calendar",
        "runbooks/monthly.yaml",
        "--config",
        "tests/fixtures/org-freeze.toml",
        "--from",
        "2026-11-24",
        "--count",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cal: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cal["cycles"][0]["cycle"], "2026-12");
    assert_eq!(cal["cycles"][0]["blackout"], "datacenter migration");
    assert_eq!(cal["cycles"][1]["blackout"], Value::Null);
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let out = run(&[
        "calendar",
        "runbooks/monthly.yaml",
        "--config",
        "no-such.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no-such.toml: cannot read the configuration"),
        "{}",
        stderr(&out)
    );
}

/// A cron runbook's cycle is the local date of each fire: every Wednesday of `linux-weekly`
/// is its own cycle, across the change to summer time (Berlin, 2027-03-28) and the freeze.
#[test]
fn a_weekly_cron_runbook_has_a_cycle_every_week_across_dst() {
    let out = run(&[
        "calendar",
        "runbooks/linux-weekly.yaml",
        "--from",
        "2026-12-10",
        "--count",
        "20",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cal: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cycles = cal["cycles"].as_array().unwrap();
    let ids: Vec<&str> = cycles
        .iter()
        .map(|c| c["cycle"].as_str().unwrap())
        .collect();
    assert_eq!(
        &ids[..4],
        ["2026-12-16", "2026-12-23", "2026-12-30", "2027-01-06"]
    );
    assert_eq!(ids.len(), 20);
    assert_eq!(ids[19], "2027-04-28");
    assert_eq!(cycles[1]["blackout"], "year-end change freeze");
    assert_eq!(cycles[2]["blackout"], "year-end change freeze");
    assert_eq!(cycles[3]["blackout"], Value::Null);
    assert_eq!(cycles[3]["patch_tuesday"], "2027-01-12");
    assert_eq!(cycles[14]["fires_at"], "2027-03-24T22:00:00+01:00");
    assert_eq!(cycles[15]["fires_at"], "2027-03-31T22:00:00+02:00");
}

/// `simulate` and `plan` take a day cycle for a cron runbook, and refuse a month.
#[test]
fn simulate_and_plan_take_a_day_cycle_for_a_cron_runbook() {
    let out = run(&[
        "simulate",
        "runbooks/linux-weekly.yaml",
        "--cycle",
        "2027-03-31",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sim: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sim["cycle"], "2027-03-31");
    assert_eq!(sim["timeline"][0]["at"], "Wed 2027-03-31 22:00 CEST");
    assert_eq!(sim["outcome"], "succeeded");
    for command in ["simulate", "plan"] {
        let out = run(&[command, "runbooks/linux-weekly.yaml", "--cycle", "2027-03"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = stderr(&out);
        assert!(err.contains("give a date (YYYY-MM-DD)"), "{command}: {err}");
    }
    let out = run(&["plan", "runbooks/monthly.yaml", "--cycle", "2027-03-09"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give a month (YYYY-MM)"));
    let out = run(&[
        "plan",
        "runbooks/linux-weekly.yaml",
        "--cycle",
        "2027-03-31",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["cycle"], "2027-03-31");
}

/// `calendar --format ics`: one VEVENT per cycle, UTC start, stable UIDs whatever `--now`,
/// blacked-out cycles cancelled; an RRULE runbook's cycles are its occurrence dates.
#[test]
fn calendar_as_ics_for_subscribing() {
    let ics = |now: &str| {
        let out = run(&[
            "calendar",
            "runbooks/esx-alternate-weeks.yaml",
            "--now",
            now,
            "--from",
            "2027-12-01",
            "--count",
            "4",
            "--format",
            "ics",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let text = ics("2027-11-30T08:00:00Z");
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n"), "{text}");
    assert!(text.ends_with("END:VCALENDAR\r\n"), "{text}");
    let unfolded = text.replace("\r\n ", "");
    let uids: Vec<&str> = unfolded.lines().filter(|l| l.starts_with("UID:")).collect();
    assert_eq!(
        uids,
        [
            "UID:2027-12-07.esx-alternate-weeks@patchday",
            "UID:2027-12-21.esx-alternate-weeks@patchday",
            "UID:2028-01-04.esx-alternate-weeks@patchday",
            "UID:2028-01-18.esx-alternate-weeks@patchday",
        ]
    );
    assert!(unfolded.contains("DTSTART:20271207T080000Z\r\n"));
    assert_eq!(
        unfolded.matches("STATUS:CANCELLED").count(),
        2,
        "{unfolded}"
    );
    assert!(unfolded.contains("DTSTAMP:20271130T080000Z"));
    // Another day, the same events (only DTSTAMP moves).
    let later = ics("2027-12-01T09:00:00Z").replace("20271201T090000Z", "20271130T080000Z");
    assert_eq!(later, text);
    let out = run(&["plan", "runbooks/monthly.yaml", "--format", "ics"]);
    assert_eq!(out.status.code(), Some(2));
}
