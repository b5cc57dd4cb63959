//! The catalog of built-in connectors: names, idempotency, descriptions and typed inputs.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;

use crate::inputs::*;

/// Why a step's `with:` does not fit its connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// Path inside `with:` to the offending value, e.g. `["expect", "status"]`; empty for the whole map.
    pub path: Vec<String>,
    pub message: String,
}

/// A built-in connector as validation and the schema see it.
pub struct ConnectorSpec {
    /// The name used in `uses:`.
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Whether running it twice has the same effect as once; decides crash recovery.
    pub idempotent: bool,
    /// Whether one execution settles a whole batch of a `for_each` step's hosts (the engine
    /// calls [`crate::runtime::BatchConnector::execute_batch`] once per batch instead of
    /// `execute` once per host). Such a step's `with:` cannot use `{{host.*}}`.
    pub batch: bool,
    /// Its outputs (`steps.<id>.outputs.*`): name and one line on each (for the docs; empty
    /// for `approval` and `manual`, whose outputs the engine defines).
    pub outputs: &'static [(&'static str, &'static str)],
    /// JSON Schema of its `with:` inputs.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Checks `with:` against the typed inputs.
    pub check: fn(serde_json::Value) -> Result<(), InputError>,
}

/// Every built-in connector, in the order the docs list them.
pub static CATALOG: &[ConnectorSpec] = &[
    spec::<EmailInputs>(
        "email",
        "Send an email over SMTP (HTML and plain text, attachments)",
        false,
        &[
            (
                "message_id",
                "the Message-ID, stable for the step (and host)",
            ),
            ("recipients", "the addresses the roles resolved to"),
        ],
    ),
    spec::<ApprovalInputs>(
        "approval",
        "Ask approvers to decide through signed email links",
        false,
        // Run by the engine, which defines its outputs.
        &[],
    ),
    spec::<ManualInputs>(
        "manual",
        "A task for a person, settled with Done / Failed links",
        false,
        // Run by the engine, which defines its outputs.
        &[],
    ),
    spec::<HttpInputs>(
        "http",
        "One HTTP request with expectations on the response",
        false,
        &[
            ("status", "the response status code"),
            ("headers", "response headers, lower-case names"),
            ("body", "the first 64 KiB of the body as text"),
            ("body_truncated", "whether the body was longer"),
            ("json", "the parsed body, or null"),
        ],
    ),
    spec::<CheckInputs>(
        "check",
        "A smoke test polled until it passes or time runs out",
        true,
        &[
            ("attempts", "how many probes it took"),
            ("last_result", "what the last probe found"),
            (
                "reboot_required",
                "for `reboot_required`: whether a reboot is needed",
            ),
        ],
    ),
    spec::<CommandInputs>(
        "command",
        "A local command, or a remote one over OpenSSH",
        false,
        &[
            ("exit_code", "the exit code"),
            ("stdout", "the last 64 KiB of standard output"),
            ("stderr", "the last 64 KiB of standard error"),
            ("stdout_truncated", "whether standard output was longer"),
            ("stderr_truncated", "whether standard error was longer"),
        ],
    ),
    ConnectorSpec {
        batch: true,
        ..spec::<AnsibleInputs>(
            "ansible",
            "Run an Ansible playbook, once per batch of hosts; each host's outcome is its own",
            false,
            &[
                (
                    "outcome",
                    "`ok` or `changed` (a failed or unreachable host fails its row)",
                ),
                ("ok", "tasks that ran ok on the host"),
                ("changed", "tasks that changed something on the host"),
                ("skipped", "tasks skipped on the host"),
                ("rescued", "failures a `rescue` block handled"),
                ("ignored", "failures ignored with `ignore_errors`"),
                (
                    "changed_tasks",
                    "names of the tasks that changed something (at most 50)",
                ),
                ("check", "whether it ran in check mode"),
            ],
        )
    },
    spec::<SnapshotInputs>(
        "snapshot",
        "Create, revert or delete a VM snapshot (libvirt, Proxmox)",
        false,
        &[
            ("provider", "libvirt or proxmox"),
            ("action", "create, revert or delete"),
            ("vm", "the VM"),
            ("name", "the snapshot"),
            ("already_existed", "create: the snapshot was there already"),
            ("already_absent", "delete: the snapshot was gone already"),
            ("upid", "proxmox: the task id"),
        ],
    ),
    spec::<ReportInputs>(
        "report",
        "Render the cycle report (Markdown, HTML) and email it",
        true,
        &[
            (
                "totals",
                "hosts, patched, succeeded, failed, excepted, skipped",
            ),
            ("markdown_path", "where the Markdown report was written"),
            ("html_path", "where the HTML report was written"),
            ("emailed_to", "the addresses it was emailed to"),
        ],
    ),
    spec::<NoopInputs>(
        "noop",
        "Do nothing and succeed (demos, tests, benchmarks)",
        true,
        &[("message", "the `message` input, when given")],
    ),
    spec::<SleepInputs>(
        "sleep",
        "Wait for a duration, then succeed (demos, tests)",
        true,
        &[("slept_seconds", "how long it waited")],
    ),
];

const fn spec<T: JsonSchema + DeserializeOwned + InputRules>(
    name: &'static str,
    summary: &'static str,
    idempotent: bool,
    outputs: &'static [(&'static str, &'static str)],
) -> ConnectorSpec {
    ConnectorSpec {
        name,
        summary,
        idempotent,
        batch: false,
        outputs,
        schema: schema_of::<T>,
        check: check_as::<T>,
    }
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

fn check_as<T: DeserializeOwned + InputRules>(value: serde_json::Value) -> Result<(), InputError> {
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        InputError {
            path,
            message: e.into_inner().to_string(),
        }
    })?;
    typed.rules()
}

/// Finds a built-in connector by its `uses:` name.
pub fn lookup(name: &str) -> Option<&'static ConnectorSpec> {
    CATALOG.iter().find(|c| c.name == name)
}

/// Rules across fields that serde cannot express (one of, not both).
trait InputRules {
    fn rules(&self) -> Result<(), InputError> {
        Ok(())
    }
}

fn whole(message: &str) -> Result<(), InputError> {
    Err(InputError {
        path: Vec::new(),
        message: message.to_string(),
    })
}

impl InputRules for EmailInputs {
    fn rules(&self) -> Result<(), InputError> {
        match (&self.body, &self.template) {
            (None, None) => whole("give `body` or `template`"),
            (Some(_), Some(_)) => whole("give `body` or `template`, not both"),
            _ => Ok(()),
        }
    }
}

impl InputRules for ApprovalInputs {
    fn rules(&self) -> Result<(), InputError> {
        if self.quorum == 0 {
            return Err(InputError {
                path: vec!["quorum".into()],
                message: "quorum must be at least 1".into(),
            });
        }
        match &self.choices {
            Some(c) if c.len() < 2 => Err(InputError {
                path: vec!["choices".into()],
                message: "give at least two choices".into(),
            }),
            _ => Ok(()),
        }
    }
}

impl InputRules for HttpInputs {
    fn rules(&self) -> Result<(), InputError> {
        if self.body.is_some() && self.json.is_some() {
            return whole("give `body` or `json`, not both");
        }
        Ok(())
    }
}

impl InputRules for CheckInputs {
    fn rules(&self) -> Result<(), InputError> {
        let probes = [
            self.http.is_some(),
            self.tcp.is_some(),
            self.command.is_some(),
            self.reboot_required.is_some(),
        ];
        match probes.iter().filter(|p| **p).count() {
            1 => Ok(()),
            0 => whole("give one probe: `http`, `tcp`, `command` or `reboot_required`"),
            _ => whole("give only one probe of `http`, `tcp`, `command` and `reboot_required`"),
        }
    }
}

impl InputRules for SnapshotInputs {
    fn rules(&self) -> Result<(), InputError> {
        if self.provider == SnapshotProvider::Proxmox && self.node.is_none() {
            return whole("the proxmox provider needs `node`");
        }
        Ok(())
    }
}

impl InputRules for AnsibleInputs {
    fn rules(&self) -> Result<(), InputError> {
        if self.playbook.trim().is_empty() {
            return Err(InputError {
                path: vec!["playbook".into()],
                message: "name a playbook file".into(),
            });
        }
        if self.forks == Some(0) {
            return Err(InputError {
                path: vec!["forks".into()],
                message: "forks must be at least 1".into(),
            });
        }
        Ok(())
    }
}

impl InputRules for ManualInputs {}
impl InputRules for CommandInputs {}
impl InputRules for ReportInputs {}
impl InputRules for NoopInputs {}
impl InputRules for SleepInputs {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalog_names_are_unique() {
        let mut names: Vec<_> = CATALOG.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
    }

    #[test]
    fn check_reports_the_path_of_a_bad_value() {
        let http = lookup("http").unwrap();
        let err =
            (http.check)(json!({ "url": "https://x", "expect": { "status": "ok" } })).unwrap_err();
        assert_eq!(err.path, vec!["expect".to_string(), "status".to_string()]);
    }

    #[test]
    fn cross_field_rules_are_enforced() {
        let check = lookup("check").unwrap();
        assert!((check.check)(json!({ "http": "https://x", "tcp": "h:1" })).is_err());
        assert!((check.check)(json!({ "tcp": "h:1" })).is_ok());
        let email = lookup("email").unwrap();
        assert!((email.check)(json!({ "to": "ops", "subject": "s" })).is_err());
    }
}
