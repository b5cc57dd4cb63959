//! Ansible inventories as patchday host sources (DESIGN §3, `inventory: { ansible: PATH }`).
//!
//! Three readers fill one [`AnsibleInventory`] the way Ansible's own inventory does: [`ini`]
//! and [`yaml`] parse the two static formats natively (no Ansible needed), [`list`] reads the
//! JSON of `ansible-inventory -i SRC --list` (dynamic inventories, plugins, folders). Then
//! [`AnsibleInventory::into_inventory`] turns it into patchday's [`Inventory`]:
//!
//! - every group is a patchday group of its hosts and its children's hosts, recursively;
//!   `all` has every host, `ungrouped` those in no other group;
//! - a host's vars are merged as Ansible merges them: group vars from the shallowest group to
//!   the deepest (ties by `ansible_group_priority`, then name), then the host's own;
//! - `ansible_host` (default: the host's name), `ansible_port` and `ansible_user` become the
//!   host's `address`, `port` and `user`; the merged vars are `{{host.vars.*}}`, except
//!   passwords (`ansible_password`, `ansible_become_password`, ...) and vault-encrypted values,
//!   which stay with Ansible.
//!
//! The native subset is documented in the README ("Ansible inventories"); anything outside it is
//! an error naming the file and line, never a silent difference from Ansible.

pub mod ini;
pub mod list;
pub mod pattern;
pub mod yaml;

#[cfg(test)]
mod oracle_tests;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Host, Inventory};
use crate::yaml::{Loc, Located};

/// Vars that hold passwords: Ansible reads them, patchday never carries them into templates.
const SECRET_VARS: &[&str] = &[
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_sudo_pass",
    "ansible_sudo_password",
];

/// An Ansible inventory as Ansible's own model holds it: groups with their direct hosts,
/// children and vars, and hosts with their own vars.
#[derive(Debug, Clone)]
pub struct AnsibleInventory {
    groups: IndexMap<String, Group>,
    hosts: IndexMap<String, HostDef>,
}

#[derive(Debug, Clone, Default)]
struct Group {
    hosts: Vec<String>,
    children: Vec<String>,
    parents: Vec<String>,
    vars: IndexMap<String, Value>,
    priority: i64,
    loc: Loc,
}

#[derive(Debug, Clone, Default)]
struct HostDef {
    vars: IndexMap<String, Value>,
    loc: Loc,
}

impl Default for AnsibleInventory {
    fn default() -> Self {
        let mut inventory = AnsibleInventory {
            groups: IndexMap::new(),
            hosts: IndexMap::new(),
        };
        inventory.add_group("all", Loc::default());
        inventory.add_group("ungrouped", Loc::default());
        inventory
    }
}

impl AnsibleInventory {
    /// Adds `name` unless it exists (its first location is kept).
    pub fn add_group(&mut self, name: &str, loc: Loc) {
        self.groups
            .entry(name.to_string())
            .or_insert_with(|| Group {
                priority: 1,
                loc,
                ..Group::default()
            });
    }

    /// How many hosts are defined.
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// Adds `host` to `group` (made if missing) with `vars` set on the host; a `port` from the
    /// host pattern (`web1:2222`) is its `ansible_port`.
    pub fn add_host(
        &mut self,
        group: &str,
        host: &str,
        port: Option<u16>,
        vars: IndexMap<String, Value>,
        loc: Loc,
    ) {
        self.add_group(group, loc);
        let def = self
            .hosts
            .entry(host.to_string())
            .or_insert_with(|| HostDef {
                loc,
                ..HostDef::default()
            });
        if let Some(port) = port {
            def.vars.insert("ansible_port".into(), Value::from(port));
        }
        def.vars.extend(vars);
        let members = &mut self.groups[group].hosts;
        if !members.iter().any(|h| h == host) {
            members.push(host.to_string());
        }
    }

    /// Sets a group var; `ansible_group_priority` sets the group's merge priority instead.
    pub fn set_group_var(&mut self, group: &str, key: &str, value: Value) -> Result<(), String> {
        let Some(g) = self.groups.get_mut(group) else {
            return Err(format!("group `{group}` is not defined"));
        };
        if key == "ansible_group_priority" {
            g.priority = as_int(&value).ok_or_else(|| {
                format!("`ansible_group_priority` must be a whole number, not {value}")
            })?;
        } else {
            g.vars.insert(key.to_string(), value);
        }
        Ok(())
    }

    /// Makes `child` a child of `parent` (both must exist); refuses a loop, as Ansible does.
    pub fn add_child(&mut self, parent: &str, child: &str) -> Result<(), String> {
        if parent == child {
            return Err(format!("group `{child}` cannot be a child of itself"));
        }
        if self.ancestors(parent).contains(&child.to_string()) {
            return Err(format!(
                "adding group `{child}` as a child of `{parent}` makes a loop"
            ));
        }
        let p = &mut self.groups[parent];
        if !p.children.iter().any(|c| c == child) {
            p.children.push(child.to_string());
        }
        let c = &mut self.groups[child];
        if !c.parents.iter().any(|p| p == parent) {
            c.parents.push(parent.to_string());
        }
        Ok(())
    }

    /// Every group above `group`.
    fn ancestors(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut todo = vec![group.to_string()];
        while let Some(g) = todo.pop() {
            for parent in self
                .groups
                .get(&g)
                .map(|g| g.parents.clone())
                .unwrap_or_default()
            {
                if !out.contains(&parent) {
                    out.push(parent.clone());
                    todo.push(parent);
                }
            }
        }
        out
    }

    /// What Ansible does once a source is read: groups without a parent become children of
    /// `all`, and hosts in no group but `all` go to `ungrouped`.
    pub fn reconcile(&mut self) {
        let orphans: Vec<String> = self
            .groups
            .iter()
            .filter(|(name, g)| *name != "all" && g.parents.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        for group in orphans {
            let _ = self.add_child("all", &group);
        }
        let all_hosts: Vec<String> = self.hosts.keys().cloned().collect();
        let grouped: Vec<String> = self
            .groups
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "all" | "ungrouped"))
            .flat_map(|(_, g)| g.hosts.iter().cloned())
            .collect();
        let ungrouped = &mut self.groups["ungrouped"].hosts;
        ungrouped.retain(|h| !grouped.contains(h));
        for host in all_hosts {
            if !grouped.contains(&host) && !ungrouped.contains(&host) {
                ungrouped.push(host);
            }
        }
        self.groups["all"].hosts.clear();
    }

    /// A group's depth below `all` (the longest way down from it).
    fn depth(&self, group: &str) -> usize {
        self.groups
            .get(group)
            .map(|g| {
                g.parents
                    .iter()
                    .map(|p| self.depth(p) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// The hosts of `group` and of its descendants, each once: its own first, then each
    /// child's in order.
    pub fn members(&self, group: &str) -> Vec<String> {
        if group == "all" {
            return self.hosts.keys().cloned().collect();
        }
        let mut out: Vec<String> = Vec::new();
        let mut queue = vec![group.to_string()];
        let mut seen = vec![group.to_string()];
        while !queue.is_empty() {
            let g = queue.remove(0);
            let Some(def) = self.groups.get(&g) else {
                continue;
            };
            for host in &def.hosts {
                if !out.contains(host) {
                    out.push(host.clone());
                }
            }
            for child in &def.children {
                if !seen.contains(child) {
                    seen.push(child.clone());
                    queue.push(child.clone());
                }
            }
        }
        out
    }

    /// The groups `host` belongs to, directly or through children, `all` included.
    fn groups_of(&self, host: &str) -> Vec<String> {
        let mut out = vec!["all".to_string()];
        for (name, group) in &self.groups {
            if group.hosts.iter().any(|h| h == host) {
                for g in std::iter::once(name.clone()).chain(self.ancestors(name)) {
                    if !out.contains(&g) {
                        out.push(g);
                    }
                }
            }
        }
        out
    }

    /// A host's vars as Ansible resolves them: its groups' vars from the shallowest to the
    /// deepest (then by priority, then name), then its own.
    pub fn host_vars(&self, host: &str) -> IndexMap<String, Value> {
        let mut groups = self.groups_of(host);
        groups.sort_by_key(|g| (self.depth(g), self.groups[g.as_str()].priority, g.clone()));
        let mut vars = IndexMap::new();
        for g in &groups {
            vars.extend(self.groups[g.as_str()].vars.clone());
        }
        if let Some(def) = self.hosts.get(host) {
            vars.extend(def.vars.clone());
        }
        vars
    }

    /// Every host name, in the order they were first defined.
    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    /// Every group name.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// patchday's inventory of these hosts and groups. `Err` names a host whose `ansible_port`
    /// is not a port, with where the host was defined.
    pub fn into_inventory(mut self) -> Result<Inventory, (Loc, String)> {
        self.reconcile();
        let mut inventory = Inventory::default();
        for (name, def) in &self.hosts {
            let host = self.patchday_host(name).map_err(|e| (def.loc, e))?;
            inventory
                .hosts
                .insert(Located::new(name.clone(), def.loc), host);
        }
        for (name, group) in &self.groups {
            let members = self
                .members(name)
                .into_iter()
                .map(|h| {
                    let loc = self.hosts.get(&h).map(|d| d.loc).unwrap_or_default();
                    Located::new(h, loc)
                })
                .collect();
            inventory
                .groups
                .insert(Located::new(name.clone(), group.loc), members);
        }
        Ok(inventory)
    }

    fn patchday_host(&self, name: &str) -> Result<Host, String> {
        let vars = self.host_vars(name);
        let text = |key: &str| match vars.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let port = match vars.get("ansible_port") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                as_int(value)
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        format!("host `{name}`: ansible_port {value} is not a port (1-65535)")
                    })?,
            ),
        };
        Ok(Host {
            address: text("ansible_host").unwrap_or_else(|| name.to_string()),
            vm: None,
            os: None,
            criticality: None,
            user: text("ansible_user"),
            port,
            vars: vars
                .into_iter()
                .filter(|(key, value)| !SECRET_VARS.contains(&key.as_str()) && !is_vaulted(value))
                .collect(),
        })
    }
}

/// A vault-encrypted value: `!vault` text, or `ansible-inventory`'s `{"__ansible_vault": ...}`.
fn is_vaulted(value: &Value) -> bool {
    match value {
        Value::String(s) => s.trim_start().starts_with("$ANSIBLE_VAULT;"),
        Value::Object(map) => map.contains_key("__ansible_vault"),
        _ => false,
    }
}

/// A whole number, written as a number or as digits.
fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, Value)]) -> IndexMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn deeper_groups_win_then_priority_then_name_then_the_host() {
        let mut inv = AnsibleInventory::default();
        let loc = Loc::default();
        inv.add_host("web", "w1", None, vars(&[("own", json!("host"))]), loc);
        inv.add_group("prod", loc);
        inv.add_group("eu", loc);
        inv.add_child("prod", "web").unwrap();
        inv.set_group_var("all", "x", json!("all")).unwrap();
        inv.set_group_var("prod", "x", json!("prod")).unwrap();
        inv.set_group_var("prod", "y", json!("prod")).unwrap();
        inv.set_group_var("web", "y", json!("web")).unwrap();
        inv.set_group_var("web", "own", json!("web")).unwrap();
        inv.set_group_var("eu", "z", json!("eu")).unwrap();
        inv.add_host("eu", "w1", None, IndexMap::new(), loc);
        inv.reconcile();
        let merged = inv.host_vars("w1");
        assert_eq!(merged["x"], "prod");
        assert_eq!(merged["y"], "web");
        assert_eq!(merged["own"], "host");
        assert_eq!(merged["z"], "eu");
        assert_eq!(inv.members("prod"), vec!["w1"]);
        assert!(inv.add_child("web", "prod").is_err(), "a loop is refused");
    }

    #[test]
    fn addresses_ports_and_users_come_from_ansible_vars_and_passwords_stay_out() {
        let mut inv = AnsibleInventory::default();
        let loc = Loc::default();
        inv.add_host(
            "db",
            "db1",
            Some(2222),
            vars(&[
                ("ansible_host", json!("10.0.0.5")),
                ("ansible_user", json!("deploy")),
                ("ansible_become_password", json!("hunter2")),
                ("secret", json!("$ANSIBLE_VAULT;1.1;AES256\n6162")),
            ]),
            loc,
        );
        inv.add_host("ungrouped", "plain", None, IndexMap::new(), loc);
        let inventory = inv.into_inventory().unwrap();
        let db1 = &inventory.hosts["db1"];
        assert_eq!(db1.address, "10.0.0.5");
        assert_eq!(db1.port, Some(2222));
        assert_eq!(db1.user.as_deref(), Some("deploy"));
        assert!(!db1.vars.contains_key("ansible_become_password"));
        assert!(!db1.vars.contains_key("secret"));
        assert_eq!(inventory.hosts["plain"].address, "plain");
        let names = |g: &str| -> Vec<String> {
            inventory.groups[g]
                .iter()
                .map(|h| h.value.clone())
                .collect()
        };
        assert_eq!(names("all"), vec!["db1", "plain"]);
        assert_eq!(names("ungrouped"), vec!["plain"]);
    }
}
