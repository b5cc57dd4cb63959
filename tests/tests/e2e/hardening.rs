//! The HTTP server on the open internet (issue #11): a thousand half-sent requests neither keep
//! the health probe from answering within a second nor stay open past the header timeout; a
//! 10 MB body is refused before it is read; every answer carries the security headers; `/metrics`
//! wants its bearer token when one is configured.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use patchday_tests::daemon::{Daemon, get, request, serve_command};

const RUNBOOK: &str = "name: quiet\ntimezone: UTC\nsteps:\n  hello:\n    uses: command\n    with: { run: \"echo hello\" }\n";

fn serve(name: &str) -> (Daemon, std::path::PathBuf) {
    let dir = patchday_tests::scratch(name);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/quiet.yaml"), RUNBOOK).unwrap();
    std::fs::write(dir.join("metrics-token"), "scrape-me\n").unwrap();
    std::fs::write(
        dir.join("patchday.toml"),
        "[server]\nheader_timeout = \"2s\"\nmetrics_token_file = \"metrics-token\"\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let mut command = serve_command(&dir, &database, &dir.join("outbox"));
    command.args(["--config", &dir.join("patchday.toml").display().to_string()]);
    (Daemon::start(command), dir)
}

#[test]
fn half_sent_requests_do_not_starve_the_health_probe_and_are_cut_off() {
    let (daemon, _dir) = serve("hardening-slow");
    let addr = daemon.addr.clone();
    let mut slow: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).expect("connect");
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: patchday\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();

    // The probe is answered while the last half-sent request is still open, i.e. before the
    // header timeout (2 s) cut it: it did not wait for them (a signal, not a stopwatch). The
    // first ones may already be cut: the timeout runs from each one's accept.
    let (status, body) = get(&addr, "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let last = slow.last().unwrap();
    last.set_nonblocking(true).unwrap();
    let still_open = matches!(
        last.peek(&mut [0u8; 1]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    last.set_nonblocking(false).unwrap();
    assert!(
        still_open,
        "/healthz was answered only after the half-sent requests were cut off"
    );

    // The header timeout (2 s here) closes every one of them: each read ends (EOF or reset).
    let started = Instant::now();
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        match stream.read_to_end(&mut Vec::new()) {
            Ok(_) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "a half-sent request is still open after {:?}",
                started.elapsed()
            ),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get(&addr, "/healthz").unwrap().0, 200);
}

#[test]
fn a_huge_body_is_refused_unread_and_answers_carry_security_headers() {
    let (daemon, _dir) = serve("hardening-body");
    let addr = daemon.addr.clone();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /signin HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10485760\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&[b'a'; 4096]).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Limits per route: 20 KB is too much for a form (16 KB), not for the API (64 KB), which
    // reads it and then asks for a token.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let twenty_kb = format!("email={}", "a".repeat(20 * 1024));
    for path in ["/signin", "/runs/r/cancel", "/links/t"] {
        let (status, _, body) = request(&addr, "POST", path, &form, &twenty_kb);
        assert_eq!(status, 413, "{path}: {body}");
    }
    let json = [("Content-Type", "application/json")];
    let params = format!(
        "{{\"runbook\":\"quiet\",\"params\":{{\"note\":\"{}\"}}}}",
        "a".repeat(20 * 1024)
    );
    let (status, _, body) = request(&addr, "POST", "/api/v1/runs", &json, &params);
    assert_eq!(status, 401, "{body}");

    for path in ["/healthz", "/", "/signin"] {
        let (_, head, _) = request(&addr, "GET", path, &[], "");
        let head = head.to_ascii_lowercase();
        for expected in [
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
        ] {
            assert!(
                head.contains(expected),
                "{path}: {expected} missing in {head}"
            );
        }
        assert!(
            !head.contains("strict-transport-security"),
            "plain HTTP: {head}"
        );
    }
    let (_, head, _) = request(&addr, "GET", "/signin", &[], "");
    assert!(head.contains("frame-ancestors 'none'"), "{head}");

    // `/metrics` wants the bearer token of `[server] metrics_token_file`.
    let (status, _, body) = request(&addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("patchday_"), "{body}");
    let wrong = [("Authorization", "Bearer scrape-you")];
    assert_eq!(request(&addr, "GET", "/metrics", &wrong, "").0, 401);
    let right = [("Authorization", "Bearer scrape-me")];
    let (status, _, body) = request(&addr, "GET", "/metrics", &right, "");
    assert_eq!(status, 200);
    assert!(body.contains("patchday_runs"), "{body}");
}

/// A daemon trusting `proxies` to name the client in `X-Forwarded-For`.
fn behind(name: &str, proxies: &str) -> (Daemon, String) {
    let dir = patchday_tests::scratch(name);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/quiet.yaml"), RUNBOOK).unwrap();
    let config = format!("[server]\ntrusted_proxies = {proxies}\n");
    std::fs::write(dir.join("patchday.toml"), config).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let mut command = serve_command(&dir, &database, &dir.join("outbox"));
    command.args(["--config", &dir.join("patchday.toml").display().to_string()]);
    (Daemon::start(command), database)
}

/// The `source_ip` of the sign-in refusal a request forwarded for `forwarded_for` records.
fn recorded_source(daemon: &Daemon, database: &str, forwarded_for: &str) -> String {
    let headers = [("X-Forwarded-For", forwarded_for)];
    let body = "email=nobody%40example.com";
    let (status, _, page) = request(&daemon.addr, "POST", "/signin", &headers, body);
    assert_eq!(status, 200, "{page}");
    let events = patchday_tests::daemon::audit_events(database);
    let refused = events
        .iter()
        .rfind(|e| e["action"] == "auth.refused")
        .unwrap_or_else(|| panic!("no refusal in {events:#?}"));
    assert_eq!(refused["details"]["reason"], "no_role");
    refused["details"]["source_ip"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    // The tests connect from 127.0.0.1: not a trusted proxy here, so the forged header is ignored.
    let (direct, database) = behind("hardening-xff-direct", "[\"10.0.0.0/8\"]");
    let source = recorded_source(&direct, &database, "203.0.113.9");
    assert_eq!(source, "127.0.0.1");

    // Through a trusted proxy: the right-most address that is not itself a trusted proxy.
    let (proxied, database) = behind("hardening-xff-proxied", "[\"127.0.0.1\", \"10.0.0.0/8\"]");
    let source = recorded_source(&proxied, &database, "6.6.6.6, 203.0.113.9, 10.1.2.3");
    assert_eq!(source, "203.0.113.9");
    patchday_tests::assert_audit_verifies(&database);
}

/// `patchday serve` under systemd's default open-files limit (`prlimit --nofile=1024:1024`),
/// with a header timeout long enough (60 s) that only the connection cap can close anything:
/// 1,100 idle connections take the places of the oldest ones, so `/healthz` still answers, a
/// runbook edit is still reloaded (`runbook.updated`), and the daemon keeps running.
#[test]
fn eleven_hundred_idle_connections_under_1024_open_files_leave_the_daemon_on_the_air() {
    const IDLE: usize = 1100;
    let dir = patchday_tests::scratch("hardening-nofile");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/quiet.yaml"), RUNBOOK).unwrap();
    std::fs::write(
        dir.join("patchday.toml"),
        "[server]\nheader_timeout = \"60s\"\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let mut inner = serve_command(&dir, &database, &dir.join("outbox"));
    inner.args(["--config", &dir.join("patchday.toml").display().to_string()]);
    let mut command = std::process::Command::new("prlimit");
    command
        .arg("--nofile=1024:1024")
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(inner.get_current_dir().unwrap());
    let mut daemon = Daemon::start(command);
    let pid = daemon.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        nofile.split_whitespace().filter(|w| *w == "1024").count() == 2,
        "{nofile}"
    );
    let addr = daemon.addr.clone();

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| {
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(10))
                .expect("connect")
        })
        .collect();
    // The health probe gets an answer (generous bound: get's 10 s read timeout).
    let started = Instant::now();
    let (status, body) = get(&addr, "/healthz").expect("/healthz answers");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let healthz = started.elapsed();
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(open_files < 1024, "{open_files} open files");

    // The oldest idle connection was closed by the daemon (the header timeout is 60 s); the
    // newest is still open.
    let mut oldest = &idle[0];
    oldest
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(
        matches!(oldest.read(&mut [0u8; 1]), Ok(0)),
        "the oldest idle connection was closed"
    );
    let newest = idle.last().unwrap();
    newest.set_nonblocking(true).unwrap();
    assert!(
        matches!(newest.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the newest connection is still open"
    );

    // A runbook edit is reloaded: the daemon could still open the file.
    let edited = RUNBOOK.replace("echo hello", "echo hello again");
    std::fs::write(dir.join("runbooks/quiet.yaml"), edited).unwrap();
    patchday_tests::daemon::poll("runbook.updated", Duration::from_secs(30), || {
        let events = patchday_tests::daemon::audit_events(&database);
        (patchday_tests::daemon::count(&events, "runbook.updated") == 1).then_some(())
    });
    let (status, _) = get(&addr, "/healthz").expect("/healthz answers");
    assert_eq!(status, 200);
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon runs"
    );
    let metrics = request(&addr, "GET", "/metrics", &[], "").2;
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("patchday_http_connections_evicted_total "))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the evicted connections counter");
    let cap = patchday::daemon::http::serve::connection_cap(1024);
    assert!(
        evicted as usize > IDLE - cap,
        "{evicted} evicted, cap {cap}"
    );
    println!(
        "{IDLE} idle connections under nofile 1024: /healthz in {healthz:?}, {open_files} open \
         files, {evicted} idle connections closed for newer ones"
    );
    drop(idle);
    daemon.terminate();
}
