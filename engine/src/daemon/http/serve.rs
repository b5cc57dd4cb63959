//! The HTTP server's connections (issue #11): hyper's HTTP/1.1 server (hyper-util's Tokio glue)
//! under the axum router, with what the open internet needs.
//!
//! - A cap on open connections ([`connection_cap`]), kept well below the process's open-files
//!   limit, so the database, the runbook files, SMTP and the health probe always have room. At
//!   start the soft limit is raised to the hard one (systemd's default soft limit is 1,024; the
//!   unit in `deploy/` raises both). A new connection past the cap takes the place of the
//!   oldest idle one ([`Connections`]: idle = no request being handled, such as a half-sent or
//!   kept-alive connection), which is closed; only when every connection is busy is the new one
//!   closed at once. So idle connections cannot keep the health probe out.
//! - A header-read timeout (`[server] header_timeout`, default 10 s): a client that does not
//!   send a whole request head in time is disconnected. hyper starts the timer when it waits for
//!   a request's head, so it is also the idle timeout of a kept-alive connection.
//! - Every request gets its client's address (`ConnectInfo`): the peer's, or behind a trusted
//!   reverse proxy the one its `X-Forwarded-For` names ([`super::proxy`]).
//! - Shutdown: stop accepting; each connection finishes its request in flight and closes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

/// Connections refused because the cap was reached and none was idle (for `/metrics`).
pub static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// Idle connections closed to make room for a new one (for `/metrics`).
pub static EVICTED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// How long a new connection waits for the slot of the idle one closed for it.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The open connections in the order they were accepted, each with the number of its requests
/// being handled and the token that closes it.
#[derive(Debug, Default)]
struct Connections {
    next: u64,
    open: BTreeMap<u64, Open>,
}

#[derive(Debug)]
struct Open {
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
}

impl Connections {
    /// Registers a new connection: its id, its busy counter and its close token.
    fn add(&mut self) -> (u64, Arc<AtomicUsize>, CancellationToken) {
        let id = self.next;
        self.next += 1;
        let open = Open {
            busy: Arc::new(AtomicUsize::new(0)),
            close: CancellationToken::new(),
        };
        let handles = (id, open.busy.clone(), open.close.clone());
        self.open.insert(id, open);
        handles
    }

    fn remove(&mut self, id: u64) {
        self.open.remove(&id);
    }

    /// Closes the oldest connection with no request being handled; false if all are busy.
    fn close_oldest_idle(&mut self) -> bool {
        let oldest = self
            .open
            .iter()
            .find(|(_, open)| open.busy.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id);
        let Some(open) = oldest.and_then(|id| self.open.remove(&id)) else {
            return false;
        };
        open.close.cancel();
        true
    }
}

/// Locks the registry (a panic elsewhere does not poison it for good).
fn lock(connections: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    connections.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decrements a connection's busy counter when its request's handling ends (or is dropped).
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn start(busy: &Arc<AtomicUsize>) -> Busy {
        busy.fetch_add(1, Ordering::SeqCst);
        Busy(busy.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A slot for a new connection: a free one, else the one the oldest idle connection frees
/// once closed; `None` when every connection is busy.
async fn slot_for_new(
    slots: &Arc<Semaphore>,
    connections: &Mutex<Connections>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    if !lock(connections).close_oldest_idle() {
        return None;
    }
    EVICTED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let freed = tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned()).await;
    freed.ok().and_then(Result::ok)
}

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
    let registry = Arc::new(Mutex::new(Connections::default()));
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
        let Some(slot) = slot_for_new(&slots, &registry).await else {
            REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let (id, busy, close) = lock(&registry).add();
        let ends = Ends {
            stop: stop.clone(),
            close,
            busy,
        };
        let tls = tls.clone();
        let peer = Peer {
            addr: peer,
            proxies: proxies.clone(),
        };
        let registry = registry.clone();
        connections.spawn(async move {
            match tls {
                None => connection(stream, peer, router, header_timeout, ends).await,
                Some(tls) => {
                    // The handshake gets the header timeout too (and counts as idle).
                    let handshake = tokio::time::timeout(header_timeout, tls.accept(stream));
                    let closed = ends.close.clone();
                    let shaken = tokio::select! {
                        shaken = handshake => shaken,
                        _ = closed.cancelled() => return lock(&registry).remove(id),
                    };
                    if let Ok(Ok(stream)) = shaken {
                        connection(stream, peer, router, header_timeout, ends).await;
                    }
                }
            }
            lock(&registry).remove(id);
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

/// What ends a connection besides its client: the daemon's shutdown, and being closed to make
/// room (only while idle: `busy` counts its requests being handled).
struct Ends {
    stop: CancellationToken,
    close: CancellationToken,
    busy: Arc<AtomicUsize>,
}

/// Serves one connection until it ends, is closed for a newer one, or `stop` (then its request
/// in flight finishes).
async fn connection<IO>(io: IO, peer: Peer, router: Router, header_timeout: Duration, ends: Ends)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let busy = ends.busy.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let handling = Busy::start(&busy);
        let client = peer.client(&request);
        request.extensions_mut().insert(ConnectInfo(client));
        let mut router = router.clone();
        async move {
            let response = router.call(request).await.unwrap_or_else(|e| match e {});
            drop(handling);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        // Closed for a newer connection while idle: dropping it closes the socket.
        _ = ends.close.cancelled() => {}
        _ = ends.stop.cancelled() => {
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

    #[test]
    fn the_oldest_idle_connection_is_closed_first() {
        let mut connections = Connections::default();
        let (_, first_busy, first_close) = connections.add();
        let (_, _, second_close) = connections.add();
        let (third, _, third_close) = connections.add();
        let handling = Busy::start(&first_busy);
        assert!(connections.close_oldest_idle());
        assert!(!first_close.is_cancelled(), "a busy connection stays");
        assert!(second_close.is_cancelled(), "the oldest idle one goes");
        connections.remove(third);
        assert!(!third_close.is_cancelled());
        assert!(!connections.close_oldest_idle(), "only a busy one is left");
        drop(handling);
        assert!(connections.close_oldest_idle());
        assert!(first_close.is_cancelled());
    }
}
