//! The README's "First run" walkthrough (issue #6's "Done when"), done the way a newcomer does
//! it: `demo/local-hosts.sh start`, `. demo-state/env`, `patchday serve --config
//! demo-state/patchday.toml` on the real clock (no `--now`, no virtual clock), the dashboard URL
//! it prints lists the runbooks and their next cycles; `patchday trigger emergency-local --param
//! cve=...`; the emails land in the SMTP server's folder (read from the `.txt` files, as the
//! README says); the security officer's link opens in a headless Chromium and a click on the
//! first choice (patch-now) lets the run go on: the test server, production in two waves, the
//! checks, the change closed, the report; the coordinator marks the review task done; the run
//! page, left open in the browser, reloads itself until it says `succeeded`. Then `patchday
//! status`, the report and "run succeeded" emails, the change ticket, what ran on which host, and
//! `patchday audit verify`.
//!
//! The one difference from the README: the daemon listens on a free port (`--listen
//! 127.0.0.1:0`) instead of 8080, and the operator commands get `--server` for it. Every wait is
//! for a signal (an email file, a page, a command's answer), bounded. The demo's HTTP port is
//! fixed, so the test holds the lock `demo.rs` holds. Screenshots land in
//! `target/test-artifacts/first-run-*.png`.

use std::path::Path;
use std::time::Instant;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{audit_events, hidden_field, poll, request};
use patchday_tests::{assert_exit, patchday, stderr, stdout};
use serde_json::{Value, json};

use crate::demo::{
    Hosts, LIMIT, Served, assert_authenticated_and_unique, assert_no_secret_leaked, demo_lock,
};

const CVE: &str = "CVE-2026-12345";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Saves a screenshot as `name` in the artifacts folder; checks it is a real, non-trivial PNG.
fn screenshot(browser: &Browser, name: &str) {
    let path = patchday_tests::artifacts_dir().join(name);
    let png = browser.save_screenshot(&path);
    assert!(png.starts_with(PNG_SIGNATURE), "{name} is not a PNG");
    assert!(png.len() > 10_000, "{name} is suspiciously small");
}

/// The whole `http://…/links/…` URL of an email's readable text (one line, unwrapped).
fn link_in(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("http") && l.contains("/links/"))
        .unwrap_or_else(|| panic!("no link line in:\n{text}"));
    line.trim().to_string()
}

/// `monthly-local`'s next cycles as the dashboard shows them (`2026-12 — 2026-12-01 09:00 UTC`),
/// from `patchday calendar`: four, so that a fire passing between the two calls still matches.
fn monthly_local_cycles() -> Vec<String> {
    let out = patchday()
        .args([
            "calendar",
            "runbooks/demo/monthly-local.yaml",
            "--count",
            "4",
        ])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let calendar: Value = serde_json::from_str(&stdout(&out)).unwrap();
    calendar["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            // The runbook's zone is UTC: `2026-12-01T09:00:00+00:00` → `2026-12-01 09:00 UTC`.
            let fires = c["fires_at"].as_str().unwrap();
            format!(
                "{} — {} UTC",
                c["cycle"].as_str().unwrap(),
                fires[..16].replace('T', " ")
            )
        })
        .collect()
}

#[test]
fn a_newcomer_triggers_the_emergency_runbook_approves_in_a_browser_and_watches_it_finish() {
    let began = Instant::now();
    // Chromium starts meanwhile: it is the slowest part.
    let browser = std::thread::spawn(Browser::start);
    let _lock = demo_lock();
    let locked = began.elapsed();
    let state = patchday_tests::scratch("first-run");

    let out = patchday()
        .args(["validate", "runbooks/", "runbooks/demo/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("emergency-local"), "{}", stdout(&out));

    // ---- demo/local-hosts.sh start; . demo-state/env; patchday serve --config … ------------
    let hosts = Hosts::start(&state);
    let ssh_port = hosts.port("ssh");
    let mut served = Served::start(&hosts, None, false);

    // The dashboard URL it prints: the runbooks, and the next cycles of the scheduled one.
    let serving = served.daemon.serving.clone();
    let dashboard = served.daemon.url();
    assert!(
        serving.starts_with(&format!("patchday serving {dashboard} (")),
        "{serving}"
    );
    let (status, index) = served.daemon.page("/");
    assert_eq!(status, 200, "{index}");
    for runbook in ["emergency-local", "monthly-local", "local-maintenance"] {
        assert!(
            index.contains(&format!("<strong>{runbook}</strong>")),
            "{runbook} missing from the dashboard:\n{index}"
        );
    }
    assert!(
        index.contains(
            "no schedule: started by hand (<code>patchday trigger emergency-local</code>)"
        ),
        "{index}"
    );
    let expected = monthly_local_cycles();
    let shown: Vec<&String> = expected
        .iter()
        .filter(|c| index.contains(&format!("<li>{c} <span class=\"countdown\">(in ")))
        .collect();
    assert!(
        shown.len() == 3 && (shown[0] == &expected[0] || shown[0] == &expected[1]),
        "monthly-local's next cycles {expected:?} are not on the dashboard:\n{index}"
    );

    // ---- patchday trigger emergency-local --param cve=… (the demo's API token) -------------
    let out = served.cli(
        &hosts,
        &[
            "trigger",
            "emergency-local",
            "--param",
            &format!("cve={CVE}"),
        ],
    );
    assert_exit(&out, 0);
    let said = stdout(&out);
    let run = said
        .strip_prefix("run ")
        .and_then(|rest| rest.split_once(" started: emergency-local"))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("{said}"));

    // ---- The emails, read as the README says: the .txt files ----------------------------
    let management = hosts.await_mail(&format!("[critical] Emergency patching for {CVE}"), 1);
    assert_eq!(
        management[0]["rcpt_tos"],
        json!([
            "it-management@example.com",
            "ciso@example.com",
            "patch-coordinator@example.com",
            "security-officer@example.com"
        ])
    );
    let readable = management[0]["readable"].as_str().unwrap();
    assert!(
        readable.contains("To: it-management@example.com, ciso@example.com\n")
            && readable.contains(&format!(
                "Subject: [critical] Emergency patching for {CVE}\n"
            ))
            && readable.contains(&format!("Follow the run: {dashboard}/runs/{run}\n")),
        "{readable}"
    );

    // A triggered run is a manual run, not a cycle: its emails and pages name none.
    let asks = hosts.await_mail("[patchday] Approve emergency-local: security-decision", 1);
    assert_eq!(asks.len(), 1);
    let ask = &asks[0];
    assert_eq!(ask["rcpt_tos"], json!(["security-officer@example.com"]));

    // The change was opened in the demo's change API, and the ask names it.
    let changes = hosts.changes();
    let (number, ticket) = changes
        .iter()
        .find(|(_, c)| c["short_description"] == format!("Emergency patch {CVE}"))
        .unwrap_or_else(|| panic!("no emergency change: {changes:#?}"));
    assert_eq!(ticket["state"], "new");
    assert_eq!(ticket["type"], "emergency");
    let readable = ask["readable"].as_str().unwrap();
    assert!(
        readable.contains(&format!(
            "{CVE} (critical), change {number}: patch now, or wait for business approval?"
        )),
        "{readable}"
    );
    let link = link_in(readable);
    assert!(
        link.starts_with(&format!("{dashboard}/links/")),
        "{link} does not point at {dashboard}"
    );
    // The .txt holds the same link as the message's decoded text (the .eml wraps it).
    assert_eq!(link, link_in(ask["text"].as_str().unwrap()));

    // ---- The security officer opens the link in a browser and clicks patch-now ------------
    let browser = browser.join().expect("chromium and chromedriver start");
    // Signed in (as the operator is): the run page behind "See the run" needs a session.
    browser.use_session(&dashboard, served.daemon.cookie());
    browser.navigate(&link);
    // Headed with the security officer's own question, not as a monthly cycle (issue 15).
    let title =
        format!("{CVE} (critical), change {number}: patch now, or wait for business approval?");
    assert_eq!(browser.title(), format!("{title} · patchday"));
    assert_eq!(browser.text(&browser.find("h1")), title);
    assert!(!browser.source().contains("Approve patch cycle"));
    let buttons = browser.find_all("form[method=post] button[type=submit]");
    let labels: Vec<String> = buttons.iter().map(|b| browser.text(b)).collect();
    assert_eq!(labels, ["Patch-now", "Wait-for-business"]);
    screenshot(&browser, "first-run-approval.png");
    browser.click(&buttons[0]);
    // The click may return before the next page is there: wait for its title.
    let decided = poll("the decided page", LIMIT, || {
        let title = browser.title();
        title.starts_with("Chose").then_some(title)
    });
    assert_eq!(
        decided,
        "Chose “patch-now” by you · patchday",
        "the click did not decide:\n{}",
        browser.source()
    );
    screenshot(&browser, "first-run-decided.png");

    // "See the run": the run page, which reloads itself while the run goes on.
    browser.click(&browser.find("main a[href^=\"/runs/\"]"));
    let on_run_page = poll("the run page", LIMIT, || {
        let title = browser.title();
        title.starts_with("Manual run ").then_some(title)
    });
    assert_eq!(on_run_page, "Manual run of emergency-local · patchday");
    assert_eq!(browser.current_url(), format!("{dashboard}/runs/{run}"));

    // Day 2 in seconds: the test server, production in waves, the checks, the change closed,
    // the report; then the review task for the coordinator.
    let report = hosts.await_mail("Patch report: emergency-local", 1);
    let tasks = hosts.await_mail("[patchday] Task emergency-local: review-meeting", 1);
    assert_eq!(
        tasks[0]["rcpt_tos"],
        json!(["patch-coordinator@example.com"])
    );
    // The run waits for the coordinator, so the page open in the browser still follows it.
    let page = browser.source();
    assert!(
        page.contains("<section id=\"live\" data-state=\"running\""),
        "{page}"
    );

    // The coordinator marks the task done from their own mail client (the page's form, as a
    // browser posts it).
    let task_link = link_in(tasks[0]["readable"].as_str().unwrap());
    let task_path = task_link.strip_prefix(&dashboard).unwrap();
    let (status, _, task_page) = request(&served.addr, "GET", task_path, &[], "");
    assert_eq!(status, 200, "{task_page}");
    assert!(
        task_page.contains(&format!("Hold the post-implementation review for {CVE}")),
        "{task_page}"
    );
    let form = format!("csrf={}&choice=done", hidden_field(&task_page, "csrf"));
    let (status, _, decided) = request(
        &served.addr,
        "POST",
        task_path,
        &[("Origin", &dashboard), ("Sec-Fetch-Site", "same-origin")],
        &form,
    );
    assert_eq!(status, 200, "{decided}");

    // ---- Watch the run finish: the open run page follows the run until it says so ---------
    let finished_state = "<section id=\"live\" data-state=\"succeeded\"";
    poll("the run page to say the run succeeded", LIMIT, || {
        browser.source().contains(finished_state).then_some(())
    });
    screenshot(&browser, "first-run-run.png");

    let out = served.cli(&hosts, &["status", &run, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let detail: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(detail["run"]["state"], "succeeded");
    let state_of = |step: &str| {
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step && s["host"] == "")
            .map(|s| s["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state_of("business-approval").as_deref(), Some("skipped"));
    for step in [
        "notify-management",
        "open-emergency-ticket",
        "security-decision",
        "roll-out-test",
        "smoke-test-test",
        "roll-out-production",
        "monitor-production",
        "close-emergency-ticket",
        "report",
        "review-meeting",
    ] {
        assert_eq!(state_of(step).as_deref(), Some("succeeded"), "{step}");
    }

    // ---- The report and the end, by email ---------------------------------------------
    let managers_and_coordinator = json!([
        "it-management@example.com",
        "ciso@example.com",
        "patch-coordinator@example.com"
    ]);
    assert_eq!(report[0]["rcpt_tos"], managers_and_coordinator);
    let text = report[0]["text"].as_str().unwrap();
    for row in [
        "| test1 | roll-out-test | patched |",
        "| node1 | roll-out-production | patched |",
        "| node2 | roll-out-production | patched |",
        "| security-decision | security-officer@example.com | patch-now |",
    ] {
        assert!(text.contains(row), "{row} missing from the report:\n{text}");
    }
    let attached: Vec<&str> = report[0]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert!(
        attached.iter().any(|f| f.ends_with(".md"))
            && attached.iter().any(|f| f.ends_with(".html")),
        "{attached:?}"
    );
    let finished = hosts.await_mail("[patchday] emergency-local: run succeeded", 1);
    assert_eq!(finished[0]["rcpt_tos"], managers_and_coordinator);

    // The test server first, then production one node at a time, each once, over the demo sshd.
    let commands = hosts.commands_with(&format!("--cve {CVE} "));
    let order: Vec<(&str, &str)> = commands
        .iter()
        .map(|(h, w, _, _)| (h.as_str(), w.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("test1", "started"),
            ("test1", "patched"),
            ("node1", "started"),
            ("node1", "patched"),
            ("node2", "started"),
            ("node2", "patched")
        ]
    );
    for (host, what, _, rest) in &commands {
        if what == "started" {
            assert!(
                rest.contains(&format!(" 127.0.0.1 {ssh_port}]")),
                "{host} did not run through the demo sshd: {rest}"
            );
        }
    }
    let changes = hosts.changes();
    assert_eq!(changes[number]["state"], "closed");
    assert_eq!(changes[number]["close_notes"], format!("{CVE} patched"));

    // Who decided, in the audit log.
    let events = audit_events(&hosts.database());
    let decided_by: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["action"] == "approval.decided" && e["run_id"] == run.as_str())
        .map(|e| (e["step_id"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert!(
        decided_by.contains(&("security-decision", "link:security-officer@example.com")),
        "{decided_by:?}"
    );

    assert_authenticated_and_unique(&hosts.mail());
    assert_no_secret_leaked(&hosts, &served);
    assert_eq!(served.daemon.terminate().code(), Some(0));

    // `patchday audit verify --config demo-state/patchday.toml`, as the README says.
    let out = patchday()
        .args(["audit", "verify", "--config", &hosts.config()])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("integrity ok"), "{}", stdout(&out));

    drop(browser);
    drop(hosts);
    let _ = std::fs::remove_dir_all(Path::new(&state));
    eprintln!(
        "first run walked through in {:.1?} (after {locked:.1?} waiting for the demo lock)",
        began.elapsed() - locked
    );
}
