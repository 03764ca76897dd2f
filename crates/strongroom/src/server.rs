//! The accept loop: TLS handshake with a deadline, HTTP/1.1 or HTTP/2 with bounded
//! header reads, a connection cap overall and per client address, an idle timeout, and
//! a graceful shutdown that lets in-flight requests finish.
//!
//! Client addresses are personal data: they reach the audit trail only sealed, and are
//! never written to the server's log, not even at debug level.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use strongroom_core::config::LimitsConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Largest HTTP/1 read buffer (bounds request-line and header size).
const MAX_HTTP1_BUF: usize = 64 * 1024;
/// Largest HTTP/2 header list.
const MAX_HTTP2_HEADERS: u32 = 64 * 1024;
/// Concurrent HTTP/2 streams per connection.
const MAX_HTTP2_STREAMS: u32 = 100;
/// Largest HTTP/2 DATA frame a client may send: 16 KiB frames (the protocol's default)
/// cost a wake-up each and hold attachment uploads to a fraction of HTTP/1.1's speed;
/// a frame is read whole, so this bounds the per-connection read buffer.
const MAX_HTTP2_FRAME: u32 = 256 * 1024;

/// Serves `app` on `listener` until `shutdown` completes, then waits up to the grace
/// period for open requests to finish.
pub(crate) async fn run(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    limits: &LimitsConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    let builder = Arc::new(http_builder(limits));
    let handshake = Duration::from_secs(limits.tls_handshake_timeout_secs);
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p?,
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(address_slot) = per_address.claim(peer.ip()) else {
            tracing::debug!("connection refused: too many from one address");
            drop(tcp);
            continue;
        };
        let conn = Connection {
            acceptor: acceptor.clone(),
            app: app.clone(),
            builder: builder.clone(),
            handshake,
            idle,
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slots = (permit, address_slot);
            conn.serve(tcp, peer, watcher).await;
        });
    }
    drop(listener);
    tracing::info!(
        open_connections = graceful.count(),
        "shutting down: no new connections, draining"
    );
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}

fn http_builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
        .max_buf_size(MAX_HTTP1_BUF);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_HTTP2_STREAMS)
        .max_frame_size(MAX_HTTP2_FRAME)
        .max_header_list_size(MAX_HTTP2_HEADERS);
    // No server PINGs: a connection with nothing in flight is closed by the idle
    // timeout instead, which also ends one whose peer is gone.
    b
}

/// Connections per client address (IPv6 by its /64, as sign-in throttling counts).
#[derive(Clone)]
struct PerAddress {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's claim on its address's share; released when dropped.
struct AddressSlot {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for a connection from `ip`, unless that address has `max` open already.
    fn claim(&self, ip: IpAddr) -> Option<AddressSlot> {
        let address = strongroom_core::identity::throttle::throttle_address(ip);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(address).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            address,
            open: self.open.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// What the idle timeout watches on one connection: requests in flight (from the
/// moment their headers are read until their response body is sent or dropped), when
/// the last one ended, and when a response body last made progress.
struct Activity {
    in_flight: AtomicUsize,
    sending: AtomicUsize,
    idle_since: Mutex<Instant>,
    progress: Mutex<Instant>,
}

/// One request in flight; the connection is idle again once every one is dropped.
struct Busy(Arc<Activity>);

/// A response being sent: its body's frames count as progress.
struct Sending(Busy);

fn now_into(at: &Mutex<Instant>) {
    *at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
}

fn since(at: &Mutex<Instant>) -> Duration {
    at.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .elapsed()
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            sending: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            progress: Mutex::new(Instant::now()),
        })
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Completes when the connection should be closed: nothing in flight for
    /// `timeout` (idle), or a response whose body has not moved for `timeout` (a peer
    /// that stopped reading, or an HTTP/2 peer that never opens its flow-control
    /// window: without this it would hold the connection, and its slot, forever).
    async fn done_after(&self, timeout: Duration) -> &'static str {
        let tick = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.in_flight.load(Ordering::SeqCst) == 0 && since(&self.idle_since) >= timeout {
                return "idle connection closed";
            }
            if self.sending.load(Ordering::SeqCst) > 0 && since(&self.progress) >= timeout {
                return "connection closed: a response made no progress";
            }
        }
    }
}

impl Busy {
    /// The response exists: from now on its body must keep moving.
    fn sending(self) -> Sending {
        self.0.sending.fetch_add(1, Ordering::SeqCst);
        now_into(&self.0.progress);
        Sending(self)
    }
}

impl Sending {
    fn progressed(&self) {
        now_into(&self.0.0.progress);
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.0.sending.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut since = self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

struct Connection {
    acceptor: TlsAcceptor,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    handshake: Duration,
    idle: Duration,
}

impl Connection {
    async fn serve(
        self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let tls = match tokio::time::timeout(self.handshake, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
        let activity = Activity::new();
        let seen = activity.clone();
        let app = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
            let busy = seen.busy();
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = req.map(axum::body::Body::new);
            let app = self.app.clone();
            async move {
                let resp = app.oneshot(req).await?;
                // The connection stays busy until the body is sent (or dropped), and
                // the body must keep moving meanwhile.
                let sending = busy.sending();
                Ok::<_, std::convert::Infallible>(resp.map(|body| {
                    axum::body::Body::new(body.map_frame(move |frame| {
                        sending.progressed();
                        frame
                    }))
                }))
            }
        });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(app));
        tokio::select! {
            ended = watcher.watch(conn.into_owned()) => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            why = activity.done_after(self.idle) => tracing::debug!("{why}"),
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; the server will stop only when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
