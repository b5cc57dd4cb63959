//! The runbook model (DESIGN §3): what a runbook file says, as typed values with locations.
//!
//! These types are the contract with runbook authors: the JSON Schema in `schemas/` is
//! generated from them, and [`load`] reads them from YAML. They hold text as written
//! (time expressions, templates); [`crate::validate`] checks and compiles that text.

pub mod load;

use indexmap::IndexMap;
use patchday_connectors::values::{DurationText, OneOrMany};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::yaml::{Located, Node};

pub use load::{LoadedRunbook, load_runbook};

/// A runbook: one timeline of steps, fired on a calendar or by hand.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "patchday runbook")]
pub struct Runbook {
    /// Unique across the runbooks folder: lower-case letters, digits and dashes.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]*$"))]
    pub name: Located<String>,
    /// What this runbook is for.
    #[serde(default)]
    pub description: Option<String>,
    /// IANA time zone every wall-clock time in this runbook is read in (default UTC).
    #[serde(default)]
    pub timezone: Option<Located<String>>,
    /// When cycles fire. No schedule means manual trigger only.
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    /// Periods in which no cycle fires (change freezes).
    #[serde(default)]
    pub blackouts: Vec<Blackout>,
    /// A cycle missed by less than this still starts late; older ones are recorded as missed.
    #[serde(default)]
    pub catch_up: Option<Located<DurationText>>,
    /// The hosts `for_each` fans out over: a patchday inventory file relative to this runbook,
    /// or `{ ansible: PATH }` for an Ansible inventory (INI or YAML).
    #[serde(default)]
    pub inventory: Option<InventoryRef>,
    /// Named groups of people: role name to email addresses.
    #[serde(default)]
    pub roles: IndexMap<Located<String>, Vec<Located<String>>>,
    /// Who hears about what.
    #[serde(default)]
    pub notify: Option<Notify>,
    /// What happens when a step fails: `stop` (default) or `rollback` (run `undo` of succeeded steps).
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Parameters given when the run starts (`--param k=v`).
    #[serde(default)]
    pub params: IndexMap<Located<String>, Param>,
    /// Patch SLAs: how soon after the release each severity must be patched (e.g.
    /// `{ critical: 14d, important: 30d }`), measured from 00:00 on Patch Tuesday of the run's
    /// cycle in the runbook's time zone, or from a run's `released` param (`YYYY-MM-DD`).
    #[serde(default)]
    pub sla: Option<Sla>,
    /// The severity of this runbook's patches (a run's `severity` param overrides it).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// The steps, keyed by id, kept in file order.
    pub steps: IndexMap<Located<String>, Step>,
}

/// Time allowed from a release to its patch being in, per severity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    #[serde(default)]
    pub critical: Option<Located<DurationText>>,
    #[serde(default)]
    pub important: Option<Located<DurationText>>,
    #[serde(default)]
    pub moderate: Option<Located<DurationText>>,
    #[serde(default)]
    pub low: Option<Located<DurationText>>,
}

impl Sla {
    /// The time allowed for `severity`, if the SLA names it.
    pub fn allowed(&self, severity: Severity) -> Option<std::time::Duration> {
        self.field(severity).map(|text| text.value.duration())
    }

    /// The `sla:` entry for `severity` as written (with its place in the file).
    pub fn field(&self, severity: Severity) -> Option<&Located<DurationText>> {
        match severity {
            Severity::Critical => self.critical.as_ref(),
            Severity::Important => self.important.as_ref(),
            Severity::Moderate => self.moderate.as_ref(),
            Severity::Low => self.low.as_ref(),
        }
    }
}

/// Microsoft's severity ratings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Important,
    Moderate,
    Low,
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map_err(|_| format!("`{text}` is not critical, important, moderate or low"))
    }
}

/// One schedule rule: `{ at: EXPR, months: [...] }`, `{ cron: "..." }` or
/// `{ rrule: "...", start: ..., exdates: [...], rdates: [...] }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// A time expression, e.g. `patch_tuesday-7d 09:00`.
    #[serde(default)]
    pub at: Option<Located<String>>,
    /// With `at`: only these months (1-12).
    #[serde(default)]
    pub months: Option<Located<Vec<Located<u32>>>>,
    /// A cron expression in the `cron` crate's syntax (seconds first; day-of-month AND
    /// day-of-week must both match). One cycle per date it fires on.
    #[serde(default)]
    pub cron: Option<Located<String>>,
    /// An RFC 5545 recurrence rule, e.g. `FREQ=WEEKLY;INTERVAL=2;BYDAY=MO` (every alternate
    /// Monday). One cycle per date it fires on.
    #[serde(default)]
    pub rrule: Option<Located<String>>,
    /// With `rrule`: the first occurrence (DTSTART), `YYYY-MM-DD HH:MM` in the runbook's zone;
    /// its time is every occurrence's time. Required with INTERVAL > 1, COUNT or UNTIL.
    #[serde(default)]
    pub start: Option<Located<String>>,
    /// With `rrule`: dates on which it does not fire (EXDATE), `YYYY-MM-DD`.
    #[serde(default)]
    pub exdates: Vec<Located<String>>,
    /// With `rrule`: extra occurrences (RDATE), `YYYY-MM-DD HH:MM` (or `YYYY-MM-DD`, at the
    /// start's time).
    #[serde(default)]
    pub rdates: Vec<Located<String>>,
}

/// A period in which no cycle fires. Dates are inclusive, in the runbook's time zone.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Blackout {
    /// First day of the freeze (YYYY-MM-DD).
    pub from: Located<String>,
    /// Last day of the freeze (YYYY-MM-DD), inclusive.
    pub to: Located<String>,
    /// Why, shown in `patchday calendar` and the notifications.
    pub reason: String,
}

/// Notifications: which events are mailed to which roles or addresses, and the templates
/// of the emails.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// The events to notify about (default: none).
    #[serde(default)]
    pub on: Vec<NotifyEvent>,
    /// Role names or addresses (default: nobody; a rejected change then goes to `committee`).
    #[serde(default = "nobody")]
    pub to: Located<OneOrMany<String>>,
    /// Handlebars files, relative to this runbook, replacing the built-in email of a kind.
    /// A first line `Subject: ...` followed by a blank line sets the subject too.
    #[serde(default)]
    pub templates: NotifyTemplates,
}

fn nobody() -> Located<OneOrMany<String>> {
    Located::new(OneOrMany::Many(Vec::new()), crate::yaml::Loc::default())
}

/// A runbook's notification templates: one optional file per kind of email.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTemplates {
    /// An approval is requested (one email per approver, each with its own link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Located<String>>,
    /// A manual task is assigned (one email per assignee, each with its own link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Located<String>>,
    /// A step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Located<String>>,
    /// A step passed its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue: Option<Located<String>>,
    /// A run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Located<String>>,
    /// A cycle was skipped by a blackout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Located<String>>,
    /// A cycle was missed (not fired within `catch_up`) or could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Located<String>>,
    /// A change to this runbook was rejected as invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Located<String>>,
    /// An email of a run was refused for good by the SMTP server and given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undeliverable: Option<Located<String>>,
    /// A step waits for an operator (retry, skip or abort) after an interruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Located<String>>,
    /// An approver's or assignee's decision is no longer needed (quorum reached, or the run
    /// moved on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moot: Option<Located<String>>,
}

impl NotifyTemplates {
    /// Every template file written, with the kind of email it replaces.
    pub fn files(&self) -> impl Iterator<Item = (NoticeKind, &Located<String>)> {
        [
            (NoticeKind::Approval, &self.approval),
            (NoticeKind::Task, &self.task),
            (NoticeKind::Failure, &self.failure),
            (NoticeKind::Overdue, &self.overdue),
            (NoticeKind::Finished, &self.finished),
            (NoticeKind::Skipped, &self.skipped),
            (NoticeKind::Missed, &self.missed),
            (NoticeKind::Rejected, &self.rejected),
            (NoticeKind::Undeliverable, &self.undeliverable),
            (NoticeKind::Interrupted, &self.interrupted),
            (NoticeKind::Moot, &self.moot),
        ]
        .into_iter()
        .filter_map(|(kind, file)| Some((kind, file.as_ref()?)))
    }
}

/// The kinds of notification email; each has a built-in template and may be overridden
/// under `notify.templates` by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoticeKind {
    Approval,
    Task,
    Failure,
    Overdue,
    Finished,
    Skipped,
    Missed,
    Rejected,
    Undeliverable,
    Interrupted,
    Moot,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 11] = [
        NoticeKind::Approval,
        NoticeKind::Task,
        NoticeKind::Failure,
        NoticeKind::Overdue,
        NoticeKind::Finished,
        NoticeKind::Skipped,
        NoticeKind::Missed,
        NoticeKind::Rejected,
        NoticeKind::Undeliverable,
        NoticeKind::Interrupted,
        NoticeKind::Moot,
    ];

    /// Its key under `notify.templates`.
    pub fn key(self) -> &'static str {
        match self {
            NoticeKind::Approval => "approval",
            NoticeKind::Task => "task",
            NoticeKind::Failure => "failure",
            NoticeKind::Overdue => "overdue",
            NoticeKind::Finished => "finished",
            NoticeKind::Skipped => "skipped",
            NoticeKind::Missed => "missed",
            NoticeKind::Rejected => "rejected",
            NoticeKind::Undeliverable => "undeliverable",
            NoticeKind::Interrupted => "interrupted",
            NoticeKind::Moot => "moot",
        }
    }
}

/// Events a runbook can notify about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A step failed.
    Failure,
    /// A step passed its deadline.
    Overdue,
    /// A run finished (succeeded, failed or cancelled).
    Finished,
    /// A cycle was skipped by a blackout, or missed.
    Skipped,
    /// A change to the runbook was rejected as invalid.
    Rejected,
}

/// What a failed step does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop: start no new steps; the run fails.
    #[default]
    Stop,
    /// Run `undo` of every succeeded step, in reverse topological order; the run fails.
    Rollback,
}

/// A run parameter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// Value when none is given; a param without a default must be given at start.
    #[serde(default)]
    pub default: Option<String>,
    /// What the param means.
    #[serde(default)]
    pub description: Option<String>,
    /// Taken from the environment (`PATCHDAY_SECRET_<NAME>`) or a secrets file; redacted everywhere.
    #[serde(default)]
    pub secret: bool,
    /// Accepted values, if limited.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
}

/// One step of the DAG.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What the step is, for people (emails, pages, reports).
    #[serde(default)]
    pub description: Option<String>,
    /// Connector name; absent means a milestone that only marks a time.
    #[serde(default)]
    pub uses: Option<Located<String>>,
    /// Connector inputs; every string is a handlebars template.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub with: Option<Node>,
    /// Step ids that must finish first.
    #[serde(default)]
    pub needs: Vec<Located<String>>,
    /// `success` (default), `always`, `failure`, or a template that renders truthy.
    #[serde(default, rename = "if")]
    pub condition: Option<Located<String>>,
    /// Not before this time (a time expression).
    #[serde(default)]
    pub at: Option<Located<String>>,
    /// If not finished by then: an overdue event and a notification.
    #[serde(default)]
    pub deadline: Option<Located<String>>,
    /// Per-attempt time limit.
    #[serde(default)]
    pub timeout: Option<Located<DurationText>>,
    /// Retries of a failed attempt.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Fan out over an inventory group, one child per host.
    #[serde(default)]
    pub for_each: Option<ForEach>,
    /// Compensation run when the run fails and `on_failure: rollback`.
    #[serde(default)]
    pub undo: Option<Undo>,
    /// The run goes on even if this step fails.
    #[serde(default)]
    pub continue_on_failure: bool,
    /// Whether running the step twice is harmless, overriding its connector's default: after a
    /// crash an idempotent step found running runs again; another waits for an operator.
    /// (`ansible` is not idempotent unless the step says `idempotent: true`.)
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// For an `approval` or `manual` step: whether the people who were asked and did not
    /// decide get a short "no longer needed" email when the step is settled without them (the
    /// quorum reached, or the step expired). Default true.
    #[serde(default)]
    pub notify_moot: Option<Located<bool>>,
}

/// Where a runbook's hosts come from.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum InventoryRef {
    /// A patchday inventory (YAML: hosts, groups, exceptions), relative to the runbook.
    File(Located<String>),
    /// An Ansible inventory.
    Ansible(AnsibleInventoryRef),
}

/// `inventory: { ansible: inventory/hosts.ini, exceptions: inventory/exceptions.yaml }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnsibleInventoryRef {
    /// The Ansible inventory, relative to the runbook: an INI or YAML file (read natively), or
    /// with `ansible-inventory` mode any source `ansible-inventory -i` takes (plugins, scripts).
    pub ansible: Located<String>,
    /// patchday's exceptions for these hosts: a YAML file with an `exceptions:` list, as in a
    /// patchday inventory, relative to the runbook (usually beside the inventory).
    #[serde(default)]
    pub exceptions: Option<Located<String>>,
}

impl InventoryRef {
    /// The inventory path as written, with its location.
    pub fn path(&self) -> &Located<String> {
        match self {
            InventoryRef::File(path) => path,
            InventoryRef::Ansible(a) => &a.ansible,
        }
    }
}

impl<'de> Deserialize<'de> for InventoryRef {
    /// A string is a patchday inventory file, a mapping an Ansible one; both keep their
    /// locations (a mapping's errors point at the `inventory:` value).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let node = Node::deserialize(d)?;
        match &node.value {
            crate::yaml::Value::Str(path) => {
                Ok(InventoryRef::File(Located::new(path.clone(), node.loc)))
            }
            crate::yaml::Value::Map(_) => crate::yaml::from_node::<AnsibleInventoryRef>(&node)
                .map(InventoryRef::Ansible)
                .map_err(|e| D::Error::custom(e.message)),
            other => Err(D::Error::custom(format!(
                "expected an inventory file, or `{{ ansible: PATH }}` for an Ansible inventory, found {}",
                other.kind()
            ))),
        }
    }
}

/// Retry policy: `attempts` in all, waiting `backoff` before the second, doubling up to `max_backoff`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included (at least 1).
    pub attempts: Located<u32>,
    /// Wait before the second attempt (default 30s); doubles each time.
    #[serde(default)]
    pub backoff: Option<Located<DurationText>>,
    /// Longest wait between attempts (default 1h).
    #[serde(default)]
    pub max_backoff: Option<Located<DurationText>>,
}

/// Fan-out over an inventory group, in batches (rolling waves).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEach {
    /// Inventory group name.
    pub group: Located<String>,
    /// Hosts per batch: a number or a percentage of the group (`25%`); default all at once.
    #[serde(default)]
    pub batch: Option<Located<CountOrPercent>>,
    /// Failed hosts tolerated before no further batch starts: a number or `10%` (default 0).
    #[serde(default)]
    pub max_failures: Option<Located<CountOrPercent>>,
}

/// A compensation step: `{ uses, with }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Undo {
    pub uses: Located<String>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub with: Option<Node>,
}

/// A whole number (`2`) or a percentage (`25%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum CountOrPercent {
    Count(u32),
    #[schemars(with = "PercentText")]
    Percent(u8),
}

/// A percentage written as text, e.g. `25%`.
struct PercentText;

impl JsonSchema for PercentText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Percent".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9]{1,3}%$" })
    }
}

impl CountOrPercent {
    /// The number this means for a group of `total` hosts (a percentage rounds down, but a
    /// non-zero percentage of a non-empty group is at least 1).
    pub fn of(&self, total: usize) -> usize {
        match *self {
            CountOrPercent::Count(n) => n as usize,
            CountOrPercent::Percent(p) => {
                let n = total * p as usize / 100;
                if n == 0 && p > 0 && total > 0 { 1 } else { n }
            }
        }
    }
}

impl<'de> Deserialize<'de> for CountOrPercent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CountOrPercent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number or a percentage such as `25%`")
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(CountOrPercent::Count)
                    .map_err(|_| E::custom(format!("{v} is not a whole number of hosts")))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_percent(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_percent(text: &str) -> Result<CountOrPercent, String> {
    let bad = || {
        format!(
            "invalid percentage `{text}`: write a number from 0 to 100 followed by %, e.g. `25%`"
        )
    };
    let digits = text.strip_suffix('%').ok_or_else(bad)?;
    let n: u8 = digits.parse().map_err(|_| bad())?;
    if n > 100 {
        return Err(bad());
    }
    Ok(CountOrPercent::Percent(n))
}

impl Runbook {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.get(id)
    }
}
