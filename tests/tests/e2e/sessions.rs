//! Sessions listed and revoked (issue #11): `/sessions` shows an admin every live session and
//! anyone else their own; a revoke button (`POST` with the CSRF value) signs a session out at
//! its next request, audited `auth.session_revoked` with the actor; a viewer cannot revoke
//! another person's session (403); an admin revokes one with a click in Chromium.
//! `patchday sessions list|revoke` does the same on the database. Sessions past their idle or absolute timeout are refused: the rows are aged in the
//! database (sessions run on real time, not the virtual clock, so the test moves their times
//! back instead of waiting 12 hours).

use patchday_tests::daemon::{audit_events, count, hidden_field, request, sign_in};
use patchday_tests::sql::{execute, quote};

use crate::auth::{folder, serve, sign_in_by_email};

/// `patchday sessions list --format json` on `database`: (id, email, source_ip) per session.
fn listed(database: &str) -> Vec<(String, String, String)> {
    let out = patchday_tests::run(&[
        "--database",
        database,
        "--format",
        "json",
        "sessions",
        "list",
    ]);
    assert!(out.status.success(), "{}", patchday_tests::stderr(&out));
    patchday_tests::stdout(&out)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (text("id"), text("email"), text("source_ip"))
        })
        .collect()
}

/// The id of `email`'s (only) live session.
fn id_of(database: &str, email: &str) -> String {
    let ids: Vec<String> = listed(database)
        .into_iter()
        .filter(|(_, e, _)| e == email)
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids.len(), 1, "{email}: {ids:?}");
    ids[0].clone()
}

/// `GET path` with `cookie`: (status, body).
fn page(addr: &str, cookie: &str, path: &str) -> (u16, String) {
    let (status, _, body) = request(addr, "GET", path, &[("Cookie", cookie)], "");
    (status, body)
}

/// `POST /sessions/ID/revoke` as `cookie` with `csrf`: the status.
fn revoke(addr: &str, cookie: &str, id: &str, csrf: &str) -> u16 {
    let path = format!("/sessions/{id}/revoke");
    request(
        addr,
        "POST",
        &path,
        &[("Cookie", cookie)],
        &format!("csrf={csrf}"),
    )
    .0
}

#[test]
fn sessions_are_listed_revoked_by_their_owner_or_an_admin_and_expire() {
    let (dir, database) = folder("sessions", "");
    let daemon = serve(&dir, &database);
    let addr = daemon.addr.clone();
    let outbox = dir.join("outbox");
    let admin = daemon.cookie().to_string();
    let alice = sign_in_by_email(&addr, &outbox, "alice@example.com");
    let bob = sign_in_by_email(&addr, &outbox, "bob@example.com");

    // An admin sees every live session; alice (a viewer) only her own.
    let (status, all) = page(&addr, &admin, "/sessions");
    assert_eq!(status, 200, "{all}");
    for shown in [
        "local (this session)",
        "alice@example.com",
        "bob@example.com",
        "127.0.0.1",
    ] {
        assert!(all.contains(shown), "{shown}: {all}");
    }
    assert!(
        all.contains("emailed link") && all.contains("local operator URL"),
        "{all}"
    );
    let (status, own) = page(&addr, &alice, "/sessions");
    assert_eq!(status, 200);
    assert!(own.contains("alice@example.com (this session)"), "{own}");
    assert!(
        !own.contains("bob@example.com") && !own.contains(">local"),
        "{own}"
    );
    assert_eq!(page(&addr, "patchday_session=nope", "/sessions").0, 303);
    let listed_now = listed(&database);
    assert_eq!(listed_now.len(), 3, "{listed_now:?}");
    assert!(
        listed_now.iter().all(|(_, _, ip)| ip == "127.0.0.1"),
        "{listed_now:?}"
    );

    // alice may not revoke bob's session, nor anything without her form's CSRF value.
    let alice_csrf = hidden_field(&own, "csrf");
    let bob_id = id_of(&database, "bob@example.com");
    assert_eq!(revoke(&addr, &alice, &bob_id, &alice_csrf), 403);
    let alice_id = id_of(&database, "alice@example.com");
    assert_eq!(revoke(&addr, &alice, &alice_id, "forged"), 403);
    assert_eq!(page(&addr, &bob, "/").0, 200, "bob is still signed in");
    assert_eq!(page(&addr, &alice, "/").0, 200, "alice is still signed in");

    // The admin revokes alice's session: her next request goes to the sign-in form.
    let admin_csrf = hidden_field(&all, "csrf");
    assert_eq!(revoke(&addr, &admin, &alice_id, &admin_csrf), 303);
    let (status, head, _) = request(&addr, "GET", "/", &[("Cookie", &alice)], "");
    assert_eq!(status, 303, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("location: /signin"),
        "{head}"
    );
    assert_eq!(
        revoke(&addr, &admin, &alice_id, &admin_csrf),
        404,
        "revoked once"
    );

    // The command line revokes bob's.
    let out = patchday_tests::run(&["--database", &database, "sessions", "revoke", &bob_id]);
    assert!(out.status.success(), "{}", patchday_tests::stderr(&out));
    assert_eq!(page(&addr, &bob, "/").0, 303);
    let out = patchday_tests::run(&["--database", &database, "sessions", "revoke", &bob_id]);
    assert_eq!(out.status.code(), Some(2), "no such live session");

    let events = audit_events(&database);
    let revoked: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["action"] == "auth.session_revoked")
        .map(|e| {
            let person = e["details"]["person"].as_str().unwrap();
            (e["actor"].as_str().unwrap(), person)
        })
        .collect();
    assert_eq!(revoked.len(), 2, "{events:#?}");
    assert_eq!(revoked[0], ("web:local", "alice@example.com"));
    assert!(revoked[1].0.starts_with("cli:"), "{revoked:?}");
    assert_eq!(revoked[1].1, "bob@example.com");
    assert_eq!(count(&events, "auth.signed_in"), 3);
    patchday_tests::assert_audit_verifies(&database);

    // Idle past 12 hours, or past the 7-day lifetime however recently used: refused.
    let idle = local_session(&database, &addr);
    let expired = local_session(&database, &addr);
    let aged = |id: &str, set: &str| {
        let like = quote(&format!("{id}%"));
        execute(
            &database,
            &format!("UPDATE sessions SET {set} WHERE id_hash LIKE {like}"),
        );
    };
    aged(
        &idle.0,
        "last_seen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-12 hours', '-1 minute')",
    );
    aged(
        &expired.0,
        "created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-8 days'), \
         expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 minute')",
    );
    for (_, cookie) in [&idle, &expired] {
        let (status, head, _) = request(&addr, "GET", "/", &[("Cookie", cookie)], "");
        assert_eq!(status, 303, "{head}");
        assert!(head.contains("Max-Age=0"), "the cookie is cleared: {head}");
    }
    assert_eq!(
        page(&addr, &admin, "/").0,
        200,
        "the admin's session lives on"
    );
}

/// A new session of the local operator through `patchday login-url`: (its id, its cookie).
fn local_session(database: &str, addr: &str) -> (String, String) {
    let before = listed(database);
    let url = format!("http://{addr}");
    let out = patchday_tests::run(&["--database", database, "login-url", "--url", &url]);
    assert!(out.status.success(), "{}", patchday_tests::stderr(&out));
    let cookie = sign_in(addr, patchday_tests::stdout(&out).trim());
    let new: Vec<String> = listed(database)
        .into_iter()
        .filter(|s| !before.contains(s))
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    (new[0].clone(), cookie)
}

/// The page as people use it: the admin, in Chromium, follows **Sessions** from the overview
/// and clicks **Revoke** on alice's row; the row is gone and alice's next request is sent to
/// sign in.
#[test]
fn an_admin_revokes_a_session_with_a_click_in_chromium() {
    let browser = std::thread::spawn(patchday_tests::browser::Browser::start);
    let (dir, database) = folder("sessions-browser", "");
    let daemon = serve(&dir, &database);
    let addr = daemon.addr.clone();
    let base = daemon.url();
    let alice = sign_in_by_email(&addr, &dir.join("outbox"), "alice@example.com");
    let alice_id = id_of(&database, "alice@example.com");
    let browser = browser.join().expect("chromium and chromedriver start");
    browser.use_session(&base, daemon.cookie());

    browser.navigate(&format!("{base}/"));
    browser.click(&browser.find("a[href=\"/sessions\"]"));
    let row = format!("#session-{alice_id}");
    patchday_tests::daemon::poll(
        "the sessions page",
        std::time::Duration::from_secs(30),
        || {
            (browser.title() == "Sessions · patchday" && !browser.find_all(&row).is_empty())
                .then_some(())
        },
    );
    assert!(
        browser
            .text(&browser.find(&row))
            .contains("alice@example.com")
    );
    browser.click(&browser.find(&format!("{row} button")));
    patchday_tests::daemon::poll("the row gone", std::time::Duration::from_secs(30), || {
        (browser.title() == "Sessions · patchday" && browser.find_all(&row).is_empty())
            .then_some(())
    });
    let (status, head, _) = request(&addr, "GET", "/", &[("Cookie", &alice)], "");
    assert_eq!(status, 303, "{head}");
    let events = audit_events(&database);
    assert_eq!(count(&events, "auth.session_revoked"), 1, "{events:#?}");
}
