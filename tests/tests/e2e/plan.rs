//! `patchday plan`: the DAG in order with waves and planned starts; dot and mermaid drawings.

use patchday_tests::{run, stderr, stdout};
use serde_json::Value;

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan", "--format", "json"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn step<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[test]
fn monthly_plan_for_december_2026_has_the_real_timeline() {
    let plan = plan_json(&["runbooks/monthly.yaml", "--cycle", "2026-12"]);
    assert_eq!(plan["runbook"], "monthly-windows");
    assert_eq!(plan["cycle"], "2026-12");
    // Patch Tuesday 2026-12-08; the cycle opens a week before at 09:00 New York time.
    assert_eq!(
        step(&plan, "notify-committee")["planned_start"],
        "2026-12-01T09:00:00-05:00"
    );
    assert_eq!(
        step(&plan, "cab-approval")["planned_start"],
        "2026-12-07T10:00:00-05:00"
    );
    assert_eq!(
        step(&plan, "patch-node1")["planned_start"],
        "2026-12-12T22:00:00-05:00"
    );
    assert_eq!(
        step(&plan, "apps-online")["planned_start"],
        "2026-12-13T01:00:00-05:00"
    );
    // A step without `at` starts when the steps it needs start at the earliest.
    assert_eq!(
        step(&plan, "smoke-test-node1")["planned_start"],
        "2026-12-12T22:00:00-05:00"
    );
    assert_eq!(
        step(&plan, "cab-approval")["needs"],
        serde_json::json!(["notify-committee", "open-change-ticket"])
    );
    assert_eq!(step(&plan, "notify-committee")["wave"], 1);
    assert_eq!(step(&plan, "cab-approval")["wave"], 2);
}

#[test]
fn emergency_plan_is_anchored_on_start() {
    let plan = plan_json(&["runbooks/emergency.yaml", "--start", "2026-11-24T15:00:00Z"]);
    assert_eq!(
        step(&plan, "notify-management")["planned_start"],
        "2026-11-24T10:00:00-05:00"
    );
    assert_eq!(
        step(&plan, "roll-out-test")["planned_start"],
        "2026-11-25T07:00:00-05:00"
    );
    assert_eq!(
        step(&plan, "review-meeting")["planned_start"],
        "2026-11-26T14:00:00-05:00"
    );
}

#[test]
fn emergency_plan_without_start_leaves_times_unknown() {
    let plan = plan_json(&["runbooks/emergency.yaml"]);
    assert_eq!(step(&plan, "roll-out-test")["planned_start"], Value::Null);
}

#[test]
fn mermaid_draws_the_monthly_dag() {
    let out = run(&[
        "plan",
        "runbooks/monthly.yaml",
        "--cycle",
        "2026-12",
        "--format",
        "mermaid",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("flowchart TD\n"), "{text}");
    assert!(
        text.contains("[\"patch-node1<br/>command × cluster-node1<br/>Sat 2026-12-12 22:00 EST\"]"),
        "{text}"
    );
    let edges = text.lines().filter(|l| l.contains(" --> ")).count();
    assert_eq!(edges, 21, "{text}");
}

#[test]
fn dot_draws_edges_from_need_to_step() {
    let out = run(&[
        "plan",
        "runbooks/esx-bimonthly.yaml",
        "--cycle",
        "2027-01",
        "--format",
        "dot",
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("digraph \"esx-bimonthly\" {"), "{text}");
    assert!(
        text.contains("\"update-hosts\" -> \"hosts-answer\";"),
        "{text}"
    );
}

#[test]
fn text_plan_lists_waves_and_the_critical_path() {
    let out = run(&["plan", "runbooks/esx-bimonthly.yaml", "--cycle", "2027-03"]);
    let text = stdout(&out);
    assert!(text.contains("critical path: announce -> cab-approval -> update-hosts -> hosts-answer -> exit-maintenance -> report"), "{text}");
    assert!(text.contains("Mon 2027-03-01 20:00 CET"), "{text}");
}

/// Issue 15: `plan` printed `-05:00` where `simulate` printed `EST`; both show a time one way.
#[test]
fn plan_and_simulate_show_a_time_the_same_way() {
    let args = ["runbooks/monthly.yaml", "--cycle", "2026-12"];
    let plan = stdout(&run(&[&["plan"][..], &args].concat()));
    let simulated = stdout(&run(&[&["simulate"][..], &args].concat()));
    let planned = plan
        .lines()
        .find(|l| l.contains(" patch-node1 "))
        .expect("patch-node1 in the plan");
    assert!(planned.contains("Sat 2026-12-12 22:00 EST"), "{plan}");
    assert!(!plan.contains("-05:00"), "{plan}");
    assert!(
        simulated.contains("Sat 2026-12-12 22:00 EST    patch-node1"),
        "{simulated}"
    );
}
