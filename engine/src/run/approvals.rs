//! Approval and task emails with signed links (DESIGN §7).
//!
//! When a live `approval` or `manual` step enters `awaiting_input`, the driver writes one outbox
//! email per resolved recipient in the same commit as the transition, when the engine has a
//! [`LinkMinter`] (the daemon). Each email carries its own link, `<public_url>/links/<token>`,
//! whose token binds run, step, host, recipient, purpose, expiry and a fresh nonce
//! ([`crate::links`]). Without a minter (the CLI `run`) no such email is written.
//!
//! The emails' text comes from the runbook's `approval` / `task` templates
//! ([`crate::notification`]); every one carries that recipient's link and no other.
//!
//! [`Engine::person_ask`] renders what a person-step asks (message, choices, quorum, recipients,
//! expiry) the way decisions see it: against the run's stored params, which never hold secrets.
//! The emails and the confirmation page both use it, so neither can show a secret.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use patchday_connectors::inputs::{ApprovalInputs, ManualInputs, OnExpire};
use serde_json::{Value, json};

use super::notify::rendered_email;
use super::*;
use crate::links::{LinkClaims, LinkError, LinkSigner, Purpose, new_nonce};
use crate::notification::{Ask, Facts, Moot, Notification, RunFacts};
use crate::store::NewEmail;

/// A source of randomness for nonces: fills the buffer.
pub type Randomness = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// Where links come from: the signer, the default lifetime, and a source of randomness for
/// nonces. Links are made under the engine's `public_url`.
pub struct LinkMinter {
    pub signer: LinkSigner,
    /// How long a link lives when the step sets no `expires` (`[security] link_ttl`).
    pub ttl: chrono::Duration,
    random: Randomness,
}

impl std::fmt::Debug for LinkMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkMinter")
            .field("signer", &self.signer)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LinkMinter {
    pub fn new(signer: LinkSigner, ttl: chrono::Duration, random: Randomness) -> LinkMinter {
        LinkMinter {
            signer,
            ttl,
            random,
        }
    }

    /// A fresh nonce from the minter's randomness.
    pub fn nonce(&self) -> String {
        new_nonce(&mut |buf: &mut [u8]| (self.random)(buf))
    }

    /// The token and full URL of a link for `claims`, under `base` (no trailing slash).
    pub fn link(&self, base: &str, claims: &LinkClaims) -> Result<(String, String), LinkError> {
        let token = self.signer.sign(claims)?;
        let url = format!("{base}/links/{token}");
        Ok((token, url))
    }
}

/// A person-step's rendered inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonAsk {
    pub purpose: Purpose,
    /// Resolved addresses.
    pub recipients: Vec<String>,
    /// The first lets the run go on (`done` / `failed` for a task).
    pub choices: Vec<String>,
    /// Matching decisions needed (1 for a task).
    pub quorum: u32,
    /// The approval's `message` or the task's `instructions`, rendered.
    pub message: Option<String>,
    /// The step's `expires`, measured from the row's `started_at`.
    pub expires: Option<chrono::Duration>,
    /// What an expiry does to the step.
    pub on_expire: OnExpire,
}

impl PersonAsk {
    /// When the links of a row started at `started` expire: at the step's own expiry, else
    /// after the default lifetime.
    pub fn link_expiry(&self, started: DateTime<Utc>, ttl: chrono::Duration) -> DateTime<Utc> {
        started + self.expires.unwrap_or(ttl)
    }
}

impl<S: Store> Engine<S> {
    /// What the person-step (run, step, host) asks, rendered against the run's stored params
    /// (no secrets), roles resolved with the runbook's `roles:` merged into the configured ones.
    pub fn person_ask(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        rows: &[StepRow],
        step: &str,
        host: &str,
    ) -> Result<PersonAsk, RunError> {
        let bad = |reason: String| RunError::BadInputs {
            step: step.to_string(),
            reason,
        };
        let definition = checked
            .runbook
            .steps
            .get(step)
            .ok_or_else(|| bad("the runbook has no such step".into()))?;
        let purpose = match definition.uses.as_ref().map(|u| u.value.as_str()) {
            Some("approval") => Purpose::Approval,
            Some("manual") => Purpose::Task,
            other => {
                return Err(bad(format!(
                    "it uses `{}`, not `approval` or `manual`",
                    other.unwrap_or("nothing")
                )));
            }
        };
        let raw = definition
            .with
            .as_ref()
            .map_or_else(|| json!({}), |w| w.to_json());
        let params = run
            .snapshot
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let run_url = self.run_url(&run.id);
        let host_json = if host.is_empty() {
            None
        } else {
            host_value(checked.inventory.as_ref(), host)
        };
        let context = RunContext::from_run(run, params, run_url).for_step(rows, host_json.as_ref());
        let rendered = render_value(&registry(true), &raw, &context).map_err(bad)?;
        let (names, choices, quorum, message, expires, on_expire) = match purpose {
            Purpose::Approval => {
                let inputs: ApprovalInputs =
                    serde_json::from_value(rendered).map_err(|e| bad(e.to_string()))?;
                let choices = inputs
                    .choices
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| vec!["approve".into(), "reject".into()]);
                (
                    inputs.approvers.as_slice().to_vec(),
                    choices,
                    inputs.quorum.max(1),
                    inputs.message,
                    inputs.expires,
                    inputs.on_expire,
                )
            }
            Purpose::Task => {
                let inputs: ManualInputs =
                    serde_json::from_value(rendered).map_err(|e| bad(e.to_string()))?;
                (
                    inputs.assignee.as_slice().to_vec(),
                    vec!["done".into(), "failed".into()],
                    1,
                    Some(inputs.instructions),
                    inputs.expires,
                    inputs.on_expire,
                )
            }
        };
        let mut settings = (*self.settings).clone();
        for (role, addresses) in &checked.runbook.roles {
            settings
                .roles
                .entry(role.value.clone())
                .or_insert_with(|| addresses.iter().map(|a| a.value.clone()).collect());
        }
        let recipients = settings.resolve_recipients(&names).map_err(bad)?;
        let expires = expires
            .map(|d| chrono::Duration::from_std(d.duration()))
            .transpose()
            .map_err(|e| bad(format!("expires: {e}")))?;
        Ok(PersonAsk {
            purpose,
            recipients,
            choices,
            quorum,
            message,
            expires,
            on_expire,
        })
    }

    /// One email per recipient of the person-step `row` (just set `awaiting_input`), each with
    /// its own link. Empty without a [`LinkMinter`]; a step whose inputs cannot be read gets
    /// no email (deciding on it fails the same way, and the row shows it waiting).
    pub(super) fn person_emails(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        rows: &[StepRow],
        row: &StepRow,
        now: DateTime<Utc>,
    ) -> Vec<NewEmail> {
        let Some(minter) = &self.links else {
            return Vec::new();
        };
        let ask = match self.person_ask(checked, run, rows, &row.step, &row.host) {
            Ok(ask) => ask,
            Err(_) => return Vec::new(),
        };
        let expires_at = ask.link_expiry(row.started_at.unwrap_or(now), minter.ttl);
        let urls = Urls {
            run: self.run_url(&run.id),
            dashboard: self.dashboard_url(),
        };
        let base = person_notification(checked, run, row, &ask, expires_at, &urls, now);
        let mut out = Vec::new();
        for recipient in &ask.recipients {
            let claims = LinkClaims {
                run_id: run.id.clone(),
                step: row.step.clone(),
                host: row.host.clone(),
                recipient: recipient.clone(),
                purpose: ask.purpose,
                expires_at,
                nonce: minter.nonce(),
            };
            let Ok((_, link)) = minter.link(self.base_url(), &claims) else {
                continue; // a claim longer than a link holds: validation keeps ids short
            };
            let mut notification = base.clone();
            if let Facts::Approval(_, asked) | Facts::Task(_, asked) = &mut notification.facts {
                (asked.link, asked.recipient) = (link, recipient.clone());
            }
            let to = vec![recipient.clone()];
            out.push(rendered_email(
                checked,
                &notification,
                to,
                Some(&run.id),
                now,
            ));
        }
        out
    }
}

impl<S: Store> Engine<S> {
    /// "No longer needed" emails (kind `moot`) to the people `ask` asked who are not among
    /// `decided`, because of `why` (`the quorum was reached: approve by bob@example.com`).
    /// Empty without a [`LinkMinter`] (nobody was asked by email) or with the step's
    /// `notify_moot: false`.
    pub(super) fn moot_emails(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        (row, ask): (&StepRow, &PersonAsk),
        decided: &[&crate::store::NewDecision],
        why: &str,
        now: DateTime<Utc>,
    ) -> Vec<NewEmail> {
        let step = checked.runbook.steps.get(row.step.as_str());
        if self.links.is_none()
            || step
                .and_then(|s| s.notify_moot.as_ref())
                .is_some_and(|n| !n.value)
        {
            return Vec::new();
        }
        let has_decided = |r: &str| decided.iter().any(|d| d.recipient.eq_ignore_ascii_case(r));
        let run_facts = RunFacts {
            cycle: super::cycle_shown(run),
            run_id: run.id.clone(),
            run_url: self.run_url(&run.id),
        };
        ask.recipients
            .iter()
            .filter(|r| !has_decided(r))
            .map(|recipient| {
                let moot = Moot {
                    step: row.step.clone(),
                    host: row.host.clone(),
                    heading: ask_heading(checked, &row.step, ask),
                    why: why.to_string(),
                    recipient: recipient.clone(),
                };
                let notification = Notification {
                    runbook: checked.runbook.name.value.clone(),
                    at: now,
                    tz: checked.tz,
                    dashboard_url: self.dashboard_url(),
                    facts: Facts::Moot(run_facts.clone(), Box::new(moot)),
                };
                rendered_email(
                    checked,
                    &notification,
                    vec![recipient.clone()],
                    Some(&run.id),
                    now,
                )
            })
            .collect()
    }
}

impl<S: Store> Engine<S> {
    /// "No longer needed" to the people of every row of `rows` still awaiting input when the
    /// run ends without them (cancelled, failed): `why` says how it ended.
    pub(super) async fn moot_for_ended_run(
        &self,
        checked: &CheckedRunbook,
        run: &RunRow,
        rows: &[StepRow],
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewEmail>, StoreError> {
        let mut out = Vec::new();
        for row in rows.iter().filter(|r| r.state == StepState::AwaitingInput) {
            let Ok(ask) = self.person_ask(checked, run, rows, &row.step, &row.host) else {
                continue;
            };
            let decided = self.store.decisions(&run.id, &row.step, &row.host).await?;
            let decided: Vec<&crate::store::NewDecision> =
                decided.iter().map(|d| &d.decision).collect();
            out.extend(self.moot_emails(checked, run, (row, &ask), &decided, why, now));
        }
        Ok(out)
    }
}

/// What a person-step asks, in its own words: the first line of its `message` (an approval's)
/// or else its `description`, else its id. Pages and emails head the ask with it, so an
/// emergency approval is not headed as a monthly cycle.
pub fn ask_heading(checked: &CheckedRunbook, step: &str, ask: &PersonAsk) -> String {
    let message = (ask.purpose == Purpose::Approval)
        .then_some(ask.message.as_deref())
        .flatten()
        .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()));
    let description = checked
        .runbook
        .steps
        .get(step)
        .and_then(|s| s.description.as_deref())
        .map(str::trim)
        .filter(|d| !d.is_empty());
    message.or(description).unwrap_or(step).to_string()
}

/// The run page and dashboard addresses a person-step's emails point at.
struct Urls {
    run: String,
    dashboard: String,
}

/// The approval or task notification of `row`, its `link` and `recipient` left to fill in.
fn person_notification(
    checked: &CheckedRunbook,
    run: &RunRow,
    row: &StepRow,
    ask: &PersonAsk,
    expires: DateTime<Utc>,
    urls: &Urls,
    now: DateTime<Utc>,
) -> Notification {
    let cycle = super::cycle_shown(run);
    let run_facts = RunFacts {
        cycle,
        run_id: run.id.clone(),
        run_url: urls.run.clone(),
    };
    let description = checked
        .runbook
        .steps
        .get(row.step.as_str())
        .and_then(|s| s.description.clone());
    let asked = Box::new(Ask {
        step: row.step.clone(),
        host: row.host.clone(),
        description: description.unwrap_or_default(),
        message: ask.message.clone().unwrap_or_default(),
        choices: ask.choices.clone(),
        quorum: ask.quorum,
        expires,
        hosts: hosts_of(checked, &row.host, now),
        link: String::new(),
        recipient: String::new(),
    });
    Notification {
        runbook: checked.runbook.name.value.clone(),
        at: now,
        tz: checked.tz,
        dashboard_url: urls.dashboard.clone(),
        facts: match ask.purpose {
            Purpose::Approval => Facts::Approval(run_facts, asked),
            Purpose::Task => Facts::Task(run_facts, asked),
        },
    }
}

/// The hosts a person-step is about: its own host, else the members of every fan-out group
/// of the runbook (what the run will touch), in order, without duplicates.
pub fn hosts_of(checked: &CheckedRunbook, host: &str, now: DateTime<Utc>) -> Vec<String> {
    if !host.is_empty() {
        return vec![host.to_string()];
    }
    let Some(inventory) = &checked.inventory else {
        return Vec::new();
    };
    let today = now.with_timezone(&checked.tz).date_naive();
    let mut out: Vec<String> = Vec::new();
    for step in checked.runbook.steps.values() {
        let Some(fe) = &step.for_each else { continue };
        for member in inventory.members(&fe.group.value, today) {
            if let crate::inventory::Member::Included(name, _) = member
                && !out.iter().any(|h| h == name)
            {
                out.push(name.to_string());
            }
        }
    }
    out
}

fn host_value(inventory: Option<&Inventory>, host: &str) -> Option<Value> {
    let (name, record) = inventory?.hosts.get_key_value(host)?;
    Some(Inventory::host_json(&name.value, record))
}
