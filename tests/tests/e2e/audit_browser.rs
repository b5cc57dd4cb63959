//! The audit browser (`GET /audit`, issue #13 item 5) against a real `patchday serve`.
//!
//! A runbook's cycle starts a run that waits for an approval; forged email and sign-in links
//! add refusals (events of no run). The page needs a session; signed in, it lists every event newest
//! first (the runbook's load and the sign-in, which belong to no run, too), filters by action,
//! run and actor (values echoed escaped), refuses a bad time naming the field, pages by seq
//! ("older" then "newer" lead back to the same events), and shows the chain as verified by the
//! daemon. The run page links to its run's events.

use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, emails_with, poll, request, serve_command};

const RUNBOOK: &str = r#"name: audited
timezone: UTC
schedule:
  - at: patch_tuesday 10:00
catch_up: 1h
roles:
  cab: [alice@example.com]
steps:
  cab-approval:
    uses: approval
    with: { approvers: [cab], quorum: 1, message: "May we patch {{cycle}}?" }
"#;

/// The seqs of the rows of an audit page, in page order.
fn seqs(page: &str) -> Vec<i64> {
    let body = page.split("<tbody>").nth(1).unwrap_or("");
    body.split("<tr><td>")
        .skip(1)
        .map(|row| row[..row.find('<').unwrap()].parse().unwrap())
        .collect()
}

/// The `href` of the link whose text is `text` (escaped `&amp;` turned back into `&`).
fn link(page: &str, text: &str) -> Option<String> {
    let end = page.find(&format!(">{text}</a>"))?;
    let start = page[..end].rfind("href=\"")? + "href=\"".len();
    let href = &page[start..end];
    Some(href[..href.find('"')?].replace("&amp;", "&"))
}

#[test]
fn the_audit_browser_filters_pages_and_shows_the_chain_state() {
    let dir = patchday_tests::scratch("audit-browser");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/audited.yaml"), RUNBOOK).unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let outbox = dir.join("outbox");
    let daemon = Daemon::start(serve_command(&dir, &database, &outbox));
    let addr = daemon.addr.clone();
    poll("the approval email", Duration::from_secs(30), || {
        emails_with(&outbox, "Subject: [patchday] Approve audited 2026-12").pop()
    });
    for n in 0..30 {
        request(&addr, "GET", &format!("/links/forged{n}"), &[], "");
        request(&addr, "GET", &format!("/signin/forged{n}"), &[], "");
    }

    let (status, head, body) = request(&addr, "GET", "/audit", &[], "");
    assert_eq!(status, 303, "no session, no events: {head}");
    assert!(!body.contains("link.rejected"));

    // Every event, newest first, those of no run too.
    let cookie = [("Cookie", daemon.cookie())];
    let first = poll("the chain verified", Duration::from_secs(30), || {
        let (_, _, page) = request(&addr, "GET", "/audit", &cookie, "");
        page.contains("chain verified").then_some(page)
    });
    let events = audit_events(&database);
    assert!(events.len() > 50, "more than a page: {}", events.len());
    let shown = seqs(&first);
    assert_eq!(shown.len(), 50);
    assert!(
        shown.windows(2).all(|w| w[0] > w[1]),
        "newest first: {shown:?}"
    );
    let newest = events.iter().map(|e| e["seq"].as_i64().unwrap()).max();
    assert_eq!(shown.first().copied(), newest);
    for action in [
        "runbook.loaded",
        "auth.signed_in",
        "run.started",
        "link.rejected",
    ] {
        let (status, _, page) = request(
            &addr,
            "GET",
            &format!("/audit?action={action}"),
            &cookie,
            "",
        );
        assert_eq!(status, 200);
        let expected: Vec<i64> = events
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["seq"].as_i64().unwrap())
            .rev()
            .take(50)
            .collect();
        assert!(!expected.is_empty(), "{action} was recorded");
        assert_eq!(seqs(&page), expected, "{action}");
    }

    // Older, then newer: back to the same events.
    let older = link(&first, "older ›").expect("an older link");
    assert_eq!(older, format!("/audit?before={}", shown[49]));
    let (_, _, second) = request(&addr, "GET", &older, &cookie, "");
    let second_seqs = seqs(&second);
    assert_eq!(second_seqs.first().copied(), Some(shown[49] - 1));
    let newer = link(&second, "‹ newer").expect("a newer link");
    let (_, _, back) = request(&addr, "GET", &newer, &cookie, "");
    assert_eq!(seqs(&back), shown);

    // One run's events, reached from its run page; values echoed escaped.
    let run_id = events
        .iter()
        .find(|e| e["action"] == "run.started")
        .and_then(|e| e["run_id"].as_str())
        .unwrap()
        .to_string();
    let (_, _, run_page) = request(&addr, "GET", &format!("/runs/{run_id}"), &cookie, "");
    let of_run = link(&run_page, "All events of this run in the audit log").expect("a link");
    let (_, _, page) = request(&addr, "GET", &of_run, &cookie, "");
    let expected: Vec<i64> = events
        .iter()
        .filter(|e| e["run_id"] == run_id.as_str())
        .map(|e| e["seq"].as_i64().unwrap())
        .rev()
        .collect();
    assert_eq!(seqs(&page), expected);
    let evil = "/audit?actor=%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let (status, _, page) = request(&addr, "GET", evil, &cookie, "");
    assert_eq!(status, 200);
    assert!(
        page.contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "{page}"
    );
    assert!(page.contains("No events match."));
    let (status, _, page) = request(&addr, "GET", "/audit?since=yesterday", &cookie, "");
    assert_eq!(status, 400);
    assert!(page.contains("since"), "{page}");
}
