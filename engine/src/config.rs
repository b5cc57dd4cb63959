//! The configuration (`patchday.toml`, DESIGN §9), layered: built-in defaults, then the file,
//! then `PATCHDAY_*` environment variables, then command-line flags. Every value is checked
//! when the layers are resolved; an error names where the bad value came from (the file and
//! key, the environment variable, or the flag). Unknown keys in the file are errors.
//!
//! | key | env | default |
//! |---|---|---|
//! | `[server] listen` | `PATCHDAY_SERVER_LISTEN` | `127.0.0.1:8080` |
//! | `[server] public_url` | `PATCHDAY_SERVER_PUBLIC_URL` | `http://<listen>` |
//! | `[server] node_id` | `PATCHDAY_SERVER_NODE_ID` | `<hostname>:<pid>:<random>` |
//! | `[server] lease_ttl` | `PATCHDAY_SERVER_LEASE_TTL` | `30s` |
//! | `[server] header_timeout` | `PATCHDAY_SERVER_HEADER_TIMEOUT` | `10s` |
//! | `[server] tls_cert_file, tls_key_file` | `PATCHDAY_SERVER_TLS_<KEY>` | none: plain HTTP |
//! | `[server] metrics_token_file` | `PATCHDAY_SERVER_METRICS_TOKEN_FILE` | none: `/metrics` is open |
//! | `[server] trusted_proxies` | — | none: `X-Forwarded-For` is ignored |
//! | `[database] url` | `PATCHDAY_DATABASE_URL` | `sqlite://patchday.db` |
//! | `[smtp] host, port, tls, username, password_file, from` | `PATCHDAY_SMTP_<KEY>` | none: emails go to `outbox/` as files |
//! | `[runbooks] dir, git_pull, git_timeout` | `PATCHDAY_RUNBOOKS_<KEY>` | `runbooks`, no pull, `60s` |
//! | `[ssh] known_hosts, identity, user, port` | `PATCHDAY_SSH_<KEY>` | the OpenSSH client's own |
//! | `[libvirt] uri` | `PATCHDAY_LIBVIRT_URI` | virsh's default connection |
//! | `[security] link_secret_file, api_tokens_file, link_ttl` | `PATCHDAY_SECURITY_<KEY>` | none, none, `72h` |
//! | `[audit] checkpoint_key_file, checkpoint_dir, checkpoint_every, origin` | `PATCHDAY_AUDIT_<KEY>` | none (no checkpoints), `checkpoints`, `10m`, `patchday` |
//! | `[audit] witnesses` | — | none: checkpoints are not mailed |
//! | `[compliance] to, day` | — | none: no monthly compliance email; day `1` |
//! | `[[blackout]] from, to, reason` | — | none |
//! | `[auth] viewers, operators, admins, sign_in` | — | none: only the local operator signs in; `optional` |
//! | `[auth.oidc] issuer, client_id, client_secret_file, scopes, email_claim, groups_claim` | — | none: no single sign-on |
//!
//! Parsing and resolving do no I/O; [`load`] and [`load_layered`] read the file. Secrets are
//! never values here: only the names of the files that hold them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use patchday_connectors::secrets::Secrets;
use patchday_connectors::settings::{
    LibvirtSettings, Settings, SmtpSettings, SmtpTls, SshSettings,
};
use serde::Deserialize;

use crate::calendar::{Blackout, parse_date};

/// The file read when `--config` is not given, if it exists in the working folder.
pub const DEFAULT_FILE: &str = "patchday.toml";
/// `[server] listen` when nothing sets it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `[database] url` when nothing sets it.
pub const DEFAULT_DATABASE: &str = "sqlite://patchday.db";
/// `[runbooks] dir` when nothing sets it.
pub const DEFAULT_RUNBOOKS: &str = "runbooks";
/// `[security] link_ttl` when nothing sets it.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(72 * 3600);
/// `[runbooks] git_timeout` when nothing sets it.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(60);
/// `[server] lease_ttl` when nothing sets it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// `[audit] checkpoint_every` when nothing sets it.
pub const DEFAULT_CHECKPOINT_EVERY: Duration = Duration::from_secs(600);

/// Every key a layer may set, as `section.key`.
pub const KEYS: &[&str] = &[
    "server.listen",
    "server.public_url",
    "server.node_id",
    "server.lease_ttl",
    "server.header_timeout",
    "server.metrics_token_file",
    "server.tls_cert_file",
    "server.tls_key_file",
    "database.url",
    "smtp.host",
    "smtp.port",
    "smtp.tls",
    "smtp.username",
    "smtp.password_file",
    "smtp.from",
    "runbooks.dir",
    "runbooks.git_pull",
    "runbooks.git_timeout",
    "ssh.known_hosts",
    "ssh.identity",
    "ssh.user",
    "ssh.port",
    "libvirt.uri",
    "ansible.bin_dir",
    "ansible.inventory",
    "security.link_secret_file",
    "security.api_tokens_file",
    "security.link_ttl",
    "audit.checkpoint_key_file",
    "audit.checkpoint_dir",
    "audit.checkpoint_every",
    "audit.origin",
];

/// What the configuration says, every value checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Org-wide change freezes, added to every runbook's own blackouts.
    pub blackouts: Vec<Blackout>,
    pub server: ServerConfig,
    /// Database URL (`sqlite://...`, `postgres://...`).
    pub database_url: String,
    /// `None`: emails are written into the outbox folder instead of sent.
    pub smtp: Option<SmtpConfig>,
    pub runbooks: RunbooksConfig,
    /// `[ssh]`: how `command` and `check` steps reach remote hosts (known_hosts checked
    /// strictly, the key to log in with, default user and port).
    pub ssh: SshSettings,
    /// `[libvirt]`: the default connection URI of `snapshot` steps with `provider: libvirt`.
    pub libvirt: LibvirtSettings,
    /// `[ansible] bin_dir`: where `ansible-playbook` and `ansible-inventory` are.
    pub ansible: patchday_connectors::settings::AnsibleSettings,
    /// `[ansible] inventory`: Ansible inventories read natively, or through `ansible-inventory`.
    pub ansible_inventories: crate::sources::AnsibleInventories,
    pub security: SecurityConfig,
    /// `[auth]`: who holds which role (file only).
    pub roles: crate::auth::Roles,
    /// `[auth.oidc]`: single sign-on (file only).
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
    /// `[auth] sign_in`: whether approval links need their recipient signed in, for approval
    /// steps that do not say (file only; default `optional`).
    pub approvals_sign_in: patchday_connectors::inputs::SignIn,
    pub audit: AuditConfig,
    /// `[compliance]`: the monthly compliance email (file only); `None`: not mailed.
    pub compliance: Option<ComplianceConfig>,
}

/// `[compliance]`: the daemon mails `patchday compliance` for the previous month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceConfig {
    /// Recipients (normalized addresses).
    pub to: Vec<String>,
    /// Day of the month (1-28, in UTC) from which last month's report is mailed.
    pub day: u32,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The base of links in emails; `None`: `http://<listen>`.
    pub public_url: Option<String>,
    /// This daemon's name in leases and claims (several daemons on one database); `None`:
    /// `<hostname>:<pid>:<random>`, new at every start. Unique per running daemon.
    pub node_id: Option<String>,
    /// How long the leader lease and run claims last without renewal: a dead daemon's work is
    /// taken over after at most this long. Renewed every third of it.
    pub lease_ttl: Duration,
    /// How long a client may take to send a request's head (and how long a kept-alive
    /// connection may idle) before it is disconnected.
    pub header_timeout: Duration,
    /// The file holding the bearer token `/metrics` requires; `None`: `/metrics` is open.
    pub metrics_token_file: Option<PathBuf>,
    /// TLS: the certificate chain and key (PEM), reloaded when they change.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The reverse proxies whose `X-Forwarded-For` names the client; none: it is ignored.
    pub trusted_proxies: crate::daemon::http::proxy::TrustedProxies,
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// The file holding the SMTP password (read at start, never logged).
    pub password_file: Option<PathBuf>,
    pub from: String,
}

/// `[runbooks]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbooksConfig {
    pub dir: PathBuf,
    /// `git pull --ff-only` interval, when the folder is a git work tree.
    pub git_pull: Option<Duration>,
    /// How long a `git pull` may take before it is killed.
    pub git_timeout: Duration,
}

/// `[audit]`: signed checkpoints of the audit log, kept outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The Ed25519 signing key (`patchday audit keygen`); no checkpoints without it.
    pub checkpoint_key_file: Option<PathBuf>,
    /// Where checkpoints are written, one file each.
    pub checkpoint_dir: PathBuf,
    /// How often the daemon writes one when the log grew.
    pub checkpoint_every: Duration,
    /// The checkpoints' origin line.
    pub origin: String,
    /// `[audit] witnesses`: addresses every checkpoint the daemon writes is mailed to (file only).
    pub witnesses: Vec<String>,
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    pub link_secret_file: Option<PathBuf>,
    /// `NAME SHA256HEX` lines: the JSON API's bearer tokens, hashed (see [`crate::daemon::tokens`]).
    pub api_tokens_file: Option<PathBuf>,
    pub link_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        resolve(Layers::default()).expect("the defaults are valid")
    }
}

impl Config {
    /// The base URL of links and pages.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.server.listen),
        }
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// A value that came from somewhere else than the file (env, flag).
    #[error("{origin}: {message}")]
    Value { origin: String, message: String },
    /// A file the configuration names (a secret's) cannot be read.
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// The name the `[smtp]` password is kept under in the connectors' [`Secrets`] (a name no
/// runbook param is likely to take; a param of that name would win in its run).
pub const SMTP_PASSWORD: &str = "config:smtp_password";

/// What every run's connectors get from the configuration ([`Config::connectors`]).
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    /// `[smtp]` (the server of `email` and `report` steps, and of the daemon's mailer),
    /// `[ssh]`, `[libvirt]`, `[ansible]`.
    pub settings: Settings,
    /// The `[smtp]` password, read from its `password_file`, under [`SMTP_PASSWORD`].
    pub secrets: Secrets,
}

impl Config {
    /// The connectors' settings and secrets: the one place the daemon and `patchday run` /
    /// `resume` take them from, so a run sees the same `[smtp]`, `[ssh]` and `[libvirt]`
    /// whichever started it. Reads `[smtp] password_file`.
    pub fn connectors(&self) -> Result<Connectors, ConfigError> {
        let mut secrets = Secrets::new();
        let smtp = match &self.smtp {
            None => None,
            Some(smtp) => {
                if let Some(path) = &smtp.password_file {
                    let password =
                        std::fs::read_to_string(path).map_err(|source| ConfigError::File {
                            what: "[smtp] password_file",
                            path: path.display().to_string(),
                            source,
                        })?;
                    secrets.insert(SMTP_PASSWORD, password.trim_end_matches(['\r', '\n']));
                }
                Some(SmtpSettings {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    tls: smtp.tls,
                    username: smtp.username.clone(),
                    password_secret: smtp.password_file.as_ref().map(|_| SMTP_PASSWORD.into()),
                    from: smtp.from.clone(),
                    ca_file: None,
                    timeout_secs: None,
                })
            }
        };
        let settings = Settings {
            smtp,
            ssh: self.ssh.clone(),
            libvirt: self.libvirt.clone(),
            ansible: self.ansible.clone(),
            ..Settings::default()
        };
        Ok(Connectors { settings, secrets })
    }
}

/// One value and where it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    /// `patchday.toml: [server] listen`, `environment variable PATCHDAY_SERVER_LISTEN`, `--listen`.
    pub origin: String,
    /// True when the value came from the file (errors then use [`ConfigError::Invalid`]).
    from_file: Option<String>,
}

/// The layers before they are resolved: `section.key` → value, later layers replacing earlier.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    file: Option<PathBuf>,
    values: BTreeMap<&'static str, Setting>,
    blackouts: Vec<Blackout>,
    roles: crate::auth::Roles,
    trusted_proxies: crate::daemon::http::proxy::TrustedProxies,
    oidc: Option<crate::auth::oidc::OidcConfig>,
    approvals_sign_in: patchday_connectors::inputs::SignIn,
    witnesses: Vec<String>,
    compliance: Option<ComplianceConfig>,
}

impl Layers {
    /// Sets `key` (one of [`KEYS`]) from a flag or a test; `origin` names where it came from.
    pub fn set(&mut self, key: &str, value: impl Into<String>, origin: impl Into<String>) {
        let Some(key) = KEYS.iter().find(|k| **k == key) else {
            debug_assert!(false, "unknown configuration key {key}");
            return;
        };
        self.values.insert(
            key,
            Setting {
                value: value.into(),
                origin: origin.into(),
                from_file: None,
            },
        );
    }

    /// Applies `PATCHDAY_<SECTION>_<KEY>` variables, as `lookup` returns them.
    pub fn environment(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        for key in KEYS {
            let var = env_name(key);
            if let Some(value) = lookup(&var) {
                self.set(key, value, format!("environment variable {var}"));
            }
        }
    }
}

/// `PATCHDAY_SERVER_LISTEN` for `server.listen`.
pub fn env_name(key: &str) -> String {
    format!("PATCHDAY_{}", key.replace('.', "_").to_uppercase())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    blackout: Vec<RawBlackout>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    smtp: Option<RawSmtp>,
    #[serde(default)]
    runbooks: RawRunbooks,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    libvirt: RawLibvirt,
    #[serde(default)]
    ansible: RawAnsible,
    #[serde(default)]
    security: RawSecurity,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    compliance: Option<RawCompliance>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompliance {
    to: Vec<String>,
    day: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    viewers: Vec<String>,
    #[serde(default)]
    operators: Vec<String>,
    #[serde(default)]
    admins: Vec<String>,
    oidc: Option<RawOidc>,
    #[serde(default)]
    sign_in: patchday_connectors::inputs::SignIn,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    client_id: String,
    client_secret_file: String,
    scopes: Option<Vec<String>>,
    email_claim: Option<String>,
    groups_claim: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    node_id: Option<String>,
    lease_ttl: Option<String>,
    header_timeout: Option<String>,
    metrics_token_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<String>,
    from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbooks {
    dir: Option<String>,
    git_pull: Option<String>,
    git_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    known_hosts: Option<String>,
    identity: Option<String>,
    user: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibvirt {
    uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnsible {
    bin_dir: Option<String>,
    inventory: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    link_secret_file: Option<String>,
    api_tokens_file: Option<String>,
    link_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    checkpoint_key_file: Option<String>,
    checkpoint_dir: Option<String>,
    checkpoint_every: Option<String>,
    origin: Option<String>,
    #[serde(default)]
    witnesses: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlackout {
    from: String,
    to: String,
    reason: String,
}

/// Reads `explicit`, or `patchday.toml` in the working folder if it exists, or nothing; no
/// environment, no flags (what `calendar` needs: the org-wide blackouts).
pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    resolve(read_file(explicit)?)
}

/// The file layer (as [`load`] finds it), to add the environment and flags to before
/// [`resolve`].
pub fn read_file(explicit: Option<&Path>) -> Result<Layers, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(Layers::default()),
    };
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let mut layers = parse_layers(&file, &text)?;
    layers.file = Some(path);
    Ok(layers)
}

/// Parses configuration text and resolves it alone (no I/O).
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    resolve(parse_layers(file, text)?)
}

/// Parses configuration text into the file layer (no I/O).
pub fn parse_layers(file: &str, text: &str) -> Result<Layers, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        file: file.to_string(),
        message,
    };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
    let mut layers = Layers::default();
    for (i, b) in raw.blackout.into_iter().enumerate() {
        let at = |e: String| invalid(format!("[[blackout]] #{}: {e}", i + 1));
        let from = parse_date(&b.from).map_err(at)?;
        let to = parse_date(&b.to).map_err(at)?;
        layers
            .blackouts
            .push(Blackout::new(from, to, b.reason).map_err(at)?);
    }
    layers.roles = roles(&raw.auth).map_err(invalid)?;
    layers.trusted_proxies = crate::daemon::http::proxy::TrustedProxies::parse(
        raw.server.trusted_proxies.as_deref().unwrap_or_default(),
    )
    .map_err(|e| invalid(format!("[server] trusted_proxies: {e}")))?;
    layers.approvals_sign_in = raw.auth.sign_in;
    layers.witnesses = addresses("[audit] witnesses", &raw.audit.witnesses).map_err(invalid)?;
    layers.compliance = raw
        .compliance
        .map(compliance)
        .transpose()
        .map_err(invalid)?;
    layers.oidc = raw.auth.oidc.map(oidc).transpose().map_err(invalid)?;
    let smtp = raw.smtp.unwrap_or_default();
    let values: [(&str, Option<String>); 32] = [
        ("server.listen", raw.server.listen),
        ("server.public_url", raw.server.public_url),
        ("server.node_id", raw.server.node_id),
        ("server.lease_ttl", raw.server.lease_ttl),
        ("server.header_timeout", raw.server.header_timeout),
        ("server.metrics_token_file", raw.server.metrics_token_file),
        ("server.tls_cert_file", raw.server.tls_cert_file),
        ("server.tls_key_file", raw.server.tls_key_file),
        ("database.url", raw.database.url),
        ("smtp.host", smtp.host),
        ("smtp.port", smtp.port.map(|p| p.to_string())),
        ("smtp.tls", smtp.tls),
        ("smtp.username", smtp.username),
        ("smtp.password_file", smtp.password_file),
        ("smtp.from", smtp.from),
        ("runbooks.dir", raw.runbooks.dir),
        ("runbooks.git_pull", raw.runbooks.git_pull),
        ("runbooks.git_timeout", raw.runbooks.git_timeout),
        ("ssh.known_hosts", raw.ssh.known_hosts),
        ("ssh.identity", raw.ssh.identity),
        ("ssh.user", raw.ssh.user),
        ("ssh.port", raw.ssh.port.map(|p| p.to_string())),
        ("libvirt.uri", raw.libvirt.uri),
        ("ansible.bin_dir", raw.ansible.bin_dir),
        ("ansible.inventory", raw.ansible.inventory),
        ("security.link_secret_file", raw.security.link_secret_file),
        ("security.api_tokens_file", raw.security.api_tokens_file),
        ("security.link_ttl", raw.security.link_ttl),
        ("audit.checkpoint_key_file", raw.audit.checkpoint_key_file),
        ("audit.checkpoint_dir", raw.audit.checkpoint_dir),
        ("audit.checkpoint_every", raw.audit.checkpoint_every),
        ("audit.origin", raw.audit.origin),
    ];
    for (key, value) in values {
        if let Some(value) = value {
            let (section, name) = key.split_once('.').unwrap_or((key, ""));
            layers.set(key, value, format!("{file}: [{section}] {name}"));
            if let Some(setting) = layers.values.get_mut(key) {
                setting.from_file = Some(file.to_string());
            }
        }
    }
    Ok(layers)
}

/// Checks every value of the layers and builds the configuration (no I/O).
pub fn resolve(layers: Layers) -> Result<Config, ConfigError> {
    let get = |key: &str| layers.values.get(key);
    let bad = |setting: &Setting, message: String| match &setting.from_file {
        Some(file) => ConfigError::Invalid {
            file: file.clone(),
            message: format!("{}: {message}", origin_key(&setting.origin)),
        },
        None => ConfigError::Value {
            origin: setting.origin.clone(),
            message,
        },
    };
    let text = |key: &str| -> Result<Option<String>, ConfigError> {
        match get(key) {
            Some(s) if s.value.trim().is_empty() => Err(bad(s, "must not be empty".into())),
            Some(s) => Ok(Some(s.value.trim().to_string())),
            None => Ok(None),
        }
    };
    let duration = |key: &str| -> Result<Option<Duration>, ConfigError> {
        match get(key) {
            Some(s) => patchday_connectors::values::parse_duration(s.value.trim())
                .map(Some)
                .map_err(|e| {
                    bad(
                        s,
                        format!("`{}` is not a duration such as 30s, 15m, 2h ({e})", s.value),
                    )
                }),
            None => Ok(None),
        }
    };

    let listen = match get("server.listen") {
        Some(s) => s.value.trim().parse::<SocketAddr>().map_err(|_| {
            bad(
                s,
                format!(
                    "`{}` is not an address to listen on, such as 127.0.0.1:8080 or [::]:8080",
                    s.value
                ),
            )
        })?,
        None => DEFAULT_LISTEN.parse().expect("valid default"),
    };
    let public_url = text("server.public_url")?;
    if let (Some(url), Some(s)) = (&public_url, get("server.public_url"))
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(bad(
            s,
            format!("`{url}` must start with http:// or https://"),
        ));
    }
    let node_id = text("server.node_id")?;
    if let (Some(id), Some(s)) = (&node_id, get("server.node_id"))
        && !id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(bad(
            s,
            format!("`{id}` must be printable ASCII without spaces"),
        ));
    }
    let lease_ttl = duration("server.lease_ttl")?.unwrap_or(DEFAULT_LEASE_TTL);
    if let (Some(s), true) = (get("server.lease_ttl"), lease_ttl < Duration::from_secs(1)) {
        return Err(bad(s, "must be at least 1s".into()));
    }
    let database_url = text("database.url")?.unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    if let Some(s) = get("database.url") {
        let scheme = database_url
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(
            scheme.as_deref(),
            Some("sqlite" | "postgres" | "postgresql")
        ) {
            return Err(bad(
                s,
                "expected a sqlite:, postgres: or postgresql: URL (e.g. sqlite://patchday.db)"
                    .into(),
            ));
        }
    }
    let smtp = smtp(&layers, &get, &bad, &text)?;
    let runbooks = RunbooksConfig {
        dir: PathBuf::from(text("runbooks.dir")?.unwrap_or_else(|| DEFAULT_RUNBOOKS.into())),
        git_pull: duration("runbooks.git_pull")?,
        git_timeout: duration("runbooks.git_timeout")?.unwrap_or(DEFAULT_GIT_TIMEOUT),
    };
    let port = |key: &str| -> Result<Option<u16>, ConfigError> {
        match get(key) {
            Some(s) => s
                .value
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .map(Some)
                .ok_or_else(|| bad(s, format!("`{}` is not a port (1-65535)", s.value))),
            None => Ok(None),
        }
    };
    let ssh = SshSettings {
        known_hosts: text("ssh.known_hosts")?.map(PathBuf::from),
        identity: text("ssh.identity")?.map(PathBuf::from),
        user: text("ssh.user")?,
        port: port("ssh.port")?,
        ..SshSettings::default()
    };
    let libvirt = LibvirtSettings {
        uri: text("libvirt.uri")?,
        ..LibvirtSettings::default()
    };
    let ansible = patchday_connectors::settings::AnsibleSettings {
        bin_dir: text("ansible.bin_dir")?.map(PathBuf::from),
    };
    let ansible_inventories = match get("ansible.inventory") {
        None => crate::sources::AnsibleInventories::Native,
        Some(s) => match s.value.trim() {
            "native" => crate::sources::AnsibleInventories::Native,
            "ansible-inventory" => {
                crate::sources::AnsibleInventories::List(ansible.program("ansible-inventory"))
            }
            other => {
                return Err(bad(
                    s,
                    format!("`{other}` is not \"native\" or \"ansible-inventory\""),
                ));
            }
        },
    };
    let security = SecurityConfig {
        link_secret_file: text("security.link_secret_file")?.map(PathBuf::from),
        api_tokens_file: text("security.api_tokens_file")?.map(PathBuf::from),
        link_ttl: duration("security.link_ttl")?.unwrap_or(DEFAULT_LINK_TTL),
    };
    if let (Some(s), true) = (get("security.link_ttl"), security.link_ttl.is_zero()) {
        return Err(bad(s, "must be longer than 0s".into()));
    }
    let audit = AuditConfig {
        checkpoint_key_file: text("audit.checkpoint_key_file")?.map(PathBuf::from),
        checkpoint_dir: text("audit.checkpoint_dir")?
            .map_or_else(|| PathBuf::from("checkpoints"), PathBuf::from),
        checkpoint_every: duration("audit.checkpoint_every")?.unwrap_or(DEFAULT_CHECKPOINT_EVERY),
        origin: text("audit.origin")?.unwrap_or_else(|| "patchday".into()),
        witnesses: layers.witnesses.clone(),
    };
    if let (Some(s), true) = (
        get("audit.checkpoint_every"),
        audit.checkpoint_every.is_zero(),
    ) {
        return Err(bad(s, "must be longer than 0s".into()));
    }
    if let Some(s) = get("audit.origin").filter(|s| s.value.contains('\n')) {
        return Err(bad(s, "must be one line".into()));
    }
    Ok(Config {
        file: layers.file.clone(),
        blackouts: layers.blackouts.clone(),
        server: ServerConfig {
            listen,
            public_url,
            node_id,
            lease_ttl,
            header_timeout: duration("server.header_timeout")?
                .unwrap_or(crate::daemon::http::serve::DEFAULT_HEADER_TIMEOUT),
            metrics_token_file: text("server.metrics_token_file")?.map(PathBuf::from),
            tls: match (text("server.tls_cert_file")?, text("server.tls_key_file")?) {
                (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
                (None, None) => None,
                _ => {
                    let s = get("server.tls_cert_file")
                        .or_else(|| get("server.tls_key_file"))
                        .expect("one is set");
                    return Err(bad(s, "tls_cert_file and tls_key_file go together".into()));
                }
            },
            trusted_proxies: layers.trusted_proxies.clone(),
        },
        database_url,
        smtp,
        runbooks,
        ssh,
        libvirt,
        ansible,
        ansible_inventories,
        security,
        audit,
        compliance: layers.compliance.clone(),
        roles: layers.roles.clone(),
        oidc: layers.oidc.clone(),
        approvals_sign_in: layers.approvals_sign_in,
    })
}

/// `[auth.oidc]`: an `http(s)://` issuer, a client id and a secret file; scopes default to
/// `email`, `profile`; claims to `email`, `groups`.
fn oidc(raw: RawOidc) -> Result<crate::auth::oidc::OidcConfig, String> {
    if !(raw.issuer.starts_with("https://") || raw.issuer.starts_with("http://")) {
        return Err(format!(
            "[auth.oidc] issuer: `{}` must start with https:// (or http:// on loopback)",
            raw.issuer
        ));
    }
    if raw.client_id.trim().is_empty() || raw.client_secret_file.trim().is_empty() {
        return Err("[auth.oidc] client_id and client_secret_file must not be empty".into());
    }
    Ok(crate::auth::oidc::OidcConfig {
        issuer: raw.issuer,
        client_id: raw.client_id,
        client_secret_file: PathBuf::from(raw.client_secret_file),
        scopes: raw
            .scopes
            .unwrap_or_else(|| vec!["email".into(), "profile".into()]),
        email_claim: raw.email_claim.unwrap_or_else(|| "email".into()),
        groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".into()),
    })
}

/// `[auth] viewers, operators, admins`, each entry checked ([`crate::auth::Principal::parse`]).
/// Email addresses, normalized; a bad one is named with its key.
fn addresses(key: &str, items: &[String]) -> Result<Vec<String>, String> {
    items
        .iter()
        .map(|a| {
            crate::auth::normalize_email(a)
                .ok_or_else(|| format!("{key}: `{a}` is not an email address"))
        })
        .collect()
}

/// `[compliance]`: `to` (at least one address) and `day` (1-28, default 1).
fn compliance(raw: RawCompliance) -> Result<ComplianceConfig, String> {
    let to = addresses("[compliance] to", &raw.to)?;
    if to.is_empty() {
        return Err("[compliance] to: names nobody".into());
    }
    let day = raw.day.unwrap_or(1);
    if !(1..=28).contains(&day) {
        return Err(format!(
            "[compliance] day: {day} is not a day of every month (1-28)"
        ));
    }
    Ok(ComplianceConfig { to, day })
}

fn roles(raw: &RawAuth) -> Result<crate::auth::Roles, String> {
    let list = |key: &str, items: &[String]| {
        items
            .iter()
            .map(|i| crate::auth::Principal::parse(i).map_err(|e| format!("[auth] {key}: {e}")))
            .collect::<Result<Vec<_>, String>>()
    };
    Ok(crate::auth::Roles {
        viewers: list("viewers", &raw.viewers)?,
        operators: list("operators", &raw.operators)?,
        admins: list("admins", &raw.admins)?,
    })
}

type Lookup<'a> = dyn Fn(&str) -> Option<&'a Setting> + 'a;
type Bad<'a> = dyn Fn(&Setting, String) -> ConfigError + 'a;
type Text<'a> = dyn Fn(&str) -> Result<Option<String>, ConfigError> + 'a;

/// `[smtp]`: absent unless `host` is set; then `from` is required too.
fn smtp<'a>(
    layers: &'a Layers,
    get: &Lookup<'a>,
    bad: &Bad<'a>,
    text: &Text<'a>,
) -> Result<Option<SmtpConfig>, ConfigError> {
    let any = layers.values.keys().find(|k| k.starts_with("smtp."));
    let Some(host) = text("smtp.host")? else {
        return match any.and_then(|k| get(k)) {
            Some(s) => Err(bad(
                s,
                "[smtp] needs `host` (and `from`) when any of its keys is set".into(),
            )),
            None => Ok(None),
        };
    };
    let from = text("smtp.from")?.ok_or_else(|| {
        bad(
            get("smtp.host").expect("host is set"),
            "[smtp] needs `from` (the sender address) too".into(),
        )
    })?;
    if !from.contains('@') {
        return Err(bad(
            get("smtp.from").expect("set"),
            format!("`{from}` is not an email address"),
        ));
    }
    let port = match get("smtp.port") {
        Some(s) => Some(
            s.value
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(s, format!("`{}` is not a port (1-65535)", s.value)))?,
        ),
        None => None,
    };
    let tls = match get("smtp.tls") {
        Some(s) => match s.value.trim() {
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                return Err(bad(
                    s,
                    format!("`{other}`: expected \"starttls\", \"tls\" or \"none\""),
                ));
            }
        },
        None => SmtpTls::Starttls,
    };
    let username = text("smtp.username")?;
    let password_file = text("smtp.password_file")?.map(PathBuf::from);
    if let (Some(_), None) = (&username, &password_file) {
        return Err(bad(
            get("smtp.username").expect("set"),
            "[smtp] `username` needs `password_file` (the file holding the password)".into(),
        ));
    }
    Ok(Some(SmtpConfig {
        host,
        port,
        tls,
        username,
        password_file,
        from,
    }))
}

/// `[server] listen` from `patchday.toml: [server] listen`.
fn origin_key(origin: &str) -> &str {
    origin.split_once(": ").map(|(_, k)| k).unwrap_or(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_checked_and_a_bad_one_named() {
        let config = parse(
            "p.toml",
            "[server]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
        )
        .unwrap();
        let expected =
            crate::daemon::http::proxy::TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(config.server.trusted_proxies, expected.unwrap());
        let err = parse("p.toml", "[server]\ntrusted_proxies = [\"10.0.0.0/64\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.toml") && err.contains("[server] trusted_proxies"),
            "{err}"
        );
        assert!(err.contains("`10.0.0.0/64`"), "{err}");
    }

    #[test]
    fn witnesses_and_the_compliance_email_are_read_and_bad_values_named() {
        let config = parse(
            "p.toml",
            "[audit]\nwitnesses = [\"Auditor@Example.com\"]\n[compliance]\nto = [\"cab@example.com\"]\nday = 3\n",
        )
        .unwrap();
        assert_eq!(config.audit.witnesses, ["auditor@example.com"]);
        let compliance = config.compliance.unwrap();
        assert_eq!(
            (compliance.to, compliance.day),
            (vec!["cab@example.com".into()], 3)
        );
        assert_eq!(parse("p.toml", "").unwrap().compliance, None);
        for (text, says) in [
            (
                "[audit]\nwitnesses = [\"nobody\"]\n",
                "[audit] witnesses: `nobody` is not an email address",
            ),
            ("[compliance]\nto = []\n", "[compliance] to: names nobody"),
            (
                "[compliance]\nto = [\"a@example.com\"]\nday = 31\n",
                "[compliance] day: 31 is not a day of every month",
            ),
        ] {
            let err = parse("p.toml", text).unwrap_err().to_string();
            assert!(err.contains("p.toml") && err.contains(says), "{err}");
        }
    }

    #[test]
    fn reads_org_wide_blackouts() {
        let config = parse("p.toml", "[server]\nlisten = \"127.0.0.1:8080\"\n\n[[blackout]]\nfrom = \"2026-11-25\"\nto = \"2026-11-30\"\nreason = \"Black Friday\"\n").unwrap();
        assert_eq!(config.blackouts.len(), 1);
        assert_eq!(config.blackouts[0].reason, "Black Friday");
    }

    #[test]
    fn a_bad_blackout_names_the_file_and_entry() {
        let err = parse(
            "p.toml",
            "[[blackout]]\nfrom = \"2026-11-31\"\nto = \"2026-12-01\"\nreason = \"x\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("p.toml: [[blackout]] #1: "),
            "{err}"
        );
        let err = parse("p.toml", "[[blackout]]\nfrom = 2026-11-01\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn no_configuration_means_the_one_command_defaults() {
        let config = parse("p.toml", "").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://patchday.db");
        assert!(config.smtp.is_none());
        assert_eq!(config.runbooks.dir, PathBuf::from("runbooks"));
        assert_eq!(config.security.link_ttl, DEFAULT_LINK_TTL);
        assert_eq!(config.server.node_id, None);
        assert_eq!(config.server.lease_ttl, DEFAULT_LEASE_TTL);
    }

    #[test]
    fn node_id_and_lease_ttl_are_read_and_checked() {
        let config = parse(
            "p.toml",
            "[server]\nnode_id = \"patch-01\"\nlease_ttl = \"10s\"\n",
        )
        .unwrap();
        assert_eq!(config.server.node_id.as_deref(), Some("patch-01"));
        assert_eq!(config.server.lease_ttl, Duration::from_secs(10));
        let err = parse("p.toml", "[server]\nlease_ttl = \"0s\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("[server] lease_ttl: must be at least 1s"),
            "{err}"
        );
        let err = parse("p.toml", "[server]\nnode_id = \"a b\"\n").unwrap_err();
        assert!(err.to_string().contains("[server] node_id"), "{err}");
        let mut layers = Layers::default();
        layers.environment(|var| (var == "PATCHDAY_SERVER_LEASE_TTL").then(|| "2s".into()));
        assert_eq!(
            resolve(layers).unwrap().server.lease_ttl,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_file_and_key() {
        let err = parse(
            "p.toml",
            "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("p.toml: "), "{text}");
        assert!(text.contains("lisen") && text.contains("line 3"), "{text}");
        let err = parse("p.toml", "[sever]\nlisten = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("sever"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_and_flags_override_both() {
        let mut layers = parse_layers(
            "p.toml",
            "[server]\nlisten = \"127.0.0.1:1\"\n[database]\nurl = \"sqlite://a.db\"\n",
        )
        .unwrap();
        layers.environment(|var| match var {
            "PATCHDAY_SERVER_LISTEN" => Some("127.0.0.1:2".into()),
            "PATCHDAY_RUNBOOKS_DIR" => Some("/srv/runbooks".into()),
            _ => None,
        });
        layers.set("server.listen", "127.0.0.1:3", "--listen");
        let config = resolve(layers).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:3");
        assert_eq!(config.database_url, "sqlite://a.db");
        assert_eq!(config.runbooks.dir, PathBuf::from("/srv/runbooks"));
    }

    #[test]
    fn bad_values_name_where_they_came_from() {
        let err = parse("p.toml", "[server]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.toml: [server] listen: `localhost`"),
            "{err}"
        );
        let mut layers = Layers::default();
        layers.environment(|var| (var == "PATCHDAY_SECURITY_LINK_TTL").then(|| "soon".into()));
        let err = resolve(layers).unwrap_err().to_string();
        assert!(
            err.starts_with("environment variable PATCHDAY_SECURITY_LINK_TTL: `soon`"),
            "{err}"
        );
        let err = parse("p.toml", "[smtp]\nport = 25\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `host`"), "{err}");
        let err = parse("p.toml", "[smtp]\nhost = \"mail\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `from`"), "{err}");
        let err = parse(
            "p.toml",
            "[smtp]\nhost = \"mail\"\nfrom = \"p@x\"\ntls = \"ssl\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[smtp] tls: `ssl`"), "{err}");
        let err = parse("p.toml", "[database]\nurl = \"mysql://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[database] url"), "{err}");
    }

    #[test]
    fn ssh_and_libvirt_sections_are_read_and_checked() {
        let config = parse(
            "p.toml",
            "[ssh]\nknown_hosts = \"/d/known_hosts\"\nidentity = \"/d/user_key\"\nuser = \"ops\"\nport = 2222\n[libvirt]\nuri = \"test:///d/node.xml\"\n",
        )
        .unwrap();
        assert_eq!(
            config.ssh.known_hosts,
            Some(PathBuf::from("/d/known_hosts"))
        );
        assert_eq!(config.ssh.identity, Some(PathBuf::from("/d/user_key")));
        assert_eq!(config.ssh.user.as_deref(), Some("ops"));
        assert_eq!(config.ssh.port, Some(2222));
        assert_eq!(config.libvirt.uri.as_deref(), Some("test:///d/node.xml"));
        let none = parse("p.toml", "").unwrap();
        assert_eq!(none.ssh.port, None);
        assert_eq!(none.libvirt.uri, None);

        let err = parse("p.toml", "[ssh]\nport = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[ssh] port: `0` is not a port"), "{err}");
        let err = parse("p.toml", "[ssh]\nidentiy = \"k\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("identiy"), "{err}");
        let mut layers = Layers::default();
        layers.environment(|var| (var == "PATCHDAY_SSH_PORT").then(|| "ssh".into()));
        let err = resolve(layers).unwrap_err().to_string();
        assert!(
            err.starts_with("environment variable PATCHDAY_SSH_PORT: `ssh`"),
            "{err}"
        );
    }

    #[test]
    fn the_ansible_section_is_read_and_checked() {
        let config = parse(
            "patchday.toml",
            "[ansible]\nbin_dir = \"/opt/ansible/bin\"\ninventory = \"ansible-inventory\"\n",
        )
        .unwrap();
        assert_eq!(
            config.ansible_inventories,
            crate::sources::AnsibleInventories::List("/opt/ansible/bin/ansible-inventory".into())
        );
        let err = parse("patchday.toml", "[ansible]\ninventory = \"dynamic\"\n").unwrap_err();
        assert!(err.to_string().contains("[ansible] inventory"), "{err}");
    }

    #[test]
    fn a_full_smtp_section_is_read() {
        let config = parse(
            "p.toml",
            "[smtp]\nhost = \"mail.example.com\"\nport = 2525\ntls = \"none\"\nusername = \"pd\"\npassword_file = \"/etc/patchday/smtp\"\nfrom = \"patchday@example.com\"\n",
        )
        .unwrap();
        let smtp = config.smtp.unwrap();
        assert_eq!(smtp.port, Some(2525));
        assert_eq!(smtp.tls, SmtpTls::None);
        assert_eq!(
            smtp.password_file,
            Some(PathBuf::from("/etc/patchday/smtp"))
        );
    }
}
