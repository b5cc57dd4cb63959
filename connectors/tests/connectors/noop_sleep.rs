//! `noop` and `sleep`: trivial, idempotent; sleep honours cancellation.

use std::time::{Duration, Instant};

use patchday_connectors::{ConnectorError, Context, builtin};
use serde_json::json;

#[tokio::test]
async fn noop_succeeds_and_echoes_its_message() {
    let noop = builtin("noop").unwrap();
    assert!(noop.spec().idempotent);
    let ctx = Context::new("r", "s");
    let out = noop
        .execute(json!({ "message": "hi" }), &ctx)
        .await
        .unwrap();
    assert_eq!(out["message"], "hi");
    assert_eq!(noop.dry_run(&json!({}), &ctx).unwrap(), "would do nothing");
}

#[tokio::test]
async fn sleep_waits_for_its_duration() {
    let sleep = builtin("sleep").unwrap();
    let ctx = Context::new("r", "s");
    let start = Instant::now();
    sleep
        .execute(json!({ "duration": "1s" }), &ctx)
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        sleep.dry_run(&json!({ "duration": "2h" }), &ctx).unwrap(),
        "would wait 2h"
    );
}

#[tokio::test]
async fn sleep_stops_when_cancelled() {
    let sleep = builtin("sleep").unwrap();
    let ctx = Context::new("r", "s");
    ctx.cancel.cancel();
    let start = Instant::now();
    let err = sleep
        .execute(json!({ "duration": "1h" }), &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Cancelled));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn engine_run_connectors_only_dry_run() {
    let approval = builtin("approval").unwrap();
    let ctx = Context::new("r", "s");
    let line = approval
        .dry_run(&json!({ "approvers": "cab", "quorum": 2 }), &ctx)
        .unwrap();
    assert_eq!(line, "would ask cab to decide (approve/reject; quorum 2)");
    let err = approval
        .execute(json!({ "approvers": "cab" }), &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Fatal(m) if m.contains("run by the engine")));
}

#[test]
fn every_catalog_entry_has_a_builtin() {
    for spec in patchday_connectors::CATALOG {
        let c = builtin(spec.name).unwrap_or_else(|| panic!("no builtin for {}", spec.name));
        assert_eq!(c.spec().name, spec.name);
    }
    assert!(builtin("vsphere").is_none());
}

#[tokio::test]
async fn documented_outputs_match_what_noop_and_sleep_return() {
    let ctx = Context::new("r", "s");
    for (name, inputs) in [
        ("noop", json!({ "message": "m" })),
        ("sleep", json!({ "duration": "0s" })),
    ] {
        let c = builtin(name).unwrap();
        let out = c.execute(inputs, &ctx).await.unwrap();
        let documented: Vec<&str> = c.spec().outputs.iter().map(|(n, _)| *n).collect();
        let returned: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(documented, returned, "{name}");
    }
}
