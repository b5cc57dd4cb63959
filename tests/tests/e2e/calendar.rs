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
