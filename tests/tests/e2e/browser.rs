//! A real browser decides an approval through its emailed link (issue #6, DESIGN §7).
//!
//! `patchday serve` runs as a separate process with a runbook whose approval step asks a role
//! of two people (quorum 1) before a command step; the approval emails land in the outbox
//! folder. Mail scanners' `GET`s and `HEAD`s of a link change nothing. Then a headless Chromium
//! (through chromedriver) opens the link, shows the confirmation page (runbook, cycle, step,
//! who decides, the choices), and a click on Approve decides it: the page's own form `POST`
//! passes the daemon's same-site and CSRF checks, the run goes on and finishes, and the audit
//! log has the decision by `link:<email>` with the source IP and the comment typed with it.
//! The page is headed with the step's own message and shows the patch window, the params, the
//! quorum so far and what each choice leads to (issue 15). Opened again by its owner, the link
//! shows what she chose and when, with the run's link: not an error, no `link.rejected` event.
//! The other approver is told his decision is no longer needed. Screenshots of the three pages
//! land in `target/test-artifacts/`. A missing Chromium fails this test; it never skips.

use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{
    Daemon, audit_events, count, emails_with, link_url, metric_is, poll, request, serve_command,
    without_mail,
};

const RUNBOOK: &str = r#"name: browser-demo
description: An approval decided in a real browser, then a command
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  cab: [alice@example.com, bob@example.com]
params:
  kb_list: { default: "KB5048667 KB5048685", description: KB articles in scope }
steps:
  cab-approval:
    description: The change advisory board agrees to tonight's window
    uses: approval
    with:
      approvers: [cab]
      quorum: 1
      message: "May we patch cycle {{cycle}} tonight?"
  patch:
    description: Patch the servers
    needs: [cab-approval]
    at: patch_tuesday+4d 22:00
    uses: command
    with: { run: "echo patched {{cycle}}" }
"#;

/// The page's heading: the approval's own message, not "Approve patch cycle …".
const HEADING: &str = "May we patch cycle 2026-12 tonight?";

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The text of the first element matching `selector`.
fn text_of(browser: &Browser, selector: &str) -> String {
    browser.text(&browser.find(selector))
}

/// Saves a screenshot as `name` in the artifacts folder and checks it is a real, non-trivial PNG.
fn screenshot(browser: &Browser, name: &str) {
    let path = patchday_tests::artifacts_dir().join(name);
    let png = browser.save_screenshot(&path);
    assert!(png.starts_with(PNG_SIGNATURE), "{name} is not a PNG");
    assert!(png.len() > 10_000, "{name} is suspiciously small");
}

#[test]
fn a_headless_browser_opens_the_approval_link_and_a_click_on_approve_decides() {
    // Chromium starts meanwhile: it is the slowest part.
    let browser = std::thread::spawn(Browser::start);

    let dir = patchday_tests::scratch("browser");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/browser-demo.yaml"), RUNBOOK).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let mut daemon = Daemon::start(serve_command(&dir, &database, &outbox));
    let addr = daemon.addr.clone();

    // One approval email per approver; Alice's carries her link.
    let subject = "Subject: [patchday] Approve browser-demo 2026-12: cab-approval\r\n";
    let emails = poll("the approval emails", Duration::from_secs(30), || {
        let texts = emails_with(&outbox, subject);
        (texts.len() == 2).then_some(texts)
    });
    let alice_email = emails
        .iter()
        .find(|t| t.contains("To: alice@example.com\r\n"))
        .unwrap_or_else(|| panic!("no approval email to Alice: {emails:#?}"));
    let link = link_url(alice_email);
    let path = link.strip_prefix(&daemon.url()).unwrap_or_else(|| {
        panic!(
            "the link {link} does not point at the daemon {}",
            daemon.url()
        )
    });
    assert!(path.starts_with("/links/"), "{link}");
    let step_waits = || {
        metric_is(&addr, "patchday_runs{state=\"running\"}", 1)
            && metric_is(&addr, "patchday_step_rows{state=\"awaiting_input\"}", 1)
    };
    assert!(step_waits(), "the approval step is not awaiting input");

    // The run page says who the run waits on and for what.
    let run_url = alice_email
        .lines()
        .find_map(|l| l.strip_prefix("Run page: "))
        .expect("the run page in the email");
    let run_path = run_url.strip_prefix(&daemon.url()).unwrap().trim();
    let (status, _, run_page) = request(&addr, "GET", run_path, &[], "");
    assert_eq!(status, 200, "{run_page}");
    let waiting = run_page
        .split("<h2>Waiting for</h2>")
        .nth(1)
        .expect("Waiting for");
    let waiting = waiting.split("<h2>").next().unwrap();
    assert!(
        waiting.contains("alice@example.com, bob@example.com"),
        "{waiting}"
    );
    assert!(
        waiting.contains("approval: 0 of 1 needed so far"),
        "{waiting}"
    );

    // Mail scanners fetch links before people do: GETs and HEADs change nothing.
    let before = without_mail(&audit_events(&database));
    for method in ["GET", "HEAD", "GET", "HEAD", "GET", "GET"] {
        let (status, head, _) = request(&addr, method, path, &[], "");
        assert_eq!(status, 200, "{method}: {head}");
    }
    assert_eq!(
        without_mail(&audit_events(&database)),
        before,
        "GET/HEAD of the link wrote audit events"
    );
    assert!(step_waits(), "GET/HEAD of the link moved the step");

    // The browser shows what is being decided and the choices; opening it decides nothing.
    let browser = browser.join().expect("chromium and chromedriver start");
    browser.navigate(&link);
    assert_eq!(browser.title(), format!("{HEADING} · patchday"));
    assert_eq!(text_of(&browser, "h1"), HEADING);
    assert!(
        browser.find_all(".lead").is_empty(),
        "the heading is said once"
    );
    let main = text_of(&browser, "main");
    for expected in [
        "The patch window",
        "Sat 2026-12-12 22:00 UTC",
        "Patch the servers",
        "KB5048667 KB5048685",
        "0 of 1 needed.",
        "the step succeeds; next: patch",
        "the step fails: no new step starts, and the run fails",
    ] {
        assert!(main.contains(expected), "{expected:?} missing:\n{main}");
    }
    let facts = text_of(&browser, "table.facts");
    for expected in [
        "Runbook\tbrowser-demo",
        "Cycle\t2026-12",
        "Step\tcab-approval — The change advisory board agrees to tonight's window",
        "Deciding as\talice@example.com",
    ] {
        // Rendered text separates a row's cells with a tab or a space, by browser version.
        let (label, value) = expected.split_once('\t').unwrap();
        assert!(
            facts.contains(&format!("{label}\t{value}"))
                || facts.contains(&format!("{label} {value}")),
            "{expected:?} missing from the facts:\n{facts}"
        );
    }
    assert!(
        text_of(&browser, "main").contains("Nobody has decided yet."),
        "{}",
        browser.source()
    );
    let buttons = browser.find_all("form[method=post] button[type=submit]");
    let labels: Vec<String> = buttons.iter().map(|b| browser.text(b)).collect();
    assert_eq!(labels, ["Approve", "Reject"]);
    screenshot(&browser, "approval-confirmation.png");
    assert_eq!(
        without_mail(&audit_events(&database)),
        before,
        "opening the link in the browser wrote audit events"
    );
    assert!(
        step_waits(),
        "opening the link in the browser moved the step"
    );

    // Every choice has a comment box. A comment, then a click on Approve: the form's POST, as
    // the browser sends it, decides.
    let comments = browser.find_all("form[method=post] textarea[name=comment]");
    assert_eq!(comments.len(), 2);
    browser.type_text(&comments[0], "Snapshots are in place.");
    browser.click(&buttons[0]);
    let title = poll("the decided page", Duration::from_secs(30), || {
        let title = browser.title();
        (!title.starts_with(HEADING)).then_some(title)
    });
    assert_eq!(
        title,
        "Approved by you · patchday",
        "the click did not decide:\n{}",
        browser.source()
    );
    assert_eq!(browser.current_url(), link);
    let notice = text_of(&browser, ".notice.done");
    assert!(
        notice.starts_with("Approved by you (alice@example.com) at 2026-12-08 ")
            && notice.contains("step cab-approval of patch cycle 2026-12 of browser-demo"),
        "{notice}"
    );
    assert!(
        text_of(&browser, "main").contains("This link is now used up."),
        "{}",
        browser.source()
    );
    screenshot(&browser, "approval-decided.png");

    // The run goes on: the command step runs and the run succeeds.
    poll("the run to succeed", Duration::from_secs(60), || {
        metric_is(&addr, "patchday_runs{state=\"succeeded\"}", 1).then_some(())
    });
    assert!(metric_is(
        &addr,
        "patchday_step_rows{state=\"succeeded\"}",
        2
    ));
    let events = audit_events(&database);
    assert_eq!(count(&events, "approval.decided"), 1);
    let decision = events
        .iter()
        .find(|e| e["action"] == "approval.decided")
        .unwrap();
    assert_eq!(decision["actor"], "link:alice@example.com");
    assert_eq!(decision["details"]["source_ip"], "127.0.0.1");
    assert_eq!(decision["details"]["choice"], "approve");
    assert_eq!(decision["details"]["recipient"], "alice@example.com");
    assert_eq!(decision["details"]["comment"], "Snapshots are in place.");
    let rejected = count(&events, "link.rejected");
    assert_eq!(
        rejected, 0,
        "the browser's POST was refused first: {events:#?}"
    );

    // Opened again by Alice: what she chose and when, with the run's link; nothing refused.
    browser.navigate(&link);
    assert_eq!(browser.title(), "You already decided: approved · patchday");
    let notice = text_of(&browser, ".notice.done");
    assert!(
        notice.starts_with("Approved by you (alice@example.com) at 2026-12-08 "),
        "{notice}"
    );
    assert!(
        notice.contains("Your comment: Snapshots are in place."),
        "{notice}"
    );
    let run_link = browser.find("main a[href^='/runs/']");
    assert_eq!(browser.text(&run_link), "See the run");
    screenshot(&browser, "approval-reopened.png");
    let events = audit_events(&database);
    assert_eq!(count(&events, "link.rejected"), 0, "{events:#?}");
    assert_eq!(count(&events, "approval.decided"), 1);

    // Bob, who did not decide, is told his decision is no longer needed.
    let moot = poll(
        "Bob's no longer needed email",
        Duration::from_secs(30),
        || {
            let moot = emails_with(
                &outbox,
                &format!(
                    "Subject: [patchday] browser-demo 2026-12: no longer needed: {HEADING}\r\n"
                ),
            );
            (!moot.is_empty()).then_some(moot)
        },
    );
    assert_eq!(moot.len(), 1, "{moot:#?}");
    assert!(moot[0].contains("To: bob@example.com\r\n"), "{}", moot[0]);
    assert!(
        moot[0].contains("the quorum was reached: approve by alice@example.com"),
        "{}",
        moot[0]
    );

    drop(browser);
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0));
    patchday_tests::assert_audit_verifies(&database);
    let _ = std::fs::remove_dir_all(&dir);
}
