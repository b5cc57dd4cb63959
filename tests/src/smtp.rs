//! A real SMTP server on loopback for the tests of the mailer and of `patchday run`
//! (`tests/fixtures/smtp_server.py`, aiosmtpd): it can refuse addresses for good (550), be
//! down for a while (421 while a file exists), and require AUTH. Stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the server does.
#[derive(Debug, Default, Clone)]
pub struct SmtpOptions {
    /// Answered 550 (refused for good).
    pub refuse: Vec<String>,
    /// While this file exists, every other address is answered 421 (try later).
    pub down: Option<PathBuf>,
    /// AUTH required as this user, with the password in this file.
    pub login: Option<(String, PathBuf)>,
}

/// A running test SMTP server.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl SmtpServer {
    /// Starts the server writing accepted messages into `out`.
    pub fn start(out: &Path, options: &SmtpOptions) -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = crate::repo_root().join("tests/fixtures/smtp_server.py");
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--out")
            .arg(out);
        for address in &options.refuse {
            command.args(["--refuse", address]);
        }
        if let Some(down) = &options.down {
            command.arg("--down").arg(down);
        }
        if let Some((user, password_file)) = &options.login {
            command
                .args(["--user", user])
                .arg("--password-file")
                .arg(password_file);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 runs (install python3-aiosmtpd: .ci/deps-connectors.sh)");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        assert_eq!(line.trim(), "READY", "the SMTP test server did not start");
        SmtpServer {
            child,
            port,
            out: out.to_path_buf(),
        }
    }

    /// A server requiring AUTH as `patchday` with the password in `password_file`.
    pub fn with_login(out: &Path, password_file: &Path) -> SmtpServer {
        let options = SmtpOptions {
            login: Some(("patchday".into(), password_file.to_path_buf())),
            ..SmtpOptions::default()
        };
        SmtpServer::start(out, &options)
    }

    /// The messages it accepted, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        crate::daemon::json_messages(&self.out)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    /// `[smtp]` for a configuration file: this server, plain, from patchday@example.com.
    pub fn config(&self) -> String {
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"patchday@example.com\"\n",
            self.port
        )
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
