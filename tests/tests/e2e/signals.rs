//! `patchday serve` stops on SIGINT and SIGTERM whatever happened to its output (issue 15):
//! `patchday serve 2>&1 | tee log` whose `tee` died with the Ctrl-C leaves the daemon writing
//! its "SIGINT received" line into a closed pipe. That must neither panic nor keep it running.
//! And what its log lines say about time: the engine's clock, virtual or not.

use std::io::{BufRead, BufReader};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use patchday_tests::daemon::{poll, serve_command};
use patchday_tests::scratch;

/// Starts a daemon with stdout and stderr piped, reads the line that says where it serves,
/// closes both pipes' reading ends, sends `signal`, and returns how it ended.
fn stop_with_closed_pipes(name: &str, signal: &str) -> ExitStatus {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    let database = format!("sqlite://{}", dir.join("patchday.db").display());
    let mut child = serve_command(&dir, &database, &dir.join("outbox"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("patchday serve starts");
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("patchday serving"), "{first}");
    // The readers go away, as `tee` does on Ctrl-C.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = poll("the daemon to stop", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    let _ = std::fs::remove_dir_all(&dir);
    status
}

#[test]
fn sigint_stops_the_daemon_when_its_output_pipes_are_closed() {
    let status = stop_with_closed_pipes("sigint-closed-pipes", "-INT");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_stops_the_daemon_when_its_output_pipes_are_closed() {
    let status = stop_with_closed_pipes("sigterm-closed-pipes", "-TERM");
    assert!(status.success(), "{status:?}");
}

/// Under `--virtual-clock` (and `--now`) log lines carry the engine's time, as the audit log and
/// the emails do, not the machine's (issue 15).
#[test]
fn log_lines_carry_the_virtual_clocks_time() {
    let dir = scratch("virtual-log-time");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    let database = format!("sqlite://{}", dir.join("patchday.db").display());
    let mut child = serve_command(&dir, &database, &dir.join("outbox"))
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("patchday serve starts");
    let mut first = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line: serde_json::Value = serde_json::from_str(&first).expect(&first);
    let stamp = line["timestamp"].as_str().unwrap_or_default();
    // serve_command starts the virtual clock at 2026-12-08T09:59:00Z.
    assert!(stamp.starts_with("2026-12-08T09:59:"), "{first}");
    let _ = std::fs::remove_dir_all(&dir);
}
