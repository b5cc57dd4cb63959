//! Single sign-on with a real OpenID provider (issue #11): `oidc-provider` from npm on loopback
//! (`tests/oidc/provider.mjs`), headless Chromium through its login and consent forms, the
//! authorization code flow with PKCE; the provider's groups give the role. A callback whose
//! state this browser did not start, a code the provider never issued, a state used twice, an
//! ID token the provider signed for another client, an expired ID token and a replayed code are
//! refused and audited (the provider is told to misbehave through its standard input).

use std::time::Duration;

use patchday_tests::browser::Browser;
use patchday_tests::daemon::{Daemon, audit_events, count, poll, request, serve_command};
use patchday_tests::oidc::{OidcProvider, free_port};

const RUNBOOK: &str = r#"name: sso-demo
timezone: UTC
steps:
  hello:
    uses: command
    with: { run: "echo hello" }
"#;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn chromium_signs_in_through_a_real_openid_provider_and_bad_callbacks_are_refused() {
    let browser = std::thread::spawn(Browser::start);
    let dir = patchday_tests::scratch("oidc");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/sso-demo.yaml"), RUNBOOK).unwrap();
    std::fs::write(dir.join("oidc-secret"), "s3cret-of-the-client\n").unwrap();
    let port = free_port();
    let config = dir.join("patchday.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nviewers = [\"group:patch-viewers\"]\nadmins = [\"group:patch-admins\"]\n\n\
             [auth.oidc]\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"patchday\"\n\
             client_secret_file = \"{}\"\n",
            dir.join("oidc-secret").display()
        ),
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let mut serve = serve_command(&dir, &database, &dir.join("outbox"));
    serve.args(["--config", &config.display().to_string()]);
    let daemon = Daemon::start(serve);
    let base = daemon.url();
    let mut provider = OidcProvider::start(
        port,
        "patchday",
        "s3cret-of-the-client",
        &format!("{base}/signin/oidc/callback"),
        3600,
    );
    let browser = browser.join().expect("chromium and chromedriver start");

    // The overview sends the browser to sign in; single sign-on goes to the provider's form.
    browser.navigate(&format!("{base}/"));
    assert_eq!(browser.title(), "Sign in · patchday");
    browser.click(&browser.find("a[href=\"/signin/oidc\"]"));
    poll("the provider's login form", LIMIT, || {
        browser.find_all("input[name=login]").pop()
    });
    assert!(
        browser
            .current_url()
            .starts_with(&format!("http://127.0.0.1:{port}/")),
        "{}",
        browser.current_url()
    );
    browser.type_text(&browser.find("input[name=login]"), "carol@example.com");
    browser.type_text(&browser.find("input[name=password]"), "any password");
    browser.click(&browser.find("button[type=submit]"));
    // The provider asks for consent once; then it sends the browser back with a code.
    poll("the overview", LIMIT, || {
        if browser.title().starts_with("Overview") {
            return Some(());
        }
        if let Some(allow) = browser.find_all("button[type=submit]").pop() {
            browser.click(&allow);
        }
        None
    });
    let bar = browser.text(&browser.find("form[action=\"/signout\"]"));
    assert!(
        bar.contains("Signed in as carol@example.com (viewer)"),
        "{bar}"
    );
    let events = audit_events(&database);
    let signed_in = events
        .iter()
        .find(|e| e["action"] == "auth.signed_in")
        .expect("auth.signed_in");
    assert_eq!(signed_in["actor"], "web:carol@example.com");
    assert_eq!(signed_in["details"]["via"], "oidc");

    // A callback this browser did not start: refused, whatever it carries.
    let addr = &daemon.addr;
    let forged = "/signin/oidc/callback?code=abc&state=forged";
    assert_eq!(request(addr, "GET", forged, &[], "").0, 403);
    let with_cookie = [("Cookie", "patchday_oidc_state=forged")];
    assert_eq!(request(addr, "GET", forged, &with_cookie, "").0, 403);
    // A real start, then a code the provider never issued: the provider refuses the exchange;
    // the same state again is unknown (a state, and its code, work once).
    let (state, cookie) = started(addr);
    let callback = format!("/signin/oidc/callback?code=never-issued&state={state}");
    let (status, _, body) = request(addr, "GET", &callback, &[("Cookie", &cookie)], "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("oidc_exchange"), "{body}");
    let (status, _, body) = request(addr, "GET", &callback, &[("Cookie", &cookie)], "");
    assert_eq!(status, 403);
    assert!(body.contains("oidc_bad_state"), "{body}");

    let events = audit_events(&database);
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["action"] == "auth.refused")
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "oidc_bad_state",
            "oidc_bad_state",
            "oidc_exchange",
            "oidc_bad_state"
        ]
    );
    assert_eq!(count(&events, "auth.signed_in"), 1);

    // The provider signs the next ID token for another client: refused.
    provider.set("id-token-audience", "another-client");
    let (callback, page) = refused_in_browser(&browser, &base);
    assert!(page.contains("oidc_wrong_audience"), "{page}");
    provider.set("id-token-audience", "");
    // An ID token that expired before it arrived (one second of life, held back longer).
    provider.set("id-token-ttl", "1");
    provider.set("token-delay-ms", "2500");
    let (_, page) = refused_in_browser(&browser, &base);
    assert!(page.contains("oidc_expired_id_token"), "{page}");
    provider.set("token-delay-ms", "0");
    provider.set("id-token-ttl", "3600");
    // The code the provider issued for the refused sign-in, replayed in a new one: refused.
    let code = callback
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("the callback carried a code")
        .to_string();
    let (state, cookie) = started(addr);
    let replay = format!("/signin/oidc/callback?code={code}&state={state}");
    let (status, _, body) = request(addr, "GET", &replay, &[("Cookie", &cookie)], "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("oidc_exchange"), "{body}");

    let events = audit_events(&database);
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["action"] == "auth.refused")
        .skip(4)
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "oidc_wrong_audience",
            "oidc_expired_id_token",
            "oidc_exchange"
        ]
    );
    assert_eq!(count(&events, "auth.signed_in"), 1, "nobody else signed in");
}

/// A single sign-on in the browser (already signed in at the provider) that the daemon
/// refuses: (the callback URL the provider sent the browser to, the refusal page).
fn refused_in_browser(browser: &Browser, base: &str) -> (String, String) {
    browser.navigate(&format!("{base}/signin/oidc"));
    let callback = format!("{base}/signin/oidc/callback");
    poll("the refused callback", LIMIT, || {
        let url = browser.current_url();
        if url.starts_with(&callback) && browser.source().contains("Reason code") {
            return Some((url, browser.source()));
        }
        if !url.starts_with(base)
            && let Some(allow) = browser.find_all("button[type=submit]").pop()
        {
            browser.click(&allow);
        }
        None
    })
}

/// A sign-in started with a plain request: (its state, the `Cookie` value that binds it).
fn started(addr: &str) -> (String, String) {
    let (status, head, _) = request(addr, "GET", "/signin/oidc", &[], "");
    assert_eq!(status, 303, "{head}");
    let state = head
        .lines()
        .find_map(|l| l.split_once("patchday_oidc_state="))
        .map(|(_, rest)| rest.split(';').next().unwrap().to_string())
        .expect("the state cookie");
    let cookie = format!("patchday_oidc_state={state}");
    (state, cookie)
}
