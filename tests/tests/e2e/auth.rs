//! Who may see what (issue #11, DESIGN §7): nothing about runs without a session; sign-in by an
//! emailed one-time link or the local operator's URL; sessions that end (sign-out, another
//! daemon's cookie, a forged one); refusals audited.
//!
//! `patchday serve` runs with a runbook whose approval waits for alice@example.com, with a CVE
//! and a change number as params, and `[auth] viewers = ["role:cab"]` (the runbook's role).

use std::path::Path;
use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{
    Daemon, audit_events, count, emails_with, hidden_field, link_url, poll, request, request_json,
    serve_command, session_cookie, sign_in,
};
use patchday_tests::smtp::{SmtpOptions, SmtpServer};

const RUNBOOK: &str = r#"name: secret-demo
description: An approval that names people and a CVE
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  cab: [alice@example.com, bob@example.com]
params:
  cve: { default: CVE-2026-4242 }
  change: { default: CHG-777 }
steps:
  cab-approval:
    uses: approval
    with:
      approvers: [cab]
      quorum: 1
      message: "Patch {{params.cve}} under {{params.change}}?"
"#;

const LIMIT: Duration = Duration::from_secs(30);
const SIGN_IN_SUBJECT: &str = "Subject: [patchday] Your sign-in link\r\n";

/// A folder with the runbook and a configuration giving the runbook's `cab` the viewer role;
/// `extra` is appended to the configuration.
pub(crate) fn folder(name: &str, extra: &str) -> (std::path::PathBuf, String) {
    let dir = patchday_tests::scratch(name);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/secret-demo.yaml"), RUNBOOK).unwrap();
    let config = dir.join("patchday.toml");
    std::fs::write(
        &config,
        format!("[auth]\nviewers = [\"role:cab\"]\n{extra}"),
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    (dir, database)
}

pub(crate) fn serve(dir: &Path, database: &str) -> Daemon {
    let mut command = serve_command(dir, database, &dir.join("outbox"));
    command.args(["--config", &dir.join("patchday.toml").display().to_string()]);
    Daemon::start(command)
}

/// The first `http://…/signin/TOKEN` URL in a text.
fn sign_in_url(text: &str) -> String {
    let at = text.find("/signin/").expect("a sign-in link");
    let start = text[..at].rfind("http").expect("an absolute link");
    let end = at
        + text[at..]
            .find(char::is_whitespace)
            .unwrap_or(text.len() - at);
    text[start..end].to_string()
}

/// What an anonymous request gets: (status, head, body).
fn anonymous(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    request(addr, method, path, &[], "")
}

#[test]
fn nothing_about_runs_is_shown_without_a_session_and_sessions_end() {
    let (dir, database) = folder("auth-pages", "");
    let daemon = serve(&dir, &database);
    let addr = daemon.addr.clone();
    let outbox = dir.join("outbox");
    poll("the approval emails", LIMIT, || {
        let texts = emails_with(&outbox, "Subject: [patchday] Approve secret-demo 2026-12");
        (texts.len() == 2).then_some(())
    });
    // The local operator signs in with the URL the daemon printed (an admin).
    let (status, index) = daemon.page("/");
    assert_eq!(status, 200, "{index}");
    let run_id = {
        let start = index.find("href=\"/runs/").expect("the run is listed") + "href=\"/runs/".len();
        index[start..start + index[start..].find('"').unwrap()].to_string()
    };
    assert!(
        index.contains("Signed in as") && index.contains("(admin)"),
        "{index}"
    );

    // Anonymous: a redirect to the sign-in form, and not one secret in the answer.
    let secrets = [
        "alice",
        "bob",
        "CVE-2026-4242",
        "CHG-777",
        "cab-approval",
        "secret-demo",
    ];
    for path in ["/", &format!("/runs/{run_id}"), "/runs/nope", "/signout"] {
        let method = if path == "/signout" { "POST" } else { "GET" };
        let (status, head, body) = anonymous(&addr, method, path);
        assert_eq!(status, 303, "{method} {path}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("location: /signin"),
            "{head}"
        );
        for secret in secrets.iter().chain([&run_id.as_str()]) {
            assert!(
                !head.contains(secret) && !body.contains(secret),
                "{path} shows {secret}"
            );
        }
    }
    let (status, _, body) = anonymous(&addr, "GET", "/api/v1/runs");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(&run_id) && !body.contains("alice"), "{body}");
    // A forged cookie signs nobody in.
    let forged = "patchday_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, _, _) = request(&addr, "GET", "/", &[("Cookie", forged)], "");
    assert_eq!(status, 303);

    // The local operator's URL signed in once.
    let (status, page) = daemon.page(&format!("/runs/{run_id}"));
    assert_eq!(status, 200);
    assert!(page.contains("alice@example.com"), "{page}");
    let used = &daemon.sign_in_url[daemon.sign_in_url.find("/signin/").unwrap()..];
    let (status, _, page) = anonymous(&addr, "GET", used);
    assert_eq!(
        status, 200,
        "a GET shows the page, even of a used link: {page}"
    );
    let csrf = hidden_field(&page, "csrf");
    let (status, head, body) = request(&addr, "POST", used, &[], &format!("csrf={csrf}"));
    assert_eq!(status, 409, "a sign-in link signs in once: {body}");
    assert!(session_cookie(&head).is_none(), "{head}");

    // An emailed link, for an address that holds a role (the runbook's cab); the same answer,
    // and no email, for one that does not.
    for email in ["Alice@Example.com", "mallory@example.com"] {
        let (status, _, body) = request(&addr, "POST", "/signin", &[], &format!("email={email}"));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Check your email"), "{body}");
    }
    let sent = poll("the sign-in email", LIMIT, || {
        let texts = emails_with(&outbox, SIGN_IN_SUBJECT);
        (!texts.is_empty()).then_some(texts)
    });
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].contains("To: alice@example.com\r\n"), "{}", sent[0]);
    let alice = sign_in(&addr, &sign_in_url(&sent[0]));
    let (status, _, index) = request(&addr, "GET", "/", &[("Cookie", &alice)], "");
    assert_eq!(status, 200);
    assert!(
        index.contains("Signed in as <strong>alice@example.com</strong> (viewer)"),
        "{index}"
    );

    // Sign-out: not from another site, and only with the page's CSRF value; then the cookie is
    // dead.
    let csrf = hidden_field(&index, "csrf");
    let cross = [
        ("Cookie", alice.as_str()),
        ("Origin", "http://evil.example"),
    ];
    let (status, _, _) = request(&addr, "POST", "/signout", &cross, &format!("csrf={csrf}"));
    assert_eq!(status, 403);
    let (status, _, _) = request(&addr, "POST", "/signout", &[("Cookie", &alice)], "csrf=x");
    assert_eq!(status, 403);
    assert_eq!(request(&addr, "GET", "/", &[("Cookie", &alice)], "").0, 200);
    let (status, head, _) = request(
        &addr,
        "POST",
        "/signout",
        &[("Cookie", &alice)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("Max-Age=0"), "the cookie is cleared: {head}");
    assert_eq!(request(&addr, "GET", "/", &[("Cookie", &alice)], "").0, 303);

    // Another daemon's session is no session here.
    let (other_dir, other_database) = folder("auth-other", "");
    let other = serve(&other_dir, &other_database);
    let theirs = other.cookie().to_string();
    assert_eq!(other.page("/").0, 200);
    assert_eq!(
        request(&addr, "GET", "/", &[("Cookie", &theirs)], "").0,
        303
    );

    let events = audit_events(&database);
    assert_eq!(count(&events, "auth.signed_in"), 2, "{events:#?}");
    assert_eq!(count(&events, "auth.signed_out"), 1);
    assert_eq!(count(&events, "auth.link_sent"), 1);
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e["action"] == "auth.refused")
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        ["already_used", "no_role", "cross_site", "bad_csrf"],
        "{events:#?}"
    );
    let signed_in = events
        .iter()
        .rfind(|e| e["action"] == "auth.signed_in")
        .unwrap();
    assert_eq!(signed_in["actor"], "web:alice@example.com");
    assert_eq!(signed_in["details"]["via"], "link");
    assert_eq!(signed_in["details"]["source_ip"], "127.0.0.1");
    patchday_tests::assert_audit_verifies(&database);
}

#[test]
fn an_emailed_sign_in_link_opened_in_chromium_signs_in_and_out() {
    let browser = std::thread::spawn(Browser::start);
    let mail = patchday_tests::scratch("auth-browser-mail");
    let smtp = SmtpServer::start(&mail, &SmtpOptions::default());
    let (dir, database) = folder("auth-browser", &smtp.config());
    let daemon = serve(&dir, &database);
    let base = daemon.url();
    let browser = browser.join().expect("chromium and chromedriver start");

    // Not signed in: the overview sends the browser to the sign-in form.
    browser.navigate(&format!("{base}/"));
    assert_eq!(browser.title(), "Sign in · patchday");
    browser.type_text(&browser.find("input[name=email]"), "bob@example.com");
    browser.click(&browser.find("form[method=post] button[type=submit]"));
    poll("the link-sent page", LIMIT, || {
        (browser.title() == "Check your email · patchday").then_some(())
    });

    let message = poll("the sign-in email over SMTP", LIMIT, || {
        smtp.messages()
            .into_iter()
            .find(|m| m["subject"] == "[patchday] Your sign-in link")
    });
    assert_eq!(message["rcpt_tos"], serde_json::json!(["bob@example.com"]));
    let link = sign_in_url(message["text"].as_str().unwrap());
    browser.navigate(&link);
    assert_eq!(browser.title(), "Sign in as bob@example.com? · patchday");
    browser.click(&browser.find("form[method=post] button[type=submit]"));
    poll("the overview", LIMIT, || {
        browser.title().starts_with("Overview").then_some(())
    });
    let bar = browser.text(&browser.find("form[action=\"/signout\"]"));
    assert!(
        bar.contains("Signed in as bob@example.com (viewer)"),
        "{bar}"
    );
    let run = browser.find("main a[href^=\"/runs/\"]");
    browser.click(&run);
    poll("the run page, with the approvers", LIMIT, || {
        (browser.current_url().contains("/runs/") && browser.source().contains("alice@example.com"))
            .then_some(())
    });

    // Sign out: back to the form, and the run page is gone with the session.
    browser.navigate(&format!("{base}/"));
    browser.click(&browser.find("form[action=\"/signout\"] button"));
    poll("the sign-in form", LIMIT, || {
        (browser.title() == "Sign in · patchday").then_some(())
    });
    browser.navigate(&link);
    browser.click(&browser.find("form[method=post] button[type=submit]"));
    // The click may return before the next page is there: wait for its title.
    let title = poll("the page after the second click", LIMIT, || {
        let title = browser.title();
        (!title.starts_with("Sign in as")).then_some(title)
    });
    assert_eq!(title, "This sign-in link was already used · patchday");
    let events = audit_events(&database);
    assert_eq!(count(&events, "auth.signed_in"), 1, "{events:#?}");
    assert_eq!(count(&events, "auth.signed_out"), 1);
}

/// `patchday api-token NAME [--scopes ..] [--owner ..]`: (token, line for the tokens file).
fn token(args: &[&str]) -> (String, String) {
    let mut all = vec!["api-token"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = patchday_tests::run(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        patchday_tests::stderr(&out)
    );
    let minted: serde_json::Value = serde_json::from_str(&patchday_tests::stdout(&out)).unwrap();
    let line = minted["line"].as_str().unwrap().to_string();
    (minted["token"].as_str().unwrap().to_string(), line)
}

#[test]
fn scoped_tokens_do_only_what_they_hold_and_a_person_decides_once_whatever_the_route() {
    let (reader, reader_line) = token(&["reader", "--scopes", "read"]);
    let (alice, alice_line) = token(&[
        "alice",
        "--scopes",
        "read,approve",
        "--owner",
        "alice@example.com",
    ]);
    let (mallory, mallory_line) = token(&[
        "mallory",
        "--scopes",
        "approve",
        "--owner",
        "mallory@example.com",
    ]);
    let (ops, ops_line) = token(&["ops", "--scopes", "operate"]);
    let (root, root_line) = token(&["root", "--scopes", "admin"]);
    let refused = patchday_tests::run(&["api-token", "x", "--scopes", "approve"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "an approve token needs an owner"
    );

    let (dir, database) = folder(
        "auth-tokens",
        "\n[security]\napi_tokens_file = \"api-tokens\"\n",
    );
    let tokens = dir.join("api-tokens");
    std::fs::write(
        &tokens,
        format!("{reader_line}\n{alice_line}\n{mallory_line}\n{ops_line}\n{root_line}\n"),
    )
    .unwrap();
    // Both approvers must agree: Alice's decision leaves the step waiting for Bob.
    std::fs::write(
        dir.join("runbooks/secret-demo.yaml"),
        RUNBOOK.replace("quorum: 1", "quorum: 2"),
    )
    .unwrap();
    let daemon = serve(&dir, &database);
    let addr = daemon.addr.clone();
    let outbox = dir.join("outbox");
    let approvals = poll("the approval emails", LIMIT, || {
        let texts = emails_with(&outbox, "Subject: [patchday] Approve secret-demo 2026-12");
        (texts.len() == 2).then_some(texts)
    });
    let bearer = |t: &str| format!("Bearer {t}");
    let (status, _, body) = request_json(
        &addr,
        "GET",
        "/api/v1/runs",
        &bearer(&reader),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    let decide = format!("/api/v1/runs/{id}/steps/cab-approval/decision");
    let approve = serde_json::json!({"choice": "approve"});

    // Read and operate tokens cannot decide; a read token cannot trigger.
    for who in [&reader, &ops] {
        let (status, _, body) = request_json(&addr, "POST", &decide, &bearer(who), &approve);
        assert_eq!(status, 403, "{body}");
    }
    let trigger = serde_json::json!({"runbook": "secret-demo"});
    let (status, _, _) = request_json(&addr, "POST", "/api/v1/runs", &bearer(&reader), &trigger);
    assert_eq!(status, 403);
    // An approve token of someone who is not among the approvers: refused and audited.
    let (status, _, body) = request_json(&addr, "POST", &decide, &bearer(&mallory), &approve);
    assert_eq!(status, 403, "{body}");
    // Alice's token decides as Alice.
    let (status, _, body) = request_json(&addr, "POST", &decide, &bearer(&alice), &approve);
    assert_eq!(status, 200, "{body}");
    let decided: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(decided["decisions_so_far"], 1, "{decided}");
    // ... so her emailed link, and her token again, decide nothing more.
    let alice_email = approvals
        .iter()
        .find(|t| t.contains("To: alice@example.com\r\n"))
        .expect("Alice's approval email");
    let link = link_url(alice_email);
    let path = &link[link.find("/links/").unwrap()..];
    // Her link shows what she decided (through the API) and offers no choice any more.
    let (status, _, page) = request(&addr, "GET", path, &[], "");
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("name=\"choice\""), "{page}");
    let (status, _, body) = request_json(&addr, "POST", &decide, &bearer(&alice), &approve);
    assert_eq!(status, 409, "{body}");
    // An admin token deciding for Bob is an override: not without a written reason.
    let (status, _, body) = request_json(&addr, "POST", &decide, &bearer(&root), &approve);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`reason`"), "{body}");
    let reason = "Bob is on leave; the CAB agreed by phone";
    let overrule = serde_json::json!({"choice": "approve", "reason": reason});
    let (status, _, body) = request_json(&addr, "POST", &decide, &bearer(&root), &overrule);
    assert_eq!(status, 200, "{body}");

    let events = audit_events(&database);
    let decisions: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "approval.decided")
        .collect();
    assert_eq!(decisions.len(), 2, "{events:#?}");
    assert_eq!(decisions[0]["actor"], "api:alice");
    assert_eq!(decisions[0]["details"]["recipient"], "alice@example.com");
    assert!(decisions[0]["details"].get("override").is_none());
    assert!(decisions[0]["details"].get("reason").is_none());
    assert_eq!(decisions[1]["actor"], "api:root");
    assert_eq!(decisions[1]["details"]["override"], true);
    assert_eq!(decisions[1]["details"]["reason"], reason);
    let refusal = events
        .iter()
        .find(|e| e["action"] == "api.refused")
        .expect("api.refused");
    assert_eq!(refusal["actor"], "api:mallory");
    assert_eq!(refusal["details"]["reason"], "not_an_approver");
    patchday_tests::assert_audit_verifies(&database);
}

/// Signs `email` in through an emailed sign-in link read from the outbox: the `Cookie` value.
pub(crate) fn sign_in_by_email(addr: &str, outbox: &Path, email: &str) -> String {
    let (status, _, body) = request(addr, "POST", "/signin", &[], &format!("email={email}"));
    assert_eq!(status, 200, "{body}");
    let to = format!("To: {email}\r\n");
    let text = poll("the sign-in email", LIMIT, || {
        emails_with(outbox, SIGN_IN_SUBJECT)
            .into_iter()
            .find(|t| t.contains(&to))
    });
    sign_in(addr, &sign_in_url(&text))
}

#[test]
fn with_sign_in_required_a_forwarded_approval_link_decides_only_for_its_recipient() {
    let (dir, database) = folder("auth-required", "");
    std::fs::write(
        dir.join("runbooks/secret-demo.yaml"),
        RUNBOOK.replace(
            "      quorum: 1\n",
            "      quorum: 1\n      sign_in: required\n",
        ),
    )
    .unwrap();
    let daemon = serve(&dir, &database);
    let addr = daemon.addr.clone();
    let outbox = dir.join("outbox");
    let approvals = poll("the approval emails", LIMIT, || {
        let texts = emails_with(&outbox, "Subject: [patchday] Approve secret-demo 2026-12");
        (texts.len() == 2).then_some(texts)
    });
    let alice_email = approvals
        .iter()
        .find(|t| t.contains("To: alice@example.com\r\n"))
        .expect("Alice's approval email");
    let link = link_url(alice_email);
    let path = &link[link.find("/links/").unwrap()..];
    let (status, _, page) = request(&addr, "GET", path, &[], "");
    assert_eq!(status, 200, "{page}");
    let form = format!("csrf={}&choice=approve", hidden_field(&page, "csrf"));

    // Not signed in, or signed in as Bob (the email was forwarded): refused, nothing decided.
    let (status, _, body) = request(&addr, "POST", path, &[], &form);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("sign_in_required") && body.contains("Sign in first"),
        "{body}"
    );
    let bob = sign_in_by_email(&addr, &outbox, "bob@example.com");
    let (status, _, _) = request(&addr, "POST", path, &[("Cookie", &bob)], &form);
    assert_eq!(status, 403);
    // Alice, signed in, decides with her link.
    let alice = sign_in_by_email(&addr, &outbox, "alice@example.com");
    let (status, _, body) = request(&addr, "POST", path, &[("Cookie", &alice)], &form);
    assert_eq!(status, 200, "{body}");

    let events = audit_events(&database);
    let refusals = events
        .iter()
        .filter(|e| e["action"] == "link.rejected" && e["details"]["reason"] == "sign_in_required")
        .count();
    assert_eq!(refusals, 2, "{events:#?}");
    let decided: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "approval.decided")
        .collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["actor"], "link:alice@example.com");
}

#[test]
fn patchday_login_url_makes_another_one_time_sign_in_for_the_local_operator() {
    let (dir, database) = folder("auth-login-url", "");
    let daemon = serve(&dir, &database);
    let out = patchday_tests::run(&["login-url", "--database", &database, "--url", &daemon.url()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        patchday_tests::stderr(&out)
    );
    let url = patchday_tests::stdout(&out).trim().to_string();
    assert!(
        url.starts_with(&format!("{}/signin/", daemon.url())),
        "{url}"
    );
    let cookie = sign_in(&daemon.addr, &url);
    let (status, _, index) = request(&daemon.addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200);
    assert!(index.contains("(admin)"), "{index}");
    // On PostgreSQL without a link secret file the daemon's key dies with it: no URL.
    let out = patchday_tests::run(&[
        "login-url",
        "--database",
        "postgres://patchday_test:patchday_test@127.0.0.1/patchday_test",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        patchday_tests::stdout(&out)
    );
}

/// Refused sign-ins from one address: past its quota in the window ([`PER_SOURCE`]) bad sign-in
/// links and bad single sign-on callbacks alike are answered 429 with a Retry-After, and the
/// window records one `auth.rate_limited`, not one event per request; another address is
/// answered as usual and signs in.
///
/// [`PER_SOURCE`]: patchday::daemon::http::links::limit::PER_SOURCE
#[test]
fn repeated_failed_sign_ins_from_one_address_are_rate_limited_and_audited_once() {
    use patchday::daemon::http::links::limit::PER_SOURCE;
    use patchday_tests::daemon::request_from;

    // Single sign-on against a port nobody listens on: a forged callback is refused before the
    // provider would be asked anything.
    let closed = patchday_tests::oidc::free_port();
    let secret = patchday_tests::scratch("auth-limit-secret").join("oidc-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let extra = format!(
        "\n[auth.oidc]\nissuer = \"http://127.0.0.1:{closed}\"\nclient_id = \"patchday\"\n\
         client_secret_file = \"{}\"\n",
        secret.display()
    );
    let (dir, database) = folder("auth-limit", &extra);
    let daemon = serve(&dir, &database);
    let addr = daemon.addr.clone();
    let flood = Some("127.0.0.3");
    let mut answers = Vec::new();
    for i in 0..PER_SOURCE + 10 {
        let path = if i % 2 == 0 {
            format!("/signin/forged-token-{i}")
        } else {
            format!("/signin/oidc/callback?code=c{i}&state=forged-{i}")
        };
        let (status, head, _) = request_from(flood, &addr, "GET", &path, &[], "");
        answers.push((status, head));
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    let refused = PER_SOURCE as usize;
    assert!(
        statuses[..refused].iter().all(|s| *s == 403),
        "{statuses:?}"
    );
    assert!(
        statuses[refused..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    assert!(
        answers[refused]
            .1
            .to_ascii_lowercase()
            .contains("retry-after:"),
        "{}",
        answers[refused].1
    );

    // Another address: refused as usual (not 429), and its good sign-in link signs in.
    let other = Some("127.0.0.4");
    let (status, _, _) = request_from(other, &addr, "GET", "/signin/forged", &[], "");
    assert_eq!(status, 403);
    let path = &daemon.sign_in_url[daemon.sign_in_url.find("/signin/").unwrap()..];
    let (status, _, page) = request_from(other, &addr, "GET", path, &[], "");
    assert_eq!(status, 200, "{page}");
    let csrf = format!("csrf={}", hidden_field(&page, "csrf"));
    let (status, head, _) = request_from(other, &addr, "POST", path, &[], &csrf);
    assert_eq!(status, 303, "{head}");
    assert!(session_cookie(&head).is_some(), "{head}");

    let events = audit_events(&database);
    let from = |action: &str, ip: &str| {
        events
            .iter()
            .filter(|e| e["action"] == action && e["details"]["source_ip"] == ip)
            .count()
    };
    assert_eq!(from("auth.refused", "127.0.0.3"), refused, "{events:#?}");
    assert_eq!(from("auth.rate_limited", "127.0.0.3"), 1, "{events:#?}");
    assert_eq!(from("auth.refused", "127.0.0.4"), 1);
    assert_eq!(from("auth.rate_limited", "127.0.0.4"), 0);
    let reasons: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["action"] == "auth.refused")
        .filter_map(|e| e["details"]["reason"].as_str())
        .collect();
    assert!(reasons.contains("oidc_bad_state"), "{reasons:?}");
    assert_eq!(count(&events, "auth.signed_in"), 1);
}
