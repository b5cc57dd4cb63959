//! The project's own tasks (rust-analyzer's xtask convention), the two commands at the top of
//! the README:
//!
//! - `cargo xtask demo`: from a fresh clone to a monthly cycle under way against local test
//!   hosts: installs the system packages the hosts need, builds the release binary, starts
//!   `demo/local-hosts.sh`, then becomes `patchday serve` on a virtual clock a minute before
//!   the next cycle of `runbooks/demo/monthly-local.yaml`. `cargo xtask demo stop` ends the hosts.
//! - `cargo xtask test`: installs what the tests need (every `.ci/deps-*.sh`, cargo-nextest) and
//!   runs the whole suite. `.ci/run` calls it.
//!
//! Root is needed only to install system packages: as root the scripts run directly; otherwise
//! through `sudo` when it exists; without either the task stops and says what to run as root.
//! Standard library only, so it builds in seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage:
  cargo xtask demo [--state DIR] [--bin PATH] [--listen ADDR] [--skip-deps]
      start the local test hosts and the daemon with a monthly cycle under way
  cargo xtask demo stop [--state DIR]
      stop the local test hosts
  cargo xtask test [--skip-deps] [-- ARGS FOR cargo nextest run]
      install what the tests need and run them all";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") if args.get(1).map(String::as_str) == Some("stop") => {
            DemoOptions::parse(&args[2..]).and_then(|o| demo_stop(&o))
        }
        Some("demo") => DemoOptions::parse(&args[1..]).and_then(|o| demo(&o)),
        Some("test") => test(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown task\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::from(2)
        }
    }
}

/// The repository root (the parent of this crate's folder).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ lies in the repository")
        .to_path_buf()
}

/// Runs `command`, failing with what it was when it does not succeed.
fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs a set-up script as root: directly when we are root, else through `sudo`.
fn as_root(script: &Path) -> Result<(), String> {
    let mut command = if is_root() {
        Command::new("bash")
    } else if has("sudo") {
        let mut sudo = Command::new("sudo");
        sudo.args(["--preserve-env=PATCHDAY_TEST_POSTGRES", "bash"]);
        sudo
    } else {
        return Err(format!(
            "{} installs system packages and needs root; there is no sudo here: run it as root \
             (`bash {}`), then again with --skip-deps",
            script.display(),
            script.display()
        ));
    };
    println!("xtask: {}", script.display());
    run(command.arg(script))
}

/// The `.ci/deps-*.sh` scripts, sorted (each installs what one group of tests needs).
fn deps_scripts() -> Result<Vec<PathBuf>, String> {
    let dir = repo().join(".ci");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("deps-") && name.ends_with(".sh")
        })
        .collect();
    scripts.sort();
    Ok(scripts)
}

fn test(args: &[String]) -> Result<(), String> {
    let skip_deps = args.first().map(String::as_str) == Some("--skip-deps");
    let rest = args.iter().skip(usize::from(skip_deps));
    let nextest_args: Vec<&String> = match rest.clone().next().map(String::as_str) {
        Some("--") => rest.skip(1).collect(),
        Some(other) => return Err(format!("unknown option {other}\n{USAGE}")),
        None => Vec::new(),
    };
    if !skip_deps {
        for script in deps_scripts()? {
            as_root(&script)?;
        }
    }
    if !nextest_installed() {
        println!("xtask: installing cargo-nextest (once; a few minutes)");
        run(Command::new("cargo").args(["install", "cargo-nextest", "--locked"]))?;
    }
    run(Command::new("cargo")
        .current_dir(repo())
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .args(nextest_args))
}

fn nextest_installed() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `cargo xtask demo` options.
struct DemoOptions {
    state: PathBuf,
    bin: Option<PathBuf>,
    listen: Option<String>,
    skip_deps: bool,
}

impl DemoOptions {
    fn parse(args: &[String]) -> Result<DemoOptions, String> {
        let mut options = DemoOptions {
            state: repo().join("demo-state"),
            bin: None,
            listen: None,
            skip_deps: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            match arg.as_str() {
                "--state" => options.state = PathBuf::from(value()?),
                "--bin" => options.bin = Some(PathBuf::from(value()?)),
                "--listen" => options.listen = Some(value()?),
                "--skip-deps" => options.skip_deps = true,
                other => return Err(format!("unknown option {other}\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

const DEMO_RUNBOOK: &str = "runbooks/demo/monthly-local.yaml";

fn demo(options: &DemoOptions) -> Result<(), String> {
    let repo = repo();
    if !options.skip_deps {
        as_root(&repo.join(".ci/deps-connectors.sh"))?;
    }
    let bin = match &options.bin {
        Some(bin) => bin.clone(),
        None => {
            println!("xtask: cargo build --release (the first build takes a few minutes)");
            run(Command::new("cargo").current_dir(&repo).args([
                "build",
                "--release",
                "--package",
                "patchday",
            ]))?;
            repo.join("target/release/patchday")
        }
    };
    run(Command::new(repo.join("demo/local-hosts.sh"))
        .current_dir(&repo)
        .args(["start", "--state"])
        .arg(&options.state))?;
    let fires_at = next_fire(&bin)?;
    let start = minute_before(&fires_at)?;
    let state = &options.state;
    println!(
        "\nxtask: the monthly cycle of {DEMO_RUNBOOK} fires at {fires_at}; the daemon starts a \
         minute before it on a virtual clock, which then jumps from step to step.\n\
         - emails land in {mail}/ (each as .eml, .txt and .json): the committee email, then one \
         approval email per CAB member;\n\
         - approve by opening the link of an approval email ({mail}/*cab-approval.txt), and \
         watch the patch night run on the dashboard;\n\
         - Ctrl-C stops the daemon; `cargo xtask demo stop` then stops the test hosts.\n",
        mail = state.join("mail").display(),
    );
    let mut serve = Command::new(&bin);
    serve
        .current_dir(&repo)
        .arg("serve")
        .arg("--config")
        .arg(state.join("patchday.toml"))
        .args(["--now", &start, "--virtual-clock"]);
    if let Some(listen) = &options.listen {
        serve.args(["--listen", listen]);
    }
    for (name, value) in demo_env(&state.join("env"))? {
        serve.env(name, value);
    }
    become_process(serve)
}

/// The next fire of the demo runbook, from `patchday calendar --format json`.
fn next_fire(bin: &Path) -> Result<String, String> {
    let out = Command::new(bin)
        .current_dir(repo())
        .args(["calendar", DEMO_RUNBOOK, "--count", "1", "--format", "json"])
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `"fires_at": "2027-01-05T09:00:00+00:00"`: the first one is the next cycle's.
    let at = text
        .split("\"fires_at\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .ok_or_else(|| format!("no next cycle in `patchday calendar`'s answer: {text}"))?;
    Ok(at.to_string())
}

/// `2027-01-05T09:00:00+00:00` → `2027-01-05T08:59:00+00:00` (the demo runbook is in UTC and
/// fires at a whole hour, so only the hour and minute change, and never across a day: 09:00).
fn minute_before(at: &str) -> Result<String, String> {
    let bad = || format!("unexpected fire time {at}");
    let (date, time) = at.split_once('T').ok_or_else(bad)?;
    let hour: u32 = time
        .get(0..2)
        .and_then(|h| h.parse().ok())
        .ok_or_else(bad)?;
    let minute: u32 = time
        .get(3..5)
        .and_then(|m| m.parse().ok())
        .ok_or_else(bad)?;
    let total = (hour * 60 + minute).checked_sub(1).ok_or_else(bad)?;
    Ok(format!("{date}T{:02}:{:02}:00Z", total / 60, total % 60))
}

/// The `export NAME='value'` lines of the demo's env file.
fn demo_env(file: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('\'').to_string()))
        .collect())
}

/// Replaces this process with `command` (so Ctrl-C and signals reach the daemon directly).
#[cfg(unix)]
fn become_process(mut command: Command) -> Result<(), String> {
    use std::os::unix::process::CommandExt as _;
    let error = command.exec();
    Err(format!("cannot start {command:?}: {error}"))
}

#[cfg(not(unix))]
fn become_process(mut command: Command) -> Result<(), String> {
    run(&mut command)
}

fn demo_stop(options: &DemoOptions) -> Result<(), String> {
    run(Command::new(repo().join("demo/local-hosts.sh"))
        .args(["stop", "--state"])
        .arg(&options.state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_starts_a_minute_before_the_fire() {
        assert_eq!(
            minute_before("2027-01-05T09:00:00+00:00").unwrap(),
            "2027-01-05T08:59:00Z"
        );
        assert!(minute_before("2027-01-05T00:00:00+00:00").is_err());
    }

    #[test]
    fn the_env_file_gives_its_exports() {
        let dir = std::env::temp_dir().join(format!("xtask-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("env");
        std::fs::write(&file, "# comment\nexport A='x y'\nexport B='z'\n").unwrap();
        assert_eq!(
            demo_env(&file).unwrap(),
            [("A".into(), "x y".into()), ("B".into(), "z".into())]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
