//! TLS (issue #11): `[server] tls_cert_file, tls_key_file` with a CA and certificates made in
//! the test (rcgen); a client that trusts only that CA gets `/healthz` over TLS 1.3, and a
//! certificate rotated on disk is served to the next client without a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use patchday_tests::daemon::{Daemon, poll, serve_command};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

/// A CA, and a way to make certificates for 127.0.0.1 named `name`.
struct Pki {
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "patchday test CA");
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM, certificate DER) for 127.0.0.1 with common name `name`.
    fn leaf(&self, name: &str) -> (String, String, Vec<u8>) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// `GET /healthz` over TLS trusting only `ca`: (the answer, the server's certificate); `None`
/// when the handshake fails.
fn healthz(addr: &str, ca: &CertificateDer<'static>) -> Option<(String, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    write!(
        tls,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    let served = tls.conn.peer_certificates()?.first()?.to_vec();
    Some((answer, served))
}

#[test]
fn the_daemon_serves_tls_and_picks_up_a_rotated_certificate() {
    let pki = Pki::new();
    let dir = patchday_tests::scratch("tls");
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    let (cert, key, first) = pki.leaf("first");
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(
        dir.join("patchday.toml"),
        "[server]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("d.db").display());
    let mut command = serve_command(&dir, &database, &dir.join("outbox"));
    command.args(["--config", &dir.join("patchday.toml").display().to_string()]);
    let daemon = Daemon::start(command);
    assert!(
        daemon.serving.starts_with("patchday serving https://"),
        "{}",
        daemon.serving
    );
    assert!(
        daemon.sign_in_url.starts_with("https://"),
        "{}",
        daemon.sign_in_url
    );

    let (answer, served) = healthz(&daemon.addr, &pki.ca_der).expect("a TLS handshake");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "HSTS under TLS: {answer}"
    );
    assert_eq!(served, first);

    // Plain HTTP on the TLS port gets nothing.
    let mut plain = TcpStream::connect(&daemon.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = Vec::new();
    let _ = plain.read_to_end(&mut text);
    assert!(!String::from_utf8_lossy(&text).contains("ok\n"));

    // A renewed certificate on disk: served from the next connection on, no restart.
    let (cert, key, second) = pki.leaf("second");
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    poll("the rotated certificate", Duration::from_secs(20), || {
        let (answer, served) = healthz(&daemon.addr, &pki.ca_der)?;
        (served == second && answer.starts_with("HTTP/1.1 200")).then_some(())
    });
}
