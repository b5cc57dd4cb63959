//! The binary's surface: `--help` lists the commands, and usage errors exit 2.
//! (Having an integration test here also makes `cargo test --workspace` build the binary
//! that the end-to-end tests in `tests/` drive.)

use std::process::Command;

fn patchday(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_patchday"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_working_commands() {
    let out = patchday(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for command in [
        "validate",
        "calendar",
        "plan",
        "schema",
        "run",
        "resume",
        "simulate",
        "audit",
        "serve",
        "trigger",
        "runs",
        "status",
        "cancel",
        "approve",
        "api-token",
    ] {
        assert!(
            text.contains(&format!("  {command} ")),
            "{command} missing from:\n{text}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(patchday(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        patchday(&["plan", "runbooks/monthly.yaml", "--cycle", "2026-13"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        patchday(&["--now", "yesterday", "schema"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchday"))
        .arg("schema")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, as `| head` does
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
