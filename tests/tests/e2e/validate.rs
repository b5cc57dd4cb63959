//! `patchday validate`: the example runbooks pass, errors come as file:line:col, JSON shape.

use patchday_tests::{run, stderr, stdout};
use serde_json::Value;

#[test]
fn the_example_runbooks_validate_as_a_folder() {
    let out = run(&["validate", "runbooks/"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ok: 5 runbook(s) valid"), "{text}");
    for name in [
        "monthly-windows",
        "emergency-zero-day",
        "esx-bimonthly",
        "esx-alternate-weeks",
        "linux-weekly",
    ] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
}

#[test]
fn json_output_has_the_contract_shape() {
    let out = run(&[
        "validate",
        "--format",
        "json",
        "tests/corpus/invalid/unknown-needs.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], Value::Bool(false));
    let error = &report["errors"][0];
    assert_eq!(error["file"], "tests/corpus/invalid/unknown-needs.yaml");
    assert_eq!(error["line"], 4);
    assert_eq!(error["column"], 32);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `snapshot`?")
    );
}

#[test]
fn valid_json_output_says_so() {
    let out = run(&["validate", "--format", "json", "runbooks/monthly.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], Value::Bool(true));
    assert_eq!(report["errors"], Value::Array(vec![]));
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let out = run(&["validate", "runbooks/no-such.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no such file or folder"));
}

#[test]
fn every_example_runbook_starts_with_the_schema_modeline() {
    for file in [
        "monthly.yaml",
        "emergency.yaml",
        "esx-bimonthly.yaml",
        "esx-alternate-weeks.yaml",
    ] {
        let text = std::fs::read_to_string(patchday_tests::repo_root().join("runbooks").join(file))
            .unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/runbook.schema.json\n"),
            "{file} lacks the schema modeline"
        );
    }
}

#[test]
fn a_timeline_that_cannot_hold_is_a_warning_not_an_error() {
    let out = run(&["validate", "tests/fixtures/timeline-cannot-hold.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("timeline-cannot-hold.yaml:9:9: warning: `patch` may start at `second_saturday 22:00`, before `cab` (which it waits for) may start at `patch_tuesday-1d 10:00` (e.g. in 2025-01): the timeline cannot hold"),
        "{text}"
    );
    assert!(stdout(&out).contains("1 warning"), "{}", stdout(&out));
}
