//! Engine tests with real processes (the `command` connector runs `sh`), a real SQLite store
//! (in memory), and a virtual clock so `at` and retry backoffs pass at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::VirtualClock;
use crate::runbook::load_runbook;
use crate::store::sqlite::SqliteStore;
use crate::validate::{Sources, check};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A temporary folder for ledgers, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("patchday-run-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
    fn ledger(&self) -> Vec<String> {
        std::fs::read_to_string(self.0.join("ledger"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const INVENTORY: &str = "hosts:\n  h1: { address: 10.0.0.1 }\n  h2: { address: 10.0.0.2 }\n  h3: { address: 10.0.0.3 }\n  h4: { address: 10.0.0.4 }\n  h5: { address: 10.0.0.5 }\n  old: { address: 10.0.0.9 }\ngroups:\n  web: [h1, h2, h3, h4, h5, old]\nexceptions:\n  - { host: old, until: 2099-01-01, reason: vendor support ended, approved_by: ciso@example.com }\n";

fn checked(yaml: &str) -> CheckedRunbook {
    checked_with(yaml, &[])
}

/// Checks `yaml` with the inventory and `files` (path, text) next to it.
fn checked_with(yaml: &str, files: &[(&str, &str)]) -> CheckedRunbook {
    let mut sources = Sources::default();
    sources.insert("test.yaml".into(), Ok(yaml.to_string()));
    sources.insert(Path::new("").join("hosts.yaml"), Ok(INVENTORY.to_string()));
    for (path, text) in files {
        sources.insert(Path::new("").join(path), Ok(text.to_string()));
    }
    let loaded = load_runbook("test.yaml", yaml);
    let (checked, diags) = check(&loaded, Path::new(""), &sources);
    checked.unwrap_or_else(|| panic!("{diags:#?}"))
}

async fn engine(start: DateTime<Utc>) -> Engine<SqliteStore> {
    let mut engine = Engine::new(
        SqliteStore::open("sqlite::memory:").await.unwrap(),
        Arc::new(VirtualClock::new(start)),
        Mode::Live,
    );
    engine.max_parallel = 8;
    engine
}

fn spec() -> RunSpec {
    RunSpec {
        commit: None,
        id: "r1".into(),
        cycle: "2026-12".parse().ok(),
        start: t("2026-12-01T00:00:00Z"),
        params: vec![],
        rerun: None,
        actor: "cli:test".into(),
    }
}

async fn run_to_end(yaml: &str) -> (Engine<SqliteStore>, Outcome) {
    let checked = checked(yaml);
    let engine = engine(t("2026-12-01T00:00:00Z")).await;
    engine.start(&checked, spec()).await.unwrap();
    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    (engine, outcome)
}

async fn state_of(engine: &Engine<SqliteStore>, step: &str, host: &str) -> StepState {
    engine
        .store
        .steps("r1")
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.step == step && r.host == host)
        .unwrap()
        .state
}

#[tokio::test]
async fn retries_until_the_command_succeeds() {
    let s = Scratch::new("retry");
    let yaml = format!(
        "name: t\nsteps:\n  flaky:\n    uses: command\n    with: {{ run: \"n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo try$n >> {l}; [ $n -ge 3 ]\" }}\n    retry: {{ attempts: 3, backoff: 10m }}\n",
        c = s.path("count"),
        l = s.path("ledger")
    );
    let (engine, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    assert_eq!(s.ledger(), vec!["try1", "try2", "try3"]);
    let events = engine.store.events(Default::default()).await.unwrap();
    let retries: Vec<_> = events
        .iter()
        .filter(|e| e.action == "step.retrying")
        .collect();
    assert_eq!(retries.len(), 2);
    // Backoff doubles: 10 minutes, then 20 (on the virtual clock).
    assert_eq!(engine.clock.now(), t("2026-12-01T00:30:00Z"));
}

#[tokio::test]
async fn a_timeout_kills_the_process_group_and_fails_the_step() {
    let s = Scratch::new("timeout");
    let yaml = format!(
        "name: t\nsteps:\n  slow:\n    uses: command\n    with: {{ run: \"sh -c 'echo $$ > {p}; exec sleep 30' & wait\" }}\n    timeout: 1s\n",
        p = s.path("pid")
    );
    let (engine, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
    let row = engine.store.steps("r1").await.unwrap().remove(0);
    assert!(
        row.reason
            .as_deref()
            .unwrap_or_default()
            .contains("timed out after 1s"),
        "{row:?}"
    );
    let pid = std::fs::read_to_string(s.path("pid")).unwrap();
    assert!(!alive(&pid), "sleep {pid} survived the timeout");
}

/// Whether a process exists and is not a zombie waiting to be reaped (by PID 1, for orphans).
fn alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

#[tokio::test]
async fn conditions_choose_what_runs_after_a_failure() {
    let s = Scratch::new("cond");
    let l = s.path("ledger");
    let yaml = format!(
        "name: t\nsteps:\n  fails:\n    uses: command\n    with: {{ run: \"exit 3\" }}\n  on-success:\n    needs: [fails]\n    uses: command\n    with: {{ run: \"echo on-success >> {l}\" }}\n  on-failure:\n    needs: [fails]\n    if: failure\n    uses: command\n    with: {{ run: \"echo on-failure >> {l}\" }}\n  always:\n    needs: [on-success]\n    if: always\n    uses: command\n    with: {{ run: \"echo always >> {l}\" }}\n"
    );
    let (engine, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
    // `on-failure` and `always` start in the same pass: their order in the ledger is free.
    let mut ran = s.ledger();
    ran.sort();
    assert_eq!(ran, vec!["always", "on-failure"]);
    assert_eq!(
        state_of(&engine, "on-success", "").await,
        StepState::Skipped
    );
}

#[tokio::test]
async fn a_template_condition_reads_upstream_outputs() {
    let s = Scratch::new("tmpl");
    let l = s.path("ledger");
    let yaml = format!(
        "name: t\nsteps:\n  probe:\n    uses: noop\n    with: {{ message: yes }}\n  when-yes:\n    needs: [probe]\n    if: '{{{{eq steps.probe.outputs.message \"yes\"}}}}'\n    uses: command\n    with: {{ run: \"echo when-yes >> {l}\" }}\n  when-no:\n    needs: [probe]\n    if: '{{{{eq steps.probe.outputs.message \"no\"}}}}'\n    uses: command\n    with: {{ run: \"echo when-no >> {l}\" }}\n"
    );
    let (engine, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    assert_eq!(s.ledger(), vec!["when-yes"]);
    assert_eq!(state_of(&engine, "when-no", "").await, StepState::Skipped);
}

#[tokio::test]
async fn batches_stop_when_failures_exceed_max_failures() {
    let s = Scratch::new("batch");
    let l = s.path("ledger");
    let yaml = format!(
        "name: t\ninventory: hosts.yaml\nsteps:\n  patch:\n    uses: command\n    for_each: {{ group: web, batch: 2, max_failures: 0 }}\n    with: {{ run: \"echo {{{{host.name}}}} >> {l}; [ {{{{host.name}}}} != h2 ]\" }}\n"
    );
    let (engine, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
    let mut ledger = s.ledger();
    ledger.sort();
    assert_eq!(ledger, vec!["h1", "h2"], "only the first batch ran");
    assert_eq!(state_of(&engine, "patch", "h3").await, StepState::Skipped);
    assert_eq!(state_of(&engine, "patch", "old").await, StepState::Skipped);
    let rows = engine.store.steps("r1").await.unwrap();
    let old = rows.iter().find(|r| r.host == "old").unwrap();
    assert!(
        old.reason
            .as_deref()
            .unwrap()
            .starts_with("excepted until 2099-01-01: vendor support ended"),
        "{old:?}"
    );
    assert_eq!(state_of(&engine, "patch", "").await, StepState::Failed);
}

#[tokio::test]
async fn tolerated_failures_let_the_next_batch_start() {
    let s = Scratch::new("tolerated");
    let l = s.path("ledger");
    let yaml = format!(
        "name: t\ninventory: hosts.yaml\nsteps:\n  patch:\n    uses: command\n    for_each: {{ group: web, batch: 40%, max_failures: 1 }}\n    with: {{ run: \"echo {{{{host.name}}}} >> {l}; [ {{{{host.name}}}} != h2 ]\" }}\n"
    );
    let (engine, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    assert_eq!(s.ledger().len(), 5, "all five hosts ran: {:?}", s.ledger());
    assert_eq!(state_of(&engine, "patch", "").await, StepState::Succeeded);
}

#[tokio::test]
async fn rollback_runs_undo_in_reverse_topological_order() {
    let s = Scratch::new("rollback");
    let l = s.path("ledger");
    let step = |id: &str, needs: &str| {
        format!(
            "  {id}:\n    needs: [{needs}]\n    uses: command\n    with: {{ run: \"echo {id} >> {l}\" }}\n    undo: {{ uses: command, with: {{ run: \"echo undo-{id} >> {l}\" }} }}\n"
        )
    };
    let yaml = format!(
        "name: t\non_failure: rollback\nsteps:\n{}{}{}  breaks:\n    needs: [c]\n    uses: command\n    with: {{ run: \"echo breaks >> {l}; exit 1\" }}\n",
        step("a", ""),
        step("b", "a"),
        step("c", "b")
    );
    let (_, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
    assert_eq!(
        s.ledger(),
        vec!["a", "b", "c", "breaks", "undo-c", "undo-b", "undo-a"]
    );
}

#[tokio::test]
async fn cancelling_a_run_kills_what_runs_and_cancels_the_rest() {
    let s = Scratch::new("cancel");
    let yaml = format!(
        "name: t\nsteps:\n  long:\n    uses: command\n    with: {{ run: \"echo $$ > {p}; exec sleep 30\" }}\n  after:\n    needs: [long]\n    uses: noop\n",
        p = s.path("pid")
    );
    let checked = checked(&yaml);
    let engine = engine(t("2026-12-01T00:00:00Z")).await;
    engine.start(&checked, spec()).await.unwrap();
    let cancel = CancellationToken::new();
    let pid_file = s.path("pid");
    let trigger = cancel.clone();
    tokio::spawn(async move {
        // The command has started once it wrote its pid.
        while !std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        trigger.cancel();
    });
    let outcome = engine.drive(&checked, "r1", cancel).await.unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Cancelled));
    assert_eq!(state_of(&engine, "after", "").await, StepState::Cancelled);
    let pid = std::fs::read_to_string(s.path("pid")).unwrap();
    assert!(!alive(&pid), "sleep {pid} survived the cancellation");
}

#[tokio::test]
async fn recovery_reruns_idempotent_steps_and_interrupts_the_others() {
    let yaml = "name: t\nroles:\n  committee: [c@example.com]\n  operators: [ops@example.com, c@example.com]\nsteps:\n  cmd:\n    uses: command\n    with: { run: \"true\" }\n  probe:\n    uses: check\n    with: { tcp: \"127.0.0.1:1\", within: 1s }\n";
    let checked = checked(yaml);
    let engine = engine(t("2026-12-01T00:00:00Z")).await;
    engine.start(&checked, spec()).await.unwrap();
    // As if the process died with both steps running.
    let mut change = Change::default();
    for row in engine.store.steps("r1").await.unwrap() {
        let mut running = row.clone();
        running.state = StepState::Running;
        running.attempt = 1;
        change.steps.push(StepWrite {
            expect: Some(StepState::Pending),
            row: running,
        });
    }
    engine.store.commit(vec![change]).await.unwrap();
    assert_eq!(engine.recover(&checked, "r1").await.unwrap().len(), 2);
    assert_eq!(state_of(&engine, "cmd", "").await, StepState::Interrupted);
    assert_eq!(state_of(&engine, "probe", "").await, StepState::Waiting);
    // The operators hear it once, with the transition: the committee (no `notify.to`) and the
    // `operators` role; recovering again finds nothing running and writes nothing.
    let told = outbox(&engine).await;
    assert_eq!(told.len(), 1, "{told:#?}");
    assert_eq!(told[0].email.to, ["c@example.com", "ops@example.com"]);
    assert_eq!(
        told[0].email.subject,
        "[patchday] t 2026-12: step cmd waits for an operator"
    );
    assert!(
        told[0]
            .email
            .body
            .contains("patchday retry r1 --step cmd --reason"),
        "{}",
        told[0].email.body
    );
    assert!(engine.recover(&checked, "r1").await.unwrap().is_empty());
    assert_eq!(outbox(&engine).await.len(), 1);
    engine
        .resolve_as(
            "r1",
            "cmd",
            "",
            Resolution::Skip,
            "api:ops",
            Some("done by hand"),
        )
        .await
        .unwrap();
    let events = engine.store.events(Default::default()).await.unwrap();
    let decided = events.iter().find(|e| e.action == "step.resolved").unwrap();
    assert_eq!(decided.actor, "api:ops");
    assert_eq!(decided.details["reason"], "done by hand");
    assert_eq!(state_of(&engine, "cmd", "").await, StepState::Skipped);
}

#[tokio::test]
async fn at_waits_on_the_clock() {
    let yaml = "name: t\ntimezone: America/New_York\nsteps:\n  night:\n    at: patch_tuesday+4d 22:00\n    uses: noop\n";
    let (engine, outcome) = run_to_end(yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    // Patch Tuesday 2026-12-08, + 4 days = Saturday the 12th, 22:00 EST = 03:00Z on the 13th.
    assert_eq!(engine.clock.now(), t("2026-12-13T03:00:00Z"));
}

#[tokio::test]
async fn continue_on_failure_lets_the_run_go_on() {
    let s = Scratch::new("continue");
    let l = s.path("ledger");
    let yaml = format!(
        "name: t\nsteps:\n  optional:\n    uses: command\n    with: {{ run: \"exit 1\" }}\n    continue_on_failure: true\n  next:\n    needs: [optional]\n    uses: command\n    with: {{ run: \"echo next >> {l}\" }}\n"
    );
    let (engine, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    assert_eq!(state_of(&engine, "optional", "").await, StepState::Failed);
    assert_eq!(s.ledger(), vec!["next"]);
}

#[tokio::test]
async fn the_report_step_gets_the_cycle_report_built_from_the_run() {
    let s = Scratch::new("report");
    let yaml = format!(
        "name: t\ninventory: hosts.yaml\nsteps:\n  patch:\n    uses: command\n    for_each: {{ group: web }}\n    with: {{ run: \"[ {{{{host.name}}}} != h3 ]\" }}\n    continue_on_failure: true\n  report:\n    needs: [patch]\n    if: always\n    uses: report\n    with: {{ format: markdown, output: \"{}\" }}\n",
        s.path("report.md")
    );
    let (_, outcome) = run_to_end(&yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    let report = std::fs::read_to_string(s.path("report.md")).unwrap();
    for expected in [
        "h1",
        "h3",
        "old",
        "patched",
        "failed",
        "excepted",
        "ciso@example.com",
        "2026-12-08",
    ] {
        assert!(
            report.contains(expected),
            "`{expected}` missing from the report:\n{report}"
        );
    }
}

#[tokio::test]
async fn failures_and_the_end_of_a_run_are_mailed_through_the_outbox() {
    let yaml = "name: t\nroles:\n  ops: [ops@example.com, lead@example.com]\nnotify: { on: [failure, finished], to: [ops, cab@example.com] }\nsteps:\n  breaks:\n    uses: command\n    with: { run: \"exit 4\" }\n";
    let (engine, outcome) = run_to_end(yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
    let emails = engine
        .store
        .due_emails(t("2100-01-01T00:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(emails.len(), 2, "{emails:#?}");
    assert_eq!(
        emails[0].email.to,
        vec!["ops@example.com", "lead@example.com", "cab@example.com"]
    );
    assert_eq!(
        emails[0].email.subject,
        "[patchday] t 2026-12: step breaks failed"
    );
    assert!(
        emails[0].email.body.contains("Reason: "),
        "{}",
        emails[0].email.body
    );
    assert_eq!(emails[1].email.subject, "[patchday] t 2026-12: run failed");
}

#[tokio::test]
async fn a_step_past_its_deadline_is_reported_overdue_once() {
    let yaml = "name: t\nroles:\n  ops: [ops@example.com]\nnotify: { on: [overdue], to: ops }\nsteps:\n  late:\n    at: month_start+5d\n    deadline: month_start+2d\n    uses: noop\n";
    let (engine, outcome) = run_to_end(yaml).await;
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    let events = engine.store.events(Default::default()).await.unwrap();
    let overdue: Vec<_> = events
        .iter()
        .filter(|e| e.action == "step.overdue")
        .collect();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].at, t("2026-12-03T00:00:00Z"));
    let emails = engine
        .store
        .due_emails(t("2100-01-01T00:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert!(
        emails[0].email.subject.ends_with("step late is overdue"),
        "{}",
        emails[0].email.subject
    );
}

// --- decisions on approval and manual steps -------------------------------------------------

const APPROVAL: &str = "name: t\nroles:\n  cab: [alice@example.com, bob@example.com, carol@example.com]\n  ops: [ops@example.com]\nnotify: { on: [failure], to: ops }\non_failure: stop\nsteps:\n  cab:\n    uses: approval\n    with: { approvers: cab, quorum: QUORUM, expires: 2h }\n  after:\n    needs: [cab]\n    uses: noop\n";

fn approval_yaml(quorum: u32) -> String {
    APPROVAL.replace("QUORUM", &quorum.to_string())
}

/// A run started and driven until it blocks on its person-step.
async fn blocked(yaml: &str) -> (Engine<SqliteStore>, CheckedRunbook) {
    let checked = checked(yaml);
    let engine = engine(t("2026-12-01T00:00:00Z")).await;
    engine.start(&checked, spec()).await.unwrap();
    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    let step = checked.runbook.steps.keys().next().unwrap().value.clone();
    assert_eq!(
        outcome,
        Outcome::Blocked(vec![(step, String::new(), StepState::AwaitingInput)])
    );
    (engine, checked)
}

fn by_link(
    engine: &Engine<SqliteStore>,
    step: &str,
    who: &str,
    choice: &str,
) -> crate::store::NewDecision {
    crate::store::NewDecision {
        run_id: "r1".into(),
        step: step.into(),
        host: String::new(),
        recipient: who.into(),
        choice: choice.into(),
        comment: None,
        at: engine.clock.now(),
        actor: format!("link:{who}"),
        source_ip: Some("192.0.2.10".into()),
        nonce: Some(format!("nonce-{who}-{choice}")),
    }
}

async fn events_named(engine: &Engine<SqliteStore>, action: &str) -> Vec<crate::store::EventRow> {
    let events = engine.store.events(Default::default()).await.unwrap();
    assert!(
        crate::audit::verify(&events, engine.store.chain_head().await.unwrap().as_ref()).is_ok()
    );
    events.into_iter().filter(|e| e.action == action).collect()
}

#[tokio::test]
async fn an_approval_with_quorum_two_needs_two_approvers_then_the_run_goes_on() {
    let yaml = approval_yaml(2);
    let (engine, checked) = blocked(&yaml).await;
    let decide = |d| engine.decide(&checked, d);

    let first = decide(by_link(&engine, "cab", "alice@example.com", "approve"))
        .await
        .unwrap();
    assert_eq!(
        first,
        Decided {
            settled: None,
            decisions_so_far: 1,
            quorum: 2
        }
    );
    assert_eq!(state_of(&engine, "cab", "").await, StepState::AwaitingInput);
    // The same approver again (another link, another choice): refused, nothing written.
    let before = engine.store.events(Default::default()).await.unwrap().len();
    let err = decide(by_link(&engine, "cab", "alice@example.com", "reject"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RunError::Store(StoreError::AlreadyDecided { recipient, .. }) if recipient == "alice@example.com"),
        "{err:?}"
    );
    // Not an approver; not a choice; not a person-step.
    let err = decide(by_link(&engine, "cab", "mallory@example.com", "approve"))
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::NotARecipient { .. }), "{err:?}");
    let err = decide(by_link(&engine, "cab", "bob@example.com", "maybe"))
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::NotAChoice { .. }), "{err:?}");
    let err = decide(by_link(&engine, "after", "bob@example.com", "approve"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RunError::NotAwaitingInput {
                state: Some(StepState::Pending),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        engine.store.events(Default::default()).await.unwrap().len(),
        before
    );
    assert_eq!(
        engine.store.decisions("r1", "cab", "").await.unwrap().len(),
        1
    );

    // A second approver (the address matched case-insensitively) settles it.
    let second = decide(by_link(&engine, "cab", "Bob@Example.com", "approve"))
        .await
        .unwrap();
    assert_eq!(second.settled, Some(StepState::Succeeded));
    assert_eq!(second.decisions_so_far, 2);
    let row = engine.store.steps("r1").await.unwrap().remove(0);
    assert_eq!(
        row.outputs,
        serde_json::json!({ "choice": "approve", "decided_by": ["alice@example.com", "bob@example.com"] })
    );
    let decided = events_named(&engine, "approval.decided").await;
    assert_eq!(decided.len(), 2);
    assert_eq!(decided[1].actor, "link:Bob@Example.com");
    assert_eq!(decided[1].details["recipient"], "bob@example.com");
    assert_eq!(decided[1].details["source_ip"], "192.0.2.10");
    assert_eq!(events_named(&engine, "step.succeeded").await.len(), 1);
    // Settled: a third decision is refused.
    let err = decide(by_link(&engine, "cab", "carol@example.com", "approve"))
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::NotAwaitingInput { .. }), "{err:?}");

    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    assert_eq!(state_of(&engine, "after", "").await, StepState::Succeeded);
}

#[tokio::test]
async fn a_rejection_fails_the_step_and_stops_the_run() {
    let yaml = approval_yaml(1);
    let (engine, checked) = blocked(&yaml).await;
    let mut no = by_link(&engine, "cab", "carol@example.com", "reject");
    no.comment = Some("not during the freeze".into());
    let decided = engine.decide(&checked, no).await.unwrap();
    assert_eq!(decided.settled, Some(StepState::Failed));
    let row = engine.store.steps("r1").await.unwrap().remove(0);
    let reason = row.reason.unwrap();
    assert!(
        reason.contains("reject")
            && reason.contains("carol@example.com")
            && reason.contains("not during the freeze"),
        "{reason}"
    );
    let emails = engine
        .store
        .due_emails(t("2100-01-01T00:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert_eq!(
        emails[0].email.subject,
        "[patchday] t 2026-12: step cab failed"
    );
    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
    assert_eq!(state_of(&engine, "after", "").await, StepState::Skipped);
}

#[tokio::test]
async fn a_failed_manual_task_carries_the_comment() {
    let yaml = "name: t\nroles:\n  ops: [ops@example.com, lead@example.com]\nsteps:\n  reboot-db:\n    uses: manual\n    with: { assignee: ops, instructions: Reboot the database by hand }\n  after:\n    needs: [reboot-db]\n    uses: noop\n";
    let (engine, checked) = blocked(yaml).await;
    let err = engine
        .decide(
            &checked,
            by_link(&engine, "reboot-db", "ops@example.com", "approve"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RunError::NotAChoice { choices, .. } if choices == "done, failed"),
        "{err:?}"
    );
    let mut failed = by_link(&engine, "reboot-db", "lead@example.com", "failed");
    failed.comment = Some("the console is unreachable".into());
    failed.actor = "cli:lead".into();
    failed.nonce = None;
    let decided = engine.decide(&checked, failed).await.unwrap();
    assert_eq!(
        decided,
        Decided {
            settled: Some(StepState::Failed),
            decisions_so_far: 1,
            quorum: 1
        }
    );
    let row = engine.store.steps("r1").await.unwrap().remove(0);
    assert_eq!(row.reason.as_deref(), Some("the console is unreachable"));
    let task = events_named(&engine, "task.decided").await;
    assert_eq!(task.len(), 1);
    assert_eq!(task[0].actor, "cli:lead");
    assert_eq!(task[0].details["comment"], "the console is unreachable");
    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
}

#[tokio::test]
async fn an_approval_nobody_decides_expires() {
    let yaml = approval_yaml(1);
    let (engine, checked) = blocked(&yaml).await;
    let started = t("2026-12-01T00:00:00Z");
    let early = engine
        .expire_inputs(&checked, "r1", started + chrono::Duration::minutes(119))
        .await
        .unwrap();
    assert_eq!(
        early,
        Expired {
            expired: vec![],
            next: Some(started + chrono::Duration::hours(2))
        }
    );
    assert_eq!(state_of(&engine, "cab", "").await, StepState::AwaitingInput);
    let late = engine
        .expire_inputs(&checked, "r1", started + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(late.expired, vec![("cab".to_string(), String::new())]);
    assert_eq!(late.next, None);
    let row = engine.store.steps("r1").await.unwrap().remove(0);
    assert_eq!(
        (row.state, row.reason.as_deref()),
        (StepState::Failed, Some("expired without a decision"))
    );
    assert_eq!(events_named(&engine, "approval.expired").await.len(), 1);
    let err = engine
        .decide(
            &checked,
            by_link(&engine, "cab", "alice@example.com", "approve"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::NotAwaitingInput { .. }), "{err:?}");
    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
}

#[tokio::test]
async fn an_approval_set_to_skip_on_expiry_is_skipped_and_mails_no_failure() {
    let yaml = approval_yaml(1).replace("expires: 2h", "expires: 2h, on_expire: skip");
    let (engine, checked) = blocked(&yaml).await;
    let started = t("2026-12-01T00:00:00Z");
    let late = engine
        .expire_inputs(&checked, "r1", started + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(late.expired, vec![("cab".to_string(), String::new())]);
    let row = engine.store.steps("r1").await.unwrap().remove(0);
    assert_eq!(
        (row.state, row.reason.as_deref()),
        (
            StepState::Skipped,
            Some("expired without a decision (on_expire: skip)")
        )
    );
    let expired = events_named(&engine, "approval.expired").await;
    assert_eq!(expired[0].details["outcome"], "skipped");
    let mail = engine
        .store
        .due_emails(started + chrono::Duration::days(1), 100)
        .await
        .unwrap();
    assert!(
        !mail
            .iter()
            .any(|m| m.email.to.contains(&"ops@example.com".to_string())),
        "no failure email: {mail:#?}"
    );
    // A skipped need is ok (ARCHITECTURE "Decisions"): `after` runs, as an optional sign-off
    // that nobody gave would let it.
    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    assert_eq!(state_of(&engine, "after", "").await, StepState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decisions_by_one_approver_succeed_once() {
    let yaml = approval_yaml(1);
    let (engine, checked) = blocked(&yaml).await;
    let (engine, checked) = (Arc::new(engine), Arc::new(checked));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (engine, checked) = (engine.clone(), checked.clone());
            tokio::spawn(async move {
                let mut d = by_link(&engine, "cab", "alice@example.com", "approve");
                d.nonce = Some(format!("click-{i}"));
                engine.decide(&checked, d).await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(decided) => {
                assert_eq!(decided.settled, Some(StepState::Succeeded));
                ok += 1;
            }
            Err(
                RunError::Store(StoreError::AlreadyDecided { .. })
                | RunError::AlreadySettled { .. }
                | RunError::NotAwaitingInput { .. },
            ) => {}
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        engine.store.decisions("r1", "cab", "").await.unwrap().len(),
        1
    );
    assert_eq!(events_named(&engine, "approval.decided").await.len(), 1);
    assert_eq!(events_named(&engine, "step.succeeded").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_approvers_reach_the_quorum_and_settle_it_once() {
    // Three approvers at once, quorum 2: whatever the interleaving, the step is settled exactly
    // once, and every recorded decision was made while it awaited input.
    for _ in 0..10 {
        let yaml = approval_yaml(2);
        let (engine, checked) = blocked(&yaml).await;
        let (engine, checked) = (Arc::new(engine), Arc::new(checked));
        let tasks: Vec<_> = ["alice@example.com", "bob@example.com", "carol@example.com"]
            .into_iter()
            .map(|who| {
                let (engine, checked) = (engine.clone(), checked.clone());
                tokio::spawn(async move {
                    let d = by_link(&engine, "cab", who, "approve");
                    engine.decide(&checked, d).await
                })
            })
            .collect();
        let mut settled = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(d) => settled += usize::from(d.settled.is_some()),
                Err(RunError::AlreadySettled { .. } | RunError::NotAwaitingInput { .. }) => {}
                Err(other) => panic!("unexpected: {other:?}"),
            }
        }
        assert_eq!(settled, 1);
        assert_eq!(state_of(&engine, "cab", "").await, StepState::Succeeded);
        assert_eq!(events_named(&engine, "step.succeeded").await.len(), 1);
        let recorded = engine.store.decisions("r1", "cab", "").await.unwrap().len();
        assert_eq!(
            events_named(&engine, "approval.decided").await.len(),
            recorded
        );
        assert!((2..=3).contains(&recorded), "{recorded}");
    }
}

// --- notification templates ------------------------------------------------------------------

const OVERRIDDEN: &str = "name: t\nroles:\n  cab: [alice@example.com, bob@example.com]\n  ops: [ops@example.com]\nnotify:\n  on: [failure]\n  to: ops\n  templates: { approval: templates/approval.hbs, failure: templates/failed.hbs }\nsteps:\n  cab:\n    description: The CAB approves the cycle\n    uses: approval\n    with: { approvers: cab, message: \"Patch {{cycle}} tonight?\", expires: 2h }\n";

const APPROVAL_TEMPLATE: &str = "Subject: CAB: {{runbook}} {{cycle}} needs {{recipient}}\n\n{{message}} ({{description}})\nDecide by {{expires}}: {{link}}\n";

const FAILURE_TEMPLATE: &str =
    "FAILED: {{step}} of {{runbook}} {{cycle}} ({{reason}})\n{{run_url}}\n";

async fn outbox(engine: &Engine<SqliteStore>) -> Vec<crate::store::EmailRow> {
    engine
        .store
        .due_emails(t("2100-01-01T00:00:00Z"), 10)
        .await
        .unwrap()
}

/// A signer and a minter whose nonces count up, for links that can be checked.
fn minter() -> (crate::links::LinkSigner, LinkMinter) {
    let signer = crate::links::LinkSigner::new(&[7; 32]).unwrap();
    let counter = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let random: approvals::Randomness = Arc::new(move |buf: &mut [u8]| {
        buf.fill(counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    });
    let minter = LinkMinter::new(signer.clone(), chrono::Duration::hours(24), random);
    (signer, minter)
}

/// Issue 15: when the quorum is reached the others are told their decision is no longer
/// needed (headed with the step's own message), unless the step says `notify_moot: false`.
#[tokio::test]
async fn the_approvers_left_are_told_when_the_quorum_is_reached() {
    for notify_moot in [true, false] {
        let yaml = approval_yaml(2).replace(
            "expires: 2h }",
            &format!(
                "expires: 2h, message: \"Emergency patch for CVE-2026-1\" }}\n    notify_moot: {notify_moot}"
            ),
        );
        let checked = checked(&yaml);
        let mut engine = engine(t("2026-12-01T00:00:00Z")).await;
        engine.links = Some(Arc::new(minter().1));
        engine.start(&checked, spec()).await.unwrap();
        engine
            .drive(&checked, "r1", CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(outbox(&engine).await.len(), 3, "three asks");
        for who in ["alice@example.com", "bob@example.com"] {
            let decided = engine
                .decide(&checked, by_link(&engine, "cab", who, "approve"))
                .await
                .unwrap();
            assert_eq!(
                decided.decisions_so_far,
                if who.starts_with('a') { 1 } else { 2 }
            );
        }
        let emails = outbox(&engine).await;
        let moot: Vec<_> = emails.iter().skip(3).map(|e| &e.email).collect();
        if !notify_moot {
            assert!(moot.is_empty(), "{moot:#?}");
            continue;
        }
        assert_eq!(moot.len(), 1, "{moot:#?}");
        assert_eq!(moot[0].to, ["carol@example.com"]);
        assert_eq!(
            moot[0].subject,
            "[patchday] t 2026-12: no longer needed: Emergency patch for CVE-2026-1"
        );
        assert!(
            moot[0].body.contains(
                "is no longer needed: the quorum was reached: approve by alice@example.com, bob@example.com."
            ),
            "{}",
            moot[0].body
        );
    }
}

/// Issue 15: when the run moves on without them (here: it is cancelled), the people asked are
/// told their decision is no longer needed.
#[tokio::test]
async fn a_cancelled_run_tells_the_approvers_they_are_no_longer_needed() {
    let checked = checked(&approval_yaml(2));
    let mut engine = engine(t("2026-12-01T00:00:00Z")).await;
    engine.links = Some(Arc::new(minter().1));
    engine.start(&checked, spec()).await.unwrap();
    engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    engine
        .decide(
            &checked,
            by_link(&engine, "cab", "alice@example.com", "approve"),
        )
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = engine.drive(&checked, "r1", cancel).await.unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Cancelled));
    let moot: Vec<_> = outbox(&engine)
        .await
        .into_iter()
        .skip(3)
        .map(|e| e.email)
        .collect();
    let to: Vec<&str> = moot.iter().map(|e| e.to[0].as_str()).collect();
    assert_eq!(to, ["bob@example.com", "carol@example.com"], "{moot:#?}");
    assert!(
        moot[0]
            .body
            .contains("no longer needed: the run was cancelled by"),
        "{}",
        moot[0].body
    );
}

#[tokio::test]
async fn a_runbook_s_templates_write_its_approval_and_failure_emails() {
    let checked = checked_with(
        OVERRIDDEN,
        &[
            ("templates/approval.hbs", APPROVAL_TEMPLATE),
            ("templates/failed.hbs", FAILURE_TEMPLATE),
        ],
    );
    let mut engine = engine(t("2026-12-01T00:00:00Z")).await;
    let (signer, minter) = minter();
    engine.links = Some(Arc::new(minter));
    engine.public_url = "https://patchday.example.com".into();
    engine.start(&checked, spec()).await.unwrap();
    let outcome = engine
        .drive(&checked, "r1", CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Blocked(_)), "{outcome:?}");
    let emails = outbox(&engine).await;
    assert_eq!(emails.len(), 2, "{emails:#?}");
    for (email, who) in emails.iter().zip(["alice@example.com", "bob@example.com"]) {
        let email = &email.email;
        assert_eq!(email.to, [who]);
        assert_eq!(email.subject, format!("CAB: t 2026-12 needs {who}"));
        let token = email.body.split("/links/").nth(1).unwrap().trim_end();
        assert_eq!(
            email.body,
            format!(
                "Patch 2026-12 tonight? (The CAB approves the cycle)\n\
                 Decide by Tue 2026-12-01 02:00 UTC: https://patchday.example.com/links/{token}\n"
            )
        );
        let claims = signer.verify(token, t("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(claims.recipient, who, "each recipient gets their own link");
    }

    let mut no = by_link(&engine, "cab", "alice@example.com", "reject");
    no.comment = Some("not tonight".into());
    engine.decide(&checked, no).await.unwrap();
    let emails = outbox(&engine).await;
    let failure = &emails
        .iter()
        .find(|e| e.email.to == ["ops@example.com"])
        .unwrap()
        .email;
    // No subject line in the file: the built-in subject stays.
    assert_eq!(failure.subject, "[patchday] t 2026-12: step cab failed");
    assert_eq!(
        failure.body,
        "FAILED: cab of t 2026-12 (`reject` decided by alice@example.com (alice@example.com: not tonight))\n\
         https://patchday.example.com/runs/r1\n"
    );
}

/// Several daemons (DESIGN §5): a driver whose claim on the run was taken over writes nothing
/// more; the new holder's driver, recovering first, finishes the run.
#[tokio::test]
async fn a_driver_that_lost_its_claim_writes_nothing() {
    use crate::store::Fence;
    let yaml = "name: fenced\nsteps:\n  a: { uses: noop }\n  b: { uses: noop, needs: [a] }\n";
    let checked = checked(yaml);
    let engine = engine(t("2026-12-01T00:00:00Z")).await;
    engine.start(&checked, spec()).await.unwrap();
    let ttl = std::time::Duration::from_secs(30);
    let now = t("2026-12-01T00:00:00Z");
    let old = engine.store.claim_run("r1", "a", ttl, now).await.unwrap();
    let old = old.unwrap().epoch;
    let later = now + chrono::TimeDelta::minutes(1);
    let new = engine.store.claim_run("r1", "b", ttl, later).await.unwrap();
    let new = new.unwrap().epoch;
    assert_eq!(new, old + 1);
    let fence = |epoch| {
        Some(Fence::Run {
            run_id: "r1".into(),
            epoch,
        })
    };
    let before = engine.store.events(Default::default()).await.unwrap();
    let err = engine
        .drive_fenced(
            &checked,
            "r1",
            CancellationToken::new(),
            CancelBy::default(),
            fence(old),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Store(StoreError::Fenced { .. })),
        "{err:?}"
    );
    assert_eq!(
        engine.store.events(Default::default()).await.unwrap(),
        before
    );
    assert_eq!(state_of(&engine, "a", "").await, StepState::Pending);

    engine
        .recover_fenced(&checked, "r1", fence(new))
        .await
        .unwrap();
    let outcome = engine
        .drive_fenced(
            &checked,
            "r1",
            CancellationToken::new(),
            CancelBy::default(),
            fence(new),
        )
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
}

// --- a run bound to its version; stored data that does not fit it -------------------------

/// The run stores the version it started with (text and every file it read), and the version
/// rebuilt from the stored run is the same, to the hash.
#[tokio::test]
async fn a_run_stores_its_version_and_it_rebuilds_without_the_files() {
    let yaml = "name: t\ninventory: hosts.yaml\nsteps:\n  a:\n    uses: noop\n    for_each: { group: web }\n";
    let checked = checked(yaml);
    let engine = engine(t("2026-12-01T00:00:00Z")).await;
    let run = engine.start(&checked, spec()).await.unwrap();
    assert_eq!(run.content_hash, checked.version.hash());
    let stored = engine.store.run("r1").await.unwrap().unwrap();
    let version = version_of(&stored).unwrap();
    assert_eq!(version, *checked.version);
    assert!(version.files.contains_key("hosts.yaml"));
    let rebuilt = version.check().unwrap();
    assert_eq!(rebuilt.version.hash(), stored.content_hash);
    let outcome = engine
        .drive(&rebuilt, "r1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    // The excepted host is skipped, the five others ran: the inventory the run read.
    let rows = engine.store.steps("r1").await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.host.starts_with('h')).count(), 5);
}

/// A run started before versions were stored holds its runbook's text only: that is its
/// version (with no other file).
#[test]
fn a_legacy_snapshot_is_the_runbook_text_alone() {
    let run = RunRow {
        id: "old".into(),
        runbook: "t".into(),
        cycle: None,
        content_hash: sha256_hex(b"name: t\nsteps:\n  a: { uses: noop }\n"),
        commit: None,
        snapshot: json!({ "start": "2026-12-01T00:00:00Z", "params": {}, "runbook": "name: t\nsteps:\n  a: { uses: noop }\n" }),
        state: RunState::Running,
        started_at: t("2026-12-01T00:00:00Z"),
        finished_at: None,
        rerun: None,
    };
    let version = version_of(&run).unwrap();
    assert!(version.files.is_empty());
    assert_eq!(version.check().unwrap().runbook.name.value, "t");
    let empty = RunRow {
        snapshot: json!({}),
        ..run
    };
    assert!(matches!(
        version_of(&empty),
        Err(VersionError::Missing { .. })
    ));
}

/// The reported bug: a step added to the runbook before its run is driven again. Driven with
/// a version whose steps the stored rows do not fit, the run is failed with the reason, a
/// `run.failed` event and an email to the committee (whatever `notify.on` says), instead of
/// an index panic and a run left `running` forever.
#[tokio::test]
async fn rows_that_do_not_fit_the_version_fail_the_run_with_a_reason() {
    let started = "name: t\nroles:\n  committee: [c@example.com]\nsteps:\n  a: { uses: noop }\n  b: { uses: noop, needs: [a] }\n";
    let edited = "name: t\nroles:\n  committee: [c@example.com]\nsteps:\n  new: { uses: noop }\n  a: { uses: noop, needs: [new] }\n  b: { uses: noop, needs: [a] }\n";
    let engine = engine(t("2026-12-01T00:00:00Z")).await;
    engine.start(&checked(started), spec()).await.unwrap();
    let outcome = engine
        .drive(&checked(edited), "r1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(RunState::Failed));
    let failed = events_named(&engine, "run.failed").await;
    assert_eq!(failed.len(), 1);
    let reason = failed[0].details["reason"].as_str().unwrap();
    assert!(reason.contains("no row for step `new`"), "{reason}");
    let rows = engine.store.steps("r1").await.unwrap();
    assert!(
        rows.iter().all(|r| r.state == StepState::Cancelled),
        "{rows:#?}"
    );
    let mail = outbox(&engine).await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].email.to, ["c@example.com"]);
    assert!(
        mail[0].email.subject.ends_with("run failed"),
        "{}",
        mail[0].email.subject
    );
    assert!(mail[0].email.body.contains("no row for step `new`"));
}

/// Two runs started in the same second get different ids (64 random bits).
#[test]
fn run_ids_of_one_second_differ() {
    let now = t("2026-12-01T00:00:00Z");
    let ids: std::collections::BTreeSet<String> =
        (0..1000).map(|_| new_run_id("emergency", now)).collect();
    assert_eq!(ids.len(), 1000);
    let id = ids.iter().next().unwrap();
    let suffix = id.strip_prefix("emergency-20261201T000000-").unwrap();
    assert_eq!(suffix.len(), 16, "{id}");
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
}

/// A connector that panics (a bug in it): the attempt fails with a fatal error and the
/// driver goes on; nothing is lost or left running.
#[tokio::test]
async fn a_panicking_connector_fails_its_attempt_not_the_engine() {
    struct Panics;
    impl Connector for Panics {
        fn spec(&self) -> &'static patchday_connectors::catalog::ConnectorSpec {
            patchday_connectors::catalog::lookup("noop").unwrap()
        }
        fn dry_run(&self, _: &Value, _: &Context) -> Result<String, ConnectorError> {
            Ok(String::new())
        }
        fn execute<'a>(
            &'a self,
            _: Value,
            _: &'a Context,
        ) -> patchday_connectors::runtime::BoxFuture<'a, Result<Outputs, ConnectorError>> {
            Box::pin(async { panic!("a bug in the connector") })
        }
    }
    let ctx = Context::new("r1", "a");
    let result = driver::guarded_attempt(Arc::new(Panics), json!({}), ctx, None).await;
    match result {
        Err(ConnectorError::Fatal(message)) => {
            assert!(message.contains("a bug in the connector"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
