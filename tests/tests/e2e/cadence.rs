//! Cadences shorter than a month through the daemon: a daily cron runbook's cycle is the date
//! of each fire; every day fires once, across a restart, with the days the daemon was down
//! recorded as missed and not fired twice.

use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, count, emails_with, poll};
use patchday_tests::{patchday, scratch};

const NIGHTLY: &str = r#"name: nightly
description: Patch the test servers every night
timezone: America/New_York
schedule:
  - cron: "0 0 5 * * *"
catch_up: 1h
roles:
  ops: [ops@example.com]
notify: { on: [finished], to: [ops] }
steps:
  patch: { uses: noop }
"#;

fn serve(dir: &std::path::Path, database: &str, now: &str) -> Daemon {
    let mut cmd = patchday();
    cmd.current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--outbox", &dir.join("outbox").display().to_string()])
        .args(["--now", now, "--virtual-clock"]);
    Daemon::start(cmd)
}

fn await_finished(dir: &std::path::Path, cycle: &str) {
    let subject = format!("Subject: [patchday] nightly {cycle}: run succeeded");
    poll(&subject, Duration::from_secs(60), || {
        (!emails_with(&dir.join("outbox"), &subject).is_empty()).then_some(())
    });
}

fn cycles_of(events: &[serde_json::Value], action: &str) -> Vec<String> {
    let of_action = events.iter().filter(|e| e["action"] == action);
    of_action
        .map(|e| e["details"]["cycle"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[test]
fn a_daily_runbook_fires_every_day_once_across_a_restart() {
    let dir = scratch("cadence-daily");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/nightly.yaml"), NIGHTLY).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());

    // One minute before 05:00 EST on 2026-12-08: the virtual clock jumps to the fire.
    let mut daemon = serve(&dir, &database, "2026-12-08T09:59:00Z");
    await_finished(&dir, "2026-12-08");
    assert_eq!(daemon.terminate().code(), Some(0));

    // Down until 05:30 on the 11th: the 9th and 10th are missed (recorded once each), the
    // 11th is half an hour late (within catch_up: fires), and the clock jumps to the 12th.
    let mut daemon = serve(&dir, &database, "2026-12-11T10:30:00Z");
    await_finished(&dir, "2026-12-11");
    await_finished(&dir, "2026-12-12");
    let events = audit_events(&database);
    assert_eq!(
        cycles_of(&events, "run.started"),
        ["2026-12-08", "2026-12-11", "2026-12-12"]
    );
    assert_eq!(
        cycles_of(&events, "cycle.missed"),
        ["2026-12-09", "2026-12-10"]
    );
    assert_eq!(count(&events, "run.finished"), 3, "{events:#?}");
    assert_eq!(daemon.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}
