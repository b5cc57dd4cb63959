//! Helpers for tests that drive `patchday serve` as a separate process: start it and read the
//! line that says where it serves, speak raw HTTP/1.1 to it, read its audit log, and wait for
//! a condition (polling, bounded) instead of sleeping and hoping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{patchday, stderr, stdout};

/// A `patchday serve` process; killed (SIGKILL) and reaped on drop.
pub struct Daemon {
    pub child: Child,
    /// Its standard output, line by line.
    pub lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Spawns `cmd` (a `patchday serve ...` command) with its stdout read line by line.
    /// Stderr is as `cmd` sets it.
    pub fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("patchday serve starts");
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon { child, lines }
    }

    /// Waits for the `patchday serving http://ADDR ...` line; returns (the line, ADDR).
    pub fn serving(&self) -> (String, String) {
        let serving = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon prints where it serves");
        assert!(serving.starts_with("patchday serving http://"), "{serving}");
        let addr = serving
            .trim_start_matches("patchday serving http://")
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        (serving, addr)
    }

    /// Sends SIGTERM and waits (bounded) for the process to end; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = poll("the daemon to stop", Duration::from_secs(60), || {
            self.child.try_wait().unwrap()
        });
        status.code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub fn poll<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
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

/// One raw HTTP/1.1 request: (status, head, body). A POST body is a form unless a
/// `Content-Type` header is given.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            text.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_string(), body.to_string())
}

/// The value of the form field `name` on a confirmation page.
pub fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

/// The audit events as exported (JSON Lines), read while the daemon runs.
pub fn audit_events(database: &str) -> Vec<serde_json::Value> {
    let out = patchday()
        .args(["audit", "export", "--database", database])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How many events have `action`.
pub fn count(events: &[serde_json::Value], action: &str) -> usize {
    events.iter().filter(|e| e["action"] == action).count()
}
