//! Running a command on a remote host through the OpenSSH client.
//!
//! The invocation is `ssh -T -o BatchMode=yes -o StrictHostKeyChecking=yes
//! -o UserKnownHostsFile=<settings> -i <key> -p <port> -l <user> -- <host> <wrapper>`.
//!
//! * **Secrets never go into argv.** Environment variables (`env:`, where secret values go) are
//!   written to ssh's stdin: one line per variable, `NAME \ooo\ooo…` (every byte as an octal
//!   escape), ended by a `.` line. The remote wrapper reads them with `read` and decodes them
//!   with `printf`, so no value ever appears in a process list on either side. (`SendEnv`
//!   would need the server's `AcceptEnv`.)
//! * **A remote command dies with its connection.** The wrapper starts the command with
//!   `setsid` in its own process group and keeps a watcher reading stdin, which the local side
//!   holds open; when ssh is killed (timeout, cancellation) the connection drops, sshd closes
//!   the remote stdin, the watcher sees EOF and SIGKILLs the command's group.
//! * The remote side needs a POSIX `sh`, `printf` and `setsid` (util-linux), as every Linux has.

use crate::process::ProcessSpec;
use crate::settings::SshSettings;

/// The remote wrapper; `$1` is the command string, run with `sh -c`.
const WRAPPER: &str = r#"while IFS=' ' read -r n v; do [ "$n" = . ] && break; v=$(printf "${v}x"); export "$n=${v%x}"; done
exec 3<&0
setsid sh -c "$1" </dev/null 3<&- &
p=$!
(while read -r _; do :; done; kill -s KILL -- "-$p" 2>/dev/null) <&3 &
w=$!
exec 3<&-
wait "$p"
rc=$?
kill "$w" 2>/dev/null
wait "$w" 2>/dev/null
kill -s KILL -- "-$p" 2>/dev/null
exit "$rc""#;

/// Where a remote command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
}

impl RemoteTarget {
    /// `user@host:port` for messages.
    pub fn describe(&self, settings: &SshSettings) -> String {
        let user = self.user.as_ref().or(settings.user.as_ref());
        let port = self.port.or(settings.port);
        let mut s = String::new();
        if let Some(u) = user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = port {
            s.push_str(&format!(":{p}"));
        }
        s
    }
}

/// Why a remote invocation cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SshInputError(String);

/// The ssh process that runs `command` (a shell string) on `target` with `env`.
pub fn remote_spec(
    settings: &SshSettings,
    target: &RemoteTarget,
    command: &str,
    env: &[(String, String)],
) -> Result<ProcessSpec, SshInputError> {
    check_target(target)?;
    let mut args = options(settings);
    if let Some(port) = target.port.or(settings.port) {
        args.extend(["-p".into(), port.to_string()]);
    }
    if let Some(user) = target.user.as_ref().or(settings.user.as_ref()) {
        args.extend(["-l".into(), user.clone()]);
    }
    args.extend(["--".into(), target.host.clone(), remote_command(command)]);
    Ok(ProcessSpec {
        program: settings
            .program
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "ssh".into()),
        args,
        env: Vec::new(),
        cwd: None,
        stdin: Some(env_prologue(env)?),
    })
}

fn check_target(target: &RemoteTarget) -> Result<(), SshInputError> {
    let bad = |v: &str| v.is_empty() || v.starts_with('-') || v.contains(char::is_whitespace);
    if bad(&target.host) {
        return Err(SshInputError(format!("invalid host `{}`", target.host)));
    }
    if let Some(u) = &target.user
        && bad(u)
    {
        return Err(SshInputError(format!("invalid user `{u}`")));
    }
    Ok(())
}

fn options(settings: &SshSettings) -> Vec<String> {
    let mut opts = vec![
        "BatchMode=yes".to_string(),
        "StrictHostKeyChecking=yes".into(),
        "LogLevel=ERROR".into(),
        format!(
            "ConnectTimeout={}",
            settings.connect_timeout_secs.unwrap_or(15)
        ),
        "ServerAliveInterval=15".into(),
        "ServerAliveCountMax=3".into(),
    ];
    if let Some(kh) = &settings.known_hosts {
        opts.push(format!("UserKnownHostsFile={}", kh.display()));
        opts.push("GlobalKnownHostsFile=/dev/null".into());
    }
    if settings.identity.is_some() {
        opts.push("IdentitiesOnly=yes".into());
    }
    opts.extend(settings.options.iter().cloned());
    let mut args = vec!["-T".to_string()];
    for o in opts {
        args.extend(["-o".into(), o]);
    }
    if let Some(key) = &settings.identity {
        args.extend(["-i".into(), key.display().to_string()]);
    }
    args
}

/// The single string the remote login shell runs: `sh -c '<wrapper>' patchday '<command>'`.
fn remote_command(command: &str) -> String {
    format!(
        "sh -c {} patchday {}",
        shell_quote(WRAPPER),
        shell_quote(command)
    )
}

/// The stdin prologue carrying environment variables.
fn env_prologue(env: &[(String, String)]) -> Result<Vec<u8>, SshInputError> {
    let mut out = String::new();
    for (name, value) in env {
        if !is_env_name(name) {
            return Err(SshInputError(format!(
                "invalid environment variable name `{name}`"
            )));
        }
        out.push_str(name);
        out.push(' ');
        for b in value.bytes() {
            out.push_str(&format!("\\{b:03o}"));
        }
        out.push('\n');
    }
    out.push_str(".\n");
    Ok(out.into_bytes())
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An argv list as one shell string.
pub fn join_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an ssh failure (exit 255) is worth retrying: network trouble is, refused
/// credentials and host keys are not.
pub fn failure_is_retryable(stderr: &str) -> bool {
    const FATAL: [&str; 6] = [
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "host key is known",
        "Permission denied",
        "Too many authentication failures",
        "Bad configuration option",
    ];
    !FATAL.iter().any(|m| stderr.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(shell_quote("plain-1"), "plain-1");
        assert_eq!(join_argv(&["echo".into(), "".into()]), "echo ''");
    }

    #[test]
    fn secrets_travel_on_stdin_not_argv() {
        let env = vec![("TOKEN".to_string(), "s3cr3t".to_string())];
        let target = RemoteTarget {
            host: "h".into(),
            user: None,
            port: None,
        };
        let spec = remote_spec(&SshSettings::default(), &target, "echo $TOKEN", &env).unwrap();
        assert!(spec.args.iter().all(|a| !a.contains("s3cr3t")));
        let stdin = String::from_utf8(spec.stdin.unwrap()).unwrap();
        assert!(stdin.starts_with("TOKEN \\163\\063"));
    }

    #[test]
    fn option_like_hosts_are_refused() {
        let target = RemoteTarget {
            host: "-oProxyCommand=x".into(),
            user: None,
            port: None,
        };
        assert!(remote_spec(&SshSettings::default(), &target, "true", &[]).is_err());
    }
}
