//! The month calendar (`GET /calendar`, issue 13 item 2) in headless Chromium: a month with
//! every runbook's cycles and their steps' planned times, Patch Tuesday and today marked,
//! blackout days shaded with their reason, a blacked-out cycle shown skipped and a cycle the
//! scheduler recorded as missed shown missed with why; the previous/next month links and the
//! runbook filter work (plain links and a `GET` form).
//!
//! The missed cycle is real: `patchday run --cycle 2026-11` records November's run, then the
//! daemon starts on 8 December at noon, a week after December's cycle was due (catch-up 1h),
//! and records `cycle.missed`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{Daemon, audit_events, poll};
use patchday_tests::{patchday, run, stderr};

const NOW: &str = "2026-12-08T12:00:00Z";

const PATCH_MONTH: &str = "name: patch-month
description: A month of patching with timed steps
timezone: UTC
schedule:
  - at: patch_tuesday-7d 09:00
catch_up: 1h
steps:
  committee-email: { uses: noop, at: patch_tuesday-7d 09:00 }
  cab: { uses: noop, needs: [committee-email], at: patch_tuesday-1d 14:00 }
  patch-night: { uses: noop, needs: [cab], at: patch_tuesday+4d 22:00 }
  report: { uses: noop, needs: [patch-night], at: patch_tuesday+5d 08:00 }
";

const FROZEN_LAB: &str = "name: frozen-lab
description: Lab servers, frozen in December's second week
timezone: Europe/Berlin
schedule:
  - at: patch_tuesday+2d 20:00
blackouts:
  - { from: 2026-12-09, to: 2026-12-11, reason: \"CAB freeze <week 50>\" }
steps:
  verify: { uses: noop, at: patch_tuesday+3d 09:00 }
";

/// The text of the one element `selector` finds.
fn text_of(browser: &Browser, selector: &str) -> String {
    browser.text(&browser.find(selector))
}

fn count_of(browser: &Browser, selector: &str) -> usize {
    browser.find_all(selector).len()
}

/// November's run of patch-month, before the daemon starts.
fn run_november(dir: &Path, database: &str) {
    let file = dir.join("runbooks/patch-month.yaml").display().to_string();
    let args = [
        "run",
        &file,
        "--cycle",
        "2026-11",
        "--database",
        database,
        "--now",
        NOW,
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_month_shows_cycles_steps_blackouts_missed_and_skipped_and_filters() {
    let browser = std::thread::spawn(Browser::start);
    let dir = patchday_tests::scratch("month");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/patch-month.yaml"), PATCH_MONTH).unwrap();
    std::fs::write(dir.join("runbooks/frozen-lab.yaml"), FROZEN_LAB).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    run_november(&dir, &database);
    let mut cmd = patchday();
    cmd.current_dir(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--outbox", &dir.join("outbox").display().to_string()])
        .args(["--now", NOW])
        .stderr(Stdio::null());
    let daemon = Daemon::start(cmd);
    poll("December's cycle.missed", Duration::from_secs(30), || {
        audit_events(&database)
            .iter()
            .any(|e| e["action"] == "cycle.missed" && e["details"]["cycle"] == "2026-12")
            .then_some(())
    });

    let browser = browser.join().expect("chromium and chromedriver start");
    browser.use_session(&daemon.url(), daemon.cookie());
    browser.navigate(&format!("{}/calendar", daemon.url()));
    assert_eq!(browser.title(), "Patch calendar 2026-12 · patchday");

    // Today is Patch Tuesday, marked in words.
    let today = text_of(&browser, "td.today[data-date='2026-12-08']");
    assert!(
        today.contains("today") && today.contains("Patch Tuesday"),
        "{today}"
    );
    assert_eq!(count_of(&browser, "td.today"), 1);
    assert_eq!(count_of(&browser, "td .tag.pt"), 1);

    // December's patch-month cycle was missed: its start and every step, struck, with why.
    let missed = "li[data-runbook='patch-month'][data-cycle='2026-12'][data-state='missed']";
    assert_eq!(count_of(&browser, missed), 5, "{}", browser.source());
    let start = text_of(
        &browser,
        "td[data-date='2026-12-01'] li[data-state='missed']",
    );
    assert!(
        start.contains("09:00 UTC patch-month: cycle 2026-12 starts")
            && start.contains("missed: due 2026-12-01T09:00:00+00:00"),
        "{start}"
    );
    let cab = text_of(&browser, "td[data-date='2026-12-07'] li");
    assert!(cab.contains("14:00 UTC patch-month: cab"), "{cab}");
    assert_eq!(count_of(&browser, "td[data-date='2026-12-07'] li s"), 1);

    // The freeze: three days shaded, each with its reason; the lab's cycle and step skipped.
    let shaded = browser.find_all("td.blackout");
    assert_eq!(shaded.len(), 3);
    let background = browser
        .execute("return getComputedStyle(document.querySelector('td.blackout')).backgroundImage;");
    assert!(
        background.as_str().unwrap_or("").contains("gradient"),
        "{background}"
    );
    for day in shaded {
        let text = browser.text(&day);
        assert!(
            text.contains("Blackout (frozen-lab): CAB freeze <week 50>"),
            "{text}"
        );
    }
    let skipped = "li[data-runbook='frozen-lab'][data-state='skipped']";
    assert_eq!(count_of(&browser, skipped), 2);
    let lab = text_of(&browser, "td[data-date='2026-12-10'] li");
    assert!(
        lab.contains("20:00 CET frozen-lab: cycle 2026-12 starts")
            && lab.contains("skipped: CAB freeze <week 50>"),
        "{lab}"
    );
    let screenshots = patchday_tests::artifacts_dir();
    browser.save_screenshot(&screenshots.join("calendar-month-states.png"));

    // The filter: a plain GET form; only frozen-lab's entries are left.
    browser.click(&browser.find("select#runbook option[value='frozen-lab']"));
    browser.click(&browser.find("form.filter button[type=submit]"));
    poll("the filtered month", Duration::from_secs(10), || {
        browser
            .current_url()
            .contains("runbook=frozen-lab")
            .then_some(())
    });
    assert_eq!(count_of(&browser, "li[data-runbook='patch-month']"), 0);
    assert_eq!(count_of(&browser, skipped), 2);
    assert_eq!(
        count_of(&browser, "option[value='frozen-lab'][selected]"),
        1
    );

    // Next month keeps the filter; back to all runbooks, January's cycle is planned.
    browser.click(&browser.find("a[rel=next]"));
    assert_eq!(browser.title(), "Patch calendar 2027-01 · patchday");
    assert!(browser.current_url().contains("runbook=frozen-lab"));
    browser.navigate(&format!("{}/calendar?month=2027-01", daemon.url()));
    let planned = "li[data-runbook='patch-month'][data-cycle='2027-01'][data-state='planned']";
    assert_eq!(count_of(&browser, planned), 5);
    let night = text_of(&browser, "td[data-date='2027-01-16'] li");
    assert!(
        night.contains("22:00 UTC patch-month: patch-night"),
        "{night}"
    );
    assert!(text_of(&browser, "td[data-date='2027-01-12']").contains("Patch Tuesday"));
    assert_eq!(count_of(&browser, "td.today"), 0);

    // Two months back: November ran, so nothing there is missed.
    browser.click(&browser.find("a[rel=prev]"));
    browser.click(&browser.find("a[rel=prev]"));
    assert_eq!(browser.title(), "Patch calendar 2026-11 · patchday");
    let november = "li[data-runbook='patch-month'][data-cycle='2026-11']";
    assert_eq!(count_of(&browser, november), 5);
    assert_eq!(count_of(&browser, "li[data-state='missed']"), 0);

    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}
