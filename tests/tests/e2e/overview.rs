//! The overview at `/` and the runbook pages (issue #13 items 1 and 3), against the real
//! daemon and in headless Chromium.
//!
//! The daemon's clock stands still at 2026-12-08 09:59 UTC. One database holds a run in each
//! state that needs attention: a run waiting for its CAB approval (with two days to decide), a non-idempotent step interrupted by a killed daemon, and
//! a failed run. The overview lists each with the right step and person (the approver, the
//! operator's retry / skip / abort links), the running runs with their progress, and the next
//! cycles with countdowns. An edit of a runbook that does not validate is rejected on reload:
//! the overview and the runbook's page show the error naming file and line, while its last good
//! version keeps running. Without a session `/runbooks/{name}` reveals nothing. Screenshots
//! land in `target/test-artifacts/`.

use std::path::Path;
use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{
    Daemon, audit_events, hidden_field, kill_during_command, poll, request, run_of,
    serve_command_frozen,
};

const LIMIT: Duration = Duration::from_secs(60);

/// Started by hand; its approval waits for alice, with two days to decide.
const CAB: &str = r#"name: cab
description: Patched once the CAB approves
timezone: UTC
roles:
  cab: [alice@example.com]
steps:
  cab-approval:
    uses: approval
    with: { approvers: [cab], expires: 2d, message: "May we patch {{cycle}}?" }
  patch:
    needs: [cab-approval]
    uses: noop
"#;

/// Started by hand; its command fails.
const BROKEN: &str = r#"name: broken
timezone: UTC
steps:
  patch:
    uses: command
    with: { run: "exit 3" }
"#;

/// A quarterly runbook; its later edit does not validate.
const WEEKLY: &str = r#"name: weekly
description: Quarterly firmware
timezone: UTC
schedule:
  - { at: first_monday 09:00, months: [1, 4, 7, 10] }
steps:
  firmware:
    uses: noop
"#;

/// The rejected edit: line 4 has a field runbooks do not have.
const WEEKLY_BROKEN: &str = r#"name: weekly
description: Quarterly firmware
timezone: UTC
colour: blue
steps:
  firmware:
    uses: noop
"#;

/// A non-idempotent step that writes its shell's pid and waits while `hold` exists.
fn held_runbook(dir: &Path) -> String {
    format!(
        r#"name: held
timezone: UTC
steps:
  patch:
    uses: command
    with: {{ run: "echo $$ > {pid}; while [ -e {hold} ]; do sleep 0.05; done" }}
  after:
    needs: [patch]
    uses: noop
"#,
        pid = dir.join("pid").display(),
        hold = dir.join("hold").display(),
    )
}

/// A page as the session `cookie` sees it: (status, body).
fn page_as(daemon: &Daemon, cookie: &str, path: &str) -> (u16, String) {
    let (status, _, body) = request(&daemon.addr, "GET", path, &[("Cookie", cookie)], "");
    (status, body)
}

/// Starts `runbook` from the dashboard's trigger form as the daemon's local admin.
fn trigger(daemon: &Daemon, runbook: &str) {
    let cookie = daemon.cookie();
    let (_, index) = page_as(daemon, cookie, "/");
    let csrf = hidden_field(&index, "csrf");
    let (status, _, body) = request(
        &daemon.addr,
        "POST",
        &format!("/runbooks/{runbook}/trigger"),
        &[("Cookie", cookie)],
        &format!("csrf={csrf}&do=start"),
    );
    assert_eq!(status, 303, "{runbook}: {body}");
}

/// The text between `<table class="{class}"` and its `</table>`.
fn table<'a>(page: &'a str, class: &str) -> &'a str {
    let start = page
        .find(&format!("<table class=\"{class}\""))
        .unwrap_or_else(|| panic!("no table.{class} in {page}"));
    let end = start + page[start..].find("</table>").unwrap();
    &page[start..end]
}

#[test]
fn the_overview_shows_what_needs_whom_and_the_runbook_page_its_rejected_edit() {
    let browser = std::thread::spawn(Browser::start);
    let dir = patchday_tests::scratch("overview");
    let runbooks = dir.join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    for (file, text) in [
        ("cab.yaml", CAB.to_string()),
        ("broken.yaml", BROKEN.to_string()),
        ("weekly.yaml", WEEKLY.to_string()),
        ("held.yaml", held_runbook(&dir)),
    ] {
        std::fs::write(runbooks.join(file), text).unwrap();
    }
    std::fs::write(dir.join("hold"), "").unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");

    // A failed run, and a command that dies with the daemon: after a restart its step is
    // interrupted and waits for an operator.
    let mut first = Daemon::start(serve_command_frozen(&dir, &database, &outbox));
    trigger(&first, "cab");
    trigger(&first, "broken");
    trigger(&first, "held");
    let failed = run_of(&database, "broken");
    poll("the broken run to fail", LIMIT, || {
        audit_events(&database)
            .iter()
            .any(|e| e["action"] == "run.finished" && e["run_id"] == failed.as_str())
            .then_some(())
    });
    kill_during_command(&mut first, &dir);

    let daemon = Daemon::start(serve_command_frozen(&dir, &database, &outbox));
    let cookie = daemon.cookie().to_string();
    let held = run_of(&database, "held");
    let cab = run_of(&database, "cab");
    std::fs::write(runbooks.join("weekly.yaml"), WEEKLY_BROKEN).unwrap();

    let page = poll("the overview to show every state", LIMIT, || {
        let (status, page) = page_as(&daemon, &cookie, "/");
        assert_eq!(status, 200, "{page}");
        let ready = [
            "table class=\"waiting-people\"",
            "table class=\"interrupted\"",
            "table class=\"failed\"",
            "Rejected on reload",
        ];
        ready.iter().all(|t| page.contains(t)).then_some(page)
    });
    // The approval: alice, for the cab cycle's step, with the two days it has left.
    let people = table(&page, "waiting-people");
    assert!(
        people.contains(&format!("href=\"/runs/{cab}\"")),
        "{people}"
    );
    assert!(people.contains("<code>cab-approval</code>"), "{people}");
    assert!(people.contains("alice@example.com"), "{people}");
    assert!(
        people.contains("2 days left (expires 2026-12-10 09:59 UTC)"),
        "{people}"
    );
    assert!(!people.contains("held"), "{people}");
    // The interrupted step: the operator's three answers, each the run's resume page.
    let interrupted = table(&page, "interrupted");
    assert!(interrupted.contains("<code>patch</code>"), "{interrupted}");
    assert!(interrupted.contains("an operator"), "{interrupted}");
    for decision in ["retry", "skip", "abort"] {
        let link =
            format!("href=\"/runs/{held}/resume?step=patch&amp;host=&amp;decision={decision}\"");
        assert!(interrupted.contains(&link), "{link} in {interrupted}");
    }
    assert!(!interrupted.contains(&cab), "{interrupted}");
    let failed_table = table(&page, "failed");
    assert!(
        failed_table.contains(&format!("href=\"/runs/{failed}\"")),
        "{failed_table}"
    );
    // Running: the cab and held runs with their progress; the failed one is not running.
    let running = table(&page, "running");
    assert!(
        running.contains(&cab) && running.contains(&held),
        "{running}"
    );
    assert!(!running.contains(&failed), "{running}");
    // Neither has a step done: held's patch is interrupted, cab's approval waits.
    assert_eq!(running.matches(" 0 of 2").count(), 2, "{running}");
    // The rejected edit names its file and line; the next cycles count down.
    assert!(page.contains("weekly.yaml:4:"), "{page}");
    assert!(
        page.contains(
            "2027-01 — 2027-01-04 09:00 UTC <span class=\"countdown\">(in 26 days 23 h)</span>"
        ),
        "{page}"
    );
    assert!(page.contains("href=\"/runbooks/weekly\""), "{page}");

    // Without a session a runbook page reveals nothing: a redirect naming nothing.
    let (status, head, body) = request(&daemon.addr, "GET", "/runbooks/weekly", &[], "");
    assert_eq!(status, 303, "{head}");
    assert!(
        !head.contains("weekly") && !body.contains("weekly"),
        "{head}{body}"
    );
    assert_eq!(page_as(&daemon, &cookie, "/runbooks/nothing").0, 404);

    // The runbook page: the schedule in words, the graph, the run, the version.
    let (status, cab_page) = page_as(&daemon, &cookie, "/runbooks/cab");
    assert_eq!(status, 200, "{cab_page}");
    for expected in [
        "Patched once the CAB approves",
        "No schedule: started by hand",
        "<svg",
        &format!("href=\"/runs/{cab}\""),
        "Trigger a run",
        "no later edit was refused",
    ] {
        assert!(cab_page.contains(expected), "{expected} in {cab_page}");
    }

    let browser = browser.join().expect("chromium and chromedriver start");
    browser.use_session(&daemon.url(), &cookie);
    browser.navigate(&format!("{}/", daemon.url()));
    assert_eq!(browser.title(), "Overview · patchday");
    let retry = format!("table.interrupted a[href$='decision=retry'][href^='/runs/{held}/']");
    assert_eq!(browser.find_all(&retry).len(), 1, "{}", browser.source());
    let approver = browser.find("table.waiting-people tbody tr");
    assert!(browser.text(&approver).contains("alice@example.com"));
    assert_eq!(browser.find_all("table.running progress").len(), 2);
    screenshot(&browser, "overview.png");

    browser.navigate(&format!("{}/runbooks/weekly", daemon.url()));
    assert_eq!(browser.title(), "Runbook weekly · patchday");
    let error = browser.text(&browser.find("ul.errors pre.error"));
    assert!(error.contains("weekly.yaml:4:"), "{error}");
    assert!(error.contains("colour"), "{error}");
    let rules = browser.text(&browser.find("ul.rules"));
    assert!(
        rules.contains("at first_monday 09:00 in January, April, July and October"),
        "{rules}"
    );
    assert!(!browser.find_all("svg.dag rect.box").is_empty());
    screenshot(&browser, "runbook-page.png");
}

fn screenshot(browser: &Browser, name: &str) {
    let png = browser.save_screenshot(&patchday_tests::artifacts_dir().join(name));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
}
