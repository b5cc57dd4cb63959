//! `patchday serve` as a separate process: a virtual clock positioned just before a cycle's
//! fire, a scheduled runbook in a temporary runbooks folder, no SMTP (emails land in the
//! outbox folder). The daemon says where it serves; `/healthz`, `/`, `/runs/{id}` and
//! `/metrics` answer; the cycle fires and its run finishes; the finished notification is in
//! the outbox with the right recipients and subject; SIGTERM ends the daemon with exit 0; the
//! audit chain verifies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use patchday_tests::{patchday, stderr, stdout};

const RUNBOOK: &str = r#"name: daemon-demo
description: A tiny scheduled runbook for the daemon test
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  committee: [committee@example.com, cab@example.com]
notify: { on: [finished], to: [committee] }
steps:
  hello:
    uses: noop
    with: { message: "cycle {{cycle}}" }
  say:
    needs: [hello]
    uses: command
    with: { run: "echo patched {{cycle}}" }
"#;

/// A minimal HTTP/1.1 GET: (status, body).
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
fn poll<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eml_files(outbox: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outbox)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn the_daemon_fires_a_cycle_serves_its_pages_and_mails_the_outcome() {
    let dir = std::env::temp_dir().join(format!("patchday-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/daemon-demo.yaml"), RUNBOOK).unwrap();
    // A broken runbook next to it is reported and skipped; it stops nothing.
    std::fs::write(dir.join("runbooks/broken.yaml"), "name: broken\nsteps: 3\n").unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");

    // Patch Tuesday of December 2026 is the 8th: the cycle fires at 10:00 UTC.
    let mut child = patchday()
        .current_dir(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--outbox", &outbox.display().to_string()])
        .args(["--now", "2026-12-08T09:59:00Z", "--virtual-clock"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("patchday serve starts");
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(err).read_to_string(&mut text);
        text
    });
    let mut daemon = Daemon { child, lines };

    let serving = daemon
        .lines
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon prints where it serves");
    assert!(
        serving.starts_with("patchday serving http://127.0.0.1:"),
        "{serving}"
    );
    assert!(
        serving.contains("SQLite") && serving.contains("no [smtp] configured"),
        "{serving}"
    );
    assert!(
        serving.contains("1 runbook loaded, 1 rejected"),
        "{serving}"
    );
    let addr = serving
        .trim_start_matches("patchday serving http://")
        .split(' ')
        .next()
        .unwrap()
        .to_string();

    poll("/healthz", Duration::from_secs(10), || {
        get(&addr, "/healthz")
            .ok()
            .filter(|(s, b)| *s == 200 && b == "ok\n")
    });

    let (status, index) = get(&addr, "/").unwrap();
    assert_eq!(status, 200);
    assert!(index.contains("daemon-demo"), "{index}");
    // January 2027's Patch Tuesday is the 12th: among the next cycles whatever the clock says.
    assert!(index.contains("2027-01 — 2027-01-12 10:00 UTC"), "{index}");

    let metrics = poll("the run to succeed", Duration::from_secs(30), || {
        let (_, text) = get(&addr, "/metrics").ok()?;
        text.contains("patchday_runs{state=\"succeeded\"} 1")
            .then_some(text)
    });
    assert!(
        metrics.contains("patchday_runs{state=\"running\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("patchday_step_rows{state=\"succeeded\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("patchday_runbooks{status=\"rejected\"} 1"),
        "{metrics}"
    );

    let (_, index) = get(&addr, "/").unwrap();
    let start = index.find("href=\"/runs/").expect("the run is listed") + "href=\"".len();
    let path = &index[start..start + index[start..].find('"').unwrap()];
    assert!(path.starts_with("/runs/daemon-demo-"), "{path}");
    let (status, page) = get(&addr, path).unwrap();
    assert_eq!(status, 200);
    for expected in [
        "2026-12",
        "succeeded",
        "hello",
        "say",
        "run.started",
        "scheduler",
    ] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
    assert_eq!(get(&addr, "/runs/nope").unwrap().0, 404);

    let files = poll("the finished email", Duration::from_secs(30), || {
        Some(eml_files(&outbox)).filter(|f| !f.is_empty())
    });
    assert_eq!(files.len(), 1, "{files:?}");
    let email = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        email.contains("To: committee@example.com, cab@example.com\r\n"),
        "{email}"
    );
    assert!(
        email.contains("Subject: [patchday] daemon-demo 2026-12: run succeeded\r\n"),
        "{email}"
    );
    poll("the outbox to drain", Duration::from_secs(10), || {
        let (_, text) = get(&addr, "/metrics").ok()?;
        text.contains("patchday_outbox_depth 0").then_some(())
    });

    let pid = daemon.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = log.join().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("broken.yaml rejected"), "{log}");

    let verify = patchday()
        .args(["audit", "verify", "--database", &database])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_errors_exit_2_and_say_where_the_bad_value_came_from() {
    let dir = std::env::temp_dir().join(format!("patchday-daemon-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("patchday.toml");
    std::fs::write(&config, "[server]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = patchday()
        .args(["serve", "--config", &config.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.contains("patchday.toml") && text.contains("lisen") && text.contains("line 2"),
        "{text}"
    );

    let out = patchday()
        .args(["serve", "--runbooks", "runbooks"])
        .env("PATCHDAY_SERVER_LISTEN", "localhost")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("environment variable PATCHDAY_SERVER_LISTEN: `localhost`"),
        "{}",
        stderr(&out)
    );

    let missing = dir.join("no-runbooks-here");
    let out = patchday()
        .args(["serve", "--runbooks", &missing.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no such folder"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
