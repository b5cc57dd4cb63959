//! Helpers for the tests that run `patchday serve` as a separate process: start it and learn
//! where it serves, stop it with SIGTERM, speak raw HTTP/1.1 to it, read its outbox (the
//! `.eml` files it writes without `[smtp]`) and its audit log (`patchday audit export`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{patchday, stderr, stdout};

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`; panics naming `what`
/// when the time is up.
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

/// A running `patchday serve`, killed on drop.
pub struct Daemon {
    pub child: Child,
    /// Its standard output, line by line, after the first line.
    pub lines: mpsc::Receiver<String>,
    /// The first line it printed: `patchday serving http://ADDR (…)`.
    pub serving: String,
    /// Where it serves, `127.0.0.1:PORT`.
    pub addr: String,
    /// The one-time sign-in URL it printed for the local operator (its second line).
    pub sign_in_url: String,
    /// The session cookie of [`Daemon::cookie`], once signed in.
    cookie: std::sync::OnceLock<String>,
}

impl Daemon {
    /// Spawns `command` (a `patchday serve …`) with its standard output piped and waits for the
    /// line that says where it serves.
    pub fn start(mut command: Command) -> Daemon {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("patchday serve starts");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let serving = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon prints where it serves");
        let addr = serving
            .trim_start_matches("patchday serving http://")
            .trim_start_matches("patchday serving https://")
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        let sign_in_url = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the daemon prints a sign-in URL")
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string();
        Daemon {
            child,
            lines,
            serving,
            addr,
            sign_in_url,
            cookie: std::sync::OnceLock::new(),
        }
    }

    /// The `Cookie` header value of a session of the local operator, signed in with the URL the
    /// daemon printed the first time it is asked for (the URL works once).
    pub fn cookie(&self) -> &str {
        self.cookie
            .get_or_init(|| sign_in(&self.addr, &self.sign_in_url))
    }

    /// A page as the signed-in local operator sees it: (status, body).
    pub fn page(&self, path: &str) -> (u16, String) {
        let (status, _, body) = request(&self.addr, "GET", path, &[("Cookie", self.cookie())], "");
        (status, body)
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits (30 s at most) for the daemon to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        poll("the daemon to stop", Duration::from_secs(30), || {
            self.child.try_wait().unwrap()
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `patchday serve` run in `dir` on a free loopback port, with `database`, the runbooks in
/// `dir/runbooks`, emails to the `outbox` folder, and a virtual clock starting at
/// 2026-12-08 09:59 UTC: one minute before December 2026's Patch Tuesday 10:00.
pub fn serve_command(dir: &Path, database: &str, outbox: &Path) -> Command {
    let mut cmd = serve_command_frozen(dir, database, outbox);
    cmd.arg("--virtual-clock");
    cmd
}

/// [`serve_command`] with the clock frozen at 2026-12-08 09:59 UTC (`--now` alone): nothing
/// scheduled fires and nothing expires while a test looks at the pages.
pub fn serve_command_frozen(dir: &Path, database: &str, outbox: &Path) -> Command {
    let mut cmd = patchday();
    cmd.current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--outbox", &outbox.display().to_string()])
        .args(["--now", "2026-12-08T09:59:00Z"]);
    cmd
}

/// Signs in through a sign-in link (`http://ADDR/signin/TOKEN`) as a browser would: its page,
/// then the form's `POST`. Returns the `Cookie` header value of the new session.
pub fn sign_in(addr: &str, url: &str) -> String {
    let path = &url[url.find("/signin/").expect("a sign-in URL")..];
    let (status, _, page) = request(addr, "GET", path, &[], "");
    assert_eq!(status, 200, "{page}");
    let csrf = hidden_field(&page, "csrf");
    let (status, head, body) = request(addr, "POST", path, &[], &format!("csrf={csrf}"));
    assert_eq!(status, 303, "{head}\n{body}");
    session_cookie(&head).expect("the sign-in sets the session cookie")
}

/// Signs `email` in through the emailed sign-in link: the `Cookie` value of the session.
pub fn sign_in_as(daemon: &Daemon, outbox: &Path, email: &str) -> String {
    let (status, _, body) = request(
        &daemon.addr,
        "POST",
        "/signin",
        &[],
        &format!("email={email}"),
    );
    assert_eq!(status, 200, "{body}");
    let to = format!("To: {email}\r\n");
    let text = poll("the sign-in email", Duration::from_secs(60), || {
        emails_with(outbox, "Subject: [patchday] Your sign-in link\r\n")
            .into_iter()
            .find(|t| t.contains(&to))
    });
    let at = text.find("/signin/").unwrap();
    let end = at + text[at..].find(char::is_whitespace).unwrap();
    sign_in(
        &daemon.addr,
        &format!("http://{}{}", daemon.addr, &text[at..end]),
    )
}

/// `patchday_session=VALUE` from a response's `Set-Cookie` header, if it sets one.
pub fn session_cookie(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.trim().split(';').next().unwrap_or("").to_string())
        .find(|c| c.starts_with("patchday_session=") && c.len() > "patchday_session=".len())
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

/// One raw HTTP/1.1 request (a `POST` body is sent as a form): (status, head, body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    request_from(None, addr, method, path, headers, body)
}

/// [`request`] from the loopback address `source` (`127.0.0.2`, ...): another client as far as
/// the daemon's per-source rate limit goes.
pub fn request_from(
    source: Option<&str>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let stream = match source {
        None => TcpStream::connect(addr).expect("connect"),
        Some(source) => {
            use socket2::{Domain, Socket, Type};
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            let local: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
            socket.bind(&local.into()).expect("bind a loopback source");
            let remote: std::net::SocketAddr = addr.parse().unwrap();
            socket.connect(&remote.into()).expect("connect");
            socket.into()
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        text.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    exchange(stream, &text)
}

/// Sends a whole request, reads the whole answer: (status, head, body).
fn exchange(mut stream: TcpStream, request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).unwrap();
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

/// One HTTP/1.1 request with a JSON body and a bearer token (the JSON API): (status, head,
/// body).
pub fn request_json(
    addr: &str,
    method: &str,
    path: &str,
    authorization: &str,
    body: &serde_json::Value,
) -> (u16, String, String) {
    let body = body.to_string();
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(stream, &text)
}

/// Whether `/metrics` shows `series` (e.g. `patchday_runs{state="running"}`) with `value`.
pub fn metric_is(addr: &str, series: &str, value: u64) -> bool {
    get(addr, "/metrics")
        .map(|(_, text)| text.lines().any(|l| l == format!("{series} {value}")))
        .unwrap_or(false)
}

/// The value `/metrics` shows for `series` (`patchday_leader`, `patchday_runs{state="running"}`);
/// `None` when the daemon does not answer or does not show it.
pub fn metric(addr: &str, series: &str) -> Option<f64> {
    let (_, text) = get(addr, "/metrics").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The `.eml` files in `outbox`, sorted.
pub fn eml_files(outbox: &Path) -> Vec<PathBuf> {
    files_ending(outbox, "eml")
}

/// The files in `dir` with extension `ext`, sorted by name (none if `dir` is missing).
fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The texts of the emails in `outbox` whose header has `subject_line` (`Subject: …\r\n`).
pub fn emails_with(outbox: &Path, subject_line: &str) -> Vec<String> {
    eml_files(outbox)
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter(|t| t.contains(subject_line))
        .collect()
}

/// The token of the first `/links/{token}` URL in an email.
pub fn link_token(email: &str) -> String {
    let start = email.find("/links/").expect("a link") + "/links/".len();
    let end = start + email[start..].find(char::is_whitespace).unwrap();
    email[start..end].to_string()
}

/// The first `http://…/links/{token}` URL in an email, whole.
pub fn link_url(email: &str) -> String {
    let token = link_token(email);
    let end = email.find(&token).expect("the token") + token.len();
    let start = email[..end].rfind("http").expect("an absolute link");
    email[start..end].to_string()
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

/// How long a run or a step's command may take to start under a loaded test machine.
const STARTS_WITHIN: Duration = Duration::from_secs(60);

/// The id of the run of `runbook` (from its `run.started` event), once it has started.
pub fn run_of(database: &str, runbook: &str) -> String {
    poll(&format!("the run of {runbook}"), STARTS_WITHIN, || {
        audit_events(database)
            .iter()
            .filter(|e| e["action"] == "run.started")
            .filter_map(|e| e["run_id"].as_str())
            .find(|id| id.starts_with(&format!("{runbook}-")))
            .map(str::to_string)
    })
}

/// Kills `daemon` with SIGKILL while a step's command runs, as a crash of the machine would:
/// waits for the command to write its pid to `dir/pid` (the test runbooks' held command), kills
/// the daemon, then the command, and removes `dir/hold` so the command, run again, ends at once.
pub fn kill_during_command(daemon: &mut Daemon, dir: &Path) {
    let pid = poll("the command to start", STARTS_WITHIN, || {
        std::fs::read_to_string(dir.join("pid"))
            .ok()
            .filter(|p| p.ends_with('\n'))
    });
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::fs::remove_file(dir.join("hold")).unwrap();
}

/// How many `events` have `action`.
pub fn count(events: &[serde_json::Value], action: &str) -> usize {
    events.iter().filter(|e| e["action"] == action).count()
}

/// `events` without the mailer's own (`email.*`), which may land at any time.
pub fn without_mail(events: &[serde_json::Value]) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| !e["action"].as_str().unwrap_or("").starts_with("email."))
        .cloned()
        .collect()
}

/// The `.json` files in `dir` (what the test SMTP servers write per accepted message), oldest
/// first by name: each path and its parsed content.
pub fn json_messages(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    files_ending(dir, "json")
        .into_iter()
        .map(|p| {
            let value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, value)
        })
        .collect()
}
