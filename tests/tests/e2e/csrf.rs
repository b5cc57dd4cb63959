//! CSRF on every state-changing form (issue #11): for each route of
//! `patchday::daemon::http::SESSION_FORM_POSTS` (the list the router routes by), a signed-in
//! `POST` without the CSRF value of the person's session, and one with it but a cross-site
//! `Origin`, are refused (403) and change nothing; the same for the sign-in link's `POST` and
//! the sign-in form's. Each `POST` is otherwise one the person may make (an admin cancels,
//! triggers, revokes; an approver decides), so only the CSRF checks stand in the way.

use patchday::daemon::http::{
    CANCEL, DECIDE, RESUME, REVOKE_SESSION, SESSION_FORM_POSTS, SIGN_IN_LINK, SIGN_OUT, TRIGGER,
};
use patchday_tests::daemon::{audit_events, emails_with, hidden_field, poll, request};

use crate::auth::{folder, serve, sign_in_by_email};

const CROSS_SITE: (&str, &str) = ("Origin", "http://evil.example");

/// What matters of the audit log: every event but refused sign-ins (which are audited).
fn changes(database: &str) -> Vec<String> {
    audit_events(database)
        .iter()
        .filter(|e| e["action"] != "auth.refused")
        .map(|e| format!("{} {}", e["actor"], e["action"]))
        .collect()
}

#[test]
fn every_state_changing_form_refuses_a_post_without_csrf_or_from_another_site() {
    let (dir, database) = folder("csrf", "");
    let daemon = serve(&dir, &database);
    let addr = daemon.addr.clone();
    let outbox = dir.join("outbox");
    poll(
        "the approval emails",
        std::time::Duration::from_secs(30),
        || {
            let texts = emails_with(&outbox, "Subject: [patchday] Approve secret-demo 2026-12");
            (texts.len() == 2).then_some(())
        },
    );
    let admin = daemon.cookie().to_string();
    let (_, index) = daemon.page("/");
    let admin_csrf = hidden_field(&index, "csrf");
    let run_id = {
        let start = index.find("href=\"/runs/").expect("the run is listed") + "href=\"/runs/".len();
        index[start..start + index[start..].find('"').unwrap()].to_string()
    };
    let alice = sign_in_by_email(&addr, &outbox, "alice@example.com");
    let alice_index = request(&addr, "GET", "/", &[("Cookie", &alice)], "").2;
    let alice_csrf = hidden_field(&alice_index, "csrf");
    let sessions = request(&addr, "GET", "/sessions", &[("Cookie", &alice)], "").2;
    let alice_session = {
        let start = sessions.find("action=\"/sessions/").unwrap() + "action=\"/sessions/".len();
        sessions[start..start + sessions[start..].find('/').unwrap()].to_string()
    };
    let before = changes(&database);

    for route in SESSION_FORM_POSTS {
        // (who posts, their CSRF value, the path, the rest of an otherwise good form)
        let (cookie, csrf, path, form) = match *route {
            TRIGGER => (
                &admin,
                &admin_csrf,
                route.replace("{name}", "secret-demo"),
                "do=start",
            ),
            DECIDE => (
                &alice,
                &alice_csrf,
                route.replace("{id}", &run_id),
                "step=cab-approval&host=&choice=approve",
            ),
            RESUME => (
                &admin,
                &admin_csrf,
                route.replace("{id}", &run_id),
                "step=cab-approval&host=&decision=skip&reason=because",
            ),
            CANCEL => (&admin, &admin_csrf, route.replace("{id}", &run_id), ""),
            SIGN_OUT => (&admin, &admin_csrf, route.to_string(), ""),
            REVOKE_SESSION => (
                &admin,
                &admin_csrf,
                route.replace("{id}", &alice_session),
                "",
            ),
            other => panic!("teach this test a good form for {other}"),
        };
        let cookie = ("Cookie", cookie.as_str());
        let (status, _, body) = request(&addr, "POST", &path, &[cookie], form);
        assert_eq!(status, 403, "POST {path} without the CSRF value: {body}");
        let with_csrf = format!("{form}&csrf={csrf}");
        let (status, _, body) = request(&addr, "POST", &path, &[cookie, CROSS_SITE], &with_csrf);
        assert_eq!(status, 403, "POST {path} from another site: {body}");
    }

    // The sign-in link's POST (its CSRF value comes from the link) and the sign-in form's.
    let out = patchday_tests::run(&[
        "--database",
        &database,
        "login-url",
        "--url",
        &format!("http://{addr}"),
    ]);
    let url = patchday_tests::stdout(&out);
    let link = &url[url.find("/signin/").expect("a sign-in URL")..].trim();
    assert!(SIGN_IN_LINK.starts_with("/signin/"));
    let page = request(&addr, "GET", link, &[], "").2;
    let csrf = format!("csrf={}", hidden_field(&page, "csrf"));
    assert_eq!(request(&addr, "POST", link, &[], "").0, 403);
    assert_eq!(request(&addr, "POST", link, &[CROSS_SITE], &csrf).0, 403);
    let email = "email=alice@example.com";
    assert_eq!(
        request(&addr, "POST", "/signin", &[CROSS_SITE], email).0,
        403
    );

    // Nothing changed: no event but the refusals, both sessions alive, the run still waits,
    // and the sign-in link still signs in once.
    assert_eq!(changes(&database), before);
    assert_eq!(request(&addr, "GET", "/", &[("Cookie", &admin)], "").0, 200);
    assert_eq!(request(&addr, "GET", "/", &[("Cookie", &alice)], "").0, 200);
    let run = daemon.page(&format!("/runs/{run_id}")).1;
    assert!(run.contains("waiting"), "{run}");
    assert_eq!(request(&addr, "POST", link, &[], &csrf).0, 303);
}
