//! The execution side of connectors: the [`Connector`] trait, the [`Context`] a step runs in,
//! the typed [`ConnectorError`], and [`builtin`] to find a connector by its `uses:` name.
//!
//! Inputs arrive already rendered by the engine (templates filled in) as JSON; each connector
//! parses them into its typed inputs from [`crate::inputs`]. Everything a connector returns or
//! logs goes through [`Secrets::redact`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::catalog::ConnectorSpec;
use crate::secrets::Secrets;
use crate::settings::Settings;

/// A boxed, sendable future (the trait stays object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A step's outputs, available to later steps as `steps.<id>.outputs.*`.
pub type Outputs = serde_json::Map<String, serde_json::Value>;

/// Receives each streamed output line (already redacted).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Why a connector did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// Worth another attempt under the step's `retry:` (unreachable peer, 4xx SMTP, 5xx HTTP,
    /// non-zero exit of a command).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (bad inputs, refused credentials, unknown host
    /// key, an expectation not met).
    #[error("{0}")]
    Fatal(String),
    /// The context's cancellation token fired (step timeout, run cancelled); whatever the
    /// connector started has been stopped.
    #[error("cancelled")]
    Cancelled,
}

impl ConnectorError {
    /// Whether the engine may try again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectorError::Retryable(_))
    }

    /// The same error with its message passed through `redact`.
    pub fn redacted(self, secrets: &Secrets) -> Self {
        match self {
            ConnectorError::Retryable(m) => ConnectorError::Retryable(secrets.redact(&m)),
            ConnectorError::Fatal(m) => ConnectorError::Fatal(secrets.redact(&m)),
            ConnectorError::Cancelled => ConnectorError::Cancelled,
        }
    }
}

/// Where and for whom a step runs. Built by the engine for each attempt.
#[derive(Clone)]
pub struct Context {
    pub run_id: String,
    pub step_id: String,
    /// The inventory host record inside `for_each` (`name`, `address`, `vm`, ...).
    pub host: Option<serde_json::Map<String, serde_json::Value>>,
    /// Fires on step timeout or run cancellation.
    pub cancel: CancellationToken,
    pub secrets: Secrets,
    pub settings: Arc<Settings>,
    /// Streamed output lines; the connector redacts before calling it.
    pub log: LogSink,
    /// The runbook's folder: relative paths (templates, attachments, `cwd`) start here.
    pub base_dir: PathBuf,
    /// Files of the runbook version the run is bound to, by resolved path: template files are
    /// read from here before the disk ([`Context::read_text`]), so an edit or a deletion
    /// after the run started does not change what it sends.
    pub files: Arc<BTreeMap<PathBuf, String>>,
    /// The template context the engine rendered `with:` against (`runbook`, `cycle`,
    /// `params`, `steps`, `host`, `run`). Template files named by an input (`email.template`)
    /// are rendered against it.
    pub vars: serde_json::Value,
    /// The runbook's Ansible inventory source (a file, folder or plugin configuration), when
    /// its `inventory:` is one: the `ansible` connector hands it to `ansible-playbook -i`.
    pub ansible_inventory: Option<PathBuf>,
    /// A key that stays the same for every attempt of this step on this host (e.g. the outbox
    /// entry id). The email Message-ID is derived from it so that a resend after a crash can be
    /// recognised; without it the run, step and host name are used.
    pub idempotency_key: Option<String>,
}

impl Context {
    /// A context with empty settings and secrets, no host, a fresh cancellation token, the
    /// current directory as base and a log sink that drops lines.
    pub fn new(run_id: impl Into<String>, step_id: impl Into<String>) -> Self {
        Context {
            run_id: run_id.into(),
            step_id: step_id.into(),
            host: None,
            cancel: CancellationToken::new(),
            secrets: Secrets::new(),
            settings: Arc::new(Settings::default()),
            log: Arc::new(|_| {}),
            base_dir: PathBuf::from("."),
            files: Arc::new(BTreeMap::new()),
            vars: serde_json::Value::Object(Default::default()),
            ansible_inventory: None,
            idempotency_key: None,
        }
    }

    /// Sends one line to the log sink, redacted.
    pub fn log_line(&self, line: &str) {
        (self.log)(&self.secrets.redact(line));
    }

    /// A path from an input, relative to the runbook's folder unless absolute.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The text of the file an input names (a template): from [`Context::files`] when the
    /// run's version holds it, else read from the disk.
    pub fn read_text(&self, path: &str) -> std::io::Result<String> {
        let resolved = self.resolve_path(path);
        match self.files.get(&resolved) {
            Some(text) => Ok(text.clone()),
            None => std::fs::read_to_string(&resolved),
        }
    }

    /// The host's inventory name, when the step runs inside `for_each`.
    pub fn host_name(&self) -> Option<&str> {
        let host = self.host.as_ref()?;
        ["name", "id", "address"]
            .iter()
            .find_map(|k| host.get(*k).and_then(|v| v.as_str()))
    }

    /// Every string of `outputs` redacted.
    pub fn redact_outputs(&self, outputs: Outputs) -> Outputs {
        match self.secrets.redact_json(serde_json::Value::Object(outputs)) {
            serde_json::Value::Object(map) => map,
            _ => Outputs::new(),
        }
    }
}

/// A connector as the engine runs it.
pub trait Connector: Send + Sync {
    /// Name, idempotency and inputs schema.
    fn spec(&self) -> &'static ConnectorSpec;

    /// One line saying what `execute` would do with these inputs; no side effects.
    fn dry_run(&self, inputs: &serde_json::Value, ctx: &Context) -> Result<String, ConnectorError>;

    /// Does it. Honours `ctx.cancel` by stopping what it started and returning `Cancelled`.
    fn execute<'a>(
        &'a self,
        inputs: serde_json::Value,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Outputs, ConnectorError>>;

    /// The batch side of a connector whose spec says `batch` (`ansible`): the engine runs a
    /// `for_each` step's batch through it in one execution. `None` for the others.
    fn batch(&self) -> Option<&dyn BatchConnector> {
        None
    }
}

/// One host of a batch: its inventory name, its record (as `{{host}}` sees it) and the step's
/// `with:` as rendered for it.
#[derive(Debug, Clone)]
pub struct BatchMember {
    pub name: String,
    pub host: serde_json::Map<String, serde_json::Value>,
    pub inputs: serde_json::Value,
}

/// A connector that settles several hosts with one execution (one `ansible-playbook` run for a
/// batch of a fan-out). The context is the step's: `ctx.host` is `None`.
pub trait BatchConnector: Send + Sync {
    /// One line saying what `execute_batch` would do for these hosts; no side effects.
    fn dry_run_batch(
        &self,
        members: &[BatchMember],
        ctx: &Context,
    ) -> Result<String, ConnectorError>;

    /// Does it for every member at once: one result per member, in the members' order. An
    /// empty `members` is a step without `for_each` (the connector picks its own hosts) and
    /// gets one result. Honours `ctx.cancel` like [`Connector::execute`].
    fn execute_batch<'a>(
        &'a self,
        members: Vec<BatchMember>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Vec<Result<Outputs, ConnectorError>>>;
}

/// The built-in connector named `name` in `uses:`.
pub fn builtin(name: &str) -> Option<Arc<dyn Connector>> {
    use crate::builtin::*;
    let connector: Arc<dyn Connector> = match name {
        "email" => Arc::new(email::Email),
        "approval" => Arc::new(engine_run::EngineRun("approval")),
        "manual" => Arc::new(engine_run::EngineRun("manual")),
        "http" => Arc::new(http::Http),
        "check" => Arc::new(check::Check),
        "command" => Arc::new(command::Command),
        "ansible" => Arc::new(ansible::Ansible),
        "snapshot" => Arc::new(snapshot::Snapshot),
        "report" => Arc::new(report::Report),
        "noop" => Arc::new(noop::Noop),
        "sleep" => Arc::new(sleep::Sleep),
        _ => return None,
    };
    Some(connector)
}

/// Parses rendered inputs into a connector's typed inputs; a mismatch is fatal.
pub fn parse_inputs<T: DeserializeOwned>(
    connector: &str,
    inputs: &serde_json::Value,
) -> Result<T, ConnectorError> {
    serde_json::from_value(inputs.clone())
        .map_err(|e| ConnectorError::Fatal(format!("{connector}: invalid inputs: {e}")))
}

/// The catalog entry of a built-in connector (every built-in is in the catalog).
pub(crate) fn spec_of(name: &str) -> &'static ConnectorSpec {
    crate::catalog::lookup(name).unwrap_or_else(|| panic!("connector `{name}` is not in CATALOG"))
}

/// Runs `fut` unless `cancel` fires first.
pub async fn until_cancelled<T>(
    cancel: &CancellationToken,
    fut: impl std::future::Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(ConnectorError::Cancelled),
        r = fut => r,
    }
}
