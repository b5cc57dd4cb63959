//! The dashboard's actions (issue #13 item 6, issue #11 item 2), in headless Chromium against
//! the real daemon: an operator triggers a runbook from the form generated from its params,
//! a CAB member approves her own step on the run page, an operator cancels the run, retries
//! an interrupted step and marks their task done; each reaches the run and the audit log as `web:<email>`. A
//! viewer sees no button; forged posts (no CSRF value, another site, a viewer's session)
//! are refused with 403 and change nothing; a person approving by link and in the dashboard
//! counts once.

use std::path::Path;
use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{
    Daemon, audit_events, count, emails_with, hidden_field, kill_during_command, link_url, poll,
    request, serve_command, sign_in_as,
};

const LIMIT: Duration = Duration::from_secs(60);
const SECRET: &str = "s3cr3t-VALUE-42";

/// A runbook started by hand: a CVE (required), a change (defaulted), a scope (one of two), a
/// secret from the environment; three CAB members must all approve before the patch.
const RUNBOOK: &str = r#"name: emergency
description: Patch a zero-day now
timezone: UTC
roles:
  cab: [alice@example.com, bob@example.com, carol@example.com]
params:
  cve: { description: The CVE to patch }
  change: { default: CHG-1 }
  scope: { default: test, choices: [test, prod] }
  api_key: { secret: true, description: Token of the ticket system }
steps:
  cab-approval:
    uses: approval
    with:
      approvers: [cab]
      quorum: 3
      message: "Patch {{params.cve}} in {{params.scope}}?"
  patch:
    needs: [cab-approval]
    uses: noop
"#;

const ROLES: &str = "[auth]\nviewers = [\"role:cab\", \"viewer@example.com\"]\n\
                     operators = [\"ops@example.com\"]\n";

/// A folder with `runbook` and the roles; the daemon's database URL.
fn folder(name: &str, file: &str, runbook: &str) -> (std::path::PathBuf, String) {
    let dir = patchday_tests::scratch(name);
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks").join(file), runbook).unwrap();
    std::fs::write(dir.join("patchday.toml"), ROLES).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    (dir, database)
}

fn serve(dir: &Path, database: &str) -> Daemon {
    let mut command = serve_command(dir, database, &dir.join("outbox"));
    command
        .args(["--config", &dir.join("patchday.toml").display().to_string()])
        .env("PATCHDAY_SECRET_API_KEY", SECRET);
    Daemon::start(command)
}

/// A page as the session `cookie` sees it: (status, body).
fn page_as(daemon: &Daemon, cookie: &str, path: &str) -> (u16, String) {
    let (status, _, body) = request(&daemon.addr, "GET", path, &[("Cookie", cookie)], "");
    (status, body)
}

/// The CSRF value of the session `cookie`'s forms (the overview's sign-out form carries it).
fn csrf_of(daemon: &Daemon, cookie: &str) -> String {
    let (status, page) = page_as(daemon, cookie, "/");
    assert_eq!(status, 200, "{page}");
    hidden_field(&page, "csrf")
}

/// A form `POST` as the session `cookie` (more headers in `extra`): (status, body).
fn post_as(
    daemon: &Daemon,
    cookie: &str,
    path: &str,
    extra: &[(&str, &str)],
    form: &str,
) -> (u16, String) {
    let mut headers = vec![("Cookie", cookie)];
    headers.extend_from_slice(extra);
    let (status, _, body) = request(&daemon.addr, "POST", path, &headers, form);
    (status, body)
}

/// Clicks the submit button of the first form whose `action` ends with `action` and that
/// holds `extra` (a CSS selector inside the form, e.g. `input[value=approve]`).
fn click_in_form(browser: &Browser, action: &str, extra: &str) {
    let forms = format!("form[action$='{action}']");
    let wanted = browser.execute(&format!(
        "return [...document.querySelectorAll(\"{forms}\")].findIndex(f => !'{extra}' || f.querySelector(\"{extra}\"));"
    ));
    let index = wanted.as_i64().unwrap_or(-1);
    assert!(
        index >= 0,
        "no form {forms} with {extra}: {}",
        browser.source()
    );
    let buttons = browser.find_all(&format!("{forms} button[type=submit]"));
    browser.click(&buttons[index as usize]);
}

/// The run id in a run page's URL.
fn run_id_of(url: &str) -> String {
    let at = url
        .find("/runs/")
        .unwrap_or_else(|| panic!("not a run page: {url}"))
        + 6;
    url[at..].split(['?', '#', '/']).next().unwrap().to_string()
}

/// Waits for the browser to be on a page whose URL ends with `suffix` (after a form's
/// `POST` and its redirect); panics with the page it is on instead.
fn await_page(browser: &Browser, suffix: &str) {
    let deadline = std::time::Instant::now() + LIMIT;
    while !browser.current_url().ends_with(suffix) {
        assert!(
            std::time::Instant::now() < deadline,
            "not on {suffix} but {}: {}",
            browser.current_url(),
            browser.source()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for an element matching `selector` on the current page (the next page after a click).
fn await_selector(browser: &Browser, selector: &str) {
    let deadline = std::time::Instant::now() + LIMIT;
    while browser.find_all(selector).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {selector} on {}: {}",
            browser.current_url(),
            browser.source()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn screenshot(browser: &Browser, name: &str) {
    browser.save_screenshot(&patchday_tests::artifacts_dir().join(format!("actions-{name}.png")));
}

#[test]
fn people_trigger_approve_and_cancel_in_chromium_as_themselves_and_nobody_else_can() {
    let (dir, database) = folder("actions-people", "emergency.yaml", RUNBOOK);
    let daemon = serve(&dir, &database);
    let outbox = dir.join("outbox");
    let base = daemon.url();
    let ops = sign_in_as(&daemon, &outbox, "ops@example.com");
    let browser = Browser::start();

    // The operator opens the form from the overview: one field per param.
    browser.use_session(&base, &ops);
    browser.navigate(&format!("{base}/"));
    browser.click(&browser.find("a[href='/runbooks/emergency/trigger']"));
    await_selector(&browser, "button[value=review]");
    assert!(
        browser.title().starts_with("Start emergency"),
        "{}",
        browser.title()
    );
    let form = browser.source();
    assert!(form.contains("name=\"param.cve\""), "{form}");
    assert!(form.contains("value=\"CHG-1\""), "{form}");
    assert!(form.contains("PATCHDAY_SECRET_API_KEY"), "{form}");
    assert!(!form.contains("name=\"param.api_key\""), "{form}");
    screenshot(&browser, "trigger-form");
    browser.type_text(&browser.find("input[name='param.cve']"), "CVE-2026-0001");
    browser.execute("document.querySelector(\"select[name='param.scope']\").value = 'prod';");
    browser.click(&browser.find("button[value=review]"));
    await_selector(&browser, "button[value=start]");

    // The confirm step shows what will run, the secret masked; nothing has started yet.
    let review = browser.source();
    assert!(
        review.contains("CVE-2026-0001") && review.contains(">prod<"),
        "{review}"
    );
    assert!(
        review.contains("none (manual run)") && review.contains("••••••"),
        "{review}"
    );
    assert!(!review.contains(SECRET), "{review}");
    assert_eq!(count(&audit_events(&database), "run.started"), 0);
    screenshot(&browser, "trigger-confirm");
    browser.click(&browser.find("button[value=start]"));
    await_selector(&browser, "section#live");
    let id = run_id_of(&browser.current_url());
    let run_page = browser.source();
    assert!(!run_page.contains(SECRET));
    assert!(
        !browser.find_all("form[action$='/cancel']").is_empty(),
        "{run_page}"
    );
    assert!(
        browser.find_all("form[action$='/decide']").is_empty(),
        "ops is no approver"
    );

    // The server checks the values whatever the browser does: a missing CVE and a scope
    // outside its choices are named, the form comes back, and no secret is in it.
    let csrf = csrf_of(&daemon, &ops);
    let (status, body) = post_as(
        &daemon,
        &ops,
        "/runbooks/emergency/trigger",
        &[],
        &format!("csrf={csrf}&do=start&param.scope=test&param.api_key=typed"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("param `cve` has no default"), "{body}");
    assert!(!body.contains("typed") && !body.contains(SECRET), "{body}");
    let (status, body) = post_as(
        &daemon,
        &ops,
        "/runbooks/emergency/trigger",
        &[],
        &format!("csrf={csrf}&do=review&param.cve=CVE-1&param.scope=staging"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("must be one of test, prod"), "{body}");

    // Bob approves by his email's link; Alice in the dashboard, as herself.
    let approvals = poll("the approval emails", LIMIT, || {
        let texts = emails_with(&outbox, "Subject: [patchday] Approve emergency");
        (texts.len() == 3).then_some(texts)
    });
    let link_of = |email: &str| {
        let to = format!("To: {email}\r\n");
        let text = approvals.iter().find(|t| t.contains(&to)).unwrap();
        let url = link_url(text);
        url[url.find("/links/").unwrap()..].to_string()
    };
    let bob_link = link_of("bob@example.com");
    let (status, _, link_page) = request(&daemon.addr, "GET", &bob_link, &[], "");
    assert_eq!(status, 200, "{link_page}");
    let form = format!("csrf={}&choice=approve", hidden_field(&link_page, "csrf"));
    let (status, _, body) = request(&daemon.addr, "POST", &bob_link, &[], &form);
    assert_eq!(status, 200, "{body}");

    let alice = sign_in_as(&daemon, &outbox, "alice@example.com");
    browser.use_session(&base, &alice);
    browser.navigate(&format!("{base}/runs/{id}"));
    assert!(
        browser.find_all("form[action$='/cancel']").is_empty(),
        "a viewer cancels nothing"
    );
    assert!(browser.find_all("form[action$='/resume']").is_empty());
    screenshot(&browser, "run-page-approver");
    click_in_form(&browser, "/decide", "input[value=approve]");
    await_selector(&browser, "textarea[name=comment]");
    assert!(
        browser.title().starts_with("Approve"),
        "{}",
        browser.title()
    );
    let confirm = browser.source();
    assert!(confirm.contains("1 of 3 needed so far"), "{confirm}");
    assert!(confirm.contains("alice@example.com"), "{confirm}");
    browser.type_text(&browser.find("textarea[name=comment]"), "fine by me");
    click_in_form(&browser, "/decide", "");
    await_page(&browser, &format!("/runs/{id}"));
    assert!(
        browser.find_all("form[action$='/decide']").is_empty(),
        "decided: no more buttons"
    );

    // Once per person: Alice's link now shows her decision; Bob, signed in, has no buttons
    // and a posted decision of his is refused (409), whatever the route.
    let (status, _, alice_link) =
        request(&daemon.addr, "GET", &link_of("alice@example.com"), &[], "");
    assert_eq!(status, 200);
    assert!(!alice_link.contains("name=\"choice\""), "{alice_link}");
    let bob = sign_in_as(&daemon, &outbox, "bob@example.com");
    let (_, bob_page) = page_as(&daemon, &bob, &format!("/runs/{id}"));
    assert!(!bob_page.contains("/decide\""), "{bob_page}");
    let decide = format!("/runs/{id}/decide");
    let bob_form = format!(
        "csrf={}&step=cab-approval&host=&choice=approve",
        csrf_of(&daemon, &bob)
    );
    let (status, body) = post_as(&daemon, &bob, &decide, &[], &bob_form);
    assert_eq!(status, 409, "{body}");

    // Without a session every action route sends to the sign-in and names nothing.
    for path in [
        format!("/runs/{id}/decide?step=cab-approval&host=&choice=approve"),
        format!("/runs/{id}/resume?step=patch&host=&decision=skip"),
        format!("/runs/{id}/cancel"),
        "/runbooks/emergency/trigger".into(),
    ] {
        for method in ["GET", "POST"] {
            let (status, head, body) = request(&daemon.addr, method, &path, &[], "");
            assert_eq!(status, 303, "{method} {path}: {head}");
            assert!(head.contains("location: /signin"), "{head}");
            assert!(
                !body.contains(&id) && !body.contains("CVE-2026-0001"),
                "{body}"
            );
        }
    }

    // A viewer who is none of the step's people sees no button and is refused everything.
    let viewer = sign_in_as(&daemon, &outbox, "viewer@example.com");
    browser.use_session(&base, &viewer);
    browser.navigate(&format!("{base}/runs/{id}"));
    assert!(
        browser.find_all("section.actions").is_empty(),
        "{}",
        browser.source()
    );
    assert!(browser.find_all("form[method=get] button").is_empty());
    browser.navigate(&format!("{base}/"));
    assert!(browser.find_all("a[href$='/trigger']").is_empty());
    for path in [
        format!("/runs/{id}/cancel"),
        "/runbooks/emergency/trigger".into(),
    ] {
        assert_eq!(page_as(&daemon, &viewer, &path).0, 403, "{path}");
    }

    // Forged posts: a viewer's own valid form value, no CSRF value, another site's origin.
    let viewer_csrf = format!("csrf={}", csrf_of(&daemon, &viewer));
    let ops_csrf = format!("csrf={}", csrf_of(&daemon, &ops));
    let cancel = format!("/runs/{id}/cancel");
    let carol = sign_in_as(&daemon, &outbox, "carol@example.com");
    let forged = [
        (&viewer, cancel.as_str(), viewer_csrf.clone(), None),
        (
            &viewer,
            "/runbooks/emergency/trigger",
            format!("{viewer_csrf}&do=start&param.cve=X"),
            None,
        ),
        (
            &viewer,
            decide.as_str(),
            format!("{viewer_csrf}&step=cab-approval&host=&choice=approve"),
            None,
        ),
        (&ops, cancel.as_str(), String::new(), None),
        (
            &carol,
            decide.as_str(),
            "step=cab-approval&host=&choice=reject".into(),
            None,
        ),
        (
            &ops,
            cancel.as_str(),
            ops_csrf.clone(),
            Some("http://evil.example"),
        ),
    ];
    for (who, path, form, origin) in forged {
        let extra: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        let (status, body) = post_as(&daemon, who, path, &extra, &form);
        assert_eq!(status, 403, "{path} {form}: {body}");
    }
    let events = audit_events(&database);
    assert_eq!(count(&events, "run.cancelled"), 0, "{events:#?}");
    assert_eq!(count(&events, "run.started"), 1);
    let decided: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "approval.decided")
        .collect();
    assert_eq!(decided.len(), 2, "{decided:#?}");
    assert_eq!(decided[0]["actor"], "link:bob@example.com");
    assert_eq!(decided[1]["actor"], "web:alice@example.com");
    assert_eq!(decided[1]["details"]["recipient"], "alice@example.com");
    assert_eq!(decided[1]["details"]["comment"], "fine by me");
    assert_eq!(decided[1]["details"]["decisions_so_far"], 2);

    // The operator cancels from the run page, after its confirm page.
    browser.use_session(&base, &ops);
    browser.navigate(&format!("{base}/runs/{id}"));
    click_in_form(&browser, "/cancel", "");
    await_selector(&browser, "form[method=post][action$='/cancel']");
    assert!(
        browser.title().starts_with("Cancel the run"),
        "{}",
        browser.title()
    );
    click_in_form(&browser, "/cancel", "");
    await_selector(&browser, "section#live");
    poll("the run page to say cancelled", LIMIT, || {
        browser.navigate(&format!("{base}/runs/{id}"));
        browser
            .source()
            .contains("data-state=\"cancelled\"")
            .then_some(())
    });
    assert!(
        browser.find_all("section.actions").is_empty(),
        "a finished run has no actions"
    );

    let events = audit_events(&database);
    let started = events
        .iter()
        .find(|e| e["action"] == "run.started")
        .unwrap();
    assert_eq!(started["actor"], "web:ops@example.com");
    assert_eq!(started["details"]["params"]["cve"], "CVE-2026-0001");
    assert_eq!(started["details"]["params"]["scope"], "prod");
    let cancelled = events
        .iter()
        .find(|e| e["action"] == "run.cancelled")
        .unwrap();
    assert_eq!(cancelled["actor"], "web:ops@example.com");
    assert!(!serde_json::to_string(&events).unwrap().contains(SECRET));
    patchday_tests::assert_audit_verifies(&database);
}

/// A non-idempotent step (`command`) that writes its shell's pid, then waits while `hold`
/// exists, then records that it patched; then a manual task for the operator.
fn held_runbook(dir: &Path) -> String {
    format!(
        r#"name: held
timezone: UTC
steps:
  patch:
    uses: command
    with: {{ run: "echo $$ > {pid}; while [ -e {hold} ]; do sleep 0.05; done; echo patched >> {ledger}" }}
  check:
    needs: [patch]
    uses: manual
    with:
      assignee: [ops@example.com]
      instructions: Check that the service answers after the patch
  after:
    needs: [check]
    uses: noop
"#,
        pid = dir.join("pid").display(),
        hold = dir.join("hold").display(),
        ledger = dir.join("ledger").display(),
    )
}

#[test]
fn an_operator_retries_an_interrupted_step_and_marks_a_task_done_in_chromium() {
    let dir = patchday_tests::scratch("actions-retry");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/held.yaml"), held_runbook(&dir)).unwrap();
    std::fs::write(dir.join("patchday.toml"), ROLES).unwrap();
    std::fs::write(dir.join("hold"), "").unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");

    // The operator starts it from the dashboard (the form's start, posted).
    let mut first = serve(&dir, &database);
    let ops = sign_in_as(&first, &outbox, "ops@example.com");
    let csrf = csrf_of(&first, &ops);
    let (status, _, body) = request(
        &first.addr,
        "POST",
        "/runbooks/held/trigger",
        &[("Cookie", &ops)],
        &format!("csrf={csrf}&do=start"),
    );
    assert_eq!(status, 303, "{body}");

    // The daemon dies while the step runs (and its command with it): after a restart the
    // step is interrupted and waits for an operator.
    kill_during_command(&mut first, &dir);
    let second = serve(&dir, &database);
    let events = audit_events(&database);
    let id = events
        .iter()
        .find(|e| e["action"] == "run.started")
        .and_then(|e| e["run_id"].as_str())
        .expect("run.started")
        .to_string();
    let run_path = format!("/runs/{id}");
    poll("the step to wait for an operator", LIMIT, || {
        let (_, page) = page_as(&second, &ops, &run_path);
        page.contains("was interrupted").then_some(())
    });

    // A reason is required: the server refuses without one, and nothing changes.
    let csrf = csrf_of(&second, &ops);
    let (status, body) = post_as(
        &second,
        &ops,
        &format!("{run_path}/resume"),
        &[],
        &format!("csrf={csrf}&step=patch&host=&decision=retry&reason=+"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("A reason is required"), "{body}");
    assert_eq!(count(&audit_events(&database), "step.resolved"), 0);

    let browser = Browser::start();
    let base = second.url();
    browser.use_session(&base, &ops);
    browser.navigate(&format!("{base}{run_path}"));
    click_in_form(&browser, "/resume", "input[value=retry]");
    await_selector(&browser, "textarea[name=reason]");
    assert!(
        browser.title().starts_with("Interrupted step"),
        "{}",
        browser.title()
    );
    assert!(browser.source().contains("The step runs again"));
    screenshot(&browser, "retry-confirm");
    let reason = "the command died with the daemon; safe to run again";
    browser.type_text(&browser.find("textarea[name=reason]"), reason);
    click_in_form(&browser, "/resume", "");
    await_page(&browser, &run_path);

    // The patch ran again; the task after it waits for the operator, who marks it done here.
    poll("the task's button", LIMIT, || {
        browser.navigate(&format!("{base}{run_path}"));
        (!browser.find_all("form[action$='/decide']").is_empty()).then_some(())
    });
    click_in_form(&browser, "/decide", "input[value=done]");
    await_selector(&browser, "textarea[name=comment]");
    assert!(browser.source().contains("Check that the service answers"));
    click_in_form(&browser, "/decide", "");
    await_page(&browser, &run_path);
    poll("the run to succeed", LIMIT, || {
        let (_, page) = page_as(&second, &ops, &run_path);
        page.contains("data-state=\"succeeded\"").then_some(())
    });
    let ledger = std::fs::read_to_string(dir.join("ledger")).unwrap();
    assert_eq!(ledger, "patched\n", "patched once, by the retry");
    let events = audit_events(&database);
    let resolved = events
        .iter()
        .find(|e| e["action"] == "step.resolved")
        .expect("step.resolved");
    assert_eq!(resolved["actor"], "web:ops@example.com");
    assert_eq!(resolved["details"]["decision"], "retry");
    assert_eq!(resolved["details"]["reason"], reason);
    let done = events
        .iter()
        .find(|e| e["action"] == "task.decided")
        .expect("task.decided");
    assert_eq!(done["actor"], "web:ops@example.com");
    assert_eq!(done["details"]["choice"], "done");
    patchday_tests::assert_audit_verifies(&database);
}
