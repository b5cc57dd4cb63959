//! The run page in a real browser (issue #13): a daemon run's step graph and timeline are
//! inline SVG, and the page follows the run in place (the live section is swapped by its
//! polling script; the document is never reloaded) until the run ends.
//!
//! `patchday serve` runs a runbook whose approval step waits for a person before a command
//! step. Headless Chromium opens the run page while the approval waits: the graph shows the
//! approval "awaiting a person", the timeline an "awaiting a person" segment and the "now"
//! line. The approval is then decided through its emailed link (a plain form `POST`, outside
//! the browser); without touching the browser, its page comes to show both steps succeeded
//! and the run finished, in the same document. Then the month calendar shows the cycle on
//! Patch Tuesday, and its link to the next month works. Screenshots land in
//! `target/test-artifacts/`.

use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{
    Daemon, audit_events, emails_with, hidden_field, link_url, poll, request, serve_command,
};

const RUNBOOK: &str = r#"name: dashboard-demo
description: An approval, then a command, watched on the run page
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  cab: [alice@example.com]
steps:
  cab-approval:
    description: The change advisory board agrees
    uses: approval
    with:
      approvers: [cab]
      quorum: 1
      message: "May we patch cycle {{cycle}}?"
  patch:
    needs: [cab-approval]
    uses: command
    with: { run: "echo patched {{cycle}}" }
"#;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn screenshot(browser: &Browser, name: &str) {
    let path = patchday_tests::artifacts_dir().join(name);
    let png = browser.save_screenshot(&path);
    assert!(png.starts_with(PNG_SIGNATURE), "{name} is not a PNG");
    assert!(png.len() > 10_000, "{name} is suspiciously small");
}

/// How many elements match `selector` now.
fn count_of(browser: &Browser, selector: &str) -> usize {
    browser.find_all(selector).len()
}

#[test]
fn the_run_page_draws_graph_and_timeline_and_follows_the_run_in_place() {
    let browser = std::thread::spawn(Browser::start);
    let dir = patchday_tests::scratch("dashboard");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/dashboard-demo.yaml"), RUNBOOK).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let daemon = Daemon::start(serve_command(&dir, &database, &outbox));
    let addr = daemon.addr.clone();

    let subject = "Subject: [patchday] Approve dashboard-demo 2026-12: cab-approval\r\n";
    let email = poll("the approval email", Duration::from_secs(30), || {
        emails_with(&outbox, subject).into_iter().next()
    });
    let run_id = audit_events(&database)
        .iter()
        .find(|e| e["action"] == "run.started")
        .and_then(|e| e["run_id"].as_str().map(str::to_string))
        .expect("a run.started event");

    // Without JavaScript the page still works: a <noscript> refresh while the run goes on.
    let page_path = format!("/runs/{run_id}");
    // Nothing of the run, its live section or the month without a session.
    for path in [
        page_path.clone(),
        format!("{page_path}/live"),
        "/calendar".into(),
    ] {
        let (status, head, body) = request(&addr, "GET", &path, &[], "");
        assert_eq!(status, 303, "{path}: {head}");
        assert!(!body.contains(&run_id) && !head.contains(&run_id), "{path}");
    }
    let (status, head, page) =
        request(&addr, "GET", &page_path, &[("Cookie", daemon.cookie())], "");
    assert_eq!(status, 200, "{head}");
    assert!(
        page.contains("<noscript><meta http-equiv=\"refresh\""),
        "{page}"
    );
    assert!(head.contains("script-src 'sha256-"), "{head}");

    let browser = browser.join().expect("chromium and chromedriver start");
    browser.use_session(&daemon.url(), daemon.cookie());
    browser.navigate(&format!("{}{page_path}", daemon.url()));
    assert_eq!(browser.title(), "Run 2026-12 of dashboard-demo · patchday");
    assert_eq!(count_of(&browser, "svg.dag rect.box"), 2);
    assert_eq!(count_of(&browser, "svg.dag g.edges path"), 1);
    assert_eq!(
        count_of(
            &browser,
            "svg.dag g.step[data-step='cab-approval'][data-state='awaiting a person']"
        ),
        1,
        "{}",
        browser.source()
    );
    assert_eq!(
        count_of(
            &browser,
            "svg.dag g.step[data-step='patch'][data-state='pending']"
        ),
        1
    );
    let approval_box = browser.find("svg.dag g.step[data-step='cab-approval']");
    assert!(browser.text(&approval_box).contains("awaiting a person"));
    assert!(
        count_of(
            &browser,
            "svg.timeline rect.segment[data-phase='awaiting a person']"
        ) >= 1,
        "{}",
        browser.source()
    );
    assert_eq!(count_of(&browser, "svg.timeline g.now"), 1);
    screenshot(&browser, "run-page-awaiting.png");
    browser.execute("window.patchdayMarker = 'the same document'; return null;");

    // The approval is decided outside the browser; the page follows on its own.
    let link = link_url(&email);
    let link_path = link
        .strip_prefix(&daemon.url())
        .expect("a link to the daemon");
    let (_, _, confirmation) = request(&addr, "GET", link_path, &[], "");
    let form = format!(
        "csrf={}&choice=approve",
        hidden_field(&confirmation, "csrf")
    );
    let (status, head, _) = request(&addr, "POST", link_path, &[], &form);
    assert_eq!(status, 200, "{head}");
    poll(
        "the page to show the run finished",
        Duration::from_secs(60),
        || (count_of(&browser, "section#live[data-state='succeeded']") == 1).then_some(()),
    );
    for step in ["cab-approval", "patch"] {
        let selector = format!("svg.dag g.step[data-step='{step}'][data-state='succeeded']");
        assert_eq!(count_of(&browser, &selector), 1, "{}", browser.source());
    }
    assert!(count_of(&browser, "svg.timeline rect.segment[data-phase='running']") >= 1);
    assert_eq!(
        count_of(&browser, "svg.timeline g.now"),
        0,
        "a finished run has no now"
    );
    assert_eq!(
        browser.execute("return window.patchdayMarker;"),
        "the same document",
        "the page was reloaded instead of updated in place"
    );
    let audit = browser.text(&browser.find("section#live"));
    assert!(audit.contains("approval.decided"), "{audit}");
    screenshot(&browser, "run-page-finished.png");

    // The month calendar: today (the daemon's clock) is December's Patch Tuesday, with the
    // cycle's start on it; the filter and the month links are plain GETs.
    browser.navigate(&format!("{}/calendar", daemon.url()));
    assert_eq!(browser.title(), "Patch calendar 2026-12 · patchday");
    let today = browser.text(&browser.find("td.today[data-date='2026-12-08']"));
    assert!(today.contains("Patch Tuesday"), "{today}");
    assert!(
        today.contains("10:00 UTC dashboard-demo: cycle 2026-12 starts"),
        "{today}"
    );
    screenshot(&browser, "calendar-month.png");
    browser.click(&browser.find("a[rel=next]"));
    assert_eq!(browser.title(), "Patch calendar 2027-01 · patchday");
    let january = browser.text(&browser.find("td[data-date='2027-01-12']"));
    assert!(january.contains("Patch Tuesday"), "{january}");

    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}
