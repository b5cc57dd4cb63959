//! Connector settings that come from the daemon's configuration (`patchday.toml`): SMTP, SSH,
//! libvirt, Proxmox and the role → addresses resolver.
//!
//! Secrets are never stored here: fields such as [`SmtpSettings::password_secret`] name a
//! secret that the connector looks up in [`crate::Secrets`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a connector may need from the configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The SMTP server mail goes through; `None` means email is not configured.
    pub smtp: Option<SmtpSettings>,
    pub ssh: SshSettings,
    pub libvirt: LibvirtSettings,
    pub ansible: AnsibleSettings,
    /// The Proxmox VE API; `None` means the proxmox snapshot provider is not configured.
    pub proxmox: Option<ProxmoxSettings>,
    /// Role name → addresses (`committee: [patch-committee@example.com]`). The engine merges
    /// the runbook's `roles:` into this before it runs a step.
    pub roles: BTreeMap<String, Vec<String>>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic); port 587.
    #[default]
    Starttls,
    /// Implicit TLS from the first byte; port 465.
    Tls,
    /// No encryption (a local relay only).
    None,
}

/// The SMTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default: 587 for STARTTLS, 465 for TLS, 25 for none.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// Login name for SMTP AUTH; no AUTH without it.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the secret that holds the SMTP password.
    #[serde(default)]
    pub password_secret: Option<String>,
    /// Sender address, e.g. `patchday@example.com` or `Patchday <patchday@example.com>`.
    pub from: String,
    /// Extra CA certificates (PEM) to trust, e.g. a test or internal CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connect and command timeout in seconds (default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl SmtpSettings {
    /// The port, defaulting by TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    /// The timeout of one SMTP exchange.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.unwrap_or(30))
    }
}

/// The OpenSSH client used by `command` and `check` on remote hosts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshSettings {
    /// The ssh program (default `ssh` on the PATH).
    pub program: Option<PathBuf>,
    /// known_hosts file checked strictly (`StrictHostKeyChecking=yes`). Default: the user's.
    pub known_hosts: Option<PathBuf>,
    /// Private key file (`-i`).
    pub identity: Option<PathBuf>,
    /// Default remote user (otherwise the local user name).
    pub user: Option<String>,
    /// Default port (otherwise 22).
    pub port: Option<u16>,
    /// Connect timeout in seconds (default 15).
    pub connect_timeout_secs: Option<u64>,
    /// Extra `-o` options, e.g. `ServerAliveInterval=15`.
    pub options: Vec<String>,
}

/// Where Ansible is (`[ansible]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnsibleSettings {
    /// The folder with `ansible-playbook` and `ansible-inventory` (a virtual environment's
    /// `bin`); default: the PATH.
    pub bin_dir: Option<PathBuf>,
}

impl AnsibleSettings {
    /// The program `name` (`ansible-playbook`, `ansible-inventory`) in `bin_dir`, else on the PATH.
    pub fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }
}

/// libvirt defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LibvirtSettings {
    /// Default connection URI (e.g. `qemu:///system`); a step's `uri` overrides it.
    pub uri: Option<String>,
    /// The virsh program (default `virsh` on the PATH).
    pub virsh: Option<PathBuf>,
}

/// The Proxmox VE API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxmoxSettings {
    /// Base URL, e.g. `https://pve.example.com:8006` (`/api2/json` is added).
    pub api_url: String,
    /// API token id, `USER@REALM!TOKENID`.
    pub token_id: String,
    /// Name of the secret that holds the token's secret (a UUID).
    pub token_secret: String,
    /// Extra CA certificates (PEM) to trust; verification is always on.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time between task status polls in milliseconds (default 2000).
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
}

impl ProxmoxSettings {
    /// Time between two task status polls.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.unwrap_or(2_000))
    }
}

impl Settings {
    /// Resolves role names and addresses (mixed freely) to addresses, in order, without
    /// duplicates. An entry with `@` is an address; anything else must be a known role.
    pub fn resolve_recipients<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for name in names {
            let name = name.trim();
            let addresses = if name.contains('@') {
                vec![name.to_string()]
            } else {
                self.roles
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("unknown role `{name}` (not an address either)"))?
            };
            for a in addresses {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_mix_roles_and_addresses() {
        let mut s = Settings::default();
        s.roles
            .insert("ops".into(), vec!["a@x.org".into(), "b@x.org".into()]);
        let names = ["ops".to_string(), "c@x.org".into(), "a@x.org".into()];
        assert_eq!(
            s.resolve_recipients(&names).unwrap(),
            vec!["a@x.org", "b@x.org", "c@x.org"]
        );
        assert!(s.resolve_recipients(&["nobody".to_string()]).is_err());
    }
}
