//! `email`: messages sent to a real SMTP server (aiosmtpd) on loopback.

use patchday_connectors::settings::SmtpTls;
use patchday_connectors::{
    Attachment, ConnectorError, Context, OutgoingEmail, Outputs, Secrets, Settings, builtin,
    send_email,
};
use serde_json::{Value, json};

use crate::support::{SMTP_PASSWORD, SmtpMode, SmtpServer, ctx_with};

fn ctx_for(server: &SmtpServer, tls: SmtpTls, auth: bool) -> Context {
    let mut ctx = ctx_with(server.settings(tls, auth), server.dir.path());
    ctx.secrets = Secrets::new().with("smtp-password", SMTP_PASSWORD);
    ctx
}

async fn run(inputs: Value, ctx: &Context) -> Result<Outputs, ConnectorError> {
    builtin("email").unwrap().execute(inputs, ctx).await
}

#[tokio::test]
async fn starttls_with_auth_delivers_roles_bodies_and_attachment() {
    let server = SmtpServer::start(SmtpMode::Starttls, true);
    let mut ctx = ctx_for(&server, SmtpTls::Starttls, true);
    ctx.idempotency_key = Some("outbox-42".into());
    std::fs::write(
        server.dir.path().join("report.md"),
        "# Report\n| host | status |\n",
    )
    .unwrap();
    let inputs = json!({
        "to": "committee", "cc": ["cab", "qa@example.com"],
        "subject": "Patch cycle 2026-12",
        "body": "Plain words.",
        "html": "<p>Rich <b>words</b>.</p>",
        "attach": ["report.md"]
    });
    let out = run(inputs, &ctx).await.unwrap();
    assert_eq!(out["message_id"], "<outbox-42@example.com>");
    let [mail] = server.messages().try_into().unwrap();
    assert_eq!(
        mail["rcpt_tos"],
        json!([
            "chair@example.com",
            "ops@example.com",
            "cab@example.com",
            "qa@example.com"
        ])
    );
    assert_eq!(mail["mail_from"], "patchday@example.com");
    assert_eq!(mail["tls"], true);
    assert_eq!(mail["authenticated"], true);
    let headers = &mail["headers"];
    assert_eq!(headers["subject"], "Patch cycle 2026-12");
    assert_eq!(headers["message-id"], "<outbox-42@example.com>");
    assert_eq!(headers["to"], "chair@example.com, ops@example.com");
    assert_eq!(headers["cc"], "cab@example.com, qa@example.com");
    assert_eq!(mail["text"].as_str().unwrap().trim(), "Plain words.");
    assert_eq!(
        mail["html"].as_str().unwrap().trim(),
        "<p>Rich <b>words</b>.</p>"
    );
    let attachments = mail["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["filename"], "report.md");
    assert_eq!(attachments[0]["content_type"], "text/markdown");
    assert_eq!(attachments[0]["content"], "# Report\n| host | status |\n");
}

#[tokio::test]
async fn implicit_tls_and_a_stable_message_id_for_resends() {
    let server = SmtpServer::start(SmtpMode::Tls, false);
    let ctx = ctx_for(&server, SmtpTls::Tls, false);
    let settings = ctx.settings.clone();
    for _ in 0..2 {
        let message = OutgoingEmail {
            to: vec!["ops@example.com".into()],
            subject: "Resent".into(),
            text: "same".into(),
            message_id: Some("outbox/7".into()),
            attachments: vec![Attachment {
                filename: "a.json".into(),
                content_type: "application/json".into(),
                content: b"{}".to_vec(),
            }],
            ..OutgoingEmail::default()
        };
        send_email(&settings, &ctx.secrets, message).await.unwrap();
    }
    let mails = server.messages();
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0]["tls"], true);
    assert_eq!(mails[0]["headers"]["message-id"], "<outbox.7@example.com>");
    assert_eq!(
        mails[0]["headers"]["message-id"],
        mails[1]["headers"]["message-id"]
    );
}

#[tokio::test]
async fn failed_auth_is_fatal_and_never_shows_the_password() {
    let server = SmtpServer::start(SmtpMode::Starttls, true);
    let mut ctx = ctx_for(&server, SmtpTls::Starttls, true);
    ctx.secrets = Secrets::new().with("smtp-password", "wrong-pa55word");
    let err = run(
        json!({ "to": "ops@example.com", "subject": "s", "body": "b" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("535")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("wrong-pa55word"));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn an_unverified_certificate_is_fatal() {
    let server = SmtpServer::start(SmtpMode::Starttls, false);
    let mut settings = server.settings(SmtpTls::Starttls, false);
    settings.smtp.as_mut().unwrap().ca_file = None;
    let ctx = ctx_with(settings, server.dir.path());
    let err = run(
        json!({ "to": "ops@example.com", "subject": "s", "body": "b" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.to_lowercase().contains("certificate")),
        "{err:?}"
    );
}

#[tokio::test]
async fn replies_5xx_are_fatal_4xx_and_unreachable_retryable() {
    let server = SmtpServer::start(SmtpMode::Plain, false);
    let ctx = ctx_for(&server, SmtpTls::None, false);
    let err = run(
        json!({ "to": "reject@example.com", "subject": "s", "body": "b" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("550")),
        "{err:?}"
    );
    let err = run(
        json!({ "to": "tempfail@example.com", "subject": "s", "body": "b" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("451")),
        "{err:?}"
    );
    let mut settings = server.settings(SmtpTls::None, false);
    settings.smtp.as_mut().unwrap().port = Some(crate::support::free_port());
    let ctx = ctx_with(settings, server.dir.path());
    let err = run(
        json!({ "to": "ops@example.com", "subject": "s", "body": "b" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Retryable(_)), "{err:?}");
    let err = run(
        json!({ "to": "nobody-role", "subject": "s", "body": "b" }),
        &ctx_for(&server, SmtpTls::None, false),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("unknown role `nobody-role`")),
        "{err:?}"
    );
}

#[tokio::test]
async fn html_template_file_is_rendered_with_a_text_alternative_and_secrets_redacted() {
    let server = SmtpServer::start(SmtpMode::Plain, false);
    let mut ctx = ctx_for(&server, SmtpTls::None, false);
    ctx.secrets = Secrets::new().with("api", "t0ps3cret");
    ctx.vars =
        json!({ "cycle": "2026-12", "runbook": "monthly", "params": { "token": "t0ps3cret" } });
    std::fs::create_dir(server.dir.path().join("templates")).unwrap();
    std::fs::write(
        server.dir.path().join("templates/upcoming.html.hbs"),
        "<h1>Cycle {{cycle}} of {{runbook}}</h1><p>token {{params.token}}</p>",
    )
    .unwrap();
    let inputs = json!({ "to": "committee", "subject": "Cycle 2026-12 t0ps3cret", "template": "templates/upcoming.html.hbs" });
    run(inputs, &ctx).await.unwrap();
    let [mail] = server.messages().try_into().unwrap();
    assert_eq!(mail["headers"]["subject"], "Cycle 2026-12 ***");
    assert_eq!(
        mail["html"].as_str().unwrap().trim(),
        "<h1>Cycle 2026-12 of monthly</h1><p>token ***</p>"
    );
    assert_eq!(
        mail["text"].as_str().unwrap().replace("\r\n", "\n").trim(),
        "Cycle 2026-12 of monthly\n\ntoken ***"
    );
    assert!(!mail["raw"].as_str().unwrap().contains("t0ps3cret"));
    // Strict mode: an unknown variable is an error, before anything is sent.
    std::fs::write(server.dir.path().join("templates/bad.hbs"), "{{nope}}").unwrap();
    let err = run(
        json!({ "to": "committee", "subject": "s", "template": "templates/bad.hbs" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Fatal(_)));
}

#[test]
fn dry_run_and_missing_configuration() {
    let ctx = Context::new("r", "s");
    let line = builtin("email").unwrap()
        .dry_run(&json!({ "to": ["committee", "a@b.c"], "subject": "Hi", "body": "x", "attach": ["r.md"] }), &ctx)
        .unwrap();
    assert_eq!(line, "would email \"Hi\" to committee, a@b.c with r.md");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(send_email(
            &Settings::default(),
            &Secrets::new(),
            OutgoingEmail::default(),
        ))
        .unwrap_err();
    assert!(matches!(&err, ConnectorError::Fatal(m) if m.contains("not configured")));
}
