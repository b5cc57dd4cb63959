//! Bench: load + validate + plan a generated 10,000-step runbook, and every hostile input of
//! the bad-input corpus, each in a fresh child process so its peak RSS is its own.
//! Run: `cargo bench -p patchday --bench validate`. Targets (issue 2): the 10,000-step runbook
//! in under 200 ms and 100 MB peak RSS; each hostile input rejected in under 100 ms and 64 MB.

mod common;

use common::peak_rss_mb;
use std::path::{Path, PathBuf};
use std::time::Instant;

use patchday::plan::{PlanFor, plan};
use patchday::sources::check_files;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[pos + 1]));
        return;
    }
    let dir = std::env::temp_dir().join(format!("patchday-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = [
        (
            "10,000-step runbook",
            write(&dir, "big.yaml", generated_runbook(10_000).as_bytes()),
        ),
        ("alias bomb", corpus("alias-bomb.yaml")),
        (
            "10,000-deep nesting",
            write(
                &dir,
                "deep.yaml",
                format!(
                    "name: x\nsteps: {}{}\n",
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                )
                .as_bytes(),
            ),
        ),
        (
            "50 MB file",
            write(&dir, "big-file.yaml", &fifty_megabytes()),
        ),
        ("binary garbage", write(&dir, "garbage.yaml", &garbage())),
        ("empty file", corpus("empty-file.yaml")),
    ];
    println!(
        "{:<22} {:>10} {:>14} {:>8}",
        "input", "time (ms)", "peak RSS (MB)", "valid"
    );
    for (name, path) in inputs {
        let out = std::process::Command::new(&args[0])
            .arg("--child")
            .arg(&path)
            .output()
            .unwrap();
        print!("{name:<22} {}", String::from_utf8_lossy(&out.stdout));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// In the child: check one file (and plan it when valid), then print time and peak RSS.
fn child(path: &Path) {
    let start = Instant::now();
    let checked = check_files(&[path.to_path_buf()]);
    let mut planned_steps = 0;
    for (_, runbook) in &checked.runbooks {
        if let Some(runbook) = runbook {
            planned_steps += plan(runbook, PlanFor::default()).steps.len();
        }
    }
    let elapsed = start.elapsed();
    std::hint::black_box(planned_steps);
    println!(
        "{:>10.1} {:>14.1} {:>8}",
        elapsed.as_secs_f64() * 1e3,
        peak_rss_mb(),
        checked.is_valid()
    );
}

/// `n` noop steps in chains of 10, each chain needing the previous chain's last step and a
/// step of the chain before it (waves and chains).
fn generated_runbook(n: usize) -> String {
    let mut text = String::from("name: generated\ntimezone: Europe/Berlin\nsteps:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  s{i}:\n    uses: noop\n    with: {{ message: \"step {i} of {{{{cycle}}}}\" }}\n"
        ));
        let mut needs = Vec::new();
        if i % 10 != 0 {
            needs.push(format!("s{}", i - 1));
        }
        if i >= 10 {
            needs.push(format!("s{}", i - 10));
        }
        if !needs.is_empty() {
            text.push_str(&format!("    needs: [{}]\n", needs.join(", ")));
        }
    }
    text
}

fn fifty_megabytes() -> Vec<u8> {
    let mut big = b"name: big\nsteps:\n".to_vec();
    while big.len() < 50 * 1024 * 1024 {
        big.extend_from_slice(
            b"  # padding padding padding padding padding padding padding padding\n",
        );
    }
    big
}

fn garbage() -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus/invalid")
        .join(name)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}
