//! Several daemons on one PostgreSQL database (DESIGN §5): two `patchday serve` processes share
//! a fresh schema, one runbooks folder and a virtual clock positioned a minute before a cycle.
//! They race for the leader lease; the cycle fires exactly once; one daemon drives the run
//! (each command step appends one line to a ledger, naming the daemon that ran it); every
//! outbox email is sent exactly once, whichever mailer claimed it. Then the daemon driving the
//! run is killed with SIGKILL while a step waits for a file; after its lease runs out (2 s here)
//! the other daemon takes the leadership and the run over, runs the waiting (idempotent) step
//! again, and finishes the run. Each daemon writes its emails into its own outbox folder, so a
//! row sent twice would show as two files.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, count, eml_files, metric, poll, serve_command};
use patchday_tests::postgres::Schema;

const RUNBOOK: &str = r#"name: multi-demo
description: Driven by one of two daemons sharing a database
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  committee: [committee@example.com]
notify: { on: [failure, finished], to: [committee] }
steps:
  optional-1: { uses: command, with: { run: "exit 1" }, continue_on_failure: true }
  optional-2: { uses: command, with: { run: "exit 2" }, continue_on_failure: true }
  optional-3: { uses: command, with: { run: "exit 3" }, continue_on_failure: true }
  first:
    needs: [optional-1, optional-2, optional-3]
    uses: command
    with: { run: "echo first $PATCHDAY_TEST_NODE >> LEDGER" }
  hold:
    needs: [first]
    uses: check
    with: { command: "test -f RELEASE", interval: 1s, within: 10m }
  last:
    needs: [hold]
    uses: command
    with: { run: "echo last $PATCHDAY_TEST_NODE >> LEDGER" }
"#;

fn ledger(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Subject → how many `.eml` files have it, over every daemon's outbox folder.
fn subjects(dirs: &[&Path]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for dir in dirs {
        for file in eml_files(dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_string();
            *counts.entry(subject).or_default() += 1;
        }
    }
    counts
}

#[test]
fn two_daemons_share_one_database_and_a_dead_daemons_run_is_taken_over() {
    let schema = Schema::create("multi");
    let dir = patchday_tests::scratch("multi");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    let runbook = RUNBOOK
        .replace("LEDGER", &dir.join("ledger").display().to_string())
        .replace("RELEASE", &dir.join("release").display().to_string());
    std::fs::write(dir.join("runbooks/multi-demo.yaml"), runbook).unwrap();
    let logs = patchday_tests::artifacts_dir();
    let outbox = |node: &str| dir.join(format!("outbox-{node}"));
    let start = |node: &str| {
        let mut serve = serve_command(&dir, &schema.url, &outbox(node));
        serve
            .env("PATCHDAY_SERVER_NODE_ID", node)
            .env("PATCHDAY_SERVER_LEASE_TTL", "2s")
            .env("PATCHDAY_TEST_NODE", node)
            .stderr(Stdio::from(
                File::create(logs.join(format!("multi-{node}.log"))).unwrap(),
            ));
        Daemon::start(serve)
    };
    // Both start at once (same database, folder and virtual time): they race for the lease.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| start("a"));
        let b = s.spawn(|| start("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.serving.contains("PostgreSQL"), "{}", a.serving);
    let mut daemons = BTreeMap::from([("a", a), ("b", b)]);
    let leaders = poll("exactly one leader", Duration::from_secs(20), || {
        let seen: Vec<(&str, f64)> = daemons
            .iter()
            .map(|(node, d)| Some((*node, metric(&d.addr, "patchday_leader")?)))
            .collect::<Option<_>>()?;
        let leaders: Vec<&str> = seen
            .iter()
            .filter(|(_, v)| *v == 1.0)
            .map(|(n, _)| *n)
            .collect();
        (leaders.len() == 1).then_some(leaders)
    });

    // The cycle fired once, and one daemon drives its run: `first` ran once, there.
    let first = poll("the first step", Duration::from_secs(60), || {
        let lines = ledger(&dir);
        (!lines.is_empty()).then_some(lines)
    });
    assert_eq!(first.len(), 1, "{first:?}");
    let holder = first[0].strip_prefix("first ").unwrap().to_string();
    let other = if holder == "a" { "b" } else { "a" };
    assert_eq!(
        leaders,
        [holder.as_str()],
        "the leader fires the cycle and claims its run"
    );
    let events = poll("`hold` to start", Duration::from_secs(30), || {
        let events = audit_events(&schema.url);
        events
            .iter()
            .any(|e| e["action"] == "step.started" && e["step_id"] == "hold")
            .then_some(events)
    });
    assert_eq!(count(&events, "run.started"), 1);
    assert_eq!(
        metric(&daemons[holder.as_str()].addr, "patchday_runs_driven"),
        Some(1.0)
    );
    assert_eq!(
        metric(&daemons[other].addr, "patchday_runs_driven"),
        Some(0.0)
    );

    // The three failure emails: sent once each, by whichever mailer claimed them.
    let outboxes = [outbox("a"), outbox("b")];
    let dirs: Vec<&Path> = outboxes.iter().map(|p| p.as_path()).collect();
    let failed = |n: u32| format!("[patchday] multi-demo 2026-12: step optional-{n} failed");
    poll("the failure emails", Duration::from_secs(30), || {
        let sent = audit_events(&schema.url);
        (count(&sent, "email.sent") == 3).then_some(())
    });
    let seen = subjects(&dirs);
    for n in 1..=3 {
        assert_eq!(seen.get(&failed(n)), Some(&1), "{seen:?}");
    }

    // The daemon driving the run dies mid-run: `hold` polls for a file that is not there yet.
    let mut dead = daemons.remove(holder.as_str()).unwrap();
    dead.child.kill().unwrap(); // SIGKILL
    dead.child.wait().unwrap();
    let survivor = &daemons[other];
    // Its lease and claim run out (2 s); the other daemon leads, takes the run over, and
    // runs `hold` again (a check is idempotent).
    poll("the takeover", Duration::from_secs(30), || {
        let leads = metric(&survivor.addr, "patchday_leader")? == 1.0;
        let drives = metric(&survivor.addr, "patchday_runs_driven")? == 1.0;
        let events = audit_events(&schema.url);
        let resumed = events
            .iter()
            .any(|e| e["action"] == "step.resumed" && e["step_id"] == "hold");
        (leads && drives && resumed).then_some(())
    });
    std::fs::write(dir.join("release"), "").unwrap();
    poll("the run to succeed", Duration::from_secs(60), || {
        (metric(&survivor.addr, "patchday_runs{state=\"succeeded\"}")? == 1.0).then_some(())
    });
    poll("the outbox to drain", Duration::from_secs(30), || {
        (metric(&survivor.addr, "patchday_outbox_depth")? == 0.0).then_some(())
    });

    // Each step that has an effect ran once: `first` on the dead daemon, `last` on the other.
    assert_eq!(
        ledger(&dir),
        [format!("first {holder}"), format!("last {other}")]
    );
    let events = audit_events(&schema.url);
    assert_eq!(count(&events, "run.started"), 1, "the cycle fired once");
    let started = |step: &str| {
        events
            .iter()
            .filter(|e| e["action"] == "step.started" && e["step_id"] == step)
            .count()
    };
    assert_eq!(
        (started("first"), started("hold"), started("last")),
        (1, 2, 1)
    );
    assert!(
        !events.iter().any(|e| e["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("cycle."))),
        "no cycle missed, skipped or failed"
    );
    // Every outbox row went out once: four rows, four files, four `email.sent` events.
    let seen = subjects(&dirs);
    let finished = "[patchday] multi-demo 2026-12: run succeeded".to_string();
    assert_eq!(seen.get(&finished), Some(&1), "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 4, "{seen:?}");
    let mut sent: Vec<i64> = events
        .iter()
        .filter(|e| e["action"] == "email.sent")
        .map(|e| e["details"]["email"].as_i64().unwrap())
        .collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 4, "{events:#?}");
    assert_eq!(count(&events, "email.sent"), 4);

    let mut survivor = daemons.remove(other).unwrap();
    assert_eq!(survivor.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&schema.url);
    let _ = std::fs::remove_dir_all(&dir);
}
