//! TLS for the HTTP server (`[server] tls_cert_file, tls_key_file`), with rustls: the
//! certificate chain and key are PEM files, read at start and again whenever either file
//! changes (looked at every second), so a renewed certificate is served without a restart. A
//! changed pair that does not load is logged and the pair in force stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS: {0}")]
    Rustls(String),
}

/// The certificate in force, swapped whole when the files change.
#[derive(Debug)]
pub struct Certificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads the pair.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Certificates, TlsError> {
        Ok(Certificates {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(Arc::new(read_pair(cert_file, key_file)?)),
        })
    }

    /// Reads the pair again and serves it from the next handshake on.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// The files to watch.
    pub fn files(&self) -> [&Path; 2] {
        [&self.cert_file, &self.key_file]
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let bad = |path: &Path, message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| bad(cert_file, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert_file, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| bad(key_file, e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| bad(key_file, e.to_string()))?;
    let pair = CertifiedKey::new(chain, signing);
    // A half-written renewal (the new key beside the old certificate) is not taken.
    pair.keys_match().map_err(|e| {
        bad(
            key_file,
            format!("the key does not match the certificate: {e}"),
        )
    })?;
    Ok(pair)
}

/// The acceptor for `certificates`: HTTP/1.1 over TLS 1.2 and 1.3.
pub fn acceptor(certificates: Arc<Certificates>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reloads `certificates` whenever one of its files changes, until `stop`.
pub async fn watch(certificates: Arc<Certificates>, stop: tokio_util::sync::CancellationToken) {
    let stamps = |c: &Certificates| c.files().map(crate::daemon::runbooks::stamp);
    let mut last = stamps(&certificates);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(crate::daemon::runbooks::WATCH_INTERVAL) => {}
        }
        let now = stamps(&certificates);
        if now == last {
            continue;
        }
        last = now;
        match certificates.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::warn!("{e}; the certificate in force stays"),
        }
    }
}
