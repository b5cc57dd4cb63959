//! The inventory (DESIGN §3): hosts, groups a step fans out over, and exceptions that leave
//! hosts out of every fan-out while they last. [`load`] reads it for validation from a
//! patchday inventory file or an Ansible inventory ([`ansible`]), which becomes the same model.

use chrono::NaiveDate;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::yaml::Located;

pub mod ansible;
pub mod load;

/// Hosts, groups and exceptions, as written in `inventory/hosts.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "patchday inventory")]
pub struct Inventory {
    /// Hosts by name.
    #[serde(default)]
    pub hosts: IndexMap<Located<String>, Host>,
    /// Groups by name: lists of host names.
    #[serde(default)]
    pub groups: IndexMap<Located<String>, Vec<Located<String>>>,
    /// Hosts left out of fan-outs until a date, with the reason and who approved it.
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    /// The Ansible inventory source this was read from, as the runbook names it (relative to
    /// the runbook's folder): what the `ansible` connector passes to `ansible-playbook -i`.
    #[serde(skip)]
    pub ansible_source: Option<std::path::PathBuf>,
}

/// One host. In templates it is `{{host.name}}`, `{{host.address}}`, `{{host.vm}}`, ...
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Name or IP address to reach it at.
    pub address: String,
    /// The VM that runs it, for snapshot steps (libvirt domain or Proxmox VMID).
    #[serde(default)]
    pub vm: Option<String>,
    /// Operating system, e.g. `windows`, `linux`.
    #[serde(default)]
    pub os: Option<String>,
    /// Business criticality, e.g. `mission`, `business`.
    #[serde(default)]
    pub criticality: Option<String>,
    /// SSH user for command steps on this host.
    #[serde(default)]
    pub user: Option<String>,
    /// SSH port for command steps on this host.
    #[serde(default)]
    pub port: Option<u16>,
    /// Anything else templates may need: `{{host.vars.site}}` (any YAML value).
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
}

/// A host left out of patching until `until`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// Host name.
    pub host: Located<String>,
    /// Last day of the exception (YYYY-MM-DD), inclusive.
    pub until: Located<NaiveDate>,
    /// Why the host is not patched.
    pub reason: String,
    /// Who approved the exception (an email address).
    pub approved_by: String,
}

/// A host as a fan-out sees it: included, or excepted with the exception that applies.
#[derive(Debug, Clone)]
pub enum Member<'a> {
    Included(&'a str, &'a Host),
    Excepted(&'a str, &'a Exception),
}

impl Inventory {
    /// The members of `group` on `day`, in the group's order; unknown host names are skipped
    /// (validation reports them).
    pub fn members(&self, group: &str, day: NaiveDate) -> Vec<Member<'_>> {
        let Some(names) = self.groups.get(group) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| {
                let (name, host) = self.hosts.get_key_value(name.value.as_str())?;
                Some(match self.exception_for(name, day) {
                    Some(exc) => Member::Excepted(name, exc),
                    None => Member::Included(name, host),
                })
            })
            .collect()
    }

    /// The exception that leaves `host` out on `day`, if any.
    pub fn exception_for(&self, host: &str, day: NaiveDate) -> Option<&Exception> {
        self.exceptions
            .iter()
            .find(|e| e.host.value == host && day <= e.until.value)
    }

    /// A host as template data: its fields plus `name`.
    pub fn host_json(name: &str, host: &Host) -> serde_json::Value {
        let mut value = serde_json::to_value(host).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("name".to_string(), name.into());
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::load::deserialize_document;
    use crate::yaml::{Limits, parse};

    fn inventory(text: &str) -> Inventory {
        let root = parse(text, Limits::RUNBOOK).unwrap();
        let mut diags = Vec::new();
        let inv = deserialize_document("inv.yaml", root, &mut diags, &mut Vec::new());
        assert!(diags.is_empty(), "{diags:?}");
        inv.unwrap()
    }

    #[test]
    fn exceptions_leave_hosts_out_until_their_day() {
        let inv = inventory(
            "hosts:\n  a: { address: 10.0.0.1 }\n  b: { address: 10.0.0.2 }\n\
             groups:\n  web: [a, b]\n\
             exceptions:\n  - { host: b, until: 2027-03-01, reason: vendor, approved_by: ciso@example.com }\n",
        );
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let before = inv.members("web", day("2027-03-01"));
        assert!(matches!(before[1], Member::Excepted("b", _)));
        let after = inv.members("web", day("2027-03-02"));
        assert!(matches!(after[1], Member::Included("b", _)));
    }
}
