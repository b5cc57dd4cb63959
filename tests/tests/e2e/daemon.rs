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

use patchday::daemon::http::links::limit::PER_SOURCE;
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

    patchday_tests::assert_audit_verifies(&database);
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

const APPROVAL_RUNBOOK: &str = r#"name: links-demo
description: An approval between two steps, decided through the emailed links
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  cab: [alice@example.com, bob@example.com]
steps:
  prepare:
    uses: noop
    with: { message: "prepare {{cycle}}" }
  cab-approval:
    needs: [prepare]
    uses: approval
    with:
      approvers: [cab]
      quorum: 1
      message: "May we patch cycle {{cycle}} tonight?"
  patch:
    needs: [cab-approval]
    uses: command
    with: { run: "echo patched {{cycle}}" }
"#;

/// One raw HTTP/1.1 request: (status, head, body).
fn request(
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
fn request_from(
    source: Option<&str>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = match source {
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
fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

/// The audit events as exported (JSON Lines), read while the daemon runs.
fn audit_events(database: &str) -> Vec<serde_json::Value> {
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

fn count(events: &[serde_json::Value], action: &str) -> usize {
    events.iter().filter(|e| e["action"] == action).count()
}

/// Starts `patchday serve` in `dir` with the link secret in `secret`; returns it and its address.
fn serve(dir: &Path, database: &str, outbox: &Path, secret: &Path) -> (Daemon, String) {
    let mut child = patchday()
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--outbox", &outbox.display().to_string()])
        .args(["--now", "2026-12-08T09:59:00Z", "--virtual-clock"])
        .env("PATCHDAY_SECURITY_LINK_SECRET_FILE", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("patchday serve starts");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let daemon = Daemon { child, lines };
    let serving = daemon
        .lines
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon prints where it serves");
    let addr = serving
        .trim_start_matches("patchday serving http://")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    (daemon, addr)
}

#[test]
fn approval_links_decide_once_and_every_bad_link_is_refused_and_audited() {
    use patchday::links::{LinkClaims, LinkSigner};

    let dir = std::env::temp_dir().join(format!("patchday-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/links-demo.yaml"), APPROVAL_RUNBOOK).unwrap();
    let secret = dir.join("link.secret");
    let key = "e2e link secret: 0123456789abcdef0123456789abcdef";
    std::fs::write(&secret, format!("{key}\n")).unwrap();
    let signer = LinkSigner::new(key.as_bytes()).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let (mut daemon, addr) = serve(&dir, &database, &outbox, &secret);

    // The approval email arrives for each approver, each with its own link.
    let subject = "Subject: [patchday] Approve links-demo 2026-12: cab-approval\r\n";
    let emails = poll("the approval emails", Duration::from_secs(30), || {
        let texts: Vec<String> = eml_files(&outbox)
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .filter(|t| t.contains(subject))
            .collect();
        (texts.len() == 2).then_some(texts)
    });
    let link_of = |who: &str| -> String {
        let email = emails
            .iter()
            .find(|t| t.contains(&format!("To: {who}\r\n")))
            .unwrap_or_else(|| panic!("no approval email to {who}: {emails:#?}"));
        assert!(
            email.contains("May we patch cycle 2026-12 tonight?"),
            "{email}"
        );
        let start = email.find("/links/").expect("a link") + "/links/".len();
        let end = start + email[start..].find(char::is_whitespace).unwrap();
        email[start..end].to_string()
    };
    let (alice, bob) = (link_of("alice@example.com"), link_of("bob@example.com"));
    assert_ne!(alice, bob);
    let claims = signer
        .verify(&alice, "2026-12-08T10:00:00Z".parse().unwrap())
        .expect("the emailed token is signed with the configured secret");
    assert_eq!(claims.step, "cab-approval");
    assert_eq!(claims.recipient, "alice@example.com");
    let path = |token: &str| format!("/links/{token}");

    // Mail scanners: GET three times and HEAD twice change nothing.
    let before = audit_events(&database);
    let mut page = String::new();
    for method in ["GET", "HEAD", "GET", "HEAD", "GET"] {
        let (status, head, body) = request(&addr, method, &path(&alice), &[], "");
        assert_eq!(status, 200, "{method}: {head}\n{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("cache-control: no-store"),
            "{head}"
        );
        assert!(head.contains("default-src 'none'"), "{head}");
        if method == "GET" {
            page = body;
        } else {
            assert!(body.is_empty(), "HEAD has no body");
        }
    }
    assert!(
        page.contains("Approve patch cycle 2026-12 of links-demo?"),
        "{page}"
    );
    assert!(page.contains("Nobody has decided yet."), "{page}");
    let artifacts = patchday_tests::patchday_bin()
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("confirmation-page.html"), &page).unwrap();
    let csrf = hidden_field(&page, "csrf");
    let after = audit_events(&database);
    let people = |events: &[serde_json::Value]| -> Vec<serde_json::Value> {
        // Everything but the mailer's own events (`email.sent` may land meanwhile).
        events
            .iter()
            .filter(|e| !e["action"].as_str().unwrap_or("").starts_with("email."))
            .cloned()
            .collect()
    };
    assert_eq!(people(&after), people(&before), "GET/HEAD wrote events");
    assert_eq!(count(&after, "approval.decided"), 0);

    // The attacks, while the step waits: each refused, audited, nothing else changed.
    let rejected = std::cell::Cell::new(count(&after, "link.rejected"));
    let decisions = std::cell::Cell::new(0);
    let attack = |what: &str,
                  method: &str,
                  token: &str,
                  headers: &[(&str, &str)],
                  form: &str,
                  expected: u16| {
        // The mailer's own events (`email.sent`) may land meanwhile; nothing else may.
        let not_mail = |events: &[serde_json::Value]| {
            events
                .iter()
                .filter(|e| !e["action"].as_str().unwrap_or("").starts_with("email."))
                .count()
        };
        let total = not_mail(&audit_events(&database));
        let (status, _, body) = request(&addr, method, &path(token), headers, form);
        assert_eq!(status, expected, "{what}: {body}");
        assert!(body.contains("Nothing was changed."), "{what}: {body}");
        rejected.set(rejected.get() + 1);
        let events = audit_events(&database);
        assert_eq!(
            not_mail(&events),
            total + 1,
            "{what}: only its rejection is recorded"
        );
        assert_eq!(count(&events, "link.rejected"), rejected.get(), "{what}");
        assert_eq!(
            count(&events, "approval.decided"),
            decisions.get(),
            "{what}"
        );
        let last = events.last().unwrap();
        assert_eq!(last["action"], "link.rejected", "{what}");
        assert_eq!(last["details"]["source_ip"], "127.0.0.1", "{what}");
        last["details"]["reason"].as_str().unwrap().to_string()
    };
    let mid = alice.len() / 2;
    let swapped = if &alice[mid..=mid] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &alice[..mid], &alice[mid + 1..]);
    let approve = format!("csrf={csrf}&choice=approve");
    assert_eq!(
        attack("forged", "GET", &forged, &[], "", 403),
        "bad_signature"
    );
    assert_eq!(
        attack("forged POST", "POST", &forged, &[], &approve, 403),
        "bad_signature"
    );
    // A token cut short to a length no base64 text can have is malformed. (Cut elsewhere, what
    // is left may still decode, depending on the token's last bytes, and is then refused as a
    // bad signature: `links.rs` tests every truncation.)
    let keep = (0..=alice.len() - 5).rev().find(|n| n % 4 == 1).unwrap();
    let truncated = &alice[..keep];
    assert_eq!(
        attack("truncated", "GET", truncated, &[], "", 400),
        "malformed"
    );
    let mint = |change: &dyn Fn(&mut LinkClaims)| {
        let mut c = claims.clone();
        change(&mut c);
        signer.sign(&c).unwrap()
    };
    let expired = mint(&|c| c.expires_at = "2026-12-08T09:00:00Z".parse().unwrap());
    assert_eq!(attack("expired", "GET", &expired, &[], "", 410), "expired");
    let other_step = mint(&|c| c.step = "prepare".into());
    assert_eq!(
        attack("other step", "GET", &other_step, &[], "", 404),
        "other_step"
    );
    let stranger = mint(&|c| c.recipient = "mallory@example.com".into());
    assert_eq!(
        attack("other recipient", "GET", &stranger, &[], "", 403),
        "other_recipient"
    );
    let no_csrf = attack("no CSRF", "POST", &alice, &[], "choice=approve", 403);
    assert_eq!(no_csrf, "bad_csrf");
    let (_, _, bob_page) = request(&addr, "GET", &path(&bob), &[], "");
    let bob_form = format!("csrf={}&choice=approve", hidden_field(&bob_page, "csrf"));
    assert_eq!(
        attack("wrong CSRF", "POST", &alice, &[], &bob_form, 403),
        "bad_csrf"
    );
    let evil = [("Origin", "http://evil.example")];
    assert_eq!(
        attack("cross-site", "POST", &alice, &evil, &approve, 403),
        "cross_site"
    );
    let fetch = [("Sec-Fetch-Site", "cross-site")];
    assert_eq!(
        attack("cross-site fetch", "POST", &alice, &fetch, &approve, 403),
        "cross_site"
    );
    let runs = |status: &str| {
        let (_, text, _) = ("", get(&addr, "/metrics").unwrap().1, ());
        text.contains(&format!("patchday_runs{{state=\"{status}\"}} 1"))
    };
    assert!(runs("running"));

    // 100 concurrent POSTs of Alice's link: exactly one decides, the others are refused. They
    // come from 127.0.0.2: past its quota of refusals a source gets 429s (the rate limit has its
    // own test below), and 127.0.0.1 keeps its quota for the attacks after this.
    let origin = format!("http://{addr}");
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (addr, token, form, origin) =
                (addr.clone(), alice.clone(), approve.clone(), origin.clone());
            std::thread::spawn(move || {
                let headers = [
                    ("Origin", origin.as_str()),
                    ("Sec-Fetch-Site", "same-origin"),
                ];
                let path = format!("/links/{token}");
                request_from(Some("127.0.0.2"), &addr, "POST", &path, &headers, &form)
            })
        })
        .collect();
    let answers: Vec<(u16, String, String)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let decided: Vec<&(u16, String, String)> = answers.iter().filter(|a| a.0 == 200).collect();
    assert_eq!(
        decided.len(),
        1,
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(decided[0].2.contains("Approved by you"), "{}", decided[0].2);
    assert!(
        answers.iter().all(|a| matches!(a.0, 200 | 409 | 429)),
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    // The first refusals of the source are answered and audited; the rest are 429s, recorded
    // by one `link.rate_limited` event.
    let conflicts = answers.iter().filter(|a| a.0 == 409).count();
    assert_eq!(conflicts, PER_SOURCE as usize);
    rejected.set(rejected.get() + conflicts);
    decisions.set(1);
    let limited: Vec<serde_json::Value> = audit_events(&database)
        .into_iter()
        .filter(|e| e["action"] == "link.rate_limited")
        .collect();
    assert_eq!(limited.len(), 1, "{limited:#?}");
    assert_eq!(limited[0]["details"]["source"], "127.0.0.2");

    // The run goes on and finishes.
    poll("the run to succeed", Duration::from_secs(30), || {
        runs("succeeded").then_some(())
    });

    // Replayed, and the other approver's link after the step settled.
    assert_eq!(
        attack("replayed", "POST", &alice, &[], &approve, 409),
        "already_used"
    );
    assert_eq!(
        attack("replayed GET", "GET", &alice, &[], "", 409),
        "already_used"
    );
    let (_, bob_after, _) = (0, request(&addr, "GET", &path(&bob), &[], ""), 0);
    assert_eq!(bob_after.0, 409, "{}", bob_after.2);
    rejected.set(rejected.get() + 1);
    assert_eq!(
        attack("other approver", "POST", &bob, &[], &bob_form, 409),
        "not_awaiting_input"
    );

    let events = audit_events(&database);
    assert_eq!(count(&events, "approval.decided"), 1);
    assert_eq!(count(&events, "link.rejected"), rejected.get());
    let decision = events
        .iter()
        .find(|e| e["action"] == "approval.decided")
        .unwrap();
    assert_eq!(decision["actor"], "link:alice@example.com");
    assert_eq!(decision["details"]["source_ip"], "127.0.0.2");
    assert_eq!(decision["details"]["choice"], "approve");

    let pid = daemon.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    poll("the daemon to stop", Duration::from_secs(30), || {
        daemon.child.try_wait().unwrap()
    });
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flood_of_forged_links_is_rate_limited_and_the_audit_log_stays_bounded() {
    let dir = std::env::temp_dir().join(format!("patchday-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/links-demo.yaml"), APPROVAL_RUNBOOK).unwrap();
    let secret = dir.join("link.secret");
    std::fs::write(
        &secret,
        "flood test secret: 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let (mut daemon, addr) = serve(&dir, &database, &outbox, &secret);

    let alice = poll("the approval email", Duration::from_secs(30), || {
        eml_files(&outbox)
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .find(|t| t.contains("To: alice@example.com\r\n"))
    });
    let start = alice.find("/links/").expect("a link");
    let link = alice[start..start + alice[start..].find(char::is_whitespace).unwrap()].to_string();
    assert_eq!(request(&addr, "GET", &link, &[], "").0, 200);

    // 300 forged tokens (GETs and POSTs) from one source: the first PER_SOURCE are refused as
    // usual and audited one by one, the rest are answered 429 with a Retry-After.
    let forged = |i: usize| format!("/links/AQEAAAAA{i:08}forged{}", "x".repeat(60));
    let mut statuses = Vec::new();
    for i in 0..300 {
        let method = if i % 3 == 0 { "POST" } else { "GET" };
        let (status, head, body) = request_from(
            Some("127.0.0.3"),
            &addr,
            method,
            &forged(i),
            &[],
            "choice=approve",
        );
        if status == 429 {
            assert!(
                head.to_ascii_lowercase().contains("\r\nretry-after: "),
                "{head}"
            );
            assert!(body.contains("Too many refused link requests"), "{body}");
            assert!(body.contains("Nothing was changed."), "{body}");
        }
        statuses.push(status);
    }
    let quota = PER_SOURCE as usize;
    assert!(
        statuses[..quota].iter().all(|s| matches!(s, 400 | 403)),
        "{statuses:?}"
    );
    assert!(statuses[quota..].iter().all(|s| *s == 429), "{statuses:?}");

    // A good link still works from the limited source; another source has its own quota.
    let (status, _, page) = request_from(Some("127.0.0.3"), &addr, "GET", &link, &[], "");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("May we patch cycle 2026-12 tonight?"),
        "{page}"
    );
    let other = request_from(Some("127.0.0.4"), &addr, "GET", &forged(0), &[], "");
    assert!(matches!(other.0, 400 | 403), "{}", other.2);

    // The audit log grew by the quota, one `link.rate_limited`, and the other source's refusal.
    let events = audit_events(&database);
    let from = |ip: &str| {
        events
            .iter()
            .filter(|e| e["action"] == "link.rejected" && e["details"]["source_ip"] == ip)
            .count()
    };
    assert_eq!(from("127.0.0.3"), quota);
    assert_eq!(from("127.0.0.4"), 1);
    let limited: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["action"] == "link.rate_limited")
        .collect();
    assert_eq!(limited.len(), 1, "{limited:#?}");
    let details = &limited[0]["details"];
    assert_eq!(details["source"], "127.0.0.3");
    assert_eq!(details["source_ip"], "127.0.0.3");
    assert_eq!(details["limit"], PER_SOURCE);
    assert_eq!(details["window_seconds"], 60);
    assert_eq!(limited[0]["actor"], "link:unknown");
    assert_eq!(count(&events, "approval.decided"), 0);

    let pid = daemon.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    poll("the daemon to stop", Duration::from_secs(30), || {
        daemon.child.try_wait().unwrap()
    });
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}

const API_RUNBOOKS: &[(&str, &str)] = &[
    (
        "api-demo.yaml",
        r#"name: api-demo
description: Triggered through the API with a param
timezone: UTC
params:
  cve: { description: The CVE being patched }
steps:
  hello:
    uses: noop
    with: { message: "patching {{params.cve}}" }
  say:
    needs: [hello]
    uses: command
    with: { run: "echo patched {{params.cve}}" }
"#,
    ),
    (
        "api-long.yaml",
        r#"name: api-long
description: A long command, to cancel
timezone: UTC
steps:
  wait:
    uses: command
    with: { run: "sleep 600" }
"#,
    ),
    (
        "api-approval.yaml",
        r#"name: api-approval
description: An approval settled by an operator through the API
timezone: UTC
roles:
  cab: [alice@example.com]
steps:
  prepare:
    uses: noop
    with: { message: prepare }
  cab-approval:
    needs: [prepare]
    uses: approval
    with: { approvers: [cab], quorum: 1 }
  patch:
    needs: [cab-approval]
    uses: command
    with: { run: "echo patched" }
"#,
    ),
];

/// Every route of the API, as the OpenAPI document must list it.
const API_ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/runbooks"),
    ("get", "/runs"),
    ("post", "/runs"),
    ("get", "/runs/{id}"),
    ("post", "/runs/{id}/cancel"),
    ("post", "/runs/{id}/steps/{step}/resume"),
    ("post", "/runs/{id}/steps/{step}/decision"),
];

#[test]
fn the_api_and_the_operator_commands_trigger_list_cancel_and_approve_runs() {
    let dir = std::env::temp_dir().join(format!("patchday-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    for (file, text) in API_RUNBOOKS {
        std::fs::write(dir.join("runbooks").join(file), text).unwrap();
    }
    // A new token, and its line in the tokens file.
    let out = patchday()
        .args(["api-token", "ci", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let minted: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let token = minted["token"].as_str().unwrap().to_string();
    let line = minted["line"].as_str().unwrap();
    assert!(line.starts_with("ci ") && !line.contains(&token), "{line}");
    let tokens = dir.join("api-tokens");
    std::fs::write(&tokens, format!("# operators\n{line}\n")).unwrap();

    let database = format!("sqlite://{}", dir.join("d.db").display());
    let mut child = patchday()
        .current_dir(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--outbox", &dir.join("outbox").display().to_string()])
        .env("PATCHDAY_SECURITY_API_TOKENS_FILE", &tokens)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("patchday serve starts");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut daemon = Daemon { child, lines };
    let serving = daemon
        .lines
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon prints where it serves");
    assert!(serving.contains("3 runbooks loaded"), "{serving}");
    let addr = serving
        .trim_start_matches("patchday serving http://")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let server = format!("http://{addr}");

    // No token, a wrong token: 401 with a JSON error; the right one: 200.
    let (status, head, body) = request(&addr, "GET", "/api/v1/runs", &[], "");
    assert_eq!(status, 401, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(error["error"].is_string(), "{body}");
    let wrong = [("Authorization", "Bearer pdt_wrong")];
    assert_eq!(request(&addr, "GET", "/api/v1/runs", &wrong, "").0, 401);
    assert_eq!(request(&addr, "POST", "/api/v1/runs", &wrong, "").0, 401);
    let bearer = format!("Bearer {token}");
    let good = [("Authorization", bearer.as_str())];
    let (status, _, body) = request(&addr, "GET", "/api/v1/runbooks", &good, "");
    assert_eq!(status, 200, "{body}");
    let runbooks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(runbooks["runbooks"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(request(&addr, "GET", "/api/v1/nope", &good, "").0, 404);

    // The OpenAPI document lists every route.
    let (status, _, body) = request(&addr, "GET", "/api/v1/openapi.json", &[], "");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in API_ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }

    // The operator commands, as a separate process each.
    let cli = |args: &[&str]| {
        patchday()
            .args(args)
            .args(["--server", &server])
            .env("PATCHDAY_API_TOKEN", &token)
            .output()
            .unwrap()
    };
    let json_of = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_str(&stdout(out))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
    };
    let status_of = |run: &str| json_of(&cli(&["status", run, "--format", "json"]));
    let row_state = |detail: &serde_json::Value, step: &str| -> String {
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .map(|s| s["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let run_id = |out: &std::process::Output| -> String {
        let text = stdout(out);
        assert!(out.status.success(), "{text}{}", stderr(out));
        text.strip_prefix("run ")
            .and_then(|t| t.split(' ').next())
            .unwrap_or_else(|| panic!("{text}"))
            .to_string()
    };

    // Wrong or missing tokens and unknown runs: exit 2.
    let out = patchday()
        .args(["runs", "--server", &server, "--token", "pdt_wrong"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused the token"),
        "{}",
        stderr(&out)
    );
    let out = patchday()
        .args(["runs", "--server", &server])
        .env_remove("PATCHDAY_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(cli(&["status", "no-such-run"]).status.code(), Some(2));
    assert_eq!(
        cli(&["trigger", "api-demo", "--param", "nope=1"])
            .status
            .code(),
        Some(2)
    );
    let out = patchday()
        .args(["runs", "--server", "http://127.0.0.1:1", "--token", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Trigger with a param; the run finishes.
    let demo = run_id(&cli(&[
        "trigger",
        "api-demo",
        "--param",
        "cve=CVE-2026-0001",
    ]));
    assert!(demo.starts_with("api-demo-"), "{demo}");
    let detail = poll(
        "the triggered run to finish",
        Duration::from_secs(60),
        || {
            let detail = status_of(&demo);
            (detail["run"]["state"] != "running").then_some(detail)
        },
    );
    assert_eq!(detail["run"]["state"], "succeeded", "{detail:#}");
    assert_eq!(detail["run"]["params"]["cve"], "CVE-2026-0001");
    let started = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "run.started")
        .expect("run.started");
    assert_eq!(started["actor"], "api:ci");
    let out = cli(&["status", &demo]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));
    let out = cli(&["runs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&demo), "{}", stdout(&out));

    // Cancel a run whose command sleeps: its step and the run end cancelled, as api:ci.
    let long = run_id(&cli(&["trigger", "api-long"]));
    poll("the long command to run", Duration::from_secs(60), || {
        (row_state(&status_of(&long), "wait") == "running").then_some(())
    });
    let begun = Instant::now();
    let out = cli(&["cancel", &long]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("cancelled"), "{}", stdout(&out));
    assert!(begun.elapsed() < Duration::from_secs(30));
    let detail = status_of(&long);
    assert_eq!(detail["run"]["state"], "cancelled", "{detail:#}");
    assert_ne!(row_state(&detail, "wait"), "running", "{detail:#}");
    let cancelled = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "run.cancelled")
        .expect("run.cancelled");
    assert_eq!(cancelled["actor"], "api:ci");
    assert_eq!(cli(&["status", &long]).status.code(), Some(1));
    // Cancelling it again: the run's state refuses it (exit 1).
    assert_eq!(cli(&["cancel", &long]).status.code(), Some(1));

    // Approve as the operator: the step settles as api:ci and the run finishes.
    let gated = run_id(&cli(&["trigger", "api-approval"]));
    poll("the approval to wait", Duration::from_secs(60), || {
        (row_state(&status_of(&gated), "cab-approval") == "awaiting_input").then_some(())
    });
    let out = cli(&[
        "approve",
        &gated,
        "--step",
        "cab-approval",
        "--comment",
        "go ahead",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("api:ci"), "{}", stdout(&out));
    let detail = poll(
        "the approved run to finish",
        Duration::from_secs(60),
        || {
            let detail = status_of(&gated);
            (detail["run"]["state"] != "running").then_some(detail)
        },
    );
    assert_eq!(detail["run"]["state"], "succeeded", "{detail:#}");
    let decided = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "approval.decided")
        .expect("approval.decided");
    assert_eq!(decided["actor"], "api:ci");
    assert_eq!(decided["details"]["recipient"], "api:ci");
    assert_eq!(decided["details"]["comment"], "go ahead");
    // The step is no longer awaiting a decision: refused (exit 1).
    assert_eq!(
        cli(&["approve", &gated, "--step", "cab-approval"])
            .status
            .code(),
        Some(1)
    );

    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
