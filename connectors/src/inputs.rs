//! Typed inputs (`with:`) of every built-in connector.
//!
//! These types are the single source of truth for a connector's inputs: `patchday validate`
//! checks `with:` against them, the runbook JSON Schema embeds their schemas, and the README's
//! connector reference is generated from the same schemas. Every string may hold a handlebars
//! template (`{{host.address}}`); numbers, booleans and enum values must be literal.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{CommandLine, DurationText, OneOrMany};

/// String maps (headers, environment) keep the order they were written in.
pub type OrderedMap = indexmap::IndexMap<String, String>;

/// Role names or email addresses, mixed freely: `committee` or `[ops, a@example.com]`.
pub type Recipients = OneOrMany<String>;

/// `email`: send a message over SMTP.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailInputs {
    /// Role names or addresses.
    pub to: Recipients,
    /// Role names or addresses in copy.
    #[serde(default)]
    pub cc: Option<Recipients>,
    /// Subject line (a template).
    pub subject: String,
    /// Body text (a template). Give `body` or `template`.
    #[serde(default)]
    pub body: Option<String>,
    /// A handlebars template file, relative to the runbook, rendered against the run's
    /// template context. A file whose name contains `.html` is the HTML body (its plain-text
    /// alternative is derived from it); any other is the plain-text body. Give `body` or
    /// `template`.
    #[serde(default)]
    pub template: Option<String>,
    /// An HTML body (a template), sent with `body` as its plain-text alternative.
    #[serde(default)]
    pub html: Option<String>,
    /// Files to attach (paths, templates allowed).
    #[serde(default)]
    pub attach: Vec<String>,
}

/// `approval`: ask approvers to decide through signed email links.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInputs {
    /// Role names or addresses of the people who may decide.
    pub approvers: Recipients,
    /// How many matching decisions settle it (default 1).
    #[serde(default = "one")]
    pub quorum: u32,
    /// The choices offered (default `approve`, `reject`). The first choice lets the run go on.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
    /// How long the links stay valid (default from the configuration's `link_ttl`).
    #[serde(default)]
    pub expires: Option<DurationText>,
    /// What an expiry without enough decisions does to the step (default `fail`).
    #[serde(default)]
    pub on_expire: OnExpire,
    /// What the approvers are asked (a template).
    #[serde(default)]
    pub message: Option<String>,
    /// `required`: the emailed link decides only for someone signed in as its recipient, so a
    /// forwarded email cannot approve (default: the daemon's `[auth] sign_in`, else `optional`).
    #[serde(default)]
    pub sign_in: Option<SignIn>,
}

/// Whether an approval link needs its recipient signed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignIn {
    /// The link alone decides (it was sent to the approver, and works once).
    #[default]
    Optional,
    /// The link decides only for a browser signed in as the link's recipient.
    Required,
}

fn one() -> u32 {
    1
}

/// `manual`: a task for a person, settled with Done / Failed links.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualInputs {
    /// Role names or addresses of the people who do the task.
    pub assignee: Recipients,
    /// What to do (a template).
    pub instructions: String,
    /// How long the task links stay valid.
    #[serde(default)]
    pub expires: Option<DurationText>,
    /// What an expiry without a decision does to the step (default `fail`).
    #[serde(default)]
    pub on_expire: OnExpire,
}

/// What becomes of an approval or task nobody settled before it `expires`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnExpire {
    /// The step fails (the runbook's `on_failure` applies; `failure` notifications go out).
    #[default]
    Fail,
    /// The step is skipped, and a skipped need counts as ok: the steps after it go on. For an
    /// optional sign-off (silence is consent), never for the CAB approval of a change.
    Skip,
}

/// HTTP methods the `http` connector sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

/// What an HTTP response must show for the step to succeed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Accepted status codes: one code or a list (default: any 2xx).
    #[serde(default)]
    pub status: Option<OneOrMany<u16>>,
    /// A substring the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// JSON pointer (RFC 6901) to expected value, e.g. `/result/state: "approved"`.
    #[serde(default)]
    pub json: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `http`: one HTTP request, e.g. to open a change ticket.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpInputs {
    #[serde(default)]
    pub method: HttpMethod,
    /// Absolute URL (a template).
    pub url: String,
    /// Request headers (values are templates).
    #[serde(default)]
    pub headers: OrderedMap,
    /// A raw request body. Give `body` or `json`, not both.
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON request body; strings inside are templates.
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    #[serde(default)]
    pub expect: Option<HttpExpect>,
    /// Whole-request timeout (default 30s).
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// A PEM file with extra CA certificates to trust; verification is always on.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// What a `check` probe must show.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckExpect {
    /// HTTP status codes accepted (default any 2xx).
    #[serde(default)]
    pub status: Option<OneOrMany<u16>>,
    /// A substring the HTTP body or command output must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The exit code a command probe must return (default 0).
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// `check`: a smoke test polled until it passes or `within` runs out. Give exactly one of
/// `http`, `tcp`, `command` or `reboot_required`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInputs {
    /// URL to GET.
    #[serde(default)]
    pub http: Option<String>,
    /// `host:port` to connect to.
    #[serde(default)]
    pub tcp: Option<String>,
    /// A command to run (locally, or on `host` over SSH).
    #[serde(default)]
    pub command: Option<CommandLine>,
    /// Probe whether a Linux host needs a reboot; passes when it does not. A reboot is
    /// needed when `/var/run/reboot-required` exists (Debian, Ubuntu) or `needs-restarting -r`
    /// exits 1 (RHEL family); the mere presence of the program means nothing.
    #[serde(default)]
    pub reboot_required: Option<bool>,
    /// Run `command` / `reboot_required` on this host over SSH.
    #[serde(default)]
    pub host: Option<String>,
    /// Remote user for `host` (default from the configuration).
    #[serde(default)]
    pub user: Option<String>,
    /// SSH port for `host` (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// Environment variables for `command` / `reboot_required` (values are templates).
    #[serde(default)]
    pub env: OrderedMap,
    /// A PEM file with extra CA certificates for the `http` probe; verification is always on.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub expect: Option<CheckExpect>,
    /// Time between attempts (default 10s; at least 100 ms).
    #[serde(default)]
    pub interval: Option<DurationText>,
    /// Give up after this long (default 5m).
    #[serde(default)]
    pub within: Option<DurationText>,
}

/// `command`: a local process, or a remote one over OpenSSH when `host` is set.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandInputs {
    /// A shell string (`sh -c`) or an argv list.
    pub run: CommandLine,
    /// Remote host; absent means this machine.
    #[serde(default)]
    pub host: Option<String>,
    /// Remote user (default from the configuration).
    #[serde(default)]
    pub user: Option<String>,
    /// SSH port (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// Environment variables (values are templates; secrets go here, never into `run`).
    #[serde(default)]
    pub env: OrderedMap,
    /// Working directory.
    #[serde(default)]
    pub cwd: Option<String>,
}

/// `ansible`: runs `ansible-playbook`. Inside `for_each`, once per batch with `--limit` naming
/// the batch's hosts, and each host's outcome settles that host's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnsibleInputs {
    /// The playbook, relative to the runbook.
    pub playbook: String,
    /// The inventory source (`-i`), relative to the runbook. Default: the runbook's Ansible
    /// inventory; for a patchday inventory, one written for the run from the hosts' records
    /// (`address`, `port`, `user`, `vars`).
    #[serde(default)]
    pub inventory: Option<String>,
    /// A host pattern (`--limit`) for a step without `for_each`; inside `for_each` the batch's
    /// hosts are the limit.
    #[serde(default)]
    pub limit: Option<String>,
    /// Extra variables (`-e`); strings are templates. They reach Ansible in a file only
    /// patchday can read, never on the command line, so secrets may go here.
    #[serde(default)]
    pub extra_vars: serde_json::Map<String, serde_json::Value>,
    /// Only tasks with these tags (`--tags`).
    #[serde(default)]
    pub tags: Option<OneOrMany<String>>,
    /// Not tasks with these tags (`--skip-tags`).
    #[serde(default)]
    pub skip_tags: Option<OneOrMany<String>>,
    /// Check mode (`--check --diff`): report what would change, change nothing.
    #[serde(default)]
    pub check: bool,
    /// Run tasks with privilege escalation (`--become`).
    #[serde(default)]
    pub r#become: bool,
    /// The user to become (`--become-user`, default root).
    #[serde(default)]
    pub become_user: Option<String>,
    /// Parallel processes (`--forks`, default Ansible's).
    #[serde(default)]
    pub forks: Option<u32>,
    /// An `ansible.cfg` to use (`ANSIBLE_CONFIG`), relative to the runbook. Default: Ansible's
    /// own search (`ANSIBLE_CONFIG`, `ansible.cfg` in the runbook's folder, `~/.ansible.cfg`,
    /// `/etc/ansible/ansible.cfg`).
    #[serde(default)]
    pub config: Option<String>,
    /// Longest the whole playbook run may take; then it is stopped and its unfinished hosts
    /// fail (retryable). The step's `timeout:` applies as well.
    #[serde(default)]
    pub timeout: Option<DurationText>,
}

/// Hypervisors the `snapshot` connector drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotProvider {
    /// libvirt through `virsh` (KVM, Xen, the test driver).
    Libvirt,
    /// Proxmox VE REST API with an API token.
    Proxmox,
}

/// What to do with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotAction {
    Create,
    Revert,
    Delete,
}

/// `snapshot`: create, revert or delete a VM snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotInputs {
    pub provider: SnapshotProvider,
    pub action: SnapshotAction,
    /// The VM: a libvirt domain name, or a Proxmox VMID.
    pub vm: String,
    /// Snapshot name.
    pub name: String,
    /// libvirt connection URI (default from the configuration, e.g. `qemu:///system`).
    #[serde(default)]
    pub uri: Option<String>,
    /// Proxmox node that hosts the VM.
    #[serde(default)]
    pub node: Option<String>,
    /// Snapshot description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Formats the cycle report is rendered in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Markdown,
    Html,
    #[default]
    Both,
}

/// `report`: the cycle report, per host and step, for the committee and the auditors.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInputs {
    /// A handlebars template file, relative to the runbook (default: the built-in report).
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub format: ReportFormat,
    /// Role names or addresses to email the report to.
    #[serde(default)]
    pub to: Option<Recipients>,
    /// File to write the report to (a template).
    #[serde(default)]
    pub output: Option<String>,
}

/// `noop`: does nothing and succeeds; for milestones in demos, tests and benchmarks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopInputs {
    /// Text echoed into the step's outputs.
    #[serde(default)]
    pub message: Option<String>,
}

/// `sleep`: waits, then succeeds; for demos, tests and benchmarks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepInputs {
    pub duration: DurationText,
}
