//! The daemon over months: a panic in a run's task, runbook versions kept in memory, a clock
//! that jumps, edits made while no daemon ran.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::testing::until;
use super::{Daemon, Delivery, LoadedRunbook, Runbooks, Shared, testing};
use crate::clock::{BoxFuture, Clock, ManualClock};
use crate::run::RunSpec;
use crate::store::sqlite::SqliteStore;
use crate::store::{Change, EventFilter, RunState, StepState, Store};

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// A daemon (its parts, not started) over the SQLite database `url` with `runbooks`, node
/// id `node`, on `clock`; it leads.
async fn daemon(
    url: &str,
    runbooks: Vec<LoadedRunbook>,
    clock: Arc<dyn Clock>,
) -> Daemon<SqliteStore> {
    let store = SqliteStore::open(url).await.unwrap();
    let mut set = Runbooks::default();
    for loaded in runbooks {
        set.by_name.insert(loaded.name().to_string(), loaded);
    }
    let mut options = testing::options(clock, Delivery::Folder("outbox".into()));
    options.config.server.node_id = Some("node".into());
    let daemon = Daemon::new(store, set, options);
    super::cluster::start(&daemon.shared).await;
    assert!(daemon.shared.cluster.leader_epoch().is_some());
    daemon
}

fn spec(id: &str, cycle: Option<&str>) -> RunSpec {
    RunSpec {
        id: id.into(),
        cycle: cycle.and_then(|c| c.parse().ok()),
        start: t("2026-12-08T10:00:00Z"),
        params: vec![],
        commit: None,
        actor: "api:test".into(),
        rerun: None,
    }
}

async fn run_state(shared: &Shared<SqliteStore>, id: &str) -> RunState {
    shared.engine.store.run(id).await.unwrap().unwrap().state
}

/// A bug that panics in a run's task: the panic is caught and counted, the run is driven
/// again, then failed (audited, the committee told) when it panics again; the daemon goes on
/// and drives its other runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_run_task_is_caught_counted_and_fails_the_run() {
    let yaml = "name: bug\nroles:\n  committee: [c@example.com]\nsteps:\n  before: { uses: noop }\n  boom: { uses: noop, needs: [before] }\n";
    let loaded = testing::loaded("bug.yaml", yaml);
    let checked = loaded.checked.clone();
    let clock = Arc::new(ManualClock::new(t("2026-12-08T10:00:00Z")));
    let mut daemon = daemon("sqlite::memory:", vec![loaded], clock).await;
    // The bug: the engine's observer panics when `boom` starts.
    let shared = Arc::get_mut(&mut daemon.shared).expect("not shared yet");
    let engine = Arc::get_mut(&mut shared.engine).expect("not shared yet");
    engine.observer = Arc::new(|p| {
        if p.step == "boom" && p.state == StepState::Running {
            panic!("a bug in the engine");
        }
    });
    let shared = daemon.shared.clone();
    shared
        .engine
        .start(&checked, spec("r1", None))
        .await
        .unwrap();
    shared.spawn_run(checked.clone(), "r1".into());
    until("the run to fail", || async {
        run_state(&shared, "r1").await == RunState::Failed
    })
    .await;
    until("its task to end", || async {
        shared.active_runs().is_empty()
    })
    .await;
    assert_eq!(shared.engine.panics(), 2, "once, driven again, twice");
    let events = shared
        .engine
        .store
        .events(EventFilter::default())
        .await
        .unwrap();
    let failed: Vec<_> = events.iter().filter(|e| e.action == "run.failed").collect();
    assert_eq!(failed.len(), 1);
    let reason = failed[0].details["reason"].as_str().unwrap();
    assert!(reason.contains("a bug in the engine"), "{reason}");
    // `boom` was found running after the first panic and run again (noop is idempotent).
    assert!(events.iter().any(|e| e.action == "step.resumed"));
    let mail = shared
        .engine
        .store
        .due_emails(t("2027-01-01T00:00:00Z"), 10)
        .await
        .unwrap();
    assert!(
        mail.iter()
            .any(|m| m.email.to == ["c@example.com"] && m.email.subject.ends_with("run failed")),
        "{mail:#?}"
    );
    let metrics = super::metrics::text(&shared).await.unwrap();
    assert!(metrics.contains("patchday_panics_total 2\n"), "{metrics}");
    // The daemon goes on: another run of a runbook without the bug finishes.
    let fine = testing::loaded("fine.yaml", "name: fine\nsteps:\n  a: { uses: noop }\n");
    shared
        .engine
        .start(&fine.checked, spec("r2", None))
        .await
        .unwrap();
    shared.spawn_run(fine.checked.clone(), "r2".into());
    until("the other run to succeed", || async {
        run_state(&shared, "r2").await == RunState::Succeeded
    })
    .await;
}

/// Versions in memory are those in force and those of unfinished runs: edits do not pile up,
/// and a finished run's version is let go.
#[tokio::test]
async fn versions_in_memory_are_the_current_ones_and_those_of_unfinished_runs() {
    let version = |n: usize| {
        testing::loaded(
            "v.yaml",
            &format!(
                "name: v\nroles:\n  cab: [cab@example.com]\nsteps:\n  ask: {{ uses: approval, with: {{ approvers: cab }} }}\n  n{n}: {{ uses: noop, needs: [ask] }}\n"
            ),
        )
    };
    let clock = Arc::new(ManualClock::new(t("2026-12-08T10:00:00Z")));
    let daemon = daemon("sqlite::memory:", vec![version(0)], clock).await;
    let shared = daemon.shared.clone();
    let first = shared.runbooks().get("v").unwrap().checked.clone();
    shared.engine.start(&first, spec("r1", None)).await.unwrap();
    let run = shared.engine.store.run("r1").await.unwrap().unwrap();
    assert!(shared.checked_for_run(&run).is_some());
    for n in 1..=20 {
        let mut runbooks = Runbooks::default();
        runbooks.by_name.insert("v".into(), version(n));
        shared.set_runbooks(runbooks);
        shared.prune_versions().await;
        assert_eq!(shared.versions_in_memory(), 2, "after edit {n}");
    }
    // r1 still goes on with its own version, not the twentieth.
    let bound = shared.checked_for_run(&run).unwrap();
    assert!(bound.runbook.steps.contains_key("n0"));
    assert!(!bound.runbook.steps.contains_key("n20"));
    let change = Change {
        run: Some(("r1".into(), RunState::Cancelled, t("2026-12-08T11:00:00Z"))),
        ..Change::default()
    };
    shared.engine.store.commit(vec![change]).await.unwrap();
    shared.prune_versions().await;
    assert_eq!(shared.versions_in_memory(), 1, "only the version in force");
    // A finished run's version is rebuilt for its pages, and not kept.
    let finished = shared.engine.store.run("r1").await.unwrap().unwrap();
    assert!(shared.checked_for_run(&finished).is_some());
    assert_eq!(shared.versions_in_memory(), 1);
}

/// The machine's clock, moved by `jump`: what NTP stepping the clock, or a VM resumed after a
/// suspension, does to the daemon. Sleeping is measured when it starts, as with the real clock.
struct JumpingClock {
    started: std::time::Instant,
    base: DateTime<Utc>,
    jumped: std::sync::Mutex<TimeDelta>,
}

impl JumpingClock {
    fn jump(&self, by: TimeDelta) {
        *self.jumped.lock().unwrap() += by;
    }
}

impl Clock for JumpingClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.started.elapsed()).unwrap();
        self.base + *self.jumped.lock().unwrap() + elapsed
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// The clock jumps an hour while the scheduler sleeps towards a fire an hour away: the cycle
/// fires at the scheduler's next look (every minute in production; 100 ms here), not an hour
/// later.
#[tokio::test]
async fn a_clock_that_jumps_fires_the_due_cycle_at_the_next_look() {
    let yaml = "name: sched\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\nroles:\n  cab: [cab@example.com]\nsteps:\n  ask: { uses: approval, with: { approvers: cab } }\n";
    let clock = Arc::new(JumpingClock {
        started: std::time::Instant::now(),
        base: t("2026-12-08T09:00:00Z"),
        jumped: std::sync::Mutex::new(TimeDelta::zero()),
    });
    let daemon = daemon(
        "sqlite::memory:",
        vec![testing::loaded("sched.yaml", yaml)],
        clock.clone(),
    )
    .await;
    let shared = daemon.shared.clone();
    let scheduler = tokio::spawn(super::scheduler::run_waking(
        shared.clone(),
        false,
        Duration::from_millis(100),
    ));
    let runs = || async { shared.engine.store.runs(10).await.unwrap() };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(runs().await.is_empty(), "nothing is due before 10:00");
    clock.jump(TimeDelta::minutes(61));
    let jumped_at = std::time::Instant::now();
    until("the cycle to fire", || async { !runs().await.is_empty() }).await;
    assert!(
        jumped_at.elapsed() < Duration::from_secs(5),
        "fired {:?} after the jump",
        jumped_at.elapsed()
    );
    assert_eq!(runs().await[0].cycle.as_deref(), Some("2026-12"));
    shared.shutdown.cancel();
    scheduler.await.unwrap();
    shared.abort_runs();
}

/// Edits made while no daemon ran are in the audit log after the next start: the runbook
/// loaded at the first start, updated at the second (its inventory changed meanwhile), removed
/// at the third.
#[tokio::test]
async fn edits_made_while_no_daemon_ran_are_recorded_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t("2026-12-08T10:00:00Z")));
    let folder = dir.path().join("runbooks");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("r.yaml"),
        "name: r\ninventory: hosts.yaml\nsteps:\n  a: { uses: noop, for_each: { group: all } }\n",
    )
    .unwrap();
    let hosts = |n: usize| {
        let names: Vec<String> = (1..=n).map(|i| format!("h{i}")).collect();
        let records: String = names
            .iter()
            .map(|h| format!("  {h}: {{ address: 10.0.0.1 }}\n"))
            .collect();
        format!("hosts:\n{records}groups:\n  all: [{}]\n", names.join(", "))
    };
    let start = |clock: Arc<dyn Clock>| {
        let (url, folder) = (url.clone(), folder.clone());
        async move {
            let runbooks = Runbooks::load(&folder, &[], &Default::default()).unwrap();
            let daemon = daemon(&url, runbooks.by_name.into_values().collect(), clock).await;
            super::runbooks::record_initial(&daemon.shared)
                .await
                .unwrap();
            let store = &daemon.shared.engine.store;
            let events = store
                .events_by_action(&["runbook.loaded", "runbook.updated", "runbook.removed"])
                .await
                .unwrap();
            daemon.shared.engine.store.close().await;
            events
        }
    };
    std::fs::write(folder.join("hosts.yaml"), hosts(2)).unwrap();
    let first = start(clock.clone()).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].action, "runbook.loaded");
    // The same folder again: nothing to record.
    assert_eq!(start(clock.clone()).await.len(), 1);
    // The inventory is edited while no daemon runs: an update of the runbook's version.
    std::fs::write(folder.join("hosts.yaml"), hosts(3)).unwrap();
    let second = start(clock.clone()).await;
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].action, "runbook.updated");
    assert_eq!(
        second[1].details["previous_content_hash"],
        first[0].details["content_hash"]
    );
    std::fs::remove_file(folder.join("r.yaml")).unwrap();
    let third = start(clock).await;
    assert_eq!(third.len(), 3);
    assert_eq!(third[2].action, "runbook.removed");
    assert_eq!(third[2].details["runbook"], "r");
}
