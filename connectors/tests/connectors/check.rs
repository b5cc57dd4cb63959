//! `check`: probes polled against real peers (hyper server, TCP listener, local and ssh commands).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use patchday_connectors::{ConnectorError, Context, Outputs, Settings, builtin};
use serde_json::{Value, json};

use crate::support::{HttpServer, SshServer, ctx_with, free_port};

async fn run(inputs: Value, ctx: &Context) -> Result<Outputs, ConnectorError> {
    builtin("check").unwrap().execute(inputs, ctx).await
}

fn ctx() -> Context {
    Context::new("run-1", "smoke-test")
}

#[tokio::test]
async fn http_probe_polls_until_the_service_is_healthy() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let server = HttpServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            (503, vec![], b"starting".to_vec())
        } else {
            (200, vec![], b"status: green".to_vec())
        }
    })
    .await;
    let inputs = json!({
        "http": server.url("http", "/health"),
        "expect": { "status": 200, "body_contains": "green" },
        "interval": "0s", "within": "30s"
    });
    let out = run(inputs, &ctx()).await.unwrap();
    assert_eq!(out["attempts"], 3);
    assert_eq!(out["last_result"], "status 200");
    assert!(builtin("check").unwrap().spec().idempotent);
}

#[tokio::test]
async fn http_probe_gives_up_when_within_runs_out() {
    let server = HttpServer::start(|_| (500, vec![], b"down".to_vec())).await;
    let inputs = json!({ "http": server.url("http", "/health"), "interval": "0s", "within": "1s" });
    let err = run(inputs, &ctx()).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("did not pass") && m.contains("status 500, expected 2xx")),
        "{err:?}"
    );
}

#[tokio::test]
async fn tcp_probe_connects_or_fails() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = run(json!({ "tcp": addr, "within": "5s" }), &ctx())
        .await
        .unwrap();
    assert_eq!(out["attempts"], 1);
    assert_eq!(out["last_result"], format!("connected to {addr}"));
    let closed = format!("127.0.0.1:{}", free_port());
    let err = run(
        json!({ "tcp": closed, "interval": "0s", "within": "1s" }),
        &ctx(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("cannot connect")),
        "{err:?}"
    );
}

#[tokio::test]
async fn command_probe_checks_exit_code_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_with(Settings::default(), dir.path());
    // Passes on the third attempt: the counter file grows each time.
    let script = "echo x >> count; [ $(wc -l < count) -ge 3 ] && echo service ready";
    let inputs = json!({ "command": ["sh", "-c", format!("cd {} && {script}", dir.path().display())], "expect": { "body_contains": "ready" }, "interval": "0s", "within": "30s" });
    let out = run(inputs, &ctx).await.unwrap();
    assert_eq!(out["attempts"], 3);
    assert_eq!(out["last_result"], "exit code 0: service ready");
    let inputs = json!({ "command": "exit 4", "expect": { "exit_code": 4 }, "within": "5s" });
    assert_eq!(run(inputs, &ctx).await.unwrap()["attempts"], 1);
}

/// A directory with a fake `needs-restarting` that exits with `code`.
fn fake_needs_restarting(code: i32) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("needs-restarting");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho 'Core libraries or services have been updated'\nexit {code}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn path_with(dir: &tempfile::TempDir) -> String {
    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.path().display())
}

#[tokio::test]
async fn reboot_required_follows_the_exit_code_not_the_program() {
    assert!(
        !std::path::Path::new("/var/run/reboot-required").exists(),
        "this machine itself needs a reboot; the test cannot tell the probes apart"
    );
    let present_but_ok = fake_needs_restarting(0);
    let inputs = json!({ "reboot_required": true, "env": { "PATH": path_with(&present_but_ok) }, "within": "5s" });
    let out = run(inputs, &ctx()).await.unwrap();
    assert_eq!(out["reboot_required"], false);
    assert_eq!(
        out["last_result"],
        "no reboot required (needs-restarting -r exited 0)"
    );

    let needs_reboot = fake_needs_restarting(1);
    let inputs = json!({ "reboot_required": true, "env": { "PATH": path_with(&needs_reboot) }, "interval": "0s", "within": "1s" });
    let err = run(inputs, &ctx()).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("needs-restarting -r exited 1")),
        "{err:?}"
    );

    let broken = fake_needs_restarting(3);
    let inputs = json!({ "reboot_required": true, "env": { "PATH": path_with(&broken) }, "interval": "0s", "within": "1s" });
    let err = run(inputs, &ctx()).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("cannot tell")),
        "{err:?}"
    );
}

#[tokio::test]
async fn remote_probes_run_over_ssh() {
    let server = SshServer::start();
    let ctx = ctx_with(server.settings(), server.dir.path());
    // The remote side gets PATH through the stdin prologue, so it finds the fake program.
    let present_but_ok = fake_needs_restarting(0);
    let inputs = json!({ "host": "127.0.0.1", "reboot_required": true, "env": { "PATH": path_with(&present_but_ok) }, "within": "1m" });
    let out = run(inputs, &ctx).await.unwrap();
    assert_eq!(out["reboot_required"], false);
    assert_eq!(
        out["last_result"],
        "no reboot required (needs-restarting -r exited 0)"
    );
    let out = run(json!({ "host": "127.0.0.1", "command": "uname -s", "expect": { "body_contains": "Linux" }, "within": "1m" }), &ctx).await.unwrap();
    assert_eq!(out["last_result"], "exit code 0: Linux");
}

#[tokio::test]
async fn an_unknown_host_key_stops_polling_at_once() {
    let server = SshServer::start();
    let mut settings = server.settings();
    settings.ssh.known_hosts = Some(server.path("wrong_known_hosts"));
    let ctx = ctx_with(settings, server.dir.path());
    let err = run(
        json!({ "host": "127.0.0.1", "command": "true", "interval": "0s", "within": "1m" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("Host key verification failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn cancellation_stops_polling() {
    let ctx = ctx();
    let cancel = ctx.cancel.clone();
    let closed = format!("127.0.0.1:{}", free_port());
    let task = tokio::spawn(async move {
        run(
            json!({ "tcp": closed, "interval": "1h", "within": "2h" }),
            &ctx,
        )
        .await
    });
    cancel.cancel();
    assert!(matches!(
        task.await.unwrap().unwrap_err(),
        ConnectorError::Cancelled
    ));
}

#[test]
fn dry_run_describes_the_probe() {
    let line = builtin("check")
        .unwrap()
        .dry_run(
            &json!({ "http": "https://h/health", "within": "15m" }),
            &ctx(),
        )
        .unwrap();
    assert_eq!(
        line,
        "would GET https://h/health every 10s until it passes (within 15m)"
    );
}
