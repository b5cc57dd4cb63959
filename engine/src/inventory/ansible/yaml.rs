//! Ansible's YAML inventory format, read natively.
//!
//! Supported (as Ansible's `yaml` plugin reads it): top-level groups (usually `all`), each a
//! mapping of `hosts` (host patterns, each with a mapping of vars or nothing), `vars` and
//! `children` (groups, recursively). A `plugin:` file (a dynamic inventory's configuration) and
//! keys Ansible would skip with a warning are errors naming the line. YAML 1.1 booleans
//! (`yes`/`no`/`on`/`off`) read as booleans, as Ansible's YAML 1.1 parser reads them.

use indexmap::IndexMap;
use serde_json::Value;

use super::AnsibleInventory;
use super::ini::LineError;
use super::pattern;
use crate::yaml::{Node, Value as Y};

/// Reads a YAML inventory from its located tree; every error found, each with its place.
pub fn parse(root: &Node) -> Result<AnsibleInventory, Vec<LineError>> {
    let mut reader = Reader {
        inventory: AnsibleInventory::default(),
        errors: Vec::new(),
    };
    match &root.value {
        Y::Map(entries) => {
            if root.value.get("plugin").is_some() {
                return Err(vec![(
                    root.loc,
                    "this is an inventory plugin's configuration, outside the native subset; \
                     read it with `--ansible-inventory`"
                        .into(),
                )]);
            }
            for (key, value) in entries {
                reader.group(key, value);
            }
        }
        other => reader.errors.push((
            root.loc,
            format!(
                "a YAML inventory is a mapping of groups, not {}",
                other.kind()
            ),
        )),
    }
    if reader.errors.is_empty() {
        Ok(reader.inventory)
    } else {
        Err(reader.errors)
    }
}

struct Reader {
    inventory: AnsibleInventory,
    errors: Vec<LineError>,
}

impl Reader {
    /// One group and what it holds; returns its name.
    fn group(&mut self, key: &Node, data: &Node) -> Option<String> {
        let name = self.name(key, "group")?;
        self.inventory.add_group(&name, key.loc);
        let entries = match &data.value {
            Y::Null => return Some(name),
            Y::Map(entries) => entries,
            other => {
                self.errors.push((
                    data.loc,
                    format!(
                        "group `{name}` must be a mapping (hosts, vars, children), not {}",
                        other.kind()
                    ),
                ));
                return Some(name);
            }
        };
        for (section, value) in entries {
            let Some(section_name) = self.name(section, "section") else {
                continue;
            };
            let items = match self.section_items(&name, &section_name, value) {
                Some(items) => items,
                None => continue,
            };
            match section_name.as_str() {
                "vars" => {
                    for (var, value) in items {
                        if let Some(var) = self.name(&var, "variable")
                            && let Err(e) = self.inventory.set_group_var(&name, &var, json(&value))
                        {
                            self.errors.push((value.loc, e));
                        }
                    }
                }
                "children" => {
                    for (child, child_data) in items {
                        if let Some(child) = self.group(&child, &child_data)
                            && let Err(e) = self.inventory.add_child(&name, &child)
                        {
                            self.errors.push((child_data.loc, e));
                        }
                    }
                }
                "hosts" => {
                    for (host, vars) in items {
                        self.hosts(&name, &host, &vars);
                    }
                }
                other => self.errors.push((
                    section.loc,
                    format!("unexpected key `{other}` in group `{name}`: only `hosts`, `vars` and `children`"),
                )),
            }
        }
        Some(name)
    }

    /// A section's entries: a mapping, nothing, or one name standing for `{name: null}`.
    fn section_items(
        &mut self,
        group: &str,
        section: &str,
        value: &Node,
    ) -> Option<Vec<(Node, Node)>> {
        match &value.value {
            Y::Null => Some(Vec::new()),
            Y::Map(entries) => Some(entries.clone()),
            Y::Str(_) if section != "vars" => {
                Some(vec![(value.clone(), Node::new(Y::Null, value.loc))])
            }
            other => {
                self.errors.push((
                    value.loc,
                    format!(
                        "`{section}` of group `{group}` must be a mapping, not {}",
                        other.kind()
                    ),
                ));
                None
            }
        }
    }

    fn hosts(&mut self, group: &str, key: &Node, vars: &Node) {
        let Y::Str(host_pattern) = &key.value else {
            self.errors.push((
                key.loc,
                "a host name must be text: quote numbers and addresses".into(),
            ));
            return;
        };
        let expanded = pattern::expand(host_pattern).and_then(|(hosts, port)| {
            pattern::within_budget(self.inventory.host_count(), hosts.len())?;
            Ok((hosts, port))
        });
        let (hosts, port) = match expanded {
            Ok(expanded) => expanded,
            Err(e) => {
                self.errors.push((key.loc, e));
                return;
            }
        };
        let vars = match &vars.value {
            Y::Null => IndexMap::new(),
            Y::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| Some((self.name(k, "variable")?, json(v))))
                .collect(),
            other => {
                self.errors.push((
                    vars.loc,
                    format!(
                        "host `{host_pattern}` takes a mapping of vars, not {}",
                        other.kind()
                    ),
                ));
                return;
            }
        };
        for host in hosts {
            self.inventory
                .add_host(group, &host, port, vars.clone(), key.loc);
        }
    }

    /// A key as text (numbers too, as Ansible's group names may be); other keys are errors.
    fn name(&mut self, key: &Node, what: &str) -> Option<String> {
        match key.value.as_text() {
            Some(text) if !text.is_empty() => Some(text),
            _ => {
                self.errors
                    .push((key.loc, format!("a {what} name must be text")));
                None
            }
        }
    }
}

/// A YAML value as Ansible holds it, YAML 1.1 booleans included.
fn json(node: &Node) -> Value {
    match &node.value {
        Y::Str(s) => match s.as_str() {
            "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Value::Bool(true),
            "no" | "No" | "NO" | "off" | "Off" | "OFF" => Value::Bool(false),
            _ => Value::String(s.clone()),
        },
        Y::Seq(items) => Value::Array(items.iter().map(json).collect()),
        Y::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.value.as_text().unwrap_or_default(), json(v)))
                .collect(),
        ),
        _ => node.to_json(),
    }
}

/// Reads a YAML inventory from its text (a YAML syntax error is one error with its place).
pub fn parse_text(text: &str) -> Result<AnsibleInventory, Vec<LineError>> {
    let root = crate::yaml::parse(text, crate::yaml::Limits::INVENTORY)
        .map_err(|e| vec![(e.loc, e.message)])?;
    parse(&root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_children_hosts_and_vars() {
        let text = "all:\n  vars:\n    ntp: ntp.example.com\n  children:\n    web:\n      hosts:\n        web[01:02]:\n          http_port: 8080\n        web03:2222:\n      vars:\n        become: yes\n    db:\n      hosts: db1\n";
        let inv = parse_text(text).unwrap().into_inventory().unwrap();
        let web02 = &inv.hosts["web02"];
        assert_eq!(web02.vars["http_port"], 8080);
        assert_eq!(web02.vars["ntp"], "ntp.example.com");
        assert_eq!(web02.vars["become"], true);
        assert_eq!(inv.hosts["web03"].port, Some(2222));
        assert_eq!(inv.groups["web"].len(), 3);
        assert_eq!(inv.groups["db"][0].value, "db1");
    }

    #[test]
    fn outside_the_subset_is_an_error_with_its_line() {
        let errors = parse_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n").unwrap_err();
        assert!(errors[0].1.contains("--ansible-inventory"), "{errors:?}");
        let errors = parse_text("all:\n  hosts:\n    a:\n  host:\n    b:\n").unwrap_err();
        assert_eq!(errors[0].0.line, 4, "{errors:?}");
    }
}
