//! `patchday run`, `simulate` and `audit` from the command line.

use patchday_tests::{assert_exit, patchday, run, stderr, stdout};

#[test]
fn simulate_is_the_same_byte_for_byte_every_time() {
    let args = ["simulate", "runbooks/monthly.yaml", "--cycle", "2026-12"];
    let first = run(&args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let second = run(&args);
    assert_eq!(first.stdout, second.stdout);
    let text = stdout(&first);
    assert!(
        text.contains("Sat 2026-12-12 22:00 EST    patch-node1"),
        "{text}"
    );
    assert!(
        text.contains("legacy01  skipped         excepted until 2027-03-01"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("run succeeded"), "{text}");
}

#[test]
fn a_rejected_approval_fails_the_simulated_cycle() {
    let out = run(&[
        "simulate",
        "runbooks/monthly.yaml",
        "--cycle",
        "2026-12",
        "--reject",
        "cab-approval",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let sim: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sim["outcome"], "failed");
    let timeline = sim["timeline"].as_array().unwrap();
    let patch = timeline
        .iter()
        .find(|l| l["step"] == "patch-node1")
        .unwrap();
    assert_eq!(patch["state"], "skipped");
    // `if: always`: the summary still goes out.
    let summary = timeline
        .iter()
        .rev()
        .find(|l| l["step"] == "summary-email")
        .unwrap();
    assert_eq!(summary["state"], "succeeded");
}

#[test]
fn the_emergency_timeline_follows_the_security_officers_choice() {
    let out = run(&[
        "simulate",
        "runbooks/emergency.yaml",
        "--start",
        "2026-11-24T15:00:00Z",
        "--param",
        "cve=CVE-2026-12345",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sim: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = |step: &str| {
        sim["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l["step"] == step)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        line("security-decision")["note"],
        "decided `patch-now` (simulated)"
    );
    assert_eq!(line("business-approval")["state"], "skipped");
    assert_eq!(
        line("roll-out-production")["at"],
        "Wed 2026-11-25 10:00 EST"
    );
}

#[test]
fn a_foreground_run_records_an_audit_trail_that_verifies_and_exports() {
    let dir = patchday_tests::scratch("run-e2e");
    let runbook = dir.join("hello.yaml");
    let ledger = dir.join("ledger");
    std::fs::write(&runbook, format!("name: hello\nparams:\n  token: {{ secret: true }}\nsteps:\n  say:\n    uses: command\n    with: {{ run: \"echo hello >> {}\", env: {{ TOKEN: \"{{{{params.token}}}}\" }} }}\n  after:\n    needs: [say]\n    uses: noop\n", ledger.display())).unwrap();
    let database = format!("sqlite://{}", dir.join("runs.db").display());
    let out = patchday()
        .args(["run", runbook.to_str().unwrap(), "--database", &database])
        .env("PATCHDAY_SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(std::fs::read_to_string(&ledger).unwrap(), "hello\n");
    patchday_tests::assert_audit_verifies(&database);
    let export = run(&["audit", "export", "--database", &database]);
    let text = stdout(&export);
    assert!(text.lines().count() >= 5, "{text}");
    assert!(text.contains("\"action\":\"run.finished\""), "{text}");
    assert!(
        !text.contains("hunter2") && !stdout(&out).contains("hunter2"),
        "a secret leaked"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_secret_is_named() {
    let out = run(&[
        "run",
        "runbooks/emergency.yaml",
        "--param",
        "cve=CVE-1",
        "--database",
        "sqlite::memory:",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("PATCHDAY_SECRET_CHANGE_TOKEN"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_local_demo_runbook_runs_on_this_machine() {
    let dir = patchday_tests::scratch("demo");
    let database = format!("sqlite://{}", dir.join("demo.db").display());
    let out = run(&[
        "run",
        "runbooks/demo/local-maintenance.yaml",
        "--database",
        &database,
    ]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("done  succeeded  maintenance finished (cycle "),
        "{}",
        stdout(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ctrl_c_cancels_a_foreground_run_and_its_command() {
    use std::io::{BufRead, BufReader};
    let dir = patchday_tests::scratch("ctrlc");
    let runbook = dir.join("long.yaml");
    let pid_file = dir.join("pid");
    std::fs::write(&runbook, format!("name: long\nsteps:\n  wait:\n    uses: command\n    with: {{ run: \"echo $$ > {}; exec sleep 60\" }}\n  after:\n    needs: [wait]\n    uses: noop\n", pid_file.display())).unwrap();
    let database = format!("sqlite://{}", dir.join("runs.db").display());
    let mut child = patchday()
        .args(["run", runbook.to_str().unwrap(), "--database", &database])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.map_while(Result::ok) {
        let started = line.contains("wait  started");
        seen.push(line);
        if started {
            // The command has started once it wrote its pid: then press Ctrl-C.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the command never started"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let status = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with("after ") && l.contains("cancelled")),
        "{seen:#?}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    assert!(
        matches!(state, None | Some("Z") | Some("X")),
        "sleep {pid} survived Ctrl-C"
    );
    std::fs::remove_dir_all(&dir).ok();
}
