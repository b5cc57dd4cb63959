//! Running a local process for a connector: its own process group, streamed and bounded
//! output, and cancellation that kills the whole group.
//!
//! The child is spawned with `process_group(0)`, so it and everything it starts share one
//! process group; cancellation (or the future being dropped, or the child exiting) sends
//! SIGKILL to that group, so no step leaves processes behind. A command that must outlive its
//! step has to detach itself (`setsid`, `systemd-run`).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::runtime::{ConnectorError, Context};

/// How much of each output stream is kept (the tail).
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// A line longer than this is logged in pieces.
const LOG_LINE_LIMIT: usize = 8 * 1024;

/// How long to wait for output pipes to close after the process group is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Written to stdin, which then stays open until the process exits (`None`: /dev/null).
    pub stdin: Option<Vec<u8>>,
}

/// How a process ended and the tail of what it printed.
#[derive(Debug, Clone, Default)]
pub struct ProcessOutput {
    /// `None` when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl ProcessOutput {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// "exit code 3" or "killed by signal 9".
    pub fn describe_end(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "ended without an exit code".into(),
        }
    }
}

/// The (redacted) tail of one output stream.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub text: String,
    /// Whether the beginning was dropped to stay within [`OUTPUT_LIMIT`].
    pub truncated: bool,
}

/// Keeps the last `limit` bytes of a stream.
struct TailBuffer {
    bytes: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl TailBuffer {
    fn new(limit: usize) -> Self {
        TailBuffer {
            bytes: Vec::new(),
            limit,
            truncated: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > self.limit {
            let excess = self.bytes.len() - self.limit;
            self.bytes.drain(..excess);
            self.truncated = true;
        }
    }

    /// The text, starting at a line boundary when truncated (so that a partly cut secret
    /// cannot slip past redaction).
    fn finish(self, ctx: &Context) -> Captured {
        let mut bytes = self.bytes.as_slice();
        if self.truncated
            && let Some(nl) = bytes.iter().position(|b| *b == b'\n')
        {
            bytes = &bytes[nl + 1..];
        }
        Captured {
            text: ctx.secrets.redact(&String::from_utf8_lossy(bytes)),
            truncated: self.truncated,
        }
    }
}

/// Splits a byte stream into lines for the log sink.
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, chunk: &[u8], ctx: &Context) {
        for &b in chunk {
            if b == b'\n' {
                self.flush(ctx);
            } else {
                self.pending.push(b);
                if self.pending.len() >= LOG_LINE_LIMIT {
                    self.flush(ctx);
                }
            }
        }
    }

    fn flush(&mut self, ctx: &Context) {
        let line = String::from_utf8_lossy(&self.pending);
        ctx.log_line(line.trim_end_matches('\r'));
        self.pending.clear();
    }

    fn finish(mut self, ctx: &Context) {
        if !self.pending.is_empty() {
            self.flush(ctx);
        }
    }
}

/// Kills the process group on drop: after a normal exit (leftovers), on cancellation, and
/// when the future running the process is dropped.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // ESRCH (the group is already gone) is fine.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `spec` to its end, or until `ctx.cancel` fires (then `Err(Cancelled)` after the
/// group is killed and reaped). Each output line is streamed, redacted, to `ctx.log`.
pub async fn run(spec: ProcessSpec, ctx: &Context) -> Result<ProcessOutput, ConnectorError> {
    let mut child = command_for(&spec)
        .spawn()
        .map_err(|e| ConnectorError::Fatal(format!("cannot start `{}`: {e}", spec.program)))?;
    let guard = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
    let stdin = feed_stdin(&mut child, spec.stdin);
    let stdout = child.stdout.take().map(|s| spawn_capture(s, ctx));
    let stderr = child.stderr.take().map(|s| spawn_capture(s, ctx));
    let status = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => None,
        status = child.wait() => Some(status),
    };
    guard.kill();
    drop(stdin);
    let status = match status {
        Some(status) => status.map_err(|e| ConnectorError::Retryable(format!("waiting: {e}")))?,
        None => {
            let _ = child.wait().await;
            abort(stdout);
            abort(stderr);
            return Err(ConnectorError::Cancelled);
        }
    };
    Ok(ProcessOutput {
        exit_code: status.code(),
        signal: signal_of(status),
        stdout: collect(stdout, ctx).await,
        stderr: collect(stderr, ctx).await,
    })
}

fn command_for(spec: &ProcessSpec) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd
}

/// Writes the payload in the background and keeps stdin open until the returned sender is
/// dropped (when the process has ended), so a slow reader never delays cancellation.
fn feed_stdin(
    child: &mut tokio::process::Child,
    payload: Option<Vec<u8>>,
) -> Option<tokio::sync::oneshot::Sender<()>> {
    let mut stdin = child.stdin.take()?;
    let (close, closed) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Some(bytes) = payload {
            // A process that does not read its stdin may close it; that is not an error here.
            let _ = stdin.write_all(&bytes).await;
            let _ = stdin.flush().await;
        }
        let _ = closed.await;
        drop(stdin);
    });
    Some(close)
}

type CaptureTask = JoinHandle<TailBuffer>;

fn spawn_capture(stream: impl AsyncRead + Unpin + Send + 'static, ctx: &Context) -> CaptureTask {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        let mut tail = TailBuffer::new(OUTPUT_LIMIT);
        let mut lines = LineSplitter {
            pending: Vec::new(),
        };
        let mut buf = vec![0u8; 8 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.push(&buf[..n]);
            lines.push(&buf[..n], &ctx);
        }
        lines.finish(&ctx);
        tail
    })
}

async fn collect(task: Option<CaptureTask>, ctx: &Context) -> Captured {
    let Some(mut task) = task else {
        return Captured::default();
    };
    match tokio::time::timeout(DRAIN_GRACE, &mut task).await {
        Ok(Ok(tail)) => tail.finish(ctx),
        _ => {
            task.abort();
            Captured {
                text: String::new(),
                truncated: true,
            }
        }
    }
}

fn abort(task: Option<CaptureTask>) {
    if let Some(task) = task {
        task.abort();
    }
}

fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buffer_keeps_the_end_from_a_line_start() {
        let mut t = TailBuffer::new(10);
        t.push(b"first line\nsecond\nthird\n");
        let ctx = Context::new("r", "s");
        let c = t.finish(&ctx);
        assert!(c.truncated);
        assert_eq!(c.text, "third\n");
    }
}
