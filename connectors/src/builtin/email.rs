//! `email`: a message over SMTP with lettre (tokio, rustls): STARTTLS, implicit TLS or none;
//! AUTH with the password from a secret; `to`/`cc` as role names or addresses; a plain-text
//! body, an optional HTML alternative, attachments; a Message-ID stable for a given key.
//! Not idempotent (a resend is a second message, recognisable by its Message-ID).
//!
//! [`send_email`] is the same path for the daemon's outbox mailer. An unreachable server or a
//! 4xx reply is retryable; a 5xx reply (refused recipient, failed AUTH) or a certificate that
//! does not verify is fatal. Subject and bodies are redacted before they are sent.

use std::path::Path;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::catalog::ConnectorSpec;
use crate::inputs::EmailInputs;
use crate::runtime::{
    BoxFuture, Connector, ConnectorError, Context, Outputs, parse_inputs, spec_of, until_cancelled,
};
use crate::secrets::Secrets;
use crate::settings::{Settings, SmtpSettings, SmtpTls};

/// The `email` connector.
pub struct Email;

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// e.g. `text/markdown; charset=utf-8`.
    pub content_type: String,
    pub content: Vec<u8>,
}

impl Attachment {
    /// Reads a file; the content type follows its extension.
    pub fn from_file(path: &Path) -> Result<Attachment, ConnectorError> {
        let content = std::fs::read(path).map_err(|e| {
            ConnectorError::Fatal(format!("cannot read attachment {}: {e}", path.display()))
        })?;
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        Ok(Attachment {
            content_type: content_type_for(&filename).into(),
            filename,
            content,
        })
    }
}

/// A content type from a file name's extension.
pub fn content_type_for(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("md" | "markdown") => "text/markdown; charset=utf-8",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A message ready to send; recipients are role names or addresses.
#[derive(Debug, Clone, Default)]
pub struct OutgoingEmail {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    /// The plain-text body (the alternative when `html` is set).
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// A key (e.g. the outbox entry id) the Message-ID is derived from, so that the same
    /// message sent twice carries the same Message-ID. `None`: a fresh one.
    pub message_id: Option<String>,
}

/// Sends `message` through the configured SMTP server.
pub async fn send_email(
    settings: &Settings,
    secrets: &Secrets,
    message: OutgoingEmail,
) -> Result<(), ConnectorError> {
    let smtp = settings
        .smtp
        .as_ref()
        .ok_or_else(|| ConnectorError::Fatal("email is not configured (no [smtp])".into()))?;
    let built = build_message(settings, smtp, secrets, message)?;
    let transport = transport(smtp, secrets)?;
    transport
        .send(built)
        .await
        .map(|_| ())
        .map_err(|e| smtp_error(e).redacted(secrets))
}

/// Why [`deliver`] did not deliver a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// What went wrong (secrets redacted).
    pub message: String,
    /// The server refused it for good (a 5xx answer), or it cannot be built (a bad address):
    /// sending it again would fail the same way. Otherwise (4xx, no connection, TLS) it may
    /// go through later.
    pub permanent: bool,
}

/// [`send_email`] for a mailer that retries on its own: says whether a failure is permanent.
pub async fn deliver(
    settings: &Settings,
    secrets: &Secrets,
    message: OutgoingEmail,
) -> Result<(), Undelivered> {
    let failed = |e: ConnectorError, permanent: bool| Undelivered {
        message: e.to_string(),
        permanent,
    };
    let Some(smtp) = settings.smtp.as_ref() else {
        let e = ConnectorError::Fatal("email is not configured (no [smtp])".into());
        return Err(failed(e, false));
    };
    let built = build_message(settings, smtp, secrets, message).map_err(|e| failed(e, true))?;
    let transport = transport(smtp, secrets).map_err(|e| failed(e, false))?;
    transport.send(built).await.map(|_| ()).map_err(|e| {
        let permanent = e.is_permanent();
        failed(smtp_error(e).redacted(secrets), permanent)
    })
}

/// `<key@domain>` from a key, with characters a Message-ID cannot hold replaced.
pub fn message_id_for(key: &str, from: &str) -> String {
    if key.starts_with('<') && key.ends_with('>') && key.contains('@') {
        return key.to_string();
    }
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("patchday.invalid");
    let local: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._+=".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{local}@{domain}>")
}

fn build_message(
    settings: &Settings,
    smtp: &SmtpSettings,
    secrets: &Secrets,
    message: OutgoingEmail,
) -> Result<Message, ConnectorError> {
    let fatal =
        |what: &str, e: &dyn std::fmt::Display| ConnectorError::Fatal(format!("{what}: {e}"));
    let to = settings
        .resolve_recipients(&message.to)
        .map_err(|e| fatal("to", &e))?;
    let cc = settings
        .resolve_recipients(&message.cc)
        .map_err(|e| fatal("cc", &e))?;
    if to.is_empty() {
        return Err(ConnectorError::Fatal(
            "the message has no recipients".into(),
        ));
    }
    let from: Mailbox = smtp.from.parse().map_err(|e| fatal("from", &e))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(secrets.redact(&message.subject))
        .date_now()
        .message_id(
            message
                .message_id
                .as_deref()
                .map(|k| message_id_for(k, &smtp.from)),
        );
    for address in &to {
        builder = builder.to(address.parse().map_err(|e| fatal(address, &e))?);
    }
    for address in &cc {
        builder = builder.cc(address.parse().map_err(|e| fatal(address, &e))?);
    }
    let built = match body(&message, secrets)? {
        Body::Single(part) => builder.singlepart(part),
        Body::Multi(parts) => builder.multipart(parts),
    };
    built.map_err(|e| fatal("cannot build the message", &e))
}

/// The body: plain text, text + HTML alternative, either one followed by attachments.
enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

fn body(message: &OutgoingEmail, secrets: &Secrets) -> Result<Body, ConnectorError> {
    let text = secrets.redact(&message.text);
    let main = match &message.html {
        Some(html) => Body::Multi(MultiPart::alternative_plain_html(
            text,
            secrets.redact(html),
        )),
        None => Body::Single(SinglePart::plain(text)),
    };
    if message.attachments.is_empty() {
        return Ok(main);
    }
    let mut mixed = match main {
        Body::Single(part) => MultiPart::mixed().singlepart(part),
        Body::Multi(alternative) => MultiPart::mixed().multipart(alternative),
    };
    for a in &message.attachments {
        let content_type = ContentType::parse(&a.content_type)
            .map_err(|e| ConnectorError::Fatal(format!("content type of {}: {e}", a.filename)))?;
        // Base64 always: content with bare LF line ends would otherwise go as 7bit, which SMTP
        // reads as one long line.
        let content = lettre::message::Body::new_with_encoding(
            a.content.clone(),
            lettre::message::header::ContentTransferEncoding::Base64,
        )
        .map_err(|_| ConnectorError::Fatal(format!("cannot encode {}", a.filename)))?;
        mixed = mixed.singlepart(
            lettre::message::Attachment::new(a.filename.clone()).body(content, content_type),
        );
    }
    Ok(Body::Multi(mixed))
}

fn transport(
    smtp: &SmtpSettings,
    secrets: &Secrets,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConnectorError> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port())
        .timeout(Some(smtp.timeout()));
    builder = match smtp.tls {
        SmtpTls::Starttls => builder.tls(Tls::Required(tls_parameters(smtp)?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls_parameters(smtp)?)),
        SmtpTls::None => builder.tls(Tls::None),
    };
    if let Some(credentials) = credentials(smtp, secrets)? {
        builder = builder.credentials(credentials);
    }
    Ok(builder.build())
}

fn credentials(
    smtp: &SmtpSettings,
    secrets: &Secrets,
) -> Result<Option<Credentials>, ConnectorError> {
    let Some(user) = &smtp.username else {
        return Ok(None);
    };
    let name = smtp.password_secret.as_deref().ok_or_else(|| {
        ConnectorError::Fatal("smtp: `username` is set but `password_secret` is not".into())
    })?;
    let password = secrets
        .get(name)
        .ok_or_else(|| ConnectorError::Fatal(format!("smtp: secret `{name}` is not set")))?;
    Ok(Some(Credentials::new(user.clone(), password.to_string())))
}

fn tls_parameters(smtp: &SmtpSettings) -> Result<TlsParameters, ConnectorError> {
    let fatal = |e: &dyn std::fmt::Display| ConnectorError::Fatal(format!("smtp TLS: {e}"));
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| fatal(&format!("cannot read {}: {e}", path.display())))?;
        for cert in split_pem(&pem) {
            let cert = Certificate::from_pem(cert.as_bytes()).map_err(|e| fatal(&e))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build_rustls().map_err(|e| fatal(&e))
}

/// The certificates of a PEM bundle, one string each.
fn split_pem(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .filter(|c| c.contains(END))
        .map(|c| c.trim().to_string())
        .collect()
}

fn smtp_error(e: lettre::transport::smtp::Error) -> ConnectorError {
    let message = format!("SMTP: {}", crate::builtin::http::error_chain(&e));
    if e.is_permanent() || message.contains("certificate") || message.contains("Certificate") {
        ConnectorError::Fatal(message)
    } else {
        ConnectorError::Retryable(message)
    }
}

/// Plain text from HTML: tags dropped, block ends as line breaks, entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        if matches!(
            name,
            "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "table"
        ) {
            out.push('\n');
        } else if matches!(name, "td" | "th") && !tag.starts_with('/') {
            out.push('\t');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    let lines: Vec<&str> = decoded.lines().map(str::trim).collect();
    let mut text = lines.join("\n");
    while text.contains("\n\n\n") {
        text = text.replace("\n\n\n", "\n\n");
    }
    text.trim().to_string() + "\n"
}

/// Renders the handlebars template file an input names (strict mode) against the run's
/// template context; the file comes from the run's version ([`Context::read_text`]).
pub fn render_template_file(ctx: &Context, name: &str) -> Result<String, ConnectorError> {
    let path = ctx.resolve_path(name);
    let source = ctx.read_text(name).map_err(|e| {
        ConnectorError::Fatal(format!("cannot read template {}: {e}", path.display()))
    })?;
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    if !name.contains(".html") {
        hb.register_escape_fn(handlebars::no_escape);
    }
    hb.render_template(&source, &ctx.vars)
        .map_err(|e| ConnectorError::Fatal(format!("template {}: {e}", path.display())))
}

/// The stable key of this step's message: the context's idempotency key, or run/step/host.
pub fn message_key(ctx: &Context) -> String {
    ctx.idempotency_key.clone().unwrap_or_else(|| {
        let mut key = format!("patchday.{}.{}", ctx.run_id, ctx.step_id);
        if let Some(host) = ctx.host_name() {
            key.push('.');
            key.push_str(host);
        }
        key
    })
}

fn outgoing(inputs: EmailInputs, ctx: &Context) -> Result<OutgoingEmail, ConnectorError> {
    let (mut text, mut html) = (inputs.body.unwrap_or_default(), inputs.html);
    if let Some(template) = &inputs.template {
        let rendered = render_template_file(ctx, template)?;
        if template.contains(".html") {
            html = Some(rendered);
        } else {
            text = rendered;
        }
    }
    if text.is_empty()
        && let Some(h) = &html
    {
        text = html_to_text(h);
    }
    let attachments = inputs
        .attach
        .iter()
        .map(|p| Attachment::from_file(&ctx.resolve_path(p)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OutgoingEmail {
        to: inputs.to.as_slice().to_vec(),
        cc: inputs.cc.map(|c| c.as_slice().to_vec()).unwrap_or_default(),
        subject: inputs.subject,
        text,
        html,
        attachments,
        message_id: Some(message_key(ctx)),
    })
}

impl Connector for Email {
    fn spec(&self) -> &'static ConnectorSpec {
        spec_of("email")
    }

    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError> {
        let inputs: EmailInputs = parse_inputs("email", inputs)?;
        let mut line = format!(
            "would email \"{}\" to {}",
            inputs.subject,
            inputs.to.as_slice().join(", ")
        );
        if !inputs.attach.is_empty() {
            line.push_str(&format!(" with {}", inputs.attach.join(", ")));
        }
        Ok(ctx.secrets.redact(&line))
    }

    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>> {
        Box::pin(async move {
            let inputs: EmailInputs = parse_inputs("email", &inputs)?;
            let message = outgoing(inputs, ctx)?;
            let smtp_from = ctx
                .settings
                .smtp
                .as_ref()
                .map(|s| s.from.clone())
                .unwrap_or_default();
            let message_id = message_id_for(&message_key(ctx), &smtp_from);
            let to = ctx
                .settings
                .resolve_recipients(&message.to)
                .map_err(ConnectorError::Fatal)?;
            let send = send_email(&ctx.settings, &ctx.secrets, message);
            until_cancelled(&ctx.cancel, send).await?;
            ctx.log_line(&format!("sent {message_id} to {}", to.join(", ")));
            let mut out = Outputs::new();
            out.insert("message_id".into(), message_id.into());
            out.insert("recipients".into(), to.into());
            Ok(ctx.redact_outputs(out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_well_formed() {
        let id = message_id_for("outbox/42 x", "Patchday <patchday@example.com>");
        assert_eq!(id, "<outbox.42.x@example.com>");
        assert_eq!(message_id_for("<a@b>", "x@y"), "<a@b>");
    }

    #[test]
    fn html_becomes_readable_text() {
        let text = html_to_text(
            "<h1>Report</h1><p>Hosts &amp; steps</p><table><tr><td>a</td><td>b</td></tr></table>",
        );
        assert_eq!(text, "Report\n\nHosts & steps\n\na\tb\n");
    }
}
