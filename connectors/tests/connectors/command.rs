//! `command`: local processes and remote ones over a real sshd on loopback.

use patchday_connectors::{ConnectorError, Context, Secrets, Settings, builtin};
use serde_json::{Value, json};

use crate::support::{LogCapture, SshServer, ctx_with, wait_process_gone};

fn local_ctx() -> (Context, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (ctx_with(Settings::default(), dir.path()), dir)
}

async fn run(inputs: Value, ctx: &Context) -> Result<patchday_connectors::Outputs, ConnectorError> {
    builtin("command").unwrap().execute(inputs, ctx).await
}

#[tokio::test]
async fn local_shell_command_streams_lines_and_captures_output() {
    let (mut ctx, _dir) = local_ctx();
    let log = LogCapture::install(&mut ctx);
    let out = run(json!({ "run": "echo one; echo two >&2; echo three" }), &ctx)
        .await
        .unwrap();
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["stdout"], "one\nthree\n");
    assert_eq!(out["stderr"], "two\n");
    let lines = log.all();
    for l in ["one", "two", "three"] {
        assert!(lines.contains(&l.to_string()), "{lines:?}");
    }
}

#[tokio::test]
async fn local_argv_gets_env_and_runbook_relative_cwd() {
    let (ctx, dir) = local_ctx();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let inputs = json!({
        "run": ["sh", "-c", "echo \"$GREETING\"; pwd"],
        "env": { "GREETING": "hello world" },
        "cwd": "work"
    });
    let out = run(inputs, &ctx).await.unwrap();
    let expected = format!(
        "hello world\n{}\n",
        dir.path().join("work").canonicalize().unwrap().display()
    );
    assert_eq!(out["stdout"], expected);
}

#[tokio::test]
async fn local_non_zero_exit_is_retryable_and_missing_program_fatal() {
    let (ctx, _dir) = local_ctx();
    let err = run(json!({ "run": "echo broken >&2; exit 3" }), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("exit code 3") && m.contains("broken")),
        "{err:?}"
    );
    let err = run(json!({ "run": ["/nonexistent/program"] }), &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Fatal(_)));
}

#[tokio::test]
async fn local_output_keeps_a_bounded_tail() {
    let (ctx, _dir) = local_ctx();
    let script = "i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done; echo end";
    let out = run(json!({ "run": script }), &ctx).await.unwrap();
    let stdout = out["stdout"].as_str().unwrap();
    assert!(stdout.len() <= 64 * 1024);
    assert!(
        stdout.starts_with("line-"),
        "the tail starts at a line boundary"
    );
    assert!(stdout.ends_with("line-2999-padding-padding-padding\nend\n"));
    assert_eq!(out["stdout_truncated"], true);
}

#[tokio::test]
async fn local_cancellation_kills_the_whole_process_group() {
    let (mut ctx, _dir) = local_ctx();
    let mut log = LogCapture::install(&mut ctx);
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(async move {
        run(json!({ "run": "sleep 300 & echo child $!; wait" }), &ctx).await
    });
    let pid: u32 = log.wait_for("child ").await.parse().unwrap();
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, ConnectorError::Cancelled));
    assert!(
        wait_process_gone(pid).await,
        "background child {pid} survived"
    );
}

#[tokio::test]
async fn secrets_never_reach_outputs_logs_or_errors() {
    let (mut ctx, _dir) = local_ctx();
    ctx.secrets = Secrets::new().with("api_token", "tok-3141592");
    let log = LogCapture::install(&mut ctx);
    let inputs =
        json!({ "run": "echo token=$TOKEN; echo $TOKEN >&2", "env": { "TOKEN": "tok-3141592" } });
    let out = run(inputs, &ctx).await.unwrap();
    assert_eq!(out["stdout"], "token=***\n");
    assert_eq!(out["stderr"], "***\n");
    assert!(log.all().iter().all(|l| !l.contains("tok-3141592")));
    let inputs =
        json!({ "run": "echo failing with $TOKEN >&2; exit 1", "env": { "TOKEN": "tok-3141592" } });
    let err = run(inputs.clone(), &ctx).await.unwrap_err();
    assert!(!err.to_string().contains("tok-3141592"), "{err}");
    let err = run(json!({ "run": "echo tok-3141592" }), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Fatal(m) if m.contains("pass it through `env`")),
        "{err:?}"
    );
    let line = builtin("command")
        .unwrap()
        .dry_run(&json!({ "run": "curl -H tok-3141592 x" }), &ctx)
        .unwrap();
    assert_eq!(line, "would run `curl -H *** x` locally");
}

fn remote_ctx(server: &SshServer) -> Context {
    ctx_with(server.settings(), server.dir.path())
}

#[tokio::test]
async fn ssh_runs_a_remote_command_with_env_from_stdin() {
    let server = SshServer::start();
    let mut ctx = remote_ctx(&server);
    ctx.secrets = Secrets::new().with("db", "pa ss'word\"$");
    let log = LogCapture::install(&mut ctx);
    let inputs = json!({
        "host": "127.0.0.1",
        "run": "echo remote-$(id -un); [ \"$DB_PASSWORD\" = 'pa ss'\\''word\"$' ] && echo secret-arrived; echo $DB_PASSWORD",
        "env": { "DB_PASSWORD": "pa ss'word\"$" }
    });
    let out = run(inputs, &ctx).await.unwrap();
    let user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        out["stdout"],
        format!("remote-{}\nsecret-arrived\n***\n", user.trim())
    );
    assert!(log.all().iter().all(|l| !l.contains("word\"$")));
}

#[tokio::test]
async fn ssh_argv_cwd_and_non_zero_exit() {
    let server = SshServer::start();
    let ctx = remote_ctx(&server);
    let out = run(json!({ "host": "127.0.0.1", "run": ["sh", "-c", "pwd; echo \"$0\"", "it's"], "cwd": "/tmp" }), &ctx).await.unwrap();
    assert_eq!(out["stdout"], "/tmp\nit's\n");
    let err = run(
        json!({ "host": "127.0.0.1", "run": "echo nope >&2; exit 7" }),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("exit code 7") && m.contains("nope")),
        "{err:?}"
    );
}

#[tokio::test]
async fn ssh_cancellation_kills_the_remote_command() {
    let server = SshServer::start();
    let mut ctx = remote_ctx(&server);
    let mut log = LogCapture::install(&mut ctx);
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(async move {
        run(
            json!({ "host": "127.0.0.1", "run": "echo remote-pid $$; exec sleep 300" }),
            &ctx,
        )
        .await
    });
    // sshd runs on this machine, so the remote process is visible here.
    let pid: u32 = log.wait_for("remote-pid ").await.parse().unwrap();
    assert!(!crate::support::process_gone(pid));
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, ConnectorError::Cancelled));
    assert!(
        wait_process_gone(pid).await,
        "remote command {pid} survived the dropped connection"
    );
}

#[tokio::test]
async fn ssh_refuses_an_unknown_host_key() {
    let server = SshServer::start();
    let mut settings = server.settings();
    settings.ssh.known_hosts = Some(server.path("wrong_known_hosts"));
    let ctx = ctx_with(settings, server.dir.path());
    let err = run(
        json!({ "host": "127.0.0.1", "run": "echo should-not-run" }),
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
async fn ssh_unreachable_host_is_retryable() {
    let port = crate::support::free_port();
    let mut settings = Settings::default();
    settings.ssh.port = Some(port);
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_with(settings, dir.path());
    let err = run(json!({ "host": "127.0.0.1", "run": "true" }), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Retryable(m) if m.contains("refused")),
        "{err:?}"
    );
}

#[tokio::test]
async fn dry_run_names_the_remote_target() {
    let mut settings = Settings::default();
    settings.ssh.user = Some("ops".into());
    let ctx = ctx_with(settings, std::path::Path::new("."));
    let line = builtin("command")
        .unwrap()
        .dry_run(
            &json!({ "host": "10.0.0.11", "port": 2222, "run": ["apt-get", "-y", "upgrade"] }),
            &ctx,
        )
        .unwrap();
    assert_eq!(
        line,
        "would run `apt-get -y upgrade` on ops@10.0.0.11:2222 over ssh"
    );
}
