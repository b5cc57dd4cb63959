//! The JSON of `ansible-inventory -i SRC --list`: what Ansible itself made of any source
//! (dynamic inventories, plugins, folders with `group_vars/`). Groups list their direct hosts
//! and children; `_meta.hostvars` holds each host's vars already merged, so they become the
//! hosts' own vars here and merge to themselves.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::AnsibleInventory;
use crate::yaml::Loc;

#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "_meta", default)]
    meta: Meta,
    #[serde(flatten)]
    groups: IndexMap<String, ListedGroup>,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    hostvars: IndexMap<String, IndexMap<String, Value>>,
}

#[derive(Deserialize, Default)]
struct ListedGroup {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    children: Vec<String>,
    #[serde(default)]
    vars: IndexMap<String, Value>,
}

/// Reads `ansible-inventory --list` output.
pub fn parse(json: &str) -> Result<AnsibleInventory, String> {
    let listed: Listed = serde_json::from_str(json)
        .map_err(|e| format!("`ansible-inventory --list` printed no inventory JSON: {e}"))?;
    let mut inventory = AnsibleInventory::default();
    let loc = Loc::default();
    for name in listed.groups.keys() {
        inventory.add_group(name, loc);
    }
    for (name, group) in &listed.groups {
        for (key, value) in &group.vars {
            inventory.set_group_var(name, key, value.clone())?;
        }
        for child in &group.children {
            inventory.add_group(child, loc);
            inventory.add_child(name, child)?;
        }
        for host in &group.hosts {
            let vars = listed.meta.hostvars.get(host).cloned().unwrap_or_default();
            inventory.add_host(name, host, None, vars, loc);
        }
    }
    for (host, vars) in &listed.meta.hostvars {
        inventory.add_host("ungrouped", host, None, vars.clone(), loc);
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_children_and_merged_hostvars() {
        let json = r#"{"_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1", "x": 1}, "lone": {}}},
            "all": {"children": ["ungrouped", "prod"]}, "prod": {"children": ["web"]},
            "web": {"hosts": ["w1"]}, "ungrouped": {"hosts": ["lone"]}}"#;
        let inv = parse(json).unwrap().into_inventory().unwrap();
        assert_eq!(inv.hosts["w1"].address, "10.0.0.1");
        assert_eq!(inv.groups["prod"][0].value, "w1");
        assert_eq!(inv.groups["ungrouped"][0].value, "lone");
        assert!(parse("not json").is_err());
    }
}
