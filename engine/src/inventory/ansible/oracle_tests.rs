//! The native INI and YAML readers against Ansible itself: every inventory of `corpus/` is read
//! natively and through `ansible-inventory -i FILE --list` (ansible-core from
//! `.ci/deps-ansible.sh`), and both must give the same hosts, the same group members and the
//! same merged vars for every host. Without ansible-inventory the test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{AnsibleInventory, ini, list, yaml};

fn ansible_inventory() -> PathBuf {
    let dir = std::env::var_os("PATCHDAY_TEST_ANSIBLE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/patchday-ansible/bin"));
    let program = dir.join("ansible-inventory");
    assert!(
        program.is_file(),
        "{} is missing: run `sudo bash .ci/deps-ansible.sh` (or set PATCHDAY_TEST_ANSIBLE_BIN)",
        program.display()
    );
    program
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/inventory/ansible/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the corpus is in {}", dir.display());
    files
}

fn native(path: &Path) -> AnsibleInventory {
    let text = std::fs::read_to_string(path).unwrap();
    let parsed = if crate::inventory::load::is_yaml(path) {
        yaml::parse_text(&text)
    } else {
        ini::parse(&text)
    };
    parsed.unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

fn listed(program: &Path, path: &Path) -> AnsibleInventory {
    let out = std::process::Command::new(program)
        .arg("-i")
        .arg(path)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "1")
        .env("ANSIBLE_INVENTORY_ENABLED", "ini,yaml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    list::parse(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

/// Hosts with their merged vars, and groups with their members, order of vars aside.
type Shape = (
    BTreeMap<String, BTreeMap<String, Value>>,
    BTreeMap<String, Vec<String>>,
);

fn shape(mut inventory: AnsibleInventory) -> Shape {
    inventory.reconcile();
    let hosts = inventory
        .host_names()
        .map(|h| (h.to_string(), inventory.host_vars(h).into_iter().collect()))
        .collect();
    let groups = inventory
        .group_names()
        .map(|g| {
            let mut members = inventory.members(g);
            members.sort();
            (g.to_string(), members)
        })
        .collect();
    (hosts, groups)
}

#[test]
fn native_readers_agree_with_ansible_inventory_on_the_corpus() {
    let program = ansible_inventory();
    for path in corpus() {
        let (native_hosts, native_groups) = shape(native(&path));
        let (ansible_hosts, ansible_groups) = shape(listed(&program, &path));
        let file = path.display();
        assert_eq!(
            native_hosts.keys().collect::<Vec<_>>(),
            ansible_hosts.keys().collect::<Vec<_>>(),
            "{file}: hosts"
        );
        for (host, vars) in &ansible_hosts {
            assert_eq!(&native_hosts[host], vars, "{file}: vars of {host}");
        }
        // Ansible lists a group that has neither hosts nor children under `all` only; compare
        // the groups that have members.
        let non_empty = |groups: &BTreeMap<String, Vec<String>>| -> BTreeMap<String, Vec<String>> {
            groups
                .iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(g, m)| (g.clone(), m.clone()))
                .collect()
        };
        assert_eq!(
            non_empty(&native_groups),
            non_empty(&ansible_groups),
            "{file}: groups"
        );
    }
}
