//! Shared test helpers: contexts, a log capture, and a real sshd on loopback.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patchday_connectors::settings::SshSettings;
use patchday_connectors::{Context, Settings};
use tokio::sync::mpsc;

/// A context for tests: runbook folder `base`, the given settings.
pub fn ctx_with(settings: Settings, base: &Path) -> Context {
    let mut ctx = Context::new("run-1", "step-1");
    ctx.settings = Arc::new(settings);
    ctx.base_dir = base.to_path_buf();
    ctx
}

/// Lines sent to a context's log sink, kept and also awaitable.
pub struct LogCapture {
    pub lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::UnboundedReceiver<String>,
}

impl LogCapture {
    /// Installs a capturing sink into `ctx`.
    pub fn install(ctx: &mut Context) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let keep = lines.clone();
        ctx.log = Arc::new(move |line: &str| {
            keep.lock().unwrap().push(line.to_string());
            let _ = tx.send(line.to_string());
        });
        LogCapture { lines, rx }
    }

    /// Waits for the first line starting with `prefix` and returns the rest of it.
    pub async fn wait_for(&mut self, prefix: &str) -> String {
        let wait = async {
            while let Some(line) = self.rx.recv().await {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.trim().to_string();
                }
            }
            panic!("log closed before a line starting with {prefix:?}");
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("no log line starting with {prefix:?}"))
    }

    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Waits (bounded) until `pid` is gone; the kill is asynchronous on the remote side.
pub async fn wait_process_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a program to completion and panics with its stderr when it fails.
pub fn run_ok(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates an ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    run_ok(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "patchday-test",
            "-f",
            path.to_str().unwrap(),
        ],
    );
}

const SSHD: &str = "/usr/sbin/sshd";

/// A real OpenSSH server on 127.0.0.1 with generated host and user keys; the test user is
/// the current user. Stopped on drop.
pub struct SshServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl SshServer {
    pub fn start() -> SshServer {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: install openssh-server (.ci/deps-connectors.sh)"
        );
        // sshd's privilege separation directory; exists when the package is installed as a service.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("user_key"));
        keygen(&dir.path().join("other_host_key"));
        std::fs::copy(
            dir.path().join("user_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(&config, sshd_config(dir.path(), port)).unwrap();
        let child = spawn_sshd(&config);
        let mut server = SshServer { port, dir, child };
        server.wait_listening();
        server.write_known_hosts("known_hosts", "host_key.pub");
        server.write_known_hosts("wrong_known_hosts", "other_host_key.pub");
        server
    }

    fn wait_listening(&mut self) {
        let stderr = self.child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("sshd did not start listening");
    }

    fn write_known_hosts(&self, name: &str, key: &str) {
        let key = std::fs::read_to_string(self.dir.path().join(key)).unwrap();
        let line = format!("[127.0.0.1]:{} {}", self.port, key.trim());
        std::fs::write(self.dir.path().join(name), line + "\n").unwrap();
    }

    /// Settings that trust this server's host key and log in with the generated user key.
    pub fn settings(&self) -> Settings {
        Settings {
            ssh: SshSettings {
                known_hosts: Some(self.path("known_hosts")),
                identity: Some(self.path("user_key")),
                port: Some(self.port),
                ..SshSettings::default()
            },
            ..Settings::default()
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Waits (bounded) until no client connection is open: sshd serves each in a child process.
    pub async fn connections_closed(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !has_children(self.child.id()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for SshServer {
    /// Lets the per-connection sshd processes finish first (the listener reaps them), so that
    /// none is orphaned when the listener goes.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while has_children(self.child.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether any process has `pid` as its parent.
fn has_children(pid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let rest = stat.rsplit_once(')')?.1.to_string();
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            })
            == Some(pid)
    })
}

fn spawn_sshd(config: &Path) -> Child {
    Command::new(SSHD)
        .args(["-D", "-e", "-f", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start sshd")
}

fn sshd_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         MaxStartups 50\nLogLevel INFO\n"
    )
}

/// A test certificate authority and a server certificate for 127.0.0.1 and localhost.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn generate() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "patchday test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir`.
    pub fn write_to(&self, dir: &Path) {
        std::fs::write(dir.join("ca.pem"), &self.ca_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), &self.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &self.key_pem).unwrap();
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }
}

/// A request as a test HTTP handler sees it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A handler's answer: status, headers, body.
pub type Resp = (u16, Vec<(&'static str, String)>, Vec<u8>);

pub type Handler = Arc<dyn Fn(Req) -> Resp + Send + Sync>;

/// A real HTTP/1.1 server (hyper) on 127.0.0.1, plain or TLS; stops when dropped.
pub struct HttpServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    pub async fn start(handler: impl Fn(Req) -> Resp + Send + Sync + 'static) -> HttpServer {
        Self::start_with(Arc::new(handler), None).await
    }

    pub async fn start_tls(
        pki: &TestPki,
        handler: impl Fn(Req) -> Resp + Send + Sync + 'static,
    ) -> HttpServer {
        Self::start_with(Arc::new(handler), Some(pki.server_config())).await
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    async fn start_with(handler: Handler, tls: Option<Arc<rustls::ServerConfig>>) -> HttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                serve_connection(tls, handler).await;
                            }
                        }
                        None => serve_connection(stream, handler).await,
                    }
                });
            }
        });
        HttpServer { port, task }
    }
}

async fn serve_connection<S>(stream: S, handler: Handler)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let handler = handler.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_default();
                let req = Req {
                    method: parts.method.to_string(),
                    path: parts
                        .uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect(),
                    body,
                };
                let (status, headers, body) = handler(req);
                let mut response = hyper::Response::builder().status(status);
                for (name, value) in headers {
                    response = response.header(name, value);
                }
                Ok::<_, std::convert::Infallible>(
                    response
                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                        .unwrap(),
                )
            }
        });
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// A JSON response.
pub fn json_resp(status: u16, value: serde_json::Value) -> Resp {
    (
        status,
        vec![("content-type", "application/json".to_string())],
        serde_json::to_vec(&value).unwrap(),
    )
}

/// How the test SMTP server secures connections and whom it lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    Plain,
    Starttls,
    Tls,
}

/// A real SMTP server (aiosmtpd, from Debian's python3-aiosmtpd) on 127.0.0.1; every
/// accepted message is parsed and kept as JSON. Stopped on drop.
pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub const SMTP_USER: &str = "mailer";
pub const SMTP_PASSWORD: &str = "sm7p-pa55word";

impl SmtpServer {
    /// Starts the server; with `auth`, AUTH as SMTP_USER / SMTP_PASSWORD is required.
    pub fn start(mode: SmtpMode, auth: bool) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate();
        pki.write_to(dir.path());
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/connectors/smtp_server.py");
        let d = dir.path();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--out"])
            .arg(d.join("mail"))
            .args(["--cert"])
            .arg(d.join("cert.pem"))
            .args(["--key"])
            .arg(d.join("key.pem"))
            .args([
                "--tls",
                match mode {
                    SmtpMode::Plain => "none",
                    SmtpMode::Starttls => "starttls",
                    SmtpMode::Tls => "tls",
                },
            ]);
        if auth {
            cmd.args(["--user", SMTP_USER, "--password", SMTP_PASSWORD]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start /usr/bin/python3 (install python3-aiosmtpd)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        if line.trim() != "READY" {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the SMTP test server did not start (is python3-aiosmtpd installed?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        SmtpServer { port, dir, child }
    }

    /// Settings for this server: `from` patchday@example.com, the test CA trusted, roles
    /// `committee` (two addresses) and `cab`.
    pub fn settings(&self, tls: patchday_connectors::settings::SmtpTls, auth: bool) -> Settings {
        let mut settings = Settings {
            smtp: Some(patchday_connectors::settings::SmtpSettings {
                host: "127.0.0.1".into(),
                port: Some(self.port),
                tls,
                username: auth.then(|| SMTP_USER.to_string()),
                password_secret: auth.then(|| "smtp-password".to_string()),
                from: "Patchday <patchday@example.com>".into(),
                ca_file: Some(self.dir.path().join("ca.pem")),
                timeout_secs: Some(10),
            }),
            ..Settings::default()
        };
        settings.roles.insert(
            "committee".into(),
            vec!["chair@example.com".into(), "ops@example.com".into()],
        );
        settings
            .roles
            .insert("cab".into(), vec!["cab@example.com".into()]);
        settings
    }

    /// The accepted messages, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
