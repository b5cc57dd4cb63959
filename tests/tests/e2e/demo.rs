//! The README's "Try it against local test hosts" walkthrough, done the way a newcomer does it:
//! `demo/local-hosts.sh start` (a real sshd, the HTTP server with the change API and the health
//! checks, an SMTP server that requires AUTH, libvirt's test driver), then `patchday serve
//! --config <state>/patchday.toml` as its own process on a virtual clock, so that the cycle of
//! `runbooks/demo/monthly-local.yaml` fires at once and its month unfolds in seconds.
//!
//! Part one: the cycle fires; the committee email and the change ticket arrive; the CAB chair's
//! link, fetched with GET and HEAD several times as mail scanners do, changes nothing; opened in
//! a headless Chromium it shows the confirmation page, and a click on Approve decides
//! (screenshots in target/test-artifacts/monthly-cab-*.png); snapshots, node 1 over SSH, its smoke check, node 2, the ticket closed, the report
//! with its attachments, the "run succeeded" notification; every email logged in to SMTP; no
//! secret in the daemon's log, the audit log, the database or an email; the audit chain verifies.
//!
//! Part two: the next cycle, with node 1's command held (the demo hosts' `patch-now` waits while
//! a hold file exists). The test kills the daemon with SIGKILL while node 1 runs, restarts it,
//! and settles the interrupted step as an operator would (retry, through the API). The run
//! finishes; every email of the cycle arrived exactly once; node 1 was patched once, before
//! node 2.
//!
//! Every wait is for a signal (a line on the daemon's stderr, a file, an email, a process
//! ending), bounded. The HTTP server's port is fixed (the runbook names it), so the test holds a
//! lock file while it runs: two copies of it on one machine take turns.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{
    Daemon, audit_events, count, get, json_messages, poll, request, without_mail,
};
use patchday_tests::{patchday, repo_root, stderr, stdout};
use serde_json::Value;

/// How long any one thing may take to happen before the test gives up.
pub(crate) const LIMIT: Duration = Duration::from_secs(90);

/// The local test hosts of `demo/local-hosts.sh` in one state folder; stopped on drop.
pub(crate) struct Hosts {
    pub(crate) state: PathBuf,
}

impl Hosts {
    pub(crate) fn start(state: &Path) -> Hosts {
        let out = Command::new("bash")
            .arg(repo_root().join("demo/local-hosts.sh"))
            .args(["start", "--state"])
            .arg(state)
            .current_dir(repo_root())
            .output()
            .expect("bash runs");
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "demo/local-hosts.sh start failed:\n{text}{}",
            stderr(&out)
        );
        assert!(text.contains("local test hosts ready"), "{text}");
        Hosts {
            state: state.to_path_buf(),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }

    pub(crate) fn config(&self) -> String {
        self.path("patchday.toml").display().to_string()
    }

    pub(crate) fn database(&self) -> String {
        format!("sqlite://{}", self.path("patchday.db").display())
    }

    /// `export NAME='VALUE'` lines of the env file the walkthrough sources.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.path("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect()
    }

    pub(crate) fn env_var(&self, name: &str) -> String {
        self.env()
            .into_iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("{name} is not in the env file"))
            .1
    }

    /// `port = N` of a section of the written patchday.toml.
    pub(crate) fn port(&self, section: &str) -> u16 {
        let text = std::fs::read_to_string(self.path("patchday.toml")).unwrap();
        let start = text.find(&format!("[{section}]")).unwrap();
        text[start..]
            .lines()
            .find_map(|l| l.strip_prefix("port = "))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The messages the SMTP server accepted, oldest first (its `.json` files), each with its
    /// `.eml` as `raw` and its `.txt` as `readable`.
    pub(crate) fn mail(&self) -> Vec<Value> {
        json_messages(&self.path("mail"))
            .into_iter()
            .map(|(p, mut m)| {
                m["raw"] = std::fs::read_to_string(p.with_extension("eml"))
                    .unwrap()
                    .into();
                m["readable"] = std::fs::read_to_string(p.with_extension("txt"))
                    .unwrap()
                    .into();
                m
            })
            .collect()
    }

    /// Waits until `n` messages with `subject` have arrived; returns them.
    pub(crate) fn await_mail(&self, subject: &str, n: usize) -> Vec<Value> {
        self.await_mail_where(&format!("`{subject}`"), n, |s| s == subject)
    }

    /// Waits until `n` messages whose subject `matches` have arrived; returns them.
    pub(crate) fn await_mail_where(
        &self,
        what: &str,
        n: usize,
        matches: impl Fn(&str) -> bool,
    ) -> Vec<Value> {
        poll(&format!("{n} email(s) {what}"), LIMIT, || {
            let found: Vec<Value> = self
                .mail()
                .into_iter()
                .filter(|m| matches(m["subject"].as_str().unwrap_or("")))
                .collect();
            (found.len() >= n).then_some(found)
        })
    }

    /// The demo hosts' command log, as (host, what, pid, the rest) for `cycle`.
    fn commands(&self, cycle: &str) -> Vec<(String, String, u32, String)> {
        self.commands_with(&format!("--cycle {cycle} "))
    }

    /// The demo hosts' command log, as (host, what, pid, the rest), of the lines with `text`.
    pub(crate) fn commands_with(&self, text: &str) -> Vec<(String, String, u32, String)> {
        std::fs::read_to_string(self.path("hosts/commands.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(text))
            .map(|l| {
                let mut words = l.splitn(5, ' ');
                let _stamp = words.next();
                let host = words.next().unwrap().to_string();
                let what = words.next().unwrap().to_string();
                let pid = words.next().unwrap().trim_start_matches("pid=").parse();
                (host, what, pid.unwrap(), words.next().unwrap().to_string())
            })
            .collect()
    }

    /// The change tickets the HTTP server holds, by number.
    pub(crate) fn changes(&self) -> BTreeMap<String, Value> {
        std::fs::read_dir(self.path("changes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                (v["number"].as_str().unwrap().to_string(), v)
            })
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("demo/local-hosts.sh"))
            .args(["stop", "--state"])
            .arg(&self.state)
            .output();
    }
}

/// `patchday serve` with its stderr read line by line (and kept, to look for secrets).
pub(crate) struct Served {
    pub(crate) daemon: Daemon,
    pub(crate) addr: String,
    log: mpsc::Receiver<String>,
    all: Arc<Mutex<String>>,
}

impl Served {
    /// `. <state>/env; patchday serve --config <state>/patchday.toml [--now NOW]
    /// [--virtual-clock]` on a free port (without `--now`, on the real clock).
    pub(crate) fn start(hosts: &Hosts, now: Option<&str>, virtual_clock: bool) -> Served {
        let mut cmd = patchday();
        cmd.args(["serve", "--config", &hosts.config()])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .envs(hosts.env())
            .stderr(Stdio::piped());
        if let Some(now) = now {
            cmd.args(["--now", now]);
        }
        if virtual_clock {
            cmd.arg("--virtual-clock");
        }
        let mut daemon = Daemon::start(cmd);
        let err = daemon.child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        let all = Arc::new(Mutex::new(String::new()));
        let keep = all.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[daemon] {line}");
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                // The JSON line's message; the whole line (fields too) is kept in `all`.
                let message = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or(line);
                let _ = tx.send(message);
            }
        });
        let (serving, addr) = (daemon.serving.clone(), daemon.addr.clone());
        assert!(
            serving.contains("emails via SMTP 127.0.0.1:") && serving.contains("4 runbooks loaded"),
            "{serving}"
        );
        Served {
            daemon,
            addr,
            log,
            all,
        }
    }

    /// Waits for a stderr line that `matches` accepts; returns what it returns.
    pub(crate) fn await_line<T>(&self, what: &str, matches: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = matches(&line) {
                        return found;
                    }
                }
                Err(_) => panic!(
                    "no line on the daemon's stderr: {what}\n{}",
                    self.all.lock().unwrap()
                ),
            }
        }
    }

    /// Waits for `run <id> succeeded` (a failed or cancelled run fails the test).
    fn await_success(&self, run: &str) {
        let end = self.await_line("the run to finish", |l| {
            l.strip_prefix(&format!("run {run} "))
                .filter(|rest| matches!(*rest, "succeeded" | "failed" | "cancelled"))
                .map(str::to_string)
        });
        assert_eq!(end, "succeeded", "{}", self.all.lock().unwrap());
    }

    pub(crate) fn server(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An operator command against this daemon, with the demo's API token.
    pub(crate) fn cli(&self, hosts: &Hosts, args: &[&str]) -> std::process::Output {
        patchday()
            .args(args)
            .args(["--server", &self.server()])
            .env("PATCHDAY_API_TOKEN", hosts.env_var("PATCHDAY_API_TOKEN"))
            .output()
            .unwrap()
    }
}

/// Serialises the tests that start the local test hosts (this one, `first_run.rs`, and copies of
/// them in other checkouts on this machine): the HTTP port is fixed.
pub(crate) fn demo_lock() -> std::fs::File {
    let file = std::fs::File::create(std::env::temp_dir().join("patchday-demo-18080.lock"))
        .expect("the lock file");
    file.lock().expect("the demo lock");
    file
}

/// The run id from `run ID started: monthly-local cycle CYCLE`.
fn started(line: &str, cycle: &str) -> Option<String> {
    let rest = line.strip_prefix("run ")?;
    let (id, what) = rest.split_once(' ')?;
    (what == format!("started: monthly-local cycle {cycle}")).then(|| id.to_string())
}

fn rows<'a>(detail: &'a Value, step: &str) -> Vec<&'a Value> {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == step && s["host"] != "")
        .collect()
}

/// Every message logged in as `patchday`, and none carries a Message-ID another one has.
pub(crate) fn assert_authenticated_and_unique(mail: &[Value]) {
    let mut ids = BTreeMap::new();
    for m in mail {
        assert_eq!(m["authenticated"], true, "{}", m["subject"]);
        assert_eq!(m["login"], "patchday", "{}", m["subject"]);
        *ids.entry(m["message_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
}

/// No secret of the demo in the daemon's log, the audit log, the database or any email.
pub(crate) fn assert_no_secret_leaked(hosts: &Hosts, served: &Served) {
    let secrets = [
        std::fs::read_to_string(hosts.path("smtp-password")).unwrap(),
        hosts.env_var("PATCHDAY_SECRET_CHANGE_TOKEN"),
        hosts.env_var("PATCHDAY_API_TOKEN"),
    ];
    let log = served.all.lock().unwrap().clone();
    let audit = stdout(
        &patchday()
            .args(["audit", "export", "--database", &hosts.database()])
            .output()
            .unwrap(),
    );
    let mail: String = hosts
        .mail()
        .iter()
        .map(|m| m["raw"].as_str().unwrap().to_string())
        .collect();
    for secret in &secrets {
        let secret = secret.trim();
        assert!(secret.len() >= 20, "a real secret: {secret}");
        assert!(!log.contains(secret), "a secret in the daemon's log");
        assert!(!audit.contains(secret), "a secret in the audit log");
        assert!(!mail.contains(secret), "a secret in an email");
        for entry in std::fs::read_dir(&hosts.state).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("patchday.db") {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a secret in {name}"
                );
            }
        }
    }
}

#[test]
fn the_readme_walkthrough_runs_the_monthly_cycle_against_local_test_hosts() {
    let _lock = demo_lock();
    let state = patchday_tests::scratch("demo");

    let out = patchday()
        .args(["validate", "runbooks/", "runbooks/demo/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("monthly-local"), "{}", stdout(&out));

    let hosts = Hosts::start(&state);
    let ssh_port = hosts.port("ssh");

    // ---- Part one: December's cycle, approved through the emailed link ---------------------
    let mut served = Served::start(&hosts, Some("2026-12-01T08:59:00Z"), true);
    let run = served.await_line("December's run to start", |l| started(l, "2026-12"));

    let approval = "[patchday] Approve monthly-local 2026-12: cab-approval";
    let asks = hosts.await_mail(approval, 2);
    let committee = hosts.await_mail("Patch cycle 2026-12: Patch Tuesday is 2026-12-08", 1);
    assert_eq!(
        committee[0]["rcpt_tos"],
        serde_json::json!([
            "patch-committee@example.com",
            "patch-coordinator@example.com"
        ])
    );
    assert!(
        committee[0]["text"]
            .as_str()
            .unwrap()
            .contains("the patch cycle 2026-12 of runbook monthly-local is open"),
        "{}",
        committee[0]["text"]
    );
    let changes = hosts.changes();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let ticket = &changes["CHG00010001"];
    assert_eq!(ticket["short_description"], "Monthly patching 2026-12");
    assert_eq!(ticket["state"], "new");

    // The CAB chair opens the link: the page shows what is decided; its button decides.
    let ask = asks
        .iter()
        .find(|m| m["rcpt_tos"] == serde_json::json!(["cab-chair@example.com"]))
        .expect("an approval email to the CAB chair");
    let text = ask["text"].as_str().unwrap();
    assert!(
        text.contains("Approve patch cycle 2026-12 (change CHG00010001)"),
        "{text}"
    );
    let start = text.find("/links/").expect("a link") + "/links/".len();
    let token = &text[start..start + text[start..].find(char::is_whitespace).unwrap()];
    let link = format!("/links/{token}");
    // Mail scanners fetch the link first (GET and HEAD, several times): nothing changes.
    let database = hosts.database();
    let before = without_mail(&audit_events(&database));
    for method in ["GET", "HEAD", "GET", "HEAD", "GET"] {
        let (status, _, _) = request(&served.addr, method, &link, &[], "");
        assert_eq!(status, 200, "{method}");
    }
    let after = audit_events(&database);
    assert_eq!(
        without_mail(&after),
        before,
        "a GET or HEAD of the link changed something"
    );
    assert_eq!(count(&after, "approval.decided"), 0);
    // Then the chair opens it in a real browser and clicks Approve.
    let browser = Browser::start();
    browser.navigate(&format!("{}{link}", served.server()));
    assert_eq!(
        browser.text(&browser.find("h1")),
        "Approve patch cycle 2026-12 (change CHG00010001)"
    );
    let buttons = browser.find_all("form[method=post] button[type=submit]");
    let labels: Vec<String> = buttons.iter().map(|b| browser.text(b)).collect();
    assert_eq!(labels, ["Approve", "Reject"]);
    let png =
        browser.save_screenshot(&patchday_tests::artifacts_dir().join("monthly-cab-approval.png"));
    assert!(png.len() > 10_000);
    browser.click(&buttons[0]);
    let decided = poll("the decided page", LIMIT, || {
        let title = browser.title();
        title.starts_with("Approved by you").then_some(title)
    });
    assert!(
        decided.starts_with("Approved by you"),
        "{}",
        browser.source()
    );
    browser.save_screenshot(&patchday_tests::artifacts_dir().join("monthly-cab-decided.png"));
    drop(browser);

    served.await_success(&run);
    let report = hosts.await_mail("Patch report: monthly-local 2026-12", 1);
    let finished = hosts.await_mail("[patchday] monthly-local 2026-12: run succeeded", 1);
    assert_eq!(
        finished[0]["rcpt_tos"],
        serde_json::json!(["patch-committee@example.com"])
    );
    let attached: Vec<(&str, u64)> = report[0]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["filename"].as_str().unwrap(), a["size"].as_u64().unwrap()))
        .collect();
    // The report as Markdown, HTML and JSON (the last with each host's time to patch).
    assert_eq!(attached.len(), 3, "{attached:?}");
    for extension in [".md", ".html", ".json"] {
        assert!(
            attached
                .iter()
                .any(|(f, n)| f.ends_with(extension) && *n > 0),
            "{extension}: {attached:?}"
        );
    }
    let text = report[0]["text"].as_str().unwrap();
    assert!(text.contains("| node2 | patch-node2 | patched |"), "{text}");
    // A snapshot is not a patch; the CAB's decision is in the report, with where it came from.
    assert!(
        text.contains("| node1 | snapshot-vms | succeeded |"),
        "{text}"
    );
    assert!(
        text.contains("- cab-approval: approve by ") && text.contains(" from 127.0.0.1"),
        "{text}"
    );

    // Node 1, then node 2, each once, through the demo sshd (only sshd sets SSH_CONNECTION).
    let commands = hosts.commands("2026-12");
    let steps: Vec<(&str, &str)> = commands
        .iter()
        .map(|(h, w, _, _)| (h.as_str(), w.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("node1", "started"),
            ("node1", "patched"),
            ("node2", "started"),
            ("node2", "patched")
        ]
    );
    for (host, what, _, rest) in &commands {
        if what == "started" {
            assert!(
                rest.starts_with("ssh=[127.0.0.1 ")
                    && rest.contains(&format!(" 127.0.0.1 {ssh_port}]")),
                "{host} did not run through the demo sshd: {rest}"
            );
        }
    }
    let changes = hosts.changes();
    let ticket = &changes["CHG00010001"];
    assert_eq!(ticket["state"], "closed", "{ticket:#}");
    assert_eq!(ticket["close_code"], "successful");
    assert_eq!(
        ticket["close_notes"],
        "Node 1: succeeded, node 2: succeeded"
    );

    let out = served.cli(&hosts, &["status", &run, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let detail: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(detail["run"]["state"], "succeeded");
    for (step, host) in [("smoke-test-node1", "node1"), ("smoke-test-node2", "node2")] {
        let row = rows(&detail, step);
        assert_eq!(row.len(), 1, "{step}");
        assert_eq!(row[0]["host"], host);
        assert_eq!(row[0]["state"], "succeeded", "{step}: {:#}", row[0]);
        assert!(
            row[0]["outputs"]["attempts"].as_u64().unwrap() >= 1,
            "{:#}",
            row[0]
        );
    }
    let snapshots = rows(&detail, "snapshot-vms");
    let vms: Vec<&str> = snapshots
        .iter()
        .map(|r| r["outputs"]["vm"].as_str().unwrap())
        .collect();
    assert_eq!(vms, ["demo-node1", "demo-node2"]);
    for r in &snapshots {
        assert_eq!(r["state"], "succeeded");
        assert_eq!(r["outputs"]["provider"], "libvirt");
        assert_eq!(r["outputs"]["name"], "pre-patch-2026-12");
        assert_eq!(r["outputs"]["already_existed"], false);
    }
    let events = audit_events(&hosts.database());
    let decision = events
        .iter()
        .find(|e| e["action"] == "approval.decided")
        .expect("approval.decided");
    assert_eq!(decision["actor"], "link:cab-chair@example.com");

    // The chair approved: the IT director is told his decision is no longer needed.
    hosts.await_mail(
        "[patchday] monthly-local 2026-12: no longer needed: Approve patch cycle 2026-12 (change CHG00010001)",
        1,
    );
    let december = hosts.mail();
    assert_eq!(december.len(), 6, "{:#?}", subjects(&december));
    assert_authenticated_and_unique(&december);
    assert_no_secret_leaked(&hosts, &served);
    assert_eq!(served.daemon.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&hosts.database());

    // ---- Part two: January's cycle, the daemon killed while node 1 runs ----------------------
    std::fs::create_dir_all(hosts.path("hosts/node1")).unwrap();
    std::fs::write(hosts.path("hosts/node1/hold"), "").unwrap();
    let mut served = Served::start(&hosts, Some("2027-01-05T08:59:00Z"), true);
    let run = served.await_line("January's run to start", |l| started(l, "2027-01"));
    hosts.await_mail("[patchday] Approve monthly-local 2027-01: cab-approval", 2);
    // This time the operator approves with `patchday approve` (the API token of the demo).
    let out = served.cli(
        &hosts,
        &[
            "approve",
            &run,
            "--step",
            "cab-approval",
            "--reason",
            "the CAB met by phone",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("api:demo"), "{}", stdout(&out));

    let first = poll("node 1's command to start", LIMIT, || {
        hosts
            .commands("2027-01")
            .into_iter()
            .find(|(h, w, _, _)| h == "node1" && w == "started")
    });
    // Nothing left to send: the kill loses no email in flight, so none may be missing or twice.
    poll("the outbox to drain", LIMIT, || {
        let (_, metrics) = get(&served.addr, "/metrics").ok()?;
        metrics.contains("patchday_outbox_depth 0\n").then_some(())
    });
    served.daemon.child.kill().unwrap();
    let killed = served.daemon.child.wait().unwrap();
    assert_eq!(killed.code(), None, "ended by SIGKILL");
    // Its ssh client's stdin closed with it: the remote wrapper kills the held command.
    poll("the held command to die with its connection", LIMIT, || {
        (!Path::new(&format!("/proc/{}", first.2)).exists()).then_some(())
    });
    assert!(
        !hosts
            .commands("2027-01")
            .iter()
            .any(|(_, w, _, _)| w == "patched"),
        "nothing was patched before the kill"
    );
    std::fs::remove_file(hosts.path("hosts/node1/hold")).unwrap();

    // Restarted with the clock past the night's times (without --virtual-clock the clock stands
    // at --now, and the scheduler does not jump ahead to February).
    let mut served = Served::start(&hosts, Some("2027-01-17T06:00:00Z"), false);
    // The killed daemon ran on this machine: the new one takes its lease over at once.
    served.await_line("the dead daemon's lease taken over", |l| {
        (l.starts_with("the previous leader ") && l.ends_with("took its lease and 1 run(s) over"))
            .then_some(())
    });
    served.await_line("the run to resume", |l| {
        (l == format!("run {run}: 1 step(s) found running, left by a stopped driver")).then_some(())
    });
    served.await_line("the interrupted step to wait for an operator", |l| {
        (l == format!("run {run} waits for a decision: patch-node1 [node1] interrupted"))
            .then_some(())
    });
    // The committee is told the step waits for an operator, who retries it with the CLI.
    hosts.await_mail(
        "[patchday] monthly-local 2027-01: step patch-node1 on node1 waits for an operator",
        1,
    );
    let out = served.cli(
        &hosts,
        &[
            "retry",
            &run,
            "--step",
            "patch-node1",
            "--host",
            "node1",
            "--reason",
            "killed with the daemon",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    served.await_success(&run);
    hosts.await_mail("[patchday] monthly-local 2027-01: run succeeded", 1);

    // Node 1: the killed attempt, then the retried one that patched; then node 2.
    let commands = hosts.commands("2027-01");
    let steps: Vec<(&str, &str)> = commands
        .iter()
        .map(|(h, w, _, _)| (h.as_str(), w.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("node1", "started"),
            ("node1", "started"),
            ("node1", "patched"),
            ("node2", "started"),
            ("node2", "patched")
        ]
    );
    assert_eq!(commands[0].2, first.2);
    assert_eq!(commands[1].2, commands[2].2, "the retry patched");
    assert_ne!(commands[0].2, commands[1].2);

    // Every email of January arrived once: the committee, two approval asks, the report, the end.
    let mail = hosts.mail();
    let january: Vec<Value> = mail
        .iter()
        .filter(|m| m["subject"].as_str().unwrap().contains("2027-01"))
        .cloned()
        .collect();
    let mut got: Vec<(String, String)> = january
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap().to_string(),
                m["rcpt_tos"].to_string(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(String, String)> = [
        (
            "Patch cycle 2027-01: Patch Tuesday is 2027-01-12",
            r#"["patch-committee@example.com","patch-coordinator@example.com"]"#,
        ),
        (
            "[patchday] Approve monthly-local 2027-01: cab-approval",
            r#"["cab-chair@example.com"]"#,
        ),
        (
            "[patchday] Approve monthly-local 2027-01: cab-approval",
            r#"["it-director@example.com"]"#,
        ),
        (
            "Patch report: monthly-local 2027-01",
            r#"["patch-committee@example.com"]"#,
        ),
        (
            "[patchday] monthly-local 2027-01: run succeeded",
            r#"["patch-committee@example.com"]"#,
        ),
        (
            "[patchday] monthly-local 2027-01: step patch-node1 on node1 waits for an operator",
            r#"["patch-committee@example.com"]"#,
        ),
        // The operator approved for the CAB: both members are told it is no longer needed.
        (
            "[patchday] monthly-local 2027-01: no longer needed: Approve patch cycle 2027-01 (change CHG00010002)",
            r#"["cab-chair@example.com"]"#,
        ),
        (
            "[patchday] monthly-local 2027-01: no longer needed: Approve patch cycle 2027-01 (change CHG00010002)",
            r#"["it-director@example.com"]"#,
        ),
    ]
    .iter()
    .map(|(s, r)| (s.to_string(), r.to_string()))
    .collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(mail.len(), december.len() + january.len());
    assert_authenticated_and_unique(&mail);

    let changes = hosts.changes();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes["CHG00010002"]["state"], "closed");
    assert_eq!(
        changes["CHG00010002"]["short_description"],
        "Monthly patching 2027-01"
    );
    let events = audit_events(&hosts.database());
    let of_run: Vec<&Value> = events.iter().filter(|e| e["run_id"] == run).collect();
    let interrupted: Vec<&&Value> = of_run
        .iter()
        .filter(|e| e["action"] == "step.interrupted")
        .collect();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0]["step_id"], "patch-node1");
    let resolved = of_run
        .iter()
        .find(|e| e["action"] == "step.resolved")
        .expect("step.resolved");
    assert_eq!(resolved["actor"], "api:demo");
    assert_eq!(resolved["details"]["decision"], "retry");
    assert_eq!(resolved["details"]["reason"], "killed with the daemon");
    assert_eq!(count(&events, "run.started"), 2);

    assert_no_secret_leaked(&hosts, &served);
    assert_eq!(served.daemon.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&hosts.database());
    drop(hosts);
    let _ = std::fs::remove_dir_all(&state);
}

fn subjects(mail: &[Value]) -> Vec<String> {
    mail.iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect()
}
