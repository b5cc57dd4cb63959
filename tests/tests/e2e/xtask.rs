//! `cargo xtask demo` (issue 15: from a fresh clone to a running month in two commands): it
//! starts the local test hosts and becomes `patchday serve` a minute before the next cycle of
//! the monthly demo runbook, on a virtual clock: the committee is mailed, then every CAB member
//! gets an approval email. `cargo xtask demo stop` stops the hosts. (The package installs and the
//! release build are skipped here: `--skip-deps --bin` the binary under test.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use patchday_tests::daemon::poll;
use patchday_tests::{patchday_bin, repo_root, scratch};

use crate::demo::{Hosts, LIMIT, demo_lock};

/// The xtask binary cargo built beside `patchday` (it is a workspace member).
fn xtask_bin() -> PathBuf {
    patchday_bin().with_file_name(format!("xtask{}", std::env::consts::EXE_SUFFIX))
}

/// The `.txt` copies of the emails whose file name contains `part`.
fn mail_named(state: &Path, part: &str) -> Vec<String> {
    std::fs::read_dir(state.join("mail"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".txt") && name.contains(part))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_demo_task_starts_a_monthly_cycle_against_the_local_hosts() {
    let _lock = demo_lock();
    let state = scratch("xtask-demo");
    // Stops the hosts whatever happens below.
    let _hosts = Hosts {
        state: state.clone(),
    };
    let mut demo = Command::new(xtask_bin())
        .current_dir(repo_root())
        .args(["demo", "--skip-deps", "--listen", "127.0.0.1:0", "--bin"])
        .arg(patchday_bin())
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .expect("xtask runs");
    let mut said = String::new();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("patchday serving http://127.0.0.1:") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    assert!(said.contains("local test hosts ready"), "{said}");
    assert!(
        said.contains("the monthly cycle of runbooks/demo/monthly-local.yaml fires at"),
        "{said}"
    );
    assert!(said.contains("patchday serving http://"), "{said}");

    // The cycle is under way: the committee email, then one approval email per CAB member.
    let approvals = poll("the CAB's approval emails", LIMIT, || {
        let found = mail_named(&state, "cab-approval");
        (found.len() == 2).then_some(found)
    });
    let committee = mail_named(&state, "patch-tuesday-is");
    assert_eq!(committee.len(), 1, "{committee:?} {approvals:?}");

    // The task became the daemon: SIGTERM stops it.
    let killed = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = poll("the daemon to stop", LIMIT, || demo.try_wait().unwrap());
    assert!(status.success(), "{status:?}");

    let stop = Command::new(xtask_bin())
        .args(["demo", "stop", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let _ = std::fs::remove_dir_all(&state);
}
