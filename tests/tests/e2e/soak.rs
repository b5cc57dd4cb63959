//! The daemon-level kill -9 soak (issue 10): `patchday serve` is killed with SIGKILL again and
//! again while it drives runs that fan `command` steps out over 24 hosts; each command appends
//! its key (run, step, host) to a ledger. After every restart the test acts as the operator:
//! once the commands a killed daemon left behind have ended (they run in process groups of
//! their own and outlive it), each step the daemon marked `interrupted` is settled through the
//! API, `skip` when the ledger shows its effect and `retry` when not. Nothing else may re-run
//! a command. Then: every key is in the ledger exactly once (0 lost, 0 duplicates), the audit
//! chain verifies and the database passes its integrity check, no command process is left,
//! and no daemon log says `panicked`. The test counts the kills that landed while a command of
//! the killed daemon ran, and requires at least half.
//!
//! SQLite with one daemon, and PostgreSQL with two (the one driving the runs is killed, the
//! other takes them over after the 2 s lease, a fresh daemon joins as the spare). The normal
//! test run makes a short soak (40 kills on SQLite, 6 takeovers on PostgreSQL); set
//! `PATCHDAY_SOAK_KILLS=N` for N kills on each (`bench` in README: 200). Figures are printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use patchday_tests::daemon::{Daemon, poll, request};
use patchday_tests::postgres::Schema;
use patchday_tests::{Dice, api_token, inventory, patchday, stderr, stdout};
use serde_json::{Value, json};

const HOSTS: usize = 24;
const STEPS: usize = 3;
const LIMIT: Duration = Duration::from_secs(60);

/// Kills of the short soak (`PATCHDAY_SOAK_KILLS` overrides both).
fn kills(short: usize) -> usize {
    std::env::var("PATCHDAY_SOAK_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(short)
}

fn runbook(ledger: &Path) -> String {
    let mut text = String::from("name: soak\ninventory: hosts.yaml\nsteps:\n");
    for s in 0..STEPS {
        let needs = if s == 0 {
            String::new()
        } else {
            format!("\n    needs: [s{}]", s - 1)
        };
        text.push_str(&format!(
            "  s{s}:{needs}\n    uses: command\n    for_each: {{ group: all, batch: 8 }}\n    with: {{ run: \"sleep 0.$(( 2 + $$ % 3 )); echo {{{{run.id}}}}/s{s}/{{{{host.name}}}} >> {}\" }}\n",
            ledger.display()
        ));
    }
    text
}

/// A process whose command line names the soak's ledger: one of its commands.
struct Command {
    ppid: u32,
    cmdline: String,
}

/// The soak's command processes (`sh -c "...ledger"`) now.
fn commands(ledger: &str) -> Vec<Command> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).to_string();
        let program = cmdline.split('\0').next().unwrap_or_default();
        if !cmdline.contains(ledger) || program.ends_with("/patchday") {
            continue;
        }
        let cmdline = cmdline.replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`; a zombie (state Z) has ended.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let ppid = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        out.push(Command { ppid, cmdline });
    }
    out
}

/// What the operator saw and did.
#[derive(Default, Debug)]
struct Figures {
    kills: usize,
    during_command: usize,
    decisions: usize,
    retries: usize,
    takeovers: usize,
}

struct Soak {
    dir: PathBuf,
    database: String,
    token: String,
    ledger: String,
    /// Extra environment of every daemon.
    env: Vec<(String, String)>,
    /// Whether daemons get node ids of their own (several daemons); else the default id,
    /// with which a restarted daemon takes over from a dead predecessor at once.
    named: bool,
    daemons: Vec<Daemon>,
    started: usize,
    runs: Vec<String>,
    figures: Figures,
}

impl Soak {
    fn new(name: &str, database: Option<String>) -> Soak {
        let dir = patchday_tests::scratch(name);
        std::fs::create_dir_all(dir.join("runbooks")).unwrap();
        let ledger = dir.join("ledger");
        std::fs::write(dir.join("runbooks/soak.yaml"), runbook(&ledger)).unwrap();
        let hosts: Vec<String> = (1..=HOSTS).map(|h| format!("h{h:02}")).collect();
        std::fs::write(dir.join("runbooks/hosts.yaml"), inventory(&hosts)).unwrap();
        let (token, tokens) = api_token(&dir, "soak");
        let database =
            database.unwrap_or_else(|| format!("sqlite://{}", dir.join("soak.db").display()));
        Soak {
            env: vec![(
                "PATCHDAY_SECURITY_API_TOKENS_FILE".into(),
                tokens.display().to_string(),
            )],
            ledger: ledger.display().to_string(),
            named: false,
            dir,
            database,
            token,
            daemons: Vec::new(),
            started: 0,
            runs: Vec::new(),
            figures: Figures::default(),
        }
    }

    /// Starts one more daemon (a fresh node id).
    fn start(&mut self) {
        self.started += 1;
        let node = format!("n{}", self.started);
        let log = self.dir.join(format!("{node}.log"));
        let mut command = patchday();
        command
            .current_dir(&self.dir)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &self.database,
            ])
            .args([
                "--runbooks",
                &self.dir.join("runbooks").display().to_string(),
            ])
            .args(["--outbox", &self.dir.join("outbox").display().to_string()])
            .args(["--grace", "0"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
        if self.named {
            command.env("PATCHDAY_SERVER_NODE_ID", &node);
        }
        self.daemons.push(Daemon::start(command));
    }

    fn pids(&self) -> BTreeSet<u32> {
        self.daemons.iter().map(|d| d.child.id()).collect()
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let daemon = self.daemons.last().expect("a daemon");
        let auth = format!("Bearer {}", self.token);
        let (status, _, text) = match body {
            None => request(
                &daemon.addr,
                method,
                &format!("/api/v1{path}"),
                &[("Authorization", &auth)],
                "",
            ),
            Some(body) => patchday_tests::daemon::request_json(
                &daemon.addr,
                method,
                &format!("/api/v1{path}"),
                &auth,
                &body,
            ),
        };
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every step row of `run` (`"steps"`): 75 rows, one page of the paged route (the run's
    /// detail holds the first 50 only).
    fn detail(&self, run: &str) -> Value {
        let path = format!("/runs/{run}/steps?limit=1000");
        let (status, detail) = self.api("GET", &path, None);
        assert_eq!(status, 200, "{detail}");
        detail
    }

    /// The soak's runs still running (one request).
    fn unfinished(&self) -> Vec<String> {
        let (status, list) = self.api("GET", "/runs?limit=1000", None);
        assert_eq!(status, 200, "{list}");
        list["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "running")
            .map(|r| r["id"].as_str().unwrap().to_string())
            .filter(|id| self.runs.contains(id))
            .collect()
    }

    /// Starts a run on the newest daemon.
    fn trigger(&mut self) {
        let daemon = self.daemons.last().expect("a daemon");
        let out = patchday()
            .args([
                "trigger",
                "soak",
                "--server",
                &daemon.url(),
                "--token",
                &self.token,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let id = stdout(&out).split_whitespace().nth(1).unwrap().to_string();
        self.runs.push(id);
    }

    fn ledger(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for line in std::fs::read_to_string(&self.ledger)
            .unwrap_or_default()
            .lines()
        {
            *counts.entry(line.to_string()).or_default() += 1;
        }
        counts
    }

    /// The operator's turn: waits until the rows killed daemons left `running` are recovered
    /// (a row is running with no live daemon's command behind it) and their commands have
    /// ended, then settles every interrupted row by the ledger.
    fn settle(&mut self) {
        let deadline = Instant::now() + LIMIT;
        loop {
            assert!(Instant::now() < deadline, "recovery never came");
            let pids = self.pids();
            let live = commands(&self.ledger);
            let orphans = live.iter().any(|c| !pids.contains(&c.ppid));
            if !orphans && !self.stale(&pids) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ledger = self.ledger();
        for id in self.unfinished() {
            for row in self.detail(&id)["steps"].as_array().unwrap() {
                if row["state"] != "interrupted" {
                    continue;
                }
                let (step, host) = (row["step"].as_str().unwrap(), row["host"].as_str().unwrap());
                let done = ledger.contains_key(&format!("{id}/{step}/{host}"));
                let decision = if done { "skip" } else { "retry" };
                let (status, body) = self.api(
                    "POST",
                    &format!("/runs/{id}/steps/{step}/resume"),
                    Some(json!({ "host": host, "decision": decision })),
                );
                assert_eq!(status, 200, "{body}");
                self.figures.decisions += 1;
                self.figures.retries += usize::from(!done);
            }
        }
    }

    /// Whether a row is `running` with no command of a live daemon behind it: left by a
    /// killed daemon, not recovered yet.
    fn stale(&self, pids: &BTreeSet<u32>) -> bool {
        let live = commands(&self.ledger);
        self.unfinished().iter().any(|id| {
            self.detail(id)["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["state"] == "running" && s["host"] != "")
                .any(|s| {
                    let (step, host) = (s["step"].as_str().unwrap(), s["host"].as_str().unwrap());
                    let key = format!("{id}/{step}/{host} >>");
                    !live
                        .iter()
                        .any(|c| pids.contains(&c.ppid) && c.cmdline.contains(&key))
                })
        })
    }

    /// Kills daemon `index` with SIGKILL; counts whether one of its commands was running.
    fn kill(&mut self, index: usize) {
        let mut daemon = self.daemons.remove(index);
        let pid = daemon.child.id();
        let running = commands(&self.ledger).iter().any(|c| c.ppid == pid);
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        self.figures.kills += 1;
        self.figures.during_command += usize::from(running);
    }

    /// Keeps up to two runs going.
    fn keep_busy(&mut self) {
        if self.unfinished().len() < 2 {
            self.trigger();
        }
    }

    /// With no more kills: settles until every run has finished.
    fn finish(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !self.unfinished().is_empty() {
            assert!(Instant::now() < deadline, "the runs never finished");
            self.settle();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end: exactly-once, the audit chain and the database, no orphans, no panics.
    fn check(self, name: &str, wall: Duration) {
        let mut daemons = self.daemons;
        for daemon in &mut daemons {
            assert_eq!(daemon.terminate().code(), Some(0));
        }
        let ledger = {
            let mut counts = BTreeMap::new();
            for line in std::fs::read_to_string(&self.ledger).unwrap().lines() {
                *counts.entry(line.to_string()).or_insert(0usize) += 1;
            }
            counts
        };
        let expected: BTreeSet<String> = self
            .runs
            .iter()
            .flat_map(|id| {
                (0..STEPS).flat_map(move |s| (1..=HOSTS).map(move |h| format!("{id}/s{s}/h{h:02}")))
            })
            .collect();
        let duplicates: usize = ledger.values().map(|n| n - 1).sum();
        let lost = expected.iter().filter(|k| !ledger.contains_key(*k)).count();
        let unexpected = ledger.keys().filter(|k| !expected.contains(*k)).count();
        let f = &self.figures;
        println!(
            "soak ({name}): {} kills, {} while a command ran ({:.0}%), {} takeovers; {} runs, {} commands; {} operator decisions ({} retries); {duplicates} duplicates, {lost} lost; {:.0} s",
            f.kills,
            f.during_command,
            100.0 * f.during_command as f64 / f.kills.max(1) as f64,
            f.takeovers,
            self.runs.len(),
            expected.len(),
            f.decisions,
            f.retries,
            wall.as_secs_f64()
        );
        let twice: Vec<&String> = ledger
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(duplicates, 0, "commands ran twice: {twice:?}");
        assert_eq!((lost, unexpected), (0, 0), "commands missing or unknown");
        assert!(
            2 * f.during_command >= f.kills,
            "only {} of {} kills landed while a command ran",
            f.during_command,
            f.kills
        );
        patchday_tests::assert_audit_verifies(&self.database);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            commands(&self.ledger).is_empty(),
            "command processes left behind"
        );
        for entry in std::fs::read_dir(&self.dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(&path).unwrap();
                assert!(!log.contains("panicked"), "{}:\n{log}", path.display());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_daemon_survives_kill_9_at_random_moments_of_fanned_out_commands() {
    let wall = Instant::now();
    let mut soak = Soak::new("soak-daemon", None);
    let mut dice = Dice(0x5eed_cafe_f00d);
    let target = kills(40);
    while soak.figures.kills < target {
        soak.start();
        soak.settle();
        soak.keep_busy();
        std::thread::sleep(Duration::from_millis(dice.millis(150, 700)));
        soak.kill(0);
    }
    soak.start();
    soak.finish();
    let elapsed = wall.elapsed();
    soak.check("SQLite, one daemon", elapsed);
}

#[test]
fn two_daemons_on_postgresql_take_runs_over_through_kill_9() {
    let wall = Instant::now();
    let schema = Schema::create("soak");
    let mut soak = Soak::new("soak-pg", Some(schema.url.clone()));
    soak.env
        .push(("PATCHDAY_SERVER_LEASE_TTL".into(), "2s".into()));
    soak.named = true;
    let mut dice = Dice(0x0dd_ba11_5eed);
    let target = kills(6);
    soak.start();
    soak.start();
    soak.keep_busy();
    while soak.figures.kills < target {
        std::thread::sleep(Duration::from_millis(dice.millis(150, 700)));
        // The daemon driving the runs dies; the other takes them over; a fresh one joins.
        let driving = soak
            .daemons
            .iter()
            .position(|d| {
                patchday_tests::daemon::metric(&d.addr, "patchday_runs_driven")
                    .is_some_and(|n| n > 0.0)
            })
            .unwrap_or(0);
        soak.kill(driving);
        soak.start();
        poll("the takeover", LIMIT, || {
            (!soak.stale(&soak.pids())).then_some(())
        });
        soak.figures.takeovers += 1;
        soak.settle();
        soak.keep_busy();
    }
    soak.finish();
    let elapsed = wall.elapsed();
    soak.check("PostgreSQL, two daemons", elapsed);
    drop(schema);
}
