//! Helpers for the end-to-end tests: find the built `patchday` binary and run it; start and talk
//! to `patchday serve` ([`daemon`]); drive a headless Chromium ([`browser`]); give a test its own
//! PostgreSQL schema ([`postgres`]); run a test SMTP server that can refuse and be down
//! ([`smtp`]); tamper with a database behind its back ([`sql`]).

pub mod browser;
pub mod daemon;
pub mod oidc;
pub mod postgres;
pub mod smtp;
pub mod sql;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the workspace folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `patchday` binary cargo built next to this test binary.
pub fn patchday_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(format!("patchday{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests for the whole workspace (`cargo nextest run --workspace`), which builds it",
        bin.display()
    );
    bin
}

/// `target/test-artifacts`, created: where tests leave files for people to look at
/// (screenshots, rendered pages). Found from this test binary's path, like [`patchday_bin`].
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifacts folder can be made");
    dir
}

/// A `patchday` command run from the repository root.
pub fn patchday() -> Command {
    let mut cmd = Command::new(patchday_bin());
    cmd.current_dir(repo_root());
    cmd
}

/// Runs `patchday` with `args` from the repository root.
pub fn run(args: &[&str]) -> Output {
    patchday().args(args).output().expect("patchday runs")
}

/// Asserts that a command exited with `code`, showing its output when it did not.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `patchday audit verify` on `database` and asserts the chain and the database are sound;
/// returns what it printed.
pub fn assert_audit_verifies(database: &str) -> String {
    let out = run(&["audit", "verify", "--database", database]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit verify failed:\n{text}{}",
        stderr(&out)
    );
    assert!(text.contains("integrity ok"), "{text}");
    text
}

/// A fresh, empty folder `<temp>/patchday-<name>-<pid>` for one test (what a previous run of
/// the same test left there is removed first).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("patchday-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temporary folder is writable");
    dir
}

/// A pseudo-random delay for the soaks (xorshift, fixed seed: failures reproduce).
pub struct Dice(pub u64);

impl Dice {
    /// A number of milliseconds in `low..high`.
    pub fn millis(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// An inventory of `hosts` (all at 127.0.0.1) in one group, `all`.
pub fn inventory(hosts: &[String]) -> String {
    let records: String = hosts
        .iter()
        .map(|h| format!("  {h}: {{ address: 127.0.0.1 }}\n"))
        .collect();
    format!("hosts:\n{records}groups:\n  all: [{}]\n", hosts.join(", "))
}

/// A new API token named `name` (`patchday api-token`) and the tokens file `<dir>/api-tokens`
/// holding its hash, for `[security] api_tokens_file`.
pub fn api_token(dir: &Path, name: &str) -> (String, PathBuf) {
    let out = run(&["api-token", name, "--format", "json"]);
    let minted: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let file = dir.join("api-tokens");
    std::fs::write(&file, format!("{}\n", minted["line"].as_str().unwrap())).unwrap();
    (minted["token"].as_str().unwrap().to_string(), file)
}
