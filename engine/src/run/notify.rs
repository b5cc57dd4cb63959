//! Notifications a run sends through the outbox (DESIGN §5: written in the same transaction as
//! the transition that causes them; the daemon's mailer sends them): a step failed, a step is
//! overdue, the run finished — to the runbook's `notify` recipients, when `notify.on` asks.

use chrono::{DateTime, Utc};

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

/// Where a notice is about: the run, its cycle, and its page.
pub struct About<'a> {
    pub run_id: &'a str,
    pub cycle: &'a str,
    pub run_url: &'a str,
}

/// The email for `notice`, if the runbook's `notify` asks for it and names someone.
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
    let runbook = &checked.runbook.name.value;
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&checked.tz)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let (what, detail) = match notice {
        Notice::StepFailed { step, host, reason } => {
            let on = if host.is_empty() {
                String::new()
            } else {
                format!(" on {host}")
            };
            (
                format!("step {step}{on} failed"),
                format!("Reason: {reason}"),
            )
        }
        Notice::Overdue { step, deadline } => (
            format!("step {step} is overdue"),
            format!("Its deadline was {}.", local(*deadline)),
        ),
        Notice::RunFinished { state } => (
            format!("run {}", format!("{state:?}").to_lowercase()),
            String::new(),
        ),
    };
    let subject = format!("[patchday] {runbook} {}: {what}", about.cycle);
    let body = format!(
        "{what}\n\nRunbook: {runbook}\nCycle: {}\nRun: {}\nWhen: {}\n{detail}\n\nRun page: {}\n",
        about.cycle,
        about.run_id,
        local(at),
        about.run_url
    );
    Some(NewEmail {
        run_id: Some(about.run_id.to_string()),
        to,
        subject,
        body,
        html: None,
        created_at: at,
    })
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
