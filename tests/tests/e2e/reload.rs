//! `patchday serve` keeps its runbooks folder current (DESIGN §8 `serve`, §9 `[runbooks]`):
//! the folder is a git clone; the daemon records the commit on every run, keeps the last good
//! version when a change is invalid (audited as `runbook.rejected` and mailed to the
//! committee), loads a fixed version, and pulls new commits with `git pull --ff-only`.
//! Its logs are JSON lines (`--log-format json`) whose run lines carry runbook, run id, step id
//! and host.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, emails_with, metric_is, poll};
use patchday_tests::{assert_audit_verifies, patchday, stderr, stdout};
use serde_json::Value;

const GOOD: &str = r#"name: reload-demo
description: A manual runbook the reload test edits
timezone: UTC
roles:
  committee: [committee@example.com]
notify: { on: [finished], to: [committee] }
steps:
  hello:
    uses: command
    with: { run: "echo hello" }
"#;

/// The same runbook with an unknown connector on line 10.
const BROKEN: &str = r#"name: reload-demo
description: A manual runbook the reload test edits
timezone: UTC
roles:
  committee: [committee@example.com]
notify: { on: [finished], to: [committee] }
steps:
  hello:
    uses: command
    with: { run: "echo hello" }
  bye:
    uses: telegraph
"#;

const FIXED: &str = r#"name: reload-demo
description: A manual runbook the reload test edits
timezone: UTC
roles:
  committee: [committee@example.com]
notify: { on: [finished], to: [committee] }
steps:
  hello:
    uses: command
    with: { run: "echo hello" }
  bye:
    needs: [hello]
    uses: command
    with: { run: "echo bye" }
"#;

const PULLED: &str = "name: pulled\ntimezone: UTC\nsteps:\n  only: { uses: noop }\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Pat Coordinator")
        .env("GIT_AUTHOR_EMAIL", "pat@example.com")
        .env("GIT_COMMITTER_NAME", "Pat Coordinator")
        .env("GIT_COMMITTER_EMAIL", "pat@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Serve {
    daemon: Daemon,
    server: String,
    token: String,
    database: String,
    /// The daemon's stderr, line by line.
    log: mpsc::Receiver<String>,
}

impl Serve {
    /// A CLI command against the daemon, as JSON.
    fn cli(&self, args: &[&str]) -> Value {
        let out = patchday()
            .args(args)
            .args(["--server", &self.server, "--token", &self.token])
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    /// Triggers a run of `runbook` and waits for it to finish; its detail (`run`, `steps`,
    /// `audit`).
    fn run_to_end(&self, runbook: &str) -> Value {
        let started = self.cli(&["trigger", runbook]);
        let id = started["run"]["id"].as_str().unwrap().to_string();
        poll("the run to finish", Duration::from_secs(30), || {
            let detail = self.cli(&["status", &id]);
            (detail["run"]["state"] != "running").then_some(detail)
        })
    }

    fn wait_for_event(&self, action: &str, n: usize) -> Vec<Value> {
        poll(action, Duration::from_secs(30), || {
            let found: Vec<Value> = audit_events(&self.database)
                .into_iter()
                .filter(|e| e["action"] == action)
                .collect();
            (found.len() >= n).then_some(found)
        })
    }
}

fn start(dir: &Path, runbooks: &Path) -> Serve {
    let (token, tokens) = patchday_tests::api_token(dir, "ops");
    let database = format!("sqlite://{}", dir.join("d.db").display());
    std::fs::write(dir.join("patchday.toml"), "[runbooks]\ngit_pull = \"1s\"\n").unwrap();
    let mut command = patchday();
    command
        .current_dir(dir)
        .args(["--config", &dir.join("patchday.toml").display().to_string()])
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .args(["--runbooks", &runbooks.display().to_string()])
        .args(["--outbox", &dir.join("outbox").display().to_string()])
        .args(["--log-format", "json"])
        .env("PATCHDAY_SECURITY_API_TOKENS_FILE", &tokens)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    let mut daemon = Daemon::start(command);
    let (tx, log) = mpsc::channel();
    let err = daemon.child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Serve {
        server: daemon.url(),
        daemon,
        token,
        database,
        log,
    }
}

#[test]
fn the_daemon_follows_its_git_folder_and_keeps_the_last_good_runbook() {
    let dir = patchday_tests::scratch("reload");
    let upstream = dir.join("upstream");
    std::fs::create_dir_all(&upstream).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    std::fs::write(upstream.join("reload-demo.yaml"), GOOD).unwrap();
    git(&upstream, &["add", "."]);
    git(&upstream, &["commit", "-q", "-m", "first runbook"]);
    git(&dir, &["clone", "-q", "upstream", "runbooks"]);
    let runbooks = dir.join("runbooks");
    let first_commit = git(&runbooks, &["rev-parse", "HEAD"]);

    let serve = start(&dir, &runbooks);

    // 1. A run records the folder's commit and the content hash it ran.
    let run = serve.run_to_end("reload-demo");
    assert_eq!(run["run"]["state"], "succeeded", "{run:#}");
    assert_eq!(run["run"]["commit"], first_commit.as_str(), "{run:#}");
    let good_hash = run["run"]["content_hash"].as_str().unwrap().to_string();

    // 2. A broken local edit: rejected, audited with the error's line, mailed to the
    //    committee; the last good version keeps running.
    std::fs::write(runbooks.join("reload-demo.yaml"), BROKEN).unwrap();
    let rejected = serve.wait_for_event("runbook.rejected", 1);
    let details = &rejected[0]["details"];
    let errors = details["errors"].to_string();
    assert!(
        errors.contains("reload-demo.yaml:12") && errors.contains("telegraph"),
        "{details:#}"
    );
    assert_eq!(details["kept"]["content_hash"], good_hash.as_str());
    assert_eq!(details["commit"], format!("{first_commit}-dirty").as_str());
    let mail = poll("the rejection email", Duration::from_secs(30), || {
        emails_with(&dir.join("outbox"), "change rejected").pop()
    });
    assert!(mail.contains("To: committee@example.com\r\n"), "{mail}");
    assert!(mail.contains("telegraph"), "{mail}");
    let run = serve.run_to_end("reload-demo");
    assert_eq!(run["run"]["state"], "succeeded", "{run:#}");
    assert_eq!(
        run["run"]["content_hash"],
        good_hash.as_str(),
        "the last good version ran"
    );

    // 3. The fix, committed upstream and pulled by the daemon (`git pull --ff-only`; the
    //    local edit is dropped first, as an operator would).
    git(&runbooks, &["checkout", "--", "."]);
    std::fs::write(upstream.join("reload-demo.yaml"), FIXED).unwrap();
    std::fs::write(upstream.join("pulled.yaml"), PULLED).unwrap();
    git(&upstream, &["add", "."]);
    git(&upstream, &["commit", "-q", "-m", "fix and add"]);
    let fixed_commit = git(&upstream, &["rev-parse", "HEAD"]);
    let updated = serve.wait_for_event("runbook.updated", 1);
    assert_eq!(updated[0]["details"]["commit"], fixed_commit.as_str());
    // (The first `runbook.loaded` is the start's: the audit log had no runbook yet.)
    let loaded = serve.wait_for_event("runbook.loaded", 2);
    assert_eq!(loaded[0]["details"]["runbook"], "reload-demo");
    assert_eq!(loaded[1]["details"]["runbook"], "pulled");
    let run = serve.run_to_end("reload-demo");
    assert_eq!(run["run"]["state"], "succeeded", "{run:#}");
    assert_eq!(run["run"]["commit"], fixed_commit.as_str());
    assert_ne!(run["run"]["content_hash"], good_hash.as_str());
    let steps = run["steps"].to_string();
    assert!(steps.contains("bye"), "the new version ran: {run:#}");
    let pulled = serve.run_to_end("pulled");
    assert_eq!(pulled["run"]["state"], "succeeded", "{pulled:#}");

    // 4. Metrics count the reloads and the rejection.
    let addr = &serve.daemon.addr;
    assert!(metric_is(addr, "patchday_runbook_rejections_total", 1));
    assert!(metric_is(addr, "patchday_runbook_reloads_total", 2));
    assert!(metric_is(
        addr,
        "patchday_step_duration_seconds_count{uses=\"command\"}",
        4
    ));

    // 5. JSON log lines: the fixed run's step lines carry runbook, run id, step id, host.
    let id = run["run"]["id"].as_str().unwrap().to_string();
    let lines: Vec<Value> = serve
        .log
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let bye = lines
        .iter()
        .find(|l| {
            l["step_id"] == "bye"
                && l["state"] == "succeeded"
                && l["spans"][0]["run_id"] == id.as_str()
        })
        .unwrap_or_else(|| panic!("no log line for step bye of {id}: {lines:#?}"));
    assert_eq!(bye["spans"][0]["runbook"], "reload-demo", "{bye:#}");
    assert_eq!(bye["host"], "", "{bye:#}");
    assert!(
        bye["timestamp"].is_string() && bye["level"] == "INFO",
        "{bye:#}"
    );

    // 6. A token added to the tokens file works without a restart; one removed stops working.
    let out = patchday()
        .args(["api-token", "late", "--format", "json"])
        .output()
        .unwrap();
    let late: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let late_token = late["token"].as_str().unwrap();
    let runs_as = |token: &str| {
        patchday()
            .args(["runs", "--server", &serve.server, "--token", token])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(runs_as(late_token), Some(2), "not in the file yet");
    std::fs::write(
        dir.join("api-tokens"),
        format!("{}\n", late["line"].as_str().unwrap()),
    )
    .unwrap();
    poll("the new token to work", Duration::from_secs(30), || {
        (runs_as(late_token) == Some(0)).then_some(())
    });
    assert_eq!(
        runs_as(&serve.token),
        Some(2),
        "the removed token is refused"
    );

    drop(serve);
    assert_audit_verifies(&format!("sqlite://{}", dir.join("d.db").display()));
    let _ = std::fs::remove_dir_all(&dir);
}
