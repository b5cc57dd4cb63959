//! Notifications a run sends through the outbox (DESIGN §5: written in the same transaction as
//! the transition that causes them; the daemon's mailer sends them): a step failed, a step is
//! overdue, the run finished — to the runbook's `notify` recipients, when `notify.on` asks.
//! Their text comes from the runbook's templates ([`crate::notification`]).

use chrono::{DateTime, Utc};

use crate::notification::{Facts, Notification, RunFacts};
use crate::runbook::NotifyEvent;
use crate::store::{NewEmail, RunState};
use crate::validate::CheckedRunbook;

/// Something a runbook's `notify` may ask to hear about.
pub enum Notice<'a> {
    StepFailed {
        step: &'a str,
        host: &'a str,
        reason: &'a str,
    },
    Overdue {
        step: &'a str,
        deadline: DateTime<Utc>,
    },
    RunFinished {
        state: RunState,
    },
}

impl Notice<'_> {
    fn event(&self) -> NotifyEvent {
        match self {
            Notice::StepFailed { .. } => NotifyEvent::Failure,
            Notice::Overdue { .. } => NotifyEvent::Overdue,
            Notice::RunFinished { .. } => NotifyEvent::Finished,
        }
    }
}

/// Where a notice is about: the run, its cycle, its page, and the dashboard.
pub struct About<'a> {
    pub run_id: &'a str,
    pub cycle: &'a str,
    pub run_url: &'a str,
    pub dashboard_url: &'a str,
}

/// The email for `notice`, if the runbook's `notify` asks for it and names someone, rendered
/// with the runbook's template for its kind. `reason` must already be redacted.
pub fn email(
    checked: &CheckedRunbook,
    notice: &Notice,
    about: &About,
    at: DateTime<Utc>,
) -> Option<NewEmail> {
    let notify = checked.runbook.notify.as_ref()?;
    if !notify.on.contains(&notice.event()) {
        return None;
    }
    let to = recipients(checked, notify.to.value.as_slice());
    if to.is_empty() {
        return None;
    }
    let run = about.facts();
    let facts = match notice {
        Notice::StepFailed { step, host, reason } => Facts::Failure {
            run,
            step: step.to_string(),
            host: host.to_string(),
            reason: reason.to_string(),
        },
        Notice::Overdue { step, deadline } => Facts::Overdue {
            run,
            step: step.to_string(),
            deadline: *deadline,
        },
        Notice::RunFinished { state } => Facts::Finished {
            run,
            state: format!("{state:?}").to_lowercase(),
        },
    };
    Some(run_email(checked, about, facts, to, at))
}

impl About<'_> {
    /// The run's facts every notification about it carries.
    pub fn facts(&self) -> RunFacts {
        RunFacts {
            cycle: self.cycle.to_string(),
            run_id: self.run_id.to_string(),
            run_url: self.run_url.to_string(),
        }
    }
}

/// The email of a notification about a run (`facts`), to `to`, rendered with the runbook's
/// template for its kind.
pub fn run_email(
    checked: &CheckedRunbook,
    about: &About,
    facts: Facts,
    to: Vec<String>,
    at: DateTime<Utc>,
) -> NewEmail {
    let notification = Notification {
        runbook: checked.runbook.name.value.clone(),
        at,
        tz: checked.tz,
        dashboard_url: about.dashboard_url.to_string(),
        facts,
    };
    rendered_email(checked, &notification, to, Some(about.run_id), at)
}

/// Who is told of what cannot wait, whatever `notify.on` says (a rejected change, a run the
/// engine had to fail, an email given up): the runbook's `notify.to`, else its `committee`.
pub fn always_told(checked: &CheckedRunbook) -> Vec<String> {
    let committee = ["committee".to_string()];
    let names = match &checked.runbook.notify {
        Some(notify) if !notify.to.value.as_slice().is_empty() => notify.to.value.as_slice(),
        _ => &committee[..],
    };
    recipients(checked, names)
}

/// The email saying the engine failed a run (`reason`), to [`always_told`] (`None`: nobody).
pub fn run_failed_email(
    checked: &CheckedRunbook,
    about: &About,
    reason: &str,
    at: DateTime<Utc>,
) -> Option<NewEmail> {
    let to = always_told(checked);
    if to.is_empty() {
        return None;
    }
    let facts = Facts::Failure {
        run: about.facts(),
        step: String::new(),
        host: String::new(),
        reason: reason.to_string(),
    };
    Some(run_email(checked, about, facts, to, at))
}

/// The role that hears, besides [`always_told`], that a step waits for an operator.
pub const OPERATORS_ROLE: &str = "operators";

/// Who is told that a step waits for an operator: [`always_told`] (`notify.to`, else the
/// `committee`) and the runbook's [`OPERATORS_ROLE`] role, whatever `notify.on` says.
pub fn operators(checked: &CheckedRunbook) -> Vec<String> {
    let mut to = always_told(checked);
    for address in recipients(checked, &[OPERATORS_ROLE.to_string()]) {
        if !to.contains(&address) {
            to.push(address);
        }
    }
    to
}

/// The email saying `step` (on `hosts`, empty for a step as a whole) waits for an operator
/// because of `reason`, to [`operators`] (`None`: nobody to tell).
pub fn interrupted_email(
    checked: &CheckedRunbook,
    about: &About,
    step: &str,
    hosts: &[&str],
    reason: &str,
    at: DateTime<Utc>,
) -> Option<NewEmail> {
    let to = operators(checked);
    if to.is_empty() {
        return None;
    }
    let (host, reason) = match hosts {
        [] => (String::new(), reason.to_string()),
        [one] => (one.to_string(), reason.to_string()),
        many => (
            String::new(),
            format!(
                "{reason} (hosts {}: decide for each with --host)",
                many.join(", ")
            ),
        ),
    };
    let facts = Facts::Interrupted {
        run: about.facts(),
        step: step.to_string(),
        host,
        reason,
    };
    Some(run_email(checked, about, facts, to, at))
}

/// An outbox email carrying `notification`, rendered with the runbook's templates.
pub fn rendered_email(
    checked: &CheckedRunbook,
    notification: &Notification,
    to: Vec<String>,
    run_id: Option<&str>,
    at: DateTime<Utc>,
) -> NewEmail {
    let rendered = checked.notifications.render(notification);
    NewEmail {
        run_id: run_id.map(str::to_string),
        to,
        subject: rendered.subject,
        body: rendered.body,
        html: None,
        created_at: at,
        attachments: Vec::new(),
        key: None,
    }
}

/// Role names become the role's addresses; addresses stay; duplicates go.
pub fn recipients(checked: &CheckedRunbook, names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let addresses: Vec<String> = if name.contains('@') {
            vec![name.clone()]
        } else {
            checked
                .runbook
                .roles
                .get(name.as_str())
                .map(|a| a.iter().map(|l| l.value.clone()).collect())
                .unwrap_or_default()
        };
        for address in addresses {
            if !out.contains(&address) {
                out.push(address);
            }
        }
    }
    out
}
