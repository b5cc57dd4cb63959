//! The outbox mailer (DESIGN §5): sends the emails that transitions wrote into the outbox in
//! their own transactions. Each due row is delivered (SMTP, or an `<id>.eml` file in the outbox
//! folder when no `[smtp]` is configured), then recorded ([`Store::email_attempted`]):
//! - delivered: `email.sent`. The server answers again, so every row waiting for a retry
//!   comes due now: the backlog of an outage goes out with the first success;
//! - refused for good (a 5xx answer, or a message that cannot be built): the row is a dead
//!   letter, never tried again (`email.dead_lettered`), and in the same commit the runbook's
//!   `notify.to` (else its `committee`) are sent an `undeliverable` notification, leaving out
//!   the refused recipients. A row without a run, a notice about a notice, or nobody left to
//!   tell: the log says so at error level (`/metrics` counts dead letters in any case);
//! - not delivered for now (4xx, no connection, TLS): tried again after a backoff of 1 min
//!   doubling to 1 h, each wait drawn in its upper half (jitter, so rows failed together do
//!   not retry together). The next time is stored with the row, so a restart keeps the
//!   schedule. Only the first failure is audited (`email.failed`): one event per change of a
//!   row's state, not one per attempt.
//!
//! Rows are only marked after the attempt, so nothing is lost across restarts; a crash between
//! delivery and marking sends a row again (SMTP: with the same Message-ID; folder: the same
//! file is rewritten).
//!
//! It wakes when the engine commits a transition (the observer), when a run task ends, when
//! the earliest retry comes due, and at the latest every few seconds (rows written by other
//! processes sharing the database).
//!
//! Several daemons: each mailer claims the rows it sends ([`Store::claim_emails`]) for four
//! lease TTLs, so no two mailers send one row; it delivers only while a lease TTL of its claim
//! is left, and a crashed mailer's rows come due again when its claim ends. A row can still go
//! out twice only if a mailer dies between the server's acceptance and the marking (the SMTP
//! final-dot window), as with one daemon.
//!
//! Such a duplicate is counted: the row is marked `delivering_since` just before it is handed
//! over ([`Store::email_delivering`]); a row found marked was cut off mid-delivery, so its next
//! attempt carries `possible_duplicate` in its audit event and counts in
//! `patchday_emails_possible_duplicates_total`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use patchday_connectors::builtin::email::{
    Attachment, OutgoingEmail, Undelivered, deliver as send,
};
use serde_json::json;

use super::{Delivery, Shared};
use crate::notification::Facts;
use crate::run::notify::{About, always_told, run_email};
use crate::store::{
    EmailAttachment, EmailAttempt, EmailRow, NewEmail, NewEvent, Store, StoreError,
};

/// Rows claimed per query.
const BATCH: u32 = 10;
/// A claim on outbox rows lasts this many lease TTLs.
const CLAIM_TTLS: u32 = 4;
/// The longest the mailer sleeps without a wake-up.
const IDLE: Duration = Duration::from_secs(5);
/// First retry delay and its cap.
const BACKOFF: TimeDelta = TimeDelta::minutes(1);
const MAX_BACKOFF: TimeDelta = TimeDelta::hours(1);

/// Sends due rows until shutdown, then makes one last pass.
pub async fn run<S: Store>(shared: Arc<Shared<S>>, delivery: Delivery) {
    loop {
        let stopping = shared.shutdown.is_cancelled();
        let full = match pass(&shared, &delivery).await {
            Ok(count) => count == BATCH as usize,
            Err(e) => {
                tracing::warn!("mailer: {e}");
                false
            }
        };
        if stopping {
            return;
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => {}
            _ = shared.mail.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// Delivers the rows due now; returns how many were tried.
pub async fn pass<S: Store>(shared: &Shared<S>, delivery: &Delivery) -> Result<usize, StoreError> {
    let now = shared.clock.now();
    let store = &shared.engine.store;
    let cluster = &shared.cluster;
    let claim_ttl = cluster.ttl * CLAIM_TTLS;
    let claimed_at = cluster.clock.now();
    let due = store
        .claim_emails(&cluster.node, now, claim_ttl, claimed_at, BATCH)
        .await?;
    // Deliver only while the claim has a lease TTL left; the rest come due when it ends.
    let deliver_until = crate::store::lease_end(claimed_at, claim_ttl - cluster.ttl);
    for (tried, row) in due.iter().enumerate() {
        if cluster.clock.now() >= deliver_until {
            return Ok(tried);
        }
        // Found mid-delivery: the last mailer stopped after handing it over, maybe after the
        // server took it. Sent again (same Message-ID), and counted as a possible duplicate.
        let again = row.delivering_since.is_some();
        if again {
            shared.counters.email_possible_duplicate();
        }
        store.email_delivering(row.id, now).await?;
        let result = deliver(delivery, row, now).await;
        let now = shared.clock.now();
        let mut attempt = match result {
            Ok(()) => {
                let details = json!({ "to": row.email.to, "subject": row.email.subject, "attempts": row.attempts + 1 });
                EmailAttempt::Sent {
                    at: now,
                    event: event(now, row, "email.sent", details),
                }
            }
            Err(failure) if failure.permanent => dead_letter(shared, row, failure, now).await,
            Err(failure) => retry_later(row, failure, now),
        };
        if again {
            let event = match &mut attempt {
                EmailAttempt::Sent { event, .. } | EmailAttempt::Dead { event, .. } => Some(event),
                EmailAttempt::Failed { event, .. } => event.as_mut(),
            };
            if let Some(event) = event {
                event.details["possible_duplicate"] = true.into();
            }
        }
        store.email_attempted(row.id, attempt).await?;
    }
    Ok(due.len())
}

/// A transient failure: the next attempt after the backoff, audited on the first failure only.
fn retry_later(row: &EmailRow, failure: Undelivered, now: DateTime<Utc>) -> EmailAttempt {
    let next = now + backoff(row.attempts, random_fraction());
    tracing::info!(
        "email {} not delivered (attempt {}): {}; next try at {}",
        row.id,
        row.attempts + 1,
        failure.message,
        next.to_rfc3339()
    );
    let event = (row.attempts == 0).then(|| {
        let details = json!({ "attempt": 1, "error": failure.message, "next_attempt_at": next });
        event(now, row, "email.failed", details)
    });
    EmailAttempt::Failed {
        next,
        error: failure.message,
        event,
    }
}

/// The wait after `attempts` earlier attempts (0 for the first failure): 1 min doubling to
/// 1 h, then a point in the upper half of it chosen by `fraction` (in [0, 1)).
pub fn backoff(attempts: u32, fraction: f64) -> TimeDelta {
    let full = (BACKOFF * (1i32 << attempts.min(10))).min(MAX_BACKOFF);
    let half = full / 2;
    let extra = (half.num_milliseconds() as f64 * fraction.clamp(0.0, 1.0)) as i64;
    half + TimeDelta::milliseconds(extra)
}

/// A random number in [0, 1) from the OS (0.5 without randomness).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_be_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// A permanent refusal: the row becomes a dead letter, and the committee is told.
async fn dead_letter<S: Store>(
    shared: &Shared<S>,
    row: &EmailRow,
    failure: Undelivered,
    now: DateTime<Utc>,
) -> EmailAttempt {
    tracing::warn!(
        "email {} refused for good, given up: {}",
        row.id,
        failure.message
    );
    let details = json!({
        "to": row.email.to,
        "subject": row.email.subject,
        "attempts": row.attempts + 1,
        "error": failure.message,
    });
    EmailAttempt::Dead {
        at: now,
        event: event(now, row, "email.dead_lettered", details),
        notice: undeliverable_notice(shared, row, &failure.message, now).await,
        error: failure.message,
    }
}

/// The `undeliverable` notification about dead row `row`, to whoever the run's runbook
/// always tells, leaving out the refused recipients. `None` (and an error in the log) when
/// there is no run, the row is itself such a notice, or nobody is left to tell.
async fn undeliverable_notice<S: Store>(
    shared: &Shared<S>,
    row: &EmailRow,
    error: &str,
    now: DateTime<Utc>,
) -> Option<NewEmail> {
    let nobody = |why: &str| {
        tracing::error!(
            "email {} to {} ({:?}) was given up and {why}: {error}",
            row.id,
            row.email.to.join(", "),
            row.email.subject
        );
        None
    };
    if let Some(about) = row.notice_of {
        return nobody(&format!(
            "it is the notice about email {about}: nobody else can be told"
        ));
    }
    let Some(run_id) = &row.email.run_id else {
        return nobody("it belongs to no run, so no runbook names whom to tell");
    };
    let run = match shared.engine.store.run(run_id).await {
        Ok(Some(run)) => run,
        _ => return nobody("its run cannot be read"),
    };
    let Some(checked) = shared.checked_for_run(&run) else {
        return nobody("its run's runbook version cannot be read");
    };
    let refused = |a: &String| row.email.to.iter().any(|r| r.eq_ignore_ascii_case(a));
    let to: Vec<String> = always_told(&checked)
        .into_iter()
        .filter(|a| !refused(a))
        .collect();
    if to.is_empty() {
        return nobody("the people to tell are the ones it was refused for");
    }
    let (cycle, run_url) = (
        crate::run::cycle_shown(&run),
        shared.engine.run_url(&run.id),
    );
    let about = About {
        run_id: &run.id,
        cycle: &cycle,
        run_url: &run_url,
        dashboard_url: &shared.engine.dashboard_url(),
    };
    let facts = Facts::Undeliverable {
        run: about.facts(),
        to: row.email.to.clone(),
        subject: row.email.subject.clone(),
        error: error.to_string(),
    };
    Some(run_email(&checked, &about, facts, to, now))
}

fn event(
    at: DateTime<Utc>,
    row: &EmailRow,
    action: &str,
    mut details: serde_json::Value,
) -> NewEvent {
    details["email"] = row.id.into();
    if let Some(key) = &row.email.key {
        details["key"] = key.as_str().into();
    }
    NewEvent {
        at,
        actor: "mailer".into(),
        action: action.into(),
        run_id: row.email.run_id.clone(),
        step_id: None,
        details,
    }
}

/// Sends one row.
async fn deliver(
    delivery: &Delivery,
    row: &EmailRow,
    now: DateTime<Utc>,
) -> Result<(), Undelivered> {
    match delivery {
        Delivery::Smtp { settings, secrets } => {
            let message = OutgoingEmail {
                to: row.email.to.clone(),
                subject: row.email.subject.clone(),
                text: row.email.body.clone(),
                html: row.email.html.clone(),
                attachments: row.email.attachments.iter().map(attachment).collect(),
                message_id: Some(message_key(row.id)),
                ..OutgoingEmail::default()
            };
            send(settings, secrets, message).await
        }
        Delivery::Folder(dir) => write_eml(dir, row, now).await.map_err(|e| Undelivered {
            message: e.to_string(),
            permanent: false,
        }),
    }
}

/// An outbox attachment as the SMTP connector sends it.
fn attachment(file: &EmailAttachment) -> Attachment {
    Attachment {
        filename: file.filename.clone(),
        content_type: file.content_type.clone(),
        content: file.content.clone().into_bytes(),
    }
}

/// The Message-ID key of an outbox row (the same on every attempt).
fn message_key(id: i64) -> String {
    format!("patchday.outbox.{id}")
}

/// Writes `<dir>/<id>.eml` whole (a temporary file renamed into place).
async fn write_eml(dir: &Path, row: &EmailRow, now: DateTime<Utc>) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{}.eml", row.id));
    let tmp = dir.join(format!(".{}.eml.tmp", row.id));
    tokio::fs::write(&tmp, eml(row, now)).await?;
    tokio::fs::rename(&tmp, &path).await
}

/// An RFC 5322 message with the row's recipients, subject and body (UTF-8, 8bit).
pub fn eml(row: &EmailRow, now: DateTime<Utc>) -> String {
    let email = &row.email;
    let mut out = String::new();
    out.push_str("From: patchday <patchday@localhost>\r\n");
    out.push_str(&format!("To: {}\r\n", email.to.join(", ")));
    out.push_str(&format!("Subject: {}\r\n", header_text(&email.subject)));
    out.push_str(&format!("Date: {}\r\n", now.to_rfc2822()));
    out.push_str(&format!(
        "Message-ID: <{}@localhost>\r\n",
        message_key(row.id)
    ));
    if let Some(run) = &email.run_id {
        out.push_str(&format!("X-Patchday-Run: {}\r\n", header_text(run)));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    if email.attachments.is_empty() {
        out.push_str(&eml_body(row));
    } else {
        let boundary = format!("patchday-mixed-{}", row.id);
        out.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n"
        ));
        out.push_str(&eml_body(row));
        for file in &email.attachments {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(file.content.as_bytes())
                .as_bytes()
                .chunks(76)
                .map(|line| String::from_utf8_lossy(line).into_owned())
                .collect::<Vec<_>>()
                .join("\r\n");
            out.push_str(&format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Disposition: attachment; filename=\"{}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n",
                header_text(&file.content_type),
                header_text(&file.filename).replace('"', "'"),
            ));
        }
        out.push_str(&format!("--{boundary}--\r\n"));
    }
    out
}

/// The body's headers and text: plain, or plain and HTML alternatives.
fn eml_body(row: &EmailRow) -> String {
    let email = &row.email;
    let mut out = String::new();
    let text = |body: &str| body.replace("\r\n", "\n").replace('\n', "\r\n");
    match &email.html {
        None => {
            out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
            out.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
            out.push_str(&text(&email.body));
        }
        Some(html) => {
            let boundary = format!("patchday-{}", row.id);
            out.push_str(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
            ));
            for (kind, body) in [("plain", email.body.as_str()), ("html", html.as_str())] {
                out.push_str(&format!(
                    "--{boundary}\r\nContent-Type: text/{kind}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
                    text(body)
                ));
            }
            out.push_str(&format!("--{boundary}--"));
        }
    }
    out.push_str("\r\n");
    out
}

/// A header value: as is when it is printable ASCII, else an RFC 2047 encoded word.
fn header_text(text: &str) -> String {
    let text = text.replace(['\r', '\n'], " ");
    if text.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return text;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    format!("=?utf-8?B?{encoded}?=")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewEmail;

    fn row(subject: &str, html: Option<&str>) -> EmailRow {
        let at = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .to_utc();
        EmailRow {
            id: 7,
            email: NewEmail {
                run_id: Some("r1".into()),
                to: vec!["a@example.com".into(), "b@example.com".into()],
                subject: subject.into(),
                body: "line 1\nline 2\n".into(),
                html: html.map(str::to_string),
                created_at: at,
                attachments: Vec::new(),
                key: None,
            },
            attempts: 0,
            next_attempt_at: at,
            sent_at: None,
            delivering_since: None,
            dead_at: None,
            last_error: None,
            notice_of: None,
        }
    }

    /// A mailer that stopped mid-delivery (the row still marked): the next attempt sends the
    /// row again, flags it `possible_duplicate` and counts it; an ordinary row is not flagged.
    #[tokio::test]
    async fn a_delivery_cut_off_is_sent_again_and_counted_as_a_possible_duplicate() {
        use crate::clock::ManualClock;
        use crate::daemon::{Daemon, Runbooks, testing};
        use crate::store::sqlite::SqliteStore;
        use crate::store::{Change, EventFilter};

        let at = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .to_utc();
        let outbox = tempfile::tempdir().unwrap();
        let delivery = Delivery::Folder(outbox.path().to_path_buf());
        let options = testing::options(Arc::new(ManualClock::new(at)), delivery.clone());
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let daemon = Daemon::new(store, Runbooks::default(), options);
        let shared = daemon.shared.clone();
        let store = &shared.engine.store;
        let email = |subject: &str| row(subject, None).email;
        let change = Change {
            emails: vec![email("cut off"), email("ordinary")],
            ..Change::default()
        };
        store.commit(vec![change]).await.unwrap();
        let due = store.due_emails(at, 10).await.unwrap();
        let cut_off = due.iter().find(|r| r.email.subject == "cut off").unwrap();
        store.email_delivering(cut_off.id, at).await.unwrap();

        assert_eq!(pass(&shared, &delivery).await.unwrap(), 2);
        let sent: Vec<_> = store
            .events(EventFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "email.sent")
            .collect();
        assert_eq!(sent.len(), 2);
        let flagged: Vec<_> = sent
            .iter()
            .filter(|e| e.details["possible_duplicate"] == true)
            .map(|e| e.details["subject"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(flagged, ["cut off"]);
        let metrics = crate::daemon::metrics::text(&shared).await.unwrap();
        assert!(
            metrics.contains("patchday_emails_possible_duplicates_total 1\n"),
            "{metrics}"
        );
        assert!(store.due_emails(at, 10).await.unwrap().is_empty());
    }

    #[test]
    fn an_eml_has_the_recipients_subject_and_body() {
        let at = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .to_utc();
        let text = eml(&row("[patchday] x 2026-12: run succeeded", None), at);
        assert!(
            text.contains("To: a@example.com, b@example.com\r\n"),
            "{text}"
        );
        assert!(text.contains("Subject: [patchday] x 2026-12: run succeeded\r\n"));
        assert!(text.contains("Message-ID: <patchday.outbox.7@localhost>\r\n"));
        assert!(
            text.ends_with("\r\n\r\nline 1\r\nline 2\r\n\r\n"),
            "{text:?}"
        );
    }

    #[test]
    fn an_eml_carries_its_attachments_after_the_body() {
        let mut with_file = row("checkpoint", None);
        with_file.email.attachments = vec![EmailAttachment {
            filename: "00000001.checkpoint.txt".into(),
            content_type: "text/plain; charset=utf-8".into(),
            content: "note\n".into(),
        }];
        let text = eml(&with_file, Utc::now());
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("\r\n\r\nline 1\r\nline 2\r\n"), "{text}");
        assert!(
            text.contains("filename=\"00000001.checkpoint.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\nbm90ZQo=\r\n"),
            "{text}"
        );
        assert!(text.ends_with("--patchday-mixed-7--\r\n"), "{text}");
    }

    #[test]
    fn headers_cannot_be_injected_and_non_ascii_is_encoded() {
        let at = Utc::now();
        let text = eml(&row("hi\r\nBcc: evil@example.com", Some("<p>x</p>")), at);
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(text.contains("multipart/alternative"));
        assert_eq!(header_text("Café"), "=?utf-8?B?Q2Fmw6k=?=");
    }
}
