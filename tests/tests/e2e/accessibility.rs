//! Accessibility of every dashboard page (issue #13, Tests): headless Chromium opens each page
//! against a real `patchday serve`, axe-core (npm, `.ci/deps-axe.sh`) runs in it, and no
//! violation of impact serious or critical may be found. Each page's screenshot lands in
//! `target/test-artifacts/a11y-<page>.png` (a fixed 1200×1000 window); with
//! `PATCHDAY_UPDATE_SCREENSHOTS=1` the main pages are also copied to `docs/screenshots/` for the
//! README's tour.
//!
//! The pages: the sign-in page, the overview, the month calendar, the run page of a run in each
//! state (waiting for an approval, running, failed, succeeded, cancelled, and interrupted after
//! the daemon was killed during a command), the trigger form, the decide, cancel and resume
//! confirm pages, the email link's confirmation page, and the audit browser.

use std::path::Path;
use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{
    Daemon, emails_with, hidden_field, link_url, poll, request, run_of, serve_command, sign_in_as,
};

const LIMIT: Duration = Duration::from_secs(60);

/// Runbooks that start together at December 2026's Patch Tuesday 10:00 and end in different
/// states, and one started by hand with params.
const RUNBOOKS: &[(&str, &str)] = &[
    (
        "approve",
        "name: approve\ndescription: The CAB agrees first\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nroles:\n  cab: [alice@example.com]\nsteps:\n  cab-approval:\n    uses: approval\n    with: { approvers: [cab], quorum: 1, message: \"May we patch {{cycle}}?\" }\n  patch:\n    needs: [cab-approval]\n    uses: noop\n",
    ),
    (
        "stopped",
        "name: stopped\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nsteps:\n  patch:\n    uses: command\n    with: { run: \"sleep 600\" }\n",
    ),
    (
        "broken",
        "name: broken\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nsteps:\n  patch:\n    uses: command\n    with: { run: \"exit 3\" }\n",
    ),
    (
        "fine",
        "name: fine\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nsteps:\n  check:\n    uses: noop\n  patch:\n    needs: [check]\n    uses: noop\n",
    ),
    (
        "emergency",
        "name: emergency\ndescription: Patch a zero-day now\ntimezone: UTC\nparams:\n  cve: { description: The CVE to patch }\n  scope: { default: test, choices: [test, prod] }\nsteps:\n  patch:\n    uses: noop\n",
    ),
];

/// A runbook whose command runs until killed, writing its process id to `dir/pid` first.
fn long_runbook(dir: &Path) -> String {
    format!(
        "name: long\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\ncatch_up: 1h\nsteps:\n  \
         patch:\n    uses: command\n    with: {{ run: \"echo $$ > {pid}; exec sleep 600\" }}\n",
        pid = dir.join("pid").display()
    )
}

/// `patchday serve` on the test's folder and database, with its roles.
fn serve(dir: &Path, database: &str) -> Daemon {
    let mut command = serve_command(dir, database, &dir.join("outbox"));
    command.args(["--config", &dir.join("patchday.toml").display().to_string()]);
    Daemon::start(command)
}

const ROLES: &str = "[auth]\nviewers = [\"alice@example.com\"]\n";

/// The pages copied to `docs/screenshots/` for the README's tour.
const TOUR: &[&str] = &[
    "overview",
    "calendar",
    "run-awaiting",
    "run-failed",
    "trigger-form",
    "link-confirmation",
    "audit",
    "runbook",
    "sessions",
    "decide-confirm",
];

/// Opens `url`, runs axe-core, saves the screenshot; the serious or critical violations found,
/// each named with the page.
fn check(browser: &Browser, name: &str, url: &str) -> Vec<String> {
    browser.navigate(url);
    let violations = browser.axe_violations();
    let file = patchday_tests::artifacts_dir().join(format!("a11y-{name}.png"));
    let png = browser.save_screenshot(&file);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
    if TOUR.contains(&name) && std::env::var_os("PATCHDAY_UPDATE_SCREENSHOTS").is_some() {
        let docs = patchday_tests::repo_root().join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&file, docs.join(format!("{name}.png"))).unwrap();
    }
    violations
        .iter()
        .map(|v| format!("{name} ({url}): {v}"))
        .collect()
}

/// Waits until the run page of `id` says the run is in `state`.
fn await_state(daemon: &Daemon, id: &str, state: &str) {
    poll(&format!("run {id} {state}"), LIMIT, || {
        let (_, page) = daemon.page(&format!("/runs/{id}"));
        page.contains(&format!("data-state=\"{state}\""))
            .then_some(())
    });
}

#[test]
fn every_page_has_no_serious_or_critical_accessibility_violation() {
    let browser = std::thread::spawn(Browser::start);
    let dir = patchday_tests::scratch("accessibility");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    for (name, text) in RUNBOOKS {
        std::fs::write(dir.join("runbooks").join(format!("{name}.yaml")), text).unwrap();
    }
    std::fs::write(dir.join("runbooks/long.yaml"), long_runbook(&dir)).unwrap();
    std::fs::write(dir.join("patchday.toml"), ROLES).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let daemon = serve(&dir, &database);
    let base = daemon.url();

    let email = poll("the approval email", LIMIT, || {
        emails_with(&outbox, "Subject: [patchday] Approve approve 2026-12").pop()
    });
    let runs: Vec<(&str, String)> = ["approve", "long", "stopped", "broken", "fine"]
        .iter()
        .map(|r| (*r, run_of(&database, r)))
        .collect();
    let id = |runbook: &str| runs.iter().find(|(r, _)| *r == runbook).unwrap().1.clone();
    await_state(&daemon, &id("broken"), "failed");
    await_state(&daemon, &id("fine"), "succeeded");
    let (_, overview) = daemon.page("/");
    let csrf = hidden_field(&overview, "csrf");
    let cancel = format!("/runs/{}/cancel", id("stopped"));
    let (status, _, body) = request(
        &daemon.addr,
        "POST",
        &cancel,
        &[("Cookie", daemon.cookie())],
        &format!("csrf={csrf}"),
    );
    assert!(status == 303 || status == 200, "{status}: {body}");
    await_state(&daemon, &id("stopped"), "cancelled");
    let alice = sign_in_as(&daemon, &outbox, "alice@example.com");

    let browser = browser.join().expect("chromium and chromedriver start");
    let mut found = Vec::new();
    found.extend(check(&browser, "signin", &format!("{base}/signin")));
    found.extend(check(&browser, "link-confirmation", &link_url(&email)));
    browser.use_session(&base, daemon.cookie());
    let pages = [
        ("overview", "/".to_string()),
        ("calendar", "/calendar?month=2026-12".into()),
        ("run-awaiting", format!("/runs/{}", id("approve"))),
        ("run-running", format!("/runs/{}", id("long"))),
        ("run-failed", format!("/runs/{}", id("broken"))),
        ("run-succeeded", format!("/runs/{}", id("fine"))),
        ("run-cancelled", format!("/runs/{}", id("stopped"))),
        ("trigger-form", "/runbooks/emergency/trigger".into()),
        ("cancel-confirm", format!("/runs/{}/cancel", id("long"))),
        ("audit", "/audit".into()),
        ("runbook", "/runbooks/emergency".into()),
        ("sessions", "/sessions".into()),
    ];
    for (name, path) in &pages {
        found.extend(check(&browser, name, &format!("{base}{path}")));
    }
    browser.use_session(&base, &alice);
    let decide = format!(
        "{base}/runs/{}/decide?step=cab-approval&host=&choice=approve",
        id("approve")
    );
    found.extend(check(&browser, "decide-confirm", &decide));
    assert!(
        browser.source().contains("cab-approval"),
        "the decide page is the real one: {}",
        browser.source()
    );

    // The daemon dies while `long` runs its command: after a restart the step is interrupted
    // and the resume page asks an operator what to do.
    let pid = poll("the command's pid", LIMIT, || {
        std::fs::read_to_string(dir.join("pid"))
            .ok()
            .filter(|p| p.ends_with('\n'))
    });
    drop(daemon);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let daemon = serve(&dir, &database);
    let long = format!("/runs/{}", id("long"));
    poll("the step to wait for an operator", LIMIT, || {
        let (_, page) = daemon.page(&long);
        page.contains("was interrupted").then_some(())
    });
    let base = daemon.url();
    browser.use_session(&base, daemon.cookie());
    found.extend(check(&browser, "run-interrupted", &format!("{base}{long}")));
    let resume = format!("{base}{long}/resume?step=patch&host=&decision=retry");
    found.extend(check(&browser, "resume-confirm", &resume));
    assert!(
        browser
            .find_all("form[method=post][action$='/resume']")
            .len()
            == 1,
        "the resume page is the real one: {}",
        browser.source()
    );
    assert!(found.is_empty(), "{}", found.join("\n"));

    // axe really runs under the pages' Content-Security-Policy: an image without a text
    // alternative, added to a page, is found (critical).
    browser.execute(
        "document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"data:,\">'); return null;",
    );
    let planted = browser.axe_violations();
    assert!(
        planted.iter().any(|v| v["id"] == "image-alt"),
        "axe-core missed a planted violation: {planted:?}"
    );
}
