//! Bench (issue 4): durable runs on a SQLite file with `synchronous=FULL`.
//! - a chain of 1,000 `noop` steps, against its floor: the same number of state transitions
//!   as bare SQLite commits (`SqliteStore::commit_floor`), measured in the same process;
//! - a fan-out of 10,000 `noop` hosts in one run, in steps per second;
//! - peak RSS of the whole process.
//!
//! Run: `cargo bench -p patchday --bench run`.

mod common;

use common::peak_rss_mb;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use patchday::clock::VirtualClock;
use patchday::run::{Engine, Mode, Outcome, RunSpec};
use patchday::runbook::load_runbook;
use patchday::store::sqlite::SqliteStore;
use patchday::store::{RunState, Store};
use patchday::validate::{CheckedRunbook, Sources, check};
use tokio_util::sync::CancellationToken;

const CHAIN: usize = 1_000;
const FAN_OUT: usize = 10_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("patchday-run-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    runtime.block_on(async {
        let chain = chain_runbook();
        let (secs, transitions) = timed_run(&dir, "chain", &chain, None).await;
        let floor = floor(&dir, transitions).await;
        println!("chain of {CHAIN} noop steps: {:.0} ms ({transitions} transitions); floor {transitions} bare commits: {:.0} ms; ratio {:.2}", secs * 1e3, floor * 1e3, secs / floor);
        let fan = fan_out_runbook();
        let (secs, _) = timed_run(&dir, "fan", &fan, Some(&inventory())).await;
        println!("fan-out of {FAN_OUT} noop hosts: {:.0} ms, {:.0} steps/s", secs * 1e3, FAN_OUT as f64 / secs);
    });
    println!("peak RSS: {:.1} MB", peak_rss_mb());
    std::fs::remove_dir_all(&dir).ok();
}

async fn timed_run(dir: &Path, name: &str, yaml: &str, inventory: Option<&str>) -> (f64, usize) {
    let checked = checked(yaml, inventory);
    let url = format!("sqlite://{}", dir.join(format!("{name}.db")).display());
    let mut engine = Engine::new(
        SqliteStore::open(&url).await.unwrap(),
        Arc::new(VirtualClock::new(chrono::Utc::now())),
        Mode::Live,
    );
    engine.max_parallel = 64;
    let spec = RunSpec {
        commit: None,
        id: name.into(),
        cycle: None,
        start: chrono::Utc::now(),
        params: vec![],
        rerun: None,
        actor: "bench".into(),
    };
    let start = Instant::now();
    engine.start(&checked, spec).await.unwrap();
    let outcome = engine
        .drive(&checked, name, CancellationToken::new())
        .await
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(outcome, Outcome::Finished(RunState::Succeeded));
    let transitions = engine
        .store
        .chain_head()
        .await
        .unwrap()
        .map_or(0, |h| h.seq as usize);
    (secs, transitions)
}

async fn floor(dir: &Path, commits: usize) -> f64 {
    let url = format!("sqlite://{}", dir.join("floor.db").display());
    let start = Instant::now();
    SqliteStore::commit_floor(&url, commits).await.unwrap();
    start.elapsed().as_secs_f64()
}

fn checked(yaml: &str, inventory: Option<&str>) -> CheckedRunbook {
    let mut sources = Sources::default();
    sources.insert("bench.yaml".into(), Ok(yaml.to_string()));
    if let Some(inventory) = inventory {
        sources.insert("hosts.yaml".into(), Ok(inventory.to_string()));
    }
    let loaded = load_runbook("bench.yaml", yaml);
    let (checked, diags) = check(&loaded, Path::new(""), &sources);
    checked.unwrap_or_else(|| panic!("{diags:?}"))
}

fn chain_runbook() -> String {
    let mut text = String::from("name: chain\nsteps:\n");
    for i in 0..CHAIN {
        let needs = if i == 0 {
            String::new()
        } else {
            format!(", needs: [s{}]", i - 1)
        };
        text.push_str(&format!("  s{i}: {{ uses: noop{needs} }}\n"));
    }
    text
}

fn fan_out_runbook() -> String {
    "name: fan\ninventory: hosts.yaml\nsteps:\n  patch: { uses: noop, for_each: { group: all } }\n"
        .to_string()
}

fn inventory() -> String {
    let mut text = String::from("hosts:\n");
    for h in 0..FAN_OUT {
        text.push_str(&format!("  h{h}: {{ address: h{h}.example.com }}\n"));
    }
    text.push_str("groups:\n  all: [");
    text.push_str(
        &(0..FAN_OUT)
            .map(|h| format!("h{h}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    text.push_str("]\n");
    text
}
