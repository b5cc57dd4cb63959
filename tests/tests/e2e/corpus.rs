//! The bad-input corpus: every file in `tests/corpus/invalid/` must be rejected with exactly
//! the messages in its `.expected` file (rendered as a user sees them). Hostile inputs that are
//! too big to commit are generated here. Set `PATCHDAY_BLESS=1` to rewrite the expectations,
//! then read the diff.

use std::path::{Path, PathBuf};

use patchday_tests::{patchday, repo_root, run, stderr};

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/corpus/invalid")
}

fn cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.push(corpus_dir().join("duplicate-names"));
    files.sort();
    files
}

/// What a user sees for one case: the diagnostics on stderr, paths relative to the repo.
fn rendered(case: &Path) -> (Option<i32>, String) {
    let relative = case
        .strip_prefix(repo_root())
        .unwrap()
        .display()
        .to_string();
    let out = run(&["validate", &relative]);
    (out.status.code(), stderr(&out))
}

#[test]
fn every_invalid_runbook_gets_its_expected_messages() {
    let bless = std::env::var_os("PATCHDAY_BLESS").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the corpus holds {} cases; keep at least 40",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let (code, text) = rendered(case);
        assert_eq!(
            code,
            Some(1),
            "{}: exit code {code:?}, want 1\n{text}",
            case.display()
        );
        assert!(
            !text.contains("panicked"),
            "{}: panicked\n{text}",
            case.display()
        );
        let expected_file = case.with_extension("expected");
        if bless {
            std::fs::write(&expected_file, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if expected != text {
            failures.push(format!(
                "--- {}\nwant:\n{expected}\ngot:\n{text}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ (PATCHDAY_BLESS=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_case_reports_a_line_and_column() {
    for case in cases() {
        let (_, text) = rendered(&case);
        let located = text
            .lines()
            .any(|l| (l.contains(".yaml:") || l.contains(".ini:")) && l.contains(": error: "));
        assert!(
            located,
            "{}: no file:line:col error in\n{text}",
            case.display()
        );
    }
}

/// Writes `bytes` to a temporary runbook and validates it.
fn validate_bytes(bytes: &[u8]) -> (Option<i32>, String) {
    let dir = tempdir();
    let file = dir.join("hostile.yaml");
    std::fs::write(&file, bytes).unwrap();
    let out = patchday()
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (out.status.code(), stderr(&out))
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "patchday-corpus-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn deep_nesting_is_refused_cleanly() {
    let deep = format!(
        "name: x\nsteps: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (code, text) = validate_bytes(deep.as_bytes());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("hostile.yaml:") && text.contains("nests deeper than 32 levels"),
        "{text}"
    );
}

#[test]
fn a_50_mb_file_is_refused_before_it_is_read() {
    let mut big = b"name: big\nsteps:\n".to_vec();
    while big.len() < 50 * 1024 * 1024 {
        big.extend_from_slice(
            b"  # padding padding padding padding padding padding padding padding\n",
        );
    }
    let (code, text) = validate_bytes(&big);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("limit is 4194304 bytes"), "{text}");
}

#[test]
fn binary_garbage_is_refused_cleanly() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (code, text) = validate_bytes(&garbage);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("not UTF-8") && !text.contains("panicked"),
        "{text}"
    );
}
