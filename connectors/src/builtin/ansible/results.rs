//! Per-host results of one `ansible-playbook` run, read from the JSON lines that patchday's
//! callback plugin (`patchday_results.py`) wrote, and what each host's row becomes.
//!
//! A host is `changed` or `ok` (the row succeeds, with its task counts as outputs), `failed`
//! (a task failed and no `rescue` handled it) or `unreachable`; both failures are retryable,
//! with the failing task's name and its message (bounded, redacted) as the reason. A host the
//! recap does not name did not run at all: that is fatal, as is a run that ended before any
//! recap (a playbook that does not parse, a missing inventory).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::runtime::{ConnectorError, Context, Outputs};

/// Longest failure message kept, in characters.
pub const MESSAGE_LIMIT: usize = 1_000;

/// Most changed task names kept per host.
const CHANGED_TASKS_LIMIT: usize = 50;

/// One line of the plugin's output.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Failed {
        host: String,
        task: String,
        message: String,
    },
    Unreachable {
        host: String,
        task: String,
        message: String,
    },
    Changed {
        host: String,
        task: String,
    },
    Stats {
        hosts: BTreeMap<String, HostStats>,
    },
}

/// A host's line of the play recap.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HostStats {
    pub ok: u64,
    pub changed: u64,
    pub failures: u64,
    pub unreachable: u64,
    pub skipped: u64,
    pub rescued: u64,
    pub ignored: u64,
}

/// What one run reported, by host.
#[derive(Debug, Default)]
pub struct RunReport {
    /// The first failure of each host: (task, message).
    failed: BTreeMap<String, (String, String)>,
    unreachable: BTreeMap<String, (String, String)>,
    changed_tasks: BTreeMap<String, Vec<String>>,
    /// The recap; `None` when the run ended before it.
    stats: Option<BTreeMap<String, HostStats>>,
}

/// How one host's part of the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    Ok(HostStats),
    Changed(HostStats),
    Failed {
        task: String,
        message: String,
    },
    Unreachable {
        task: String,
        message: String,
    },
    /// Not in the recap: no play ran on it.
    NotRun,
}

impl RunReport {
    /// Reads the plugin's JSON lines; a line that does not parse (a run killed mid-write) is
    /// skipped.
    pub fn parse(text: &str) -> RunReport {
        let mut report = RunReport::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(event) = serde_json::from_str::<Event>(line) else {
                continue;
            };
            match event {
                Event::Failed {
                    host,
                    task,
                    message,
                } => {
                    report.failed.entry(host).or_insert((task, message));
                }
                Event::Unreachable {
                    host,
                    task,
                    message,
                } => {
                    report.unreachable.entry(host).or_insert((task, message));
                }
                Event::Changed { host, task } => {
                    let tasks = report.changed_tasks.entry(host).or_default();
                    if tasks.len() < CHANGED_TASKS_LIMIT {
                        tasks.push(task);
                    }
                }
                Event::Stats { hosts } => report.stats = Some(hosts),
            }
        }
        report
    }

    /// Whether the run got as far as the recap.
    pub fn has_recap(&self) -> bool {
        self.stats.is_some()
    }

    /// Every host the recap names.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.stats.iter().flat_map(|s| s.keys().map(String::as_str))
    }

    /// How `host`'s part ended, from the recap and the first failure recorded for it.
    pub fn outcome(&self, host: &str) -> HostOutcome {
        let Some(stats) = self.stats.as_ref().and_then(|s| s.get(host)).copied() else {
            return HostOutcome::NotRun;
        };
        let first = |map: &BTreeMap<String, (String, String)>| {
            map.get(host)
                .cloned()
                .unwrap_or_else(|| ("(unknown task)".into(), "no message".into()))
        };
        if stats.unreachable > 0 {
            let (task, message) = first(&self.unreachable);
            HostOutcome::Unreachable { task, message }
        } else if stats.failures > 0 {
            let (task, message) = first(&self.failed);
            HostOutcome::Failed { task, message }
        } else if stats.changed > 0 {
            HostOutcome::Changed(stats)
        } else {
            HostOutcome::Ok(stats)
        }
    }

    /// What `host`'s row becomes: outputs, or a retryable error naming the failed task.
    pub fn row_result(
        &self,
        host: &str,
        check: bool,
        ctx: &Context,
    ) -> Result<Outputs, ConnectorError> {
        match self.outcome(host) {
            HostOutcome::Ok(stats) => Ok(self.outputs(host, "ok", stats, check, ctx)),
            HostOutcome::Changed(stats) => Ok(self.outputs(host, "changed", stats, check, ctx)),
            HostOutcome::Failed { task, message } => Err(ConnectorError::Retryable(bounded(
                ctx,
                &format!("failed at task `{task}`: {message}"),
            ))),
            HostOutcome::Unreachable { task, message } => Err(ConnectorError::Retryable(bounded(
                ctx,
                &format!("unreachable at task `{task}`: {message}"),
            ))),
            HostOutcome::NotRun => Err(ConnectorError::Fatal(format!(
                "the playbook did not run on `{host}`: it is not in the inventory, or no play's \
                 `hosts:` matches it"
            ))),
        }
    }

    fn outputs(
        &self,
        host: &str,
        status: &str,
        stats: HostStats,
        check: bool,
        ctx: &Context,
    ) -> Outputs {
        let changed_tasks = self.changed_tasks.get(host).cloned().unwrap_or_default();
        let value = json!({
            "outcome": status,
            "ok": stats.ok,
            "changed": stats.changed,
            "skipped": stats.skipped,
            "rescued": stats.rescued,
            "ignored": stats.ignored,
            "changed_tasks": changed_tasks,
            "check": check,
        });
        match value {
            Value::Object(map) => ctx.redact_outputs(map),
            _ => Outputs::new(),
        }
    }
}

/// `text` redacted, then cut to [`MESSAGE_LIMIT`] characters.
pub fn bounded(ctx: &Context, text: &str) -> String {
    let text = ctx.secrets.redact(text);
    if text.chars().count() <= MESSAGE_LIMIT {
        return text;
    }
    let mut cut: String = text.chars().take(MESSAGE_LIMIT - 3).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secrets;

    const LINES: &str = r#"{"host": "db1", "task": "write", "event": "unreachable", "message": "Connection refused"}
{"host": "web1", "task": "write", "event": "changed"}
{"host": "web2", "task": "write", "event": "changed"}
{"host": "web2", "task": "fail on web2", "event": "failed", "message": "rc=1 token-s3cret"}
{"host": "web2", "task": "later", "event": "failed", "message": "second"}
{"event": "stats", "hosts": {"db1": {"ok": 0, "failures": 0, "unreachable": 1, "changed": 0, "skipped": 0, "rescued": 0, "ignored": 0}, "web1": {"ok": 1, "failures": 0, "unreachable": 0, "changed": 1, "skipped": 1, "rescued": 0, "ignored": 0}, "web2": {"ok": 1, "failures": 1, "unreachable": 0, "changed": 1, "skipped": 0, "rescued": 0, "ignored": 0}, "web3": {"ok": 2}}}
{"host": "cut"#;

    #[test]
    fn each_host_gets_its_own_outcome() {
        let report = RunReport::parse(LINES);
        assert!(report.has_recap());
        assert!(matches!(report.outcome("web1"), HostOutcome::Changed(s) if s.skipped == 1));
        assert!(matches!(report.outcome("web3"), HostOutcome::Ok(s) if s.ok == 2));
        assert_eq!(
            report.outcome("web2"),
            HostOutcome::Failed {
                task: "fail on web2".into(),
                message: "rc=1 token-s3cret".into()
            }
        );
        assert!(matches!(
            report.outcome("db1"),
            HostOutcome::Unreachable { .. }
        ));
        assert_eq!(report.outcome("nowhere"), HostOutcome::NotRun);
    }

    #[test]
    fn rows_are_redacted_and_failures_retryable() {
        let report = RunReport::parse(LINES);
        let mut ctx = Context::new("r", "s");
        ctx.secrets = Secrets::new().with("t", "token-s3cret");
        let err = report.row_result("web2", false, &ctx).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.to_string(), "failed at task `fail on web2`: rc=1 ***");
        let out = report.row_result("web1", true, &ctx).unwrap();
        assert_eq!(out["outcome"], "changed");
        assert_eq!(out["changed_tasks"], json!(["write"]));
        assert_eq!(out["check"], true);
        let err = report.row_result("nowhere", false, &ctx).unwrap_err();
        assert!(!err.is_retryable());
    }

    #[test]
    fn messages_are_bounded() {
        let ctx = Context::new("r", "s");
        let long = "x".repeat(5_000);
        assert_eq!(bounded(&ctx, &long).chars().count(), MESSAGE_LIMIT);
    }
}
