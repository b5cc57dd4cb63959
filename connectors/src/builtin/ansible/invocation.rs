//! One `ansible-playbook` invocation: a private folder for it (the callback plugin, the extra
//! vars file, the `--limit` file, a generated inventory, the results, the SSH control
//! sockets), the command line and environment, and the clean-up of the SSH connections it left.
//!
//! The folder is made fresh for each invocation with mode 0700 and removed afterwards; what is
//! written there may hold secrets (extra vars), and nothing of it appears on the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::inputs::AnsibleInputs;
use crate::process::ProcessSpec;
use crate::runtime::{BatchMember, ConnectorError, Context};

/// The callback plugin, shipped in the binary.
const CALLBACK_PLUGIN: &str = include_str!("patchday_results.py");
/// Its file name (the plugin's name is the file's stem).
const CALLBACK_FILE: &str = "patchday_results.py";

/// The private folder of one invocation and what was written into it.
pub struct Workspace {
    dir: tempfile::TempDir,
    /// `-i`: the given source, or a generated inventory of the batch.
    inventory: PathBuf,
}

impl Workspace {
    /// Makes the folder and writes the plugin, the extra vars, the limit and (when there is no
    /// Ansible inventory) an inventory of `members`.
    pub fn prepare(
        inputs: &AnsibleInputs,
        members: &[BatchMember],
        ctx: &Context,
    ) -> Result<Workspace, ConnectorError> {
        let io = |what: &str, e: std::io::Error| {
            ConnectorError::Fatal(format!("ansible: cannot write {what}: {e}"))
        };
        let dir = tempfile::Builder::new()
            .prefix("patchday-ansible-")
            .tempdir()
            .map_err(|e| io("a private folder", e))?;
        let plugins = dir.path().join("callback_plugins");
        std::fs::create_dir(&plugins).map_err(|e| io("the callback plugin", e))?;
        std::fs::write(plugins.join(CALLBACK_FILE), CALLBACK_PLUGIN)
            .map_err(|e| io("the callback plugin", e))?;
        std::fs::create_dir(dir.path().join("cp")).map_err(|e| io("the control folder", e))?;
        let extra_vars = serde_json::to_vec(&inputs.extra_vars).unwrap_or_default();
        write_private(&dir.path().join("extra-vars.json"), &extra_vars)
            .map_err(|e| io("the extra vars", e))?;
        if !members.is_empty() {
            let limit: String = members.iter().map(|m| format!("{}\n", m.name)).collect();
            write_private(&dir.path().join("limit"), limit.as_bytes())
                .map_err(|e| io("the limit file", e))?;
        }
        let inventory = match (&inputs.inventory, &ctx.ansible_inventory) {
            (Some(given), _) => absolute(&ctx.resolve_path(given)),
            (None, Some(source)) => absolute(&ctx.base_dir.join(source)),
            (None, None) if members.is_empty() => {
                return Err(ConnectorError::Fatal(
                    "ansible: give `inventory`: the runbook's inventory is not an Ansible one \
                     and the step has no `for_each` to take hosts from"
                        .into(),
                ));
            }
            (None, None) => {
                let path = dir.path().join("inventory.yml");
                let text =
                    serde_json::to_vec_pretty(&generated_inventory(members)).unwrap_or_default();
                write_private(&path, &text).map_err(|e| io("the inventory", e))?;
                path
            }
        };
        Ok(Workspace { dir, inventory })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What the plugin wrote (empty when it wrote nothing).
    pub fn results(&self) -> String {
        std::fs::read_to_string(self.path("results.jsonl")).unwrap_or_default()
    }

    /// The `ansible-playbook` process.
    pub fn spec(&self, inputs: &AnsibleInputs, limited: bool, ctx: &Context) -> ProcessSpec {
        ProcessSpec {
            program: ctx
                .settings
                .ansible
                .program("ansible-playbook")
                .display()
                .to_string(),
            args: self.args(inputs, limited, ctx),
            env: self.env(inputs, ctx),
            cwd: Some(absolute(&ctx.base_dir)),
            stdin: None,
        }
    }

    fn args(&self, inputs: &AnsibleInputs, limited: bool, ctx: &Context) -> Vec<String> {
        let mut args = vec!["-i".to_string(), self.inventory.display().to_string()];
        if limited {
            args.push(format!("--limit=@{}", self.path("limit").display()));
        } else if let Some(limit) = &inputs.limit {
            args.push(format!("--limit={limit}"));
        }
        if let Some(tags) = &inputs.tags {
            args.push(format!("--tags={}", tags.as_slice().join(",")));
        }
        if let Some(tags) = &inputs.skip_tags {
            args.push(format!("--skip-tags={}", tags.as_slice().join(",")));
        }
        if inputs.check {
            args.extend(["--check".into(), "--diff".into()]);
        }
        if inputs.r#become {
            args.push("--become".into());
        }
        if let Some(user) = &inputs.become_user {
            args.push(format!("--become-user={user}"));
        }
        if let Some(forks) = inputs.forks {
            args.push(format!("--forks={forks}"));
        }
        args.push(format!(
            "--extra-vars=@{}",
            self.path("extra-vars.json").display()
        ));
        args.push("--".into());
        args.push(
            absolute(&ctx.resolve_path(&inputs.playbook))
                .display()
                .to_string(),
        );
        args
    }

    /// The plugin and its results file, private SSH control sockets, plain output, and the
    /// `[ssh]` settings as Ansible's defaults (the inventory's `ansible_*` vars still win).
    fn env(&self, inputs: &AnsibleInputs, ctx: &Context) -> Vec<(String, String)> {
        let mut plugins = self.path("callback_plugins").display().to_string();
        if let Ok(existing) = std::env::var("ANSIBLE_CALLBACK_PLUGINS")
            && !existing.is_empty()
        {
            plugins = format!("{plugins}:{existing}");
        }
        let mut env = vec![
            ("ANSIBLE_CALLBACK_PLUGINS".to_string(), plugins),
            (
                "PATCHDAY_ANSIBLE_RESULTS".into(),
                self.path("results.jsonl").display().to_string(),
            ),
            (
                "ANSIBLE_SSH_CONTROL_PATH_DIR".into(),
                self.path("cp").display().to_string(),
            ),
            ("ANSIBLE_NOCOLOR".into(), "1".into()),
            ("ANSIBLE_FORCE_COLOR".into(), "0".into()),
            ("ANSIBLE_RETRY_FILES_ENABLED".into(), "0".into()),
        ];
        if let Some(config) = &inputs.config {
            let path = absolute(&ctx.resolve_path(config)).display().to_string();
            env.push(("ANSIBLE_CONFIG".into(), path));
        }
        let ssh = &ctx.settings.ssh;
        if let Some(user) = &ssh.user {
            env.push(("ANSIBLE_REMOTE_USER".into(), user.clone()));
        }
        if let Some(port) = ssh.port {
            env.push(("ANSIBLE_REMOTE_PORT".into(), port.to_string()));
        }
        if let Some(key) = &ssh.identity {
            env.push(("ANSIBLE_PRIVATE_KEY_FILE".into(), key.display().to_string()));
        }
        if let Some(secs) = ssh.connect_timeout_secs {
            env.push(("ANSIBLE_TIMEOUT".into(), secs.to_string()));
        }
        if let Some(program) = &ssh.program {
            env.push((
                "ANSIBLE_SSH_EXECUTABLE".into(),
                program.display().to_string(),
            ));
        }
        if let Some(known_hosts) = &ssh.known_hosts {
            let args = format!(
                "-o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null",
                known_hosts.display()
            );
            env.push(("ANSIBLE_SSH_COMMON_ARGS".into(), args));
        }
        env
    }

    /// Closes the SSH master connections the run left in its control folder (they outlive
    /// `ansible-playbook` in sessions of their own): `ssh -O exit` on each socket.
    pub async fn close_connections(&self, ctx: &Context) {
        let Ok(entries) = std::fs::read_dir(self.path("cp")) else {
            return;
        };
        let program = ctx
            .settings
            .ssh
            .program
            .clone()
            .unwrap_or_else(|| PathBuf::from("ssh"));
        for socket in entries.filter_map(Result::ok).map(|e| e.path()) {
            let mut exit = tokio::process::Command::new(&program);
            exit.arg("-o")
                .arg(format!("ControlPath={}", socket.display()))
                .args(["-O", "exit", "patchday"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), exit.status()).await;
        }
    }
}

/// An inventory of the batch's hosts from their records: `address`, `port` and `user` as
/// `ansible_host`, `ansible_port` and `ansible_user`, and their `vars`.
fn generated_inventory(members: &[BatchMember]) -> Value {
    let mut hosts = Map::new();
    for member in members {
        let mut vars = match member.host.get("vars") {
            Some(Value::Object(vars)) => vars.clone(),
            _ => Map::new(),
        };
        for (field, var) in [
            ("address", "ansible_host"),
            ("port", "ansible_port"),
            ("user", "ansible_user"),
        ] {
            if let Some(value) = member.host.get(field).filter(|v| !v.is_null()) {
                vars.insert(var.into(), value.clone());
            }
        }
        hosts.insert(member.name.clone(), Value::Object(vars));
    }
    json!({ "all": { "hosts": hosts } })
}

/// `path` made absolute against the current folder: ansible-playbook runs in the runbook's
/// folder, so a path relative to patchday's own would point elsewhere.
fn absolute(path: &Path) -> PathBuf {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Writes `bytes` to a new file only the owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secrets;

    fn member(name: &str) -> BatchMember {
        BatchMember {
            name: name.into(),
            host: json!({ "name": name, "address": "10.0.0.1", "port": 2222, "vars": { "site": "a" } })
                .as_object()
                .cloned()
                .unwrap(),
            inputs: json!({}),
        }
    }

    #[test]
    fn secrets_in_extra_vars_stay_off_the_command_line() {
        let inputs: AnsibleInputs = serde_json::from_value(json!({
            "playbook": "site.yml",
            "extra_vars": { "token": "s3cr3t" },
            "tags": ["patch", "reboot"],
            "check": true
        }))
        .unwrap();
        let mut ctx = Context::new("r", "s");
        ctx.secrets = Secrets::new().with("t", "s3cr3t");
        let ws = Workspace::prepare(&inputs, &[member("web1")], &ctx).unwrap();
        let spec = ws.spec(&inputs, true, &ctx);
        assert!(
            spec.args.iter().all(|a| !a.contains("s3cr3t")),
            "{:?}",
            spec.args
        );
        assert!(spec.env.iter().all(|(_, v)| !v.contains("s3cr3t")));
        assert!(spec.args.contains(&"--tags=patch,reboot".to_string()));
        assert!(spec.args.contains(&"--check".to_string()));
        let vars = std::fs::read_to_string(ws.path("extra-vars.json")).unwrap();
        assert!(vars.contains("s3cr3t"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(ws.path("extra-vars.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner reads the extra vars");
        let inventory: Value =
            serde_json::from_str(&std::fs::read_to_string(ws.path("inventory.yml")).unwrap())
                .unwrap();
        assert_eq!(
            inventory["all"]["hosts"]["web1"],
            json!({ "site": "a", "ansible_host": "10.0.0.1", "ansible_port": 2222 })
        );
        assert_eq!(std::fs::read_to_string(ws.path("limit")).unwrap(), "web1\n");
    }
}
