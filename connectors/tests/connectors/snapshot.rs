//! `snapshot`: libvirt through virsh and its test driver; Proxmox against an HTTP server that
//! speaks the Proxmox VE API paths and task states (the one allowed fake).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use patchday_connectors::settings::ProxmoxSettings;
use patchday_connectors::{ConnectorError, Context, Outputs, Secrets, Settings, builtin};
use serde_json::{Value, json};

use crate::support::{HttpServer, Req, Resp, ctx_with, json_resp};

async fn run(inputs: Value, ctx: &Context) -> Result<Outputs, ConnectorError> {
    builtin("snapshot").unwrap().execute(inputs, ctx).await
}

fn fixture_uri() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/connectors/fixtures/libvirt-node.xml");
    format!("test://{}", path.display())
}

fn libvirt_ctx() -> Context {
    let mut settings = Settings::default();
    settings.libvirt.uri = Some("test:///default".into());
    ctx_with(settings, Path::new("."))
}

#[tokio::test]
async fn libvirt_creates_a_snapshot_with_the_test_driver() {
    let inputs = json!({ "provider": "libvirt", "action": "create", "vm": "test", "name": "pre-patch-2026-12", "description": "before patching" });
    let out = run(inputs, &libvirt_ctx()).await.unwrap();
    assert_eq!(out["already_existed"], false);
    assert_eq!(out["provider"], "libvirt");
    assert_eq!(out["name"], "pre-patch-2026-12");
}

#[tokio::test]
async fn libvirt_reverts_and_deletes_an_existing_snapshot() {
    let ctx = libvirt_ctx();
    let uri = fixture_uri();
    let with = |action: &str, name: &str| json!({ "provider": "libvirt", "action": action, "vm": "vm-101", "name": name, "uri": uri });
    run(with("revert", "pre-patch"), &ctx).await.unwrap();
    let out = run(with("create", "pre-patch"), &ctx).await.unwrap();
    assert_eq!(out["already_existed"], true, "create is retry-safe");
    let out = run(with("delete", "pre-patch"), &ctx).await.unwrap();
    assert_eq!(out["already_absent"], false);
    let out = run(with("delete", "never-made"), &ctx).await.unwrap();
    assert_eq!(out["already_absent"], true);
}

#[tokio::test]
async fn libvirt_refuses_unknown_snapshots_and_domains() {
    let ctx = libvirt_ctx();
    let err = run(
        json!({ "provider": "libvirt", "action": "revert", "vm": "test", "name": "missing" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("snapshot not found")),
        "{err:?}"
    );
    let err = run(
        json!({ "provider": "libvirt", "action": "create", "vm": "no-such-vm", "name": "x" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("no-such-vm")),
        "{err:?}"
    );
}

#[test]
fn dry_run_says_what_it_would_do() {
    let ctx = Context::new("r", "s");
    let snapshot = builtin("snapshot").unwrap();
    let line = snapshot.dry_run(&json!({ "provider": "libvirt", "action": "create", "vm": "vm-101", "name": "pre-patch-2026-12" }), &ctx).unwrap();
    assert_eq!(
        line,
        "would snapshot vm-101 as pre-patch-2026-12 (libvirt, create)"
    );
    let line = snapshot.dry_run(&json!({ "provider": "proxmox", "node": "pve1", "action": "revert", "vm": "101", "name": "pre" }), &ctx).unwrap();
    assert_eq!(
        line,
        "would revert 101 to snapshot pre (proxmox node pve1, revert)"
    );
}

const TOKEN_ID: &str = "root@pam!patchday";
const TOKEN_SECRET: &str = "5f0c8e0a-1111-2222-3333-444455556666";

/// The state of the fake Proxmox node `pve1` with VM 101.
#[derive(Default)]
struct Pve {
    snapshots: BTreeSet<String>,
    /// UPID → (status polls left before it stops, exit status).
    tasks: BTreeMap<String, (u32, String)>,
    polls: u32,
    requests: Vec<String>,
}

impl Pve {
    fn start_task(&mut self, kind: &str, exit: &str) -> Resp {
        let upid = format!(
            "UPID:pve1:{:08X}:00000000:5F8A1B2C:{kind}:101:{TOKEN_ID}:",
            self.tasks.len()
        );
        self.tasks.insert(upid.clone(), (1, exit.to_string()));
        json_resp(200, json!({ "data": upid }))
    }

    fn task_status(&mut self, upid: &str) -> Resp {
        self.polls += 1;
        match self.tasks.get_mut(upid) {
            None => json_resp(500, json!({ "data": null, "message": "no such task" })),
            Some((left, _)) if *left > 0 => {
                *left -= 1;
                json_resp(
                    200,
                    json!({ "data": { "status": "running", "upid": upid } }),
                )
            }
            Some((_, exit)) => json_resp(
                200,
                json!({ "data": { "status": "stopped", "exitstatus": exit, "upid": upid } }),
            ),
        }
    }

    fn handle(&mut self, req: Req) -> Resp {
        self.requests.push(format!("{} {}", req.method, req.path));
        if req.header("authorization") != Some(&format!("PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}")) {
            return json_resp(401, json!({ "data": null }));
        }
        let path = req
            .path
            .strip_prefix("/api2/json/nodes/pve1/")
            .unwrap_or("");
        let form = String::from_utf8_lossy(&req.body).to_string();
        match (
            req.method.as_str(),
            path.split('/').collect::<Vec<_>>().as_slice(),
        ) {
            ("GET", ["qemu", "101", "snapshot"]) => {
                let list: Vec<Value> = self
                    .snapshots
                    .iter()
                    .map(|n| json!({ "name": n }))
                    .chain([json!({ "name": "current" })])
                    .collect();
                json_resp(200, json!({ "data": list }))
            }
            ("POST", ["qemu", "101", "snapshot"]) => {
                let name = form
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("snapname="))
                    .unwrap_or("")
                    .to_string();
                if name == "fail-me" {
                    return self.start_task("qmsnapshot", "snapshot feature is not available");
                }
                self.snapshots.insert(name);
                self.start_task("qmsnapshot", "OK")
            }
            ("POST", ["qemu", "101", "snapshot", name, "rollback"])
                if self.snapshots.contains(*name) =>
            {
                self.start_task("qmrollback", "OK")
            }
            ("DELETE", ["qemu", "101", "snapshot", name]) if self.snapshots.contains(*name) => {
                self.snapshots.remove(*name);
                self.start_task("qmdelsnapshot", "OK")
            }
            ("GET", ["tasks", upid, "status"]) => {
                let upid = upid.to_string();
                self.task_status(&upid)
            }
            _ => json_resp(
                500,
                json!({ "data": null, "message": "snapshot does not exist" }),
            ),
        }
    }
}

async fn proxmox() -> (HttpServer, Arc<Mutex<Pve>>, Context) {
    let pve = Arc::new(Mutex::new(Pve::default()));
    let state = pve.clone();
    let server = HttpServer::start(move |req| state.lock().unwrap().handle(req)).await;
    let settings = Settings {
        proxmox: Some(ProxmoxSettings {
            api_url: server.url("http", ""),
            token_id: TOKEN_ID.into(),
            token_secret: "pve-token".into(),
            ca_file: None,
            poll_interval_ms: Some(10),
        }),
        ..Settings::default()
    };
    let mut ctx = ctx_with(settings, Path::new("."));
    ctx.secrets = Secrets::new().with("pve-token", TOKEN_SECRET);
    (server, pve, ctx)
}

fn pve_inputs(action: &str, name: &str) -> Value {
    json!({ "provider": "proxmox", "node": "pve1", "action": action, "vm": "101", "name": name, "description": "before patching" })
}

#[tokio::test]
async fn proxmox_create_revert_delete_wait_for_their_tasks() {
    let (_server, pve, ctx) = proxmox().await;
    let out = run(pve_inputs("create", "pre-patch-2026-12"), &ctx)
        .await
        .unwrap();
    assert!(out["upid"].as_str().unwrap().starts_with("UPID:pve1:"));
    assert_eq!(out["already_existed"], false);
    assert!(pve.lock().unwrap().snapshots.contains("pre-patch-2026-12"));
    assert_eq!(
        pve.lock().unwrap().polls,
        2,
        "polled while running, then stopped"
    );
    run(pve_inputs("revert", "pre-patch-2026-12"), &ctx)
        .await
        .unwrap();
    assert_eq!(
        run(pve_inputs("create", "pre-patch-2026-12"), &ctx)
            .await
            .unwrap()["already_existed"],
        true
    );
    assert_eq!(
        run(pve_inputs("delete", "pre-patch-2026-12"), &ctx)
            .await
            .unwrap()["already_absent"],
        false
    );
    assert!(pve.lock().unwrap().snapshots.is_empty());
    assert_eq!(
        run(pve_inputs("delete", "pre-patch-2026-12"), &ctx)
            .await
            .unwrap()["already_absent"],
        true
    );
    let requests = pve.lock().unwrap().requests.clone();
    assert!(
        requests.contains(
            &"POST /api2/json/nodes/pve1/qemu/101/snapshot/pre-patch-2026-12/rollback".to_string()
        ),
        "{requests:?}"
    );
    assert!(
        requests.contains(
            &"DELETE /api2/json/nodes/pve1/qemu/101/snapshot/pre-patch-2026-12".to_string()
        ),
        "{requests:?}"
    );
}

#[tokio::test]
async fn proxmox_failing_task_is_fatal() {
    let (_server, _pve, ctx) = proxmox().await;
    let err = run(pve_inputs("create", "fail-me"), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("snapshot feature is not available")),
        "{err:?}"
    );
    let err = run(pve_inputs("revert", "missing"), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("500")),
        "{err:?}"
    );
}

#[tokio::test]
async fn proxmox_bad_token_is_fatal_and_the_secret_stays_hidden() {
    let (_server, _pve, mut ctx) = proxmox().await;
    ctx.secrets = Secrets::new().with("pve-token", "wrong-secret-value");
    let err = run(pve_inputs("create", "x"), &ctx).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("refused the API token (401)")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("wrong-secret-value"));
    let err = run(json!({ "provider": "proxmox", "node": "pve1", "action": "create", "vm": "vm-101", "name": "x" }), &ctx).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("numeric VMID")),
        "{err:?}"
    );
}
