//! The kill -9 soak (issue 4): a run of 200+ step rows (chains and fan-outs) whose steps
//! append their key to a ledger, killed with SIGKILL at 25+ random moments and resumed each
//! time. Interrupted steps are settled the way an operator would: skip when the ledger shows
//! the effect happened, retry when it does not. Then every key is in the ledger exactly once,
//! the audit chain verifies, and the database passes its integrity check.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use patchday_tests::{Dice, patchday};

const CHAINS: usize = 15;
const CHAIN_LENGTH: usize = 10;
const FAN_OUTS: usize = 5;
const HOSTS: usize = 10;
const KILLS: usize = 25;

struct Soak {
    dir: PathBuf,
}

impl Soak {
    fn new() -> Soak {
        let dir = patchday_tests::scratch("soak");
        std::fs::write(dir.join("hosts.yaml"), inventory()).unwrap();
        std::fs::write(dir.join("soak.yaml"), runbook(&dir.join("ledger"))).unwrap();
        Soak { dir }
    }
    fn runbook(&self) -> String {
        self.dir.join("soak.yaml").display().to_string()
    }
    fn database(&self) -> String {
        format!("sqlite://{}", self.dir.join("soak.db").display())
    }
    fn ledger(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for line in std::fs::read_to_string(self.dir.join("ledger"))
            .unwrap_or_default()
            .lines()
        {
            *counts.entry(line.to_string()).or_default() += 1;
        }
        counts
    }
    /// Starts `patchday ARGS` with stdout read line by line into a channel.
    fn spawn(&self, args: &[&str]) -> Process {
        let mut child = patchday()
            .args(args)
            .args(["--database", &self.database()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Process {
            child,
            lines: rx,
            reader: Some(reader),
        }
    }

    /// Waits until no process started by a killed `patchday` (its commands run in their own
    /// process groups and outlive it) still works in the soak folder, as an operator would
    /// check the target before deciding about an interrupted step.
    fn wait_for_orphans(&self) {
        let marker = self.dir.display().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while orphans(&marker) {
            assert!(
                std::time::Instant::now() < deadline,
                "commands of killed runs never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether any process's command line mentions `marker` (the soak folder).
fn orphans(marker: &str) -> bool {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
                return false;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            let program = cmdline.split('\0').next().unwrap_or_default();
            cmdline.contains(marker) && !program.ends_with("/patchday")
        })
}

/// A running `patchday` and the lines it printed.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// SIGKILLs the process if it still runs. Returns whether it did, and whether the process
    /// had ended by itself with success (the run finished).
    fn kill9(&mut self) -> (bool, bool) {
        let alive = self.child.try_wait().unwrap().is_none();
        if alive {
            self.child.kill().unwrap(); // SIGKILL
        }
        let status = self.child.wait().unwrap();
        self.drain();
        (alive, !alive && status.success())
    }

    fn wait(&mut self) {
        self.child.wait().unwrap();
        self.drain();
    }

    /// Waits until every line the process printed has been read.
    fn drain(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

impl Drop for Soak {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn inventory() -> String {
    let mut text = String::from("hosts:\n");
    for h in 0..HOSTS {
        text.push_str(&format!("  h{h}: {{ address: 10.0.0.{h} }}\n"));
    }
    text.push_str(&format!(
        "groups:\n  all: [{}]\n",
        (0..HOSTS)
            .map(|h| format!("h{h}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    text
}

/// Chains of steps; after every third chain a fan-out that needs the chain's last step.
fn runbook(ledger: &Path) -> String {
    let ledger = ledger.display();
    let mut text = String::from("name: soak\ninventory: hosts.yaml\nsteps:\n");
    for c in 0..CHAINS {
        for i in 0..CHAIN_LENGTH {
            let needs = if i == 0 {
                String::new()
            } else {
                format!("\n    needs: [c{c}s{}]", i - 1)
            };
            text.push_str(&format!("  c{c}s{i}:{needs}\n    uses: command\n    with: {{ run: \"sleep 0.$(( 2 + $$ % 3 )); echo c{c}s{i} >> {ledger}\" }}\n"));
        }
    }
    for f in 0..FAN_OUTS {
        let needs = format!("c{}s{}", f * CHAINS / FAN_OUTS, CHAIN_LENGTH - 1);
        text.push_str(&format!("  fan{f}:\n    needs: [{needs}]\n    uses: command\n    for_each: {{ group: all, batch: 4 }}\n    with: {{ run: \"sleep 0.$(( 2 + $$ % 3 )); echo fan{f}/{{{{host.name}}}} >> {ledger}\" }}\n"));
    }
    text
}

#[test]
fn a_run_survives_kill_9_at_random_moments() {
    let soak = Soak::new();
    let runbook = soak.runbook();
    let mut dice = Dice(0x5eed_cafe_f00d);
    let mut process = soak.spawn(&["run", &runbook, "--cycle", "2026-12"]);
    let first = process
        .lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the run announces its id");
    let run_id = first
        .strip_prefix("run ")
        .and_then(|l| l.split_whitespace().next())
        .expect("run <id> started")
        .to_string();
    let mut pending: VecDeque<(String, String)> = VecDeque::new();
    let (mut kills, mut decisions) = (0, 0);
    loop {
        std::thread::sleep(Duration::from_millis(dice.millis(20, 250)));
        let (killed, finished) = process.kill9();
        collect_interrupted(&process.lines, &mut pending);
        kills += usize::from(killed);
        if finished || (!killed && kills >= KILLS && pending.is_empty()) {
            break;
        }
        let mut args = vec![
            "resume".to_string(),
            run_id.clone(),
            "--runbook".into(),
            runbook.clone(),
        ];
        if let Some((step, host)) = pending.pop_front() {
            soak.wait_for_orphans();
            let key = if host.is_empty() {
                step.clone()
            } else {
                format!("{step}/{host}")
            };
            let done = soak.ledger().contains_key(&key);
            args.extend([
                "--step".into(),
                step,
                "--host".into(),
                host,
                if done { "--skip" } else { "--retry" }.into(),
            ]);
            decisions += 1;
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        process = soak.spawn(&args);
        if kills >= KILLS {
            // Let this one finish (or block on an interrupted step).
            process.wait();
            collect_interrupted(&process.lines, &mut pending);
            if pending.is_empty() {
                break;
            }
        }
    }
    let ledger = soak.ledger();
    let expected = CHAINS * CHAIN_LENGTH + FAN_OUTS * HOSTS;
    let duplicates: usize = ledger.values().map(|n| n - 1).sum();
    let lost = expected - ledger.len();
    println!(
        "soak: {kills} kills survived, {decisions} operator decisions, {} effects, {duplicates} duplicates, {lost} lost",
        ledger.len()
    );
    assert!(
        kills >= KILLS,
        "only {kills} kills landed while the run was alive"
    );
    assert_eq!(duplicates, 0, "effects ran twice: {ledger:?}");
    assert_eq!(lost, 0, "effects missing");
    patchday_tests::assert_audit_verifies(&soak.database());
}

/// Reads what a (killed) process printed about interrupted steps: `interrupted: STEP [--host H]
/// was running ...` when it recovered, `waiting: STEP [H] is Interrupted` when it stopped.
fn collect_interrupted(lines: &mpsc::Receiver<String>, pending: &mut VecDeque<(String, String)>) {
    while let Ok(line) = lines.try_recv() {
        let (step, host) = if let Some(rest) = line.strip_prefix("interrupted: ") {
            let rest = rest.trim_end_matches(" was running when the run stopped");
            match rest.split_once(" --host ") {
                Some((s, h)) => (s.to_string(), h.to_string()),
                None => (rest.to_string(), String::new()),
            }
        } else if let Some(rest) = line
            .strip_prefix("waiting: ")
            .and_then(|r| r.strip_suffix(" is Interrupted"))
        {
            match rest.split_once(" [") {
                Some((s, h)) => (s.to_string(), h.trim_end_matches(']').to_string()),
                None => (rest.to_string(), String::new()),
            }
        } else {
            continue;
        };
        if !pending.contains(&(step.clone(), host.clone())) {
            pending.push_back((step, host));
        }
    }
}
