//! The outbox through an SMTP outage (issue 10): a real SMTP server refuses one recipient for
//! good (550) and answers 421 to everyone while it is "down". The refused email is given up
//! once (a dead letter, the committee told); the others wait with a backoff that survives
//! daemon restarts, without an audit event per attempt; when the server is back, the first
//! email that goes through brings the others forward, and each arrives exactly once.
//!
//! The daemons run on a fixed clock (`--now`), moved by restarting them: the retry schedule is
//! what the database says, not what a process remembers.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use patchday_tests::daemon::{Daemon, audit_events, count, metric, poll};
use patchday_tests::smtp::{SmtpOptions, SmtpServer};
use patchday_tests::{patchday, stderr};

const LIMIT: Duration = Duration::from_secs(60);

const ASK: &str = r#"name: ask
timezone: UTC
roles:
  cab: [gone@example.com, cab1@example.com, cab2@example.com]
  committee: [committee@example.com]
steps:
  approve: { uses: approval, with: { approvers: cab, quorum: 1 } }
"#;

const PING: &str = r#"name: ping
roles:
  committee: [committee@example.com]
notify: { on: [finished], to: [committee] }
steps:
  a: { uses: noop }
"#;

fn serve(dir: &Path, database: &str, now: &str) -> Daemon {
    let mut command = patchday();
    command
        .current_dir(dir)
        .args(["--config", &dir.join("patchday.toml").display().to_string()])
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .args(["--runbooks", &dir.join("runbooks").display().to_string()])
        .args(["--now", now])
        .stderr(Stdio::from(
            std::fs::File::create(
                patchday_tests::artifacts_dir()
                    .join(format!("mailer-{}.log", now.replace(':', ""))),
            )
            .unwrap(),
        ));
    Daemon::start(command)
}

fn trigger(dir: &Path, daemon: &Daemon, database: &str, runbook: &str) {
    let out = patchday()
        .current_dir(dir)
        .args(["--database", database, "trigger", runbook])
        .args(["--server", &daemon.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The mailer's events so far, by action.
fn mail_events(database: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in audit_events(database) {
        let action = event["action"].as_str().unwrap_or_default();
        if action.starts_with("email.") {
            *counts.entry(action.to_string()).or_default() += 1;
        }
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(a, n)| (a.to_string(), *n)).collect()
}

#[test]
fn a_refused_email_is_given_up_once_and_the_others_arrive_once_after_the_outage() {
    let dir = patchday_tests::scratch("mail-outage");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/ask.yaml"), ASK).unwrap();
    std::fs::write(dir.join("runbooks/ping.yaml"), PING).unwrap();
    let down = dir.join("down");
    std::fs::write(&down, "").unwrap();
    let smtp = SmtpServer::start(
        &dir.join("mail"),
        &SmtpOptions {
            refuse: vec!["gone@example.com".into()],
            down: Some(down.clone()),
            ..Default::default()
        },
    );
    std::fs::write(dir.join("patchday.toml"), smtp.config()).unwrap();
    let database = format!("sqlite://{}", dir.join("p.db").display());

    // The server is down. Three approval emails: gone@'s is refused for good (given up, and
    // the committee's notice queued); cab1@'s, cab2@'s and the notice get 421 and wait.
    let mut daemon = serve(&dir, &database, "2026-12-08T10:00:00Z");
    trigger(&dir, &daemon, &database, "ask");
    poll("the first attempts", LIMIT, || {
        let seen = mail_events(&database);
        (seen == counts(&[("email.dead_lettered", 1), ("email.failed", 3)])).then_some(())
    });
    poll("the outbox figures", LIMIT, || {
        let dead = metric(&daemon.addr, "patchday_emails_dead_letters")? == 1.0;
        let depth = metric(&daemon.addr, "patchday_outbox_depth")? == 3.0;
        let due = metric(&daemon.addr, "patchday_outbox_due")? == 0.0;
        (dead && depth && due).then_some(())
    });
    let dead = audit_events(&database)
        .into_iter()
        .find(|e| e["action"] == "email.dead_lettered")
        .unwrap();
    assert_eq!(
        dead["details"]["to"],
        serde_json::json!(["gone@example.com"])
    );
    assert!(
        dead["details"]["error"].as_str().unwrap().contains("550"),
        "{dead:#}"
    );
    assert_eq!(daemon.terminate().code(), Some(0));

    // Restarted ten seconds later: the retries are not due yet (the first backoff is at least
    // half a minute), so nothing is tried: the schedule is the database's.
    let mut daemon = serve(&dir, &database, "2026-12-08T10:00:10Z");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(metric(&daemon.addr, "patchday_outbox_due"), Some(0.0));
    assert_eq!(daemon.terminate().code(), Some(0));

    // Five minutes later: all three are due, tried, refused again (421); no new event.
    let mut daemon = serve(&dir, &database, "2026-12-08T10:05:00Z");
    poll("the second attempts", LIMIT, || {
        (metric(&daemon.addr, "patchday_outbox_due")? == 0.0).then_some(())
    });
    assert_eq!(
        mail_events(&database),
        counts(&[("email.dead_lettered", 1), ("email.failed", 3)]),
        "one event per change of a row's state, not one per attempt"
    );
    assert!(smtp.messages().is_empty());

    // The server is back. The clock stands still, so the waiting rows are not due; the first
    // email that goes through (a run's `finished` notice) brings them forward.
    std::fs::remove_file(&down).unwrap();
    trigger(&dir, &daemon, &database, "ping");
    let messages = poll("every waiting email", LIMIT, || {
        let messages = smtp.messages();
        (messages.len() == 4).then_some(messages)
    });
    let mut to: Vec<String> = messages
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap().to_string())
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "cab1@example.com",
            "cab2@example.com",
            "committee@example.com",
            "committee@example.com"
        ]
    );
    let mut ids: Vec<&str> = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each email once: {messages:#?}");
    let notice = messages
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .ends_with("an email could not be delivered")
        })
        .expect("the committee's notice");
    let text = notice["text"].as_str().unwrap();
    assert!(
        text.contains("To: gone@example.com") && text.contains("550"),
        "{text}"
    );
    poll("the outbox to drain", LIMIT, || {
        (metric(&daemon.addr, "patchday_outbox_depth")? == 0.0).then_some(())
    });
    assert_eq!(
        mail_events(&database),
        counts(&[
            ("email.dead_lettered", 1),
            ("email.failed", 3),
            ("email.sent", 4)
        ])
    );
    assert_eq!(
        metric(&daemon.addr, "patchday_emails_dead_letters"),
        Some(1.0)
    );
    // Nothing more is tried: a while later the server still has four messages.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(smtp.messages().len(), 4);
    assert_eq!(count(&audit_events(&database), "email.sent"), 4);
    assert_eq!(daemon.terminate().code(), Some(0));
    patchday_tests::assert_audit_verifies(&database);
    drop(smtp);
    let _ = std::fs::remove_dir_all(&dir);
}
