//! `ansible`: real `ansible-playbook` runs (ansible-core from `.ci/deps-ansible.sh`) against a
//! real sshd on loopback. The inventory's hosts all live at 127.0.0.1 under their own names; one
//! is made to fail, one is unreachable (a closed port).

use std::path::{Path, PathBuf};
use std::time::Duration;

use patchday_connectors::settings::AnsibleSettings;
use patchday_connectors::{BatchMember, ConnectorError, Context, Outputs, Secrets, builtin};
use serde_json::{Value, json};

use crate::support::{SshServer, ctx_with, free_port, wait_process_gone};

/// Where ansible-playbook is: `$PATCHDAY_TEST_ANSIBLE_BIN`, else the virtual environment
/// `.ci/deps-ansible.sh` makes.
pub fn ansible_bin() -> PathBuf {
    let dir = std::env::var_os("PATCHDAY_TEST_ANSIBLE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/patchday-ansible/bin"));
    assert!(
        dir.join("ansible-playbook").is_file(),
        "{} has no ansible-playbook: run `sudo bash .ci/deps-ansible.sh` (or set PATCHDAY_TEST_ANSIBLE_BIN)",
        dir.display()
    );
    dir
}

const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: Write the patch marker
      ansible.builtin.copy:
        content: "patched {{ inventory_hostname }} with {{ token }}\n"
        dest: "{{ out_dir }}/{{ inventory_hostname }}"
        mode: "0600"
    - name: Refuse on purpose
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} refuses: {{ token }}"
      when: refuse | default(false) | bool
"#;

const SLOW_PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: Hang
      ansible.builtin.shell: "echo $$ > {{ out_dir }}/{{ inventory_hostname }}.pid; exec sleep 3000"
"#;

/// The sshd, a folder with the inventory and playbooks, and a context set up for both.
struct Lab {
    server: SshServer,
    dir: tempfile::TempDir,
}

impl Lab {
    fn start() -> Lab {
        let server = SshServer::start();
        let dir = tempfile::tempdir().unwrap();
        let closed = free_port();
        let inventory = format!(
            "[all:vars]\nansible_host=127.0.0.1\nansible_python_interpreter=/usr/bin/python3\n\n\
             [web]\nweb1\nweb2 refuse=true\nweb3\n\n[down]\ndown1 ansible_port={closed}\n"
        );
        std::fs::write(dir.path().join("hosts.ini"), inventory).unwrap();
        std::fs::write(dir.path().join("patch.yml"), PLAYBOOK).unwrap();
        std::fs::write(dir.path().join("slow.yml"), SLOW_PLAYBOOK).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        Lab { server, dir }
    }

    fn ctx(&self) -> Context {
        let mut settings = self.server.settings();
        settings.ansible = AnsibleSettings {
            bin_dir: Some(ansible_bin()),
        };
        let mut ctx = ctx_with(settings, self.dir.path());
        ctx.ansible_inventory = Some(PathBuf::from("hosts.ini"));
        ctx.secrets = Secrets::new().with("token", "t0k3n-s3cret");
        ctx
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn inputs(&self, playbook: &str) -> Value {
        json!({
            "playbook": playbook,
            "extra_vars": { "out_dir": self.out().display().to_string(), "token": "t0k3n-s3cret" }
        })
    }

    fn members(&self, playbook: &str, names: &[&str]) -> Vec<BatchMember> {
        names
            .iter()
            .map(|name| BatchMember {
                name: name.to_string(),
                host: json!({ "name": name, "address": "127.0.0.1" })
                    .as_object()
                    .cloned()
                    .unwrap(),
                inputs: self.inputs(playbook),
            })
            .collect()
    }
}

async fn run_batch(
    lab: &Lab,
    ctx: &Context,
    playbook: &str,
    names: &[&str],
) -> Vec<Result<Outputs, ConnectorError>> {
    let connector = builtin("ansible").unwrap();
    let batch = connector.batch().expect("ansible runs batches");
    batch.execute_batch(lab.members(playbook, names), ctx).await
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[tokio::test]
async fn one_run_settles_each_host_of_the_batch_on_its_own() {
    let lab = Lab::start();
    let ctx = lab.ctx();
    let results = run_batch(&lab, &ctx, "patch.yml", &["web1", "web2", "down1", "web3"]).await;
    assert_eq!(results.len(), 4);

    let web1 = results[0].as_ref().expect("web1 succeeds");
    assert_eq!(web1["outcome"], "changed");
    assert_eq!(web1["changed_tasks"], json!(["Write the patch marker"]));
    let web3 = results[3].as_ref().expect("web3 succeeds");
    assert_eq!(web3["outcome"], "changed");

    match &results[1] {
        Err(ConnectorError::Retryable(m)) => assert_eq!(
            m, "failed at task `Refuse on purpose`: web2 refuses: ***",
            "the failing task and its message, the secret redacted"
        ),
        other => panic!("web2: {other:?}"),
    }
    match &results[2] {
        Err(ConnectorError::Retryable(m)) => assert!(
            m.starts_with("unreachable at task `Write the patch marker`:") && m.contains("refused"),
            "{m}"
        ),
        other => panic!("down1: {other:?}"),
    }
    // The secret reached the hosts through the extra vars file.
    assert_eq!(
        read(&lab.out().join("web1")).as_deref(),
        Some("patched web1 with t0k3n-s3cret\n")
    );
    assert!(read(&lab.out().join("down1")).is_none());

    // Only the hosts named run: a second batch of web1 alone changes nothing now.
    std::fs::remove_file(lab.out().join("web3")).unwrap();
    let again = run_batch(&lab, &ctx, "patch.yml", &["web1"]).await;
    assert_eq!(again[0].as_ref().unwrap()["outcome"], "ok");
    assert!(
        read(&lab.out().join("web3")).is_none(),
        "web3 was not in the limit"
    );
    assert!(
        lab.server.connections_closed().await,
        "no SSH connection left open"
    );
}

#[tokio::test]
async fn a_broken_playbook_fails_every_host_fatally_with_the_reason() {
    let lab = Lab::start();
    std::fs::write(
        lab.dir.path().join("broken.yml"),
        "- hosts: all\n  tasks: [ {\n",
    )
    .unwrap();
    let results = run_batch(&lab, &lab.ctx(), "broken.yml", &["web1", "web3"]).await;
    for result in &results {
        match result {
            Err(ConnectorError::Fatal(m)) => {
                assert!(m.contains("before any play recap"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_host_outside_the_inventory_is_a_fatal_error_of_its_own() {
    let lab = Lab::start();
    let results = run_batch(&lab, &lab.ctx(), "patch.yml", &["web1", "ghost"]).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(&results[1], Err(ConnectorError::Fatal(m)) if m.contains("did not run on `ghost`")),
        "{:?}",
        results[1]
    );
}

#[tokio::test]
async fn cancelling_mid_playbook_leaves_no_process_behind() {
    let lab = Lab::start();
    let ctx = lab.ctx();
    let cancel = ctx.cancel.clone();
    let pid_file = lab.out().join("web1.pid");
    let run = run_batch(&lab, &ctx, "slow.yml", &["web1", "web3"]);
    let watch = async {
        // The remote task writes its pid as it starts: the signal that the playbook is mid-run.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(pid) = read(&pid_file).and_then(|t| t.trim().parse::<u32>().ok()) {
                cancel.cancel();
                return pid;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the task never started"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (results, remote_pid) = tokio::join!(run, watch);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(ConnectorError::Cancelled))),
        "{results:?}"
    );
    assert!(
        wait_process_gone(remote_pid).await,
        "the remote task {remote_pid} was killed"
    );
    assert!(
        lab.server.connections_closed().await,
        "the SSH connections (control masters included) were closed"
    );
}

#[tokio::test]
async fn the_timeout_stops_the_run_and_fails_its_hosts_retryably() {
    let lab = Lab::start();
    let mut inputs = lab.inputs("slow.yml");
    inputs["timeout"] = json!("3s");
    let members: Vec<BatchMember> = lab
        .members("slow.yml", &["web1"])
        .into_iter()
        .map(|mut m| {
            m.inputs = inputs.clone();
            m
        })
        .collect();
    let connector = builtin("ansible").unwrap();
    let results = connector
        .batch()
        .unwrap()
        .execute_batch(members, &lab.ctx())
        .await;
    assert!(
        matches!(&results[0], Err(ConnectorError::Retryable(m)) if m.contains("timed out after 3s")),
        "{results:?}"
    );
    assert!(lab.server.connections_closed().await);
}

#[tokio::test]
async fn a_step_without_for_each_runs_the_plays_hosts_and_fails_if_one_fails() {
    let lab = Lab::start();
    let mut inputs = lab.inputs("patch.yml");
    inputs["limit"] = json!("web");
    let err = builtin("ansible")
        .unwrap()
        .execute(inputs, &lab.ctx())
        .await
        .unwrap_err();
    match err {
        ConnectorError::Retryable(m) => {
            assert!(
                m.starts_with("1 host(s) failed: web2: failed at task"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(read(&lab.out().join("web3")).is_some());
}
