//! A real OpenID provider on loopback: `tests/oidc/provider.mjs` (the npm package
//! `oidc-provider`, installed by `.ci/deps-oidc.sh`) run by node, with one client. Its login
//! form takes any login and password; the login is the account's `email`. Stopped on drop.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A running provider.
pub struct OidcProvider {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:PORT`, the issuer.
    pub issuer: String,
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl OidcProvider {
    /// Starts the provider on `port` with the client `client_id` / `secret`, whose sign-ins
    /// come back to `redirect`; `id_token_ttl` seconds of ID token life.
    pub fn start(
        port: u16,
        client_id: &str,
        secret: &str,
        redirect: &str,
        id_token_ttl: u32,
    ) -> OidcProvider {
        let dir = crate::repo_root().join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "oidc-provider is not installed: run .ci/deps-oidc.sh"
        );
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args(["--port", &port.to_string()])
            .args(["--client-id", client_id, "--client-secret", secret])
            .args(["--redirect", redirect])
            .args(["--id-token-ttl", &id_token_ttl.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (install it: .ci/deps-oidc.sh)");
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 && line.trim() != "READY" {
            line.clear();
        }
        assert_eq!(line.trim(), "READY", "the OpenID provider did not start");
        OidcProvider {
            child,
            stdin,
            stdout: out,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl OidcProvider {
    /// Changes one of the provider's settings (`id-token-ttl`, `id-token-audience`,
    /// `token-delay-ms`; see `provider.mjs`) for what it issues next; returns once applied.
    pub fn set(&mut self, key: &str, value: &str) {
        writeln!(self.stdin, "set {key} {value}").expect("the provider reads its input");
        let mut line = String::new();
        while !matches!(line.trim(), "OK") && !line.starts_with("ERROR") {
            line.clear();
            let read = self
                .stdout
                .read_line(&mut line)
                .expect("the provider answers");
            assert!(read > 0, "the provider stopped");
        }
        assert_eq!(line.trim(), "OK", "set {key} {value}");
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
