//! `patchday serve` as a separate process: a virtual clock positioned just before a cycle's
//! fire, a scheduled runbook in a temporary runbooks folder, no SMTP (emails land in the
//! outbox folder). The daemon says where it serves; `/healthz`, `/`, `/runs/{id}` and
//! `/metrics` answer; the cycle fires and its run finishes; the finished notification is in
//! the outbox with the right recipients and subject; SIGTERM ends the daemon with exit 0; the
//! audit chain verifies.

use std::io::{BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use patchday::daemon::http::links::limit::PER_SOURCE;
use patchday_tests::daemon::{
    Daemon, audit_events, count, emails_with, eml_files, get, hidden_field, link_token, poll,
    request, request_from, serve_command, without_mail,
};
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

#[test]
fn the_daemon_fires_a_cycle_serves_its_pages_and_mails_the_outcome() {
    let dir = patchday_tests::scratch("daemon");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/daemon-demo.yaml"), RUNBOOK).unwrap();
    // A broken runbook next to it is reported and skipped; it stops nothing.
    std::fs::write(dir.join("runbooks/broken.yaml"), "name: broken\nsteps: 3\n").unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");

    // Patch Tuesday of December 2026 is the 8th: the cycle fires at 10:00 UTC.
    let mut serve = serve_command(&dir, &database, &outbox);
    serve.stderr(Stdio::piped());
    let mut daemon = Daemon::start(serve);
    let err = daemon.child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(err).read_to_string(&mut text);
        text
    });
    let serving = daemon.serving.clone();
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
    let addr = daemon.addr.clone();

    poll("/healthz", Duration::from_secs(10), || {
        get(&addr, "/healthz")
            .ok()
            .filter(|(s, b)| *s == 200 && b == "ok\n")
    });

    let (status, index) = daemon.page("/");
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

    let (_, index) = daemon.page("/");
    let start = index.find("href=\"/runs/").expect("the run is listed") + "href=\"".len();
    let path = &index[start..start + index[start..].find('"').unwrap()];
    assert!(path.starts_with("/runs/daemon-demo-"), "{path}");
    let (status, page) = daemon.page(path);
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
    assert_eq!(daemon.page("/runs/nope").0, 404);

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
    // The run page's address is the one the daemon bound (it was asked for port 0).
    assert!(
        email.contains(&format!("http://{addr}/runs/daemon-demo-")),
        "{email}"
    );
    poll("the outbox to drain", Duration::from_secs(10), || {
        let (_, text) = get(&addr, "/metrics").ok()?;
        text.contains("patchday_outbox_depth 0").then_some(())
    });

    let status = daemon.terminate();
    let log = log.join().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("broken.yaml rejected"), "{log}");

    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_errors_exit_2_and_say_where_the_bad_value_came_from() {
    let dir = patchday_tests::scratch("daemon-config");
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

#[test]
fn approval_links_decide_once_and_every_bad_link_is_refused_and_audited() {
    use patchday::links::{LinkClaims, LinkSigner};

    let dir = patchday_tests::scratch("links");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/links-demo.yaml"), APPROVAL_RUNBOOK).unwrap();
    let secret = dir.join("link.secret");
    let key = "e2e link secret: 0123456789abcdef0123456789abcdef";
    std::fs::write(&secret, format!("{key}\n")).unwrap();
    let signer = LinkSigner::new(key.as_bytes()).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let mut serve = serve_command(&dir, &database, &outbox);
    serve.env("PATCHDAY_SECURITY_LINK_SECRET_FILE", &secret);
    let mut daemon = Daemon::start(serve);
    let addr = daemon.addr.clone();

    // The approval email arrives for each approver, each with its own link.
    let subject = "Subject: [patchday] Approve links-demo 2026-12: cab-approval\r\n";
    let emails = poll("the approval emails", Duration::from_secs(30), || {
        let texts = emails_with(&outbox, subject);
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
        link_token(email)
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
    // Headed with the approval's own message (issue 15).
    assert!(
        page.contains("<h1>May we patch cycle 2026-12 tonight?</h1>"),
        "{page}"
    );
    assert!(page.contains("Nobody has decided yet."), "{page}");
    let artifacts = patchday_tests::artifacts_dir();
    std::fs::write(artifacts.join("confirmation-page.html"), &page).unwrap();
    let csrf = hidden_field(&page, "csrf");
    let after = audit_events(&database);
    // Everything but the mailer's own events (`email.sent` may land meanwhile).
    assert_eq!(
        without_mail(&after),
        without_mail(&before),
        "GET/HEAD wrote events"
    );
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
        let not_mail = |events: &[serde_json::Value]| without_mail(events).len();
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
    let limited: Vec<serde_json::Value> = audit_events(&database)
        .into_iter()
        .filter(|e| e["action"] == "link.rate_limited")
        .collect();
    assert_eq!(limited.len(), 1, "{limited:#?}");
    assert_eq!(limited[0]["details"]["source"], "127.0.0.2");
    decisions.set(1);

    // The run goes on and finishes.
    poll("the run to succeed", Duration::from_secs(30), || {
        runs("succeeded").then_some(())
    });

    // Replayed, and the other approver's link after the step settled.
    assert_eq!(
        attack("replayed", "POST", &alice, &[], &approve, 409),
        "already_used"
    );
    // Opened again by Alice: what she chose and when, with the run; not refused, not audited.
    let (status, _, again) = request(&addr, "GET", &path(&alice), &[], "");
    assert_eq!(status, 200, "{again}");
    assert!(
        again.contains("<h1>You already decided: approved</h1>"),
        "{again}"
    );
    assert!(
        again.contains("Approved by you (alice@example.com) at"),
        "{again}"
    );
    assert!(again.contains("href=\"/runs/"), "{again}");
    // Bob opens his link after Alice settled the step: what was decided, not an error.
    let (_, bob_after, _) = (0, request(&addr, "GET", &path(&bob), &[], ""), 0);
    assert_eq!(bob_after.0, 200, "{}", bob_after.2);
    assert!(
        bob_after
            .2
            .contains("<h1>Your decision is no longer needed</h1>")
            && bob_after.2.contains("Approved by alice@example.com at"),
        "{}",
        bob_after.2
    );
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

    daemon.terminate();
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
    let dir = patchday_tests::scratch("api");
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
    let mut serve = patchday();
    serve
        .current_dir(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--outbox", &dir.join("outbox").display().to_string()])
        .env("PATCHDAY_SECURITY_API_TOKENS_FILE", &tokens);
    let daemon = Daemon::start(serve);
    assert!(
        daemon.serving.contains("3 runbooks loaded"),
        "{}",
        daemon.serving
    );
    let addr = daemon.addr.clone();
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
    // api:ci is an admin token, not one of the approvers: an override needs a written reason.
    let out = cli(&["approve", &gated, "--step", "cab-approval"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("`reason`"), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 400"), "{}", stderr(&out));
    let blank = cli(&[
        "approve",
        &gated,
        "--step",
        "cab-approval",
        "--reason",
        "  ",
    ]);
    assert_eq!(blank.status.code(), Some(2), "a blank reason is none");
    let out = cli(&[
        "approve",
        &gated,
        "--step",
        "cab-approval",
        "--comment",
        "go ahead",
        "--reason",
        "CAB approved by phone; Alice is on leave",
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
    assert_eq!(decided["details"]["override"], true);
    let reason = "CAB approved by phone; Alice is on leave";
    assert_eq!(decided["details"]["reason"], reason);
    // The step is no longer awaiting a decision: refused (exit 1).
    assert_eq!(
        cli(&[
            "approve",
            &gated,
            "--step",
            "cab-approval",
            "--reason",
            "again"
        ])
        .status
        .code(),
        Some(1)
    );

    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

const MAIL_RUNBOOK: &str = r#"name: mail-demo
description: An email step, sent through an SMTP server that requires AUTH
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  committee: [committee@example.com]
notify: { on: [finished], to: [committee] }
steps:
  tell-committee:
    uses: email
    with:
      to: committee
      subject: "Cycle {{cycle}} is open"
      body: "Patch Tuesday is {{patch_tuesday}}."
"#;

/// The `[smtp]` password reaches a run's `email` step (not only the daemon's mailer): the step
/// logs in to a real SMTP server that refuses mail without AUTH, and the password appears in
/// no log line, audit event, stored row or email.
#[test]
fn a_runs_email_step_logs_in_to_smtp_with_the_configured_password() {
    const PASSWORD: &str = "s3cret-smtp-pa55word";
    let dir = patchday_tests::scratch("smtp-auth");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::create_dir_all(dir.join("mail")).unwrap();
    std::fs::write(dir.join("runbooks/mail-demo.yaml"), MAIL_RUNBOOK).unwrap();
    std::fs::write(dir.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    let smtp =
        patchday_tests::smtp::SmtpServer::with_login(&dir.join("mail"), &dir.join("smtp-password"));
    let config = dir.join("patchday.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"patchday\"\n\
             password_file = \"{}\"\nfrom = \"patchday@example.com\"\n",
            smtp.port,
            dir.join("smtp-password").display()
        ),
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());

    let mut cmd = patchday();
    cmd.current_dir(&dir)
        .args(["serve", "--config", &config.display().to_string()])
        .args(["--listen", "127.0.0.1:0", "--database", &database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--now", "2026-12-08T09:59:00Z", "--virtual-clock"])
        .stderr(Stdio::piped());
    let mut daemon = Daemon::start(cmd);
    let err = daemon.child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(err).read_to_string(&mut text);
        text
    });
    let serving = daemon.serving.clone();
    assert!(serving.contains("emails via SMTP 127.0.0.1"), "{serving}");

    // The step's email, then the mailer's notification that the run finished, both logged in.
    let finished = "[patchday] mail-demo 2026-12: run ";
    let messages = poll(
        "the run's end notification",
        Duration::from_secs(60),
        || {
            let messages = smtp.messages();
            messages
                .iter()
                .any(|m| m["subject"].as_str().unwrap().starts_with(finished))
                .then_some(messages)
        },
    );
    let subjects: Vec<&str> = messages
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "Cycle 2026-12 is open",
            "[patchday] mail-demo 2026-12: run succeeded"
        ]
    );
    for m in &messages {
        assert_eq!(m["authenticated"], true, "{m}");
        assert_eq!(m["rcpt_tos"], serde_json::json!(["committee@example.com"]));
        assert!(!m["raw"].as_str().unwrap().contains(PASSWORD));
    }
    let events = audit_events(&database);
    let sent = events
        .iter()
        .find(|e| e["action"] == "step.succeeded" && e["step_id"] == "tell-committee")
        .unwrap_or_else(|| panic!("the email step succeeded: {events:#?}"));
    assert!(!sent.to_string().contains(PASSWORD));

    assert_eq!(daemon.terminate().code(), Some(0));
    let log = log.join().unwrap();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    let exported = patchday()
        .args(["audit", "export", "--database", &database])
        .output()
        .unwrap();
    assert!(!stdout(&exported).contains(PASSWORD));
    for file in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("d.db") {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes()),
                "the password is in {name}"
            );
        }
    }
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}

const NOTIFY_RUNBOOK: &str = r#"name: notify-demo
description: A runbook whose notification emails come from its own templates
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  ops: [ops@example.com]
  cab: [alice@example.com, bob@example.com]
params:
  token: { secret: true }
notify:
  on: [failure]
  to: ops
  templates: { approval: templates/approval.hbs, failure: templates/failure.hbs }
steps:
  cab-approval:
    uses: approval
    with: { approvers: cab, message: "Patch {{cycle}} tonight?" }
  leak:
    uses: command
    with: { run: "echo token=$TOKEN >&2; exit 3", env: { TOKEN: "{{params.token}}" } }
"#;

const NOTIFY_APPROVAL: &str = "Subject: CAB vote for {{runbook}} {{cycle}}\n\n\
Dear {{recipient}}: {{message}}\nVote here: {{link}}\n";

const NOTIFY_FAILURE: &str = "Subject: FAILED {{step}} ({{runbook}} {{cycle}})\n\n\
{{step}} failed: {{reason}}\nSee {{run_url}}\n";

#[test]
fn a_runbook_s_notification_templates_write_the_emails_in_the_outbox() {
    let dir = patchday_tests::scratch("notify");
    std::fs::create_dir_all(dir.join("runbooks/templates")).unwrap();
    std::fs::write(dir.join("runbooks/notify-demo.yaml"), NOTIFY_RUNBOOK).unwrap();
    std::fs::write(dir.join("runbooks/templates/approval.hbs"), NOTIFY_APPROVAL).unwrap();
    std::fs::write(dir.join("runbooks/templates/failure.hbs"), NOTIFY_FAILURE).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let mut serve = serve_command(&dir, &database, &outbox);
    serve.env("PATCHDAY_SECRET_TOKEN", "hunter2-in-the-mail");
    let mut daemon = Daemon::start(serve);

    let subject = "Subject: CAB vote for notify-demo 2026-12\r\n";
    let votes = poll("the approval emails", Duration::from_secs(30), || {
        let texts = emails_with(&outbox, subject);
        (texts.len() == 2).then_some(texts)
    });
    let mut tokens = Vec::new();
    for who in ["alice@example.com", "bob@example.com"] {
        let email = votes
            .iter()
            .find(|t| t.contains(&format!("To: {who}\r\n")))
            .unwrap_or_else(|| panic!("no approval email to {who}: {votes:#?}"));
        assert!(
            email.contains(&format!(
                "Dear {who}: Patch 2026-12 tonight?\r\nVote here: http"
            )),
            "{email}"
        );
        assert_eq!(email.matches("/links/").count(), 1, "{email}");
        tokens.push(link_token(email));
    }
    assert_ne!(tokens[0], tokens[1], "each approver has their own link");

    let failure = poll("the failure email", Duration::from_secs(30), || {
        emails_with(&outbox, "Subject: FAILED leak (notify-demo 2026-12)\r\n").pop()
    });
    assert!(failure.contains("To: ops@example.com\r\n"), "{failure}");
    assert!(failure.contains("leak failed: "), "{failure}");
    assert!(failure.contains("token="), "{failure}");
    assert!(failure.contains("\r\nSee http://"), "{failure}");
    for email in votes.iter().chain([&failure]) {
        assert!(
            !email.contains("hunter2"),
            "a secret reached an email:\n{email}"
        );
    }
    assert_eq!(daemon.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A daemon started with no configuration on a SQLite file makes an API token `local` next to
/// the database; the operator commands on the same machine use it without being told.
#[test]
fn with_no_configuration_the_cli_on_this_machine_operates_the_daemon() {
    let dir = patchday_tests::scratch("local-token");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/daemon-demo.yaml"), RUNBOOK).unwrap();
    let database = format!("sqlite://{}", dir.join("p.db").display());
    let mut daemon = Daemon::start(serve_command(&dir, &database, &dir.join("outbox")));
    let token_file = dir.join("p.db.local-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.trim().starts_with("pdt_"), "{token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let tokens = std::fs::read_to_string(dir.join("p.db.api-tokens")).unwrap();
    assert!(
        tokens.starts_with("local ") && !tokens.contains(token.trim()),
        "{tokens}"
    );
    let cli = |database: &str| {
        patchday()
            .args(["trigger", "daemon-demo", "--cycle", "2026-11"])
            .args(["--server", &daemon.url(), "--database", database])
            .env_remove("PATCHDAY_API_TOKEN")
            .output()
            .unwrap()
    };
    let out = cli(&database);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("started: daemon-demo cycle 2026-11"));
    let events = audit_events(&database);
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "run.started" && e["actor"] == "api:local"),
        "{events:#?}"
    );
    // Another database's folder has no token: the CLI says how to get one.
    let other = format!("sqlite://{}", dir.join("other.db").display());
    let out = cli(&other);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no API token"), "{}", stderr(&out));
    assert_eq!(daemon.terminate().code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flood of forged tokens from one address: past its quota of refusals it gets 429s and one
/// `link.rate_limited` event per window, so the audit log stays bounded.
#[test]
fn a_flood_of_forged_links_is_rate_limited_and_the_audit_log_stays_bounded() {
    let dir = patchday_tests::scratch("flood");
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
    let mut serve = serve_command(&dir, &database, &outbox);
    serve.env("PATCHDAY_SECURITY_LINK_SECRET_FILE", &secret);
    let mut daemon = Daemon::start(serve);
    let addr = daemon.addr.clone();

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

    assert_eq!(daemon.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}
