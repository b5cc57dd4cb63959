//! The HTTP server's connections (issue #11): hyper's HTTP/1.1 server (hyper-util's Tokio glue)
//! under the axum router, with what the open internet needs.
//!
//! - A cap on open connections ([`connection_cap`]), kept well below the process's open-files
//!   limit, so the database, the runbook files, SMTP and the health probe always have room. At
//!   start the soft limit is raised to the hard one (systemd's default soft limit is 1,024; the
//!   unit in `deploy/` raises both). A connection past the cap is closed at once.
//! - A header-read timeout (`[server] header_timeout`, default 10 s): a client that does not
//!   send a whole request head in time is disconnected. hyper starts the timer when it waits for
//!   a request's head, so it is also the idle timeout of a kept-alive connection.
//! - Every request gets its client's address (`ConnectInfo`): the peer's, or behind a trusted
//!   reverse proxy the one its `X-Forwarded-For` names ([`super::proxy`]).
//! - Shutdown: stop accepting; each connection finishes its request in flight and closes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

use super::proxy::TrustedProxies;

/// `[server] header_timeout` when nothing sets it.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open files kept for everything but client connections, at least.
const RESERVED_FILES: u64 = 256;
/// The most connections served at once, whatever the limit.
const MAX_CONNECTIONS: u64 = 16_384;

/// Connections refused because the cap was reached (for `/metrics`).
pub static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// The cap on open connections for an open-files limit of `files`: three quarters of what is
/// left after [`RESERVED_FILES`], at least 16, at most [`MAX_CONNECTIONS`].
pub fn connection_cap(files: u64) -> usize {
    let cap = files.saturating_sub(RESERVED_FILES) / 4 * 3;
    cap.clamp(16, MAX_CONNECTIONS) as usize
}

/// Raises the soft open-files limit to the hard one (best effort) and returns the soft limit in
/// force.
pub fn open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Serves `router` on `listener` until `stop`, at most `cap` connections at once; over TLS
/// with `tls`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: (usize, Duration),
    tls: Option<tokio_rustls::TlsAcceptor>,
    proxies: TrustedProxies,
    stop: CancellationToken,
) {
    let proxies = Arc::new(proxies);
    let (cap, header_timeout) = limits;
    let slots = Arc::new(Semaphore::new(cap));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of files or similar: wait a little rather than spin.
                tracing::warn!("http: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        let peer = Peer {
            addr: peer,
            proxies: proxies.clone(),
        };
        connections.spawn(async move {
            match tls {
                None => connection(stream, peer, router, header_timeout, stop).await,
                Some(tls) => {
                    // The handshake gets the header timeout too.
                    let handshake = tokio::time::timeout(header_timeout, tls.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        connection(stream, peer, router, header_timeout, stop).await;
                    }
                }
            }
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
}

/// A connection's peer, and whom it is trusted to forward for.
struct Peer {
    addr: SocketAddr,
    proxies: Arc<TrustedProxies>,
}

impl Peer {
    /// The client address of `request`, as handlers see it in `ConnectInfo`.
    fn client(&self, request: &hyper::Request<Incoming>) -> SocketAddr {
        let forwarded_for = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let ip = self.proxies.client(self.addr.ip(), forwarded_for);
        SocketAddr::new(ip, self.addr.port())
    }
}

/// Serves one connection until it ends or `stop` (then its request in flight finishes).
async fn connection<IO>(
    io: IO,
    peer: Peer,
    router: Router,
    header_timeout: Duration,
    stop: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let client = peer.client(&request);
        request.extensions_mut().insert(ConnectInfo(client));
        let mut router = router.clone();
        async move { Ok::<_, Infallible>(router.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_open_files_limit() {
        assert_eq!(connection_cap(1024), 576);
        assert!(connection_cap(1024) < 1024 - 256);
        assert_eq!(connection_cap(100), 16);
        assert_eq!(connection_cap(1 << 20), 16_384);
    }
}
