//! Notification emails: what each kind says, its template, and rendering (one function for
//! every notification the engine and the daemon send).
//!
//! A [`Notification`] is the facts of one email (approval requested, task assigned, step
//! failed, step overdue, run finished, cycle skipped, cycle missed, runbook change rejected)
//! as template variables. The facts come in already redacted: nothing here sees params or
//! secrets, so no template can put a secret into an email.
//!
//! Each kind has a built-in handlebars template, `defaults/<kind>.hbs`, compiled into the
//! binary; a runbook's `notify.templates` replaces it per kind. A template file's first line
//! may be `Subject: <template>`, then a blank line, then the body; without that line the
//! built-in subject of the kind is used. Rendering is strict (an unknown variable is an error)
//! and plain text (no HTML escaping). An override that still fails to render (validation has
//! checked its variables) falls back to the built-in template with a warning in the log: a
//! notification is never lost to a template.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub use crate::runbook::NoticeKind;
use crate::template::{VarRef, variables as template_variables};

/// Variables every kind has.
const COMMON: &[&str] = &["runbook", "what", "when", "dashboard_url"];
/// Variables of a notification about a run.
const RUN: &[&str] = &["cycle", "run_id", "run_url"];
/// Variables of an approval or task email, besides [`COMMON`] and [`RUN`].
const ASK: &[&str] = &[
    "step",
    "host",
    "description",
    "message",
    "choices",
    "quorum",
    "expires",
    "hosts",
    "link",
    "recipient",
];

/// The variables a kind's template may name, [`COMMON`] first.
pub fn variables(kind: NoticeKind) -> Vec<&'static str> {
    let own: &[&[&str]] = match kind {
        NoticeKind::Approval | NoticeKind::Task => &[RUN, ASK],
        NoticeKind::Failure => &[RUN, &["step", "host", "reason"]],
        NoticeKind::Overdue => &[RUN, &["step", "deadline"]],
        NoticeKind::Finished => &[RUN, &["state"]],
        NoticeKind::Skipped | NoticeKind::Missed => &[&["cycle", "due", "reason"]],
        NoticeKind::Rejected => &[&["file", "errors", "content_hash", "commit"]],
        NoticeKind::Undeliverable => &[RUN, &["to", "subject", "error"]],
        NoticeKind::Interrupted => &[RUN, &["step", "host", "reason"]],
        NoticeKind::Moot => &[RUN, &["step", "host", "heading", "why", "recipient"]],
    };
    COMMON
        .iter()
        .chain(own.iter().copied().flatten())
        .copied()
        .collect()
}

/// The built-in template of a kind, as shipped.
pub fn default_text(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Approval => include_str!("defaults/approval.hbs"),
        NoticeKind::Task => include_str!("defaults/task.hbs"),
        NoticeKind::Failure => include_str!("defaults/failure.hbs"),
        NoticeKind::Overdue => include_str!("defaults/overdue.hbs"),
        NoticeKind::Finished => include_str!("defaults/finished.hbs"),
        NoticeKind::Skipped => include_str!("defaults/skipped.hbs"),
        NoticeKind::Missed => include_str!("defaults/missed.hbs"),
        NoticeKind::Rejected => include_str!("defaults/rejected.hbs"),
        NoticeKind::Undeliverable => include_str!("defaults/undeliverable.hbs"),
        NoticeKind::Interrupted => include_str!("defaults/interrupted.hbs"),
        NoticeKind::Moot => include_str!("defaults/moot.hbs"),
    }
}

/// A notification template: an optional subject line and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub subject: Option<String>,
    pub body: String,
}

impl Template {
    /// Reads a template file: a first line `Subject: ...` (any case) and the blank line after
    /// it set the subject; everything else is the body.
    pub fn parse(text: &str) -> Template {
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let first = first.trim_end_matches('\r');
        let is_subject = first
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("subject:"));
        if !is_subject {
            return Template {
                subject: None,
                body: text.to_string(),
            };
        }
        let body = rest
            .strip_prefix("\r\n")
            .or_else(|| rest.strip_prefix('\n'))
            .unwrap_or(rest);
        Template {
            subject: Some(first[8..].trim().to_string()),
            body: body.to_string(),
        }
    }

    /// The variables the subject and the body name (an error if either does not compile).
    pub fn variables(&self) -> Result<Vec<VarRef>, String> {
        let mut out = template_variables(self.subject.as_deref().unwrap_or(""))?;
        out.extend(template_variables(&self.body)?);
        Ok(out)
    }
}

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// The templates one runbook uses: its overrides, the built-in ones for the other kinds.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    overrides: BTreeMap<NoticeKind, Template>,
}

impl Templates {
    /// Uses `template` for `kind` instead of the built-in one.
    pub fn set(&mut self, kind: NoticeKind, template: Template) {
        self.overrides.insert(kind, template);
    }

    /// The email for `notification`: the runbook's template for its kind, else the built-in.
    pub fn render(&self, notification: &Notification) -> Rendered {
        let kind = notification.facts.kind();
        let context = notification.context();
        let fallback = Template::parse(default_text(kind));
        if let Some(custom) = self.overrides.get(&kind) {
            match render(custom, &fallback, &context) {
                Ok(rendered) => return rendered,
                Err(e) => tracing::warn!(
                    runbook = %notification.runbook,
                    "the `{}` notification template failed ({e}); the built-in one is used",
                    kind.key()
                ),
            }
        }
        render(&fallback, &fallback, &context).unwrap_or_else(|e| {
            let what = notification.facts.what();
            Rendered {
                subject: format!("[patchday] {}: {what}", notification.runbook),
                body: format!("{what}\n\n(the notification template failed: {e})\n"),
            }
        })
    }
}

/// Renders `template`, with the subject of `fallback` when it has none.
fn render(template: &Template, fallback: &Template, context: &Value) -> Result<Rendered, String> {
    let hb = crate::template::registry(true);
    let subject = template
        .subject
        .as_deref()
        .or(fallback.subject.as_deref())
        .unwrap_or("[patchday] {{runbook}}: {{what}}");
    let render = |text: &str| {
        hb.render_template(text, context).map_err(|e| {
            let e = e.to_string();
            e.lines().next().unwrap_or_default().to_string()
        })
    };
    Ok(Rendered {
        subject: render(subject)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        body: render(&template.body)?,
    })
}

/// One notification: about which runbook, when, and its kind's facts.
#[derive(Debug, Clone)]
pub struct Notification {
    pub runbook: String,
    /// When it happened; shown in the runbook's zone.
    pub at: DateTime<Utc>,
    pub tz: chrono_tz::Tz,
    /// The daemon's index page (runbooks, next cycles, recent runs).
    pub dashboard_url: String,
    pub facts: Facts,
}

/// The run a notification is about.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub cycle: String,
    pub run_id: String,
    pub run_url: String,
}

/// What an approval or a task asks of one recipient.
#[derive(Debug, Clone)]
pub struct Ask {
    pub step: String,
    /// The host of a fanned-out step; empty otherwise.
    pub host: String,
    /// The step's `description`, or empty.
    pub description: String,
    /// The approval's `message` or the task's `instructions`, rendered; may be empty.
    pub message: String,
    pub choices: Vec<String>,
    pub quorum: u32,
    /// When the link expires.
    pub expires: DateTime<Utc>,
    /// The hosts the run touches.
    pub hosts: Vec<String>,
    /// This recipient's own signed link.
    pub link: String,
    pub recipient: String,
}

/// A decision that is no longer needed, for one of the people who were asked.
#[derive(Debug, Clone)]
pub struct Moot {
    pub step: String,
    /// The host of a fanned-out step; empty otherwise.
    pub host: String,
    /// What was asked, in the step's own words: its `message` (first line), else its
    /// `description`, else its id.
    pub heading: String,
    /// Why it is no longer needed: `the quorum was reached: approve by alice@example.com`.
    pub why: String,
    pub recipient: String,
}

/// A cycle that did not run.
#[derive(Debug, Clone)]
pub struct CycleFacts {
    pub cycle: String,
    /// When it was due to fire.
    pub due: DateTime<Utc>,
    pub reason: String,
}

/// The facts of each kind of notification.
#[derive(Debug, Clone)]
pub enum Facts {
    Approval(RunFacts, Box<Ask>),
    Task(RunFacts, Box<Ask>),
    Failure {
        run: RunFacts,
        /// Empty when the run as a whole failed (the engine could not drive it on).
        step: String,
        host: String,
        reason: String,
    },
    Overdue {
        run: RunFacts,
        step: String,
        deadline: DateTime<Utc>,
    },
    Finished {
        run: RunFacts,
        /// `succeeded`, `failed` or `cancelled`.
        state: String,
    },
    Skipped(CycleFacts),
    Missed(CycleFacts),
    Rejected {
        file: String,
        /// Each error rendered as `file:line:col: message` with its snippet.
        errors: Vec<String>,
        /// The last good version that keeps running.
        content_hash: String,
        commit: String,
    },
    /// An email of the run was refused for good (a 5xx answer) and given up.
    Undeliverable {
        run: RunFacts,
        /// Its recipients.
        to: Vec<String>,
        subject: String,
        /// The server's answer (redacted).
        error: String,
    },
    /// A step waits for an operator (retry, skip or abort) after an interruption.
    Interrupted {
        run: RunFacts,
        step: String,
        host: String,
        reason: String,
    },
    /// A person's decision is no longer needed (quorum reached, or the run moved on).
    Moot(RunFacts, Box<Moot>),
}

impl Facts {
    pub fn kind(&self) -> NoticeKind {
        match self {
            Facts::Approval(..) => NoticeKind::Approval,
            Facts::Task(..) => NoticeKind::Task,
            Facts::Failure { .. } => NoticeKind::Failure,
            Facts::Overdue { .. } => NoticeKind::Overdue,
            Facts::Finished { .. } => NoticeKind::Finished,
            Facts::Skipped(_) => NoticeKind::Skipped,
            Facts::Missed(_) => NoticeKind::Missed,
            Facts::Rejected { .. } => NoticeKind::Rejected,
            Facts::Undeliverable { .. } => NoticeKind::Undeliverable,
            Facts::Interrupted { .. } => NoticeKind::Interrupted,
            Facts::Moot(..) => NoticeKind::Moot,
        }
    }

    /// One line saying what happened (`step patch failed`).
    fn what(&self) -> String {
        let on = |host: &str| {
            if host.is_empty() {
                String::new()
            } else {
                format!(" on {host}")
            }
        };
        match self {
            Facts::Approval(_, ask) => {
                format!("approval requested: step {}{}", ask.step, on(&ask.host))
            }
            Facts::Task(_, ask) => format!("task assigned: step {}{}", ask.step, on(&ask.host)),
            Facts::Failure { step, .. } if step.is_empty() => "run failed".into(),
            Facts::Failure { step, host, .. } => format!("step {step}{} failed", on(host)),
            Facts::Overdue { step, .. } => format!("step {step} is overdue"),
            Facts::Finished { state, .. } => format!("run {state}"),
            Facts::Skipped(_) => "cycle skipped".into(),
            Facts::Missed(_) => "cycle missed".into(),
            Facts::Rejected { .. } => "change rejected".into(),
            Facts::Undeliverable { .. } => "an email could not be delivered".into(),
            Facts::Interrupted { step, host, .. } => {
                format!("step {step}{} waits for an operator", on(host))
            }
            Facts::Moot(_, moot) => format!(
                "your decision on step {}{} is no longer needed",
                moot.step,
                on(&moot.host)
            ),
        }
    }
}

/// A time as emails show it: in the runbook's zone, `Tue 2026-12-08 10:00 EST`.
pub fn local_time(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    crate::calendar::wall_clock(&at, tz)
}

impl Notification {
    /// The template variables: exactly [`variables`] of its kind.
    pub fn context(&self) -> Value {
        let local = |t: DateTime<Utc>| local_time(t, self.tz);
        let mut context = json!({
            "runbook": self.runbook,
            "what": self.facts.what(),
            "when": local(self.at),
            "dashboard_url": self.dashboard_url,
        });
        let own = match &self.facts {
            Facts::Approval(run, ask) | Facts::Task(run, ask) => {
                with_run(run, ask_json(ask, local(ask.expires)))
            }
            Facts::Failure {
                run,
                step,
                host,
                reason,
            } => with_run(run, json!({ "step": step, "host": host, "reason": reason })),
            Facts::Overdue {
                run,
                step,
                deadline,
            } => with_run(run, json!({ "step": step, "deadline": local(*deadline) })),
            Facts::Finished { run, state } => with_run(run, json!({ "state": state })),
            Facts::Skipped(c) | Facts::Missed(c) => {
                json!({ "cycle": c.cycle, "due": local(c.due), "reason": c.reason })
            }
            Facts::Rejected {
                file,
                errors,
                content_hash,
                commit,
            } => json!({
                "file": file, "errors": errors, "content_hash": content_hash, "commit": commit,
            }),
            Facts::Undeliverable {
                run,
                to,
                subject,
                error,
            } => with_run(run, json!({ "to": to, "subject": subject, "error": error })),
            Facts::Interrupted {
                run,
                step,
                host,
                reason,
            } => with_run(run, json!({ "step": step, "host": host, "reason": reason })),
            Facts::Moot(run, moot) => with_run(
                run,
                json!({
                    "step": moot.step,
                    "host": moot.host,
                    "heading": moot.heading,
                    "why": moot.why,
                    "recipient": moot.recipient,
                }),
            ),
        };
        if let (Some(map), Value::Object(own)) = (context.as_object_mut(), own) {
            map.extend(own);
        }
        context
    }
}

fn with_run(run: &RunFacts, mut own: Value) -> Value {
    if let Some(map) = own.as_object_mut() {
        map.insert("cycle".into(), json!(run.cycle));
        map.insert("run_id".into(), json!(run.run_id));
        map.insert("run_url".into(), json!(run.run_url));
    }
    own
}

fn ask_json(ask: &Ask, expires: String) -> Value {
    json!({
        "step": ask.step,
        "host": ask.host,
        "description": ask.description,
        "message": ask.message.trim(),
        "choices": ask.choices,
        "quorum": ask.quorum,
        "expires": expires,
        "hosts": ask.hosts,
        "link": ask.link,
        "recipient": ask.recipient,
    })
}

#[cfg(test)]
mod tests;
