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
    #[serde(default, deserialize_with = "port_number")]
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

/// `port`: a YAML integer, never a quoted one. The located tree reads `"22"` as a string;
/// `serde-saphyr` reading straight into a `u16` would take it. Both of the inventory's readers
/// ([`load`]) must take exactly the same files, so the port asks for any value and takes only
/// an integer.
fn port_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct Port;
    impl<'de> serde::de::Visitor<'de> for Port {
        type Value = Option<u16>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("u16")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            let unexpected = serde::de::Unexpected::Unsigned(v);
            u16::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(unexpected, &self))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            let unexpected = serde::de::Unexpected::Signed(v);
            u16::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(unexpected, &self))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_option(Port)
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

    /// The straight read ([`crate::yaml::from_str_when_valid`]) takes exactly what the tree's
    /// read takes, with the same locations, and nothing it refuses.
    #[test]
    fn the_straight_read_agrees_with_the_tree() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut texts: Vec<String> = [
            "inventory/hosts.yaml",
            "inventory/demo-hosts.yaml",
            "tests/corpus/invalid/fixtures/hosts.yaml",
            "tests/corpus/invalid/fixtures/bad-hosts.yaml",
        ]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .collect();
        texts.extend(
            [
                "hosts:\n  a: { address: 10.0.0.1, port: 22 }\n",
                "hosts:\n  a: { address: 10.0.0.1, port: \"22\" }\n",
                "hosts:\n  a: { address: 10.0.0.1, port: 70000 }\n",
                "hosts:\n  a: { address: 10.0.0.1, vm: 123 }\n",
                "hosts:\n  a: { address: 10.0.0.1 }\n  a: { address: 10.0.0.2 }\n",
                "hosts:\n  a: { address: 10.0.0.1, vars: }\n",
                "hosts:\n  a: { address: 10.0.0.1, vars: { x: [1, yes, null, 2.5] } }\n",
                "hosts:\n  a: &h { address: 10.0.0.1 }\n  b: *h\ngroups:\n  g: [a, b]\n",
                "hosts:\n  a: { address: !!str 10 }\n",
                "hosts:\n  a: { address: 10.0.0.1, colour: red }\n",
                "hosts:\n  a: { addr: 10.0.0.1 }\n",
                "hosts:\n  a: 10.0.0.1\n",
                "hosts: []\n",
                "groups:\n  g: a\n",
                "exceptions:\n  - { host: a, until: 2027-13-01, reason: r, approved_by: x }\n",
                "exceptions:\n  - { host: a, until: 2027-01-01, reason: r, approved_by: x }\n",
                "hosts:\n  a: { address: 10.0.0.1, criticality: true }\n",
                "hosts:\n  a: { address: 10.0.0.1, os: ~ }\n",
                "hosts:\n  ? [a]\n  : { address: 10.0.0.1 }\n",
                "# nothing\n",
                "---\nhosts:\n  a: { address: x }\n---\nhosts: {}\n",
                "hosts:\n  a: { address: 10.0.0.1, port: !!int \"22\" }\n",
                "hosts:\n  a: { address: 10.0.0.1, port: 22.0 }\n",
                "hosts:\n  a: { address: 10.0.0.1, port: true }\n",
                "hosts:\n  a: { address: 10.0.0.1, port: 0x16 }\n",
                "hosts:\n  a: { address: 10.0.0.1, port: ~ }\n",
                "hosts:\n  a: { address: 10.0.0.1, vars: { p: \"22\", q: 0o17, r: .inf } }\n",
                "hosts:\n  a: { address: [1] }\n",
                "hosts:\n  a: { address: 10.0.0.1 }\ngroups:\n  g: [a, a]\n",
                "base: &b { address: 10.0.0.1 }\nhosts:\n  a: { <<: *b }\n",
                "hosts:\n  a: &b { address: 10.0.0.1 }\n  c: { <<: *b, vm: v }\n",
                "exceptions:\n  - { host: a, until: \"2027-01-01\", reason: r, approved_by: x }\n",
                "exceptions:\n  - { host: a, until: 2027-01-01T00:00:00Z, reason: r, approved_by: x }\n",
                "hosts:\n  a: { address: 10.0.0.1 }\n\thosts: x\n",
                "hosts:\n  1: { address: 10.0.0.1 }\n  true: { address: 10.0.0.2 }\n",
            ]
            .map(String::from),
        );
        for text in &texts {
            let tree = parse(text, Limits::INVENTORY).ok().and_then(|root| {
                let mut diags = Vec::new();
                let inv: Option<Inventory> =
                    deserialize_document("inv.yaml", root, &mut diags, &mut Vec::new());
                inv.filter(|_| diags.is_empty())
            });
            let straight: Option<Inventory> =
                crate::yaml::from_str_when_valid(text, Limits::INVENTORY);
            match (&tree, &straight) {
                (_, None) => {}
                (Some(tree), Some(straight)) => {
                    assert_eq!(format!("{straight:?}"), format!("{tree:?}"), "{text}")
                }
                (None, Some(straight)) => {
                    panic!("the straight read takes what the tree refuses: {text}\n{straight:?}")
                }
            }
        }
        // The valid files are taken straight (the point of it).
        for text in &texts[..3] {
            assert!(
                crate::yaml::from_str_when_valid::<Inventory>(text, Limits::INVENTORY).is_some(),
                "{text}"
            );
        }
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
