//! Builds a patchday database of months of history through the store API, for
//! `bench/history.sh` (issue 12), which then measures the daemon over it through the binary.
//!
//! `cargo bench -p patchday --bench history -- URL MONTHS HOSTS`: a fresh database at `URL`
//! (`sqlite://FILE`, removed first; or `postgres://…`, an empty database) with
//! MONTHS monthly cycles (from 2024-01) of three runbooks (`monthly-a`, `-b`, `-c`), each run
//! fanning one step out over HOSTS hosts (every row finished, two audit events per host), and
//! about eight emergency runs a month (manual, 10 hosts). Each run stores a version whose
//! inventory text lists its hosts, as real runs do. Prints what it wrote.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use patchday::store::any::AnyStore;
use patchday::store::{Change, NewEvent, RunRow, RunState, StepRow, StepState, Store};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (Some(url), Some(months), Some(hosts)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: history URL MONTHS HOSTS");
        std::process::exit(2);
    };
    let months: u32 = months.parse().expect("MONTHS is a number");
    let hosts: usize = hosts.parse().expect("HOSTS is a number");
    let file = url.strip_prefix("sqlite://");
    if let Some(file) = file {
        let _ = std::fs::remove_file(file);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let store = AnyStore::open(url).await.unwrap();
        let (mut runs, mut events) = (0, 0);
        for month in 0..months {
            let cycle = format!("{}-{:02}", 2024 + month / 12, month % 12 + 1);
            let day = Utc
                .with_ymd_and_hms(2024 + month as i32 / 12, month % 12 + 1, 10, 9, 0, 0)
                .unwrap();
            for runbook in ["monthly-a", "monthly-b", "monthly-c"] {
                let id = format!("{runbook}-{cycle}");
                events += one_run(&store, &id, runbook, Some(&cycle), day, hosts).await;
                runs += 1;
            }
            for e in 0..8 {
                let at = day + Duration::days(e * 3 + 1);
                let id = format!("emergency-{cycle}-{e}");
                events += one_run(&store, &id, "emergency", None, at, 10).await;
                runs += 1;
            }
        }
        store.close().await;
        let size = file
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(String::new(), |m| format!(", {} MB", m.len() / 1_000_000));
        println!(
            "{months} months: {runs} runs, {events} audit events{size}, built in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    });
}

/// One finished run: its rows, `run.started`, two events per host and `run.finished`.
async fn one_run(
    store: &AnyStore,
    id: &str,
    runbook: &str,
    cycle: Option<&str>,
    at: DateTime<Utc>,
    hosts: usize,
) -> usize {
    let inventory: String = (0..hosts)
        .map(|h| {
            format!(
                "  h{h}: {{ address: 10.0.{}.{}, vm: v{h} }}\n",
                h / 256,
                h % 256
            )
        })
        .collect();
    let version = json!({
        "file": format!("{runbook}.yaml"), "dir": "", "text": format!("name: {runbook}\n"),
        "files": BTreeMap::from([("inventory.yaml", format!("hosts:\n{inventory}"))]),
    });
    let run = RunRow {
        id: id.into(),
        runbook: runbook.into(),
        cycle: cycle.map(Into::into),
        content_hash: "0".repeat(64),
        commit: None,
        snapshot: json!({ "start": at, "params": {}, "version": version }),
        state: RunState::Running,
        started_at: at,
        finished_at: None,
        rerun: None,
    };
    let row = |step: &str, host: String| StepRow {
        run_id: id.into(),
        step: step.into(),
        host,
        state: StepState::Succeeded,
        attempt: 1,
        not_before: None,
        started_at: Some(at),
        finished_at: Some(at + Duration::seconds(30)),
        outputs: json!({}),
        reason: None,
    };
    let mut steps = vec![row("before", String::new()), row("patch", String::new())];
    steps.extend((0..hosts).map(|h| row("patch", format!("h{h}"))));
    steps.push(row("after", String::new()));
    let event = |action: &str, step: Option<&str>, host: Option<String>| NewEvent {
        at,
        actor: "engine".into(),
        action: action.into(),
        run_id: Some(id.into()),
        step_id: step.map(Into::into),
        details: json!({ "host": host }),
    };
    let started = event("run.started", None, None);
    store.create_run(run, steps, started).await.unwrap();
    let mut change = Change::default();
    for h in 0..hosts {
        for action in ["step.started", "step.succeeded"] {
            change
                .events
                .push(event(action, Some("patch"), Some(format!("h{h}"))));
        }
    }
    change.events.push(event("run.finished", None, None));
    change.run = Some((id.into(), RunState::Succeeded, at + Duration::hours(1)));
    let count = change.events.len() + 1;
    store.commit(vec![change]).await.unwrap();
    count
}
