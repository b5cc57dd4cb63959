//! Ansible through patchday, with a real ansible-core (`.ci/deps-ansible.sh`) and the real sshd
//! of the local test hosts (`demo/local-hosts.sh`):
//!
//! - the README's example: `runbooks/demo/linux-weekly-local.yaml` triggered on the daemon, its
//!   hosts from an Ansible inventory, the real `playbooks/linux-patch.yml` in check mode, waves
//!   by group, one row per host with Ansible's outcome;
//! - waves, failure budgets and retries with `patchday run`: one ansible-playbook run per
//!   batch, `max_failures` stopping the next wave, a retry running only the failed host, an
//!   excepted host left out, the failing task named in the host's row and the audit log;
//! - `--ansible-inventory`: a folder with `group_vars/`, outside the native subset (an error at
//!   the runbook's line), read through `ansible-inventory --list`.

use std::path::Path;

use patchday_tests::daemon::{audit_events, poll};
use patchday_tests::{assert_exit, patchday, stderr, stdout};
use serde_json::Value;

use crate::demo::{Hosts, LIMIT, Served, demo_lock};

/// How long a run of several real playbooks may take.
const PLAYBOOKS_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The rows of `step` in a run's status JSON, by host.
fn host_rows<'a>(status: &'a Value, step: &str) -> Vec<&'a Value> {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == step && s["host"] != "")
        .collect()
}

#[test]
fn the_weekly_linux_example_runs_through_the_daemon_against_the_local_hosts() {
    let _lock = demo_lock();
    let state = patchday_tests::scratch("ansible-weekly");
    let hosts = Hosts::start(&state);
    let config = std::fs::read_to_string(hosts.path("patchday.toml")).unwrap();
    assert!(config.contains("[ansible]\nbin_dir = "), "{config}");
    let served = Served::start(&hosts, None, false);

    let out = served.cli(&hosts, &["trigger", "linux-weekly-local"]);
    assert_exit(&out, 0);
    let said = stdout(&out);
    let run = said
        .strip_prefix("run ")
        .and_then(|rest| rest.split_once(" started: linux-weekly-local"))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("{said}"));
    // Three real playbook runs (facts, apt's simulation of this machine's upgrades) on a
    // shared machine: minutes, not the daemon tests' usual 90 s.
    let status: Value = poll("the run to finish", PLAYBOOKS_LIMIT, || {
        let out = served.cli(&hosts, &["status", &run, "--format", "json"]);
        let status: Value = serde_json::from_str(&stdout(&out)).ok()?;
        (status["run"]["state"] != "running").then_some(status)
    });
    assert_eq!(status["run"]["state"], "succeeded", "{status:#}");
    // Waves by group: the canary, then the nodes one at a time, each host its own row with
    // what Ansible reported for it (check mode: nothing changed on this machine).
    let canary = host_rows(&status, "patch-canary");
    assert_eq!(canary.len(), 1);
    assert_eq!(canary[0]["host"], "test1");
    let nodes = host_rows(&status, "patch-nodes");
    let names: Vec<&str> = nodes.iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["node1", "node2"]);
    for row in canary.iter().chain(&nodes) {
        assert_eq!(row["state"], "succeeded", "{row}");
        let outputs = &row["outputs"];
        assert_eq!(outputs["check"], true, "{row}");
        assert!(
            matches!(outputs["outcome"].as_str(), Some("ok" | "changed")),
            "{row}"
        );
        assert!(
            outputs["ok"].as_u64().unwrap() >= 2,
            "facts and the reboot probe: {row}"
        );
    }
    let finished = |host: &str| {
        nodes
            .iter()
            .find(|r| r["host"] == host)
            .and_then(|r| r["finished_at"].as_str())
            .unwrap()
            .to_string()
    };
    let started_node2 = nodes.iter().find(|r| r["host"] == "node2").unwrap()["started_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        finished("node1") <= started_node2,
        "node2 after node1: batch 1"
    );
    for smoke in ["smoke-canary", "smoke-nodes"] {
        assert!(
            host_rows(&status, smoke)
                .iter()
                .all(|r| r["state"] == "succeeded")
        );
    }
    // A triggered run is a manual run: its report names no cycle.
    hosts.await_mail("Patch report: linux-weekly-local", 1);
}

const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the run's hosts
      ansible.builtin.lineinfile:
        path: "{{ out }}/invocations.log"
        line: "{{ ansible_play_hosts_all | join(',') }} {{ 999999999 | random }}"
        create: true
      delegate_to: localhost
      run_once: true
    - name: Count this host's runs
      ansible.builtin.shell: "echo run >> {{ out }}/{{ inventory_hostname }}.runs"
    - name: Fail the first time
      ansible.builtin.shell: "test -e {{ out }}/{{ inventory_hostname }}.seen || { touch {{ out }}/{{ inventory_hostname }}.seen; echo first attempt refused >&2; exit 3; }"
      when: flaky | default(false) | bool
    - name: Refuse
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} is broken"
      when: broken | default(false) | bool
"#;

/// The runbook folder: an Ansible inventory reaching the demo sshd, exceptions, the playbook.
fn write_lab(dir: &Path, hosts: &Hosts) {
    let ssh = hosts.path("ssh");
    let user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let inventory = format!(
        "[fleet]\na1\nflaky flaky=true\na3\nbroken broken=true\na4\na5\n\n[fleet:vars]\n\
         ansible_host=127.0.0.1\nansible_port={port}\nansible_user={user}\n\
         ansible_ssh_private_key_file={key}\n\
         ansible_ssh_common_args='-o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null'\n\
         ansible_python_interpreter=/usr/bin/python3\n",
        port = hosts.port("ssh"),
        user = user.trim(),
        key = ssh.join("user_key").display(),
        known = ssh.join("known_hosts").display(),
    );
    std::fs::write(dir.join("hosts.ini"), inventory).unwrap();
    std::fs::write(
        dir.join("exceptions.yaml"),
        "exceptions:\n  - { host: a5, until: 2099-12-31, reason: vendor hold, approved_by: ciso@example.com }\n",
    )
    .unwrap();
    std::fs::write(dir.join("patch.yml"), PLAYBOOK).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let runbook = format!(
        "name: ansible-waves\ninventory: {{ ansible: hosts.ini, exceptions: exceptions.yaml }}\n\
         steps:\n  patch:\n    uses: ansible\n    for_each: {{ group: fleet, batch: 2, max_failures: 0 }}\n\
         \x20   retry: {{ attempts: 2, backoff: 1s }}\n\
         \x20   with: {{ playbook: patch.yml, extra_vars: {{ out: \"{}\" }} }}\n",
        dir.join("out").display()
    );
    std::fs::write(dir.join("waves.yaml"), runbook).unwrap();
}

#[test]
fn waves_stop_at_max_failures_and_a_retry_runs_only_the_failed_host() {
    let _lock = demo_lock();
    let state = patchday_tests::scratch("ansible-waves-hosts");
    let hosts = Hosts::start(&state);
    let dir = patchday_tests::scratch("ansible-waves");
    write_lab(&dir, &hosts);
    let database = format!("sqlite://{}", dir.join("runs.db").display());
    // From the runbook's folder, named relatively: Ansible runs there, paths must still hold.
    let out = patchday()
        .current_dir(&dir)
        .args(["run", "waves.yaml"])
        .args(["--database", &database])
        .env("PATCHDAY_ANSIBLE_BIN_DIR", ansible_bin())
        .output()
        .unwrap();
    let progress = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the run fails:\n{progress}{}",
        stderr(&out)
    );

    // One ansible-playbook run per batch; the retries ran only the host that failed.
    let invocations: Vec<String> = std::fs::read_to_string(dir.join("out/invocations.log"))
        .unwrap()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        invocations,
        ["a1,flaky", "flaky", "a3,broken", "broken"],
        "{progress}"
    );
    let runs = |host: &str| {
        std::fs::read_to_string(dir.join(format!("out/{host}.runs")))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert_eq!(
        [
            runs("a1"),
            runs("flaky"),
            runs("a3"),
            runs("broken"),
            runs("a4"),
            runs("a5")
        ],
        [1, 2, 1, 2, 0, 0]
    );

    // Each host's row, in the audit log: the failed task named, the next wave skipped by the
    // failure budget, the excepted host left out.
    let events = audit_events(&database);
    let about = |action: &str, host: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["action"] == action && e["details"]["host"] == host)
            .cloned()
            .collect()
    };
    let failed = about("step.failed", "broken");
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(
        failed[0]["details"]["reason"],
        "failed at task `Refuse`: broken is broken"
    );
    let retried = about("step.retrying", "flaky");
    assert!(
        retried[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("failed at task `Fail the first time`: non-zero return code; rc=3; stderr: first attempt refused"),
        "{retried:?}"
    );
    assert_eq!(about("step.succeeded", "flaky").len(), 1);
    assert_eq!(
        about("step.succeeded", "a1")[0]["details"]["outputs"]["outcome"],
        "changed"
    );
    let skipped = about("step.skipped", "a4");
    assert!(
        skipped[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("more than max_failures 0"),
        "{skipped:?}"
    );
    assert_eq!(about("step.excepted", "a5").len(), 1);
    // No ansible-playbook or SSH connection of the run is left.
    poll("the run's processes to be gone", LIMIT, || {
        (!processes_mention(&dir.display().to_string())).then_some(())
    });
}

/// `$PATCHDAY_TEST_ANSIBLE_BIN`, else `.ci/deps-ansible.sh`'s virtual environment.
fn ansible_bin() -> String {
    let dir = std::env::var("PATCHDAY_TEST_ANSIBLE_BIN")
        .unwrap_or_else(|_| "/opt/patchday-ansible/bin".to_string());
    assert!(
        Path::new(&dir).join("ansible-playbook").is_file(),
        "{dir} has no ansible-playbook: run `sudo bash .ci/deps-ansible.sh`"
    );
    dir
}

/// Whether a live process has `text` in its command line.
fn processes_mention(text: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(text)
                })
                .unwrap_or(false)
        })
}

#[test]
fn a_folder_with_group_vars_is_read_through_ansible_inventory_when_asked() {
    let dir = patchday_tests::scratch("ansible-list");
    std::fs::create_dir_all(dir.join("inventory/group_vars")).unwrap();
    std::fs::write(dir.join("inventory/hosts.ini"), "[web]\nweb[1:2]\n").unwrap();
    std::fs::write(
        dir.join("inventory/group_vars/web.yml"),
        "site: from-group-vars\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("folder.yaml"),
        "name: folder\ninventory: { ansible: inventory }\nsteps:\n  greet:\n    uses: noop\n    \
         for_each: { group: web }\n    with: { message: \"{{host.name}} at {{host.vars.site}}\" }\n",
    )
    .unwrap();
    let runbook = dir.join("folder.yaml");
    let runbook = runbook.to_str().unwrap();

    // Natively: a folder is outside the subset, said at the runbook's line.
    let out = patchday().args(["validate", runbook]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("folder.yaml:2:")
            && stderr(&out).contains("it is a folder, not a file")
            && stderr(&out).contains("--ansible-inventory"),
        "{}",
        stderr(&out)
    );

    // Through ansible-inventory: the hosts and their group_vars.
    let out = patchday()
        .args(["--ansible-inventory", "simulate", runbook])
        .env("PATCHDAY_ANSIBLE_BIN_DIR", ansible_bin())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let timeline = stdout(&out);
    for host in ["web1", "web2"] {
        assert!(
            timeline.contains(&format!("would do nothing ({host} at from-group-vars)")),
            "{timeline}"
        );
    }
}
