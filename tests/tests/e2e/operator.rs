//! The operator's loop (issue 15 item 4), through the real daemon, the real SMTP test server and
//! restarts: a step found running after a crash waits for an operator; the operators are
//! emailed once per wait (a second restart sends nothing more); the run page says who is
//! waited on and for what; `patchday retry RUN --step ID --reason TEXT` settles it through the
//! API, and the reason is in the audit log.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, kill_during_command, metric_is, poll};
use patchday_tests::smtp::{SmtpOptions, SmtpServer};
use patchday_tests::{patchday, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(60);

/// A non-idempotent step (`command`) that writes its shell's pid, then waits while `hold` exists.
fn held_runbook(dir: &Path) -> String {
    format!(
        r#"name: held
timezone: UTC
roles:
  committee: [committee@example.com]
  operators: [ops@example.com]
steps:
  patch:
    uses: command
    with: {{ run: "echo $$ > {pid}; while [ -e {hold} ]; do sleep 0.05; done; echo patched >> {ledger}" }}
  after:
    needs: [patch]
    uses: noop
"#,
        pid = dir.join("pid").display(),
        hold = dir.join("hold").display(),
        ledger = dir.join("ledger").display(),
    )
}

/// A daemon in `dir` on the fixed clock `now`; its log (stderr) in `dir/<name>.log`.
fn serve(dir: &Path, database: &str, name: &str) -> (Daemon, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut command = patchday();
    command
        .current_dir(dir)
        .args(["--config", &dir.join("patchday.toml").display().to_string()])
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--now", "2026-12-06T10:00:00Z"])
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    (Daemon::start(command), log)
}

/// `patchday ARGS` against `daemon` (its `local` token, found next to `database`).
fn cli(dir: &Path, daemon: &Daemon, database: &str, args: &[&str]) -> Output {
    patchday()
        .current_dir(dir)
        .args(["--database", database])
        .args(args)
        .args(["--server", &daemon.url()])
        .output()
        .unwrap()
}

/// Waits for a line of the daemon's log that contains `text`.
fn await_log(log: &Path, text: &str) {
    poll(&format!("the log to say `{text}`"), LIMIT, || {
        std::fs::read_to_string(log)
            .ok()
            .filter(|l| l.contains(text))
            .map(|_| ())
    });
}

fn waits_for_an_operator(smtp: &SmtpServer) -> Vec<serde_json::Value> {
    smtp.messages()
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("step patch waits for an operator")
        })
        .collect()
}

#[test]
fn an_interrupted_step_is_told_once_shown_on_its_page_and_settled_with_patchday_retry() {
    let dir = patchday_tests::scratch("operator-loop");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/held.yaml"), held_runbook(&dir)).unwrap();
    std::fs::write(dir.join("hold"), "").unwrap();
    let smtp = SmtpServer::start(&dir.join("mail"), &SmtpOptions::default());
    std::fs::write(dir.join("patchday.toml"), smtp.config()).unwrap();
    let database = format!("sqlite://{}", dir.join("p.db").display());

    let (mut first, _) = serve(&dir, &database, "first");
    let out = cli(&dir, &first, &database, &["trigger", "held"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Issue 15 item 7: the CLI names a run without a cycle as the pages do, not `cycle -`.
    let started = stdout(&out);
    assert!(
        started.ends_with(" started: held (manual run)\n"),
        "{started}"
    );
    let run = started.split_whitespace().nth(1).unwrap().to_string();
    let runs = stdout(&cli(&dir, &first, &database, &["runs"]));
    let listed = runs.lines().find(|l| l.starts_with(&run)).unwrap();
    assert!(listed.contains(" manual "), "{runs}");

    // The daemon dies while the step runs (and its command with it).
    kill_during_command(&mut first, &dir);

    // Restarted: the step is interrupted; the operators hear it once, with the commands.
    let (mut second, log) = serve(&dir, &database, "second");
    await_log(
        &log,
        &format!("run {run} waits for a decision: patch interrupted"),
    );
    let told = poll("the interrupted email", LIMIT, || {
        let told = waits_for_an_operator(&smtp);
        (!told.is_empty()).then_some(told)
    });
    let email = &told[0];
    assert_eq!(
        email["rcpt_tos"],
        serde_json::json!(["committee@example.com", "ops@example.com"])
    );
    let text = email["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("patchday retry {run} --step patch --reason")),
        "{text}"
    );
    assert!(text.contains(&format!("/runs/{run}")), "{text}");

    // The run page says who is waited on and for what; a manual run shows no cycle.
    let (status, page) = second.page(&format!("/runs/{run}"));
    assert_eq!(status, 200);
    let waiting = page
        .split("<h2>Waiting for</h2>")
        .nth(1)
        .expect("Waiting for");
    let waiting = waiting.split("<h2>").next().unwrap();
    assert!(
        waiting.contains("an operator (told: committee@example.com, ops@example.com)"),
        "{waiting}"
    );
    assert!(
        waiting.contains(&format!("patchday retry {run} --step patch")),
        "{waiting}"
    );
    assert!(page.contains("none (manual run)"), "{page}");

    // A second restart while it waits sends nothing more.
    poll("the outbox to drain", LIMIT, || {
        metric_is(&second.addr, "patchday_outbox_depth", 0).then_some(())
    });
    assert_eq!(second.terminate().code(), Some(0));
    let (third, log) = serve(&dir, &database, "third");
    await_log(
        &log,
        &format!("run {run} waits for a decision: patch interrupted"),
    );
    poll("the outbox to drain", LIMIT, || {
        metric_is(&third.addr, "patchday_outbox_depth", 0).then_some(())
    });
    assert_eq!(waits_for_an_operator(&smtp).len(), 1);

    // `patchday retry` settles it through the API; the run goes on to its end.
    let reason = "the command was killed with the daemon; safe to run again";
    let out = cli(
        &dir,
        &third,
        &database,
        &["retry", &run, "--step", "patch", "--reason", reason],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("patch runs again"),
        "{}",
        stdout(&out)
    );
    poll("the run to succeed", LIMIT, || {
        let out = cli(&dir, &third, &database, &["status", &run]);
        stdout(&out)
            .lines()
            .next()?
            .ends_with(" succeeded")
            .then_some(())
    });
    let ledger = std::fs::read_to_string(dir.join("ledger")).unwrap();
    assert_eq!(ledger, "patched\n", "patched once, by the retry");
    let events = audit_events(&database);
    let resolved = events
        .iter()
        .find(|e| e["action"] == "step.resolved")
        .expect("step.resolved");
    assert_eq!(resolved["actor"], "api:local");
    assert_eq!(resolved["details"]["decision"], "retry");
    assert_eq!(resolved["details"]["reason"], reason);

    // Asked again, the step is not waiting any more: refused (exit 1), nothing changes.
    let again = cli(
        &dir,
        &third,
        &database,
        &["skip", &run, "--step", "patch", "--reason", "again"],
    );
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("is not interrupted"),
        "{}",
        stderr(&again)
    );
    patchday_tests::assert_audit_verifies(&database);
}
